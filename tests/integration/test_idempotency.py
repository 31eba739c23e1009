"""A retried cdx event is stored once, whatever its `sent_at`, whatever month the retry meets.

Each test posts around a month boundary, with the service's clock set per request thread
(`clock`). The months' indices are made beforehand with refresh turned off (`blind`), so the
near-real-time search never sees the first copy: only what is real time (`create`, gets) can
find it, as when a retry follows within a second.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import elastic_transport
import pytest

from service import create_app, store
from service.api import requests as api_requests
from service.datasets import CDX
from tests.conftest import auth


@pytest.fixture
def clock(monkeypatch):
    """`clock[thread id] = moment`: that thread's requests are received at `moment`."""
    times: dict[int, datetime] = {}

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return times.get(threading.get_ident()) or datetime.now(tz)

    monkeypatch.setattr(api_requests, "datetime", Clock)
    return times


def at(clock: dict, text: str) -> None:
    clock[threading.get_ident()] = datetime.fromisoformat(text)


@pytest.fixture
def blind(es, settings):
    """Makes a month's index with refresh off; every index made so is deleted afterwards."""
    made = []

    def make(month: str) -> str:
        index = f"{settings.index_prefix}cdx-{month}"
        es.options(ignore_status=404).indices.delete(index=index)
        es.indices.create(index=index, settings={"index.refresh_interval": "-1"})
        made.append(index)
        return index

    yield make
    for index in made:
        es.options(ignore_status=404).indices.delete(index=index)


def post(client, tokens, body, query=""):
    return client.post(f"/events{query}", json=body, headers=auth(tokens["ingest"]))


def copies(es, settings, uuid: str) -> list[str]:
    """The indices holding a document of this uuid (after a refresh)."""
    pattern = f"{settings.index_prefix}cdx*"
    es.indices.refresh(index=pattern)
    hits = es.search(index=pattern, query={"ids": {"values": [uuid]}}, size=10)["hits"]["hits"]
    return sorted(hit["_index"] for hit in hits)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def test_retry_with_a_later_sent_at_is_stored_once(client, tokens, es, settings):
    """The two clock corrections put the event in different months; the index follows the
    time as the client wrote it, so both posts meet the same index."""
    event = {"uuid": "skewed-retry", "start_time": "2031-01-31T23:59:59.000Z"}
    now = datetime.now(UTC)
    first = post(client, tokens, {"sent_at": iso(now - timedelta(minutes=1)), "events": [event]})
    assert first.status_code == 201, first.json
    retry = post(client, tokens, {"sent_at": iso(now + timedelta(minutes=1)), "events": [event]})
    assert retry.status_code == 200, retry.json
    assert (retry.json["stored"], retry.json["duplicates"]) == (0, 1)
    # The same instant written with another offset is the same month too.
    shifted = {**event, "start_time": "2031-01-31T21:59:59-02:00"}
    assert post(client, tokens, shifted, f"?sent_at={iso(now).replace('+', '%2B')}").status_code == 200
    assert copies(es, settings, "skewed-retry") == [f"{settings.index_prefix}cdx-2031.01"]
    stored = client.get("/events/skewed-retry", headers=auth(tokens["query"])).json
    assert stored["start_time"] >= "2031-02-01"  # corrected; the index month is the client's own


def test_timeless_retry_within_a_second_across_months_is_stored_once(
    client, tokens, es, settings, clock, blind
):
    blind("2031.03")
    at(clock, "2031-03-31T23:59:59.900+00:00")
    assert post(client, tokens, {"uuid": "timeless-retry"}).status_code == 201
    at(clock, "2031-04-01T00:00:00.100+00:00")
    retry = post(client, tokens, {"uuid": "timeless-retry"})
    assert retry.status_code == 200, retry.json
    assert copies(es, settings, "timeless-retry") == [f"{settings.index_prefix}cdx-2031.03"]


def test_concurrent_duplicate_posts_across_months_store_one_copy(app, tokens, es, settings, clock, blind):
    """A client times out and retries while its first request is still in flight, the two
    received on either side of midnight at the month's end."""
    blind("2031.05")
    blind("2031.06")
    moments = ["2031-05-31T23:59:59.999+00:00", "2031-06-01T00:00:00.000+00:00"] * 4
    start = threading.Barrier(len(moments))

    def post_at(moment: str):
        at(clock, moment)
        start.wait(10)
        response = post(app.test_client(), tokens, {"uuid": "racing", "gender": "female"})
        return response.status_code, response.json

    with ThreadPoolExecutor(len(moments)) as pool:
        answers = list(pool.map(post_at, moments))
    assert sorted(status for status, _ in answers) == [200] * 7 + [201], answers
    assert all(body["ids"] == ["racing"] for _, body in answers)
    assert len(copies(es, settings, "racing")) == 1


