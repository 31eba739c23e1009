"""Reading a request and writing an answer: what the dataset views share.

Everything here knows HTTP (Flask's request, the token on `g`); nothing here knows
Elasticsearch: queries go to the query service, events to the ingest pipeline.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import orjson
from flask import Response, current_app, g, jsonify, request, stream_with_context
from marshmallow import Schema, ValidationError

from .. import formats
from ..engine.params import QueryParams
from ..engine.registry import Dataset
from ..errors import CODES, ApiError, arguments_error, storage_full, storage_full_error, validation_error
from ..ingest import pipeline
from ..ingest.body import Batch, decode_body, parse_events
from ..ingest.report import Report
from ..queries import QueryService, Scope
from .smorest import INGEST_PARAMETERS

#: The query parameters every ingest endpoint reads (and documents).
INGEST_QUERY = tuple(parameter["name"] for parameter in INGEST_PARAMETERS)


def settings():
    return current_app.config["SETTINGS"]


def queries() -> QueryService:
    return current_app.extensions["queries"]


def store():
    """The app's `EventStore`, handed to the ingest pipeline (views send nothing themselves)."""
    return current_app.extensions["store"]


def scope() -> Scope:
    """What the request's token may see."""
    token = g.token
    return Scope(institutions=tuple(token.institutions), min_count=token.min_count)


def json_body() -> dict | None:
    """The JSON object of a query body, None when there is no body."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return None
    media = (request.mimetype or "").lower()
    if media != "application/json":
        raise ApiError(415, "unsupported_media_type", "A query body must be application/json.")
    body = parse_query_body(raw)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "The query body must be a JSON object.")
    return body


def refuse_query_string() -> None:
    """A query read from a JSON body would drop query-string parameters: a 400 naming them."""
    names = sorted(request.args)
    if names:
        raise validation_error(
            f"Query-string parameters beside a JSON body: {', '.join(names)}; send them in the body.",
            {"fields": {name: ["Not beside a JSON body: send it in the body."] for name in names}},
        )


def refuse_body() -> None:
    """Endpoints whose parameters are the query string would drop a body's: a 400."""
    if request.get_data(cache=True).strip():
        raise validation_error(
            "This endpoint reads its parameters from the query string, not a body.",
            {"fields": {"body": ["Send the parameters in the query string."]}},
        )


def refuse_unknown_args(valid: tuple[str, ...]) -> None:
    """Query parameters an endpoint does not read would be dropped (a typo such as `refesh`
    unnoticed): a 400 naming them and listing the valid ones."""
    unknown = sorted(set(request.args) - set(valid))
    if unknown:
        raise validation_error(
            "Unknown parameters: " + ", ".join(unknown),
            {"fields": {name: ["Unknown field."] for name in unknown}, "valid": sorted(valid)},
        )


def parse_query_body(raw: bytes):
    """A query body's JSON. orjson refuses a number beyond a double (`1e400`), which JSON
    allows: the standard library then reads such a number as its text, for the schema to
    refuse by the parameter's name."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        error = exc
    try:
        body = json.loads(raw.decode(), parse_float=_finite_or_text, parse_constant=_no_constant)
        orjson.dumps(body)  # only what orjson can also write back (no lone surrogates)
    except (ValueError, TypeError, RecursionError):
        raise ApiError(400, "invalid_json", f"The query body is not valid JSON: {error}") from error
    return body


def _finite_or_text(text: str):
    number = float(text)
    return number if math.isfinite(number) else text


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def load_query(schema: Schema, data: dict) -> QueryParams:
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise arguments_error({"json": exc.messages}, schema) from exc


def refresh_param() -> str | bool:
    value = request.args.get("refresh", "false").lower()
    if value in ("wait_for", "true", ""):
        return "wait_for" if value != "true" else True
    if value == "false":
        return False
    raise validation_error("refresh must be wait_for, true or false.", {"fields": {"refresh": ["Invalid."]}})


def body_bytes() -> bytes:
    """The request body, read whole. With a known length it is asked for in one read, which
    gunicorn serves from up to 1 MiB per `recv`; werkzeug's `get_data` asks 64 KiB at a time,
    each read through every layer (the body deadline's timer included): 35 reads for a
    5,000-event batch."""
    length = request.content_length
    if not length:
        return request.get_data(cache=False)
    stream, parts, received = request.stream, [], 0  # `stream` enforces MAX_CONTENT_LENGTH
    while received < length:
        part = stream.read(length - received)
        if not part:  # werkzeug raises ClientDisconnected (400) first; this only ends the loop
            break
        parts.append(part)
        received += len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def read_batch():
    raw = decode_body(body_bytes(), request.headers.get("Content-Encoding"), settings().max_body_bytes)
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
    if status in (429, 503) and report_storage_full(report):
        raise storage_full_error(report.body())
    if status >= 400:
        code = "validation_error" if status == 400 else CODES[status]
        raise ApiError(status, code, BATCH_FAILURES[status], report.body())
    return jsonify(report.body()), status


def report_storage_full(report: Report) -> bool:
    """Whether Elasticsearch refused the report's events for want of disk space."""
    return any(storage_full(str(errors)) for errors in report.errors.values())


def store_events(dataset: Dataset, refresh) -> tuple[Report, Batch, dict]:
    """Read the request's events and store them through the ingest pipeline, scoped to the
    token's institutions. Returns the report, the parsed batch and the documents sent
    (position → (id, document))."""
    received_at = datetime.now(UTC)
    refuse_unknown_args(INGEST_QUERY)
    batch = read_batch()
    if batch.sent_at is None:  # an envelope's empty sent_at is unreadable, not absent
        batch.sent_at = request.args.get("sent_at")
    report, documents = pipeline.run(
        store(),
        dataset,
        batch,
        current_app.extensions["ids"].next_id,
        refresh,
        g.token.institutions,
        received_at,
        committer=current_app.extensions["group_commit"],
    )
    return report, batch, documents


def export_response(dataset: Dataset, params: QueryParams) -> Response:
    """Stream every matching event as NDJSON or CSV, in constant memory."""
    refuse_body()
    pages = queries().export(dataset, params, scope())  # a 503 here if Elasticsearch is away
    chunks = (chunk.encode() for chunk in formats.encode_pages(pages, params.format, dataset))
    filename = f"{dataset.name}-events.{params.format}"
    return Response(
        stream_with_context(chunks),
        # The whole header as given: `mimetype=` would append a second charset to text/csv.
        content_type=formats.MEDIA_TYPES[params.format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def event_response(dataset: Dataset, event_id, label: str):
    """The one event a token may see, as JSON, or a 404 naming it."""
    refuse_unknown_args(())
    event = queries().event(dataset, event_id, scope())
    if event is None:
        raise ApiError(404, "not_found", f"No event with {label}.")
    return jsonify(event)
