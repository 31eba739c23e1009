"""The dataset registry: one declaration per dataset from which everything else follows.

A `Dataset` lists its `Field`s, each with its type, the filters and groupings it offers and
whether it is PII. The index template (`templates.py`), the ingest and query schemas
(`engine/params.py`, `ingest/validation.py`) and the query translation (`engine/translate.py`) are
all generated from it, so a field is declared in exactly one place.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property

from .dates import from_iso
from .fields import FieldType, Nested, StoredObject
from .filters import Filter
from .groups import AdminLevel, DateBuckets, EntryKey, Group, NumericRanges, Terms

SORTABLE_TYPES = ("keyword", "long", "integer", "double", "date")


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType
    filters: tuple[Filter, ...] = ()
    groups: tuple[Group, ...] = ()
    #: Stored but never returned by any endpoint.
    pii: bool = False
    required: bool = False
    #: Filled in by the service (clients may not send it).
    server_side: bool = False
    #: A numeric field `stats=` may summarise.
    stats: bool = False
    #: `rate=NAME:VALUE` may count events having a value of this field (keyword fields and the
    #: keys of nested entries); NAME is the field's group name (`device`, `result`).
    rates: bool = False
    #: `distinct=NAME` may count this field's distinct values; NAME is its group name.
    distinct: bool = False
    #: A value the service computes from the stored event (`Dataset.derived_fields`): kept
    #: under `derived.<name>`, never sent by clients nor returned.
    compute: Callable[[dict], object] | None = None
    #: A time read off the client's clock: corrected on ingest when the client sends `sent_at`.
    client_clock: bool = False
    doc: str = ""

    def __post_init__(self):
        # The group of a nested field's first entry key derives every key's values on ingest
        # (`EntryKey.derive`): without it, the others would group nothing.
        declared = {group.name for group in self.groups if isinstance(group, EntryKey)}
        for group in self.groups:
            if isinstance(group, EntryKey) and group.entry_keys[0] not in declared:
                raise ValueError(
                    f"Field {self.name!r}: declare the group of its first entry key "
                    f"{group.entry_keys[0]!r}, which derives the others' values on ingest."
                )

    @property
    def sortable(self) -> bool:
        return self.type.es_type in SORTABLE_TYPES and not self.pii

    @property
    def path(self) -> str:
        """Where Elasticsearch holds the field: derived fields live under `derived`."""
        return f"derived.{self.name}" if self.compute else self.name


#: Where the service keeps the client's own times when it corrects them for clock skew.
CLOCK_CORRECTION = Field(
    "clock_correction",
    StoredObject(),
    server_side=True,
    doc="set when the client sent `sent_at`: sent_at, received_at, offset_ms and the original times",
)


def date_groups(field_name: str) -> tuple[Group, ...]:
    """`year(F)`, `month(F)`, `week(F)` and `day(F)` for a date field; their rows are keyed by
    the field itself (`{"created_at": "2010"}`), as the CDX API's reference implementation does."""
    return tuple(
        DateBuckets(
            f"{interval}({field_name})", key=field_name, interval=interval, doc=f"{interval} of {field_name}"
        )
        for interval in ("year", "month", "week", "day")
    )


@dataclass(frozen=True)
class Endpoints:
    """Where a dataset's endpoints live (Werkzeug rules), and the habits of the API whose
    clients it keeps (`api/views.py` builds every endpoint from this)."""

    #: `POST` ingests, `GET` queries (also with a JSON body).
    collection: str
    #: One event by id: the rule names `<event_id>` (with a converter if ids are integers).
    item: str
    export: str
    #: `POST` with a JSON body queries.
    query: str
    #: What a 404 calls an id (`uuid`, `id`).
    id_label: str = "id"
    #: Plain listings as a bare JSON array, the rest of the answer in headers (Roundware).
    bare_list: bool = False
    #: One posted event (not a batch) answers `201` with the stored event (Roundware).
    created_event: bool = False

    @classmethod
    def under(cls, base: str, **habits) -> Endpoints:
        """The usual layout: `base`, `base/<event_id>`, `base/export`, `base/query`."""
        return cls(base, f"{base}/<event_id>", f"{base}/export", f"{base}/query", **habits)


