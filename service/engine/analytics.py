"""Answers a surveillance dashboard needs: rates with Wilson intervals, distinct counts, the
top N values with the rest merged, and comparison with an earlier period.

Everything here is pure (parameters and Elasticsearch answers in, bodies and rows out); the
orchestration in `api/requests.py` runs the searches it plans. Unit tests:
tests/unit/test_analytics.py.

- **Rates.** `rate=result:positive` counts, in each row, the events having that value
  (`numerator`) among the row's events (`denominator` = the row's count), with the Wilson
  score interval at 95 % (`wilson`). For a key of nested entries (cdx `condition`, `result`)
  the same-entry rule holds: in a row keyed by the other key of the entry (`condition`), the
  numerator counts events whose entry *for that condition* has the value, read off the
  derived whole-entry keyword (`derived.results_entry`) through one `filters` bucket per
  value of the other key; without such a key, a `condition` filter applies to the same entry
  (a nested filter), so `condition=mtb&rate=result:positive` is MTB positivity.
- **Distinct counts.** `distinct=device`: exact up to `DISTINCT_EXACT_LIMIT` values per row (a
  `terms` sub-aggregation of that size + 1 returns every value when there are no more, on every
  shard); past it, Elasticsearch's HyperLogLog++ estimate (`cardinality`) with `exact: false`.
- **Top N.** `top=laboratory:10`: a first composite aggregation ranks the values of the field
  by events (exact), then the grouped query replaces that group by `TopValues`, a `filters`
  aggregation with one bucket per kept value, one for the rest (`{"other": K}`) and one for
  events lacking the field, so every figure of a merged row (count, stats, rates, distinct)
  is Elasticsearch's own over exactly its events.
- **Comparison.** `compare=previous|year`: the same query over the period just before (of
  equal length) or a year earlier, rows matched by their keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from .dates import from_iso
from .filters import Bound, DatePrefix, any_of, prefix_bounds
from .groups import (
    ABSENT,
    JOINER,
    AdminLevel,
    BucketOptions,
    DateBuckets,
    EntryKey,
    Group,
    NumericRanges,
    WholeEntry,
)

# -- rates ----------------------------------------------------------------------------------

#: The 97.5th percentile of the standard normal distribution: a two-sided 95 % interval.
Z95 = 1.959963984540054


def wilson(numerator: int, denominator: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of the proportion numerator / denominator (None when the
    denominator is 0):

        p = x / n,  center = (p + z²/2n) / (1 + z²/n),
        half = z / (1 + z²/n) · √(p(1 - p)/n + z²/4n²),  interval = center ± half

    clipped to [0, 1] against rounding (the lower end is exactly 0 when x = 0, the upper
    exactly 1 when x = n)."""
    if not denominator:
        return None
    n, p = denominator, numerator / denominator
    z2 = z * z
    scale = 1 + z2 / n
    center = (p + z2 / (2 * n)) / scale
    half = z / scale * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    low = 0.0 if numerator == 0 else max(0.0, center - half)
    high = 1.0 if numerator == denominator else min(1.0, center + half)
    return (low, high)


@dataclass(frozen=True)
class Rate:
    """One `rate=NAME:VALUE`."""

    label: str
    name: str
    value: str
    #: Raw values of the entry's other key, when rows are keyed by it (`plan` fills them in):
    #: the numerator then has one `filters` bucket per value.
    partners: tuple | None = None
    #: With `top` over that other key: the merged values, for the `{"other": K}` rows.
    partner_others: tuple = ()
    #: The other key of the entry the rows are keyed by ("" when they are not).
    partner_key: str = ""


def rate_value(numerator: int | None, denominator: int | None) -> dict:
    """`{"numerator", "denominator", "value", "ci95"}` (value and ci95 null without events)."""
    interval = wilson(numerator, denominator) if numerator is not None and denominator else None
    return {
        "numerator": numerator,
        "denominator": denominator,
        "value": numerator / denominator if interval else None,
        "ci95": list(interval) if interval else None,
    }


