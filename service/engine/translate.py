"""Pure translation: query parameters in, Elasticsearch request bodies out.

No I/O here, so every rule is unit tested in milliseconds (tests/unit/test_translate.py).
"""

from __future__ import annotations

from . import analytics
from .filters import any_of
from .params import QueryParams
from .registry import Dataset

#: Buckets fetched per composite page: large pages mean few round trips for big groupings.
COMPOSITE_PAGE = 5000
#: Buckets one search may make, all levels counted: under Elasticsearch's `search.max_buckets`
#: (65,536 by default), so sub-buckets (ranges, top values, rates, distinct values) shrink the
#: composite page instead of failing the search.
BUCKET_BUDGET = 60_000
#: What shaping reads of a grouped answer: Elasticsearch writes, and we parse, nothing else.
GROUP_FILTER_PATH = "hits.total,aggregations.groups"


def filter_query(dataset: Dataset, filters: dict, institutions=()) -> dict:
    """A bool query: every filter must hold; a token's institutions always apply."""
    clauses, nested = [], {}
    for name, value in filters.items():
        flt = dataset.filters[name]
        if flt.nested:
            nested.setdefault(flt.nested, []).append((flt, value))
        else:
            clauses.append(flt.clause(value))
    for path, items in nested.items():
        clauses.append(entry_query(path, items))
    if institutions:
        clauses.append({"terms": {dataset.institution_field: list(institutions)}})
    return {"bool": {"filter": clauses}} if clauses else {"match_all": {}}


def entry_query(path: str, items) -> dict:
    """Filters on the keys of one nested entry must all hold on the SAME entry.

    When every filter admits `null`, an event with no entry at all matches too.
    """
    inner = [flt.clause(value) for flt, value in items]
    query = {"nested": {"path": path, "query": {"bool": {"filter": inner}}}}
    if all(flt.matches_absent(value) for flt, value in items):
        no_entry = {"bool": {"must_not": [{"nested": {"path": path, "query": {"match_all": {}}}}]}}
        return any_of([query, no_entry])
    return query


def sort_clause(dataset: Dataset, order) -> list[dict]:
    order = order or tuple((name.lstrip("-"), name.startswith("-")) for name in dataset.default_order)
    clauses = []
    for name, descending in order:
        field = dataset.orderable[name]
        options = dataset.field_map[field].type.sort_options(descending)
        clauses.append({field: {"order": "desc" if descending else "asc", **options}})
    tiebreak = dataset.tiebreak_field or dataset.id_field
    if tiebreak not in {next(iter(clause)) for clause in clauses}:
        clauses.append({tiebreak: {"order": "asc"}})
    return clauses


PERCENTS = (25, 50, 75, 90, 95)


def stats_aggs(dataset: Dataset, fields) -> dict:
    """min/max/avg/sum/count (exact) and percentiles (TDigest estimates) of each field."""
    aggs = {}
    for name in fields:
        path = dataset.paths[name]
        aggs[f"stats:{name}"] = {"stats": {"field": path}}
        aggs[f"percentiles:{name}"] = {"percentiles": {"field": path, "percents": list(PERCENTS)}}
    return aggs


def row_aggs(dataset: Dataset, params: QueryParams) -> dict:
    """What each row (or, without group_by, the whole answer) computes besides its count."""
    return stats_aggs(dataset, params.stats) | analytics.row_aggregations(dataset, params)


def composite_size(params: QueryParams) -> int:
    """Composite buckets per search within `BUCKET_BUDGET`, given the buckets under each."""
    leaf = 1
    for rate in params.rates:
        leaf += 1 + (len(rate.partners or ()) + 1 if rate.partner_key else 0)
    leaf += len(params.distinct) * (analytics.DISTINCT_EXACT_LIMIT + 2)
    options = params.bucket_options
    per_bucket = 1
    for group in params.groups:
        nested = group.bucket_aggregation(options)
        if nested is not None:
            kind = next(iter(nested))
            per_bucket *= len(nested[kind]["ranges" if kind == "range" else "filters"]) + 1
    return max(1, min(COMPOSITE_PAGE, BUCKET_BUDGET // (per_bucket * leaf + 1)))


def search_body(
    dataset: Dataset, params: QueryParams, page_size: int, institutions=(), search_after=None
) -> dict:
    body = {"query": filter_query(dataset, params.filters, institutions), "track_total_hits": True}
    aggs = row_aggs(dataset, params)
    if aggs:
        body["aggs"] = aggs
    if page_size == 0:
        return {**body, "size": 0}
    body.update(size=page_size, sort=sort_clause(dataset, params.order))
    if search_after is not None:
        body["search_after"] = search_after
    elif params.offset:
        body["from"] = params.offset
    return body


def group_body(
    dataset: Dataset, params: QueryParams, institutions=(), after=None, size=COMPOSITE_PAGE, count=None
) -> dict:
    """One page of a composite aggregation over every requested group.

    Groups a composite source cannot express (age ranges) are aggregations nested under each
    composite bucket; with no composite source left, one `filter` bucket holds every event.
    The events are counted on the first page only, unless `count` says otherwise.
    """
    options = params.bucket_options
    inner = row_aggs(dataset, params)
    sources = []
    for i, group in reversed(list(enumerate(params.groups))):
        nested = group.bucket_aggregation(options)
        if nested is None:
            sources.insert(0, {f"g{i}": group.source(options)})
        else:
            inner = {f"g{i}": {**nested, "aggs": inner} if inner else nested}
    if sources:
        composite = {"size": size, "sources": sources}
        if after is not None:
            composite["after"] = after
        aggregation = {"composite": composite}
    else:
        aggregation = {"filter": {"match_all": {}}}
    if inner:
        aggregation["aggs"] = inner
    return {
        "query": filter_query(dataset, params.filters, institutions),
        "size": 0,
        "track_total_hits": after is None if count is None else count,
        "aggs": {"groups": aggregation},
    }
