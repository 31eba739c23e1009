"""Group commit: the small ingest requests a worker serves at once share one `_bulk`.

A device posting one event per request would otherwise cost Elasticsearch one request, one
translog fsync and one round trip per event. Here each request thread hands its documents to
the worker's `GroupCommitter` and waits; a flusher thread sends everything queued as one
`_bulk` and gives each request back its own items. No timer delays a lone request: while one
bulk is in flight the next requests queue up, so batches grow exactly as fast as load does.

Nothing is acknowledged early: a request returns only once Elasticsearch answered for its own
items, and when the `_bulk` fails as a whole (node down, 429) each request sees that very error,
so its answer is what it would have been alone (503 or 429 with Retry-After).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable

#: Sends (index, id, document) triples as one `_bulk` and returns its items (store.bulk_items).
Send = Callable[[list[tuple[str, object, dict]]], list[dict]]
#: Told (label, documents) for each label's share of every `_bulk` sent (the events metric).
Observe = Callable[[str, int], None]
#: What a document not yet encoded counts for against `max_bytes`: only uuid claims are sent
#: as dicts (`{"received_at": ...}`, some 40 bytes); events come as their JSON bytes.
DICT_DOCUMENT_BYTES = 256


class Pending:
    """One request's (index, id, document) triples, and the answer the flusher hands back.

    The hand-off is one bare lock, held from the start and released once the answer is in:
    the cheapest wake-up CPython has (a `Future` takes a Condition and a notify_all per
    request, which a worker serving single events pays thousands of times a second).
    """

    __slots__ = ("_ready", "error", "items", "label", "operations", "size")

    def __init__(self, operations: list[tuple[str, object, dict]], label: str | None = None):
        self.operations, self.label = operations, label
        #: The documents' bytes (see `DICT_DOCUMENT_BYTES`), held against `max_bytes`.
        self.size = sum(
            len(document) if type(document) is bytes else DICT_DOCUMENT_BYTES for _, _, document in operations
        )
        self.items: list[dict] | None = None
        self.error: BaseException | None = None
        self._ready = threading.Lock()
        self._ready.acquire()

    def done(self) -> bool:
        return self.items is not None or self.error is not None

    def answer(self, items: list[dict] | None = None, error: BaseException | None = None) -> None:
        self.items, self.error = items, error
        self._ready.release()

    def result(self) -> list[dict]:
        with self._ready:  # released by `answer`
            pass
        if self.error is not None:
            raise self.error
        return self.items


class GroupCommitter:
    """Coalesces concurrent `submit`s of one process into `_bulk` requests of up to `max_items`
    documents and `max_bytes` of them (a request past either goes alone).

    Requests of more than `max_request_items` documents are batches already: they are better
    sent on their own than made to wait behind others. `observe`, if given, hears the size of
    each label's share of every `_bulk` (labelled requests only: claims are not events).
    """

    def __init__(
        self,
        send: Send,
        max_request_items: int = 100,
        max_items: int = 1000,
        max_bytes: int = 8 * 1024 * 1024,
        observe: Observe | None = None,
    ):
        self.send, self.max_request_items, self.max_items = send, max_request_items, max_items
        self.max_bytes, self.observe = max_bytes, observe
        self._queue: deque[Pending] = deque()
        self._wakeup = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def submit(self, operations: list[tuple[str, object, dict]], label: str | None = None) -> list[dict]:
        """Store (index, id, document) triples with `create`; their bulk items, in order.
        `label` names what they are for `observe` (a dataset's events).

        Raises what the `_bulk` call raised when Elasticsearch could not be asked at all.
        """
        pending = Pending(operations, label)
        with self._wakeup:
            self._ensure_flusher()
            self._queue.append(pending)
            self._wakeup.notify()
        return pending.result()

    def queued(self) -> int:
        """Requests waiting for the next `_bulk` (not counting the one in flight)."""
        with self._wakeup:
            return len(self._queue)

    def _ensure_flusher(self) -> None:
        # Started on first use, and again in a forked child (threads do not survive a fork).
        if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            group = self._next_group()
            try:
                self._flush(group)
            except BaseException as exc:  # every waiter must hear back, whatever happened
                for pending in group:
                    if not pending.done():
                        pending.answer(error=exc)

    def _next_group(self) -> list[Pending]:
        """Wait for work; take queued requests, in order, up to `max_items` documents and
        `max_bytes` of them (at least one request)."""
        with self._wakeup:
            while not self._queue:
                self._wakeup.wait()
            group, items, size = [], 0, 0
            while self._queue and (not group or self._fits(self._queue[0], items, size)):
                pending = self._queue.popleft()
                group.append(pending)
                items, size = items + len(pending.operations), size + pending.size
            return group

    def _fits(self, pending: Pending, items: int, size: int) -> bool:
        return items + len(pending.operations) <= self.max_items and size + pending.size <= self.max_bytes

    def _flush(self, group: list[Pending]) -> None:
        if self.observe is not None:
            self._observe_shares(group)
        items = self.send([operation for pending in group for operation in pending.operations])
        at = 0
        for pending in group:
            pending.answer(items[at : at + len(pending.operations)])
            at += len(pending.operations)

    def _observe_shares(self, group: list[Pending]) -> None:
        shares: dict[str, int] = {}
        for pending in group:
            if pending.label is not None:
                shares[pending.label] = shares.get(pending.label, 0) + len(pending.operations)
        for label, size in shares.items():
            self.observe(label, size)
