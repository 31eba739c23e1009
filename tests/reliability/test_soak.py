"""Soak: a bounded run of mixed ingest and queries at a fixed rate through gunicorn.

Zero errors, every acknowledged event found, and flat worker memory: each worker's resident
memory over the last quarter of the run stays within 20% of its level in the second quarter
(after warm-up). `SOAK_SECONDS` bounds the run (600 in `make reliability`).
"""

from __future__ import annotations

import os
import random
import statistics
import threading
import time
from collections import Counter

from elasticsearch import Elasticsearch

from scripts.local_es import LocalNode
from tests.load import HttpClient, Ledger, Served, cdx_event, figures, found_in_index
from tests.reliability.conftest import make_token

PREFIX = "soak-"
INDEX = f"{PREFIX}cdx"
SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
INGEST_RATE, BATCH = 10.0, 10  # requests per second, events per request
QUERY_RATE = 10.0
SAMPLE_EVERY = 5.0
QUERIES = [
    "/events?page_size=50",
    "/events?group_by=gender,result",
    "/events?group_by=institution,day(start_time)&time_zone=Europe/Paris",
    "/events?min_age=18&gender=female,null&page_size=10&order_by=-age",
    "/events?page_size=0&assay_name=GX*",
    "/api/2/events/?group_by=event_type",
    "/api/2/events/?page_size=20",
]


def paced(rate: float, until: float, action) -> None:
    """Call `action()` `rate` times a second until `until` (a fixed rate, not as fast as possible)."""
    next_at = time.monotonic()
    while next_at < until:
        action()
        next_at += 1 / rate
        time.sleep(max(0.0, next_at - time.monotonic()))


def test_soak_mixed_load_at_a_fixed_rate(scratch):
    node = LocalNode(scratch / "node").start()
    try:
        secret = make_token([node.url], PREFIX)
        with Served(node.url, PREFIX, scratch, workers=2) as served:
            client = HttpClient(served.url, secret)
            ledger, queries, latencies, lock = Ledger(), Counter(), [], threading.Lock()
            samples: dict[int, list[tuple[float, int]]] = {pid: [] for pid in served.worker_pids()}
            started = time.monotonic()
            until = started + SECONDS

            def timed(method, path, body=None):
                begin = time.monotonic()
                answer = client.request(method, path, body)
                with lock:
                    latencies.append(time.monotonic() - begin)
                return answer

            def ingest():
                events = [cdx_event() for _ in range(BATCH)]
                ledger.record(events, timed("POST", "/events", events))

            def query():
                acknowledged = list(ledger.acknowledged)
                choices = [*QUERIES, f"/events/{random.choice(acknowledged)}"] if acknowledged else QUERIES
                path = random.choice(choices)
                if random.random() < 0.1:
                    answer = timed("POST", "/api/2/events/", {"session_id": 1, "event_type": "soak"})
                    queries[("POST /api/2/events/", answer.status)] += 1
                answer = timed("GET", path)
                queries[(path.split("?")[0], answer.status)] += 1

            def sample():
                for pid, rss in served.worker_rss_kib().items():
                    samples.setdefault(pid, []).append((time.monotonic() - started, rss))

            threads = [
                threading.Thread(target=paced, args=(INGEST_RATE, until, ingest)),
                threading.Thread(target=paced, args=(QUERY_RATE, until, query)),
                threading.Thread(target=paced, args=(1 / SAMPLE_EVERY, until, sample)),
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(SECONDS + 120)
            elapsed = time.monotonic() - started

            assert set(ledger.statuses) == {201}, dict(ledger.statuses)
            assert not ledger.anomalies
            bad_queries = {key: n for key, n in queries.items() if key[1] not in (200, 201)}
            assert not bad_queries, bad_queries
            found = found_in_index(Elasticsearch(node.url, request_timeout=60), INDEX, ledger.acknowledged)
            assert found == ledger.acknowledged == set(ledger.events)
            assert set(samples) == set(served.worker_pids()), "a worker was replaced during the soak"
            memory = {}
            for pid, series in samples.items():
                values = [rss for _, rss in series]
                quarter = max(1, len(values) // 4)
                settled = statistics.mean(values[quarter : 2 * quarter])
                late = statistics.mean(values[-quarter:])
                memory[pid] = {
                    "first_mib": round(values[0] / 1024, 1),
                    "settled_mib": round(settled / 1024, 1),
                    "last_quarter_mib": round(late / 1024, 1),
                    "growth_pct": round(100 * (late - settled) / settled, 1),
                }
                assert late <= settled * 1.2, (pid, memory[pid])
            assert not served.errors_logged(), served.errors_logged()[:5]
            ordered = sorted(latencies)
            figures(
                "soak",
                seconds=round(elapsed),
                requests=len(latencies),
                requests_per_s=round(len(latencies) / elapsed, 1),
                events_sent=len(ledger.events),
                acknowledged=len(ledger.acknowledged),
                found=len(found),
                lost=len(ledger.acknowledged - found),
                errors=0,
                queries=sum(queries.values()),
                latency_ms_p50=round(1000 * ordered[len(ordered) // 2], 1),
                latency_ms_p99=round(1000 * ordered[int(len(ordered) * 0.99)], 1),
                rss_samples_per_worker=min(len(s) for s in samples.values()),
                worker_memory=memory,
            )
    finally:
        node.stop()
