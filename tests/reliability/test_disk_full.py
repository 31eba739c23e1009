"""Disk full: while clients ingest and query steadily through gunicorn, the node's disk passes
its flood-stage watermark (the watermarks set, through cluster settings, to more free space than
the disk has; the node checks its disks every 10 s, `cluster.info.update.interval`'s least), so
Elasticsearch blocks writes to its indices; then the watermarks are reset.

Ingest answers 503 `storage_full` with Retry-After (never a 500, never acknowledged); queries
keep being answered; writes resume by themselves once Elasticsearch lifts the block (it does so
when usage drops below the high watermark), with the same workers; every acknowledged event is
in the index, and the clients' retries store each event once.
"""

from __future__ import annotations

import os
import time

from elasticsearch import Elasticsearch

from scripts.local_es import LocalNode
from service.datasets.cdx import CDX
from tests.load import HttpClient, Queriers, Served, figures, run_fault, settle
from tests.reliability.conftest import make_token

PREFIX = "diskfull-"
FULL_SECONDS = float(os.environ.get("DISK_FULL_SECONDS", "20"))
WATERMARKS = ("low", "high", "flood_stage")
QUERIES = ["/events?page_size=0", "/events?group_by=gender,result", "/events?page_size=20"]


def set_watermarks(es: Elasticsearch, value: str | None) -> None:
    """Every watermark as free space bigger than the disk (`1000tb`), or back to defaults (None)."""
    es.cluster.put_settings(
        persistent={f"cluster.routing.allocation.disk.watermark.{name}": value for name in WATERMARKS}
    )


def blocked(es: Elasticsearch, index: str) -> bool:
    settings = es.indices.get_settings(index=index, name="index.blocks.read_only_allow_delete")
    return settings.get(index, {}).get("settings", {}).get("index", {}).get("blocks") is not None


def test_disk_full_blocks_writes_then_they_resume(scratch):
    node = LocalNode(
        scratch / "node",
        settings={
            "cluster.routing.allocation.disk.threshold_enabled": "true",
            "cluster.info.update.interval": "10s",
        },
    ).start()
    try:
        secret = make_token([node.url], PREFIX)
        es = Elasticsearch(node.url, request_timeout=60)
        with Served(node.url, PREFIX, scratch, workers=2) as served:
            client = HttpClient(served.url, secret)
            # This month's index exists before the disk fills: a new index could not even be
            # allocated then (the high watermark is passed too), see docs/reliability.md.
            month = CDX.index_for(PREFIX, {})
            es.options(ignore_status=400).indices.create(index=month)
            es.cluster.health(index=month, wait_for_status="yellow", timeout="60s")
            workers = served.worker_pids()
            marks = {}

            def fill():
                marks["filled"] = time.monotonic()
                set_watermarks(es, "1000tb")

            def free():
                marks["freed"] = time.monotonic()
                set_watermarks(es, None)

            with Queriers(client, QUERIES) as queries:
                ledger, timings = run_fault(client, fill, free, before=5, during=FULL_SECONDS, after=5)
            was_blocked = ledger.codes["storage_full"] > 0
            assert was_blocked, f"the block was not seen: {dict(ledger.statuses)} {dict(ledger.codes)}"
            assert set(ledger.codes) == {"storage_full"}, dict(ledger.codes)
            assert not blocked(es, month), "Elasticsearch kept the block"
            assert not queries.anomalies, queries.anomalies[:5]
            assert queries.statuses[200] > 0 and set(queries.statuses) <= {200}, dict(queries.statuses)
            assert served.worker_pids() == workers, "a worker was restarted"
            result = settle(ledger, client, es, f"{PREFIX}cdx")
            assert not served.errors_logged(), served.errors_logged()[:5]
            figures(
                "disk-full",
                **result,
                codes=dict(ledger.codes),
                queries=dict(queries.statuses),
                **timings,
                workers_restarted=0,
            )
    finally:
        try:
            set_watermarks(Elasticsearch(node.url, request_timeout=30), None)
        finally:
            node.stop()
