"""Group commit on a real node: concurrent single POSTs of a worker share one `_bulk`.

Each test holds the worker's first `_bulk` until the requests under test are queued behind it,
so they are sure to travel together in the next one; answers and stored events are then
checked item by item.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import auth


@pytest.fixture(autouse=True)
def _empty(fresh_cdx):
    pass


@pytest.fixture
def bulks(app, monkeypatch):
    """Records every group-commit `_bulk` (its ids) and holds the first one until released."""
    committer = app.extensions["group_commit"]
    calls, first_call, release = [], threading.Event(), threading.Event()
    send = committer.send

    def gated(operations):
        calls.append([str(doc_id) for _, doc_id, _ in operations])
        if len(calls) == 1:
            first_call.set()
            release.wait(30)
        return send(operations)

    monkeypatch.setattr(committer, "send", gated)
    yield committer, calls, first_call, release
    release.set()


def post_together(app, tokens, bulks, bodies: list) -> list:
    """POST a blocker, then `bodies` concurrently behind it; their responses, in order."""
    committer, _, first_call, release = bulks

    def post(body):
        response = app.test_client().post("/events", json=body, headers=auth(tokens["ingest"]))
        return response.status_code, response.json

    with ThreadPoolExecutor(len(bodies) + 1) as pool:
        blocker = pool.submit(post, {"uuid": "blocker"})
        assert first_call.wait(30)
        futures = [pool.submit(post, body) for body in bodies]
        deadline = time.monotonic() + 30
        while committer.queued() < len(bodies) and time.monotonic() < deadline:
            time.sleep(0.005)
        release.set()
        assert blocker.result()[0] == 201
        return [future.result() for future in futures]


def stored(es, settings, query: dict) -> int:
    es.indices.refresh(index=f"{settings.index_prefix}cdx*")
    return es.count(index=f"{settings.index_prefix}cdx*", query=query)["count"]


def test_concurrent_single_posts_are_stored_once_each_in_one_bulk(app, es, settings, tokens, bulks):
    bodies = [{"uuid": f"gc-{n}", "age": n} for n in range(24)]
    answers = post_together(app, tokens, bulks, bodies)
    assert [status for status, _ in answers] == [201] * 24
    assert [body["ids"] for _, body in answers] == [[f"gc-{n}"] for n in range(24)]
    _, calls, _, _ = bulks
    assert sorted(calls[1]) == sorted(f"gc-{n}" for n in range(24))  # one shared `_bulk`
    assert stored(es, settings, {"prefix": {"uuid": "gc-"}}) == 24
    for n in (0, 23):
        assert stored(es, settings, {"term": {"uuid": f"gc-{n}"}}) == 1


def test_duplicates_are_found_across_coalesced_requests(app, es, settings, tokens, bulks):
    answers = post_together(app, tokens, bulks, [{"uuid": "twin", "age": 1}, {"uuid": "twin", "age": 2}])
    _, calls, _, _ = bulks
    assert calls[1] == ["twin", "twin"]
    assert sorted(status for status, _ in answers) == [200, 201]
    assert sorted((body["stored"], body["duplicates"]) for _, body in answers) == [(0, 1), (1, 0)]
    assert all(body["ids"] == ["twin"] for _, body in answers)
    assert stored(es, settings, {"term": {"uuid": "twin"}}) == 1


def test_each_coalesced_request_gets_its_own_outcome(app, client, es, settings, tokens, bulks):
    # "old" is stored before, so in the shared `_bulk` it is a duplicate of one request only.
    assert client.post("/events?refresh=wait_for", json={"uuid": "old"}, headers=auth(tokens["ingest"]))
    bodies = [
        [{"uuid": "a1"}, {"uuid": "a2"}],
        [{"uuid": "old"}, {"uuid": "b1"}],
        [{"uuid": "c1"}, {"age": -1}, {"uuid": "c2"}],
        {"uuid": "d1", "gender": "female"},
    ]
    (a, b, c, d) = post_together(app, tokens, bulks, bodies)
    assert a == (201, {"stored": 2, "duplicates": 0, "rejected": 0, "ids": ["a1", "a2"], "errors": []})
    assert b[0] == 201 and (b[1]["stored"], b[1]["duplicates"], b[1]["ids"]) == (1, 1, ["old", "b1"])
    assert c[0] == 207 and (c[1]["stored"], c[1]["rejected"], c[1]["ids"]) == (2, 1, ["c1", None, "c2"])
    assert [error["index"] for error in c[1]["errors"]] == [1]
    assert d == (201, {"stored": 1, "duplicates": 0, "rejected": 0, "ids": ["d1"], "errors": []})
    _, calls, _, _ = bulks
    # "old" has no time of its own, so the cross-month id check found it before any `_bulk`.
    assert sorted(calls[1]) == sorted(["a1", "a2", "b1", "c1", "c2", "d1"])
    assert stored(es, settings, {"terms": {"uuid": ["a1", "a2", "old", "b1", "c1", "c2", "d1"]}}) == 7


def test_refresh_requests_and_large_batches_send_their_own_bulk(app, client, tokens, bulks):
    _, calls, _, release = bulks
    release.set()
    headers = auth(tokens["ingest"])
    assert client.post("/events?refresh=wait_for", json={"uuid": "r"}, headers=headers).status_code == 201
    batch = [{"uuid": f"big-{n}"} for n in range(app.extensions["group_commit"].max_request_items + 1)]
    assert client.post("/events", json=batch, headers=headers).status_code == 201
    assert calls == []


def test_shared_bulks_stay_within_max_bytes(app, es, settings, tokens, bulks, monkeypatch):
    """Large single events are spread over several `_bulk`s (README: GROUP_COMMIT_MAX_BYTES),
    each answered and stored as if it had travelled alone."""
    committer, calls, _, _ = bulks
    monkeypatch.setattr(committer, "max_bytes", 5_000)
    wide = {"start_time": "2024-05-01T10:00:00Z", "custom_fields": {"note": "x" * 2_000}}
    bodies = [{"uuid": f"wide-{n}", **wide} for n in range(6)]  # timed: no uuid claims
    answers = post_together(app, tokens, bulks, bodies)
    assert [status for status, _ in answers] == [201] * 6
    # The blocker's claim and its event travel in bulks of their own or alongside.
    shared = [[i for i in call if i != "blocker"] for call in calls[1:]]
    shared = [call for call in shared if call]
    assert sorted(doc_id for call in shared for doc_id in call) == [f"wide-{n}" for n in range(6)]
    assert [len(call) for call in shared] == [2, 2, 2]  # some 2,100 bytes each: two fit in 5,000
    assert stored(es, settings, {"prefix": {"uuid": "wide-"}}) == 6
