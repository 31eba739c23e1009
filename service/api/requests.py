"""Request helpers shared by the dataset views: reading queries, scoping, ingest flow.

They glue the stages together (schema → translation → store → shaping) so that each view
stays a few lines long.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import current_app, g, jsonify, request
from marshmallow import Schema, ValidationError

from .. import store
from ..datasets.registry import Dataset
from ..engine import shape
from ..engine.params import RESULT_WINDOW, QueryParams
from ..errors import CODES, ApiError, arguments_error, validation_error
from ..ingest import Batch, Report, decode_body, ingest_schema, parse_events, validate_items


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


BATCH_FAILURES = {
    400: "No event of the request could be stored.",
    429: "Elasticsearch is overloaded; nothing was stored, retry later.",
    503: "Elasticsearch could not store the events; nothing was stored, retry later.",
}


def batch_response(report: Report):
    """201 / 200 / 207 with the report; when nothing was stored, an error (the one error
    shape, `Retry-After` on 429 and 503) whose details are the report."""
    status = report.status
    if status >= 400:
        code = "validation_error" if status == 400 else CODES[status]
        raise ApiError(status, code, BATCH_FAILURES[status], report.body())
    return jsonify(report.body()), status


_schemas: dict[str, Schema] = {}


def ingest(dataset: Dataset, refresh) -> tuple[Report, Batch, dict]:
    """Validate, scope-check and bulk-store the request's events; report each one.

    Returns the report, the parsed batch and the documents sent (position → (id, document)).
    """
    batch = read_batch()
    schema = _schemas.setdefault(dataset.name, ingest_schema(dataset))
    valid, errors = validate_items(schema, batch)
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
    now = datetime.now(UTC)
    new_id = current_app.extensions["ids"].next_id
    documents = {}
    for position, event in valid.items():
        prepared = dataset.prepare(event, now, new_id) if dataset.prepare else event
        documents[position] = (prepared[dataset.id_field], dataset.to_document(prepared))
    report = Report(size=len(batch.items), errors=errors)
    store.bulk_create(es(), dataset.index_name(settings().index_prefix), documents, report, refresh)
    return report, batch, documents
