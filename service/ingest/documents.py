"""The Elasticsearch document of each valid event: a dict, or for a plainly valid event read
by the one-pass decoder, its JSON encoded straight from the decoder's Struct.

Batch ingest spent most of its CPU turning each event into dicts and back (docs/benchmarks.md:
the Struct's conversion, the prepared copy, the document, then the encoding). A Struct is
encoded in one C call, with the fields the service sets and the derived keys appended to the
same JSON object; nothing per field runs in Python.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import msgspec

from ..engine.registry import Dataset

_ENCODE = msgspec.json.Encoder().encode


def json_of(document: dict) -> bytes:
    """A dict document's JSON, as the store's bulk body would have encoded it."""
    return _ENCODE(document)


class Encoded:
    """A document already encoded as JSON, with the text of its first partition field (the
    time that names its monthly index, `Dataset.index_of`)."""

    __slots__ = ("json", "partition")

    def __init__(self, json: bytes, partition: str | None):
        self.json, self.partition = json, partition


class _Prepared:
    """An event Struct read together with the fields the service sets outside it."""

    __slots__ = ("added", "event")

    def __init__(self, event: msgspec.Struct, added: dict):
        self.event, self.added = event, added

    def get(self, name: str, default=None):
        added = self.added
        return added[name] if name in added else self.event.get(name, default)


_FIELDS: dict[type, frozenset[str]] = {}


def _fields_of(struct: type) -> frozenset[str]:
    """A Struct type's field names, as a set made once per type."""
    known = _FIELDS.get(struct)
    if known is None:
        known = _FIELDS[struct] = frozenset(struct.__struct_fields__)
    return known


def document(dataset: Dataset, event, now: datetime, new_id: Callable[[], int]) -> tuple[object, dict]:
    """(id, document) of a valid event: a dict, or a Struct taken apart."""
    if isinstance(event, msgspec.Struct):
        event = msgspec.to_builtins(event)
    prepared = dataset.prepared(event, now, new_id)
    return prepared[dataset.id_field], dataset.to_document(prepared)


def encoded(
    dataset: Dataset, event: msgspec.Struct, now: datetime, new_id: Callable[[], int]
) -> tuple[object, Encoded]:
    """(id, Encoded) of a valid event Struct: the same JSON value as `document` gives (its keys
    in the Struct's order), with no dict made of it."""
    added = dataset.prepare(event, now, new_id) if dataset.prepare else {}
    # What the Struct holds (cdx's uuid, created_at) is set in a copy of it, and only if the
    # service changed it (a device that sent both keeps its Struct), so no key is written
    # twice; the others (roundware's server-side id) are appended.
    fields, changed, outside = _fields_of(type(event)), {}, {}
    for name, value in added.items():
        if name not in fields:
            outside[name] = value
        elif getattr(event, name) is not value:
            changed[name] = value
    if changed:
        event = msgspec.structs.replace(event, **changed)
    whole = _Prepared(event, outside) if outside else event
    derived = dataset.derive(whole)
    if derived:
        outside["derived"] = derived
    body = _ENCODE(event)
    if outside:
        tail = _ENCODE(outside)
        body = body[:-1] + (b"," + tail[1:] if len(body) > 2 else tail[1:])
    for name in dataset.partition_fields:
        partition = whole.get(name)
        if partition:
            break
    else:
        partition = None
    return whole.get(dataset.id_field), Encoded(body, partition)
