"""The only module that talks to Elasticsearch about events: bulk writes, gets and searches.

Everything above it is pure (translation, shaping); views call these functions with the
process-wide client from `current_app.extensions["es"]`.
"""

from __future__ import annotations

from datetime import datetime

import orjson
from elasticsearch import Elasticsearch

from .datasets.fields import MAX_ID_BYTES
from .datasets.registry import Dataset
from .engine import shape
from .engine.params import QueryParams
from .engine.translate import GROUP_FILTER_PATH, composite_size, group_body, search_body
from .group_commit import GroupCommitter
from .ingest import CREATED, DUPLICATE, Report, bulk_body, item_outcome

#: All `item_outcome` reads of a bulk answer: Elasticsearch writes (and we parse) a tenth of it.
BULK_FILTER_PATH = "items.*.status,items.*.error.type,items.*.error.reason"


def bulk_items(es: Elasticsearch, operations: list[tuple[str, object, dict]], refresh=False) -> list[dict]:
    """`create` each (index, id, document) in one `_bulk`; the items of its answer, in order."""
    response = es.bulk(operations=bulk_body(operations), refresh=refresh, filter_path=BULK_FILTER_PATH)
    return response["items"]


#: Ids looked up per search: well within `index.max_result_window` (10,000).
IDS_PER_SEARCH = 5000


def create_items(
    es: Elasticsearch, operations: list[tuple[str, object, dict]], refresh=False, committer=None
) -> list[dict]:
    """`create` (index, id, document) triples; the bulk items, in order.

    Small requests that need no refresh share a `_bulk` with the worker's concurrent ones
    (`committer`); the others send their own. Either way each outcome is Elasticsearch's own.
    """
    if committer is not None and not refresh and len(operations) <= committer.max_request_items:
        return committer.submit(operations)
    return bulk_items(es, operations, refresh)


def bulk_create(
    es: Elasticsearch,
    documents: dict[int, tuple[str, object, dict]],
    report: Report,
    refresh,
    committer: GroupCommitter | None = None,
) -> Report:
    """Create `documents` (position → (index, id, document)); record each outcome."""
    if not documents:
        return report
    positions = list(documents)
    items = create_items(es, list(documents.values()), refresh, committer)
    for position, item in zip(positions, items, strict=True):
        outcome, reason = item_outcome(item)
        report.ids[position] = documents[position][1]
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


def claims_index(dataset: Dataset, prefix: str) -> str:
    """Where the uuids of events without a time of their own claim their month (see
    `pipeline.claim_receipts`); outside the dataset's pattern, so no query ever reads it."""
    return f"{prefix}claims-{dataset.name}"


def claim(
    es: Elasticsearch, dataset: Dataset, prefix: str, receipts: dict[int, tuple[object, str]], committer=None
) -> tuple[dict[int, str], dict[int, tuple[str, str | None]]]:
    """`create` a claim `{_id: id, received_at: receipt}` for each (id, receipt) by position, and
    read (real time) the claims that already existed. Returns (position → the receipt its id
    holds, whoever claimed it first; position → (outcome, reason) where the claim failed)."""
    index = claims_index(dataset, prefix)
    held, failed, taken = {}, {}, []
    positions = list(receipts)
    for start in range(0, len(positions), IDS_PER_SEARCH):
        chunk = positions[start : start + IDS_PER_SEARCH]
        operations = [(index, receipts[p][0], {"received_at": receipts[p][1]}) for p in chunk]
        for position, item in zip(chunk, create_items(es, operations, committer=committer), strict=True):
            outcome, reason = item_outcome(item)
            if outcome == CREATED:
                held[position] = receipts[position][1]
            elif outcome == DUPLICATE:
                taken.append(position)
            else:
                failed[position] = (outcome, reason)
    for start in range(0, len(taken), IDS_PER_SEARCH):
        chunk = taken[start : start + IDS_PER_SEARCH]
        found = es.mget(index=index, ids=[str(receipts[p][0]) for p in chunk])["docs"]
        for position, doc in zip(chunk, found, strict=True):
            # Gone only if retention deleted it (with its month) meanwhile: then ours stands.
            held[position] = doc["_source"]["received_at"] if doc.get("found") else receipts[position][1]
    return held, failed


