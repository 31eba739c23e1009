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
    """The key a date grouping's rows carry: its field (`day(start_time)` → `start_time`)."""
    return name[name.index("(") + 1 : -1]


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


def rows_of(result, group: str) -> list[tuple]:
    return [(row[date_key(group)], row["count"]) for row in result["events"]]


@pytest.mark.parametrize(
    ("query", "group", "expected"),
    [
        ("uuid=edge-first,edge-early&time_zone=%2B05:00", "day(start_time)", [("0001-01-01", 2)]),
        ("uuid=edge-first,edge-early&time_zone=%2B05:00", "month(start_time)", [("0001-01", 2)]),
        ("uuid=edge-first,edge-early&time_zone=%2B18:00", "year(start_time)", [("0001", 2)]),
        # 0001-01-01 is a Monday: its Sunday week starts in year 0 and is named after its Wednesday.
        ("uuid=edge-first,edge-early&week_start=sunday", "week(start_time)", [("0001-W01", 2)]),
        ("uuid=edge-early&time_zone=-05:00&week_start=sunday", "week(start_time)", [("0001-W01", 1)]),
        ("uuid=edge-late,edge-last&time_zone=%2B05:00", "week(start_time)", [("9999-W52", 2)]),
        (
            "uuid=edge-late,edge-last&time_zone=%2B05:00&week_start=sunday",
            "week(start_time)",
            [("9999-W52", 2)],
        ),
        ("uuid=edge-late,edge-last&time_zone=-18:00", "day(start_time)", [("9999-12-31", 2)]),
        ("uuid=edge-late,edge-last", "month(start_time)", [("9999-12", 2)]),
        ("uuid=edge-late,edge-last&page_size=10", "year(start_time)", [("9999", 2)]),
    ],
)
def test_date_buckets_at_the_calendar_ends(client, tokens, query, group, expected):
    assert rows_of(get(client, tokens, f"/events?group_by={group}&{query}"), group) == expected


@pytest.mark.parametrize(
    "query",
    [
        "group_by=day(start_time)&uuid=edge-late&time_zone=%2B05:00",  # 10000-01-01 there
        "group_by=day(start_time)&uuid=edge-late&time_zone=%2B05:00&page_size=10",
        "group_by=year(start_time)&uuid=edge-last&time_zone=%2B00:01",
        "group_by=month(start_time)&uuid=edge-early&time_zone=-05:00",  # 0000-12-31 there
        "group_by=week(start_time)&uuid=edge-early&time_zone=-05:00",  # its Thursday is in year 0
        "group_by=day(start_time)&uuid=edge-first&time_zone=America/New_York",
        "group_by=day(start_time)&fill=zero&uuid=edge-mid&since=9999-12-30"
        "&until=9999-12-31T23:59:59.999&time_zone=%2B05:00",
        "group_by=month(start_time)&fill=zero&uuid=edge-mid&since=0001-01-01&time_zone=-01:00",
    ],
)
def test_date_buckets_beyond_the_calendar_are_refused(client, tokens, query):
    refused(client, tokens, f"/events?{query}", "time_zone")


WEEKS_OF_9999_12 = [("9999-W48", 0), ("9999-W49", 0), ("9999-W50", 0), ("9999-W51", 0), ("9999-W52", 2)]


@pytest.mark.parametrize(
    ("path", "group", "expected"),
    [
        (
            "/events?fill=zero&since=9999-12-25",
            "day(start_time)",
            [(f"9999-12-{day}", 0) for day in range(25, 31)] + [("9999-12-31", 2)],
        ),
        (
            "/events?fill=zero&since=9999-01-01",
            "month(start_time)",
            [(f"9999-{month:02d}", 0) for month in range(1, 12)] + [("9999-12", 2)],
        ),
        (
            "/events?fill=zero&since=9990-01-01",
            "year(start_time)",
            [(str(year), 0) for year in range(9990, 9999)] + [("9999", 2)],
        ),
        ("/events?fill=zero&since=9999-12-01&week_start=sunday", "week(start_time)", WEEKS_OF_9999_12),
        (
            "/events?fill=zero&until=0001-01-20&week_start=sunday",
            "week(start_time)",
            [("0001-W01", 2), ("0001-W02", 0), ("0001-W03", 0)],
        ),
        (
            "/events?fill=zero&until=0001-01-03",
            "day(start_time)",
            [("0001-01-01", 2), ("0001-01-02", 0), ("0001-01-03", 0)],
        ),
        (
            "/api/2/events/?fill=zero&server_time=9999-12",
            "day(server_time)",
            [(f"9999-12-{day:02d}", int(day in (15, 31))) for day in range(1, 32)],
        ),
        ("/api/2/events/?fill=zero&server_time__lt=0001-01-03", "day(server_time)", []),
        (
            "/api/2/events/?fill=zero&server_time__gt=9999-12-30T00:00:00Z",
            "day(server_time)",
            [("9999-12-30", 0), ("9999-12-31", 1)],
        ),
        (  # strict bounds: the day of `__lt`'s instant is not filled
            "/api/2/events/?fill=zero&server_time__gt=9999-12-12T23:59:59.999Z&server_time__lt=9999-12-15",
            "day(server_time)",
            [("9999-12-13", 0), ("9999-12-14", 0)],
        ),
    ],
)
def test_zero_fill_at_the_calendar_ends(client, tokens, path, group, expected):
    assert rows_of(get(client, tokens, f"{path}&group_by={group}"), group) == expected


def test_zero_fill_is_limited_by_rows_only(client, tokens):
    """The one limit is 200,000 rows: eleven thousand days are filled, not refused."""
    query = "group_by=day(start_time)&fill=zero&since=2000-01-01&until=2030-12-31&uuid=edge-mid"
    rows = rows_of(get(client, tokens, f"/events?{query}"), "day(start_time)")
    assert len(rows) == 11_323 and rows[0] == ("2000-01-01", 0) and rows[-1] == ("2030-12-31", 0)
    assert [row for row in rows if row[1]] == [("2024-06-15", 1)]


@pytest.mark.parametrize(
    "query",
    [
        "group_by=test_type,day(start_time)&fill=zero&since=1800-01-01&until=2099-12-31",  # 219,144 rows
        "group_by=day(start_time)&fill=zero",  # every day from year 1 to 9999
    ],
)
def test_zero_fill_past_200000_rows_is_refused(client, tokens, query):
    error = refused(client, tokens, f"/events?{query}", "fill")
    assert "200000" in error["error"]["message"]


def test_retention_reads_the_months_at_the_calendar_ends(runner, settings):
    """Indices of years 1 and 9999 exist (events may carry those dates): retention lists the
    old one, keeps the late one, and an age reaching before year 1 is a usage error."""
    dry = runner.invoke(args=["retention", "--older-than", "1d"])
    assert dry.exit_code == 0, dry.output
    lines = dry.stdout.splitlines()
    assert f"would delete {settings.index_prefix}cdx-0001.01" in lines
    # Any index of year 9999 (`-9999.MM`), not any "9999": the random test prefix may hold that.
    named = [line.removeprefix(f"would delete {settings.index_prefix}") for line in lines]
    assert not [name for name in named if "-9999." in name]
    for age in ("99999y", "999999d", "9999999999w", "99999999999m"):
        refused = runner.invoke(args=["retention", "--older-than", age])
        assert refused.exit_code == 2 and "--older-than" in refused.output, (age, refused.output)
