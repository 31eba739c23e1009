"""Request helpers shared by the dataset views: reading queries, scoping, ingest flow.

They glue the stages together (schema → translation → store → shaping) so that each view
stays a few lines long.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial

import orjson
from flask import Response, current_app, g, jsonify, request, stream_with_context
from marshmallow import Schema, ValidationError

from .. import files, pipeline, store
from ..datasets.registry import Dataset
from ..engine import analytics, shape, suppression
from ..engine.groups import ParameterError
from ..engine.params import RESULT_WINDOW, QueryParams
from ..errors import CODES, ApiError, arguments_error, validation_error
from ..ingest import Batch, Report, decode_body, parse_events
from ..rows_cache import digest
from .smorest import INGEST_PARAMETERS

#: The query parameters every ingest endpoint reads (and documents).
INGEST_QUERY = tuple(parameter["name"] for parameter in INGEST_PARAMETERS)


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


def institutions_of_token(dataset: Dataset) -> tuple[int, ...]:
    """The institutions the request's token is restricted to (empty: unrestricted)."""
    token = g.token
    if token.restricted and not dataset.institution_field:
        raise ApiError(403, "forbidden", f"Tokens restricted to institutions cannot use {dataset.name}.")
    return token.institutions


def event_or_404(dataset: Dataset, event_id, label: str):
    """The one event a token may see, as JSON, or a 404 naming it."""
    refuse_unknown_args(())
    refuse_events_under_min_count()
    event = store.get_event(es(), dataset, settings().index_prefix, event_id, institutions_of_token(dataset))
    if event is None:
        raise ApiError(404, "not_found", f"No event with {label}.")
    return jsonify(event)


def refuse_events_under_min_count() -> None:
    """A token bound to a min_count reads counts only: one event is a count of 1."""
    if g.token.min_count:
        raise ApiError(403, "forbidden", "This token may only read suppressed counts, not events.")


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
    """`{"total_count", "events", ...}` for plain and grouped queries alike."""
    institutions = institutions_of_token(dataset)
    min_count = max(filter(None, (g.token.min_count, params.min_count)), default=None)
    page_size = page_size_of(params)
    if params.grouped:
        fingerprint = shape.fingerprint(dataset, params)  # of the query as asked: cursors stay valid
        params = planned(dataset, params, institutions)
        if params.page_size and params.pageable_whole and not params.offset:
            return page_of_whole(dataset, params, institutions, fingerprint, min_count)
        result = run_grouped(dataset, params, institutions, fingerprint)
    elif min_count and page_size:
        raise ApiError(
            403,
            "forbidden",
            "Counts below a minimum are hidden for this request: use group_by or page_size=0.",
        )
    else:
        result = run_plain(dataset, params, page_size, institutions)
    if min_count:
        result = analytics.suppress_answer(result, min_count, params)
    return result


def run_plain(dataset: Dataset, params: QueryParams, page_size: int, institutions) -> dict:
    fingerprint = shape.fingerprint(dataset, params)
    after = read_cursor(params, fingerprint)
    response = store.search_events(
        es(), dataset, settings().index_prefix, params, page_size, institutions, after
    )
    hits = response["hits"]["hits"]
    result = {"total_count": shape.total(response), "events": shape.events(dataset, response)}
    if params.stats:
        result["stats"] = {name: shape.read_stats(response["aggregations"], name) for name in params.stats}
    result |= whole_analytics(dataset, params, response, institutions)
    if page_size:
        more = len(hits) == page_size
        result["next_cursor"] = shape.encode_cursor(hits[-1]["sort"], fingerprint) if more else None
    return result


def run_grouped(dataset: Dataset, params: QueryParams, institutions, fingerprint: str) -> dict:
    """Every row, or (with an explicit page_size) one page of rows and a cursor to the next."""
    prefix = settings().index_prefix
    if params.offset:
        raise validation_error(
            "Grouped rows page with page_size and cursor, not offset.",
            {"fields": {"offset": ["Not with group_by."]}},
        )
    if params.page_size:
        if not params.streamable:
            raise validation_error(
                "Grouped rows page by cursor only in key order, a bucket a row: drop order_by, "
                "fill, age ranges, or Sunday weeks in a named time zone.",
                {
                    "fields": {
                        "page_size": ["Not with order_by, fill, age ranges or Sunday weeks in a named zone."]
                    }
                },
            )
        after = read_cursor(params, fingerprint)
        try:
            total, acc, after = store.group_page(
                es(), dataset, prefix, params, params.page_size, institutions, after
            )
        except ParameterError as exc:
            raise refusal(exc) from exc
        rows = shape.rows(params, acc)
        cursor = shape.encode_cursor(after, fingerprint) if after else None
        return {"total_count": total, "events": rows, "exact": True, "next_cursor": cursor}
    if params.page_size == 0:
        total, _ = store.group_events(es(), dataset, prefix, params, institutions)
        return {"total_count": total, "events": [], "exact": True}
    total, rows = whole_rows(dataset, params, institutions)
    return {"total_count": total, "events": rows, "exact": True}


def refusal(exc: ParameterError) -> ApiError:
    """Rows that cannot be made (too many to fill, dates beyond the calendar): a 400 naming why."""
    return validation_error(str(exc), {"fields": {exc.parameter: [str(exc)]}})


def whole_rows(dataset: Dataset, params: QueryParams, institutions) -> tuple[int, list[dict]]:
    """(events matching, every row), with the compared period's counts when asked."""
    prefix = settings().index_prefix
    total, pages = store.group_events(es(), dataset, prefix, params, institutions)
    previous = None
    if params.compare:
        before = analytics.previous_params(dataset, params)
        previous = store.group_events(es(), dataset, prefix, before, institutions)[1]
    try:
        rows = current_app.extensions["rows_cache"].rows(
            (dataset.name, repr(params), digest([pages, previous])),
            partial(shaped_rows, dataset, params, pages, previous),
        )
    except ParameterError as exc:
        raise refusal(exc) from exc
    return total, rows


