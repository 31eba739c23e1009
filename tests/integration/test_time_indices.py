"""Monthly indices: events land in the month of their own time, and are still found and deduplicated
as one collection."""

from __future__ import annotations

import time
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


def test_a_search_idle_month_still_shows_every_acknowledged_event(client, tokens, es, settings, fresh_cdx):
    """The template leaves `index.refresh_interval` unset, so a monthly shard nobody searches is
    not refreshed every second (service/templates.py); a query still sees every event stored
    before it, and `?refresh=wait_for` still answers once its events are searchable."""
    index = f"{settings.index_prefix}cdx-2017.03"

    def post(uuid: str, query: str = "") -> None:
        event = {"uuid": uuid, "start_time": "2017-03-09T10:00:00Z"}
        response = client.post(f"/events{query}", json=event, headers=auth(tokens["ingest"]))
        assert response.status_code == 201, response.json

    def count() -> int:
        answer = client.get("/events?page_size=0&since=2017-03-01", headers=auth(tokens["query"]))
        return answer.json["total_count"]

    def refreshes() -> int:
        return es.indices.stats(index=index, metric="refresh")["_all"]["primaries"]["refresh"]["total"]

    post("idle-1", "?refresh=wait_for")
    assert "refresh_interval" not in es.indices.get_settings(index=index)[index]["settings"]["index"]
    es.indices.put_settings(index=index, settings={"index.search.idle.after": "1s"})
    time.sleep(1.5)  # no search for longer than search.idle.after: the shard is search idle
    post("idle-2")
    before = refreshes()
    time.sleep(2.5)  # two refresh intervals pass without a refresh of the idle shard
    assert refreshes() == before
    assert count() == 2  # the search waited for the pending refresh
    time.sleep(1.5)
    post("idle-3", "?refresh=wait_for")
    assert count() == 3
