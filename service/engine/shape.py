"""Pure shaping: Elasticsearch responses in, API rows out."""

from __future__ import annotations

import base64
import hashlib
import json

from ..datasets.registry import Dataset
from .groups import sub_aggregated
from .params import QueryParams
from .translate import SUB_AGGREGATION


def events(dataset: Dataset, response: dict) -> list[dict]:
    return [dataset.to_event(hit["_source"]) for hit in response["hits"]["hits"]]


def total(response: dict) -> int:
    return response["hits"]["total"]["value"]


def add_buckets(params: QueryParams, buckets: list[dict], counts: dict) -> dict:
    """Fold composite buckets into `counts` (row key tuple → events).

    One bucket may stand for several rows (overlapping age ranges) or none (an age outside
    every range); buckets folding into the same row add up. A group counted by a
    sub-aggregation (groups.sub_aggregated) gives its rows with their own counts. The key parts
    of a source value are made once per page: a week or a gender recurs in many buckets.
    """
    sub = sub_aggregated(params.groups)
    memo: dict = {}
    names = [f"g{i}" for i in range(len(params.groups))]
    for bucket in buckets:
        combos = [((), bucket["doc_count"])]
        for i, group in enumerate(params.groups):
            if group is sub:
                counted = _counted_parts(memo, group, bucket[SUB_AGGREGATION])
                combos = [(prefix + part, n) for prefix, _ in combos for part, n in counted]
                continue
            raw = bucket["key"][names[i]]
            parts = memo.get((i, raw))
            if parts is None:
                parts = memo[(i, raw)] = [_key(row) for row in group.rows(raw, params.time_zone)]
            combos = [(prefix + part, n) for prefix, n in combos for part in parts]
        for key, n in combos:
            counts[key] = counts.get(key, 0) + n
    return counts


def _counted_parts(memo: dict, group, aggregation: dict) -> list[tuple[tuple, int]]:
    """The key parts and counts of a sub-aggregation's non-empty buckets."""
    counted = []
    for bucket in aggregation["buckets"]:
        if bucket["doc_count"]:
            part = memo.get(("sub", bucket["key"]))
            if part is None:
                part = memo[("sub", bucket["key"])] = _key(group.sub_row(bucket))
            counted.append((part, bucket["doc_count"]))
    return counted


def _key(row: dict) -> tuple:
    return tuple((name, _hashable(value)) for name, value in row.items())


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


def rows(params: QueryParams, counts: dict) -> list[dict]:
    """Rows with their counts, ordered by `order_by` (keys or count), else by the keys."""
    sort_keys = {key: group for group in params.groups for key in group.keys}
    items = list(counts.items())
    if not params.order:
        # By the keys in group order, which is the order of each row key's elements: each
        # distinct (name, value) gets its sort key once, not once per row.
        memo: dict = {}

        def element(pair):
            found = memo.get(pair)
            if found is None:
                name, value = pair
                found = memo[pair] = sort_keys[name].sort_key(name, _plain(value))
            return found

        items.sort(key=lambda item: tuple(map(element, item[0])))
        return [_row(key, n) for key, n in items]
    result = [_row(key, n) for key, n in items]
    for name, descending in reversed(params.order):  # stable sorts, last key first
        if name == "count":
            result.sort(key=lambda row: row["count"], reverse=descending)
        else:
            group = sort_keys[name]
            result.sort(key=lambda row, n=name, g=group: g.sort_key(n, row[n]), reverse=descending)
    return result


def _row(key: tuple, events: int) -> dict:
    row = {name: _plain(value) for name, value in key}
    row["count"] = events
    return row


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def fingerprint(dataset: Dataset, params: QueryParams) -> str:
    """Identifies a query's filters and order, so a cursor is only used with its own query."""
    text = repr((dataset.name, sorted(params.filters.items()), params.order))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_cursor(sort_values: list, query_fingerprint: str) -> str:
    raw = json.dumps({"after": sort_values, "q": query_fingerprint}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, query_fingerprint: str) -> list:
    """The `search_after` values of a cursor (raises ValueError if it is not this query's)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        after = data["after"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError("malformed cursor") from exc
    if data.get("q") != query_fingerprint or not isinstance(after, list):
        raise ValueError("the cursor belongs to another query")
    return after
