"""The query service: parsed parameters in, the answer out, without HTTP.

Each query runs one way: plan (`engine.translate`: parameters → Elasticsearch body) → execute
(`EventStore`: send it, get the answer) → shape (`engine.shape`: answer → events or rows) →
suppress (`engine.suppression`). Views call it with the caller's `Scope`; nothing here knows
about requests, tokens or JSON encoding, so `flask export` and tests use it just the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

from .engine import shape, suppression
from .engine.groups import ParameterError
from .engine.params import QueryParams
from .engine.registry import Dataset
from .engine.translate import COMPOSITE_PAGE, GROUP_FILTER_PATH, group_body, search_body
from .errors import ApiError, validation_error
from .rows_cache import RowsCache, digest
from .store import EventStore

#: Events fetched per search while exporting: large enough for few round trips, small enough
#: that a page never holds much memory.
EXPORT_PAGE = 2_000


@dataclass(frozen=True)
class Scope:
    """What the caller may see: its institutions (empty: all) and its minimum count (a token's)."""

    institutions: tuple[int, ...] = ()
    min_count: int | None = None

    def check(self, dataset: Dataset) -> None:
        if self.institutions and not dataset.institution_field:
            raise ApiError(403, "forbidden", f"Tokens restricted to institutions cannot use {dataset.name}.")

    def refuse_events(self) -> None:
        """A caller bound to a min_count reads counts only: one event is a count of 1."""
        if self.min_count:
            raise ApiError(403, "forbidden", "This token may only read suppressed counts, not events.")


class QueryService:
    """Runs queries of any dataset against one store, sharing a cache of shaped grouped rows."""

    def __init__(self, store: EventStore, rows_cache: RowsCache | None = None):
        self.store = store
        self.rows_cache = rows_cache or RowsCache(0)

    def run(self, dataset: Dataset, params: QueryParams, scope: Scope) -> dict:
        """`{"total_count", "events", ...}` for plain and grouped queries alike."""
        scope.check(dataset)
        min_count = max(filter(None, (scope.min_count, params.min_count)), default=None)
        if params.grouped:
            result = self.grouped(dataset, params, scope)
        elif min_count and params.page_rows:
            raise ApiError(
                403,
                "forbidden",
                "Counts below a minimum are hidden for this request: use group_by or page_size=0.",
            )
        else:
            result = self.plain(dataset, params, scope)
        if min_count:
            result = suppression.suppress_answer(result, min_count, params)
        return result

    def plain(self, dataset: Dataset, params: QueryParams, scope: Scope) -> dict:
        fingerprint = shape.fingerprint(dataset, params)
        after = read_cursor(params, fingerprint)
        body = search_body(dataset, params, params.page_rows, scope.institutions, after)
        response = self.store.search(dataset, body)
        hits = response["hits"]["hits"]
        result = {"total_count": shape.total(response), "events": shape.events(dataset, response)}
        if params.stats:
            aggregations = response["aggregations"]
            result["stats"] = {name: shape.read_stats(aggregations, name) for name in params.stats}
        if params.page_rows:
            more = len(hits) == params.page_rows
            result["next_cursor"] = shape.encode_cursor(hits[-1]["sort"], fingerprint) if more else None
        return result

    def grouped(self, dataset: Dataset, params: QueryParams, scope: Scope) -> dict:
        """Every row, or (with an explicit page_size) one page of rows and a cursor to the next."""
        if params.offset:
            raise validation_error(
                "Grouped rows page with page_size and cursor, not offset.",
                {"fields": {"offset": ["Not with group_by."]}},
            )
        if params.page_size:
            return self.group_page(dataset, params, scope)
        total, pages = self.all_buckets(dataset, params, scope)
        if params.page_size == 0:
            return {"total_count": total, "events": [], "exact": True}
        key = (dataset.name, repr(params), digest(pages))
        try:
            rows = self.rows_cache.rows(key, partial(shaped_rows, dataset, params, pages))
        except ParameterError as exc:
            raise refusal(exc) from exc
        return {"total_count": total, "events": rows, "exact": True}

    def group_page(self, dataset: Dataset, params: QueryParams, scope: Scope) -> dict:
        """One page of `page_size` rows from the cursor's composite `after` key on."""
        if not params.streamable:
            raise validation_error(
                "Grouped rows page by cursor only in key order, a bucket a row: drop order_by, "
                "fill, age ranges, or Sunday weeks in a named time zone.",
                {
                    "fields": {
                        "page_size": ["Not with order_by, fill, age ranges or Sunday weeks in a named zone"]
                    }
                },
            )
        fingerprint = shape.fingerprint(dataset, params)
        after = read_cursor(params, fingerprint)
        size = params.page_size
        body = group_body(dataset, params, scope.institutions, after, size=size, count=True)
        response, buckets, after = self.composite_page(dataset, body)
        try:
            rows = shape.rows(params, shape.add_buckets(params, buckets, {}))
        except ParameterError as exc:
            raise refusal(exc) from exc
        more = len(buckets) == size and after is not None
        cursor = shape.encode_cursor(after, fingerprint) if more else None
        return {"total_count": shape.total(response), "events": rows, "exact": True, "next_cursor": cursor}

    def all_buckets(self, dataset: Dataset, params: QueryParams, scope: Scope) -> tuple[int, list[list]]:
        """(events matching, every page of buckets): pages the composite aggregation to its end."""
        pages, after, total = [], None, None
        while True:
            body = group_body(dataset, params, scope.institutions, after)
            response, buckets, after = self.composite_page(dataset, body)
            if total is None:
                total = shape.total(response)
            pages.append(buckets)
            if after is None or len(buckets) < COMPOSITE_PAGE:
                return total, pages

    def composite_page(self, dataset: Dataset, body: dict) -> tuple[dict, list[dict], dict | None]:
        """One search of a grouped query: (the answer, its buckets, the next `after` key)."""
        response = self.store.search(dataset, body, filter_path=GROUP_FILTER_PATH)
        # No index yet (nothing ingested) means no aggregation in the answer at all.
        aggregation = response.get("aggregations", {}).get("groups", {})
        return response, shape.buckets_of(aggregation), aggregation.get("after_key")

    def event(self, dataset: Dataset, event_id, scope: Scope) -> dict | None:
        """One event as a client sees it, or None, also when the scope may not see it."""
        scope.check(dataset)
        scope.refuse_events()
        source = self.store.get_source(dataset, event_id)
        if source is None:
            return None
        if scope.institutions and source.get(dataset.institution_field) not in scope.institutions:
            return None
        return dataset.to_event(source)

    def export(
        self, dataset: Dataset, params: QueryParams, scope: Scope, page_size: int = EXPORT_PAGE
    ) -> Iterator[list[dict]]:
        """Every matching event, a page at a time, through a point in time and search_after.

        The point in time is opened now (a 503 here if Elasticsearch is away), and closed at
        the end of the pages or when the consumer stops early."""
        scope.check(dataset)
        scope.refuse_events()
        pit = self.store.open_point_in_time(dataset)
        return self._export_pages(dataset, params, scope, pit, page_size)

    def _export_pages(self, dataset: Dataset, params: QueryParams, scope: Scope, pit: str, page_size: int):
        after = None
        try:
            while True:
                body = search_body(dataset, params, page_size, scope.institutions, after)
                body["track_total_hits"] = False
                response = self.store.search_point_in_time(pit, body)
                hits = response["hits"]["hits"]
                if not hits:
                    return
                pit = response.get("pit_id", pit)
                yield [dataset.to_event(hit["_source"]) for hit in hits]
                after = hits[-1]["sort"]
        finally:
            self.store.close_point_in_time(pit)


def shaped_rows(dataset: Dataset, params: QueryParams, pages: list[list[dict]]) -> list[dict]:
    acc = {}
    for buckets in pages:
        shape.add_buckets(params, buckets, acc)
    return shape.rows(params, acc, shape.date_bounds(dataset, params))


def read_cursor(params: QueryParams, fingerprint: str):
    if not params.cursor:
        return None
    try:
        return shape.decode_cursor(params.cursor, fingerprint)
    except ValueError as exc:
        raise validation_error(f"Invalid cursor: {exc}.", {"fields": {"cursor": [str(exc)]}}) from exc


def refusal(exc: ParameterError) -> ApiError:
    """Rows that cannot be made (too many to fill, dates beyond the calendar): a 400 naming why."""
    return validation_error(str(exc), {"fields": {exc.parameter: [str(exc)]}})
