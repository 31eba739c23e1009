"""Every dataset's endpoints, built from its declaration (docs/api.md §3 to §6).

One blueprint per dataset, all made by `dataset_blueprint`: ingest, query (query string or
JSON body), JSON query, export and one event by id. What differs between datasets is data in
the declaration (`Dataset.http`): paths, and the habits of an API whose clients must keep
working (Roundware's bare array with its headers, and its `201` with the stored event).
"""

from __future__ import annotations

from flask import json, jsonify

from ..auth import require
from ..engine.params import export_schema, query_schema
from ..engine.registry import Dataset
from ..errors import ApiError, storage_full_error
from ..ingest.report import CREATED
from . import http
from .smorest import EVENT, EVENTS, EXPORT_RESPONSES, INGEST_PARAMETERS, Blueprint, IngestReport, QueryResult

QUERY_DOC = (
    "Filters (comma-separated values: any matches; `null` / `not(null)`), ordering, paging "
    "(`page_size`, `offset`, or `cursor`), `page_size=0` for the count only, and `group_by`. "
    "The same keys may be sent as a JSON body instead (lists for several values); a body and "
    "query-string parameters together are a 400."
)

#: What a query answer holds beside its events, and the header carrying it beside a bare array.
ARRAY_HEADERS = {
    "total_count": ("X-Total-Count", "events matching (absent when min_count withholds the total)"),
    "next_cursor": ("X-Next-Cursor", "the cursor of the next page (absent on the last)"),
    "stats": ("X-Stats", 'with `stats`: JSON, the summary answered under `"stats"` elsewhere'),
    "rate": ("X-Rate", 'with `rate`: JSON, the whole answer\'s rates (elsewhere: `"rate"`)'),
    "distinct": (
        "X-Distinct",
        'with `distinct`: JSON, the whole answer\'s distinct counts (elsewhere: `"distinct"`)',
    ),
    "compare": (
        "X-Compare",
        'with `compare`: JSON `{"previous": {"count"}, "change"}` (elsewhere: `"previous"` and `"change"`)',
    ),
    "suppressed": ("X-Suppressed", 'with `min_count`: JSON, what is answered under `"suppressed"` elsewhere'),
}


def dataset_blueprint(dataset: Dataset, default_page_size: int, max_page_size: int) -> Blueprint:
    """The blueprint of one dataset's endpoints, documented in the OpenAPI document."""
    paths = dataset.http
    blp = Blueprint(dataset.name, __name__, description=dataset.doc)
    query = query_schema(dataset, default_page_size, max_page_size)
    export = export_schema(dataset)
    #: One instance for every request: schemas keep no per-load state, and building one
    #: deep-copies every declared field (about as long as the whole load).
    query_loader = query()

    @blp.route(paths.collection, methods=["POST"], endpoint="ingest")
    @blp.doc(summary="Ingest events", description=ingest_doc(dataset), parameters=INGEST_PARAMETERS)
    @blp.doc(requestBody=INGEST_BODY)
    @ingest_responses(blp, paths.created_event)
    @require("ingest")
    def post_events():
        report, batch, documents = http.store_events(dataset, http.refresh_param())
        if paths.created_event and batch.single:
            return created_event(dataset, report, documents)
        return http.batch_response(report)

    @blp.route(paths.collection, methods=["GET"], endpoint="query")
    @require("query")
    @blp.arguments(query, location="query", as_kwargs=False)
    @blp.doc(summary="Query events", description=list_doc(paths.bare_list))
    @list_responses(blp, paths.bare_list)
    def get_events(params):
        body = http.json_body()
        if body is not None:
            http.refuse_query_string()
            params = http.load_query(query_loader, body)
        return answer(params, http.queries().run(dataset, params, http.scope()), paths.bare_list)

    @blp.route(paths.query, methods=["POST"], endpoint="json_query")
    @blp.doc(
        summary="Query events with a JSON body",
        description=QUERY_DOC,
        requestBody={"content": {"application/json": {"schema": query}}},
    )
    @list_responses(blp, paths.bare_list)
    @require("query")
    def query_events():
        http.refuse_query_string()
        params = http.load_query(query_loader, http.json_body() or {})
        return answer(params, http.queries().run(dataset, params, http.scope()), paths.bare_list)

    @blp.route(paths.export, methods=["GET"], endpoint="export")
    @require("query")
    @blp.arguments(export, location="query", as_kwargs=False)
    @blp.doc(
        summary="Export every matching event",
        description="Streams all events matching the filters as NDJSON or CSV (`format`), through a "
        "point in time and search_after: any number of events, constant memory. PII is never exported.",
        responses=EXPORT_RESPONSES,
    )
    def export_events(params):
        return http.export_response(dataset, params)

    @blp.route(paths.item, methods=["GET"], endpoint="event")
    @blp.doc(summary=f"One event by {paths.id_label}")
    @blp.alt_response(200, schema=EVENT, description="the event (without PII)")
    @require("query")
    def get_event(event_id):
        label = (
            f"{paths.id_label} '{event_id}'" if isinstance(event_id, str) else f"{paths.id_label} {event_id}"
        )
        return http.event_response(dataset, event_id, label)

    return blp


