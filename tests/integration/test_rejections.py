"""Elasticsearch pushing back on writes: rejected items are never acknowledged, and a request of
which nothing was stored is a 429 (or 503) in the one error shape, with `Retry-After`.

The node is real; only `_bulk` is wrapped so that chosen items come back as a node under write
pressure answers them (status 429, es_rejected_execution_exception) while the others really are
stored. `make reliability` drives a real node into such rejections (tests/reliability).
"""

from __future__ import annotations

import elasticsearch
import orjson
import pytest
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig

from service import create_app
from service.ingest import CREATED, DUPLICATE, RETRY, Report, item_outcome
from tests.conftest import auth

REJECTED_ITEM = {
    "status": 429,
    "error": {"type": "es_rejected_execution_exception", "reason": "rejected execution (queue capacity 1)"},
}


class PushingBack:
    """The real client, but `_bulk` rejects the items at `positions` (or, with `whole`, the
    request) the way a node out of write capacity does. Everything else goes through."""

    def __init__(self, es, positions=(), whole=False):
        self.es, self.positions, self.whole = es, set(positions), whole

    def __getattr__(self, name):
        return getattr(self.es, name)

    def bulk(self, operations, **kwargs):
        if self.whole:
            meta = ApiResponseMeta(429, "1.1", HttpHeaders(), 0.0, NodeConfig("http", "127.0.0.1", 9200))
            raise elasticsearch.ApiError("es_rejected_execution_exception", meta, {"status": 429})
        if isinstance(operations, bytes | str):  # the service sends its own NDJSON body
            operations = [orjson.loads(line) for line in operations.splitlines() if line.strip()]
        pairs = list(zip(operations[::2], operations[1::2], strict=True))
        kept = [pair for i, pair in enumerate(pairs) if i not in self.positions]
        stored = (
            iter(self.es.bulk(operations=[x for pair in kept for x in pair], **kwargs)["items"])
            if kept
            else None
        )
        items = [
            {"create": {"_id": action["create"]["_id"], **REJECTED_ITEM}}
            if i in self.positions
            else next(stored)
            for i, (action, _) in enumerate(pairs)
        ]
        return {"errors": True, "items": items}


@pytest.fixture
def pushing_back(settings, es, tokens):
    def make(positions=(), whole=False):
        return create_app(settings, es=PushingBack(es, positions, whole)).test_client()

    return make


def test_a_rejected_item_is_a_retry_outcome():
    assert item_outcome({"create": REJECTED_ITEM}) == (
        RETRY,
        "es_rejected_execution_exception: rejected execution (queue capacity 1)",
    )
    report = Report(size=3, outcomes={0: CREATED, 1: RETRY, 2: DUPLICATE}, ids={0: "a", 1: "b", 2: "c"})
    assert report.status == 207
    assert report.body()["ids"] == ["a", None, "c"]
    assert Report(size=2, outcomes={0: RETRY, 1: RETRY}).status == 429


def test_partly_rejected_batch_is_207_and_rejected_items_are_not_stored(
    pushing_back, client, tokens, fresh_cdx
):
    service = pushing_back(positions={1, 3})
    # With a time of their own: no claims, so the one `_bulk` is the events'.
    events = [{"uuid": f"bp{i}", "start_time": "2024-05-01"} for i in range(4)]
    response = service.post("/events?refresh=wait_for", json=events, headers=auth(tokens["ingest"]))
    assert response.status_code == 207
    assert response.json["ids"] == ["bp0", None, "bp2", None]
    assert [(e["index"], e["status"]) for e in response.json["errors"]] == [(1, "retry"), (3, "retry")]
    found = {
        uuid: client.get(f"/events/{uuid}", headers=auth(tokens["query"])).status_code
        for uuid in ("bp0", "bp1", "bp2", "bp3")
    }
    assert found == {"bp0": 200, "bp1": 404, "bp2": 200, "bp3": 404}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/events", [{"uuid": "all0"}, {"uuid": "all1"}]),
        ("/events", {"uuid": "one"}),
        ("/api/2/events/", {"session_id": 987654, "event_type": "x"}),
        ("/api/2/events/", [{"session_id": 987654, "event_type": "x"}]),
    ],
)
@pytest.mark.parametrize("whole", [False, True], ids=["items", "request"])
def test_nothing_stored_is_429_with_retry_after(pushing_back, client, tokens, fresh_cdx, path, body, whole):
    service = pushing_back(positions=range(len(body) if isinstance(body, list) else 1), whole=whole)
    response = service.post(f"{path}?refresh=wait_for", json=body, headers=auth(tokens["ingest"]))
    assert response.status_code == 429, response.json
    assert int(response.headers["Retry-After"]) > 0
    assert response.json["error"]["code"] in ("too_many_requests", "not_stored")
    query = auth(tokens["query"])
    assert client.get("/events?page_size=0", headers=query).json["total_count"] == 0
    assert client.get("/api/2/events/?session_id=987654", headers=query).headers["X-Total-Count"] == "0"