def entry_partner(rate_group: EntryKey, groups) -> str | None:
    """The other key of the rate's nested entry when the rows are keyed by it."""
    partners = [key for key in rate_group.entry_keys if key != rate_group.name]
    keys = {key for group in groups for key in group.keys}
    found = [key for key in partners if key in keys]
    return found[0] if found else None


def join_entry(entry_keys: tuple[str, ...], values: dict) -> str:
    """The derived whole-entry keyword of an entry (`mtb\\x1fpositive`)."""
    return JOINER.join(ABSENT if values.get(key) is None else values[key] for key in entry_keys)


def rate_aggregation(dataset, params, index: int, rate: Rate) -> dict:
    """The sub-aggregation counting a row's numerator."""
    group = dataset.groups[rate.name]
    if not isinstance(group, EntryKey):
        return {"filter": {"term": {group.field: rate.value}}}
    entry_field = f"derived.{group.field}_entry"
    partner = entry_partner(group, params.groups)
    if partner is not None:
        filters = {
            f"p{i}": {
                "term": {entry_field: join_entry(group.entry_keys, {partner: raw, rate.name: rate.value})}
            }
            for i, raw in enumerate(rate.partners or ())
        }
        if rate.partner_others:
            joined = [
                join_entry(group.entry_keys, {partner: raw, rate.name: rate.value})
                for raw in rate.partner_others
            ]
            filters["other"] = terms_any(entry_field, joined)
        # An empty `filters` is refused: one that matches nothing keeps the shape.
        return {"filters": {"filters": filters or {"none": {"bool": {"must_not": [{"match_all": {}}]}}}}}
    # Not keyed by the other key: its filter, if any, holds on the same entry as the value.
    from .translate import entry_query

    items = [
        (flt, params.filters[name])
        for name, flt in dataset.filters.items()
        if flt.nested == group.field and name in params.filters and name != rate.name
    ]
    items.append((dataset.filters[rate.name], [rate.value]))
    return {"filter": entry_query(group.field, items)}


def read_numerator(bucket: dict, index: int, rate: Rate, row: dict) -> int:
    found = bucket[f"rate:{index}"]
    if "buckets" not in found:
        return found["doc_count"]
    value = row[rate.partner_key]
    if isinstance(value, Other):
        name = "other"
    else:
        raw = ABSENT if value is None else value
        try:
            name = f"p{rate.partners.index(raw)}"
        except ValueError:
            return 0
    return found["buckets"].get(name, {}).get("doc_count", 0)


# -- distinct counts ------------------------------------------------------------------------

#: Distinct values counted exactly per row; past it the count is an estimate (`exact: false`).
DISTINCT_EXACT_LIMIT = 1000
#: `cardinality`'s precision threshold for the estimates past the exact limit.
CARDINALITY_PRECISION = 3000


def distinct_aggregations(dataset, names) -> dict:
    aggs = {}
    for name in names:
        path = dataset.distinct_fields[name]
        aggs[f"distinct:{name}"] = {"terms": {"field": path, "size": DISTINCT_EXACT_LIMIT + 1}}
        aggs[f"cardinality:{name}"] = {
            "cardinality": {"field": path, "precision_threshold": CARDINALITY_PRECISION}
        }
    return aggs


def read_distinct(bucket: dict, name: str) -> tuple[frozenset | None, int]:
    """(the values when every one came back, else None; the estimate)."""
    terms = bucket[f"distinct:{name}"]
    estimate = bucket[f"cardinality:{name}"]["value"]
    buckets = terms["buckets"]
    if len(buckets) <= DISTINCT_EXACT_LIMIT and not terms.get("sum_other_doc_count"):
        return frozenset(item["key"] for item in buckets), len(buckets)
    return None, estimate


def merge_distinct(old: tuple | None, new: tuple) -> tuple:
    """Rows folded from several buckets: the union when both are exact, else an estimate
    (the sum: an upper bound)."""
    if old is None:
        return new
    if old[0] is not None and new[0] is not None:
        union = old[0] | new[0]
        if len(union) <= DISTINCT_EXACT_LIMIT:
            return union, len(union)
        return None, len(union)
    return None, old[1] + new[1]


