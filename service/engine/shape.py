"""Pure shaping: Elasticsearch responses in, API rows out."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from datetime import timedelta

from ..datasets.fields import from_iso
from ..datasets.registry import Dataset
from .filters import Bound, DatePrefix, prefix_bounds
from .params import QueryParams


def events(dataset: Dataset, response: dict) -> list[dict]:
    return [dataset.to_event(hit["_source"]) for hit in response["hits"]["hits"]]


def total(response: dict) -> int:
    return response["hits"]["total"]["value"]


def add_buckets(params: QueryParams, buckets: list[dict], acc: dict) -> dict:
    """Fold composite buckets into `acc` (row key tuple → {"count", "stats"}).

    One bucket may stand for several rows (overlapping age ranges) or none (an age outside
    every range); buckets folding into the same row add up, and so do their statistics.
    """
    options = params.bucket_options
    for bucket in buckets:
        partials = [group.rows(bucket["key"][f"g{i}"], options) for i, group in enumerate(params.groups)]
        for combination in itertools.product(*partials):
            row = {}
            for partial in combination:
                row.update(partial)
            key = tuple((name, _hashable(value)) for name, value in row.items())
            entry = acc.setdefault(key, {"count": 0, "stats": {}})
            entry["count"] += bucket["doc_count"]
            for name in params.stats:
                entry["stats"][name] = merge_stats(entry["stats"].get(name), read_stats(bucket, name))
    return acc


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


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


def rows(params: QueryParams, acc: dict, bounds: dict | None = None) -> list[dict]:
    """Rows with their counts (and stats), zero-filled if asked, ordered by `order_by` (keys or
    count), else by the keys in bucket order (nulls first)."""
    if params.fill == "zero":
        acc = zero_fill(params, acc, bounds or {})
    result = []
    for key, entry in acc.items():
        row = {name: list(value) if isinstance(value, tuple) else value for name, value in key}
        row["count"] = entry["count"]
        if params.stats:
            row["stats"] = {name: entry["stats"].get(name) for name in params.stats}
        result.append(row)
    sort_keys = {key: group for group in params.groups for key in group.keys}
    order = list(params.order) or [(key, False) for key in sort_keys]
    for name, descending in reversed(order):
        if name == "count":
            result.sort(key=lambda row: row["count"], reverse=descending)
        else:
            group = sort_keys[name]
            result.sort(key=lambda row, n=name, g=group: g.sort_key(n, row[n]), reverse=descending)
    return result


#: Zero-filling crosses every group's values; beyond this many rows it is refused.
MAX_FILLED_ROWS = 200_000


def zero_fill(params: QueryParams, acc: dict, bounds: dict) -> dict:
    """`acc` plus a count-0 entry for every combination of the groups' domains not yet in it."""
    observed = [dict(key) for key in acc]
    options = params.bucket_options
    domains = []
    for group in params.groups:
        seen = [{name: row[name] for name in group.keys} for row in observed]
        domains.append(group.domain_rows(seen, bounds.get(group.field, (None, None)), options))
    size = 1
    for domain in domains:
        size *= max(1, len(domain))
    if size > MAX_FILLED_ROWS:
        raise ValueError(f"fill=zero would make {size} rows (at most {MAX_FILLED_ROWS}); narrow the filters")
    filled = dict(acc)
    for combination in itertools.product(*domains):
        row = {}
        for partial in combination:
            row.update(partial)
        key = tuple((name, _hashable(value)) for name, value in row.items())
        filled.setdefault(key, {"count": 0, "stats": {}})
    return filled


def suppress(result_rows: list[dict], min_count: int) -> tuple[list[dict], dict]:
    """Hide counts (and stats) of rows with fewer than `min_count` events (zero rows stay:
    they identify nobody). Returns the rows and what was hidden, so sums stay honest."""
    hidden_rows = hidden_count = 0
    shown = []
    for row in result_rows:
        if 0 < row["count"] < min_count:
            hidden_rows, hidden_count = hidden_rows + 1, hidden_count + row["count"]
            row = {**row, "count": None, "suppressed": True}
            if "stats" in row:
                row["stats"] = dict.fromkeys(row["stats"])
        shown.append(row)
    return shown, {"min_count": min_count, "rows": hidden_rows, "count": hidden_count}


def date_bounds(dataset: Dataset, params: QueryParams) -> dict:
    """field → (lowest, highest) instant the filters allow, for zero-filling date buckets."""
    bounds: dict[str, list] = {}
    for name, value in params.filters.items():
        flt = dataset.filters[name]
        if isinstance(flt, DatePrefix):
            low, high = (from_iso(end) for end in prefix_bounds(value))
            edges = {"low": low, "high": high - timedelta(milliseconds=1)}
        elif isinstance(flt, Bound) and flt.field_type.es_type == "date":
            edges = {("low" if flt.op in ("gt", "gte") else "high"): from_iso(value)}
        else:
            continue
        pair = bounds.setdefault(flt.field, [None, None])
        if "low" in edges:
            pair[0] = max(filter(None, (pair[0], edges["low"])))
        if "high" in edges:
            pair[1] = min(filter(None, (pair[1], edges["high"])))
    return {field: tuple(pair) for field, pair in bounds.items()}


def fingerprint(dataset: Dataset, params: QueryParams) -> str:
    """Identifies a query (filters, order, groups), so a cursor is only used with its own query."""
    text = repr(
        (dataset.name, sorted(params.filters.items()), params.order, params.groups, params.bucket_options)
    )
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
    return after
