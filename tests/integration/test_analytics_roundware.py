"""Surveillance answers on roundware, on a real node: rates, distinct counts, top N, period
comparison and the reporting delay (`delay_seconds`), grouped and for the bare array (in
`X-Rate`, `X-Distinct`, `X-Compare`), in the query string and in a JSON body on GET."""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from service.ids import time_of
from tests.conftest import auth, empty_index

Z = 1.959963984540054
TYPES = ["start_session", "start_listen", "heartbeat", "heartbeat", "stop_listen"]


def make_batch(seed: int, count: int) -> list[dict]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    events = []
    for _ in range(count):
        event = {"session_id": rng.randrange(1, 25), "event_type": rng.choice(TYPES)}
        if rng.random() < 0.8:
            event["tag_ids"] = sorted(rng.sample(range(1, 12), rng.choice([1, 1, 2, 3])))
        if rng.random() < 0.7:
            skew = timedelta(seconds=rng.choice([0.5, 3, 40, 400, 5000]))
            event["client_time"] = (now - skew).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        events.append(event)
    return events


@pytest.fixture(scope="module")
def stored(app, es, settings, tokens):
    """Two batches posted 1.5 s apart: the earlier one is the later one's previous period."""
    empty_index(es, settings, "roundware")
    client = app.test_client()
    batches = []
    for seed in (1, 2):
        events = make_batch(seed, 150)
        response = client.post("/api/2/events/?refresh=wait_for", json=events, headers=auth(tokens["ingest"]))
        assert response.status_code == 201, response.json
        for event, event_id in zip(events, response.json["ids"], strict=True):
            event["server_time"] = time_of(event_id)
        batches.append(events)
        time.sleep(1.5)
    return batches


@pytest.fixture(scope="module")
def events(stored):
    return stored[0] + stored[1]


def listed(client, tokens, query: str):
    response = client.get(f"/api/2/events/?{query}", headers=auth(tokens["query"]))
    assert response.status_code == 200, response.json
    return response


def refused(client, tokens, query: str) -> dict:
    response = client.get(f"/api/2/events/?{query}", headers=auth(tokens["query"]))
    assert response.status_code == 400, response.json
    return response.json["error"]["details"]["fields"]


def with_body(client, tokens, body: dict):
    response = client.get("/api/2/events/", json=body, headers=auth(tokens["query"]))
    assert response.status_code == 200, response.json
    return response


def all_pages(client, tokens, query: str, size: int) -> list[dict]:
    rows, cursor = [], None
    while True:
        page = listed(
            client, tokens, f"{query}&page_size={size}" + (f"&cursor={cursor}" if cursor else "")
        ).json
        rows += page["events"]
        cursor = page["next_cursor"]
        if not cursor:
            return rows


def check_rate(found: dict, numerator: int, denominator: int) -> None:
    assert (found["numerator"], found["denominator"]) == (numerator, denominator)
    p = numerator / denominator
    root = Z * math.sqrt(Z * Z + 4 * denominator * p * (1 - p))
    low = (2 * denominator * p + Z * Z - root) / (2 * (denominator + Z * Z))
    high = (2 * denominator * p + Z * Z + root) / (2 * (denominator + Z * Z))
    assert found["value"] == pytest.approx(p, abs=1e-12)
    assert found["ci95"] == [pytest.approx(max(0, low), abs=1e-9), pytest.approx(min(1, high), abs=1e-9)]


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_rates_per_row_and_in_x_rate(client, tokens, events):
    rows = listed(
        client, tokens, "group_by=session_id&rate=event_type:heartbeat,event_type:start_listen"
    ).json
    sessions = defaultdict(list)
    for e in events:
        sessions[e["session_id"]].append(e)
    assert [row["session_id"] for row in rows["events"]] == sorted(sessions)
    for row in rows["events"]:
        mine = sessions[row["session_id"]]
        check_rate(
            row["rate"]["event_type:heartbeat"], sum(e["event_type"] == "heartbeat" for e in mine), len(mine)
        )
        check_rate(
            row["rate"]["event_type:start_listen"],
            sum(e["event_type"] == "start_listen" for e in mine),
            len(mine),
        )
    array = listed(client, tokens, "rate=event_type:heartbeat&tag_ids=3&page_size=2")
    tagged = [e for e in events if 3 in e.get("tag_ids", [])]
    assert len(array.json) == 2 and array.headers["X-Total-Count"] == str(len(tagged))
    rate = json.loads(array.headers["X-Rate"])
    check_rate(rate["event_type:heartbeat"], sum(e["event_type"] == "heartbeat" for e in tagged), len(tagged))