def distinct_value(found: tuple | None) -> dict:
    if found is None:
        return {"count": 0, "exact": True}
    values, estimate = found
    return {"count": len(values) if values is not None else estimate, "exact": values is not None}


# -- the sub-aggregations of a row, and what a row gets from them -----------------------------


def row_aggregations(dataset, params) -> dict:
    """Rates' numerators and distinct counts under each row's bucket (stats are translate's)."""
    aggs = {}
    for index, rate in enumerate(params.rates):
        aggs[f"rate:{index}"] = rate_aggregation(dataset, params, index, rate)
    aggs.update(distinct_aggregations(dataset, params.distinct))
    return aggs


def fold(entry: dict, row: dict, bucket: dict, params) -> None:
    """Add one bucket's rates' numerators and distinct values to a row's extras (`shape.Tally`)."""
    if params.rates:
        numerators = entry.setdefault("rate", {})
        for index, rate in enumerate(params.rates):
            numerators[rate.label] = numerators.get(rate.label, 0) + read_numerator(bucket, index, rate, row)
    if params.distinct:
        found = entry.setdefault("distinct", {})
        for name in params.distinct:
            found[name] = merge_distinct(found.get(name), read_distinct(bucket, name))


def decorate(row: dict, entry: dict, params) -> dict:
    """A row's `rate`, `distinct`, `previous` and `change`, from its extras (`shape.Tally`)."""
    if params.rates:
        numerators = entry.get("rate", {})
        row["rate"] = {
            rate.label: rate_value(numerators.get(rate.label, 0), row["count"]) for rate in params.rates
        }
    if params.distinct:
        found = entry.get("distinct", {})
        row["distinct"] = {name: distinct_value(found.get(name)) for name in params.distinct}
    if params.compare:
        previous = entry.get("previous", 0)
        row["previous"] = {"count": previous}
        row["change"] = change(row["count"], previous)
    return row


def change(count: int | None, previous: int | None) -> float | None:
    """(count - previous) / previous; null when previous is 0 or either is hidden."""
    if count is None or not previous:
        return None
    return (count - previous) / previous


def whole_answer(params, aggregations: dict, total: int) -> dict:
    """Without `group_by`: the figures of the whole answer, beside `total_count` (no
    aggregations at all when no index exists yet: nothing counted)."""
    found = {}
    if params.rates:
        found["rate"] = {
            rate.label: rate_value(aggregations[f"rate:{index}"]["doc_count"] if aggregations else 0, total)
            for index, rate in enumerate(params.rates)
        }
    if params.distinct:
        found["distinct"] = {
            name: distinct_value(read_distinct(aggregations, name) if aggregations else None)
            for name in params.distinct
        }
    return found


# -- top N with the rest merged -------------------------------------------------------------

#: The largest N of `top=FIELD:N`.
MAX_TOP = 1000
#: Values per `terms` clause: Elasticsearch refuses more than `index.max_terms_count` (65,536).
TERMS_CHUNK = 50_000


@dataclass(frozen=True)
class Top:
    """`top=KEY:N`: keep the N values of row key KEY with most events."""

    key: str
    size: int


@dataclass(frozen=True, order=True)
class Other:
    """The row key of the merged values: `{"other": K}`, K values merged."""

    merged: int

    def as_json(self) -> dict:
        return {"other": self.merged}


def json_value(value):
    """A row key value as rows carry it (ranges as lists, merged values as `{"other": K}`)."""
    if isinstance(value, Other):
        return value.as_json()
    if isinstance(value, tuple):
        return list(value)
    return value


def internal_value(value):
    """The inverse of `json_value`: a row key value as a `shape.Tally` keys rows."""
    if isinstance(value, dict) and set(value) == {"other"}:
        return Other(value["other"])
    if isinstance(value, list):
        return tuple(value)
    return value


def rankable(group: Group) -> bool:
    """Groups `top` may rank: one row per value of a field (not dates or ranges)."""
    if isinstance(group, DateBuckets):
        return False
    return not (isinstance(group, NumericRanges) and (group.ranges or not group.by_name))


