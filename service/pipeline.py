"""The ingest flow without HTTP: validate → scope → prepare → bulk → report.

Shared by the HTTP views (`api/requests.py`, which reads the body and the token) and the
`flask import` command (which reads a file), so both store events the same way.
`prepare` is pure; `store_batch` is the one step that calls Elasticsearch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

import elastic_transport
import elasticsearch
from elasticsearch import Elasticsearch
from marshmallow import ValidationError

from . import observability, store
from .datasets import DATASETS
from .datasets.registry import Dataset
from .errors import ApiError, validation_error
from .ingest import (
    CREATED,
    DUPLICATE,
    FAILED,
    RETRY,
    Batch,
    EventLoader,
    Report,
    clock_skew,
    correct_clock,
    validate_items,
)


@cache
def loader_of(dataset_name: str) -> EventLoader:
    """Built once per dataset: making a marshmallow schema costs more than validating an event."""
    return EventLoader(DATASETS[dataset_name])


#: Events per `_bulk` of a large batch. Each `_bulk` costs Elasticsearch a translog sync per
#: monthly index it touches, so larger is faster, but a worker then holds more at once: 5,000
#: measured a worker peak RSS of 160 MB at 1M events (the target is 150; docs/benchmarks.md).
BULK_EVENTS = 1000


@dataclass
class Prepared:
    """A batch made ready to store: documents by position, and the positions' errors."""

    size: int
    #: Position → (id, Elasticsearch document).
    documents: dict[int, tuple[object, dict]]
    errors: dict[int, dict]
    #: Positions whose event has a client-given id but no time of its own: its monthly index
    #: comes from the time of ingest, so a retry in a later month would meet another index
    #: but for its claim (`claim_receipts`).
    untimed: list[int]


def prepare(
    dataset: Dataset, batch: Batch, now: datetime, new_id: Callable[[], int], institutions=()
) -> Prepared:
    """Validate each item, correct client clocks when the batch says when it was sent, refuse
    foreign institutions (403), and build the documents."""
    # An unreadable sent_at is the request's 400, before anything is stored.
    skew = clock_skew(batch.sent_at, now) if batch.sent_at is not None else None
    valid, errors = validate_items(loader_of(dataset.name), batch)
    if skew is not None:
        valid = corrected_clocks(dataset, valid, skew, errors)
    if batch.single and errors:
        raise validation_error("The event is invalid.", {"fields": errors[0]})
    if institutions:
        foreign = [i for i, e in valid.items() if e.get(dataset.institution_field) not in institutions]
        if foreign:
            raise ApiError(
                403,
                "forbidden",
                "This token may not ingest events of other institutions.",
                {"indexes": foreign[:100]},
            )
    documents = {}
    for position, event in valid.items():
        prepared = dataset.prepare(event, now, new_id) if dataset.prepare else event
        documents[position] = (prepared[dataset.id_field], dataset.to_document(prepared))
    untimed = [
        position
        for position, event in valid.items()
        if dataset.receipt_field
        and event.get(dataset.id_field)
        and not any(event.get(f) for f in dataset.partition_fields)
    ]
    return Prepared(len(batch.items), documents, errors, untimed)


def corrected_clocks(dataset: Dataset, valid: dict[int, dict], skew: dict, errors: dict) -> dict[int, dict]:
    """The events with their client clocks corrected; an event the correction would carry off
    the calendar moves to `errors`, reported for itself."""
    corrected = {}
    for position, event in valid.items():
        try:
            corrected[position] = correct_clock(event, dataset.client_clock_fields, skew)
        except ValidationError as exc:
            errors[position] = exc.messages
    return corrected


