"""`shape.rows`, `shape.zero_fill` and `shape.add_buckets` work column by column for speed;
these hold them to their definition, written the plain way, one row at a time, over random
accumulators, orders and buckets."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import ClassVar

from hypothesis import given, settings
from hypothesis import strategies as st

from service.datasets.cdx import CDX
from service.engine import analytics, shape
from service.engine.groups import Terms
from service.engine.params import query_schema

Schema = query_schema(CDX)
AGES = [[0, 5], [5, 15], [15, None]]
DELAYS = [[0, 24], [24, None]]
#: Each group's row keys as accumulators hold them (ranges as tuples), nulls included.
VALUES = {
    "gender": [None, "female", "male", "other"],
    "result": [None, "error", "negative", "positive"],
    "start_time": [None, "0001-W01", "2024-W52", "2025-W01", "2025-W10", "9999-W52"],
    "age": [tuple(r) for r in AGES],
}
GROUP_BY = {"gender": "gender", "result": "result", "start_time": "week(start_time)", "age": {"age": AGES}}


def reference_rows(params, tally: shape.Tally) -> list[dict]:
    """The definition: every key ascending (nulls first), or `order_by`'s sorts applied last
    to first on the tally's order; ranges as lists."""
    names = shape.row_names(params)
    groups = [group for group in params.groups for _ in group.keys]
    entries = list(tally.counts.items())

    def by_key(at):
        return lambda item: groups[at].sort_key(names[at], item[0][at])

    if not params.order:
        entries.sort(key=lambda item: tuple(by_key(at)(item) for at in range(len(names))))
    for name, descending in reversed(params.order):
        by = (lambda item: item[1]) if name == "count" else by_key(names.index(name))
        entries.sort(key=by, reverse=descending)
    rows = []
    for key, count in entries:
        row = {name: analytics.json_value(value) for name, value in zip(names, key, strict=True)}
        row["count"] = count
        if params.stats:
            stats = tally.extras.get(key, {}).get("stats", {})
            row["stats"] = {name: stats.get(name) for name in params.stats}
        rows.append(row)
    return rows


@st.composite
def grouped_answers(draw, values=VALUES):
    names = draw(st.lists(st.sampled_from(list(values)), min_size=1, max_size=4, unique=True))
    orders = draw(st.lists(st.sampled_from([*names, "count"]), max_size=3, unique=True))
    order_by = [("-" if draw(st.booleans()) else "") + name for name in orders]
    body = {"group_by": [GROUP_BY[name] for name in names]}
    if order_by:
        body["order_by"] = order_by
    if draw(st.booleans()):
        body["stats"] = ["age"]
    params = Schema().load(body)
    keys = draw(st.lists(st.tuples(*(st.sampled_from(values[name]) for name in names)), unique=True))
    tally = shape.Tally()
    for key in keys:
        tally.counts[key] = draw(st.integers(0, 5))
        if draw(st.booleans()):
            stats = {"age": {"count": 1, "min": 3, "max": 3, "sum": 3, "avg": 3.0, "percentiles": {}}}
            tally.extras[key] = {"stats": stats}
    return params, tally


@settings(max_examples=300, deadline=None)
@given(grouped_answers())
def test_rows_are_the_accumulator_ordered_as_defined(answer):
    params, tally = answer
    assert shape.rows(params, tally) == reference_rows(params, tally)


def reference_zero_fill(params, tally: shape.Tally) -> dict:
    """The definition: each group's domain from every row's partial row, then every
    combination of the domains not yet counted added with count 0, in product order."""
    names = shape.row_names(params)
    observed = [dict(zip(names, key, strict=True)) for key in tally.counts]
    domains = []
    for group in params.groups:
        seen = [{name: row[name] for name in group.keys} for row in observed]
        domain = group.domain_rows(seen, (None, None), params.bucket_options)
        domains.append([shape._values(row) for row in domain])
    filled = dict(tally.counts)
    for combination in itertools.product(*domains):
        filled.setdefault(sum(combination, ()), 0)
    return filled


#: Weeks near each other: a domain from year 1 to 9999 would be refused (tested elsewhere),
#: after making its weeks.
NEAR = {**VALUES, "start_time": [None, "2024-W51", "2025-W01", "2025-W10"]}


