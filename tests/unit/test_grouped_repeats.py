"""A repeated grouped query is recognised by its answer's bytes, page by page (queries.py)."""

from __future__ import annotations

import orjson
import pytest

from service import queries
from service.datasets.cdx import CDX
from service.queries import QueryService, Scope
from service.rows_cache import RowsCache, SharedRows
from tests.unit.test_translate import parse


class PagedStore:
    """Answers a composite aggregation on gender two buckets a page, from `counts`."""

    prefix = "p-"

    def __init__(self, counts: dict[str, int]):
        self.counts, self.searches = counts, 0

    def search_bytes(self, dataset, body, filter_path=None) -> bytes:
        self.searches += 1
        composite = body["aggs"]["groups"]["composite"]
        keys = sorted(self.counts)
        start = keys.index(composite["after"]["g0"]) + 1 if "after" in composite else 0
        page = keys[start : start + composite["size"]]
        groups = {"buckets": [{"key": {"g0": key}, "doc_count": self.counts[key]} for key in page]}
        if len(page) == composite["size"]:
            groups["after_key"] = {"g0": page[-1]}
        answer = {"aggregations": {"groups": groups}}
        if body.get("track_total_hits") is not False:
            answer["hits"] = {"total": {"value": sum(self.counts.values()), "relation": "eq"}}
        return orjson.dumps(answer)


@pytest.fixture(autouse=True)
def two_buckets_a_page(monkeypatch):
    monkeypatch.setattr(queries, "composite_size", lambda params: 2)


def rows_of(service: QueryService) -> list[dict]:
    return service.run(CDX, parse(group_by="gender"), Scope())["events"]


def test_a_repeat_is_answered_from_its_pages_bytes_without_reading_them(monkeypatch):
    store = PagedStore({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5})
    service = QueryService(store, RowsCache(1000))
    first = rows_of(service)
    assert [row["count"] for row in first] == [1, 2, 3, 4, 5] and store.searches == 3
    monkeypatch.setattr(queries, "read_page", lambda text: pytest.fail("a repeat was read"))
    assert rows_of(service) is first and store.searches == 6
    assert isinstance(first, SharedRows)  # so its answer is encoded once (jsonio)


@pytest.mark.parametrize(("gains", "loses"), [("a", "b"), ("c", "d"), ("e", "d")])
def test_a_change_on_any_page_is_seen_even_when_the_total_stays(gains, loses):
    store = PagedStore({"a": 10, "b": 20, "c": 30, "d": 40, "e": 50})
    service = QueryService(store, RowsCache(1000))
    rows_of(service)
    store.counts[gains] += 5
    store.counts[loses] -= 5
    assert {row["gender"]: row["count"] for row in rows_of(service)} == store.counts
    store.counts["f"] = 7  # a new bucket makes a page more
    assert [row["count"] for row in rows_of(service)][-1] == 7


def test_without_room_to_remember_each_page_is_asked_once():
    store = PagedStore({"a": 1, "b": 2, "c": 3})
    service = QueryService(store, RowsCache(0))
    rows_of(service)
    rows_of(service)
    assert store.searches == 4
