"""Node loss: a 3-node cluster on loopback, the events index with one replica, and one node
killed with SIGKILL mid-ingest: the one holding the index's primary shard, or the elected master.

The service's ES_URL lists the three nodes. No acknowledged event is lost, queries keep being
answered, and the figures say how many requests failed and for how long the service was degraded.
"""

from __future__ import annotations

import time

import pytest
from elasticsearch import Elasticsearch

from scripts.local_es import local_cluster, node_name, start_all
from service.datasets.cdx import CDX
from tests.load import CLUSTER_QUERIES, HttpClient, Queriers, Served, figures, run_fault, settle
from tests.reliability.conftest import make_token

PREFIX = "nodeloss-"
INDEX = f"{PREFIX}cdx"


@pytest.mark.parametrize("role", ["primary", "master"])
def test_killing_a_node_mid_ingest_loses_nothing(scratch, role):
    """`primary`: the node holding the index's primary shard; `master`: the elected master."""
    nodes = start_all(local_cluster(scratch, 3))
    try:
        urls = [node.url for node in nodes]
        secret = make_token(urls, PREFIX)
        with Served(",".join(urls), PREFIX, scratch) as served:
            es = Elasticsearch(urls, request_timeout=60)
            # The events (no time of their own) land in this month's index; made from the
            # template before the fault so the victim can be chosen: one replica on 3 nodes.
            month = CDX.index_for(PREFIX, {})
            es.options(ignore_status=400).indices.create(index=month)
            es.cluster.health(index=month, wait_for_status="green", timeout="120s")
            replicas = es.indices.get_settings(index=month)[month]["settings"]["index"]["number_of_replicas"]
            assert replicas == "1"
            (primary,) = [s["node"] for s in es.cat.shards(index=month, format="json") if s["prirep"] == "p"]
            master = es.cat.master(format="json")[0]["node"]
            killed = primary if role == "primary" else master
            victim = next(node for node in nodes if node_name(node.http_port) == killed)
            survivors = [node.url for node in nodes if node is not victim]

            client = HttpClient(served.url, secret)
            killed_at = []
            with Queriers(client, CLUSTER_QUERIES) as queries:
                ledger, timings = run_fault(
                    client,
                    lambda: (killed_at.append(time.monotonic()), victim.kill()),
                    lambda: None,
                    before=10,
                    during=30,
                    after=5,
                    threads=4,
                )
            assert not queries.anomalies, queries.anomalies[:5]
            answered_after = sum(1 for at in queries.answered_at if at > killed_at[0])
            assert answered_after > 0, "no query was answered after the node died"
            assert queries.answered_at[-1] > (queries.failed_at or [0])[-1], "queries did not recover"
            survivor_client = Elasticsearch(survivors, request_timeout=60)
            assert survivor_client.cluster.health()["number_of_nodes"] == 2, "the node did not die"
            result = settle(ledger, client, survivor_client, INDEX)
            assert not served.errors_logged(), served.errors_logged()[:5]
            failed_at = sorted(ledger.failed_at + queries.failed_at)
            figures(
                f"node-loss-{role}",
                **result,
                killed=killed,
                held_primary=killed == primary,
                was_master=killed == master,
                failed_ingest_requests=len(ledger.failed_at),
                queries=sum(queries.statuses.values()),
                query_statuses=dict(queries.statuses),
                queries_answered_after_kill=answered_after,
                failed_requests=len(failed_at),
                degraded_s=round(failed_at[-1] - failed_at[0], 1) if failed_at else 0.0,
                fault_s=timings["fault_s"],
            )
    finally:
        for node in nodes:
            node.stop()