def shaped_rows(
    dataset: Dataset, params: QueryParams, pages: list[list[dict]], previous: list[list[dict]] | None = None
) -> list[dict]:
    acc = {}
    for buckets in pages:
        shape.add_buckets(params, buckets, acc)
    if previous is not None:
        before, earlier = analytics.previous_params(dataset, params), {}
        for buckets in previous:
            shape.add_buckets(before, buckets, earlier)
        acc = analytics.add_previous(acc, earlier)
    return shape.rows(params, acc, shape.date_bounds(dataset, params))


# -- analytics (engine/analytics.py): the searches its plans need ------------------------------


def planned(dataset: Dataset, params: QueryParams, institutions) -> QueryParams:
    """`params` completed with what `top` and entry rates need to know first: the values of
    the ranked field (events per value) and of an entry's other key."""
    needed = analytics.lookups(dataset, params)
    if not needed:
        return params
    found = {}
    for name, group in needed.items():
        lookup = analytics.lookup_params(params, group)
        _, pages = store.group_events(es(), dataset, settings().index_prefix, lookup, institutions)
        found[name] = analytics.value_counts(pages)
    return analytics.plan(dataset, params, found)


def page_of_whole(
    dataset: Dataset, params: QueryParams, institutions, fingerprint: str, min_count: int | None
) -> dict:
    """A page of rows computed whole (`top`, `compare`), after the row the cursor names (its
    keys as JSON text: `{"other": K}` and ranges are not sort values). Under `min_count` the
    rows are suppressed whole, then paged, so that no page shows what another's hidden rows
    would give away; beside a page the total is withheld, as on any cursor walk."""
    after = read_cursor(params, fingerprint)
    try:
        last = None if after is None else json.loads(after["row"])
        if last is not None and not isinstance(last, list):
            raise ValueError("not a row's keys")
    except (KeyError, TypeError, ValueError) as exc:
        raise validation_error(
            "Invalid cursor: not this query's.", {"fields": {"cursor": [str(exc)]}}
        ) from exc
    total, rows = whole_rows(dataset, params, institutions)
    whole = {"total_count": total, "events": rows, "exact": True}
    if min_count:
        whole = analytics.suppress_answer(whole, min_count, replace(params, page_size=None, cursor=None))
    try:
        page, last = analytics.page_of(params, whole["events"], last, params.page_size)
    except (TypeError, ValueError) as exc:
        raise validation_error(
            "Invalid cursor: not this query's.", {"fields": {"cursor": [str(exc)]}}
        ) from exc
    cursor = shape.encode_cursor({"row": json.dumps(last)}, fingerprint) if last is not None else None
    result = {"total_count": whole["total_count"], "events": page, "exact": True, "next_cursor": cursor}
    if min_count:
        hidden = sum(row.get("suppressed") is True for row in page)
        result["suppressed"] = suppression.summary_of(min_count, hidden)
        if params.cursor or cursor:
            result["total_count"] = None
    return result


def whole_analytics(dataset: Dataset, params: QueryParams, response: dict, institutions) -> dict:
    """Without `group_by`: rates, distinct counts and the compared period's count of the whole
    answer, beside `total_count`."""
    total = shape.total(response)
    found = analytics.whole_answer(params, response.get("aggregations", {}), total)
    if params.compare:
        before = analytics.previous_params(dataset, params)
        earlier = store.search_events(es(), dataset, settings().index_prefix, before, 0, institutions)
        previous = shape.total(earlier)
        found |= {"previous": {"count": previous}, "change": analytics.change(total, previous)}
    return found


def read_cursor(params: QueryParams, fingerprint: str):
    if not params.cursor:
        return None
    try:
        return shape.decode_cursor(params.cursor, fingerprint)
    except ValueError as exc:
        raise validation_error(f"Invalid cursor: {exc}.", {"fields": {"cursor": [str(exc)]}}) from exc


def export(dataset: Dataset, params: QueryParams) -> Response:
    """Stream every matching event as NDJSON or CSV, in constant memory."""
    refuse_body()
    institutions = institutions_of_token(dataset)
    refuse_events_under_min_count()
    pit = store.open_export(es(), dataset, settings().index_prefix)  # fails here (503) if ES is away
    pages = store.export_pages(es(), dataset, pit, params, institutions)

    chunks = (chunk.encode() for chunk in files.encode_pages(pages, params.format, dataset))
    filename = f"{dataset.name}-events.{params.format}"
    return Response(
        stream_with_context(chunks),
        # The whole header as given: `mimetype=` would append a second charset to text/csv.
        content_type=files.MEDIA_TYPES[params.format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


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


def ingest(dataset: Dataset, refresh) -> tuple[Report, Batch, dict]:
    """Read the request's events and store them through the shared pipeline, scoped to the
    token's institutions. Returns the report, the parsed batch and the documents sent
    (position → (id, document))."""
    received_at = datetime.now(UTC)
    refuse_unknown_args(INGEST_QUERY)
    batch = read_batch()
    if batch.sent_at is None:  # an envelope's empty sent_at is unreadable, not absent
        batch.sent_at = request.args.get("sent_at")
    new_id = current_app.extensions["ids"].next_id
    report, documents = pipeline.ingest(
        es(),
        dataset,
        settings().index_prefix,
        batch,
        new_id,
        refresh,
        g.token.institutions,
        received_at,
        committer=current_app.extensions["group_commit"],
    )
    return report, batch, documents