def terms_any(field: str, values) -> dict:
    """Events having any of `values` (chunked under Elasticsearch's terms limit)."""
    values = list(values)
    chunks = [values[start : start + TERMS_CHUNK] for start in range(0, len(values), TERMS_CHUNK)] or [[]]
    return any_of([{"terms": {field: chunk}} for chunk in chunks])


def source_field(group: Group) -> str:
    return group.source(BucketOptions())["terms"]["field"]


def multi_valued(dataset, group: Group) -> bool:
    """Whether an event may hold several values of the group's field (tag lists, entries)."""
    if isinstance(group, EntryKey | WholeEntry):
        return True
    if isinstance(group, AdminLevel):
        return False
    field = dataset.field_map.get(group.field)
    return field is not None and type(field.type).__name__ in ("Tags", "LongList")


@dataclass(frozen=True)
class TopValues(Group):
    """A ranked group: its kept values, the rest merged (`{"other": K}`) and its null row, as
    one `filters` bucket each under every composite bucket (so counted exactly, as events).

    Over a whole entry (`condition` and `result` grouped together, `top` on one of them) the
    buckets are crossed with the other key's values, each matching one derived whole-entry
    keyword, so each row still comes from one real entry.
    """

    base: Group | None = None
    #: The row key ranked (one of `base.keys`).
    ranked: str = ""
    #: Raw values kept, in rank order, and those merged.
    top: tuple = ()
    others: tuple = ()
    multi: bool = False
    #: Over a whole entry: the raw values of the entry's other key.
    partners: tuple = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return self.base.keys

    def one_row_per_bucket(self, options: BucketOptions) -> bool:
        return False

    @property
    def merged(self) -> Other:
        return Other(len(self.others))

    def bucket_aggregation(self, options: BucketOptions) -> dict | None:
        return {"filters": {"keyed": False, "filters": self.filters()}}

    def filters(self) -> dict:
        if isinstance(self.base, WholeEntry):
            return self._entry_filters()
        field = source_field(self.base)
        found = {f"t{i}": {"term": {field: raw}} for i, raw in enumerate(self.top)}
        missing = {"bool": {"must_not": [{"exists": {"field": field}}]}}
        found["null"] = (
            any_of([{"term": {field: ABSENT}}, missing]) if isinstance(self.base, EntryKey) else missing
        )
        if self.others:
            if self.multi:
                found["other"] = terms_any(field, self.others)
            else:
                found["other"] = {
                    "bool": {
                        "filter": [{"exists": {"field": field}}],
                        "must_not": [{"terms": {field: list(self.top)}}],
                    }
                }
        return found

    def _entry_filters(self) -> dict:
        field = source_field(self.base)
        partner = next(key for key in self.base.entry_keys if key != self.ranked)
        found = {}
        for j, other_raw in enumerate(self.partners):
            for i, raw in enumerate(self.top):
                found[f"t{i}:{j}"] = {
                    "term": {field: join_entry(self.base.entry_keys, {self.ranked: raw, partner: other_raw})}
                }
            found[f"null:{j}"] = {
                "term": {field: join_entry(self.base.entry_keys, {self.ranked: None, partner: other_raw})}
            }
            if self.others:
                joined = [
                    join_entry(self.base.entry_keys, {self.ranked: o, partner: other_raw})
                    for o in self.others
                ]
                found[f"other:{j}"] = terms_any(field, joined)
        return found

    def bucket_rows(self, key: str) -> dict:
        kind, _, partner_index = key.partition(":")
        if kind == "other":
            value = self.merged
        elif kind == "null":
            value = None
        else:
            value = self._format(self.top[int(kind[1:])])
        if not partner_index:
            return {self.ranked: value}
        partner = next(k for k in self.base.entry_keys if k != self.ranked)
        raw = self.partners[int(partner_index)]
        partial = {self.ranked: value, partner: None if raw == ABSENT else raw}
        return {name: partial[name] for name in self.base.keys}

    def _format(self, raw):
        if isinstance(self.base, WholeEntry):
            return None if raw == ABSENT else raw
        return self.base.rows(raw, BucketOptions())[0][self.ranked]

    def sort_key(self, key: str, value):
        if isinstance(value, Other):
            return (2, 0)
        return self.base.sort_key(key, value)

    def domain_rows(self, observed: list[dict], bounds, options: BucketOptions) -> list[dict]:
        """Every kept value and the merged row (crossed with the entry's other key's values)."""
        kept = [self._format(raw) for raw in self.top] + ([self.merged] if self.others else [])
        ranked = {row[self.ranked] for row in observed} | set(kept)
        if len(self.base.keys) == 1:
            return [{self.ranked: value} for value in ranked]
        partner = next(k for k in self.base.keys if k != self.ranked)
        declared = dict(zip(self.base.entry_keys, self.base.key_values or [()] * 2, strict=True))[partner]
        partners = {row[partner] for row in observed if row[partner] is not None} | set(declared)
        rows = {tuple(row[k] for k in self.base.keys): row for row in observed}
        for value in ranked:
            for other in partners:
                row = {self.ranked: value, partner: other}
                rows.setdefault(tuple(row[k] for k in self.base.keys), row)
        return list(rows.values())


