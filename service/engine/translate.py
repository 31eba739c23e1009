"""Pure translation: query parameters in, Elasticsearch request bodies out.

No I/O here, so every rule is unit tested in milliseconds (tests/unit/test_translate.py).
"""

from __future__ import annotations

from .filters import any_of
from .params import QueryParams
from .registry import Dataset

#: Buckets fetched per composite page: large pages mean few round trips for big groupings.
COMPOSITE_PAGE = 5000
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
    clauses = [
        {dataset.orderable[name]: {"order": "desc" if descending else "asc", "missing": "_last"}}
        for name, descending in order
    ]
    tiebreak = dataset.tiebreak_field or dataset.id_field
    if tiebreak not in {next(iter(clause)) for clause in clauses}:
        clauses.append({tiebreak: {"order": "asc"}})
    return clauses


PERCENTS = (25, 50, 75, 90, 95)


def stats_aggs(fields) -> dict:
    """min/max/avg/sum/count (exact) and percentiles (TDigest estimates) of each field."""
    aggs = {}
    for name in fields:
        aggs[f"stats:{name}"] = {"stats": {"field": name}}
        aggs[f"percentiles:{name}"] = {"percentiles": {"field": name, "percents": list(PERCENTS)}}
    return aggs


def search_body(
    dataset: Dataset, params: QueryParams, page_size: int, institutions=(), search_after=None
) -> dict:
    body = {"query": filter_query(dataset, params.filters, institutions), "track_total_hits": True}
    if params.stats:
        body["aggs"] = stats_aggs(params.stats)
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
    inner = stats_aggs(params.stats) if params.stats else {}
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
