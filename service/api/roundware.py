"""The Roundware endpoints (API.md section 5): `/api/2/events/`, as existing clients call them."""

from __future__ import annotations

from flask import jsonify

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
    refresh_param,
    run_query,
)
from .smorest import EVENT, EVENTS, EXPORT_RESPONSES, INGEST_PARAMETERS, Blueprint, IngestReport, QueryResult

blp = Blueprint("roundware", __name__, url_prefix="/api/2", description=ROUNDWARE.doc)
RoundwareQuery = query_schema(ROUNDWARE)
RoundwareExport = export_schema(ROUNDWARE)


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


@blp.route("/events/", methods=["GET"])
@require("query")
@blp.arguments(RoundwareQuery, location="query", as_kwargs=False)
@blp.doc(
    summary="List events",
    description=(
        "A JSON array of events; the total is in `X-Total-Count`, the cursor of the next page in "
        '`X-Next-Cursor`. With `group_by` the answer is `{"total_count", "events": [rows]}`.'
    ),
)
@blp.alt_response(200, schema={"anyOf": [EVENTS, QueryResult]}, description="events, or grouped rows")
def list_events(params):
    result = run_query(ROUNDWARE, params)
    if params.grouped:
        return jsonify(result)
    response = jsonify(result["events"])
    if result["total_count"] is not None:  # withheld under min_count: no header
        response.headers["X-Total-Count"] = str(result["total_count"])
    if result.get("next_cursor"):
        response.headers["X-Next-Cursor"] = result["next_cursor"]
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
