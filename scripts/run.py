"""`make run`: the service on :8888 under gunicorn, in front of a local Elasticsearch node
unless `ES_URL` names one. Stops the node when the service stops (Ctrl-C)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

from scripts.local_es import LocalNode, default_data_dir, die_with_parent, free_port

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"


def port_is_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def dev_secret() -> str:
    """The development token's secret, made once and kept in .local/ (git-ignored)."""
    path = LOCAL / "dev-token"
    if not path.exists():
        LOCAL.mkdir(exist_ok=True)
        path.write_text(secrets.token_urlsafe(24) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def ensure_dev_token(es_url: str) -> str:
    from service import create_app
    from service.config import Settings

    app = create_app(Settings.from_env(es_url=es_url))
    store, secret = app.extensions["tokens"], dev_secret()
    if store.authenticate(secret) is None:
        store.create("development", ["ingest", "query"], [], secret=secret)
    return secret


def main() -> int:
    node = None
    es_url = os.environ.get("ES_URL")
    if not es_url:
        (LOCAL / "elasticsearch").mkdir(parents=True, exist_ok=True)
        data_dir = default_data_dir(LOCAL / "elasticsearch")
        data_dir.mkdir(parents=True, exist_ok=True)
        http_port = 9200 if port_is_free(9200) else free_port()
        print(f"starting Elasticsearch on 127.0.0.1:{http_port} (data in {data_dir}) ...", flush=True)
        node = LocalNode(data_dir, http_port=http_port, heap=os.environ.get("ES_HEAP", "1g")).start()
        es_url = node.url
    env = {**os.environ, "ES_URL": es_url}
    try:
        secret = ensure_dev_token(es_url)
        port = os.environ.get("PORT", "8888")
        print(
            f"\nThe service answers on http://127.0.0.1:{port} (Elasticsearch: {es_url}).\n"
            f"Development token: {secret}\n"
            f"  curl -H 'Authorization: token {secret}' -H 'Content-Type: application/json' \\\n"
            f'       -d \'{{"gender": "female", "age": 31, "results": [{{"condition": "mtb", '
            f'"result": "positive"}}]}}\' \'http://127.0.0.1:{port}/events?refresh=wait_for\'\n'
            f"  curl -H 'Authorization: token {secret}' 'http://127.0.0.1:{port}/events?group_by=gender,result'\n"
            f"API docs: http://127.0.0.1:{port}/docs, query explorer: http://127.0.0.1:{port}/explore, "
            f"metrics: http://127.0.0.1:{port}/metrics\n",
            flush=True,
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "wsgi:app"],
            cwd=ROOT,
            env=env,
            preexec_fn=die_with_parent,
        )
        signal.signal(signal.SIGTERM, lambda *_: server.terminate())
        try:
            return server.wait()
        except KeyboardInterrupt:
            server.terminate()
            return server.wait()
    finally:
        if node:
            print("stopping Elasticsearch ...", flush=True)
            node.stop()


if __name__ == "__main__":
    sys.exit(main())
