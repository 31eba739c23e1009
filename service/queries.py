"""The query service: parsed parameters in, the answer out, without HTTP.

Each query runs one way: plan (`engine.translate`: parameters → Elasticsearch body) → execute
(`EventStore`: send it, get the answer) → shape (`engine.shape`: answer → events or rows) →
suppress (`engine.suppression`). Views call it with the caller's `Scope`; nothing here knows
about requests, tokens or JSON encoding, so `flask export` and tests use it just the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import orjson

from .engine import analytics, shape, suppression
from .engine.groups import ParameterError
from .engine.params import QueryParams
from .engine.registry import Dataset
from .engine.translate import GROUP_FILTER_PATH, composite_size, group_body, search_body
from .errors import ApiError, validation_error
from .rows_cache import RowsCache, SharedRows, digest, digest_bytes
from .store import EventStore

#: Events fetched per search while exporting: large enough for few round trips, small enough
#: that a page never holds much memory.
EXPORT_PAGE = 2_000


@dataclass(frozen=True)
class Remembered:
    """A grouped answer's rows with what recognises a repeat of it: each page's digest, and the
    `after_key` each page but the last held (to ask for the next one without reading it)."""

    total: int
    afters: list[dict]
    digests: list[bytes]
    rows: SharedRows


@dataclass
class Pages:
    """The pages of a grouped answer as read: the total, each page's buckets, digest (when
    signed) and (but the last's) `after_key`."""

    total: int | None = None
    pages: list[list[dict]] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=list)
    afters: list[dict] = field(default_factory=list)

    def add(self, response: dict, buckets: list[dict], signature: bytes | None) -> None:
        if self.total is None:
            self.total = shape.total(response)
        self.pages.append(buckets)
        if signature is not None:
            self.digests.append(signature)


