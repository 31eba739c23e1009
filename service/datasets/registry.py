"""The dataset registry: one declaration per dataset from which everything else follows.

A `Dataset` lists its `Field`s, each with its type, the filters and groupings it offers and
whether it is PII. The index template (`templates.py`), the ingest and query schemas
(`engine/params.py`, `ingest/schema.py`) and the query translation (`engine/translate.py`) are
all generated from it, so a field is declared in exactly one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from ..engine.filters import Filter
from ..engine.groups import AdminLevel, AgeRanges, DateBuckets, EntryKey, Group
from .fields import FieldType, Nested

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
    doc: str = ""

    @property
    def sortable(self) -> bool:
        return self.type.es_type in SORTABLE_TYPES and not self.pii


def date_groups(field_name: str) -> tuple[Group, ...]:
    """`year(F)`, `month(F)`, `week(F)` and `day(F)` for a date field."""
    return tuple(
        DateBuckets(f"{interval}({field_name})", interval=interval, doc=f"{interval} of {field_name}")
        for interval in ("year", "month", "week", "day")
    )


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
    #: Fills in what the service sets on ingest: (event, now, new_id) → event, where
    #: `new_id()` hands out a fresh service-made id (see ids.py).
    prepare: Callable[[dict, datetime, Callable[[], int]], dict] | None = None
    #: Turns a stored document into the event a client sees.
    present: Callable[[dict], dict] | None = None
    doc: str = ""

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
        for f in self.fields:
            for group in f.groups:
                bound[group.name] = group.bind(f.name)
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
    def pii_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.pii)

    def group_for_age(self) -> AgeRanges | None:
        return next((g for g in self.groups.values() if isinstance(g, AgeRanges)), None)

    def group_for_admin_level(self) -> AdminLevel | None:
        return next((g for g in self.groups.values() if isinstance(g, AdminLevel)), None)

    def entry_groups(self, nested_field: str) -> list[EntryKey]:
        return [g for g in self.groups.values() if isinstance(g, EntryKey) and g.field == nested_field]

    # -- derived fields: computed on ingest for the groupings that need them ---------------

    @cached_property
    def derived_mapping(self) -> dict:
        mapping = {}
        for group in self.groups.values():
            mapping.update(group.derived_mapping())
        return mapping

    @cached_property
    def deriving_groups(self) -> tuple[Group, ...]:
        """The groupings that compute fields on ingest (most compute none: skip them per event)."""
        return tuple(group for group in self.groups.values() if group.derived_mapping())

    def derive(self, event: dict) -> dict:
        derived = {}
        for group in self.deriving_groups:
            derived.update(group.derive(event))
        return derived

    def to_document(self, event: dict) -> dict:
        """The Elasticsearch document for a validated event."""
        derived = self.derive(event)
        return {**event, "derived": derived} if derived else dict(event)

    def to_event(self, source: dict) -> dict:
        """The event a client sees: PII and derived fields removed."""
        hidden = set(self.pii_fields) | {"derived"}
        event = {key: value for key, value in source.items() if key not in hidden}
        return self.present(event) if self.present else event

    def index_name(self, prefix: str) -> str:
        return f"{prefix}{self.name}"

    def index_pattern(self, prefix: str) -> str:
        return f"{prefix}{self.name}*"


def _keyword():
    from .fields import Keyword

    return Keyword()
