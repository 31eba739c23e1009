"""Pure shaping: Elasticsearch responses in, API rows out."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
from collections import deque
from dataclasses import dataclass, field, replace
from operator import itemgetter, setitem
from types import MappingProxyType

from . import analytics
from .dates import LAST_MS, epoch_ms, from_iso
from .filters import Bound, DatePrefix, prefix_bounds
from .groups import MAX_FILLED_ROWS, ParameterError
from .params import QueryParams
from .registry import Dataset


def events(dataset: Dataset, response: dict) -> list[dict]:
    return [dataset.to_event(hit["_source"]) for hit in response["hits"]["hits"]]


def total(response: dict) -> int:
    return response["hits"]["total"]["value"]


def buckets_of(aggregation: dict) -> list[dict]:
    """The buckets of a grouped answer: composite buckets, or the one `filter` bucket holding
    every event when every group is nested (see `translate.group_body`)."""
    if "buckets" in aggregation or "doc_count" not in aggregation:
        return aggregation.get("buckets", [])
    return [{**aggregation, "key": {}}]


def row_names(params: QueryParams) -> tuple[str, ...]:
    """The keys of a grouped row, in `group_by` order; `add_buckets` keys rows by their values."""
    return tuple(key for group in params.groups for key in group.keys)


@dataclass
class Tally:
    """Grouped rows as buckets fold into them: each row's count by its key (its values in
    `row_names` order), in the order first met; and, only for a query asking more than counts,
    what else its buckets carried (`stats`, rates' numerators, distinct values, the previous
    period's count) by the same key.

    Counts are plain integers because a grouped answer folds thousands of rows: with a dict
    per row, folding the bench's 5,441 rows took 5.2 to 5.5 ms, against 3.3 to 3.9 now
    (in-process, the least of 40 to 60; docs/benchmarks.md)."""

    counts: dict[tuple, int] = field(default_factory=dict)
    extras: dict[tuple, dict] = field(default_factory=dict)


#: What a row without extras has of them.
NO_EXTRAS = MappingProxyType({})


def add_buckets(params: QueryParams, buckets: list[dict], tally: Tally | None = None) -> Tally:
    """Fold buckets into `tally` (a new one if None) and return it.

    A composite bucket stands for one row per bucket of its nested aggregations (age ranges),
    and a source value may stand for several rows or none; rows meeting the same key add up,
    and so do their statistics.
    """
    tally = Tally() if tally is None else tally
    counts, extras = tally.counts, tally.extras
    options = params.bucket_options
    names = row_names(params)
    nested = [(i, g) for i, g in enumerate(params.groups) if g.bucket_aggregation(options) is not None]
    sources = [(i, g, f"g{i}") for i, g in enumerate(params.groups) if (i, g) not in nested]
    # Anything besides counts is folded per row; counts alone (the usual query) are added here.
    folds = bool(params.stats or params.rates or params.distinct)
    # Many buckets share a value (a week, a gender): each group's values are formatted once.
    formatted: list[dict] = [{} for _ in params.groups]
    parts: list = [[()]] * len(params.groups)
    one_row_each = True  # so far every source value formatted stands for exactly one row
    for bucket in buckets:
        key = bucket["key"]
        for i, group, name in sources:
            raw = key[name]
            part = formatted[i].get(raw)
            if part is None:
                part = formatted[i][raw] = [_values(row) for row in group.rows(raw, options)]
                one_row_each = one_row_each and len(part) == 1
            parts[i] = part
        for row_key, leaf in _keyed_leaves(bucket, parts, nested, formatted, one_row_each):
            counts[row_key] = counts.get(row_key, 0) + leaf["doc_count"]
            if folds:
                _fold(extras.setdefault(row_key, {}), row_key, leaf, params, names)
    return tally


def _values(partial: dict) -> tuple:
    return tuple(tuple(value) if isinstance(value, list) else value for value in partial.values())


def _keyed_leaves(
    bucket: dict, parts: list, nested: list, formatted: list, one_row_each: bool
) -> list[tuple[tuple, dict]]:
    """(row key, its innermost bucket) for every row a composite bucket stands for: each
    non-empty leaf of its nested aggregations, crossed with the rows its source values stand
    for (`parts`: each group's values, in group order; the nested groups' are set here).
    `one_row_each`: every source value in `parts` stands for exactly one row."""
    if one_row_each and len(nested) <= 1:
        # Nearly every bucket: each source value is one row, and at most one nested level
        # (ranges). A leaf's key is the sources' values with its own put in their place.
        slots = [part[0] for part in parts]
        if not nested:
            return [(sum(slots, ()), bucket)]
        ((i, group),) = nested
        before, after, known = sum(slots[:i], ()), sum(slots[i + 1 :], ()), formatted[i]
        return [
            (before + (known.get(sub["key"]) or _nested_values(formatted, i, group, sub)) + after, sub)
            for sub in bucket[f"g{i}"]["buckets"]
            if sub["doc_count"]
        ]
    keyed = []
    for chosen, leaf in _leaves(bucket, nested, (), formatted) if nested else (((), bucket),):
        for i, values in chosen:
            parts[i] = [values]
        keyed.extend((sum(combination, ()), leaf) for combination in itertools.product(*parts))
    return keyed


def _nested_values(formatted: list, i: int, group, sub: dict) -> tuple:
    """A nested bucket's row values (never empty), formatted once per key."""
    values = formatted[i].get(sub["key"])
    if values is None:
        values = formatted[i][sub["key"]] = _values(group.bucket_rows(sub["key"]))
    return values


def _leaves(bucket: dict, nested: list, chosen: tuple, formatted: list):
    """(the nested groups' key values, the innermost bucket) for every non-empty leaf of a
    bucket with nested aggregations (`nested` is not empty)."""
    (i, group), rest = nested[0], nested[1:]
    for sub in bucket[f"g{i}"]["buckets"]:
        if sub["doc_count"]:
            values = _nested_values(formatted, i, group, sub)
            if rest:
                yield from _leaves(sub, rest, (*chosen, (i, values)), formatted)
            else:  # the innermost level: no generator per leaf
                yield (*chosen, (i, values)), sub


def _fold(entry: dict, key: tuple, bucket: dict, params: QueryParams, names: tuple) -> None:
    """A bucket's statistics, rates and distinct values added to its row's extras."""
    if params.stats:
        stats = entry.setdefault("stats", {})
        for name in params.stats:
            stats[name] = merge_stats(stats.get(name), read_stats(bucket, name))
    if params.rates or params.distinct:
        analytics.fold(entry, dict(zip(names, key, strict=True)), bucket, params)


def read_stats(aggregations: dict, name: str) -> dict:
    """One field's summary from a bucket's (or a search's) sub-aggregations."""
    basic = aggregations[f"stats:{name}"]
    percentiles = aggregations[f"percentiles:{name}"]["values"]
    return {
        "count": basic["count"],
        "min": basic["min"],
        "max": basic["max"],
        "sum": basic["sum"],
        "avg": basic["avg"],
        "percentiles": {key.removesuffix(".0"): value for key, value in percentiles.items()},
    }


def merge_stats(old: dict | None, new: dict) -> dict:
    """Exact figures add up across buckets; percentiles cannot be merged, so a row folded from
    several buckets reports them as null."""
    if old is None or not old["count"]:
        return new
    if not new["count"]:
        return old
    count, total = old["count"] + new["count"], old["sum"] + new["sum"]
    return {
        "count": count,
        "min": min(old["min"], new["min"]),
        "max": max(old["max"], new["max"]),
        "sum": total,
        "avg": total / count,
        "percentiles": dict.fromkeys(old["percentiles"]),
    }


def rows(params: QueryParams, tally: Tally, bounds: dict | None = None) -> list[dict]:
    """Rows with their counts (and stats), zero-filled if asked, ordered by `order_by` (keys or
    count), else by the keys in bucket order (nulls first)."""
    if params.fill == "zero":
        tally = zero_fill(params, tally, bounds or {})
    names = row_names(params)
    groups = [group for group in params.groups for _ in group.keys]
    keys, counts = list(tally.counts), list(tally.counts.values())
    # Column by column, each step a C loop over the rows (a grouped answer holds thousands):
    # a Python step per row made this function most of a new grouped query's cost.
    columns = [list(map(itemgetter(at), keys)) for at in range(len(names))]
    distinct = [set(column) for column in columns]
    # Each distinct value's sort key is computed once, not once per row.
    sort_keys = [
        list(map({value: group.sort_key(name, value) for value in values}.__getitem__, column))
        for name, group, values, column in zip(names, groups, distinct, columns, strict=True)
    ]
    order = list(range(len(keys)))
    if not params.order:  # by every key, ascending: one pass
        order.sort(key=list(zip(*sort_keys, strict=True)).__getitem__ if names else None)
    for name, descending in reversed(params.order):
        by = counts if name == "count" else sort_keys[names.index(name)]
        order.sort(key=by.__getitem__, reverse=descending)
    # Ranges are tuples in keys (hashable) and lists in rows; merged values `{"other": K}`.
    # Rows share each distinct value's JSON form: nothing changes a row's values in place.
    for at, values in enumerate(distinct):
        if any(type(v) is tuple or type(v) is analytics.Other for v in values):
            columns[at] = list(map({v: analytics.json_value(v) for v in values}.__getitem__, columns[at]))
    # Each row a copy of one template, its values set a column at a time: the copies share the
    # template's key table, so this costs half of `dict(zip(names, values))` per row (1.1
    # against 2.1 ms for the bench's 5,441 rows).
    template = dict.fromkeys((*names, "count"))
    made = list(map(dict.copy, itertools.repeat(template, len(keys))))
    for name, column in zip(template, (*columns, counts), strict=True):
        deque(map(setitem, made, itertools.repeat(name), column), maxlen=0)
    result = list(map(made.__getitem__, order))
    decorated = params.rates or params.distinct or params.compare
    if params.stats or decorated:
        for row, key in zip(result, map(keys.__getitem__, order), strict=True):
            entry = tally.extras.get(key, NO_EXTRAS)
            if params.stats:
                stats = entry.get("stats", NO_EXTRAS)
                row["stats"] = {name: stats.get(name) for name in params.stats}
            if decorated:
                analytics.decorate(row, entry, params)
    return result


def zero_fill(params: QueryParams, tally: Tally, bounds: dict) -> Tally:
    """`tally` with a count of 0 for every combination of the groups' domains not yet in it."""
    options = params.bucket_options
    domains, at = [], 0
    for group in params.groups:
        # The group's partial rows seen, each once, in the order first seen: thousands of rows
        # share a few values, and a domain is made of the distinct ones.
        width = len(group.keys)
        seen = [
            dict(zip(group.keys, values, strict=True))
            for values in dict.fromkeys(key[at : at + width] for key in tally.counts)
        ]
        at += width
        domain = group.domain_rows(seen, bounds.get(group.field, (None, None)), options)
        domains.append([_values(row) for row in domain])
    size = 1
    for domain in domains:
        size *= max(1, len(domain))
    if size > MAX_FILLED_ROWS:
        raise ParameterError(
            "fill",
            f"fill=zero would make {size} rows, over the {MAX_FILLED_ROWS} it may make; narrow the filters.",
        )
    filled = dict(tally.counts)
    for combination in itertools.product(*domains):
        filled.setdefault(sum(combination, ()), 0)
    return replace(tally, counts=filled)


def date_bounds(dataset: Dataset, params: QueryParams) -> dict:
    """field → (lowest, highest) instant the filters allow, in epoch milliseconds (as
    Elasticsearch stores dates; None: open), for zero-filling date buckets."""
    bounds: dict[str, list] = {}
    for name, value in params.filters.items():
        flt = dataset.filters[name]
        if isinstance(flt, DatePrefix):
            start, end = prefix_bounds(value)
            low, high = epoch_ms(from_iso(start)), epoch_ms(from_iso(end)) - 1 if end else LAST_MS
        elif isinstance(flt, Bound) and flt.field_type.es_type == "date":
            at = epoch_ms(from_iso(value))
            low, high = (
                (at + (flt.op == "gt"), None) if flt.op in ("gt", "gte") else (None, at - (flt.op == "lt"))
            )
        else:
            continue
        pair = bounds.setdefault(flt.field, [None, None])
        if low is not None:
            pair[0] = low if pair[0] is None else max(pair[0], low)
        if high is not None:
            pair[1] = high if pair[1] is None else min(pair[1], high)
    return {field: tuple(pair) for field, pair in bounds.items()}


def fingerprint(dataset: Dataset, params: QueryParams) -> str:
    """Identifies a query (filters, order, groups), so a cursor is only used with its own query."""
    identity = (
        dataset.name,
        sorted(params.filters.items()),
        params.order,
        params.groups,
        params.bucket_options,
    )
    if params.top or params.compare:  # rows computed whole: other rows than the plain query's
        identity += (params.top, params.compare)
    text = repr(identity)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_cursor(sort_values: list | dict, query_fingerprint: str) -> str:
    raw = json.dumps({"after": sort_values, "q": query_fingerprint}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, query_fingerprint: str) -> list | dict:
    """The `search_after` values of a cursor (raises ValueError if it is not this query's)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        after = data["after"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError("malformed cursor") from exc
    if data.get("q") != query_fingerprint or not isinstance(after, list | dict):
        raise ValueError("the cursor belongs to another query")
    values = after.values() if isinstance(after, dict) else after
    if not all(map(_sort_value, values)):
        raise ValueError("malformed cursor")
    return after


def _sort_value(value) -> bool:
    """Whether a value is one Elasticsearch writes in sort and `after` keys: a forged integer
    past 64 bits, or a non-finite number, would fail in the client or the node instead."""
    if value is None or isinstance(value, str | bool):
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**64
    return isinstance(value, float) and math.isfinite(value)