@dataclass(frozen=True)
class Dataset:
    name: str
    fields: tuple[Field, ...]
    #: The field that identifies an event (its Elasticsearch `_id`).
    id_field: str
    #: The time field Kibana and default ordering use.
    time_field: str
    #: Ties in an ordering are broken by this unique field, so paging is stable.
    tiebreak_field: str = ""
    #: Tokens restricted to institutions are scoped through this field ("" = cannot be scoped).
    institution_field: str = ""
    default_order: tuple[str, ...] = ()
    #: Groupings not tied to one field's value (admin levels).
    extra_groups: tuple[Group, ...] = ()
    #: What the service sets on ingest: (event, now, new_id) → those fields (they override the
    #: event's own), where `new_id()` hands out a fresh service-made id (see ids.py). The event
    #: is read with `get` only: a dict, or a decoded Struct (ingest/validation.py).
    prepare: Callable[[dict, datetime, Callable[[], int]], dict] | None = None
    #: Turns a stored document into the event a client sees.
    present: Callable[[dict], dict] | None = None
    #: The event's own time fields, the first present one (as the client wrote it, before any
    #: clock correction) choosing its monthly index, so an event and any retry of it land in
    #: the same index; for an event with none, see `pipeline.claim_receipts`.
    partition_fields: tuple[str, ...] = ()
    #: The partition field `prepare` sets to the time of receipt when the client sent no time:
    #: an event with a client-given id and no time claims its uuid's first receipt
    #: (`pipeline.claim_receipts`) so that its retries meet its month. "" when ids are ours.
    receipt_field: str = ""
    #: When ids encode their creation time: id → that time, so a get by id knows its index.
    time_of_id: Callable[[object], datetime] | None = None
    #: Numbers the service computes at ingest from each event (`Field.compute`), stored under
    #: `derived` (never returned, never sent by clients), usable in `stats=` and range groups.
    derived_fields: tuple[Field, ...] = ()
    doc: str = ""
    #: Its HTTP endpoints; by default under `/<name>/events`.
    endpoints: Endpoints | None = None

    @property
    def http(self) -> Endpoints:
        return self.endpoints or Endpoints.under(f"/{self.name}/events")

    @cached_property
    def field_map(self) -> dict[str, Field]:
        return {f.name: f for f in self.fields}

    @cached_property
    def filters(self) -> dict[str, Filter]:
        bound = {}
        for f in self.fields:
            nested = f.name if isinstance(f.type, Nested) else None
            for flt in f.filters:
                target = f"{f.name}.{flt.field or flt.name}" if nested else f.name
                key_type = f.type if not nested else _keyword()
                bound[flt.name] = flt.bind(target, flt.field_type or key_type, nested)
        return bound

    @cached_property
    def groups(self) -> dict[str, Group]:
        bound = {}
        for f in (*self.fields, *self.derived_fields):
            for group in f.groups:
                bound[group.name] = group.bind(f.path)
        for group in self.extra_groups:
            bound[group.name] = group
        return bound

    @cached_property
    def orderable(self) -> dict[str, str]:
        """Names `order_by` accepts for events → the Elasticsearch field they sort on."""
        names = {f.name: f.name for f in self.fields if f.sortable}
        for group in self.groups.values():
            if type(group).__name__ == "Terms" and group.field in names:
                names.setdefault(group.name, group.field)
        return names

    @property
    def client_clock_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.client_clock)

    @property
    def stats_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in (*self.fields, *self.derived_fields) if f.stats)

    @cached_property
    def paths(self) -> dict[str, str]:
        """Field name → where Elasticsearch holds it (`derived.report_delay_hours`)."""
        return {f.name: f.path for f in (*self.fields, *self.derived_fields)}

    @cached_property
    def rate_groups(self) -> dict[str, Group]:
        """Names `rate=NAME:VALUE` accepts → the grouping of the field it counts values of."""
        return {
            group.name: self.groups[group.name]
            for f in self.fields
            if f.rates
            for group in f.groups
            if isinstance(group, Terms | EntryKey)
        }

    @cached_property
    def distinct_fields(self) -> dict[str, str]:
        """Names `distinct=NAME` accepts (a field's group name, else its own) → its path."""
        found = {}
        for f in self.fields:
            if f.distinct:
                name = next((g.name for g in f.groups if isinstance(g, Terms)), f.name)
                found[name] = f.path
        return found

    @cached_property
    def range_groups(self) -> dict[str, NumericRanges]:
        """Groupings by ranges of a numeric field, given as JSON objects (`{"age": [[0, 10]]}`)."""
        return {name: g for name, g in self.groups.items() if isinstance(g, NumericRanges)}

    @property
    def pii_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.pii)

    def group_for_admin_level(self) -> AdminLevel | None:
        return next((g for g in self.groups.values() if isinstance(g, AdminLevel)), None)

    # -- derived fields: computed on ingest for the groupings that need them ---------------

    @cached_property
    def derived_mapping(self) -> dict:
        mapping = {f.name: f.type.mapping() for f in self.derived_fields}
        for group in self.groups.values():
            mapping.update(group.derived_mapping())
        return mapping

    @cached_property
    def deriving_groups(self) -> tuple[Group, ...]:
        """The groupings that compute fields on ingest (most compute none: skip them per event)."""
        return tuple(group for group in self.groups.values() if group.derives)

    def derive(self, event: dict) -> dict:
        derived = {}
        for group in self.deriving_groups:
            derived.update(group.derive(event))
        for f in self.derived_fields:
            value = f.compute(event)
            if value is not None:
                derived[f.name] = value
        return derived

    def prepared(self, event: dict, now: datetime, new_id: Callable[[], int]) -> dict:
        """The event with the fields the service sets on ingest (`prepare`)."""
        return {**event, **self.prepare(event, now, new_id)} if self.prepare else event

    def to_document(self, event: dict) -> dict:
        """The Elasticsearch document for a validated event."""
        derived = self.derive(event)
        return {**event, "derived": derived} if derived else dict(event)

    def to_event(self, source: dict) -> dict:
        """The event a client sees: PII and derived fields removed."""
        hidden = set(self.pii_fields) | {"derived"}
        event = {key: value for key, value in source.items() if key not in hidden}
        return self.present(event) if self.present else event

    # -- monthly indices: `<prefix><name>-YYYY.MM`, all matched by the template's pattern ------

    def index_name(self, prefix: str, when: datetime) -> str:
        utc = when.astimezone(UTC)
        return f"{prefix}{self.name}-{utc.year:04d}.{utc.month:02d}"

    def index_for(self, prefix: str, document: dict) -> str:
        """The monthly index of a document, from its first present partition field as the client
        wrote it: a clock-corrected time counts by its original, which every retry repeats,
        while the correction moves with each retry's `sent_at` (and could cross a month)."""
        original = document["clock_correction"]["original"] if "clock_correction" in document else {}
        value = next((original.get(f) or document[f] for f in self.partition_fields if document.get(f)), None)
        return self.index_of(prefix, value)

    def index_of(self, prefix: str, value: str | None) -> str:
        """The monthly index of a partition field's validated text (None: the current month)."""
        if value and _written_in_utc(value):  # most are: the month is in the text (no parsing)
            return f"{prefix}{self.name}-{value[:4]}.{value[5:7]}"
        return self.index_name(prefix, from_iso(value) if value else datetime.now(UTC))

    def index_pattern(self, prefix: str) -> str:
        return f"{prefix}{self.name}*"

    def month_of_index(self, prefix: str, index: str) -> tuple[int, int] | None:
        """(year, month) of one of this dataset's monthly indices; None for any other name."""
        found = re.fullmatch(re.escape(f"{prefix}{self.name}-") + r"(\d{4})\.(\d{2})", index)
        return (int(found[1]), int(found[2])) if found else None


def _written_in_utc(text: str) -> bool:
    """Whether a validated ISO 8601 text is in UTC: a `Z`, a zero offset, or no offset at all."""
    clock = text[10:]
    return clock.endswith(("Z", "z", "+00:00", "+0000")) or ("+" not in clock and "-" not in clock)


def _keyword():
    from .fields import Keyword

    return Keyword()
