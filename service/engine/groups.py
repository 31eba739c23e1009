"""Grouping kinds: each becomes one composite-aggregation source (or, for what a source cannot
express, an aggregation under each composite bucket) and formats its row keys.

Composite aggregations page through every bucket, so grouped rows are exact and complete at
any cardinality (a `terms` aggregation is approximate and capped). Every method here is pure.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

#: Stored in derived keyword fields for "this entry lacks the key", so such events get the
#: `null` row (a composite `missing_bucket` only sees fields absent from the whole event).
ABSENT = "\u0000"
#: Joins the keys of one nested entry into one derived keyword.
JOINER = "\u001f"


@dataclass(frozen=True)
class BucketOptions:
    """Request-wide options that shape buckets: the time zone and the first day of a week."""

    zone: str = "UTC"
    week_start: str = "monday"


@dataclass(frozen=True)
class Group:
    """A `group_by` name bound to a field; `key` is the name its rows carry."""

    name: str
    field: str = ""
    key: str = ""
    #: The values this field is declared to take, for zero-filled rows (`fill=zero`).
    values: tuple = ()
    doc: str = ""

    def bind(self, field: str) -> Group:
        return replace(self, field=field, key=self.key or self.name)

    def source(self, options: BucketOptions) -> dict:
        return {"terms": {"field": self.field, "missing_bucket": True}}

    def bucket_aggregation(self, options: BucketOptions) -> dict | None:
        """An aggregation nested under each composite bucket, for a grouping a composite source
        cannot express; None when the grouping is a composite source."""
        return None

    def bucket_rows(self, key: str) -> dict:
        """The partial row of one bucket of `bucket_aggregation`."""
        raise NotImplementedError

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key,)

    #: Whether each bucket is exactly one row, in bucket order (so rows can stream by cursor).
    one_row_per_bucket = True

    def rows(self, raw, options: BucketOptions) -> list[dict]:
        """The partial rows one bucket key stands for: usually one, none to drop the bucket."""
        return [{self.key: None if raw == ABSENT else raw}]

    def sort_key(self, key: str, value):
        """Nulls first, then the natural order: the order of composite buckets, so paged and
        unpaged rows agree."""
        return (value is not None, value if value is not None else 0)

    def domain(self, observed: set, bounds, options: BucketOptions) -> list:
        """Every row key value to show with `fill=zero`: declared values and those seen."""
        return sorted(set(self.values) | observed, key=lambda value: self.sort_key(self.key, value))

    def domain_rows(self, observed: list[dict], bounds, options: BucketOptions) -> list[dict]:
        """`domain` as partial rows; `observed` are the partial rows the buckets gave."""
        seen = {_frozen(row[self.key]) for row in observed}
        return [{self.key: value} for value in self.domain(seen, bounds, options)]

    #: Derived document fields this grouping needs computed on ingest: name → mapping.
    def derived_mapping(self) -> dict:
        return {}

    def derive(self, event: dict) -> dict:
        return {}


def _frozen(value):
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class Terms(Group):
    """One row per distinct value, plus a `null` row for events lacking the field."""


@dataclass(frozen=True)
class DateBuckets(Group):
    """`year(F)`, `month(F)`, `week(F)` or `day(F)` in the request's time zone.

    Weeks are ISO weeks (Monday to Sunday, labelled with the ISO week-year) unless the request
    asks for `week_start=sunday`: Sunday to Saturday weeks labelled like epidemiological
    (MMWR) weeks, each belonging to the year of its Wednesday.
    """

    interval: str = "day"

    def source(self, options: BucketOptions) -> dict:
        histogram = {
            "field": self.field,
            "calendar_interval": self.interval,
            "time_zone": es_zone(options.zone),
            "missing_bucket": True,
        }
        if self.interval == "week" and options.week_start == "sunday":
            histogram["offset"] = "-1d"
        return {"date_histogram": histogram}

    def rows(self, raw, options: BucketOptions) -> list[dict]:
        if raw is None:
            return [{self.key: None}]
        local = datetime.fromtimestamp(raw / 1000, UTC).astimezone(parse_zone(options.zone))
        return [{self.key: format_bucket(local, self.interval, options.week_start)}]

    def domain(self, observed: set, bounds, options: BucketOptions) -> list:
        """Every bucket from the filter's lower to upper bound (else the first to the last seen)."""
        labels = sorted(value for value in observed if value is not None)
        low, high = bounds
        zone = parse_zone(options.zone)
        if low is None and high is None and not labels:
            return sorted(observed, key=lambda value: self.sort_key(self.key, value))
        start = (
            low.astimezone(zone) if low else parse_label(labels[0], self.interval, zone, options.week_start)
        )
        end = (
            high.astimezone(zone)
            if high
            else parse_label(labels[-1], self.interval, zone, options.week_start)
        )
        domain, moment = set(observed), start
        while moment <= end:
            domain.add(format_bucket(moment, self.interval, options.week_start))
            if len(domain) > MAX_FILL_BUCKETS:
                raise ValueError(f"fill=zero would make over {MAX_FILL_BUCKETS} {self.interval} buckets")
            moment = step(moment, self.interval)
        return sorted(domain, key=lambda value: self.sort_key(self.key, value))