def top_group(params) -> tuple[int, Group] | None:
    """(position, group) of the group `top` ranks."""
    if params.top is None:
        return None
    for position, group in enumerate(params.groups):
        if params.top.key in group.keys:
            return position, group
    return None


def ranked_group(dataset, group: Group, key: str) -> Group:
    """The grouping whose composite counts events per value of `key`: the group itself, or
    for a whole entry the entry key alone."""
    if isinstance(group, WholeEntry):
        return dataset.groups[key]
    return group


def lookups(dataset, params) -> dict[str, Group]:
    """Groupings whose every value (and events per value) a query needs before it runs: the
    field `top` ranks, and the other key of an entry when rows are keyed by it (for rates) or
    ranked over a whole entry."""
    needed = {}
    found = top_group(params)
    if found is not None:
        _, group = found
        needed["top"] = ranked_group(dataset, group, params.top.key)
        if isinstance(group, WholeEntry):
            partner = next(key for key in group.entry_keys if key != params.top.key)
            needed[f"values:{partner}"] = dataset.groups[partner]
    for rate in params.rates:
        group = dataset.groups[rate.name]
        if isinstance(group, EntryKey):
            partner = entry_partner(group, params.groups)
            if partner is not None:
                needed[f"values:{partner}"] = dataset.groups[partner]
    return needed


def plan(dataset, params, found: dict[str, list[tuple]]) -> object:
    """`params` with `top`'s group replaced by its `TopValues` and rates given the values of
    their entry's other key; `found` holds (raw value, events) per lookup, in key order."""
    top = top_group(params)
    ranked = None
    if top is not None:
        position, group = top
        counted = [(raw, count) for raw, count in found["top"] if raw is not None and raw != ABSENT]
        base = ranked_group(dataset, group, params.top.key)
        order = sorted(
            counted, key=lambda item: (-item[1], base.sort_key(params.top.key, _formatted(base, item[0])))
        )
        kept = tuple(raw for raw, _ in order[: params.top.size])
        rest = tuple(raw for raw, _ in order[params.top.size :])
        partners = ()
        if isinstance(group, WholeEntry):
            partner = next(key for key in group.entry_keys if key != params.top.key)
            partners = tuple(raw if raw is not None else ABSENT for raw, _ in found[f"values:{partner}"])
        ranked = TopValues(
            group.name,
            field=group.field,
            key=params.top.key,
            base=group,
            ranked=params.top.key,
            top=kept,
            others=rest,
            multi=multi_valued(dataset, base),
            partners=tuple(dict.fromkeys(partners)),
        )
        groups = list(params.groups)
        groups[position] = ranked
        params = replace(params, groups=tuple(groups))
    rates = []
    for rate in params.rates:
        group = dataset.groups[rate.name]
        partner = entry_partner(group, params.groups) if isinstance(group, EntryKey) else None
        if partner is not None:
            values = tuple(ABSENT if raw is None else raw for raw, _ in found[f"values:{partner}"])
            others = ranked.others if ranked is not None and ranked.ranked == partner else ()
            rate = replace(
                rate, partners=tuple(dict.fromkeys(values)), partner_others=others, partner_key=partner
            )
        rates.append(rate)
    return replace(params, rates=tuple(rates))


