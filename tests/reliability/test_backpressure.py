"""Backpressure: a node with a one-thread write pool and a write queue of one, driven by many
concurrent batches until it rejects writes (es_rejected_execution_exception, 429).

The service answers 429 (with Retry-After) or 207 with the rejected items marked; an item
Elasticsearch rejected is never acknowledged and really is absent from the index; after the
clients retry, every event is stored exactly once.
"""

from __future__ import annotations

import time

from elasticsearch import Elasticsearch

from scripts.local_es import LocalNode
from tests.load import HttpClient, Ingesters, Ledger, Served, figures, found_in_index, settle
from tests.reliability.conftest import make_token

PREFIX = "pressure-"
INDEX = f"{PREFIX}cdx"
TINY_WRITE_POOL = {"thread_pool.write.size": "1", "thread_pool.write.queue_size": "1"}


def test_rejected_writes_are_never_acknowledged(scratch):
    node = LocalNode(scratch / "node", settings=TINY_WRITE_POOL).start()
    try:
        secret = make_token([node.url], PREFIX)
        with Served(node.url, PREFIX, scratch, workers=2, threads=8) as served:
            client = HttpClient(served.url, secret)
            es = Elasticsearch(node.url, request_timeout=60)
            ledger = Ledger()
            with Ingesters(client, ledger, threads=12, batch=20, interval=0):
                time.sleep(10)
            assert ledger.rejected, f"Elasticsearch rejected nothing: {dict(ledger.statuses)}"
            rejected_only = ledger.rejected - ledger.acknowledged - ledger.unknown
            stored_anyway = found_in_index(es, INDEX, rejected_only)
            assert not stored_anyway, f"{len(stored_anyway)} events answered as rejected were stored"
            partial = ledger.statuses[207]
            result = settle(ledger, client, es, INDEX)
            assert not served.errors_logged(), served.errors_logged()[:5]
            figures(
                "backpressure",
                **result,
                rejected_items=len(ledger.rejected),
                rejected_found_in_index=len(stored_anyway),
                partial_207=partial,
            )
    finally:
        node.stop()