def delete_claims(es: Elasticsearch, dataset: Dataset, prefix: str, since: datetime, until: datetime) -> int:
    """Delete the claims of receipts in [since, until) (those of one monthly index): a search
    and a `_bulk` of deletes per IDS_PER_SEARCH claims, as not every node has delete-by-query
    (the reindex module). Returns how many were deleted."""
    index, deleted = claims_index(dataset, prefix), 0
    query = {"range": {"received_at": {"gte": since.isoformat(), "lt": until.isoformat()}}}
    while True:
        found = es.options(ignore_status=404).search(
            index=index, query=query, size=IDS_PER_SEARCH, source=False
        )
        hits = found.get("hits", {}).get("hits", [])  # no hits at all: no claims index yet
        if not hits:
            return deleted
        actions = [orjson.dumps({"delete": {"_index": index, "_id": hit["_id"]}}) for hit in hits]
        # Refreshed, so the next search no longer sees them.
        answer = es.bulk(operations=b"\n".join([*actions, b""]), refresh=True, filter_path="errors")
        if answer.get("errors"):
            raise RuntimeError(f"could not delete the claims of {since:%Y-%m} in {index}")
        deleted += len(hits)


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
    if len(str(event_id).encode()) > MAX_ID_BYTES:  # Elasticsearch holds no such `_id`
        return None
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


def _composite_page(es: Elasticsearch, dataset: Dataset, prefix: str, body: dict) -> tuple[dict, dict]:
    """One search of a grouped query: (the answer, its composite aggregation)."""
    response = es.search(index=dataset.index_pattern(prefix), body=body, filter_path=GROUP_FILTER_PATH)
    # No index yet (nothing ingested) means no aggregation in the answer at all.
    aggregation = response.get("aggregations", {}).get("groups", {})
    return response, {"buckets": shape.buckets_of(aggregation), "after_key": aggregation.get("after_key")}


def group_events(
    es: Elasticsearch, dataset: Dataset, prefix: str, params: QueryParams, institutions=()
) -> tuple[int, list[list[dict]]]:
    """(events matching, every page of buckets): pages through the composite aggregation to the end."""
    pages, after, total = [], None, None
    size = composite_size(params)
    while True:
        response, aggregation = _composite_page(
            es, dataset, prefix, group_body(dataset, params, institutions, after, size=size)
        )
        if total is None:
            total = shape.total(response)
        pages.append(aggregation["buckets"])
        after = aggregation["after_key"]
        if after is None or len(aggregation["buckets"]) < size:
            return total, pages


def group_page(
    es: Elasticsearch,
    dataset: Dataset,
    prefix: str,
    params: QueryParams,
    size: int,
    institutions=(),
    after=None,
) -> tuple[int, dict, dict | None]:
    """One page of `size` rows from `after` on: (events matching, rows folded, next after key).

    A page whose buckets hold many sub-buckets (distinct values) takes several searches."""
    acc, total, wanted = {}, None, size
    while True:
        chunk = min(wanted, composite_size(params))
        body = group_body(dataset, params, institutions, after, size=chunk, count=total is None)
        response, aggregation = _composite_page(es, dataset, prefix, body)
        if total is None:
            total = shape.total(response)
        shape.add_buckets(params, aggregation["buckets"], acc)
        wanted -= len(aggregation["buckets"])
        more = len(aggregation["buckets"]) == chunk and aggregation["after_key"] is not None
        after = aggregation["after_key"] if more else None
        if after is None or not wanted:
            return total, acc, after


#: Events fetched per search while exporting: large enough for few round trips, small enough
#: that a page never holds much memory.
EXPORT_PAGE = 2_000


def open_export(es: Elasticsearch, dataset: Dataset, prefix: str) -> str:
    """A point in time over the dataset's indices: an export sees one consistent snapshot."""
    return es.open_point_in_time(index=dataset.index_pattern(prefix), keep_alive="2m")["id"]


def export_pages(
    es: Elasticsearch, dataset: Dataset, pit: str, params: QueryParams, institutions=(), page_size=EXPORT_PAGE
):
    """Yield every matching event, a page at a time, through the point in time and
    search_after; closes the point in time at the end (or when the client goes away)."""
    after = None
    try:
        while True:
            body = search_body(dataset, params, page_size, institutions, after)
            body.update(track_total_hits=False, pit={"id": pit, "keep_alive": "2m"})
            response = es.search(body=body)
            hits = response["hits"]["hits"]
            if not hits:
                return
            pit = response.get("pit_id", pit)
            yield [dataset.to_event(hit["_source"]) for hit in hits]
            after = hits[-1]["sort"]
    finally:
        es.options(ignore_status=404).close_point_in_time(id=pit)


def delete_index(es: Elasticsearch, index: str) -> None:
    """Delete one index by its concrete name (clusters may refuse wildcard deletes)."""
    es.options(ignore_status=404).indices.delete(index=index)


def refresh(es: Elasticsearch, dataset: Dataset, prefix: str) -> None:
    """Make everything written so far searchable (after a bulk import)."""
    es.indices.refresh(index=dataset.index_pattern(prefix))
