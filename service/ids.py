"""Roundware event ids: 53-bit, time-ordered, unique across workers and hosts.

Layout (most significant first): 41 bits of milliseconds since 2025-01-01 UTC (enough until
2094), 6 bits of worker slot, 6 bits of sequence within the millisecond. An id is below 2^53, so
JavaScript clients read it exactly, and ids sort by creation time to the millisecond.

No central counter is asked per event: each worker process leases one of 64 slots from an
Elasticsearch document once (compare-and-swap on `_seq_no`), renews the lease in the
background, and stops issuing ids if it cannot renew before the lease ends. Limits: at most 64
live workers across all hosts; 64 ids per millisecond per worker (64,000/s; it waits for the
next millisecond beyond that); if the clock steps back, a worker keeps counting from its last
millisecond, and hosts' clocks must agree to within LEASE_MARGIN for a slot taken over from a
dead worker never to repeat that worker's last ids.

A worker killed outright (SIGKILL, out of memory) never gives its slot back: the slot stays
leased until its lease ends plus LEASE_MARGIN, while the worker's own ids stopped LEASE_MARGIN
before the lease ended (at the latest), so whoever takes the slot over issues ids at least
twice LEASE_MARGIN later than any id of the dead worker. A worker that exits cleanly marks its slot
free from its last id on, and the same margin applies before the slot is taken again.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

from elasticsearch import ConflictError, Elasticsearch

EPOCH_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
TIME_BITS, SLOT_BITS, SEQUENCE_BITS = 41, 6, 6
SLOTS = 1 << SLOT_BITS
MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1
LEASE_SECONDS = 60
LEASE_MARGIN = 10  # stop issuing this long before the lease ends, for clock differences

LEASE_MAPPING = {
    "dynamic": "strict",
    "properties": {"owner": {"type": "keyword"}, "expires_ms": {"type": "long"}},
}


def compose(millis: int, slot: int, sequence: int) -> int:
    return ((millis - EPOCH_MS) << (SLOT_BITS + SEQUENCE_BITS)) | (slot << SEQUENCE_BITS) | sequence


def decompose(event_id: int) -> tuple[int, int, int]:
    """(unix milliseconds, slot, sequence) of an id."""
    sequence = event_id & MAX_SEQUENCE
    slot = (event_id >> SEQUENCE_BITS) & (SLOTS - 1)
    return (event_id >> (SLOT_BITS + SEQUENCE_BITS)) + EPOCH_MS, slot, sequence


def time_of(event_id: int) -> datetime:
    """The UTC time an id was made, to the millisecond (ValueError for a non-id)."""
    if not 0 <= event_id < 1 << (TIME_BITS + SLOT_BITS + SEQUENCE_BITS):
        raise ValueError(f"not an event id: {event_id}")
    # Integer milliseconds: a float timestamp could round .123 down to .122.
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=decompose(event_id)[0])


class IdGenerator:
    def __init__(self, es: Elasticsearch, index: str, clock=time.time):
        self.es, self.index, self.clock = es, index, clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"
        self.slot: int | None = None
        self.lease_valid_until = 0.0
        self._lease_version: tuple[int, int] | None = None
        self._last_ms = 0
        self._sequence = 0
        self._lock = threading.Lock()
        self._renewer: threading.Thread | None = None

    def next_id(self) -> int:
        with self._lock:
            if self.slot is None or self.clock() > self.lease_valid_until:
                self._claim()
            millis = max(int(self.clock() * 1000), self._last_ms)
            if millis == self._last_ms:
                self._sequence += 1
                if self._sequence > MAX_SEQUENCE:
                    while int(self.clock() * 1000) <= self._last_ms:
                        time.sleep(0.0002)
                    millis, self._sequence = max(int(self.clock() * 1000), self._last_ms + 1), 0
            else:
                self._sequence = 0
            self._last_ms = millis
            return compose(millis, self.slot, self._sequence)

    # -- the slot lease ------------------------------------------------------------------------

    def _ensure_index(self) -> None:
        if not self.es.indices.exists(index=self.index):
            self.es.options(ignore_status=400).indices.create(
                index=self.index, mappings=LEASE_MAPPING, settings={"index.auto_expand_replicas": "0-all"}
            )

    def _lease_document(self, asked_at: float) -> dict:
        return {"owner": self.owner, "expires_ms": int((asked_at + LEASE_SECONDS) * 1000)}

    def _claim(self) -> None:
        self._ensure_index()
        if self.slot is not None and self._renew():
            return
        for slot in random.sample(range(SLOTS), SLOTS):
            if self._take(slot):
                self.slot = slot
                self._start_renewer()
                return
        raise RuntimeError(f"all {SLOTS} id slots are leased; too many workers")

    def _take(self, slot: int) -> bool:
        doc_id = f"slot-{slot}"
        asked_at = self.clock()
        try:
            result = self.es.create(
                index=self.index, id=doc_id, document=self._lease_document(asked_at), refresh=False
            )
        except ConflictError:
            current = self.es.get(index=self.index, id=doc_id)
            asked_at = self.clock()
            if current["_source"]["expires_ms"] + LEASE_MARGIN * 1000 > asked_at * 1000:
                return False
            try:
                result = self.es.index(
                    index=self.index,
                    id=doc_id,
                    document=self._lease_document(asked_at),
                    if_seq_no=current["_seq_no"],
                    if_primary_term=current["_primary_term"],
                )
            except ConflictError:
                return False
        self._leased(result, asked_at)
        return True

    def _leased(self, result: dict, asked_at: float) -> None:
        """The lease written at `asked_at` holds until `asked_at + LEASE_SECONDS`; ids stop
        LEASE_MARGIN before. Counted from when it was asked, not answered: a renewal that took
        long (a slow node, a client retry) must not stretch the lease past what was written."""
        self._lease_version = (result["_seq_no"], result["_primary_term"])
        self.lease_valid_until = asked_at + LEASE_SECONDS - LEASE_MARGIN

    def _renew(self) -> bool:
        if self.slot is None or self._lease_version is None:
            return False
        seq_no, primary_term = self._lease_version
        asked_at = self.clock()
        try:
            result = self.es.index(
                index=self.index,
                id=f"slot-{self.slot}",
                document=self._lease_document(asked_at),
                if_seq_no=seq_no,
                if_primary_term=primary_term,
            )
        except ConflictError:
            self.slot, self._lease_version = None, None
            return False
        self._leased(result, asked_at)
        return True

    def _start_renewer(self) -> None:
        if self._renewer is not None:
            return

        def renew_forever():
            while True:
                time.sleep(LEASE_SECONDS / 4)
                try:
                    with self._lock:
                        self._renew()
                except Exception:  # the node may be away; next_id re-claims when the lease lapses
                    pass

        self._renewer = threading.Thread(target=renew_forever, name="id-lease", daemon=True)
        self._renewer.start()
        atexit.register(self.release)

    def release(self) -> None:
        """Give the slot back (on exit) so another worker need not wait for the lease to end:
        the lease now ends at this worker's last id, so the slot is free LEASE_MARGIN later
        (deleting the lease would let a host whose clock is behind repeat this worker's last
        ids at once)."""
        with self._lock:
            if self.slot is None or self._lease_version is None:
                return
            seq_no, primary_term = self._lease_version
            last_ms = max(self._last_ms, int(self.clock() * 1000))
            with contextlib.suppress(Exception):  # best effort at exit
                self.es.options(ignore_status=409).index(
                    index=self.index,
                    id=f"slot-{self.slot}",
                    document={"owner": self.owner, "expires_ms": last_ms},
                    if_seq_no=seq_no,
                    if_primary_term=primary_term,
                )
            self.slot, self._lease_version = None, None
