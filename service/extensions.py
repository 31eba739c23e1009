"""Process-wide clients, created once per worker (the Elasticsearch client is thread-safe)."""

from __future__ import annotations

from elasticsearch import Elasticsearch
from elasticsearch.serializer import NdjsonSerializer, OrjsonSerializer
from flask import Flask

from .auth import TokenStore
from .config import Settings
from .ids import IdGenerator
from .ingest.group_commit import GroupCommitter
from .observability import InstrumentedElasticsearch, observe_batch
from .queries import QueryService
from .rows_cache import RowsCache
from .store import EventStore
from .transport import OneWriteNode


class AnswerBytes(OrjsonSerializer):
    """Encodes requests as usual and leaves answers as the bytes Elasticsearch sent."""

    def loads(self, data: bytes) -> bytes:
        return data


class BulkBytes(NdjsonSerializer):
    """Sends an NDJSON body made as bytes (`store.bulk_body`) as it is: the client's own would
    copy it twice into new buffers, 3.2 ms for a 5,000-event `_bulk` of 2.5 MB here."""

    def dumps(self, data) -> bytes:
        if type(data) is bytes and data.endswith(b"\n"):
            return data
        return super().dumps(data)


def make_client(settings: Settings, raw_answers: bool = False) -> Elasticsearch:
    """The process's client; with `raw_answers`, one whose JSON answers stay bytes (its errors
    still carry their status; their bodies are bytes too)."""
    options = {
        "request_timeout": settings.es_request_timeout,
        # Fail fast when the node is down: the client answers 503 and the caller retries.
        "max_retries": 1,
        "retry_on_timeout": False,
        # orjson reads bulk answers (an item per event) several times faster than `json`.
        "serializers": {
            "application/json": AnswerBytes() if raw_answers else OrjsonSerializer(),
            "application/x-ndjson": BulkBytes(),
        },
        # One write per request (see service/transport.py).
        "node_class": OneWriteNode,
        # Every gunicorn thread may query at once: a smaller pool would make them queue.
        "connections_per_node": settings.es_connections,
    }
    if settings.es_api_key:
        options["api_key"] = settings.es_api_key
    elif settings.es_username:
        options["basic_auth"] = (settings.es_username, settings.es_password)
    if settings.es_ca_cert:
        options["ca_certs"] = settings.es_ca_cert
    hosts = [url.strip() for url in settings.es_url.split(",") if url.strip()]
    return InstrumentedElasticsearch(hosts, **options)


def init_app(app: Flask, settings: Settings, es: Elasticsearch | None = None) -> None:
    # A client of its own reads grouped answers as bytes, unless the caller brought its client.
    answers_as_bytes = None if es else make_client(settings, raw_answers=True)
    es = es or make_client(settings)
    app.extensions["es"] = es
    app.extensions["tokens"] = TokenStore(es, f"{settings.index_prefix}tokens", settings.token_cache_seconds)
    app.extensions["ids"] = IdGenerator(es, f"{settings.index_prefix}id-leases")
    store = app.extensions["store"] = EventStore(es, settings.index_prefix, answers_as_bytes)
    app.extensions["queries"] = QueryService(store, RowsCache(settings.grouped_cache_rows))
    app.extensions["group_commit"] = (
        GroupCommitter(
            store.bulk,
            settings.group_commit_max_events,
            max_bytes=settings.group_commit_max_bytes,
            observe=observe_batch,
        )
        if settings.group_commit_max_events > 0
        else None
    )
