"""A worker's memory of shaped grouped answers, keyed by the query and by the answer itself.

Dashboards repeat the same grouped queries all day. Elasticsearch answers a repeat from its
request cache, but turning thousands of buckets into rows costs the worker more than that. Rows
are a pure function of the query and of Elasticsearch's answer, so keyed by both (the answer by
a digest of its buckets) a remembered copy is never stale: new data makes a new answer, hence a
new key, and unused entries age out.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from threading import Lock

import orjson


def digest(answer) -> bytes:
    """Identifies an answer by its content (orjson keeps the order Elasticsearch wrote)."""
    return digest_bytes(orjson.dumps(answer))


def digest_bytes(text: bytes) -> bytes:
    """Identifies an answer by the bytes Elasticsearch sent, before anything reads them.

    SHA-256 runs in the CPU's SHA instructions here: 0.61 ms per MB against blake2b's 1.33.
    """
    return hashlib.sha256(text).digest()[:16]


class SharedRows(list):
    """Rows the cache shares between requests (so never changed once made), with their JSON
    text once a response has encoded them (`jsonio`): a repeat's answer then copies that text
    instead of encoding thousands of rows again, which was a fifth of a cached repeat's CPU
    (docs/benchmarks.md). Held beside the rows, it about doubles what an entry keeps."""

    __slots__ = ("json",)

    def __init__(self, rows=()):
        super().__init__(rows)
        self.json: bytes | None = None


class RowsCache:
    """Least recently used answers, holding at most `max_rows` rows in all (0: remember none)."""

    def __init__(self, max_rows: int):
        self.max_rows = max_rows
        #: Key → (entry, its rows), least recently used first.
        self._entries: OrderedDict[tuple, tuple[object, int]] = OrderedDict()
        self._rows = 0
        self._lock = Lock()

    def remembered(self, key: tuple):
        """What `remember` kept under `key`, or None."""
        with self._lock:
            held = self._entries.get(key)
            if held is None:
                return None
            self._entries.move_to_end(key)
            return held[0]

    def remember(self, key: tuple, entry, rows: int) -> None:
        """Keep `entry` (of `rows` rows) under `key`, if it fits, forgetting the oldest."""
        # One answer may take a quarter of the room, so a few dashboards' queries fit together.
        if rows > self.max_rows // 4:
            return
        with self._lock:
            if key not in self._entries:
                self._entries[key] = (entry, rows)
                self._rows += rows
            while self._rows > self.max_rows:
                _, (_, old) = self._entries.popitem(last=False)
                self._rows -= old
