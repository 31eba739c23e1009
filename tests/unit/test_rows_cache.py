"""The worker's memory of shaped grouped answers (service/rows_cache.py)."""

from __future__ import annotations

from service.rows_cache import RowsCache, digest


def test_rows_cache_remembers_within_its_bound_and_forgets_the_oldest():
    cache = RowsCache(max_rows=8)

    def rows(n):
        return [{"count": i} for i in range(n)]

    assert cache.remembered(("a",)) is None
    cache.remember(("a",), rows(2), 2)
    assert cache.remembered(("a",)) == [{"count": 0}, {"count": 1}]
    cache.remember(("big",), rows(3), 3)  # over a quarter of the room: not kept
    assert cache.remembered(("big",)) is None
    for key in "bcde":
        cache.remember((key,), rows(2), 2)
    assert cache.remembered(("a",)) is None  # the oldest went to make room
    assert cache.remembered(("e",)) == rows(2)
    empty = RowsCache(0)
    empty.remember(("a",), rows(1), 1)
    assert empty.remembered(("a",)) is None


def test_digest_tells_answers_apart():
    assert digest([{"key": {"g0": "a"}, "doc_count": 1}]) == digest([{"key": {"g0": "a"}, "doc_count": 1}])
    assert digest([{"key": {"g0": "a"}, "doc_count": 1}]) != digest([{"key": {"g0": "a"}, "doc_count": 2}])


def test_shared_rows_are_written_from_the_json_they_keep():
    import collections

    import orjson
    from flask import Flask

    from service.jsonio import OrjsonProvider
    from service.rows_cache import SharedRows

    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    rows = [{"gender": "female", "count": 3, 7: [1.5, None]}, {"gender": None, "count": 2**63}]
    shared = SharedRows(rows)
    answer = {"total_count": 5, "events": shared, "other": collections.OrderedDict(a=1)}
    with app.app_context():
        first = app.json.response(answer).get_data()
        assert shared.json == orjson.dumps(rows, option=orjson.OPT_NON_STR_KEYS)
        # The second answer copies the kept text: what it holds is what goes out.
        shared.json = shared.json.replace(b'"female"', b'"kept"')
        second = app.json.response(answer).get_data()
        assert app.json.dumps({"e": shared}) == '{"e":' + shared.json.decode() + "}"
    plain = {**answer, "events": rows, "other": {"a": 1}}
    assert orjson.loads(first) == orjson.loads(orjson.dumps(plain, option=orjson.OPT_NON_STR_KEYS))
    assert second == first.replace(b'"female"', b'"kept"')
