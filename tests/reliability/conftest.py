"""Fixtures of the reliability scenarios: a scratch folder the node user can reach, and tokens."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from service.auth import TokenStore


@pytest.fixture
def scratch():
    """Node data and server logs; removed afterwards (the node user must reach it: 0755)."""
    path = Path(tempfile.mkdtemp(prefix="es-reliability-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def make_token(urls: list[str], prefix: str) -> str:
    """The secret of a new token with both scopes, stored where the served service looks."""
    es = Elasticsearch(urls, request_timeout=60)
    try:
        return TokenStore(es, f"{prefix}tokens").create("reliability", ["ingest", "query"])[1]
    finally:
        es.close()