@settings(max_examples=300, deadline=None)
@given(grouped_answers(NEAR))
def test_zero_fill_adds_every_combination_of_the_domains_in_order(answer):
    params, tally = answer
    filled = shape.zero_fill(params, tally, {})
    assert list(filled.counts.items()) == list(reference_zero_fill(params, tally).items())
    assert filled.extras == tally.extras


def reference_add_buckets(params, buckets: list[dict]) -> dict:
    """The definition: each (non-empty) leaf of each bucket adds its count to every row its
    source values and nested buckets cross into."""
    options = params.bucket_options
    acc = {}
    for bucket in buckets:
        parts = []
        for i, group in enumerate(params.groups):
            if group.bucket_aggregation(options) is None:
                rows = group.rows(bucket["key"][f"g{i}"], options)
                parts.append([shape._values(row) for row in rows])
            else:
                parts.append(None)
        nested = [i for i, part in enumerate(parts) if part is None]
        for leaf, chosen in leaves_of(bucket, params, nested):
            crossed = [[chosen[i]] if part is None else part for i, part in enumerate(parts)]
            for combination in itertools.product(*crossed):
                key = sum(combination, ())
                acc[key] = acc.get(key, 0) + leaf["doc_count"]
    return acc


def leaves_of(bucket: dict, params, nested: list[int]):
    if not nested:
        yield bucket, {}
        return
    i, rest = nested[0], nested[1:]
    for sub in bucket[f"g{i}"]["buckets"]:
        if sub["doc_count"]:
            values = shape._values(params.groups[i].bucket_rows(sub["key"]))
            for leaf, chosen in leaves_of(sub, params, rest):
                yield leaf, {i: values, **chosen}


@dataclass(frozen=True)
class Split(Terms):
    """A grouping some of whose values stand for no row, or for two."""

    SPLIT: ClassVar[dict] = {"none": [], "two": ["female", "male"]}

    def rows(self, raw, options):
        return [{self.key: value} for value in self.SPLIT.get(raw, [raw])]


@st.composite
def composite_pages(draw):
    """Composite buckets of `gender` and `result`, with age and delay ranges nested under each
    (none, either or both, one level in the other), some empty. Gender may be grouped by
    `Split`, whose values stand for no row or two."""
    ranged = draw(st.lists(st.sampled_from(["age", "report_delay_hours"]), unique=True))
    names = draw(st.permutations(["gender", "result", *ranged]))
    ranges = {"age": AGES, "report_delay_hours": DELAYS}
    params = Schema().load({"group_by": [{n: ranges[n]} if n in ranges else GROUP_BY[n] for n in names]})
    if draw(st.booleans()):
        groups = [Split(g.name, g.field, g.key) if g.key == "gender" else g for g in params.groups]
        params = replace(params, groups=tuple(groups))
    nested = [(i, ranges[name]) for i, name in enumerate(names) if name in ranges]
    buckets = []
    for _ in range(draw(st.integers(0, 8))):
        bucket = {"key": {}, "doc_count": draw(st.integers(1, 9))}
        for i, name in enumerate(names):
            if name not in ranges:
                values = VALUES[name] + (list(Split.SPLIT) if name == "gender" else [])
                bucket["key"][f"g{i}"] = draw(st.sampled_from(values))
        fill_nested(draw, bucket, nested)
        buckets.append(bucket)
    return params, buckets


def fill_nested(draw, bucket: dict, nested: list) -> None:
    """Sub-buckets of each nested level under `bucket`, counts drawn (0: an empty leaf)."""
    if not nested:
        return
    (i, ranges), rest = nested[0], nested[1:]
    subs = [{"key": str(at), "doc_count": draw(st.integers(0, 3))} for at in range(len(ranges))]
    for sub in subs:
        fill_nested(draw, sub, rest)
    bucket[f"g{i}"] = {"buckets": subs}


@settings(max_examples=300, deadline=None)
@given(composite_pages())
def test_buckets_fold_into_the_rows_they_stand_for(page):
    params, buckets = page
    tally = shape.add_buckets(params, buckets)
    assert list(tally.counts.items()) == list(reference_add_buckets(params, buckets).items())
    assert tally.extras == {}
