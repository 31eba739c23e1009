"""The only module that talks to Elasticsearch about events: bulk writes, gets and searches.

Everything above it is pure (translation, shaping); views call these functions with the
process-wide client from `current_app.extensions["es"]`.
"""

from __future__ import annotations

from elasticsearch import Elasticsearch

from .datasets.registry import Dataset
from .engine import shape
from .engine.params import QueryParams
from .engine.translate import COMPOSITE_PAGE, GROUP_FILTER_PATH, group_body, search_body
from .group_commit import GroupCommitter
from .ingest import Report, bulk_body, item_outcome

#: All `item_outcome` reads of a bulk answer: Elasticsearch writes (and we parse) a tenth of it.
BULK_FILTER_PATH = "items.*.status,items.*.error.type,items.*.error.reason"


def bulk_items(es: Elasticsearch, operations: list[tuple[str, object, dict]], refresh=False) -> list[dict]:
    """`create` each (index, id, document) in one `_bulk`; the items of its answer, in order."""
    response = es.bulk(operations=bulk_body(operations), refresh=refresh, filter_path=BULK_FILTER_PATH)
    return response["items"]


def bulk_create(
    es: Elasticsearch,
    index: str,
    documents: dict[int, tuple[str, dict]],
    report: Report,
    refresh,
    committer: GroupCommitter | None = None,
) -> Report:
    """Create `documents` (position → (id, document)); record each outcome.

    Small requests that need no refresh share a `_bulk` with the worker's concurrent ones
    (`committer`); the others send their own. Either way each outcome is Elasticsearch's own.
    """
    if not documents:
        return report
    positions, pairs = list(documents), list(documents.values())
    if committer is not None and not refresh and len(pairs) <= committer.max_request_items:
        items = committer.submit(index, pairs)
    else:
        items = bulk_items(es, [(index, doc_id, document) for doc_id, document in pairs], refresh)
    for position, item in zip(positions, items, strict=True):
        outcome, reason = item_outcome(item)
        report.ids[position] = documents[position][0]
        report.outcomes[position] = outcome
        if reason:
            report.errors[position] = {"_elasticsearch": [reason]}
    return report


def get_event(es: Elasticsearch, dataset: Dataset, prefix: str, event_id, institutions=()) -> dict | None:
    """One event by id (real time: no refresh needed), or None, also when a token restricted
    to institutions may not see it."""
    found = es.options(ignore_status=404).get(index=dataset.index_name(prefix), id=str(event_id))
    if not found.get("found"):
        return None
    source = found["_source"]
    if institutions and source.get(dataset.institution_field) not in institutions:
        return None
    return dataset.to_event(source)


def search_events(
    es: Elasticsearch,
    dataset: Dataset,
    prefix: str,
    params: QueryParams,
    page_size: int,
    institutions=(),
    search_after=None,
) -> dict:
    body = search_body(dataset, params, page_size, institutions, search_after)
    return es.search(index=dataset.index_pattern(prefix), body=body)


def group_events(
    es: Elasticsearch, dataset: Dataset, prefix: str, params: QueryParams, institutions=()
) -> tuple[int, list[dict]]:
    """(events matching, every row): pages through the composite aggregation to the end."""
    counts, after, total = {}, None, None
    while True:
        body = group_body(dataset, params, institutions, after)
        response = es.search(index=dataset.index_pattern(prefix), body=body, filter_path=GROUP_FILTER_PATH)
        if total is None:
            total = shape.total(response)
        # filter_path leaves out what is empty: no buckets at all means no `groups` either.
        aggregation = response.get("aggregations", {}).get("groups", {})
        buckets = aggregation.get("buckets", [])
        shape.add_buckets(params, buckets, counts)
        after = aggregation.get("after_key")
        if after is None or len(buckets) < COMPOSITE_PAGE:
            return total, shape.rows(params, counts)