def test_retry_after_the_first_attempt_died_having_claimed(app, client, tokens, es, settings, clock, blind):
    """The first attempt claimed its month, then could not store the event: the retry, a
    month later, stores it where the claim says, with the first receipt's `created_at`."""
    blind("2031.07")
    committer = app.extensions["group_commit"]
    send, events_index = committer.send, f"{settings.index_prefix}cdx-"

    def events_fail(operations):
        if any(index.startswith(events_index) for index, _, _ in operations):
            raise elastic_transport.ConnectionError("node gone")
        return send(operations)

    at(clock, "2031-07-31T23:59:59.500+00:00")
    committer.send = events_fail
    try:
        assert post(client, tokens, {"uuid": "died-after-claim"}).status_code == 503
    finally:
        committer.send = send
    at(clock, "2031-08-01T00:00:01.000+00:00")
    retry = post(client, tokens, {"uuid": "died-after-claim"})
    assert retry.status_code == 201, retry.json
    assert copies(es, settings, "died-after-claim") == [f"{settings.index_prefix}cdx-2031.07"]
    stored = client.get("/events/died-after-claim", headers=auth(tokens["query"])).json
    assert stored["created_at"].startswith("2031-07-31T23:59:59.5")


def test_flask_import_meets_the_claim_of_an_earlier_post(
    runner, client, tokens, es, settings, clock, blind, tmp_path
):
    blind("2031.09")
    at(clock, "2031-09-30T23:59:59.950+00:00")
    assert post(client, tokens, {"uuid": "imported-twice"}).status_code == 201
    path = tmp_path / "events.ndjson"
    path.write_text('{"uuid": "imported-twice"}\n{"uuid": "imported-once"}\n')
    result = runner.invoke(args=["import", "cdx", str(path)])
    assert result.exit_code == 0, result.output
    assert "stored: 1, duplicates: 1" in result.stdout
    assert copies(es, settings, "imported-twice") == [f"{settings.index_prefix}cdx-2031.09"]


def test_retention_deletes_the_claims_of_the_months_it_deletes(runner, client, tokens, es, settings, clock):
    claims = store.claims_index(CDX, settings.index_prefix)
    at(clock, "2019-03-15T12:00:00+00:00")
    assert post(client, tokens, {"uuid": "claimed-long-ago"}).status_code == 201
    clock.clear()
    assert post(client, tokens, {"uuid": "claimed-now"}).status_code == 201
    assert es.exists(index=claims, id="claimed-long-ago") and es.exists(index=claims, id="claimed-now")
    es.indices.refresh(index=claims)
    result = runner.invoke(args=["retention", "--older-than", "12m", "--dataset", "cdx", "--apply"])
    assert result.exit_code == 0, result.output
    assert f"deleted {settings.index_prefix}cdx-2019.03" in result.stdout.splitlines()
    assert not es.exists(index=claims, id="claimed-long-ago")
    assert es.exists(index=claims, id="claimed-now")
    # A retry after retention is a new event, stored in the month of its receipt.
    assert post(client, tokens, {"uuid": "claimed-long-ago"}).status_code == 201
    assert copies(es, settings, "claimed-long-ago") == [
        f"{settings.index_prefix}cdx-{datetime.now(UTC):%Y.%m}"
    ]


class ClaimsPushBack:
    """The real client, but the node answers 429 to the first claim of each claims `_bulk`."""

    def __init__(self, es, claims: str):
        self.es, self.claims = es, claims

    def __getattr__(self, name):
        return getattr(self.es, name)

    def bulk(self, operations, **kwargs):
        if f'"_index":"{self.claims}"'.encode() not in operations.split(b"\n", 1)[0]:
            return self.es.bulk(operations=operations, **kwargs)
        lines = operations.split(b"\n")
        rest = b"\n".join(lines[2:])
        items = self.es.bulk(operations=rest, **kwargs)["items"] if rest.strip() else []
        rejected = {"create": {"status": 429, "error": {"type": "es_rejected_execution_exception"}}}
        return {"errors": True, "items": [rejected, *items]}


def test_a_claim_the_node_pushes_back_on_is_that_events_retry(settings, es, tokens):
    service = create_app(settings, es=ClaimsPushBack(es, store.claims_index(CDX, settings.index_prefix)))
    events = [{"uuid": "claim-refused"}, {"uuid": "claim-granted"}]
    response = service.test_client().post("/events", json=events, headers=auth(tokens["ingest"]))
    assert response.status_code == 207, response.json
    assert response.json["ids"] == [None, "claim-granted"]
    assert [(e["index"], e["status"]) for e in response.json["errors"]] == [(0, "retry")]
    assert copies(es, settings, "claim-refused") == []
    assert len(copies(es, settings, "claim-granted")) == 1
