"""A retried cdx event is stored once, whatever its `sent_at`, whatever month the retry meets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.conftest import auth


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