def test_distinct_per_row_and_in_x_distinct(client, tokens, events):
    rows = listed(client, tokens, "group_by=event_type&distinct=session_id,tag_ids").json["events"]
    for row in rows:
        mine = [e for e in events if e["event_type"] == row["event_type"]]
        assert row["distinct"] == {
            "session_id": {"count": len({e["session_id"] for e in mine}), "exact": True},
            "tag_ids": {"count": len({t for e in mine for t in e.get("tag_ids", [])}), "exact": True},
        }
    array = listed(client, tokens, "distinct=session_id&page_size=0&event_type=heartbeat")
    heartbeats = {e["session_id"] for e in events if e["event_type"] == "heartbeat"}
    assert array.json == [] and json.loads(array.headers["X-Distinct"]) == {
        "session_id": {"count": len(heartbeats), "exact": True}
    }


def test_top_tags_count_each_event_once_in_other(client, tokens, events):
    tags = Counter(t for e in events for t in e.get("tag_ids", []))
    order = sorted(tags, key=lambda t: (-tags[t], t))
    kept, merged = order[:3], order[3:]
    rows = listed(client, tokens, "group_by=tag_ids&top=tag_ids:3").json["events"]
    assert rows == [
        {"tag_ids": None, "count": sum("tag_ids" not in e for e in events)},
        *[{"tag_ids": t, "count": tags[t]} for t in sorted(kept)],
        {
            "tag_ids": {"other": len(merged)},
            "count": sum(any(t in merged for t in e.get("tag_ids", [])) for e in events),
        },
    ]


def test_top_with_rates_min_count_and_cursor_pages(client, tokens, events):
    query = "group_by=session_id,event_type&top=session_id:4&rate=event_type:heartbeat"
    rows = listed(client, tokens, query).json["events"]
    sessions = Counter(e["session_id"] for e in events)
    kept = sorted(sessions, key=lambda s: (-sessions[s], s))[:4]
    expected = Counter(
        (e["session_id"] if e["session_id"] in kept else "other", e["event_type"]) for e in events
    )
    found = {
        ("other" if isinstance(row["session_id"], dict) else row["session_id"], row["event_type"]): row
        for row in rows
    }
    assert {key: row["count"] for key, row in found.items()} == dict(expected)
    assert all_pages(client, tokens, query, 4) == rows
    hidden = listed(client, tokens, f"{query}&min_count=8").json
    small = {key for key, n in expected.items() if 0 < n < 8}
    if any(session != "other" for session, _ in small):  # a kept session hidden: merged rows too
        small |= {key for key in expected if key[0] == "other"}
    assert hidden["suppressed"]["rows"] == len(small) > 0
    for shown, row in zip(hidden["events"], rows, strict=True):
        key = ("other" if isinstance(row["session_id"], dict) else row["session_id"], row["event_type"])
        assert shown["count"] == (None if key in small else row["count"])


def test_compare_with_the_previous_period_by_ids_times(client, tokens, stored):
    first, second = stored
    # A period holding the second batch only, starting between the two: the previous one,
    # as long and ending where it starts, holds the first.
    start = max(e["server_time"] for e in first) + timedelta(milliseconds=700)
    length = max(max(e["server_time"] for e in second) - start, start - min(e["server_time"] for e in first))
    end = start + length + timedelta(seconds=1)
    bounds = f"server_time__gt={iso(start)}&server_time__lt={iso(end)}"
    rows = listed(client, tokens, f"group_by=event_type&{bounds}&compare=previous").json["events"]
    now, then = Counter(e["event_type"] for e in second), Counter(e["event_type"] for e in first)
    assert rows == [
        {
            "event_type": t,
            "count": now[t],
            "previous": {"count": then[t]},
            "change": (now[t] - then[t]) / then[t],
        }
        for t in sorted(set(now) | set(then))
    ]
    # The same as a separate query of the period before: (start - L, start], L = end - start - 1 ms.
    before = start - (end - start - timedelta(milliseconds=1))
    upto = iso(start + timedelta(milliseconds=1))
    earlier = listed(
        client, tokens, f"group_by=event_type&server_time__gt={iso(before)}&server_time__lt={upto}"
    ).json["events"]
    assert {row["event_type"]: row["count"] for row in earlier} == dict(then)
    array = listed(client, tokens, f"{bounds}&compare=previous&page_size=0")
    assert array.headers["X-Total-Count"] == str(len(second))
    assert json.loads(array.headers["X-Compare"]) == {
        "previous": {"count": len(first)},
        "change": (len(second) - len(first)) / len(first),
    }
    assert all_pages(client, tokens, f"group_by=event_type&{bounds}&compare=previous", 2) == rows


def test_compare_a_partial_day_with_the_day_before_and_a_year_earlier(client, tokens, events):
    day = events[0]["server_time"].date().isoformat()
    for how in ("previous", "year"):
        rows = listed(client, tokens, f"group_by=event_type&server_time={day}&compare={how}").json["events"]
        counts = Counter(e["event_type"] for e in events if e["server_time"].date().isoformat() == day)
        assert {row["event_type"]: row["count"] for row in rows} == dict(counts)
        assert all(row["previous"] == {"count": 0} and row["change"] is None for row in rows)