MAX_FILL_BUCKETS = 10_000


def step(moment: datetime, interval: str) -> datetime:
    """A moment in the next bucket (never skipping one, whatever the calendar)."""
    if interval == "year":
        return moment.replace(year=moment.year + 1, month=1, day=1)
    if interval == "month":
        return (moment.replace(day=1) + timedelta(days=32)).replace(day=1)
    return moment + timedelta(days=7 if interval == "week" else 1)


def parse_label(label: str, interval: str, zone: tzinfo, week_start: str) -> datetime:
    """A moment inside the bucket a label names."""
    if interval == "week":
        year, week = int(label[:4]), int(label[6:])
        if week_start == "sunday":
            first_wednesday = datetime(year, 1, 1, tzinfo=zone)
            first_wednesday += timedelta(days=(2 - first_wednesday.weekday()) % 7)
            return first_wednesday + timedelta(weeks=week - 1)
        return datetime.fromisocalendar(year, week, 1).replace(tzinfo=zone)
    parts = [int(part) for part in label.split("-")]
    return datetime(*parts, *[1] * (3 - len(parts)), tzinfo=zone)


def format_bucket(local: datetime, interval: str, week_start: str = "monday") -> str:
    if interval == "year":
        return f"{local.year:04d}"
    if interval == "month":
        return f"{local.year:04d}-{local.month:02d}"
    if interval == "week":
        if week_start == "sunday":
            wednesday = local.date() + timedelta(days=3 - (local.weekday() + 1) % 7)
            return f"{wednesday.year:04d}-W{(wednesday.timetuple().tm_yday - 1) // 7 + 1:02d}"
        year, week, _ = local.isocalendar()
        return f"{year:04d}-W{week:02d}"
    return local.date().isoformat()


MAX_OFFSET = timedelta(hours=18)


def parse_zone(zone: str) -> tzinfo:
    """An IANA name or a `±HH:MM` offset (raises ValueError)."""
    if zone and zone[0] in "+-":
        parsed = datetime.strptime(zone, "%z").tzinfo
        # Elasticsearch (java.time) refuses offsets beyond ±18:00.
        if parsed is None or abs(parsed.utcoffset(None)) > MAX_OFFSET:
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
class NumericRanges(Group):
    """Requested `[from, to)` ranges of a numeric field, counted by a `range` aggregation.

    Composite sources cannot express ranges (which may overlap), so ranges are a `range`
    aggregation under each composite bucket: Elasticsearch returns one bucket per range rather
    than one per value, and each row's count and statistics come from one bucket. An event
    outside every range is left out of the rows. A field the registry marks with ranges is
    grouped by them as a JSON object (`{"report_delay_hours": [[0, 24], [24, null]]}`).
    """

    ranges: tuple[tuple[float | None, float | None], ...] = ()
    #: Whether range ends must be integers (the field holds integers).
    integral: bool = False
    #: Whether `group_by=NAME` (one row per exact value) is offered besides ranges.
    by_name = False

    def with_ranges(self, ranges) -> NumericRanges:
        return replace(self, ranges=tuple(dict.fromkeys(ranges)))

    @property
    def one_row_per_bucket(self) -> bool:
        return not self.ranges

    def bucket_aggregation(self, options: BucketOptions) -> dict | None:
        if not self.ranges:
            return None
        ranges = []
        for index, (low, high) in enumerate(self.ranges):
            bounds = {"from": low, "to": high}
            ranges.append({"key": str(index)} | {end: at for end, at in bounds.items() if at is not None})
        return {"range": {"field": self.field, "ranges": ranges}}

    def bucket_rows(self, key: str) -> dict:
        return {self.key: list(self.ranges[int(key)])}

    def sort_key(self, key: str, value):
        if self.ranges and value is not None:
            return (True, self.ranges.index(tuple(value)))
        return super().sort_key(key, value)

    def domain(self, observed: set, bounds, options: BucketOptions) -> list:
        if self.ranges:
            return [list(bucket) for bucket in self.ranges]
        return super().domain(observed, bounds, options)