def _formatted(group: Group, raw):
    if isinstance(group, EntryKey | WholeEntry):
        return None if raw == ABSENT else raw
    return group.rows(raw, BucketOptions())[0][group.key]


def value_counts(pages: list[list[dict]]) -> list[tuple]:
    """(raw value, events) of a one-group composite's buckets."""
    return [(bucket["key"]["g0"], bucket["doc_count"]) for buckets in pages for bucket in buckets]


def lookup_params(params, group: Group):
    """The query counting events per value of `group` under the same filters."""
    return replace(
        params,
        groups=(group,),
        order=(),
        fill=None,
        stats=(),
        rates=(),
        distinct=(),
        top=None,
        compare=None,
        page_size=None,
        cursor=None,
        min_count=None,
    )


# -- period comparison ----------------------------------------------------------------------

TICK = timedelta(milliseconds=1)


def time_filters(dataset, filters: dict) -> dict:
    """The filters bounding the dataset's main time: name → filter."""
    return {
        name: dataset.filters[name]
        for name in filters
        if dataset.filters[name].field == dataset.time_field
        and isinstance(dataset.filters[name], Bound | DatePrefix)
    }


def period(dataset, filters: dict) -> tuple[datetime | None, datetime | None]:
    """The first and last millisecond (inclusive) the main-time filters allow."""
    low = high = None
    for name, flt in time_filters(dataset, filters).items():
        value = filters[name]
        if isinstance(flt, DatePrefix):
            start, end = prefix_bounds(value) if isinstance(value, str) else value
            ends = [(from_iso(start), "low")] + ([(from_iso(end) - TICK, "high")] if end else [])
        elif flt.op == "gte":
            ends = [(from_iso(value), "low")]
        elif flt.op == "gt":
            ends = [(rounded_up(value) + TICK, "low")]
        elif flt.op == "lte":
            ends = [(rounded_up(value), "high")]
        else:
            ends = [(from_iso(value) - TICK, "high")]
        for moment, end in ends:
            if end == "low":
                low = moment if low is None else max(low, moment)
            else:
                high = moment if high is None else min(high, moment)
    return low, high


def rounded_up(text: str) -> datetime:
    """The last millisecond a `lte` or `gt` bound means: Elasticsearch fills the components a
    datetime leaves out with their largest value there (`2024-04-20` is 23:59:59.999 that day,
    `…T10:00` is 10:00:59.999), and with their smallest for `gte` and `lt`."""
    moment = from_iso(text)
    clock = text[11:] if len(text) > 10 else ""
    if not clock:
        unit = timedelta(days=1)
    elif len(clock) < 6 or clock[5:6] != ":":  # HH:MM, maybe with an offset
        unit = timedelta(minutes=1)
    elif clock[8:9] != ".":  # HH:MM:SS
        unit = timedelta(seconds=1)
    else:
        return moment
    return moment + unit - TICK


def year_earlier(moment: datetime) -> datetime:
    """The same date a year earlier (29 February: the 28th); ValueError before year 1."""
    if moment.month == 2 and moment.day == 29:
        moment = moment.replace(day=28)
    return moment.replace(year=moment.year - 1)


def previous_filters(dataset, filters: dict, how: str) -> dict:
    """The filters with the main time moved to the compared period: `previous`, the
    equal-length period ending just before this one starts; `year`, the same dates a year
    earlier (29 February: the 28th). The period is written with the dataset's own lower and
    upper bound filters on that time (`since` / `until`, `server_time__gt` / `__lt`)."""
    low, high = period(dataset, filters)
    if how == "previous":
        length = high - low + TICK
        low, high = low - length, low - TICK
    else:
        low, high = year_earlier(low), year_earlier(high)
    moved = {name: value for name, value in filters.items() if name not in time_filters(dataset, filters)}
    lower, upper = bound_filters(dataset)
    moved[lower.name] = _iso(low - TICK) if lower.op == "gt" else _iso(low)
    moved[upper.name] = _iso(high + TICK) if upper.op == "lt" else _iso(high)
    return moved


