"""The event store: the only code that talks to Elasticsearch about events, and only that.

`EventStore(es, prefix)` sends the bodies it is given (built by `engine.translate`, the
ingest pipeline or a command) and returns Elasticsearch's answers as they are; it plans,
validates and shapes nothing, so everything above it stays pure and testable without a node.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
import orjson
from elasticsearch import Elasticsearch

from .engine.fields import MAX_ID_BYTES
from .engine.registry import Dataset

#: All that the ingest outcomes read of a bulk answer: Elasticsearch writes (and we parse) a tenth of it.
BULK_FILTER_PATH = "items.*.status,items.*.error.type,items.*.error.reason"

#: Ids looked up per search: well within `index.max_result_window` (10,000).
IDS_PER_SEARCH = 5000

#: How long a point in time of an export lives between two of its pages.
PIT_KEEP_ALIVE = "2m"


#: Encodes `_bulk` lines. msgspec's encoder writes the same JSON values as orjson, at about a
#: third of `orjson.dumps`'s cost per document here (2.3 against 6.3 µs for the bench's
#: documents, most of orjson's being a fixed cost per call); it holds no state between calls.
_ENCODER = msgspec.json.Encoder()


def bulk_body(operations: list[tuple[str, object, dict | bytes]]) -> bytes:
    """The NDJSON of `_bulk` `create` actions for (index, id, document) triples; a document
    may come already encoded (JSON bytes on one line).

    `create` makes Elasticsearch refuse a repeated id, so a retry never duplicates. Encoded
    here: the client's own serializer would use the much slower standard library.
    """
    encode, encode_into = _ENCODER.encode, _ENCODER.encode_into
    body, heads = bytearray(), {}
    for index, doc_id, document in operations:
        head = heads.get(index)
        if head is None:  # the action line up to the id is the same for a whole index
            head = heads[index] = b'{"create":{"_index":' + encode(index) + b',"_id":'
        body += head
        encode_into(str(doc_id), body, -1)
        body += b"}}\n"
        if type(document) is bytes:
            body += document
        else:
            encode_into(document, body, -1)
        body += b"\n"
    return bytes(body)


class EventStore:
    """One cluster and index prefix: every dataset's monthly indices, and their uuid claims.

    `answers_as_bytes`, when given, is a client of the same cluster that leaves answers as the
    bytes Elasticsearch sent (`extensions.make_client(raw_answers=True)`), for `search_bytes`.
    """

    def __init__(self, es: Elasticsearch, prefix: str, answers_as_bytes: Elasticsearch | None = None):
        self.es, self.prefix, self.answers_as_bytes = es, prefix, answers_as_bytes

    # -- writes ---------------------------------------------------------------------------

    def bulk(self, operations: list[tuple[str, object, dict]], refresh=False) -> list[dict]:
        """`create` each (index, id, document) in one `_bulk`; the items of its answer, in order."""
        answer = self.es.bulk(operations=bulk_body(operations), refresh=refresh, filter_path=BULK_FILTER_PATH)
        return answer["items"]

    def delete_index(self, index: str) -> None:
        """Delete one index by its concrete name (clusters may refuse wildcard deletes)."""
        self.es.options(ignore_status=404).indices.delete(index=index)

    def refresh(self, dataset: Dataset) -> None:
        """Make everything written so far searchable (after a bulk import)."""
        self.es.indices.refresh(index=dataset.index_pattern(self.prefix))

    # -- reads ----------------------------------------------------------------------------

    def indices(self, dataset: Dataset) -> list[str]:
        """The dataset's concrete indices (its monthly ones, and any other its pattern matches)."""
        found = self.es.indices.resolve_index(name=dataset.index_pattern(self.prefix))
        return sorted(index["name"] for index in found["indices"])

    def existing_ids(self, dataset: Dataset, ids: list) -> set[str]:
        """Which of `ids` are stored in any of the dataset's indices (near real time: a document
        is seen here once refreshed, within `index.refresh_interval`)."""
        found = set()
        for start in range(0, len(ids), IDS_PER_SEARCH):
            chunk = [str(i) for i in ids[start : start + IDS_PER_SEARCH]]
            answer = self.es.search(
                index=dataset.index_pattern(self.prefix),
                query={"ids": {"values": chunk}},
                size=len(chunk),
                source=False,
            )
            found |= {hit["_id"] for hit in answer["hits"]["hits"]}
        return found

    def get_source(self, dataset: Dataset, event_id) -> dict | None:
        """One stored document by id (real time: no refresh needed), or None.

        An id that encodes its time names its monthly index; otherwise one `mget` asks every
        monthly index (gets are real time, searches are not).
        """
        if len(str(event_id).encode()) > MAX_ID_BYTES:  # Elasticsearch holds no such `_id`
            return None
        try:
            candidates = (
                [dataset.index_name(self.prefix, dataset.time_of_id(event_id))]
                if dataset.time_of_id
                else self.indices(dataset)
            )
        except ValueError:
            return None
        if not candidates:
            return None
        found = self.es.mget(docs=[{"_index": index, "_id": str(event_id)} for index in candidates])["docs"]
        return next((doc["_source"] for doc in found if doc.get("found")), None)

    def search(self, dataset: Dataset, body: dict, filter_path: str | None = None) -> dict:
        """Elasticsearch's answer to one search body over the dataset's indices."""
        return self.es.search(index=dataset.index_pattern(self.prefix), body=body, filter_path=filter_path)

    def search_bytes(self, dataset: Dataset, body: dict, filter_path: str | None = None) -> bytes:
        """`search`'s answer as JSON bytes, unread: a repeated grouped query is recognised by
        them without parsing (queries.py). Without a bytes client, the parsed answer encoded."""
        if self.answers_as_bytes is None:
            return orjson.dumps(self.search(dataset, body, filter_path))
        index = dataset.index_pattern(self.prefix)
        return self.answers_as_bytes.search(index=index, body=body, filter_path=filter_path).body

    # -- points in time (exports) ---------------------------------------------------------

    def open_point_in_time(self, dataset: Dataset) -> str:
        """A point in time over the dataset's indices: an export sees one consistent snapshot."""
        return self.es.open_point_in_time(
            index=dataset.index_pattern(self.prefix), keep_alive=PIT_KEEP_ALIVE
        )["id"]

    def search_point_in_time(self, pit: str, body: dict) -> dict:
        """One page of a point in time (`body` without the `pit`, which is added here)."""
        return self.es.search(body={**body, "pit": {"id": pit, "keep_alive": PIT_KEEP_ALIVE}})

    def close_point_in_time(self, pit: str) -> None:
        self.es.options(ignore_status=404).close_point_in_time(id=pit)

    # -- uuid claims (see ingest/pipeline.py) ---------------------------------------------

    def claims_index(self, dataset: Dataset) -> str:
        """Where the uuids of events without a time of their own claim their month; outside the
        dataset's pattern, so no query ever reads it."""
        return f"{self.prefix}claims-{dataset.name}"

    def claims(self, dataset: Dataset, ids: list[str]) -> list[dict]:
        """The claim documents of `ids` (real time), in order, as `mget` answers them."""
        return self.es.mget(index=self.claims_index(dataset), ids=ids)["docs"]

    def delete_claims(self, dataset: Dataset, since: datetime, until: datetime) -> int:
        """Delete the claims of receipts in [since, until) (those of one monthly index): a search
        and a `_bulk` of deletes per IDS_PER_SEARCH claims, as not every node has delete-by-query
        (the reindex module). Returns how many were deleted."""
        index, deleted = self.claims_index(dataset), 0
        query = {"range": {"received_at": {"gte": since.isoformat(), "lt": until.isoformat()}}}
        while True:
            found = self.es.options(ignore_status=404).search(
                index=index, query=query, size=IDS_PER_SEARCH, source=False
            )
            hits = found.get("hits", {}).get("hits", [])  # no hits at all: no claims index yet
            if not hits:
                return deleted
            actions = [orjson.dumps({"delete": {"_index": index, "_id": hit["_id"]}}) for hit in hits]
            # Refreshed, so the next search no longer sees them.
            answer = self.es.bulk(operations=b"\n".join([*actions, b""]), refresh=True, filter_path="errors")
            if answer.get("errors"):
                raise RuntimeError(f"could not delete the claims of {since:%Y-%m} in {index}")
            deleted += len(hits)
