"""Elasticsearch stopped: /ready and data endpoints answer 503 with Retry-After, never 500; a
node frozen under steady ingest loses no acknowledged event and stores each retried event once
(`make reliability` stops and restarts a node under gunicorn: tests/reliability/test_outage.py)."""

from __future__ import annotations

import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from scripts.local_es import LocalNode
from service import create_app
from service.config import Settings
from tests.conftest import auth
from tests.load import WsgiClient, figures, run_fault, settle


@pytest.fixture(scope="module")
def stoppable_node():
    data_dir = Path(tempfile.mkdtemp(prefix="es-stop-"))
    data_dir.chmod(0o755)
    node = LocalNode(data_dir).start()
    yield node
    node.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


def test_frozen_node_under_steady_ingest_loses_nothing(stoppable_node):
    """The node freezes (SIGSTOP) for a few seconds: requests in flight time out as 503 though
    Elasticsearch may still store them once it wakes, so the clients' retries must come back
    as duplicates, never as second copies."""
    settings = Settings.from_env(
        es_url=stoppable_node.url, index_prefix="freeze-", token_cache_seconds=0, es_request_timeout=2
    )
    app = create_app(settings)
    _, secret = app.extensions["tokens"].create("freeze", ["ingest", "query"])
    client = WsgiClient(app, secret)
    ledger, timings = run_fault(
        client, stoppable_node.pause, stoppable_node.resume, before=2, during=4, after=2, threads=3
    )
    assert ledger.statuses[503] > 0, "the freeze was not seen"
    assert client.request("GET", "/ready").status == 200
    figures("freeze-short", **settle(ledger, client, app.extensions["es"], "freeze-cdx"), **timings)


def test_node_stopped_means_503_with_retry_after(stoppable_node):
    settings = Settings.from_env(es_url=stoppable_node.url, index_prefix="down-", token_cache_seconds=3600)
    app = create_app(settings)
    client = app.test_client()
    _, secret = app.extensions["tokens"].create("down", ["ingest", "query"])
    # Another app whose tokens are not cached: authentication itself needs the node.
    uncached = create_app(
        Settings.from_env(es_url=stoppable_node.url, index_prefix="down-", token_cache_seconds=0)
    )
    assert client.get("/ready").status_code == 200
    assert client.get("/events?page_size=0", headers=auth(secret)).status_code == 200

    stoppable_node.stop()

    responses = {
        "ready": client.get("/ready"),
        "query": client.get("/events", headers=auth(secret)),
        "group": client.get("/events?group_by=gender", headers=auth(secret)),
        "get": client.get("/events/some-uuid", headers=auth(secret)),
        "ingest": client.post("/events", json={"gender": "f"}, headers=auth(secret)),
        "auth": uncached.test_client().get("/events", headers=auth(secret)),
    }
    for name, response in responses.items():
        assert response.status_code == 503, (name, response.status_code, response.data)
        assert int(response.headers["Retry-After"]) > 0, name
        assert response.json["error"]["code"] == "service_unavailable", name
    assert client.get("/health").status_code == 200

    # Single POSTs that share one `_bulk` (group commit) each get the 503 too.
    def post(n):
        return app.test_client().post("/events", json={"uuid": f"down-{n}"}, headers=auth(secret))

    with ThreadPoolExecutor(8) as pool:
        for response in pool.map(post, range(16)):
            assert response.status_code == 503, response.data
            assert int(response.headers["Retry-After"]) > 0