INGEST_BODY = {
    "content": {
        "application/json": {"schema": {"type": "object"}},
        "application/x-ndjson": {"schema": {"type": "string"}},
    }
}


def ingest_doc(dataset: Dataset) -> str:
    text = (
        "One event object, a JSON array, or NDJSON (`application/x-ndjson`); gzip accepted. "
        "`?refresh=wait_for` waits until stored events are searchable. 201: all stored; "
        "200: all were duplicates; 207: some rejected (see `errors`); 400: none storable."
    )
    if dataset.http.created_event:
        text += " One event object (not a batch) answers 201 with the stored event."
    return text


def ingest_responses(blp: Blueprint, created_event: bool):
    def decorate(view):
        if created_event:
            stored = blp.alt_response(201, schema=EVENT, description="the stored event, or a batch's report")
        else:
            stored = blp.alt_response(201, schema=IngestReport, description="all stored")
        view = stored(view)
        view = blp.alt_response(200, schema=IngestReport, description="all were duplicates")(view)
        return blp.alt_response(207, schema=IngestReport, description="some rejected (see errors)")(view)

    return decorate


def list_doc(bare_list: bool) -> str:
    if not bare_list:
        return QUERY_DOC
    headers = ", ".join(f"`{name}` in `{header}`" for name, (header, _) in ARRAY_HEADERS.items())
    return (
        f"{QUERY_DOC} Without `group_by` the answer is a JSON array of events, the rest of the "
        f'answer in headers ({headers}); with `group_by` it is `{{"total_count", "events": [rows]}}`.'
    )


def list_responses(blp: Blueprint, bare_list: bool):
    if not bare_list:
        return blp.alt_response(200, schema=QueryResult, description="events or grouped rows")
    headers = {
        header: {"description": text, "schema": {"type": "string"}} for header, text in ARRAY_HEADERS.values()
    }
    return blp.alt_response(
        200, schema={"anyOf": [EVENTS, QueryResult]}, description="events, or grouped rows", headers=headers
    )


def answer(params, result: dict, bare_list: bool):
    if bare_list and not params.grouped:
        return array_response(result)
    return jsonify(result)


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


def created_event(dataset: Dataset, report, documents: dict):
    """One posted event: `201` with the event as stored, or an error if it was not."""
    if report.outcomes.get(0) != CREATED:
        if http.report_storage_full(report):
            raise storage_full_error(report.body()["errors"])
        status = report.status if report.status >= 400 else 503
        raise ApiError(status, "not_stored", "The event was not stored; retry.", report.body()["errors"])
    return jsonify(dataset.to_event(documents[0][1])), 201
