"""Rolling restart: a 3-node cluster on loopback, each node stopped and started again in turn
(same data, same ports), waiting for green before the next, while clients ingest and query
steadily through gunicorn. The service's ES_URL lists the three nodes and is never restarted.

0 acknowledged events lost; every query answered 200, or 503 with Retry-After; the same gunicorn
workers throughout; the clients' retries store each event once.
"""

from __future__ import annotations

import time

from elasticsearch import Elasticsearch

from scripts.local_es import local_cluster, start_all
from service.datasets.cdx import CDX
from tests.load import CLUSTER_QUERIES, HttpClient, Ingesters, Ledger, Queriers, Served, figures, settle
from tests.reliability.conftest import make_token

PREFIX = "rolling-"
INDEX = f"{PREFIX}cdx"


def test_rolling_restart_under_load_loses_nothing(scratch):
    nodes = start_all(local_cluster(scratch, 3))
    try:
        urls = [node.url for node in nodes]
        secret = make_token(urls, PREFIX)
        es = Elasticsearch(urls, request_timeout=60, max_retries=5, retry_on_timeout=True)
        with Served(",".join(urls), PREFIX, scratch) as served:
            month = CDX.index_for(PREFIX, {})
            es.options(ignore_status=400).indices.create(index=month)
            es.cluster.health(wait_for_status="green", timeout="120s")
            workers = served.worker_pids()
            client = HttpClient(served.url, secret)
            ledger, restarts = Ledger(), []
            with Queriers(client, CLUSTER_QUERIES) as queries, Ingesters(client, ledger, threads=4, batch=5):
                time.sleep(5)
                for node in nodes:
                    began = time.monotonic()
                    node.stop()
                    stopped = time.monotonic()
                    node.start(timeout=240)
                    started = time.monotonic()
                    health = es.cluster.health(wait_for_status="green", timeout="180s")
                    assert health["status"] == "green", health
                    restarts.append(
                        {
                            "stop_s": round(stopped - began, 1),
                            "start_s": round(started - stopped, 1),
                            "green_s": round(time.monotonic() - started, 1),
                        }
                    )
                time.sleep(5)
            assert not queries.anomalies, queries.anomalies[:5]
            assert served.worker_pids() == workers, "a worker was restarted"
            failed_ingest = len(ledger.failed_at)
            result = settle(ledger, client, es, INDEX)
            assert not served.errors_logged(), served.errors_logged()[:5]
            figures(
                "rolling-restart",
                **result,
                restarts=restarts,
                queries=dict(queries.statuses),
                failed_ingest_requests=failed_ingest,
                degraded_s=round(ledger.degraded_seconds(), 1),
                workers_restarted=0,
            )
    finally:
        for node in nodes:
            node.stop()
