"""Monthly indices: events land in the month of their own time, and are still found and deduplicated
as one collection."""

from __future__ import annotations

from datetime import UTC, datetime

from service.datasets import CDX, ROUNDWARE
from service.store import EventStore
from tests.conftest import auth


def test_events_land_in_the_month_of_their_time(client, tokens, es, settings, fresh_cdx):
    prefix = settings.index_prefix
    events = [
        {"uuid": "t1", "start_time": "2019-01-31T23:30:00-02:00"},  # 2019-02-01 in UTC
        {"uuid": "t2", "start_time": "2019-01-15", "created_at": "2024-05-05"},
        {"uuid": "t3", "created_at": "2024-05-05T00:00:00Z"},
        {"uuid": "t4"},
    ]
    response = client.post("/events?refresh=wait_for", json=events, headers=auth(tokens["ingest"]))
    assert response.status_code == 201, response.json
    expected = {
        "t1": f"{prefix}cdx-2019.02",
        "t2": f"{prefix}cdx-2019.01",
        "t3": f"{prefix}cdx-2024.05",
        "t4": f"{prefix}cdx-{datetime.now(UTC):%Y.%m}",  # created_at: the time of ingest
    }
    for uuid, index in expected.items():
        assert es.exists(index=index, id=uuid), (uuid, index)
    assert set(EventStore(es, prefix).indices(CDX)) == set(expected.values())
    # One collection to queries and groupings.
    assert client.get("/events?page_size=0", headers=auth(tokens["query"])).json["total_count"] == 4
    rows = client.get("/events?group_by=year(start_time)", headers=auth(tokens["query"])).json["events"]
    assert rows == [{"start_time": None, "count": 2}, {"start_time": "2019", "count": 2}]


def test_get_by_id_is_real_time_across_months(client, tokens, fresh_cdx):
    for uuid, start in [("rt1", "2018-06-01T00:00:00Z"), ("rt2", "2021-02-03T00:00:00Z")]:
        response = client.post(
            "/events", json={"uuid": uuid, "start_time": start}, headers=auth(tokens["ingest"])
        )
        assert response.status_code == 201
        found = client.get(f"/events/{uuid}", headers=auth(tokens["query"]))  # no refresh in between
        assert found.status_code == 200 and found.json["start_time"] == start


def test_roundware_get_by_id_is_real_time(client, tokens):
    body = {"session_id": 5, "event_type": "rt"}
    created = client.post("/api/2/events/", json=body, headers=auth(tokens["ingest"])).json
    found = client.get(f"/api/2/events/{created['id']}/", headers=auth(tokens["query"]))
    assert found.status_code == 200 and found.json == created
    assert client.get(f"/api/2/events/{2**60}/", headers=auth(tokens["query"])).status_code == 404


def test_retried_event_without_time_is_a_duplicate_whatever_the_month(
    client, tokens, es, settings, fresh_cdx
):
    """An event with no time of its own, first stored in an earlier month, is not stored again."""
    earlier = f"{settings.index_prefix}cdx-2020.01"
    original = {"uuid": "retry-1", "created_at": "2020-01-31T23:59:59Z", "gender": "f"}
    es.index(index=earlier, id="retry-1", document=original, refresh=True)
    response = client.post(
        "/events?refresh=wait_for",
        json=[{"uuid": "retry-1", "gender": "f"}, {"uuid": "fresh"}],
        headers=auth(tokens["ingest"]),
    )
    assert response.status_code == 201
    assert (response.json["stored"], response.json["duplicates"]) == (1, 1)
    assert response.json["ids"] == ["retry-1", "fresh"]
    assert (
        client.get("/events?page_size=0&uuid=retry-1", headers=auth(tokens["query"])).json["total_count"] == 1
    )
    # Batches larger than the search window are looked up in chunks.
    many = [f"none-{i}" for i in range(12_000)] + ["retry-1", "fresh"]
    assert EventStore(es, settings.index_prefix).existing_ids(CDX, many) == {"retry-1", "fresh"}


def test_grouping_with_no_index_yet_is_empty(client, tokens, es, settings):
    store = EventStore(es, settings.index_prefix)
    for index in store.indices(ROUNDWARE):
        store.delete_index(index)
    response = client.get("/api/2/events/?group_by=event_type", headers=auth(tokens["query"]))
    assert response.status_code == 200
    assert response.json == {"total_count": 0, "events": [], "exact": True}
    listed = client.get("/api/2/events/", headers=auth(tokens["query"]))
    assert listed.json == [] and listed.headers["X-Total-Count"] == "0"
