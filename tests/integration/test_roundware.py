"""The Roundware `/api/2/events/` API on a real node (docs/api.md §5)."""

from __future__ import annotations

import json
import multiprocessing

import pytest

from service.ids import decompose
from tests.conftest import auth, empty_index

SAMPLE = {
    "session_id": 1,
    "event_type": "start_session",
    "client_time": "2017-04-15T10:00:00.123",
    "latitude": "45.5",
    "longitude": -73.25,
    "tag_ids": "3,8",
    "data": '{"volume": 0.5}',
}


@pytest.fixture(scope="module")
def posted(app, es, settings, tokens):
    """Events whose server_time we record as the service returns it."""
    empty_index(es, settings, "roundware")
    client, created = app.test_client(), []
    bodies = [
        SAMPLE,
        {"session_id": 1, "event_type": "start_listen", "tag_ids": [3]},
        {"session_id": 2, "event_type": "start_listen", "tag_ids": "8,3,9", "latitude": 1, "longitude": 2},
        {"session_id": 2, "event_type": "heartbeat"},
    ]
    for body in bodies:
        response = client.post("/api/2/events/?refresh=wait_for", json=body, headers=auth(tokens["ingest"]))
        assert response.status_code == 201, response.json
        created.append(response.json)
    return created


def listed(client, tokens, query=""):
    response = client.get(f"/api/2/events/?{query}", headers=auth(tokens["query"]))
    assert response.status_code == 200, response.json
    return response


def test_post_answers_the_seed_shape(posted):
    event = posted[0]
    assert set(event) == {"id", "server_time", *SAMPLE}
    assert isinstance(event["id"], int) and 0 < event["id"] < 2**53
    assert event["tag_ids"] == "3,8"
    assert event["latitude"] == 45.5 and event["longitude"] == -73.25
    assert event["client_time"] == SAMPLE["client_time"]
    assert event["data"] == SAMPLE["data"]
    assert event["server_time"].endswith("Z") and "." in event["server_time"]


def test_get_by_id_and_404(client, tokens, posted):
    event = client.get(f"/api/2/events/{posted[0]['id']}/", headers=auth(tokens["query"])).json
    assert event == posted[0]
    missing = client.get("/api/2/events/12345/", headers=auth(tokens["query"]))
    assert missing.status_code == 404
    assert missing.json["error"]["code"] == "not_found"


def test_list_is_an_array_with_total_header(client, tokens, posted):
    response = listed(client, tokens)
    assert response.json == posted  # default order: id ascending = creation order
    assert response.headers["X-Total-Count"] == "4"
    page = listed(client, tokens, "page_size=2&offset=1")
    assert [event["id"] for event in page.json] == [posted[1]["id"], posted[2]["id"]]
    assert page.headers["X-Total-Count"] == "4"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("session_id=1", [0, 1]),
        ("session_id=1,2", [0, 1, 2, 3]),
        ("event_type=start_listen", [1, 2]),
        ("event_type=heartbeat,start_session", [0, 3]),
        ("tag_ids=3", [0, 1, 2]),
        ("tag_ids=3,8", [0, 2]),
        ("tag_ids=9,3,8", [2]),
        ("latitude=45.5", [0]),
        ("longitude=2", [2]),
        ("latitude=null", [1, 3]),
    ],
)
def test_filters(client, tokens, posted, query, expected):
    assert [event["id"] for event in listed(client, tokens, query).json] == [
        posted[i]["id"] for i in expected
    ]


def test_server_time_filters(client, tokens, posted):
    first, second = posted[0]["server_time"], posted[1]["server_time"]
    day = first[:10]
    assert len(listed(client, tokens, f"server_time={day}").json) == 4
    assert listed(client, tokens, "server_time=2017-04-15").json == []
    exact = listed(client, tokens, f"server_time={first}").json
    assert posted[0] in exact and all(event["server_time"] == first for event in exact)
    after = listed(client, tokens, f"server_time__gt={first}").json
    assert posted[0] not in after and posted[1] in after
    before = listed(client, tokens, f"server_time__lt={second}").json
    assert posted[1] not in before and posted[0] in before
    assert (
        listed(client, tokens, "server_time__gt=2000-01-01T00:00:00%2B02:00").headers["X-Total-Count"] == "4"
    )


def test_server_time_filters_are_utc_and_time_zone_needs_a_date_group(client, tokens, posted):
    """docs/api.md §5: times without an offset are UTC; a time_zone could change nothing here."""
    day = posted[0]["server_time"][:10]
    assert listed(client, tokens, f"session_id=1,2&server_time={day}").headers["X-Total-Count"] == "4"
    refused = client.get(
        f"/api/2/events/?server_time={day}&time_zone=%2B14:00", headers=auth(tokens["query"])
    )
    assert refused.status_code == 400 and "time_zone" in refused.json["error"]["message"]


def test_grouped_query_in_the_cdx_shape(client, tokens, posted):
    day = posted[0]["server_time"][:10]
    result = listed(client, tokens, "group_by=event_type,day(server_time)").json
    assert result["total_count"] == 4
    assert result["events"] == [
        {"event_type": "heartbeat", "server_time": day, "count": 1},
        {"event_type": "start_listen", "server_time": day, "count": 2},
        {"event_type": "start_session", "server_time": day, "count": 1},
    ]
    by_day = listed(client, tokens, "group_by=day(server_time)&order_by=-server_time").json["events"]
    assert by_day == [{"server_time": day, "count": 4}]
    ambiguous = client.get(
        "/api/2/events/?group_by=month(client_time),day(client_time)", headers=auth(tokens["query"])
    )
    assert ambiguous.status_code == 400
    assert "client_time" in str(ambiguous.json["error"]["details"]["fields"]["group_by"])


