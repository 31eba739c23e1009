"""GroupCommitter without a node: grouping, splitting answers, and failures reaching every waiter."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from service.ingest.group_commit import DICT_DOCUMENT_BYTES, GroupCommitter, Pending


class GatedSend:
    """A fake `_bulk` that holds its first call until released, so the next requests queue up."""

    def __init__(self, fail: Exception | None = None):
        self.calls: list[list] = []
        self.first_call, self.release = threading.Event(), threading.Event()
        self.fail = fail

    def __call__(self, operations):
        self.calls.append(operations)
        if len(self.calls) == 1:
            self.first_call.set()
            assert self.release.wait(10)
        if self.fail and len(self.calls) > 1:
            raise self.fail
        return [{"create": {"_id": doc_id, "status": 201}} for _, doc_id, _ in operations]


def triples(documents: list) -> list:
    """(id, document) pairs as the (index, id, document) operations `submit` takes."""
    return [("i", doc_id, document) for doc_id, document in documents]


def queue_behind_first(committer: GroupCommitter, send: GatedSend, requests: list[list], labels=None):
    """Submit a first request, then `requests` while it is in flight; every answer in order.
    `labels`: the first request's label, then each request's."""
    labels = labels or [None] * (len(requests) + 1)
    with ThreadPoolExecutor(len(requests) + 1) as pool:
        first = pool.submit(committer.submit, triples([("first", {})]), labels[0])
        assert send.first_call.wait(10)
        futures = [
            pool.submit(committer.submit, triples(documents), label)
            for documents, label in zip(requests, labels[1:], strict=True)
        ]
        while committer.queued() < len(requests):
            threading.Event().wait(0.005)
        send.release.set()
        first.result()
        return [future.exception() or future.result() for future in futures]


def test_requests_queued_behind_a_bulk_share_the_next_one_and_get_their_own_items():
    send = GatedSend()
    committer = GroupCommitter(send)
    requests = [[(f"r{n}-{k}", {"n": n}) for k in range(n + 1)] for n in range(5)]
    answers = queue_behind_first(committer, send, requests)
    assert len(send.calls) == 2
    assert sorted(doc_id for _, doc_id, _ in send.calls[1]) == sorted(d for r in requests for d, _ in r)
    for documents, items in zip(requests, answers, strict=True):
        assert [item["create"]["_id"] for item in items] == [doc_id for doc_id, _ in documents]


def test_a_group_never_exceeds_max_items():
    send = GatedSend()
    committer = GroupCommitter(send, max_items=4)
    requests = [[(f"r{n}-{k}", {}) for k in range(2)] for n in range(5)]
    answers = queue_behind_first(committer, send, requests)
    assert [len(call) for call in send.calls[1:]] == [4, 4, 2]
    assert all(len(items) == 2 for items in answers)


def test_a_failed_bulk_fails_every_request_in_it_with_that_error():
    error = ConnectionError("node down")
    send = GatedSend(fail=error)
    committer = GroupCommitter(send)
    answers = queue_behind_first(committer, send, [[("a", {})], [("b", {})], [("c", {})]])
    assert answers == [error, error, error]
    with pytest.raises(ConnectionError):
        committer.submit(triples([("d", {})]))


def test_observe_hears_each_labels_share_of_every_bulk_sent():
    """The events metric counts per `_bulk`: requests sharing one are one observation per
    dataset, and unlabelled documents (uuid claims) are not events."""
    send, heard = GatedSend(), []
    committer = GroupCommitter(send, observe=lambda label, size: heard.append((label, size)))
    requests = [[("a", {}), ("b", {})], [("c", {})], [("claim", {})], [("d", {}), ("e", {}), ("f", {})]]
    answers = queue_behind_first(committer, send, requests, ["cdx", "cdx", "roundware", None, "cdx"])
    assert all(not isinstance(answer, Exception) for answer in answers)
    assert [len(call) for call in send.calls] == [1, 7]
    assert heard[0] == ("cdx", 1)
    assert sorted(heard[1:]) == [("cdx", 5), ("roundware", 1)]


def test_a_group_never_exceeds_max_bytes_and_a_larger_request_goes_alone():
    send = GatedSend()
    committer = GroupCommitter(send, max_bytes=100)
    sizes = [40, 40, 40, 150, 30, 30]
    requests = [[(f"r{n}", b"x" * size)] for n, size in enumerate(sizes)]
    answers = queue_behind_first(committer, send, requests)
    assert all(len(items) == 1 for items in answers)
    groups = [[len(document) for _, _, document in call] for call in send.calls[1:]]
    assert groups == [[40, 40], [40], [150], [30, 30]]


def test_documents_not_yet_encoded_count_a_fixed_size():
    committer = GroupCommitter(GatedSend(), max_bytes=2 * DICT_DOCUMENT_BYTES)
    pending = Pending([("i", "a", {"received_at": "2026-01-01"}), ("i", "b", b"{}")])
    assert pending.size == DICT_DOCUMENT_BYTES + 2
    assert committer._fits(pending, 0, 0)
    assert not committer._fits(pending, 0, DICT_DOCUMENT_BYTES)
