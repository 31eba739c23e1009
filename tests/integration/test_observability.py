"""Metrics and JSON request logs on a real node, and metrics added up across gunicorn workers."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from scripts.local_es import free_port
from service.ingest import pipeline
from service.observability import JsonFormatter
from tests.conftest import ROOT, auth
from tests.load import wait_until_up


def samples(text: str) -> dict[tuple, float]:
    """(sample name, sorted labels) → value, from a Prometheus exposition."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client) -> dict[tuple, float]:
    response = client.get("/metrics")  # no token: Prometheus scrapes without one
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return samples(response.get_data(as_text=True))


def delta(before: dict, after: dict, name: str, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_metrics_count_requests_ingest_and_elasticsearch(app, client, tokens, fresh_cdx):
    before = scrape(client)
    batch = [{"uuid": "m1"}, {"uuid": "m1"}, {"age": "old"}, {"uuid": "m2"}]
    response = client.post("/events?refresh=wait_for", json=batch, headers=auth(tokens["ingest"]))
    assert response.status_code == 207
    assert client.get("/events/m1", headers=auth(tokens["query"])).status_code == 200
    assert client.get("/events/nope", headers=auth(tokens["query"])).status_code == 404
    with pytest.raises(Exception, match="index_not_found"):
        app.extensions["es"].indices.get(index="no-such-index-for-metrics")
    after = scrape(client)

    requests = "http_requests_total"
    assert delta(before, after, requests, endpoint="/events", method="POST", status="207") == 1
    assert delta(before, after, requests, endpoint="/events/<event_id>", method="GET", status="200") == 1
    assert delta(before, after, requests, endpoint="/events/<event_id>", method="GET", status="404") == 1
    latency = "http_request_duration_seconds_count"
    assert delta(before, after, latency, endpoint="/events/<event_id>", method="GET") == 2
    ingested = "events_ingested_total"
    assert delta(before, after, ingested, dataset="cdx", outcome="stored") == 2
    assert delta(before, after, ingested, dataset="cdx", outcome="duplicate") == 1
    assert delta(before, after, ingested, dataset="cdx", outcome="rejected") == 1
    assert delta(before, after, "ingest_batch_events_count", dataset="cdx") == 1
    assert delta(before, after, "ingest_batch_events_sum", dataset="cdx") == 3
    # Two: the claims of the uuids without a time of their own, then the events.
    assert delta(before, after, "elasticsearch_request_duration_seconds_count", operation="bulk") == 2
    assert delta(before, after, "elasticsearch_errors_total", operation="indices.get", error="404") == 1


def test_the_batch_metric_counts_each_bulk_a_batch_is_sent_in(app, client, tokens, fresh_cdx, monkeypatch):
    """`ingest_batch_events` observes every `_bulk` (README: metrics), not every request."""
    monkeypatch.setattr(pipeline, "BULK_EVENTS", 2)
    before = scrape(client)
    batch = [{"uuid": f"slice-{n}", "start_time": "2024-05-01T10:00:00Z"} for n in range(5)]
    assert client.post("/events", json=batch, headers=auth(tokens["ingest"])).status_code == 201
    after = scrape(client)
    assert delta(before, after, "ingest_batch_events_count", dataset="cdx") == 3
    assert delta(before, after, "ingest_batch_events_sum", dataset="cdx") == 5


def test_unmatched_routes_and_odd_methods_share_one_label(client):
    before = scrape(client)
    for path in ("/no/such/route", "/another/missing/path"):
        assert client.get(path).status_code == 404
    assert client.open("/health", method="BREW").status_code == 405
    after = scrape(client)
    assert delta(before, after, "http_requests_total", endpoint="unmatched", method="GET", status="404") == 2
    assert (
        delta(before, after, "http_requests_total", endpoint="unmatched", method="other", status="405") == 1
    )


def request_lines(caplog) -> list[dict]:
    formatter = JsonFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if r.name == "service.requests"]


def test_one_json_line_per_request_with_its_id(app, client, tokens, caplog, fresh_cdx):
    caplog.set_level(logging.INFO, logger="service.requests")
    event = {"uuid": "log1", "pii": {"name": "Ann Secretname"}, "gender": "female"}
    response = client.post(
        "/events?refresh=wait_for",
        json=event,
        headers={**auth(tokens["full"]), "X-Request-ID": "client-id-42"},
    )
    assert response.status_code == 201
    assert response.headers["X-Request-ID"] == "client-id-42"
    (line,) = request_lines(caplog)
    assert line["request_id"] == "client-id-42"
    assert (line["method"], line["path"], line["status"]) == ("POST", "/events", 201)
    assert line["endpoint"] == "/events" and line["duration_ms"] >= 0
    assert line["level"] == "info" and line["logger"] == "service.requests"
    token_id = app.extensions["tokens"].authenticate(tokens["full"]).id
    assert line["token_id"] == token_id
    text = json.dumps(line)
    assert tokens["full"] not in text  # never the secret
    assert "Secretname" not in text and "female" not in text  # never the body


@pytest.mark.parametrize("offered", [None, "", "has space", "x" * 129, 'quote"d', "semi;colon"])
def test_unsafe_request_ids_are_replaced(client, caplog, offered):
    caplog.set_level(logging.INFO, logger="service.requests")
    response = client.get("/health", headers={} if offered is None else {"X-Request-ID": offered})
    generated = response.headers["X-Request-ID"]
    assert generated != offered and len(generated) == 32
    assert request_lines(caplog)[-1]["request_id"] == generated
    assert request_lines(caplog)[-1]["token_id"] is None


def test_gunicorn_workers_add_up_their_metrics(settings, tmp_path):
    """Requests served by a worker that then died still count in what its successor serves."""
    port = free_port()
    env = {
        **os.environ,
        "ES_URL": settings.es_url,
        "INDEX_PREFIX": settings.index_prefix,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "GUNICORN_THREADS": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(base)
        (first,) = wait_for_workers(server.pid, exclude=set())
        assert [get(f"{base}/health")[0] for _ in range(10)] == [200] * 10
        os.kill(first, signal.SIGKILL)
        (second,) = wait_for_workers(server.pid, exclude={first})
        assert [get(f"{base}/health")[0] for _ in range(5)] == [200] * 5
        scraped = samples(get(f"{base}/metrics")[1])
        key = ("http_requests_total", (("endpoint", "/health"), ("method", "GET"), ("status", "200")))
        assert scraped[key] == 16  # 1 (the server is up) + 10 by the first worker + 5 by the second
        assert {f"counter_{first}.db", f"counter_{second}.db"} <= {p.name for p in tmp_path.iterdir()}
    finally:
        server.terminate()
        server.wait(30)


def wait_for_workers(master: int, exclude: set[int]) -> list[int]:
    """The pids of the master's worker processes, once none of them is in `exclude`."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pids = []
        for status in Path("/proc").glob("[0-9]*/status"):
            with contextlib.suppress(OSError):
                if f"\nPPid:\t{master}\n" in status.read_text():
                    pids.append(int(status.parent.name))
        if pids and not set(pids) & exclude:
            return pids
        time.sleep(0.2)
    raise TimeoutError("no new gunicorn worker")


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read().decode()
