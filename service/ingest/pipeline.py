"""The ingest flow without HTTP: validate → scope → prepare → claim → bulk → report.

Shared by the HTTP views (`api/http.py` reads the body and the token) and the `flask import`
command (which reads a file), so both store events the same way. `prepare` is pure;
`store_batch` sends through the `EventStore` (or the worker's group commit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import elastic_transport
import elasticsearch
import msgspec
from marshmallow import ValidationError

from .. import observability
from ..engine.registry import Dataset
from ..errors import ApiError, validation_error
from ..store import IDS_PER_SEARCH, EventStore
from .body import Batch
from .clock import clock_skew, correct_clock, corrected_again, restored_clock
from .documents import Encoded, encoded, json_of
from .documents import document as document_of
from .group_commit import GroupCommitter
from .report import CREATED, CREATED_ITEM, DUPLICATE, FAILED, RETRY, Report, item_outcome
from .validation import EventLoader, validate_items

_LOADERS: dict[str, tuple[Dataset, EventLoader]] = {}


def loader_of(dataset: Dataset) -> EventLoader:
    """Built once per dataset: making a marshmallow schema costs more than validating an event."""
    known = _LOADERS.get(dataset.name)
    if known is None or known[0] is not dataset:
        known = _LOADERS[dataset.name] = (dataset, EventLoader(dataset))
    return known[1]


#: Events per `_bulk` of a large batch. Each `_bulk` costs Elasticsearch a translog sync per
#: monthly index it touches, and the worker a round trip, so larger is faster while a worker
#: holds more at once. With documents encoded from the decoder's Struct (no dict per event),
#: 5,000 against 1,000 measured, one sender of 5,000-event NDJSON batches over 24 months:
#: 15,400 against 12,500 events/s, node CPU 66 against 105 µs per event, worker peak RSS 97
#: against 86 MB (dict documents had taken a worker to 160 MB at 5,000; docs/benchmarks.md).
BULK_EVENTS = 5000


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
    dataset: Dataset,
    batch: Batch,
    now: datetime,
    new_id: Callable[[], int],
    institutions=(),
    restore_clocks=False,
) -> Prepared:
    """Validate each item, correct client clocks when the batch says when it was sent, refuse
    foreign institutions (403), and build the documents. With `restore_clocks` (`flask import`),
    an item carrying its exported `clock_correction` is stored again as it was."""
    # An unreadable sent_at is the request's 400, before anything is stored.
    skew = clock_skew(batch.sent_at, now) if batch.sent_at is not None else None
    restored, refused = restored_clocks(dataset, batch) if restore_clocks else ({}, {})
    valid, errors = validate_items(loader_of(dataset), batch)
    for position, reason in refused.items():
        valid.pop(position, None)
        errors[position] = {**errors.get(position, {}), **reason}
    if skew is not None or restored:
        valid = corrected_clocks(dataset, valid, errors, skew, restored)
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
    untimed = untimed_positions(dataset, valid)
    # An untimed event's receipt may be replaced by its claim's (`claim_receipts`): a dict.
    as_dict = set(untimed)
    documents = {}
    for position, event in valid.items():
        if type(event) is dict or position in as_dict:
            documents[position] = document_of(dataset, event, now, new_id)
        else:
            documents[position] = encoded(dataset, event, now, new_id)
    return Prepared(len(batch.items), documents, errors, untimed)


def untimed_positions(dataset: Dataset, valid: dict[int, dict]) -> list[int]:
    """Positions of events with a client-given id and none of the partition fields (a plain
    loop: this runs for every event of every batch)."""
    if not dataset.receipt_field:
        return []
    id_field, fields, untimed = dataset.id_field, dataset.partition_fields, []
    for position, event in valid.items():
        if event.get(id_field):
            for name in fields:
                if event.get(name):
                    break
            else:
                untimed.append(position)
    return untimed


def corrected_clocks(
    dataset: Dataset, valid: dict[int, dict], errors: dict, skew: dict | None, restored: dict
) -> dict[int, dict]:
    """The events with their client clocks corrected: by the batch's `skew`, or for an event
    restored from an export (`restored_clocks`) by its own, which must give back its exported
    times (`clock.corrected_again`). An event the correction would carry off the calendar, or
    whose times disagree, moves to `errors`, reported for itself."""
    fields, corrected = dataset.client_clock_fields, {}
    for position, event in valid.items():
        if position not in restored and skew is None:
            corrected[position] = event
            continue
        if type(event) is not dict:  # a decoded Struct (validation.EventLoader.read)
            event = msgspec.to_builtins(event)
        try:
            if position in restored:
                corrected[position] = corrected_again(event, fields, *restored[position])
            else:
                corrected[position] = correct_clock(event, fields, skew)
        except ValidationError as exc:
            errors[position] = exc.messages
    return corrected


def restored_clocks(dataset: Dataset, batch: Batch) -> tuple[dict[int, tuple[dict, dict]], dict[int, dict]]:
    """Items that carry an exported `clock_correction` put back as their client sent them
    (`clock.restored_clock`), in place in `batch.items`: (position → (their skew, the exported
    event), position → the errors of those that cannot be)."""
    restored, refused = {}, {}
    fields = dataset.client_clock_fields
    for position, item in enumerate(batch.items):
        if type(item) is not dict or "clock_correction" not in item:
            continue
        try:
            batch.items[position], skew = restored_clock(item, fields)
            restored[position] = (skew, item)
        except ValidationError as exc:
            batch.items[position] = {k: v for k, v in item.items() if k != "clock_correction"}
            refused[position] = exc.messages
    return restored, refused


def store_batch(store: EventStore, dataset: Dataset, prepared: Prepared, refresh, committer=None) -> Report:
    """Bulk-create the documents `BULK_EVENTS` at a time, each outcome reported; count the
    outcomes in the metrics. A slice that fails as a whole after earlier ones were stored marks
    its own and the later events as not stored (a 207 that says so); a failure before anything
    was stored is the request's error (429 / 503)."""
    report = Report(size=prepared.size, errors=dict(prepared.errors))
    documents = skip_stored(store, dataset, prepared, report)
    # A request that asked for a refresh sends its own bulks, its claims' too.
    documents = claim_receipts(
        store, dataset, prepared.untimed, documents, report, committer=None if refresh else committer
    )
    indices = index_names(store.prefix, dataset, documents)
    # Slices by month: each `_bulk` then touches few monthly indices (one translog sync each),
    # which matters when a device uploads weeks of backlog at once.
    positions = sorted(documents, key=indices.__getitem__)
    for start in range(0, len(positions), BULK_EVENTS):
        piece = {p: operation(indices[p], *documents[p]) for p in positions[start : start + BULK_EVENTS]}
        try:
            record(piece, send(store, list(piece.values()), refresh, committer, dataset.name), report)
        except (elasticsearch.ApiError, elastic_transport.TransportError) as exc:
            if start == 0:
                raise
            outcome = RETRY if getattr(exc, "status_code", None) == 429 else FAILED
            report.not_stored(positions[start:], outcome, repr(exc))
            break
    observability.count_ingest(dataset.name, report.count(CREATED), report.count(DUPLICATE), report.rejected)
    return report