def bound_filters(dataset) -> tuple[Bound, Bound]:
    """The dataset's lower and upper bound filters on its main time."""
    found = [
        flt for flt in dataset.filters.values() if isinstance(flt, Bound) and flt.field == dataset.time_field
    ]
    lower = next(flt for flt in found if flt.op in ("gt", "gte"))
    upper = next(flt for flt in found if flt.op in ("lt", "lte"))
    return lower, upper


def _iso(moment: datetime) -> str:
    """With its milliseconds always written, so Elasticsearch reads no bound as rounded."""
    return moment.isoformat(timespec="milliseconds")


def previous_params(dataset, params):
    """The query over the compared period: counts only, the same rows (and `top`'s values)."""
    return replace(
        params,
        filters=previous_filters(dataset, params.filters, params.compare),
        stats=(),
        rates=(),
        distinct=(),
        compare=None,
        order=(),
        fill=None,
        page_size=None,
        cursor=None,
        min_count=None,
    )


def add_previous(tally, previous):
    """Rows of both periods (`shape.Tally`s): each row's previous count among its extras; rows
    only in the previous period with count 0."""
    counts, extras = dict(tally.counts), dict(tally.extras)
    for key, count in previous.counts.items():
        counts.setdefault(key, 0)
        extras[key] = {**extras.get(key, {}), "previous": count}
    return replace(tally, counts=counts, extras=extras)


# -- paging rows computed whole -------------------------------------------------------------


def sort_tuple(params, row: dict) -> tuple:
    return tuple(
        group.sort_key(key, internal_value(row[key])) for group in params.groups for key in group.keys
    )


def page_of(params, rows: list[dict], after: list | None, size: int) -> tuple[list[dict], list | None]:
    """The `size` rows (in key order) after the row keyed `after`; and the last row's key
    when more follow."""
    names = [key for group in params.groups for key in group.keys]
    start = 0
    if after is not None:
        if len(after) != len(names):
            raise ValueError("the cursor belongs to another query")
        mark = sort_tuple(params, dict(zip(names, after, strict=True)))
        start = next((i for i, row in enumerate(rows) if sort_tuple(params, row) > mark), len(rows))
    page = rows[start : start + size]
    more = start + size < len(rows)
    return page, [page[-1][name] for name in names] if page and more else None


# -- small-count suppression ----------------------------------------------------------------
#
# engine/suppression.py hides rows (and totals, stats) so that no count of 1 to k-1 events can
# be read or worked out from an answer; the figures added here follow the same rule, applied
# after it (`suppress_figures`):
#
# - a hidden row's rates, distinct counts, previous count and change are hidden;
# - a rate's numerator counts events having the value and `denominator - numerator` those
#   lacking it: when either is 1 to k-1 the numerator, value and interval are hidden (as
#   suppression.py withholds stats whose having or lacking count is small);
# - a previous count of 1 to k-1 is hidden, and `change` with either count;
# - among range rows alike but for their range (suppression.overlapping), a numerator or a
#   previous count linked to a hidden one through shared values is hidden too, else the
#   difference of two overlapping rows' figures would give it away.


def small(count: int | None, min_count: int) -> bool:
    return count is not None and 0 < count < min_count