@dataclass(frozen=True)
class AgeRanges(NumericRanges):
    """Exact ages by name (`group_by=age`, a composite source), or requested `[from, to)`
    ranges as a JSON object (`{"age": [[0, 10], [10, null]]}`)."""

    integral: bool = True
    by_name = True


@dataclass(frozen=True)
class AdminLevel(Group):
    """The location at level N of `ancestors + [field]` (0 is the root); rows keyed `location`."""

    ancestors: str = ""
    depth: int = 10
    level: int = 0

    def at_level(self, level: int) -> AdminLevel:
        return replace(self, level=level)

    def source(self, options: BucketOptions) -> dict:
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

    def source(self, options: BucketOptions) -> dict:
        return {"terms": {"field": self.derived_field, "missing_bucket": True}}

    @property
    def derived_field(self) -> str:
        return f"derived.{self.field}_{self.name}"

    def derived_mapping(self) -> dict:
        keyword = {"type": "keyword", "ignore_above": 4096}
        return {f"{self.field}_{self.name}": keyword, f"{self.field}_entry": keyword}

    def derive(self, event: dict) -> dict:
        # An event without entries gets ABSENT too, so its null row is the same bucket as an
        # entry lacking the key (and sorts first, as composite missing buckets do).
        entries = event.get(self.field) or [{}]
        derived = {f"{self.field}_{self.name}": sorted({entry.get(self.name, ABSENT) for entry in entries})}
        if self.name == self.entry_keys[0]:  # the whole-entry keyword is made once, by the first key
            derived[f"{self.field}_entry"] = sorted(
                {JOINER.join(entry.get(key, ABSENT) for key in self.entry_keys) for entry in entries}
            )
        return derived


@dataclass(frozen=True)
class WholeEntry(Group):
    """All the `EntryKey`s of one nested field grouped together: one source on whole entries.

    Grouping `condition` and `result` as two sources would pair keys of different entries of
    the same event; the whole-entry keyword keeps each row to one real entry.
    """

    entry_keys: tuple[str, ...] = ()
    #: Declared values of each key, in `entry_keys` order.
    key_values: tuple[tuple, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return self.entry_keys

    def domain_rows(self, observed: list[dict], bounds, options: BucketOptions) -> list[dict]:
        """Seen entries, plus every declared or seen value of each key crossed with the others."""
        per_key = [
            sorted({row[key] for row in observed if row[key] is not None} | set(declared))
            for key, declared in zip(
                self.entry_keys, self.key_values or [()] * len(self.entry_keys), strict=True
            )
        ]
        crossed = [dict(zip(self.entry_keys, combo, strict=True)) for combo in itertools.product(*per_key)]
        unique = {tuple(row.values()): row for row in [*observed, *crossed]}
        return list(unique.values())

    def source(self, options: BucketOptions) -> dict:
        return {"terms": {"field": f"derived.{self.field}_entry", "missing_bucket": True}}

    def rows(self, raw, options: BucketOptions) -> list[dict]:
        if raw is None:
            return [dict.fromkeys(self.entry_keys)]
        parts = raw.split(JOINER)
        return [
            {key: None if part == ABSENT else part for key, part in zip(self.entry_keys, parts, strict=True)}
        ]
