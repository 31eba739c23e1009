"""Grouping kinds: each becomes one composite-aggregation source and formats its row keys.

Composite aggregations page through every bucket, so grouped rows are exact and complete at
any cardinality (a `terms` aggregation is approximate and capped). Every method here is pure.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

#: Stored in derived keyword fields for "this entry lacks the key", so such events get the
#: `null` row (a composite `missing_bucket` only sees fields absent from the whole event).
ABSENT = "\u0000"
#: Joins the keys of one nested entry into one derived keyword.
JOINER = "\u001f"


@dataclass(frozen=True)
class Group:
    """A `group_by` name bound to a field; `key` is the name its rows carry."""

    name: str
    field: str = ""
    key: str = ""
    doc: str = ""

    def bind(self, field: str) -> Group:
        return replace(self, field=field, key=self.key or self.name)

    def source(self, zone: str) -> dict:
        return {"terms": {"field": self.field, "missing_bucket": True}}

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key,)

    def rows(self, raw, zone: str) -> list[dict]:
        """The partial rows one bucket key stands for: usually one, none to drop the bucket."""
        return [{self.key: None if raw == ABSENT else raw}]

    def sort_key(self, key: str, value):
        """Nulls last; otherwise the natural order of the value."""
        return (value is None, value if value is not None else 0)

    def sub_aggregation(self) -> dict | None:
        """An aggregation that counts this group under each composite bucket, if it has one."""
        return None

    def sub_row(self, bucket: dict) -> dict:
        """The partial row of one bucket of `sub_aggregation`'s answer."""
        raise NotImplementedError

    #: Derived document fields this grouping needs computed on ingest: name → mapping.
    def derived_mapping(self) -> dict:
        return {}

    def derive(self, event: dict) -> dict:
        return {}


@dataclass(frozen=True)
class Terms(Group):
    """One row per distinct value, plus a `null` row for events lacking the field."""


INTERVALS = {"year": "year", "month": "month", "week": "week", "day": "day"}


@dataclass(frozen=True)
class DateBuckets(Group):
    """`year(F)`, `month(F)`, `week(F)` (ISO week-year) or `day(F)` in the request's time zone."""

    interval: str = "day"

    def source(self, zone: str) -> dict:
        return {
            "date_histogram": {
                "field": self.field,
                "calendar_interval": INTERVALS[self.interval],
                "time_zone": zone,
                "missing_bucket": True,
            }
        }

    def rows(self, raw, zone: str) -> list[dict]:
        if raw is None:
            return [{self.key: None}]
        local = datetime.fromtimestamp(raw / 1000, UTC).astimezone(parse_zone(zone))
        return [{self.key: format_bucket(local, self.interval)}]


def format_bucket(local: datetime, interval: str) -> str:
    if interval == "year":
        return f"{local.year:04d}"
    if interval == "month":
        return f"{local.year:04d}-{local.month:02d}"
    if interval == "week":
        year, week, _ = local.isocalendar()
        return f"{year:04d}-W{week:02d}"
    return local.date().isoformat()


def parse_zone(zone: str) -> tzinfo:
    """An IANA name or a `±HH:MM` offset (raises ValueError)."""
    if zone and zone[0] in "+-":
        parsed = datetime.strptime(zone, "%z").tzinfo
        if parsed is None:
            raise ValueError(zone)
        return parsed
    if zone in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(zone)
    except (KeyError, ValueError, OSError) as exc:
        raise ValueError(zone) from exc


