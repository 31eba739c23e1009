"""The Roundware endpoints (API.md section 5): `/api/2/events/`, as existing clients call them."""

from __future__ import annotations

from flask import json, jsonify

from ..auth import require
from ..datasets.roundware import ROUNDWARE
from ..engine.params import export_schema, query_schema
from ..errors import ApiError
from ..ingest import CREATED
from .requests import (
    batch_response,
    event_or_404,
    export,
    ingest,
    json_body,
    load_query,
    refresh_param,
    refuse_query_string,
    run_query,
)
from .smorest import EVENT, EVENTS, EXPORT_RESPONSES, INGEST_PARAMETERS, Blueprint, IngestReport, QueryResult

blp = Blueprint("roundware", __name__, url_prefix="/api/2", description=ROUNDWARE.doc)
RoundwareQuery = query_schema(ROUNDWARE)
RoundwareExport = export_schema(ROUNDWARE)
#: One instance for every request (see cdx.CDX_QUERY).
ROUNDWARE_QUERY = RoundwareQuery()


@blp.route("/events/", methods=["POST"])
@blp.doc(
    summary="Create an event (or a batch)",
    description=(
        "One event object answers 201 with the stored event (`id` and `server_time` set by the "
        'service, `tag_ids` as `"3,8"`). A JSON array or NDJSON is a batch, answered like '
        "`POST /events` (stored / rejected counts, per-item errors)."
    ),
    parameters=INGEST_PARAMETERS,
    requestBody={"content": {"application/json": {"schema": {"type": "object"}}}},
)
@blp.alt_response(201, schema=EVENT, description="the stored event, or a batch's report (all stored)")
@blp.alt_response(200, schema=IngestReport, description="a batch: all were duplicates")
@blp.alt_response(207, schema=IngestReport, description="a batch: some rejected (see errors)")
@require("ingest")
def post_event():
    report, batch, documents = ingest(ROUNDWARE, refresh_param())
    if not batch.single:
        return batch_response(report)
    if report.outcomes.get(0) != CREATED:
        status = report.status if report.status >= 400 else 503
        raise ApiError(status, "not_stored", "The event was not stored; retry.", report.body()["errors"])
    return jsonify(ROUNDWARE.to_event(documents[0][1])), 201


#: What the cdx answer holds beside its events, and the header carrying it beside the array.
ARRAY_HEADERS = {
    "total_count": (
        "X-Total-Count",
        "events matching (absent when min_count hides a total below it)",
    ),
    "next_cursor": ("X-Next-Cursor", "the cursor of the next page (absent on the last)"),
    "stats": ("X-Stats", 'with `stats`: JSON, the summary cdx answers under `"stats"`'),
    "rate": ("X-Rate", 'with `rate`: JSON, the whole answer\'s rates (cdx: `"rate"`)'),
    "distinct": (
        "X-Distinct",
        'with `distinct`: JSON, the whole answer\'s distinct counts (cdx: `"distinct"`)',
    ),
    "compare": (
        "X-Compare",
        'with `compare`: JSON `{"previous": {"count"}, "change"}` (cdx: `"previous"` and `"change"`)',
    ),
    "suppressed": ("X-Suppressed", 'with `min_count`: JSON, what cdx answers under `"suppressed"`'),
}


@blp.route("/events/", methods=["GET"])
@require("query")
@blp.arguments(RoundwareQuery, location="query", as_kwargs=False)
@blp.doc(
    summary="List events",
    description=(
        "A JSON array of events; the total is in `X-Total-Count`, the cursor of the next page in "
        "`X-Next-Cursor`, and what cdx answers beside its events in headers named after the "
        "parameter, as JSON: `X-Stats`, `X-Rate`, `X-Distinct`, `X-Compare`, `X-Suppressed`. "
        'With `group_by` the answer is `{"total_count", "events": [rows]}`. The same keys may '
        "be sent as a JSON body instead (lists for several values; ranges of `delay_seconds`); "
        "a body and query-string parameters together are a 400."
    ),
)
@blp.alt_response(
    200,
    schema={"anyOf": [EVENTS, QueryResult]},
    description="events, or grouped rows",
    headers={
        header: {"description": description, "schema": {"type": "string"}}
        for header, description in ARRAY_HEADERS.values()
    },
)
def list_events(params):
    body = json_body()
    if body is not None:
        refuse_query_string()
        params = load_query(ROUNDWARE_QUERY, body)
    result = run_query(ROUNDWARE, params)
    if params.grouped:
        return jsonify(result)
    return array_response(result)


def array_response(result: dict):
    """The bare array Roundware clients read: the rest of the answer goes in headers, so a
    parameter such as `stats` is never dropped for want of a place."""
    response = jsonify(result["events"])
    if "previous" in result:
        result = {**result, "compare": {"previous": result["previous"], "change": result["change"]}}
    for name, (header, _) in ARRAY_HEADERS.items():
        value = result.get(name)
        if value is not None:
            response.headers[header] = value if isinstance(value, str) else json.dumps(value)
    return response


@blp.route("/events/export", methods=["GET"])
@require("query")
@blp.arguments(RoundwareExport, location="query", as_kwargs=False)
@blp.doc(
    summary="Export every matching event",
    description="As `GET /events/export`, for Roundware events.",
    responses=EXPORT_RESPONSES,
)
def export_events(params):
    return export(ROUNDWARE, params)


@blp.route("/events/<int:event_id>/", methods=["GET"])
@blp.doc(summary="One event by id")
@blp.alt_response(200, schema=EVENT, description="the event")
@require("query")
def get_event(event_id):
    return event_or_404(ROUNDWARE, event_id, f"id {event_id}")
