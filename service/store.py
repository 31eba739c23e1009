"""The only module that talks to Elasticsearch about events: bulk writes, gets and searches.

Everything above it is pure (translation, shaping); views call these functions with the
process-wide client from `current_app.extensions["es"]`.
"""

from __future__ import annotations

from elasticsearch import Elasticsearch

from .datasets.registry import Dataset
from .engine import shape
from .engine.params import QueryParams
from .engine.translate import COMPOSITE_PAGE, group_body, search_body
from .ingest import Report, bulk_operations, item_outcome

#: Ids looked up per search: well within `index.max_result_window` (10,000).
IDS_PER_SEARCH = 5000


def bulk_create(
    es: Elasticsearch,
    dataset: Dataset,
    prefix: str,
    documents: dict[int, tuple[str, dict]],
    report: Report,
    refresh,
) -> Report:
    """Create `documents` (position → (id, document)) in one `_bulk`; record each outcome."""
    if not documents:
        return report
    positions = list(documents)
    operations = bulk_operations(dataset, prefix, list(documents.values()))
    response = es.bulk(operations=operations, refresh=refresh)
    for position, item in zip(positions, response["items"], strict=True):
        outcome, reason = item_outcome(item)
        report.ids[position] = documents[position][0]
        report.outcomes[position] = outcome
        if reason:
            report.errors[position] = {"_elasticsearch": [reason]}
    return report


def existing_ids(es: Elasticsearch, dataset: Dataset, prefix: str, ids: list) -> set[str]:
    """Which of `ids` are stored in any of the dataset's indices (near real time: a document
    is seen here once refreshed, within `index.refresh_interval`)."""
    found = set()
    for start in range(0, len(ids), IDS_PER_SEARCH):
        chunk = [str(i) for i in ids[start : start + IDS_PER_SEARCH]]
        response = es.search(
            index=dataset.index_pattern(prefix),
            query={"ids": {"values": chunk}},
            size=len(chunk),
            source=False,
        )
        found |= {hit["_id"] for hit in response["hits"]["hits"]}
    return found


def indices(es: Elasticsearch, dataset: Dataset, prefix: str) -> list[str]:
    """The dataset's concrete indices (its monthly ones, and any other its pattern matches)."""
    found = es.indices.resolve_index(name=dataset.index_pattern(prefix))
    return sorted(index["name"] for index in found["indices"])


def get_event(es: Elasticsearch, dataset: Dataset, prefix: str, event_id, institutions=()) -> dict | None:
    """One event by id (real time: no refresh needed), or None, also when a token restricted
    to institutions may not see it.

    An id that encodes its time names its monthly index; otherwise one `mget` asks every
    monthly index (gets are real time, searches are not).
    """
    try:
        candidates = (
            [dataset.index_name(prefix, dataset.time_of_id(event_id))]
            if dataset.time_of_id
            else indices(es, dataset, prefix)
        )
    except ValueError:
        return None
    if not candidates:
        return None
    docs = [{"_index": index, "_id": str(event_id)} for index in candidates]
    found = es.mget(docs=docs)["docs"]
    source = next((doc["_source"] for doc in found if doc.get("found")), None)
    if source is None:
        return None
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
        response = es.search(index=dataset.index_pattern(prefix), body=body)
        if total is None:
            total = shape.total(response)
        # No index yet (nothing ingested) means no aggregation in the answer at all.
        aggregation = response.get("aggregations", {}).get("groups", {"buckets": []})
        shape.add_buckets(params, aggregation["buckets"], counts)
        after = aggregation.get("after_key")
        if after is None or len(aggregation["buckets"]) < COMPOSITE_PAGE:
            return total, shape.rows(params, counts)


def scan_events(es: Elasticsearch, dataset: Dataset, prefix: str, params: QueryParams, page_size: int = 1000):
    """Every event matching `params`, in its order, a page at a time with search_after on the
    sort (which ends on the unique tiebreak field), so memory stays constant at any size."""
    after = None
    while True:
        response = search_events(es, dataset, prefix, params, page_size, search_after=after)
        hits = response["hits"]["hits"]
        yield from shape.events(dataset, response)
        if len(hits) < page_size:
            return
        after = hits[-1]["sort"]


def delete_index(es: Elasticsearch, index: str) -> None:
    """Delete one index by its concrete name (clusters may refuse wildcard deletes)."""
    es.options(ignore_status=404).indices.delete(index=index)


def refresh(es: Elasticsearch, dataset: Dataset, prefix: str) -> None:
    """Make everything written so far searchable (after a bulk import)."""
    es.indices.refresh(index=dataset.index_pattern(prefix))