def es_zone(zone: str) -> str:
    """The zone as Elasticsearch reads it (offsets as `+05:30`)."""
    parsed = parse_zone(zone)
    if isinstance(parsed, timezone):
        offset = parsed.utcoffset(None) or timedelta(0)
        minutes = int(offset.total_seconds() // 60)
        sign = "-" if minutes < 0 else "+"
        return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return zone


@dataclass(frozen=True)
class AgeRanges(Group):
    """Requested `[from, to)` ranges; the source groups by exact value and rows sum into ranges.

    Grouping by the exact value (a few hundred at most) keeps one composite for every group
    and lets ranges overlap; an event outside every range is left out of the rows.
    """

    ranges: tuple[tuple[int | None, int | None], ...] = ()

    def with_ranges(self, ranges) -> AgeRanges:
        return replace(self, ranges=tuple(ranges))

    def rows(self, raw, zone: str) -> list[dict]:
        if not self.ranges:
            return [{self.key: raw}]
        if raw is None:
            return []
        return [
            {self.key: [low, high]}
            for low, high in self.ranges
            if (low is None or raw >= low) and (high is None or raw < high)
        ]

    def sort_key(self, key: str, value):
        if self.ranges and value is not None:
            return (False, self.ranges.index(tuple(value)))
        return super().sort_key(key, value)

    def sub_aggregation(self) -> dict | None:
        """A `range` aggregation (from inclusive, to exclusive, overlaps allowed; events outside
        every range or lacking the field are not counted): as the API defines age ranges."""
        if not self.ranges:
            return None
        ranges = []
        for position, (low, high) in enumerate(self.ranges):
            spec = {"key": str(position)}
            if low is not None:
                spec["from"] = low
            if high is not None:
                spec["to"] = high
            ranges.append(spec)
        return {"range": {"field": self.field, "ranges": ranges}}

    def sub_row(self, bucket: dict) -> dict:
        return {self.key: list(self.ranges[int(bucket["key"])])}


def sub_aggregated(groups: tuple[Group, ...]) -> Group | None:
    """The group counted by a sub-aggregation under the composite rather than as one of its
    sources, if any: age ranges beside other groups. Grouping by exact age multiplies the
    composite's buckets by the number of distinct ages (about a hundred); a `range` under each
    bucket multiplies them by the few ranges asked for. (Alone, or with a second ranged group,
    the ranges sum exact ages instead: a composite needs at least one source.)"""
    ranged = [group for group in groups if group.sub_aggregation() is not None]
    return ranged[0] if len(ranged) == 1 and len(groups) > 1 else None


@dataclass(frozen=True)
class AdminLevel(Group):
    """The location at level N of `ancestors + [field]` (0 is the root); rows keyed `location`."""

    ancestors: str = ""
    depth: int = 10
    level: int = 0

    def at_level(self, level: int) -> AdminLevel:
        return replace(self, level=level)

    def source(self, zone: str) -> dict:
        return {"terms": {"field": f"derived.{self.name}_{self.level}", "missing_bucket": True}}

    def derived_mapping(self) -> dict:
        return {f"{self.name}_{level}": {"type": "long"} for level in range(self.depth)}

    def derive(self, event: dict) -> dict:
        if event.get(self.field) is None:
            return {}
        path = [*list(event.get(self.ancestors) or []), event[self.field]]
        return {f"{self.name}_{level}": place for level, place in enumerate(path[: self.depth])}


@dataclass(frozen=True)
class EntryKey(Group):
    """A key of nested entries (`results.condition`), counted once per event per value.

    On ingest each event gets a derived keyword list of the key's values (ABSENT where an entry
    lacks it) and one of whole entries, so two keys grouped together come from the same entry.
    """

    entry_keys: tuple[str, ...] = ()

    def source(self, zone: str) -> dict:
        return {"terms": {"field": self.derived_field, "missing_bucket": True}}

    @property
    def derived_field(self) -> str:
        return f"derived.{self.field}_{self.name}"

    def derived_mapping(self) -> dict:
        keyword = {"type": "keyword", "ignore_above": 4096}
        return {f"{self.field}_{self.name}": keyword, f"{self.field}_entry": keyword}

    def derive(self, event: dict) -> dict:
        entries = event.get(self.field) or []
        if not entries:
            return {}
        return {
            f"{self.field}_{self.name}": sorted({entry.get(self.name, ABSENT) for entry in entries}),
            f"{self.field}_entry": sorted(
                {JOINER.join(entry.get(key, ABSENT) for key in self.entry_keys) for entry in entries}
            ),
        }


@dataclass(frozen=True)
class WholeEntry(Group):
    """All the `EntryKey`s of one nested field grouped together: one source on whole entries.

    Grouping `condition` and `result` as two sources would pair keys of different entries of
    the same event; the whole-entry keyword keeps each row to one real entry.
    """

    entry_keys: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return self.entry_keys

    def source(self, zone: str) -> dict:
        return {"terms": {"field": f"derived.{self.field}_entry", "missing_bucket": True}}

    def rows(self, raw, zone: str) -> list[dict]:
        if raw is None:
            return [dict.fromkeys(self.entry_keys)]
        parts = raw.split(JOINER)
        return [
            {key: None if part == ABSENT else part for key, part in zip(self.entry_keys, parts, strict=True)}
        ]
