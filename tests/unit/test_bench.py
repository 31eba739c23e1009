"""The bench's own logic: the floors (bench/floors.py) do the work they stand for, and the
report holds each figure to the goal the performance issue sets for it."""

from __future__ import annotations

import orjson

from bench import floors, report
from bench.data import Dataset
from bench.floor_app import app


def test_the_floor_app_reads_the_event_and_answers_it():
    event = Dataset(5).events(0, 1)[0]
    response = app.test_client().post("/events", data=orjson.dumps(event), content_type="application/json")
    assert response.status_code == 201
    assert response.get_json()["ids"] == [event["uuid"]]


def test_the_batch_floor_writes_each_event_back_under_its_create_action():
    events = Dataset(5).events(0, 3)
    lines = floors.bulk_lines(b"".join(orjson.dumps(event) + b"\n" for event in events)).splitlines()
    assert [orjson.loads(line) for line in lines[1::2]] == events
    assert [orjson.loads(line)["create"]["_id"] for line in lines[::2]] == [e["uuid"] for e in events]


def test_each_floor_is_shown_against_its_own_goal():
    text = report.floor_table([floors.Floor("a", 200.0, "request"), floors.Floor("b", 5.0, "event")])
    assert "| a | 200.0 per request | ≤ 400 µs | 50% |" in text
    assert "| b | 5.0 per event | ≤ 10 µs | 50% |" in text


def test_every_batch_phase_is_held_to_the_batch_goal_and_single_posts_to_theirs():
    assert report.rate_target(report.MAIN_BATCH) == report.BATCH_TARGET
    assert report.rate_target("batch ingest, 1 sender, one month") == report.BATCH_TARGET
    assert report.rate_target("batch ingest, direct into one plain index") == report.BATCH_TARGET
    assert report.rate_target(f"{report.SINGLE} 16 clients") == report.SINGLE_TARGET