def store_batch(
    es: Elasticsearch, dataset: Dataset, prefix: str, prepared: Prepared, refresh, committer=None
) -> Report:
    """Bulk-create the documents `BULK_EVENTS` at a time, each outcome reported; count the
    outcomes in the metrics. A slice that fails as a whole after earlier ones were stored marks
    its own and the later events as not stored (a 207 that says so); a failure before anything
    was stored is the request's error (429 / 503)."""
    report = Report(size=prepared.size, errors=dict(prepared.errors))
    documents = skip_stored(es, dataset, prefix, prepared, report)
    # A request that asked for a refresh sends its own bulks, its claims' too.
    documents = claim_receipts(
        es, dataset, prefix, prepared.untimed, documents, report, committer=None if refresh else committer
    )
    indices = {position: dataset.index_for(prefix, document) for position, (_, document) in documents.items()}
    # Slices by month: each `_bulk` then touches few monthly indices (one translog sync each),
    # which matters when a device uploads weeks of backlog at once.
    positions = sorted(documents, key=indices.__getitem__)
    for start in range(0, len(positions), BULK_EVENTS):
        piece = {p: (indices[p], *documents[p]) for p in positions[start : start + BULK_EVENTS]}
        try:
            store.bulk_create(es, piece, report, refresh, committer)
        except (elasticsearch.ApiError, elastic_transport.TransportError) as exc:
            if start == 0:
                raise
            outcome = RETRY if getattr(exc, "status_code", None) == 429 else FAILED
            report.not_stored(positions[start:], outcome, repr(exc))
            break
    if documents:
        observability.observe_batch(dataset.name, len(documents))
    observability.count_ingest(dataset.name, report.count(CREATED), report.count(DUPLICATE), report.rejected)
    return report


def skip_stored(es: Elasticsearch, dataset: Dataset, prefix: str, prepared: Prepared, report: Report) -> dict:
    """The documents left to create once untimed events already stored in another month are
    reported as duplicates (one `ids` search per batch, and only when there are such events)."""
    untimed = {position: prepared.documents[position][0] for position in prepared.untimed}
    known = store.existing_ids(es, dataset, prefix, list(untimed.values()))
    documents = dict(prepared.documents)
    for position, event_id in untimed.items():
        if str(event_id) in known:
            del documents[position]
            report.ids[position], report.outcomes[position] = event_id, DUPLICATE
    return documents


def claim_receipts(
    es: Elasticsearch,
    dataset: Dataset,
    prefix: str,
    untimed: list[int],
    documents: dict,
    report: Report,
    committer,
) -> dict:
    """The documents, each untimed event's receipt time being that of its uuid's first receipt.

    An event with a uuid but no time of its own takes its month from the time it is received,
    which differs between a post and its retry, and the search of `skip_stored` only sees
    what was refreshed. So the first receipt of each such uuid is claimed once, with a
    `create` in the claims index (which refuses a second, in real time); every later post of
    the uuid reads the claim (a real-time get) and takes its receipt, so it meets the first
    post's monthly index, where `create` finds the copy: across a month boundary, within a
    second, concurrently, or stores it if the first post died after claiming. Only such
    events pay for it: one `_bulk` of claims per request, and a get when the uuid was seen.
    """
    field = dataset.receipt_field
    receipts = {p: (documents[p][0], documents[p][1][field]) for p in untimed if p in documents}
    if not receipts:
        return documents
    held, failed = store.claim(es, dataset, prefix, receipts, committer)
    documents = dict(documents)
    for position, (outcome, reason) in failed.items():
        del documents[position]
        report.not_stored([position], outcome, reason or outcome)
    for position, receipt in held.items():
        event_id, document = documents[position]
        if document[field] != receipt:
            documents[position] = (event_id, {**document, field: receipt})
    return documents


def ingest(
    es: Elasticsearch,
    dataset: Dataset,
    prefix: str,
    batch: Batch,
    new_id: Callable[[], int],
    refresh=False,
    institutions=(),
    received_at: datetime | None = None,
    committer=None,
) -> tuple[Report, dict]:
    """Validate, prepare and store one batch: (its report, the documents sent by position).
    With a `committer` (service/group_commit.py), small requests share a worker's `_bulk`."""
    prepared = prepare(dataset, batch, received_at or datetime.now(UTC), new_id, institutions)
    return store_batch(es, dataset, prefix, prepared, refresh, committer), prepared.documents
