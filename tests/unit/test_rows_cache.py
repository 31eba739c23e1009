"""The worker's memory of shaped grouped answers (service/rows_cache.py)."""

from __future__ import annotations

from service.rows_cache import RowsCache, digest


def test_rows_cache_remembers_within_its_bound_and_forgets_the_oldest():
    cache = RowsCache(max_rows=8)
    made = []

    def make(n):
        made.append(n)
        return [{"count": i} for i in range(n)]

    assert cache.rows(("a",), lambda: make(2)) == make(2)[:2]
    made.clear()
    assert cache.rows(("a",), lambda: make(2)) == [{"count": 0}, {"count": 1}] and made == []
    cache.rows(("big",), lambda: make(3))  # over a quarter of the room: answered, not kept
    cache.rows(("big",), lambda: make(3))
    assert made == [3, 3]
    for key in "bcde":
        cache.rows((key,), lambda: make(2))
    made.clear()
    cache.rows(("a",), lambda: make(2))  # the oldest went to make room
    assert made == [2]
    assert RowsCache(0).rows(("a",), lambda: make(1)) == [{"count": 0}]


def test_digest_tells_answers_apart():
    assert digest([{"key": {"g0": "a"}, "doc_count": 1}]) == digest([{"key": {"g0": "a"}, "doc_count": 1}])
    assert digest([{"key": {"g0": "a"}, "doc_count": 1}]) != digest([{"key": {"g0": "a"}, "doc_count": 2}])
