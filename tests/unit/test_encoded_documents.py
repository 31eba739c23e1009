"""A plainly valid event's document encoded straight from its Struct is the very document the
general path (dicts) makes: same JSON value, id and monthly index."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime

import orjson
import pytest

from bench.data import World, event
from service.datasets import DATASETS
from service.ingest import documents
from service.ingest.validation import EventLoader
from service.store import bulk_body
from tests.unit.test_event_loader import TRICKY

NOW = datetime(2026, 3, 31, 23, 59, 59, 999000, tzinfo=UTC)
LOADERS = {name: EventLoader(dataset) for name, dataset in DATASETS.items()}
REALISTIC = [event(random.Random(7), World.make(7)) for _ in range(300)]
EDGES = [
    {},
    {"uuid": None, "created_at": None},
    {"uuid": "u-1", "start_time": "2024-02-29T23:30:00-01:00"},
    {"created_at": "2024-12-31T23:00:00+00:00", "results": []},
    {"results": [{}, {"result": "positive"}, {"condition": "mtb", "result": "negative"}]},
    {"location_id": 9, "parent_locations": None},
    {"session_id": 2**53, "event_type": "x", "client_time": "2026-03-31T23:00:00-02:00"},
    {"session_id": 1, "event_type": "x", "data": None},
    {"session_id": 3, "event_type": "start_session", "data": '{"a": 1}', "client_time": "2026-04-01"},
    {"session_id": -1, "event_type": "é", "client_time": "2026-03-31T20:00:00-05:00"},
    {"event_type": "x", "session_id": 9, "client_time": "0002-01-01T00:00:00+18:00"},
    {"session_id": 4, "event_type": "move", "latitude": 45, "longitude": -73.5, "tag_ids": [3, 8]},
    {"session_id": 4, "event_type": "tag", "tag_ids": [], "latitude": None, "client_time": "2026-03-31"},
]


@pytest.fixture(autouse=True)
def fixed_uuids(monkeypatch):
    """cdx makes a uuid4 for events without one: the same one on both paths."""
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=42))


@pytest.mark.parametrize("dataset", DATASETS)
def test_encoded_documents_are_the_general_paths(dataset):
    dataset, loader, seen = DATASETS[dataset], LOADERS[dataset], 0
    for item in [*TRICKY, *EDGES, *REALISTIC]:
        struct = loader.read(orjson.dumps(item))
        if struct is None:
            continue
        seen += 1
        event_id, general = documents.document(dataset, struct, NOW, lambda: 7 << 22)
        encoded_id, encoded = documents.encoded(dataset, struct, NOW, lambda: 7 << 22)
        assert orjson.loads(encoded.json) == general
        assert encoded_id == event_id
        assert dataset.index_of("p-", encoded.partition) == dataset.index_for("p-", general)
        assert b"\n" not in encoded.json  # one NDJSON line of a bulk body
    assert seen >= 5


def test_a_bulk_body_takes_encoded_and_dict_documents_alike():
    document = {"a": [1, "é"], "b": None}
    assert bulk_body([("i", 1, document)]) == bulk_body([("i", 1, orjson.dumps(document))])
