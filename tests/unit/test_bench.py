"""The bench's own logic: the floors (bench/floors.py) do the work they stand for, and the
report holds each figure to the goal the performance issue sets for it."""

from __future__ import annotations

import orjson

from bench import floors, phases, report
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


def test_each_query_shows_the_service_cpu_it_cost_per_query_beside_its_latencies():
    figures = phases.QueryFigures(service=[10.0, 12.0, 30.0], direct=[8.0, 9.0, 9.0], worker_cpu=0.06)
    step = {"size": 1000, "ingest": {}, "rss": {}, "queries": {("grouped", "cache off"): figures}}
    latency, cpu = report.rows([step])
    assert latency[1:5] == ["grouped, cache off: median (p95) ms", "12.0 (30.0)", "9.0 (9.0)", "1.33x"]
    assert cpu == ["1,000", "grouped, cache off: service CPU ms per query", "20.0", "", "", "(no target)", ""]
    unmetered = {**step, "queries": {("grouped", "cache off"): phases.QueryFigures([1.0], [1.0], None)}}
    assert len(report.rows([unmetered])) == 1  # no CPU row rather than a made-up 0


class Recording(phases.QueryRunner):
    """Answers without a service or a node, recording the `since` each side was asked."""

    def __init__(self):
        super().__init__("http://127.0.0.1:1", "", "http://127.0.0.1:1", "bench-cdx*")
        self.asked = []

    def service_once(self, spec: dict) -> int:
        self.asked.append(spec["since"])
        return 1

    def direct_once(self, params) -> int:
        return 1


def test_a_query_made_new_each_run_is_never_asked_twice_not_even_in_the_next_pass():
    runner = Recording()
    runner.compare(phases.new_grouped, runs=4, warmup=2)  # the request cache off
    runner.compare(phases.new_grouped, runs=4, warmup=2)  # then on
    assert len(set(runner.asked)) == len(runner.asked) == 12
    runner.compare(phases.QUERIES["grouped"], runs=2, warmup=1)
    assert runner.asked[-3:] == [phases.QUERIES["grouped"]["since"]] * 3
