"""Test fixtures: a real Elasticsearch node for the integration tests, the app and tokens.

The node comes from, in order: `ES_URL` if set; testcontainers where a Docker engine answers;
otherwise a local node (scripts/local_es.py) in a temporary folder. Each run uses its own index
prefix, so runs never see each other's data. Tests under tests/unit never touch a node.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from scripts.local_es import LocalNode
from service import create_app
from service.config import Settings
from service.datasets import DATASETS
from service.store import EventStore

ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(items):
    for item in items:
        path = str(item.path).replace(os.sep, "/")
        if "tests/integration" in path:
            item.add_marker(pytest.mark.integration)
        if "tests/reliability" in path:  # they start their own nodes; `make reliability` runs them
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.reliability)


def docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def es_url():
    if os.environ.get("ES_URL"):
        yield os.environ["ES_URL"]
        return
    if docker_available():
        from testcontainers.elasticsearch import ElasticSearchContainer

        with ElasticSearchContainer("elasticsearch:9.5.2", mem_limit="1g") as container:
            yield container.get_url()
        return
    data_dir = Path(tempfile.mkdtemp(prefix="es-test-"))
    data_dir.chmod(0o755)
    node = LocalNode(data_dir).start()
    try:
        yield node.url
    finally:
        node.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def prefix():
    return f"test-{uuid.uuid4().hex[:8]}-"


@pytest.fixture(scope="session")
def settings(es_url, prefix):
    return Settings.from_env(es_url=es_url, index_prefix=prefix, token_cache_seconds=0)


@pytest.fixture(scope="session")
def es(settings):
    client = Elasticsearch(settings.es_url, request_timeout=60)
    yield client
    # By name, not by wildcard: clusters may refuse destructive wildcards.
    indices = client.indices.get(index=f"{settings.index_prefix}*", expand_wildcards="all")
    for index in indices:
        client.options(ignore_status=404).indices.delete(index=index)
    found = client.options(ignore_status=404).indices.get_index_template(name=f"{settings.index_prefix}*")
    for template in found.get("index_templates", []):
        client.indices.delete_index_template(name=template["name"])
    client.close()


@pytest.fixture(scope="session")
def app(settings, es):
    return create_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture(scope="session")
def tokens(app):
    """Secrets of tokens for each role the tests play."""
    store = app.extensions["tokens"]
    specs = {
        "full": (["ingest", "query"], []),
        "ingest": (["ingest"], []),
        "query": (["query"], []),
        "inst1": (["ingest", "query"], [1]),
    }
    return {
        name: store.create(f"test-{name}", scopes, institutions)[1]
        for name, (scopes, institutions) in specs.items()
    }


def auth(secret: str, scheme: str = "token") -> dict:
    return {"Authorization": f"{scheme} {secret}"}


def empty_index(es, settings, dataset_name: str) -> None:
    """Drop every monthly index of a dataset, by name; the next write makes them anew."""
    store = EventStore(es, settings.index_prefix)
    for index in store.indices(DATASETS[dataset_name]):
        store.delete_index(index)


@pytest.fixture
def fresh_cdx(app, es, settings):
    """An empty cdx index for tests that count."""
    empty_index(es, settings, "cdx")