def index_names(prefix: str, dataset: Dataset, documents: dict) -> dict[int, str]:
    """Position → the monthly index of its document."""
    return {
        position: dataset.index_of(prefix, document.partition)
        if type(document) is Encoded
        else dataset.index_for(prefix, document)
        for position, (_, document) in documents.items()
    }


def operation(index: str, event_id, document) -> tuple[str, object, bytes]:
    """The (index, id, document) the store sends, the document as its JSON bytes (so a shared
    `_bulk` knows its size: `GroupCommitter.max_bytes`)."""
    return index, event_id, document.json if type(document) is Encoded else json_of(document)


def send(
    store: EventStore,
    operations: list,
    refresh=False,
    committer: GroupCommitter | None = None,
    events_of: str | None = None,
) -> list:
    """`create` (index, id, document) triples; the bulk items, in order.

    Small requests that need no refresh share a `_bulk` with the worker's concurrent ones
    (`committer`); the others send their own. Either way each outcome is Elasticsearch's own.
    `events_of` names the dataset when the documents are its events (not claims): each
    `_bulk`'s share of them is counted in the metrics, once per `_bulk` actually sent.
    """
    if committer is not None and not refresh and len(operations) <= committer.max_request_items:
        return committer.submit(operations, events_of)
    if events_of is not None:
        observability.observe_batch(events_of, len(operations))
    return store.bulk(operations, refresh)