def test_whole_answer_stats_come_in_a_header(client, tokens, posted):
    response = listed(client, tokens, "session_id=1,2&stats=latitude,longitude")
    assert response.json == posted  # the array keeps its shape
    stats = json.loads(response.headers["X-Stats"])
    assert set(stats) == {"latitude", "longitude"}
    assert (stats["latitude"]["count"], stats["latitude"]["min"], stats["latitude"]["max"]) == (2, 1, 45.5)
    assert (stats["longitude"]["min"], stats["longitude"]["max"]) == (-73.25, 2)
    assert set(stats["latitude"]["percentiles"]) == {"25", "50", "75", "90", "95"}
    count_only = listed(client, tokens, "session_id=1,2&stats=latitude&page_size=0")
    assert count_only.json == [] and json.loads(count_only.headers["X-Stats"]) == {
        "latitude": stats["latitude"]
    }
    assert "X-Stats" not in listed(client, tokens, "session_id=1,2").headers


def test_suppression_of_the_whole_answer_comes_in_headers(client, tokens, posted):
    hidden = listed(client, tokens, "session_id=1,2&page_size=0&min_count=5")
    assert hidden.json == [] and "X-Total-Count" not in hidden.headers  # 4 events: fewer than 5
    assert json.loads(hidden.headers["X-Suppressed"])["min_count"] == 5
    shown = listed(client, tokens, "session_id=1,2&page_size=0&min_count=3")
    assert shown.headers["X-Total-Count"] == "4"
    assert json.loads(shown.headers["X-Suppressed"])["min_count"] == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event_type": "x"}, "session_id"),
        ({"session_id": 1}, "event_type"),
        ({"session_id": 1, "event_type": 5}, "event_type"),
        ({"session_id": 1, "event_type": "x", "latitude": "north"}, "latitude"),
        ({"session_id": 1, "event_type": "x", "tag_ids": "3,a"}, "tag_ids"),
        ({"session_id": 1, "event_type": "x", "id": 7}, "id"),
        ({"session_id": 1, "event_type": "x", "server_time": "2020-01-01"}, "server_time"),
    ],
)
def test_invalid_events_are_400(client, tokens, body, field):
    response = client.post("/api/2/events/", json=body, headers=auth(tokens["ingest"]))
    assert response.status_code == 400
    assert field in response.json["error"]["details"]["fields"]


def test_unknown_filter_is_400(client, tokens):
    response = client.get("/api/2/events/?sesion_id=1", headers=auth(tokens["query"]))
    assert response.status_code == 400
    assert "session_id" in response.json["error"]["details"]["valid"]


def test_batch_form(client, tokens):
    batch = [{"session_id": 9, "event_type": "a"}, {"session_id": "x"}]
    response = client.post("/api/2/events/?refresh=wait_for", json=batch, headers=auth(tokens["ingest"]))
    assert response.status_code == 207
    assert response.json["stored"] == 1 and isinstance(response.json["ids"][0], int)
    assert listed(client, tokens, "session_id=9").headers["X-Total-Count"] == "1"


def test_restricted_tokens_cannot_use_roundware(client, tokens):
    assert client.get("/api/2/events/", headers=auth(tokens["inst1"])).status_code == 403


def _create_events(es_url: str, prefix: str, secret: str, count: int, queue) -> None:
    from service import create_app
    from service.config import Settings

    client = create_app(Settings.from_env(es_url=es_url, index_prefix=prefix)).test_client()
    ids = []
    for start in range(0, count, 50):
        batch = [{"session_id": 100, "event_type": "load"} for _ in range(min(50, count - start))]
        response = client.post("/api/2/events/", json=batch, headers=auth(secret))
        ids += response.json["ids"]
    single = client.post(
        "/api/2/events/", json={"session_id": 100, "event_type": "one"}, headers=auth(secret)
    )
    queue.put([*ids, single.json["id"]])


def test_ids_from_several_processes_are_unique(settings, tokens):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [
        context.Process(
            target=_create_events, args=(settings.es_url, settings.index_prefix, tokens["ingest"], 400, queue)
        )
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    ids = [int(i) for _ in workers for i in queue.get(timeout=300)]
    for worker in workers:
        worker.join(60)
    assert len(ids) == 4 * 401
    assert len(set(ids)) == len(ids)
    assert all(0 < i < 2**53 for i in ids)
    # Each process leased slots of its own (a slot given back at exit may serve a later one).
    assert 1 <= len({decompose(i)[1] for i in ids}) <= 4


def test_client_time_is_corrected_with_sent_at(client, tokens):
    body = {
        "sent_at": "2020-01-01T00:00:00Z",
        "events": [{"session_id": 77, "event_type": "skew", "client_time": "2020-01-01T00:00:00Z"}],
    }
    response = client.post("/api/2/events/?refresh=wait_for", json=body, headers=auth(tokens["ingest"]))
    assert response.status_code == 201, response.json
    (event,) = listed(client, tokens, "session_id=77").json
    assert event["clock_correction"]["original"] == {"client_time": "2020-01-01T00:00:00Z"}
    assert event["client_time"][:10] == event["server_time"][:10]  # moved to about now
