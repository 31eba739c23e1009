"""Dates at the calendar's ends (years 1 and 9999) and time zones at theirs (±18:00), on a real
node: every answer is a right one or a 4xx naming the parameter, never a 5xx."""

from __future__ import annotations

import pytest

from tests.conftest import auth, empty_index

EDGE_EVENTS = [
    {"uuid": "edge-first", "start_time": "0001-01-01T00:00:00Z"},
    {"uuid": "edge-early", "start_time": "0001-01-01T02:00:00Z"},
    {"uuid": "edge-mid", "start_time": "2024-06-15T12:00:00Z"},
    {"uuid": "edge-late", "start_time": "9999-12-31T22:00:00Z"},
    {"uuid": "edge-last", "start_time": "9999-12-31T23:59:59.999Z"},
]
#: Roundware events near the end, written straight into their monthly index: the service sets
#: `server_time` to the time of ingest, so no request can make them.
ROUNDWARE_LATE = [
    {"id": 1, "session_id": 1, "event_type": "late", "server_time": "9999-12-15T00:00:00.000Z"},
    {"id": 2, "session_id": 1, "event_type": "last", "server_time": "9999-12-31T23:59:59.999Z"},
]


def roundware_at(client_time: str) -> dict:
    return {"session_id": 1, "event_type": "a", "client_time": client_time}


def date_key(name: str) -> str:
    """The key a date grouping's rows carry (one place to change when they are keyed otherwise)."""
    return name


@pytest.fixture(scope="module", autouse=True)
def loaded(app, es, settings, tokens):
    empty_index(es, settings, "cdx")
    empty_index(es, settings, "roundware")
    client = app.test_client()
    response = client.post("/events?refresh=wait_for", json=EDGE_EVENTS, headers=auth(tokens["ingest"]))
    assert response.status_code == 201, response.json
    for event in ROUNDWARE_LATE:
        index = f"{settings.index_prefix}roundware-9999.12"
        es.index(index=index, id=str(event["id"]), document=event, refresh=True)


def get(client, tokens, path):
    response = client.get(path, headers=auth(tokens["query"]))
    assert response.status_code == 200, response.json
    return response.json


def refused(client, tokens, path, parameter):
    response = client.get(path, headers=auth(tokens["query"]))
    assert response.status_code == 400, response.json
    assert response.json["error"]["code"] == "validation_error"
    assert parameter in response.json["error"]["details"]["fields"], response.json
    return response.json


def uuids(result) -> list[str]:
    return sorted(event["uuid"] for event in result["events"])


@pytest.mark.parametrize(
    ("path", "event", "field"),
    [
        ("/events", {"start_time": "9999-12-31T23:00:00-05:00"}, "start_time"),  # 10000-01-01 in UTC
        ("/events", {"created_at": "0001-01-01T00:00:00+05:00"}, "created_at"),  # year 0 in UTC
        (
            "/api/2/events/",
            {"session_id": 1, "event_type": "a", "client_time": "9999-12-31T23:00-05:00"},
            "client_time",
        ),
        (
            "/api/2/events/",
            {"session_id": 1, "event_type": "a", "client_time": "0001-01-01T01:00+02:00"},
            "client_time",
        ),
    ],
)
def test_ingest_refuses_times_outside_utc_years_1_to_9999(client, tokens, path, event, field):
    response = client.post(path, json=event, headers=auth(tokens["ingest"]))
    assert response.status_code == 400, response.json
    assert field in response.json["error"]["details"]["fields"], response.json


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("since=0001-01-01", ["edge-early", "edge-first", "edge-last", "edge-late", "edge-mid"]),
        ("until=0001-01-01T00:00:00Z", ["edge-first"]),
        ("until=9999-12-31T23:59:59.999", ["edge-early", "edge-first", "edge-last", "edge-late", "edge-mid"]),
        ("since=9999-12-31T23:59:59.999Z", ["edge-last"]),
        ("since=0001-01-01T00:00:00-01:00&until=0001-01-01T05:00:00Z", ["edge-early"]),
    ],
)
def test_filter_bounds_at_the_calendar_ends(client, tokens, query, expected):
    assert uuids(get(client, tokens, f"/events?{query}")) == expected


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/events?since=0001-01-01T00:00:00%2B05:00", "since"),
        ("/events?until=9999-12-31T23:00:00-05:00", "until"),
        ("/events?created_at_until=9999-12-31T20:00-18:00", "created_at_until"),
        ("/api/2/events/?server_time__lt=0001-01-01T00:00:00%2B01:00", "server_time__lt"),
        ("/api/2/events/?server_time=0001-01-01T00%2B05:00", "server_time"),
        ("/api/2/events/?server_time=9999-12-31T23-05:00", "server_time"),
    ],
)
def test_filter_bounds_beyond_the_calendar_are_refused(client, tokens, path, parameter):
    refused(client, tokens, path, parameter)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("server_time=9999", ["last", "late"]),
        ("server_time=9999-12", ["last", "late"]),
        ("server_time=9999-12-31", ["last"]),
        ("server_time=9999-12-31T23", ["last"]),
        ("server_time=9999-12-31T23:59:59.999", ["last"]),
        ("server_time=9999-12-31-05:00", ["last"]),  # runs past the end of UTC's year 9999
        ("server_time__gt=9999-12-31T23:59:59.998Z", ["last"]),
        ("server_time__lt=0001-01-01", []),
        ("server_time__lt=0001-01-01T00:00:00.001Z", []),
    ],
)
def test_partial_server_time_at_the_calendar_ends(client, tokens, query, expected):
    events = get(client, tokens, f"/api/2/events/?{query}")
    assert sorted(event["event_type"] for event in events) == expected


@pytest.mark.parametrize(
    ("zone", "day"),
    [
        ("%2B18:00", "2024-06-16"),
        ("-18:00", "2024-06-14"),
        ("%2B1800", "2024-06-16"),
        ("-00:00", "2024-06-15"),
    ],
)
def test_time_zone_offsets_up_to_18_hours(client, tokens, zone, day):
    key = date_key("day(start_time)")
    rows = get(client, tokens, f"/events?group_by=day(start_time)&uuid=edge-mid&time_zone={zone}")["events"]
    assert rows == [{key: day, "count": 1}]


@pytest.mark.parametrize(
    "zone",
    [
        "%2B18:01",
        "-18:01",
        "%2B24:00",
        "%2B05:00:30",
        "%2B5:00",
        "EST",
        "Factory",
        "localtime",
        "posix/Europe/Berlin",
    ],
)
def test_time_zones_elasticsearch_cannot_read_are_refused(client, tokens, zone):
    refused(client, tokens, f"/events?group_by=day(start_time)&time_zone={zone}", "time_zone")