def record(documents: dict[int, tuple[str, object, dict]], items: list[dict], report: Report) -> None:
    """Each bulk item's outcome, reported at its document's position."""
    ids, outcomes = report.ids, report.outcomes
    for position, item in zip(documents, items, strict=True):
        ids[position] = documents[position][1]
        if item == CREATED_ITEM:  # nearly every item: one comparison in C
            outcomes[position] = CREATED
            continue
        outcome, reason = item_outcome(item)
        outcomes[position] = outcome
        if reason:
            report.errors[position] = {"_elasticsearch": [reason]}


def skip_stored(store: EventStore, dataset: Dataset, prepared: Prepared, report: Report) -> dict:
    """The documents left to create once untimed events already stored in another month are
    reported as duplicates (one `ids` search per batch, and only when there are such events)."""
    untimed = {position: prepared.documents[position][0] for position in prepared.untimed}
    known = store.existing_ids(dataset, list(untimed.values())) if untimed else set()
    documents = dict(prepared.documents)
    for position, event_id in untimed.items():
        if str(event_id) in known:
            del documents[position]
            report.ids[position], report.outcomes[position] = event_id, DUPLICATE
    return documents


def claim_receipts(
    store: EventStore,
    dataset: Dataset,
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
    held, failed = claim(store, dataset, receipts, committer)
    documents = dict(documents)
    for position, (outcome, reason) in failed.items():
        del documents[position]
        report.not_stored([position], outcome, reason or outcome)
    for position, receipt in held.items():
        event_id, document = documents[position]
        if document[field] != receipt:
            documents[position] = (event_id, {**document, field: receipt})
    return documents


def claim(
    store: EventStore, dataset: Dataset, receipts: dict[int, tuple[object, str]], committer=None
) -> tuple[dict[int, str], dict[int, tuple[str, str | None]]]:
    """`create` a claim `{_id: id, received_at: receipt}` for each (id, receipt) by position, and
    read (real time) the claims that already existed. Returns (position → the receipt its id
    holds, whoever claimed it first; position → (outcome, reason) where the claim failed)."""
    index = store.claims_index(dataset)
    held, failed, taken = {}, {}, []
    positions = list(receipts)
    for start in range(0, len(positions), IDS_PER_SEARCH):
        chunk = positions[start : start + IDS_PER_SEARCH]
        operations = [(index, receipts[p][0], {"received_at": receipts[p][1]}) for p in chunk]
        for position, item in zip(chunk, send(store, operations, committer=committer), strict=True):
            outcome, reason = item_outcome(item)
            if outcome == CREATED:
                held[position] = receipts[position][1]
            elif outcome == DUPLICATE:
                taken.append(position)
            else:
                failed[position] = (outcome, reason)
    for start in range(0, len(taken), IDS_PER_SEARCH):
        chunk = taken[start : start + IDS_PER_SEARCH]
        found = store.claims(dataset, [str(receipts[p][0]) for p in chunk])
        for position, doc in zip(chunk, found, strict=True):
            # Gone only if retention deleted it (with its month) meanwhile: then ours stands.
            held[position] = doc["_source"]["received_at"] if doc.get("found") else receipts[position][1]
    return held, failed


def run(
    store: EventStore,
    dataset: Dataset,
    batch: Batch,
    new_id: Callable[[], int],
    refresh=False,
    institutions=(),
    received_at: datetime | None = None,
    committer: GroupCommitter | None = None,
    restore_clocks=False,
) -> tuple[Report, dict]:
    """Validate, prepare and store one batch: (its report, the documents sent by position).
    With a `committer` (group_commit.py), small requests share a worker's `_bulk`."""
    now = received_at or datetime.now(UTC)
    prepared = prepare(dataset, batch, now, new_id, institutions, restore_clocks)
    return store_batch(store, dataset, prepared, refresh, committer), prepared.documents
