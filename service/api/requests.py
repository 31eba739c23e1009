"""Request helpers shared by the dataset views: reading queries, scoping, ingest flow.

They glue the stages together (schema → translation → store → shaping) so that each view
stays a few lines long.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

import elastic_transport
import elasticsearch
from flask import current_app, g, request
from marshmallow import Schema, ValidationError

from .. import store
from ..datasets.registry import Dataset
from ..engine import shape
from ..engine.params import QueryParams
from ..engine.translate import RESULT_WINDOW
from ..errors import ApiError, arguments_error, validation_error
from ..ingest import FAILED, RETRY, Batch, EventLoader, Report, decode_body, parse_events, validate_items


def settings():
    return current_app.config["SETTINGS"]


def es():
    return current_app.extensions["es"]


def json_body() -> dict | None:
    """The JSON object of a query body, None when there is no body."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return None
    media = (request.mimetype or "").lower()
    if media != "application/json":
        raise ApiError(415, "unsupported_media_type", "A query body must be application/json.")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "The query body must be a JSON object.")
    return body


def load_query(schema: Schema, data: dict) -> QueryParams:
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise arguments_error({"json": exc.messages}, schema) from exc


def institutions_of_token(dataset: Dataset) -> tuple[int, ...]:
    """The institutions the request's token is restricted to (empty: unrestricted)."""
    token = g.token
    if token.restricted and not dataset.institution_field:
        raise ApiError(403, "forbidden", f"Tokens restricted to institutions cannot use {dataset.name}.")
    return token.institutions


def page_size_of(params: QueryParams) -> int:
    page_size = settings().default_page_size if params.page_size is None else params.page_size
    if page_size > settings().max_page_size:
        raise validation_error(
            f"page_size must be at most {settings().max_page_size}.",
            {"fields": {"page_size": [f"Must be at most {settings().max_page_size}."]}},
        )
    if params.offset + page_size > RESULT_WINDOW and not params.cursor:
        raise validation_error(
            f"offset + page_size must stay within {RESULT_WINDOW}; page further with the cursor.",
            {"fields": {"offset": ["Use next_cursor to page this deep."]}},
        )
    return page_size


def run_query(dataset: Dataset, params: QueryParams) -> dict:
    """`{"total_count", "events", "next_cursor"?}` for plain and grouped queries alike."""
    institutions = institutions_of_token(dataset)
    prefix = settings().index_prefix
    page_size = page_size_of(params)
    if params.grouped:
        total, rows = store.group_events(es(), dataset, prefix, params, institutions)
        return {"total_count": total, "events": rows if page_size else []}
    fingerprint = shape.fingerprint(dataset, params)
    after = None
    if params.cursor:
        try:
            after = shape.decode_cursor(params.cursor, fingerprint)
        except ValueError as exc:
            raise validation_error(f"Invalid cursor: {exc}.", {"fields": {"cursor": [str(exc)]}}) from exc
    response = store.search_events(es(), dataset, prefix, params, page_size, institutions, after)
    hits = response["hits"]["hits"]
    result = {"total_count": shape.total(response), "events": shape.events(dataset, response)}
    if page_size:
        more = len(hits) == page_size
        result["next_cursor"] = shape.encode_cursor(hits[-1]["sort"], fingerprint) if more else None
    return result


def refresh_param() -> str | bool:
    value = request.args.get("refresh", "false").lower()
    if value in ("wait_for", "true", ""):
        return "wait_for" if value != "true" else True
    if value == "false":
        return False
    raise validation_error("refresh must be wait_for, true or false.", {"fields": {"refresh": ["Invalid."]}})


def read_batch():
    raw = decode_body(
        request.get_data(cache=False), request.headers.get("Content-Encoding"), settings().max_body_bytes
    )
    return parse_events(raw, request.headers.get("Content-Type", ""))


#: Events per `_bulk` of a large batch: documents are made and sent a slice at a time, so a
#: worker never holds a whole 5,000-event batch's documents and bulk answers at once (its
#: peak RSS stayed above 150 MB that way; see docs/benchmarks.md).
BULK_EVENTS = 1000

_loaders: dict[str, EventLoader] = {}


def loader_of(dataset: Dataset) -> EventLoader:
    """Built once per dataset: making a marshmallow schema costs more than validating an event."""
    loader = _loaders.get(dataset.name)
    if loader is None:
        loader = _loaders[dataset.name] = EventLoader(dataset)
    return loader


def ingest(dataset: Dataset, refresh) -> tuple[Report, Batch, dict]:
    """Validate, scope-check and bulk-store the request's events; report each one.

    Returns the report, the parsed batch and the documents of the first `_bulk` (position →
    (id, document); for a single event, its own).
    """
    batch = read_batch()
    valid, errors = validate_items(loader_of(dataset), batch)
    if batch.single and errors:
        raise validation_error("The event is invalid.", {"fields": errors[0]})
    allowed = g.token.institutions
    if allowed:
        foreign = [i for i, e in valid.items() if e.get(dataset.institution_field) not in allowed]
        if foreign:
            raise ApiError(
                403,
                "forbidden",
                "This token may not ingest events of other institutions.",
                {"indexes": foreign[:100]},
            )
    report = Report(size=len(batch.items), errors=errors)
    first = store_in_slices(dataset, valid, report, refresh)
    return report, batch, first


def store_in_slices(dataset: Dataset, valid: dict[int, dict], report: Report, refresh) -> dict:
    """Make and store the documents `BULK_EVENTS` at a time; the first slice's documents.

    A slice that fails as a whole after earlier ones were stored marks its own and the later
    events as not stored (a 207 that says so); a failure before anything was stored is the
    request's error (429 / 503). (Making the next slice while Elasticsearch indexes one was
    measured too: no gain on 2 shared cores, where both compete for the same CPU.)
    """
    positions = list(valid)
    send = partial(
        store.bulk_create,
        es(),
        dataset.index_name(settings().index_prefix),
        report=report,
        refresh=refresh,
        committer=current_app.extensions["group_commit"],
    )
    first = {}
    for start in range(0, max(len(positions), 1), BULK_EVENTS):
        documents = prepare_documents(dataset, valid, positions[start : start + BULK_EVENTS])
        first = first or documents
        try:
            send(documents)
        except (elasticsearch.ApiError, elastic_transport.TransportError) as exc:
            if start == 0:
                raise
            outcome = RETRY if getattr(exc, "status_code", None) == 429 else FAILED
            report.not_stored(positions[start:], outcome, repr(exc))
            break
    return first


def prepare_documents(dataset: Dataset, valid: dict[int, dict], positions: list[int]) -> dict:
    """position → (id, Elasticsearch document) for the valid events at `positions`."""
    now = datetime.now(UTC)
    new_id = current_app.extensions["ids"].next_id
    documents = {}
    for position in positions:
        event = valid[position]
        prepared = dataset.prepare(event, now, new_id) if dataset.prepare else event
        documents[position] = (prepared[dataset.id_field], dataset.to_document(prepared))
    return documents
