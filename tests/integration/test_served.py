"""The service under gunicorn with the repo's `gunicorn.conf.py`, on a real node."""

from __future__ import annotations

import http.client

import orjson

from scripts.served import GunicornService
from tests.conftest import auth

#: Over `gunicorn.conf.py`'s LARGE_REQUEST_BYTES (256 KiB).
LARGE_BATCH = [{"uuid": f"served-{n}", "custom_fields": {"note": "x" * 1000}} for n in range(300)]


def post(conn: http.client.HTTPConnection, body: bytes, token: str) -> http.client.HTTPResponse:
    conn.request("POST", "/events", body, {**auth(token), "Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    return response


def test_a_large_batch_closes_its_connection_and_small_requests_keep_theirs(settings, tokens, tmp_path):
    """Kept-alive batch senders would pile up on one worker's core; closing after each large
    batch lets the next go to whichever worker is free."""
    env = {"WEB_CONCURRENCY": 1, "GUNICORN_THREADS": 4, "ACCESS_LOG": ""}
    served = GunicornService(settings.es_url, settings.index_prefix, tmp_path / "gunicorn.log", env).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=60)
        small = post(conn, orjson.dumps({"uuid": "served-small"}), tokens["ingest"])
        assert small.status == 201 and small.getheader("Connection") != "close"
        large = post(conn, orjson.dumps(LARGE_BATCH), tokens["ingest"])
        assert large.status == 201 and large.getheader("Connection") == "close"
        assert large.will_close
        again = post(conn, orjson.dumps({"uuid": "served-after"}), tokens["ingest"])  # reconnects
        assert again.status == 201
        assert served.errors_logged() == []
    finally:
        served.stop()
