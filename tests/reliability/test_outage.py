"""Outage: while clients ingest steadily through gunicorn, Elasticsearch is stopped for a while
and started again on the same data and ports.

Clients get 503 (or 429) with Retry-After, never a 500; the service recovers by itself, with the
same worker processes; every acknowledged event is in the index; and clients that post their
unacknowledged events again end with every event stored exactly once.
"""

from __future__ import annotations

import os

from elasticsearch import Elasticsearch

from scripts.local_es import LocalNode
from tests.load import HttpClient, Served, figures, run_fault, settle
from tests.reliability.conftest import make_token

PREFIX = "outage-"
OUTAGE_SECONDS = float(os.environ.get("OUTAGE_SECONDS", "20"))


def test_outage_under_steady_ingest_loses_nothing(scratch):
    node = LocalNode(scratch / "node").start()
    try:
        secret = make_token([node.url], PREFIX)
        with Served(node.url, PREFIX, scratch) as served:
            client = HttpClient(served.url, secret)
            workers = served.worker_pids()
            ledger, timings = run_fault(
                client, node.stop, node.start, before=10, during=OUTAGE_SECONDS, after=10, threads=4
            )
            assert ledger.statuses[503] > 0, "the outage was not seen"
            assert client.request("GET", "/ready").status == 200
            assert served.worker_pids() == workers, "a worker was restarted"
            es = Elasticsearch(node.url, request_timeout=60)
            result = settle(ledger, client, es, f"{PREFIX}cdx")
            assert not served.errors_logged(), served.errors_logged()[:5]
            figures("outage", **result, **timings, workers_restarted=0)
    finally:
        node.stop()
