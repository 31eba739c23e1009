"""The `cdx` endpoints (API.md sections 3 and 4): thin views over the shared engine."""

from __future__ import annotations

from flask import jsonify

from ..auth import require
from ..datasets.cdx import CDX
from ..engine.params import export_schema, query_schema
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
from .smorest import EVENT, EXPORT_RESPONSES, INGEST_PARAMETERS, Blueprint, IngestReport, QueryResult

blp = Blueprint("cdx", __name__, description=CDX.doc)
CdxQuery = query_schema(CDX)
CdxExport = export_schema(CDX)
#: One instance for every request: schemas keep no per-load state, and building one deep-copies
#: every declared field (about as long as the whole load).
CDX_QUERY = CdxQuery()
QUERY_DOC = (
    "Filters (comma-separated values: any matches; `null` / `not(null)`), ordering, paging "
    "(`page_size`, `offset`, or `cursor`), `page_size=0` for the count only, and `group_by`. "
    "The same keys may be sent as a JSON body instead (lists for several values); a body and "
    "query-string parameters together are a 400."
)


@blp.route("/events", methods=["POST"])
@blp.doc(
    summary="Ingest events",
    description=(
        "One event object, a JSON array, or NDJSON (`application/x-ndjson`); gzip accepted. "
        "`?refresh=wait_for` waits until stored events are searchable. 201: all stored; "
        "200: all were duplicates; 207: some rejected (see `errors`); 400: none storable."
    ),
    parameters=INGEST_PARAMETERS,
    requestBody={
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        }
    },
)
@blp.alt_response(201, schema=IngestReport, description="all stored")
@blp.alt_response(200, schema=IngestReport, description="all were duplicates")
@blp.alt_response(207, schema=IngestReport, description="some rejected (see errors)")
@require("ingest")
def post_events():
    report, _, _ = ingest(CDX, refresh_param())
    return batch_response(report)


@blp.route("/events", methods=["GET"])
@require("query")
@blp.arguments(CdxQuery, location="query", as_kwargs=False)
@blp.doc(summary="Query events", description=QUERY_DOC)
@blp.alt_response(200, schema=QueryResult, description="events or grouped rows")
def get_events(params):
    body = json_body()
    if body is not None:
        refuse_query_string()
        params = load_query(CDX_QUERY, body)
    return jsonify(run_query(CDX, params))


@blp.route("/events/query", methods=["POST"])
@blp.doc(
    summary="Query events with a JSON body",
    description=QUERY_DOC,
    requestBody={"content": {"application/json": {"schema": CdxQuery}}},
)
@blp.alt_response(200, schema=QueryResult, description="events or grouped rows")
@require("query")
def query_events():
    refuse_query_string()
    body = json_body()
    return jsonify(run_query(CDX, load_query(CDX_QUERY, body or {})))


@blp.route("/events/export", methods=["GET"])
@require("query")
@blp.arguments(CdxExport, location="query", as_kwargs=False)
@blp.doc(
    summary="Export every matching event",
    description="Streams all events matching the filters as NDJSON or CSV (`format`), through a "
    "point in time and search_after: any number of events, constant memory. `pii` is never exported.",
    responses=EXPORT_RESPONSES,
)
def export_events(params):
    return export(CDX, params)


@blp.route("/events/<event_id>", methods=["GET"])
@blp.doc(summary="One event by uuid")
@blp.alt_response(200, schema=EVENT, description="the event (without pii)")
@require("query")
def get_event(event_id):
    return event_or_404(CDX, event_id, f"uuid '{event_id}'")
