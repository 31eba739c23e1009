"""Grouping kinds: each becomes one composite-aggregation source (or, for what a source cannot
express, an aggregation under each composite bucket) and formats its row keys.

Composite aggregations page through every bucket, so grouped rows are exact and complete at
any cardinality (a `terms` aggregation is approximate and capped). Every method here is pure.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import cache, cached_property
from zoneinfo import ZoneInfo, available_timezones

from .dates import bucket_of, bucket_of_label, label_of, local_day

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

    def one_row_per_bucket(self, options: BucketOptions) -> bool:
        """Whether each bucket is exactly one row, in bucket order (so rows can stream by cursor)."""
        return True

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

    @property
    def derives(self) -> bool:
        """Whether `derive` computes anything (most groupings compute nothing: skipped per event)."""
        return bool(self.derived_mapping())


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
    (MMWR) weeks, each belonging to the year of its Wednesday. Labels are dates of years 1 to
    9999: a bucket a time zone moves beyond them is a 400 naming `time_zone`.
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
            # Elasticsearch's weeks start on Mondays, and its `offset` is a fixed duration: a
            # day back from a Monday is the Sunday only where every day lasts 24 hours. In a
            # zone with daylight saving time the buckets are the zone's own days, which `rows`
            # gathers into their weeks.
            if self.folds_days(options):
                histogram["calendar_interval"] = "day"
            else:
                histogram["offset"] = "-1d"
        return {"date_histogram": histogram}

    def folds_days(self, options: BucketOptions) -> bool:
        """Sunday weeks in a named zone (not an offset, whose days all last 24 hours) come
        from day buckets, several to a row."""
        named = not isinstance(parse_zone(options.zone), timezone)
        return self.interval == "week" and options.week_start == "sunday" and named

    def one_row_per_bucket(self, options: BucketOptions) -> bool:
        return not self.folds_days(options)

    def rows(self, raw, options: BucketOptions) -> list[dict]:
        if raw is None:
            return [{self.key: None}]
        return [{self.key: self.label(self.bucket_at(raw, options), options)}]

    def bucket_at(self, millis: int, options: BucketOptions) -> int:
        """The bucket of an instant (Elasticsearch's key, or a filter's bound)."""
        day = local_day(millis, parse_zone(options.zone))
        bucket = bucket_of(day, self.interval, options.week_start)
        if bucket is None:
            raise self.outside_calendar(options)
        return bucket

    def label(self, bucket: int, options: BucketOptions) -> str:
        label = label_of(bucket, self.interval)
        if label is None:
            raise self.outside_calendar(options)
        return label

    def outside_calendar(self, options: BucketOptions) -> ParameterError:
        return ParameterError(
            "time_zone",
            f"In time zone {options.zone}, a {self.interval} of {self.field} falls outside years "
            "0001 to 9999, which have no label: choose a zone nearer UTC or narrow the filters.",
        )

    def domain(self, observed: set, bounds, options: BucketOptions) -> list:
        """Every bucket from the filters' lower to upper bound (`bounds`: epoch milliseconds;
        an open end is the first or last bucket seen, and with none seen there is none)."""
        seen = [bucket_of_label(value, self.interval, options.week_start) for value in observed if value]
        low, high = bounds
        first = self.bucket_at(low, options) if low is not None else min(seen, default=None)
        last = self.bucket_at(high, options) if high is not None else max(seen, default=None)
        buckets = range(0)
        if first is not None and last is not None:
            buckets = range(first, last + 1, 7 if self.interval == "week" else 1)
        # Counted before any is made: a century of days is refused at once, not after a while.
        if len(buckets) > MAX_FILLED_ROWS:
            raise ParameterError(
                "fill",
                f"fill=zero would make {len(buckets)} {self.interval} buckets, over the "
                f"{MAX_FILLED_ROWS} rows it may make; narrow the filters.",
            )
        labels = {self.label(bucket, options) for bucket in buckets} | set(observed)
        return sorted(labels, key=lambda value: self.sort_key(self.key, value))


#: Zero-filling crosses every group's values; beyond this many rows it is refused (a 400).
MAX_FILLED_ROWS = 200_000


class ParameterError(ValueError):
    """Rows the query asks for cannot be made: a 400 naming the parameter to change."""

    def __init__(self, parameter: str, message: str):
        super().__init__(message)
        self.parameter = parameter


def format_bucket(local: datetime, interval: str, week_start: str = "monday") -> str | None:
    """The label of the bucket holding a local datetime."""
    return label_of(bucket_of(local.toordinal(), interval, week_start), interval)


MAX_OFFSET = timedelta(hours=18)
#: `±HH:MM` (or `±HHMM`): whole minutes, as Elasticsearch is sent them.
OFFSET = re.compile(r"[+-]\d{2}:?\d{2}")
#: Names Python's tz database may list (some are mere files of the system's zoneinfo folder)
#: that Elasticsearch (java.time) does not read.
NOT_IN_JAVA = frozenset({"EST", "HST", "MST", "ROC", "Factory", "localtime", "posixrules"})


@cache  # few distinct zones, and `rows` asks once per bucket key
def parse_zone(zone: str) -> tzinfo:
    """An IANA name or a `±HH:MM` offset (raises ValueError)."""
    if zone and zone[0] in "+-":
        parsed = datetime.strptime(zone, "%z").tzinfo if OFFSET.fullmatch(zone) else None
        # Elasticsearch (java.time) refuses offsets beyond ±18:00.
        if parsed is None or abs(parsed.utcoffset(None)) > MAX_OFFSET:
            raise ValueError(zone)
        return parsed
    if zone in ("UTC", "Z"):
        return UTC
    if zone not in iana_names():
        raise ValueError(zone)
    return ZoneInfo(zone)


@cache
def iana_names() -> frozenset[str]:
    """The zone names both Python and Elasticsearch read: `ZoneInfo` alone would also open
    files such as `localtime` or `posix/Europe/Berlin`, which Elasticsearch refuses."""
    return frozenset(available_timezones()) - NOT_IN_JAVA


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
    #: The least value the field may hold (suppression: what an open lower end reaches).
    lowest = -math.inf

    #: An integer field's least value and one past its largest: a `to` there is sent as an
    #: open end (Elasticsearch may refuse a bound its type cannot hold, such as
    #: `to: 2147483648` on an integer field, when it runs ranges as range queries).
    limits: tuple[int, int] | None = None

    def with_ranges(self, ranges, limits: tuple[int, int] | None = None) -> NumericRanges:
        return replace(self, ranges=tuple(dict.fromkeys(ranges)), limits=limits)

    def one_row_per_bucket(self, options: BucketOptions) -> bool:
        return not self.ranges

    def bucket_aggregation(self, options: BucketOptions) -> dict | None:
        if not self.ranges:
            return None
        ranges = []
        past = self.limits[1] if self.limits else None
        for index, (low, high) in enumerate(self.ranges):
            bounds = {
                "from": low,
                "to": None if past is not None and high is not None and high >= past else high,
            }
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
    lowest = 0


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
        place = event.get(self.field)
        if place is None:
            return {}
        path = [*(event.get(self.ancestors) or ()), place]
        return dict(zip(self._level_names, path, strict=False))  # stops at `depth` levels

    @cached_property
    def _level_names(self) -> tuple[str, ...]:
        return tuple(f"{self.name}_{level}" for level in range(self.depth))


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
        # Every key's group maps every key's list (the first key's derives them all).
        names, whole = self._derived_names
        return {name: {"type": "keyword", "ignore_above": 4096} for name in (*names, whole)}

    @property
    def derives(self) -> bool:
        """The first key derives every key's list and the whole entries, in one pass over the
        entries; the other keys' groups derive nothing of their own."""
        return self.name == self.entry_keys[0]

    def derive(self, event: dict) -> dict:
        if not self.derives:
            return {}
        # An event without entries gets ABSENT too, so its null row is the same bucket as an
        # entry lacking the key (and sorts first, as composite missing buckets do).
        entries = event.get(self.field) or ({},)
        keys, (names, whole) = self.entry_keys, self._derived_names
        if len(entries) == 1:  # nearly every event: no sets, no sorting
            values = [entries[0].get(key, ABSENT) for key in keys]
            derived = {name: [value] for name, value in zip(names, values, strict=True)}
            derived[whole] = [JOINER.join(values)]
            return derived
        derived = {
            name: sorted({entry.get(key, ABSENT) for entry in entries})
            for name, key in zip(names, keys, strict=True)
        }
        derived[whole] = sorted({JOINER.join([entry.get(key, ABSENT) for key in keys]) for entry in entries})
        return derived

    @cached_property
    def _derived_names(self) -> tuple[tuple[str, ...], str]:
        """(each key's derived list, the whole entries' list)."""
        return tuple(f"{self.field}_{key}" for key in self.entry_keys), f"{self.field}_entry"


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