def suppress_answer(result: dict, min_count: int, params) -> dict:
    """The shaped answer as `min_count` k lets it be seen: suppression.py's rule, then the
    figures added here (`suppress_figures`).

    With `top`, the ranking says that every merged value has at most as many events as each
    kept one; beside a hidden row of a kept value, merged rows' counts could bound its count
    exactly (k = 3: a kept value hidden, 2 values merged into a row of 4, each at most the
    kept one's 1 or 2, so all are 2). So when a kept value's row is hidden, every `{"other": K}`
    row is hidden too (complementary suppression), whatever its count."""
    from .suppression import suppress_answer as suppressed

    shown = suppressed(result, min_count, params)
    ranked = next((group for group in params.groups if isinstance(group, TopValues)), None)
    if ranked is not None and shown["events"]:
        key = ranked.ranked

        def merged(row: dict) -> bool:
            return isinstance(internal_value(row[key]), Other)

        kept_hidden = any(
            row.get("suppressed") is True and row[key] is not None and not merged(row)
            for row in shown["events"]
        )
        if kept_hidden and any(merged(row) and row.get("suppressed") is not True for row in shown["events"]):
            shown = suppressed(result, min_count, params, also_hidden=merged)
    return suppress_figures(result, shown, min_count, params)


def suppress_figures(before: dict, after: dict, min_count: int, params) -> dict:
    """`after` (suppression.py's answer, from the shaped answer `before`) with the rates,
    distinct counts and previous counts its hidden counts would give away hidden too."""
    if params.grouped and params.page_size != 0 and before["events"]:
        return {**after, "events": suppress_rows(before["events"], after["events"], min_count, params)}
    return suppress_whole(before, after, min_count)


def row_key(params, row: dict) -> tuple:
    return tuple(internal_value(row[key]) for group in params.groups for key in group.keys)


def suppress_rows(before: list[dict], after: list[dict], min_count: int, params) -> list[dict]:
    if not any(name in before[0] for name in ("rate", "distinct", "previous")):
        return after
    from .suppression import overlapping

    def hidden_figures(figure) -> set:
        """Keys of the rows whose figure is small, or linked to a small one by ranges."""
        primary = {i for i, row in enumerate(before) if any(small(n, min_count) for n in figure(row))}
        if primary:
            projected = [{**row, "count": next(iter(figure(row)))} for row in before]
            primary |= overlapping(projected, primary, params)
        return {row_key(params, before[i]) for i in primary}

    numerators = {
        rate.label: hidden_figures(
            lambda row, label=rate.label: (
                row["rate"][label]["numerator"],
                row["count"] - row["rate"][label]["numerator"],
            )
        )
        for rate in params.rates
    }
    previous = hidden_figures(lambda row: (row["previous"]["count"],)) if params.compare else set()
    rows = []
    for row in after:
        key, hidden = row_key(params, row), row.get("suppressed") is True
        row = dict(row)
        if "rate" in row:
            row["rate"] = {
                label: hidden_rate(None)
                if hidden
                else hidden_rate(found["denominator"])
                if key in numerators[label]
                else found
                for label, found in row["rate"].items()
            }
        if "distinct" in row and hidden:
            row["distinct"] = dict.fromkeys(row["distinct"])
        if "previous" in row:
            if key in previous:
                row["previous"] = {"count": None}
            if hidden or key in previous:
                row["change"] = None
        rows.append(row)
    return rows


def hidden_rate(denominator: int | None) -> dict:
    return {"numerator": None, "denominator": denominator, "value": None, "ci95": None}


def suppress_whole(before: dict, after: dict, min_count: int) -> dict:
    """The whole answer's figures (no rows): hidden with a total suppression hides; a
    numerator (or its complement) or previous count of 1 to k-1 hidden like a count."""
    names = [name for name in ("rate", "distinct", "previous", "change") if name in before]
    if not names:
        return after
    total = after["total_count"]
    hidden = total is None and before["total_count"] is not None
    figures = {}
    if "rate" in before:
        figures["rate"] = {
            label: hidden_rate(None if hidden else total)
            if hidden or small(found["numerator"], min_count) or small(total - found["numerator"], min_count)
            else found
            for label, found in before["rate"].items()
        }
    if "distinct" in before:
        figures["distinct"] = dict.fromkeys(before["distinct"]) if hidden else before["distinct"]
    if "previous" in before:
        gone = small(before["previous"]["count"], min_count)
        figures["previous"] = {"count": None} if gone else before["previous"]
        figures["change"] = None if hidden or gone else before["change"]
    return {**after, **figures}
