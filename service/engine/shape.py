"""Pure shaping: Elasticsearch responses in, API rows out."""

from __future__ import annotations

import base64
import hashlib
import itertools
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
    sub-aggregation (groups.sub_aggregated) gives its rows with their own counts. The rows of
    a source value are made once per page: a week or a gender recurs in many buckets.
    """
    sub = sub_aggregated(params.groups)
    memo: dict = {}
    for bucket in buckets:
        partials = [
            [(_key(row), n) for row, n in group.sub_rows(bucket[SUB_AGGREGATION])]
            if group is sub
            else _source_rows(memo, i, group, bucket["key"][f"g{i}"], params.time_zone)
            for i, group in enumerate(params.groups)
        ]
        for combination in itertools.product(*partials):
            key = tuple(itertools.chain.from_iterable(part for part, _ in combination))
            events = next((n for _, n in combination if n is not None), bucket["doc_count"])
            counts[key] = counts.get(key, 0) + events
    return counts


def _source_rows(memo: dict, position: int, group, raw, zone: str) -> list[tuple[tuple, None]]:
    found = memo.get((position, raw))
    if found is None:
        found = memo[(position, raw)] = [(_key(row), None) for row in group.rows(raw, zone)]
    return found


def _key(row: dict) -> tuple:
    return tuple((name, _hashable(value)) for name, value in row.items())


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


def rows(params: QueryParams, counts: dict) -> list[dict]:
    """Rows with their counts, ordered by `order_by` (keys or count), else by the keys."""
    sort_keys = {key: group for group in params.groups for key in group.keys}
    result = [
        {**{name: list(value) if isinstance(value, tuple) else value for name, value in key}, "count": n}
        for key, n in counts.items()
    ]
    order = list(params.order) or [(key, False) for key in sort_keys]
    if not any(descending for _, descending in order):  # the usual case: one pass on all keys
        result.sort(key=lambda row: tuple(_sort_key(sort_keys, name, row) for name, _ in order))
        return result
    for name, descending in reversed(order):  # stable sorts, last key first
        result.sort(key=lambda row, n=name: _sort_key(sort_keys, n, row), reverse=descending)
    return result


def _sort_key(sort_keys: dict, name: str, row: dict):
    return row["count"] if name == "count" else sort_keys[name].sort_key(name, row[name])


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