def test_reporting_delay_stats_and_ranges_in_a_json_body(client, tokens, events):
    delays = [
        (e["server_time"] - datetime.fromisoformat(e["client_time"])).total_seconds()
        for e in events
        if "client_time" in e
    ]
    stats = json.loads(listed(client, tokens, "stats=delay_seconds&page_size=0").headers["X-Stats"])[
        "delay_seconds"
    ]
    assert (stats["count"], stats["min"], stats["max"]) == (len(delays), min(delays), max(delays))
    assert stats["avg"] == pytest.approx(sum(delays) / len(delays))
    ranges = [[None, 1], [1, 60], [60, 3600], [3600, None]]
    rows = with_body(client, tokens, {"group_by": [{"delay_seconds": ranges}, "event_type"]}).json["events"]
    expected = Counter()
    for e in events:
        if "client_time" in e:
            delay = (e["server_time"] - datetime.fromisoformat(e["client_time"])).total_seconds()
            for low, high in ranges:
                if (low is None or low <= delay) and (high is None or delay < high):
                    expected[((low, high), e["event_type"])] += 1
    assert {(tuple(row["delay_seconds"]), row["event_type"]): row["count"] for row in rows} == expected
    event = listed(client, tokens, "page_size=1").json[0]
    assert "delay_seconds" not in event and "derived" not in event


def test_a_json_body_on_get_reads_as_the_query_string(client, tokens, events):
    query = "group_by=event_type&rate=event_type:heartbeat&distinct=session_id&session_id=1,2,3,4,5"
    body = {
        "group_by": ["event_type"],
        "rate": ["event_type:heartbeat"],
        "distinct": ["session_id"],
        "session_id": [1, 2, 3, 4, 5],
    }
    assert with_body(client, tokens, body).json == listed(client, tokens, query).json
    array = with_body(client, tokens, {"rate": "event_type:heartbeat", "page_size": 3})
    assert (
        array.headers["X-Rate"]
        == listed(client, tokens, "rate=event_type:heartbeat&page_size=3").headers["X-Rate"]
    )
    mixed = client.get("/api/2/events/?page_size=2", json=body, headers=auth(tokens["query"]))
    assert mixed.status_code == 400 and list(mixed.json["error"]["details"]["fields"]) == ["page_size"]


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("group_by=event_type&rate=session_id:3", "rate"),
        ("group_by=event_type&rate=tag_ids:3", "rate"),
        ("group_by=event_type&distinct=event_type", "distinct"),
        ("top=tag_ids:2", "top"),
        ("group_by=event_type&top=tag_ids:2", "top"),
        ("group_by=event_type&compare=previous", "compare"),
        ("group_by=event_type&server_time__gt=2026-01-01&compare=year", "compare"),
        ("group_by=day(server_time)&server_time=2026-01-01&compare=year", "compare"),
    ],
)
def test_a_parameter_that_cannot_apply_is_a_400_naming_it(client, tokens, query, name):
    assert list(refused(client, tokens, query)) == [name]


def test_rates_and_distinct_by_local_day_with_cursor_pages_and_min_count(client, tokens, events):
    query = (
        "group_by=day(server_time),event_type&time_zone=Pacific/Kiritimati"
        "&rate=event_type:heartbeat&distinct=session_id,tag_ids"
    )
    rows = listed(client, tokens, query).json["events"]
    zone = ZoneInfo("Pacific/Kiritimati")
    expected = defaultdict(list)
    for e in events:
        expected[(e["server_time"].astimezone(zone).date().isoformat(), e["event_type"])].append(e)
    assert {(row["server_time"], row["event_type"]) for row in rows} == set(expected)
    for row in rows:
        mine = expected[(row["server_time"], row["event_type"])]
        check_rate(
            row["rate"]["event_type:heartbeat"], sum(e["event_type"] == "heartbeat" for e in mine), len(mine)
        )
        assert row["distinct"]["session_id"] == {"count": len({e["session_id"] for e in mine}), "exact": True}
    assert all_pages(client, tokens, query, 2) == rows
    k = 70
    hidden = listed(client, tokens, f"{query}&min_count={k}").json
    for shown, row in zip(hidden["events"], rows, strict=True):
        if row["count"] < k:
            assert shown["count"] is None and shown["distinct"] == {"session_id": None, "tag_ids": None}
            assert shown["rate"]["event_type:heartbeat"]["numerator"] is None
        else:
            assert shown["count"] == row["count"] and shown["distinct"] == row["distinct"]
            numerator = row["rate"]["event_type:heartbeat"]["numerator"]
            small = 0 < numerator < k or 0 < row["count"] - numerator < k
            assert shown["rate"]["event_type:heartbeat"]["numerator"] == (None if small else numerator)
    assert hidden["suppressed"]["rows"] == sum(row["count"] < k for row in rows) > 0