def read_page(text: bytes) -> tuple[dict, list[dict], dict | None]:
    """A composite page's answer: (the answer, its buckets, the next `after` key)."""
    response = orjson.loads(text)
    # No index yet (nothing ingested) means no aggregation in the answer at all.
    aggregation = response.get("aggregations", {}).get("groups", {})
    return response, shape.buckets_of(aggregation), aggregation.get("after_key")


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
            fingerprint = shape.fingerprint(dataset, params)  # of the query as asked: cursors stay valid
            params = self.planned(dataset, params, scope)
            if params.page_size and params.pageable_whole and not params.offset:
                return self.page_of_whole(dataset, params, scope, fingerprint, min_count)
            result = self.grouped(dataset, params, scope, fingerprint)
        elif scope.min_count and params.page_rows:  # the token's: its events are not for it
            raise ApiError(
                403,
                "forbidden",
                "Counts below a minimum are hidden for this token: use group_by or page_size=0.",
            )
        elif min_count and params.page_rows:  # the request's own: it asked for something else
            raise validation_error(
                "min_count hides small counts: it needs group_by or page_size=0, not a page of events.",
                {"fields": {"min_count": ["Only with group_by or page_size=0."]}},
            )
        else:
            result = self.plain(dataset, params, scope)
        if min_count:
            result = analytics.suppress_answer(result, min_count, params)
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
        result |= self.whole_analytics(dataset, params, response, scope)
        if params.page_rows:
            more = len(hits) == params.page_rows
            result["next_cursor"] = shape.encode_cursor(hits[-1]["sort"], fingerprint) if more else None
        return result

    def grouped(self, dataset: Dataset, params: QueryParams, scope: Scope, fingerprint: str) -> dict:
        """Every row, or (with an explicit page_size) one page of rows and a cursor to the next."""
        if params.offset:
            raise validation_error(
                "Grouped rows page with page_size and cursor, not offset.",
                {"fields": {"offset": ["Not with group_by."]}},
            )
        if params.page_size:
            return self.group_page(dataset, params, scope, fingerprint)
        if params.page_size == 0:
            total, _ = self.all_buckets(dataset, params, scope)
            return {"total_count": total, "events": [], "exact": True}
        total, rows = self.whole_rows(dataset, params, scope)
        return {"total_count": total, "events": rows, "exact": True}

    def whole_rows(self, dataset: Dataset, params: QueryParams, scope: Scope) -> tuple[int, list[dict]]:
        """(events matching, every row), with the compared period's counts when asked.

        Rows are a pure function of the query and of Elasticsearch's answer, so they are
        remembered (`rows_cache`) under the query and the digest of the answer's bytes, page by
        page: a repeat whose pages all come back byte for byte as before is answered without
        reading them. Reading and freeing a large answer cost a worker more than shaping its
        rows did once cached (docs/benchmarks.md: 40 % of a cached repeat's CPU).
        """
        previous = None
        if params.compare:
            previous = self.all_buckets(dataset, analytics.previous_params(dataset, params), scope)[1]
        key = (dataset.name, repr(params), digest(previous) if previous is not None else b"")
        fetched, known = self.remembered_pages(dataset, params, scope, key)
        if known is not None:
            return known.total, known.rows
        answer = self.read_pages(dataset, params, scope, fetched, sign=True)
        try:
            rows = SharedRows(shaped_rows(dataset, params, answer.pages, previous))
        except ParameterError as exc:
            raise refusal(exc) from exc
        remembered = Remembered(answer.total, answer.afters, answer.digests, rows)
        self.rows_cache.remember((*key, answer.digests[0]), remembered, len(rows))
        return answer.total, rows

    def remembered_pages(
        self, dataset: Dataset, params: QueryParams, scope: Scope, key: tuple
    ) -> tuple[list[tuple[bytes, bytes]], Remembered | None]:
        """Fetch the answer's pages, unread, while they match a remembered answer's: (the pages
        fetched with their digests, that answer when every page matched). The first page's
        digest finds it; each later page is asked from the `after_key` the same earlier page held."""
        fetched, after = [], None
        while True:
            text = self.page_bytes(dataset, params, scope, after)
            page, signature = len(fetched), digest_bytes(text)
            fetched.append((text, signature))
            if page == 0:
                known = self.rows_cache.remembered((*key, signature))
            if known is None or known.digests[page] != signature:
                return fetched, None
            if page + 1 == len(known.digests):
                return fetched, known
            after = known.afters[page]

    def page_bytes(self, dataset: Dataset, params: QueryParams, scope: Scope, after: dict | None) -> bytes:
        """One composite page of a grouped query from `after` on, unread."""
        body = group_body(dataset, params, scope.institutions, after, size=composite_size(params))
        return self.store.search_bytes(dataset, body, GROUP_FILTER_PATH)

    def read_pages(
        self, dataset: Dataset, params: QueryParams, scope: Scope, fetched: list | tuple = (), sign=False
    ) -> Pages:
        """Every page of the answer read: those `fetched` already (text, digest), then the rest,
        digested when `sign` (to remember the answer by)."""
        size, answer, after = composite_size(params), Pages(), None
        while True:
            page = len(answer.pages)
            if page < len(fetched):
                text, signature = fetched[page]
            else:
                text = self.page_bytes(dataset, params, scope, after)
                signature = digest_bytes(text) if sign else None
            response, buckets, after = read_page(text)
            answer.add(response, buckets, signature)
            if after is None or len(buckets) < size:
                return answer
            answer.afters.append(after)

    def group_page(self, dataset: Dataset, params: QueryParams, scope: Scope, fingerprint: str) -> dict:
        """One page of `page_size` rows from the cursor's composite `after` key on; a page whose
        buckets hold many sub-buckets (distinct values) takes several searches."""
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
        after = read_cursor(params, fingerprint)
        tally, total, wanted = shape.Tally(), None, params.page_size
        while True:
            chunk = min(wanted, composite_size(params))
            body = group_body(dataset, params, scope.institutions, after, size=chunk, count=total is None)
            response, buckets, after = self.composite_page(dataset, body)
            if total is None:
                total = shape.total(response)
            try:
                shape.add_buckets(params, buckets, tally)
            except ParameterError as exc:
                raise refusal(exc) from exc
            wanted -= len(buckets)
            after = after if len(buckets) == chunk else None
            if after is None or not wanted:
                break
        try:
            rows = shape.rows(params, tally)
        except ParameterError as exc:
            raise refusal(exc) from exc
        cursor = shape.encode_cursor(after, fingerprint) if after else None
        return {"total_count": total, "events": rows, "exact": True, "next_cursor": cursor}

    def all_buckets(self, dataset: Dataset, params: QueryParams, scope: Scope) -> tuple[int, list[list]]:
        """(events matching, every page of buckets): pages the composite aggregation to its end."""
        answer = self.read_pages(dataset, params, scope)
        return answer.total, answer.pages

    def composite_page(self, dataset: Dataset, body: dict) -> tuple[dict, list[dict], dict | None]:
        """One search of a grouped query: (the answer, its buckets, the next `after` key)."""
        return read_page(self.store.search_bytes(dataset, body, GROUP_FILTER_PATH))

    # -- analytics (engine/analytics.py): the searches its plans need -------------------------

    def planned(self, dataset: Dataset, params: QueryParams, scope: Scope) -> QueryParams:
        """`params` completed with what `top` and entry rates need to know first: the values of
        the ranked field (events per value) and of an entry's other key."""
        needed = analytics.lookups(dataset, params)
        if not needed:
            return params
        found = {}
        for name, group in needed.items():
            _, pages = self.all_buckets(dataset, analytics.lookup_params(params, group), scope)
            found[name] = analytics.value_counts(pages)
        return analytics.plan(dataset, params, found)

    def page_of_whole(
        self, dataset: Dataset, params: QueryParams, scope: Scope, fingerprint: str, min_count: int | None
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
            raise invalid_cursor("not this query's", exc) from exc
        total, rows = self.whole_rows(dataset, params, scope)
        whole = {"total_count": total, "events": rows, "exact": True}
        if min_count:
            whole = analytics.suppress_answer(whole, min_count, replace(params, page_size=None, cursor=None))
        try:
            page, last = analytics.page_of(params, whole["events"], last, params.page_size)
        except (TypeError, ValueError) as exc:
            raise invalid_cursor("not this query's", exc) from exc
        cursor = shape.encode_cursor({"row": json.dumps(last)}, fingerprint) if last is not None else None
        result = {"total_count": whole["total_count"], "events": page, "exact": True, "next_cursor": cursor}
        if min_count:
            hidden = sum(row.get("suppressed") is True for row in page)
            result["suppressed"] = suppression.summary_of(min_count, hidden)
            if params.cursor or cursor:
                result["total_count"] = None
        return result

    def whole_analytics(self, dataset: Dataset, params: QueryParams, response: dict, scope: Scope) -> dict:
        """Without `group_by`: rates, distinct counts and the compared period's count of the whole
        answer, beside `total_count`."""
        total = shape.total(response)
        found = analytics.whole_answer(params, response.get("aggregations", {}), total)
        if params.compare:
            before = analytics.previous_params(dataset, params)
            earlier = self.store.search(dataset, search_body(dataset, before, 0, scope.institutions, None))
            previous = shape.total(earlier)
            found |= {"previous": {"count": previous}, "change": analytics.change(total, previous)}
        return found

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


def shaped_rows(
    dataset: Dataset, params: QueryParams, pages: list[list[dict]], previous: list[list[dict]] | None = None
) -> list[dict]:
    tally = shape.Tally()
    for buckets in pages:
        shape.add_buckets(params, buckets, tally)
    if previous is not None:
        before, earlier = analytics.previous_params(dataset, params), shape.Tally()
        for buckets in previous:
            shape.add_buckets(before, buckets, earlier)
        tally = analytics.add_previous(tally, earlier)
    return shape.rows(params, tally, shape.date_bounds(dataset, params))


def read_cursor(params: QueryParams, fingerprint: str):
    if not params.cursor:
        return None
    try:
        return shape.decode_cursor(params.cursor, fingerprint)
    except ValueError as exc:
        raise invalid_cursor(str(exc), exc) from exc


def invalid_cursor(reason: str, exc: Exception) -> ApiError:
    """A 400 naming `cursor`: `reason` in the message, the decoder's own words in the details."""
    return validation_error(f"Invalid cursor: {reason}.", {"fields": {"cursor": [str(exc)]}})


def refusal(exc: ParameterError) -> ApiError:
    """Rows that cannot be made (too many to fill, dates beyond the calendar): a 400 naming why."""
    return validation_error(str(exc), {"fields": {exc.parameter: [str(exc)]}})
