"""The measured phases. Each alternates service and direct rounds on identical input.

Both sides get the same events (the service stores them in `<prefix>cdx`, the direct side in
an index of the same template), the same concurrency and the same load generator; only the
path to Elasticsearch differs.
"""

from __future__ import annotations

import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import partial

import orjson
from elasticsearch import Elasticsearch

from service.datasets.cdx import CDX
from service.engine import translate
from service.engine.params import QueryParams, query_schema

from . import load
from .data import Dataset, batch_sizes, document
from .load import Request


@dataclass(frozen=True)
class Setup:
    """What the ingest phases talk to: the service and its token, the node, the direct index."""

    service_url: str
    token: str
    es: Elasticsearch
    es_url: str
    #: Index prefix of the direct side: its events go to the same monthly layout as the service's.
    direct_prefix: str
    data: Dataset


@dataclass
class Sides:
    """Events/s or latencies of the service and of Elasticsearch straight."""

    service: list[float] = field(default_factory=list)
    direct: list[float] = field(default_factory=list)


def ndjson(lines) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


def monthly_index(prefix: str, event: dict) -> str:
    """The index the service itself would choose for `event` (its month), under `prefix`."""
    return CDX.index_for(prefix, event)


def bulk_body(prefix: str, events: list[dict]) -> bytes:
    return ndjson(
        item
        for event in events
        for item in (
            {"create": {"_index": monthly_index(prefix, event), "_id": event["uuid"]}},
            document(event),
        )
    )


def fill(es: Elasticsearch, prefixes: list[str], data: Dataset, start: int, count: int) -> None:
    """Unmeasured: the same documents straight into both sides, to reach the next step's size."""

    def one(offset: int) -> None:
        events = data.events(offset, min(5_000, start + count - offset))
        for prefix in prefixes:
            response = es.bulk(operations=bulk_body(prefix, events), request_timeout=300)
            assert not response["errors"], "fill: some items failed"

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, range(start, start + count, 5_000)))


def batch_ingest(setup: Setup, start: int, count: int, rounds: int, concurrency: int) -> tuple[float, float]:
    """(service events/s, direct events/s) over `rounds` alternating rounds of NDJSON batches."""
    data = setup.data
    rng = random.Random(f"{data.seed}:batches:{start}")
    seconds = {"service": 0.0, "direct": 0.0}
    per_round = -(-count // rounds)
    headers = {"Authorization": f"token {setup.token}", "Content-Type": "application/x-ndjson"}
    for number, offset in enumerate(range(start, start + count, per_round)):
        events = data.events(offset, min(per_round, start + count - offset))
        batches, at = [], 0
        for size in batch_sizes(rng, len(events)):
            batches.append(events[at : at + size])
            at += size
        service_requests = [Request("POST", "/events", ndjson(batch), headers) for batch in batches]
        direct_bodies = [bulk_body(setup.direct_prefix, batch) for batch in batches]
        runs = {
            "service": partial(_service_batches, setup.service_url, service_requests, concurrency),
            "direct": partial(_direct_batches, setup.es, direct_bodies, concurrency),
        }
        for side in _order(number):
            seconds[side] += runs[side]()
    return count / seconds["service"], count / seconds["direct"]


def _service_batches(url: str, requests: list[Request], concurrency: int) -> float:
    outcome = load.run(url, requests, concurrency)
    assert outcome.count(201) == len(requests), f"service batches: {outcome.statuses}"
    return outcome.seconds


def _direct_batches(es: Elasticsearch, bodies: list[bytes], concurrency: int) -> float:
    def send(body: bytes) -> bool:
        return es.bulk(operations=body, request_timeout=300)["errors"]

    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        errors = list(pool.map(send, bodies))
    elapsed = time.perf_counter() - began
    assert not any(errors), "direct bulk: some items failed"
    return elapsed


def single_ingest(setup: Setup, start: int, count: int, rounds: int, clients: int) -> tuple[float, float]:
    """(service events/s, direct events/s): one event per request from `clients` connections."""
    data = setup.data
    seconds = {"service": 0.0, "direct": 0.0}
    per_round = -(-count // rounds)
    headers = {"Authorization": f"token {setup.token}", "Content-Type": "application/json"}
    for number, offset in enumerate(range(start, start + count, per_round)):
        events = data.events(offset, min(per_round, start + count - offset))
        service_requests = [Request("POST", "/events", orjson.dumps(e), headers) for e in events]
        direct_requests = [
            Request(
                "PUT",
                f"/{monthly_index(setup.direct_prefix, e)}/_create/{e['uuid']}",
                orjson.dumps(document(e)),
                {"Content-Type": "application/json"},
            )
            for e in events
        ]
        runs = {
            "service": partial(load.run, setup.service_url, service_requests, clients),
            "direct": partial(load.run, setup.es_url, direct_requests, clients),
        }
        for side in _order(number):
            outcome = runs[side]()
            assert outcome.count(201) == len(events), f"{side} single events: {outcome.statuses}"
            seconds[side] += outcome.seconds
    return count / seconds["service"], count / seconds["direct"]


def _order(number: int) -> tuple[str, str]:
    """Alternate which side goes first, so neither always meets a node still busy merging."""
    return ("service", "direct") if number % 2 == 0 else ("direct", "service")


# -- queries ---------------------------------------------------------------------------------

AGE_RANGES = [[0, 5], [5, 15], [15, 25], [25, 45], [45, 65], [65, None]]
QUERIES = {
    "count-only": {
        "page_size": 0,
        "since": "2024-07-01",
        "until": "2025-06-30",
        "gender": ["female", "male"],
    },
    "plain page": {"page_size": 50, "since": "2025-01-01", "test_type": "specimen", "condition": "mtb"},
    "grouped": {
        "since": "2025-01-01",
        "condition": "mtb",
        "group_by": ["gender", "result", "week(start_time)", {"age": AGE_RANGES}],
    },
}
GROUPED_SINCE = date(2025, 1, 1)


def new_grouped(number: int) -> dict:
    """The grouped query, made new for each run (its lower bound moves a day per run), so
    neither Elasticsearch's request cache nor the service's cache of shaped rows can answer it."""
    since = GROUPED_SINCE + timedelta(days=number)
    return {**QUERIES["grouped"], "since": since.isoformat()}


#: Queries compared side by side: a fixed body, or one made for each run.
COMPARED = {**QUERIES, "grouped, new each run": new_grouped}
CdxQuery = query_schema(CDX)


def direct_body(params: QueryParams, after_keys=None) -> dict:
    """The service's own translation: the body (or composite page) it sends for `params`."""
    if params.grouped:
        return translate.group_body(CDX, params, (), after_keys)
    page_size = 50 if params.page_size is None else params.page_size
    return translate.search_body(CDX, params, page_size)


class QueryRunner:
    def __init__(self, service_url: str, token: str, es_url: str, index_pattern: str):
        self.service = load.Connection(service_url)
        self.direct = load.Connection(es_url)
        self.token, self.pattern = token, index_pattern

    def service_once(self, spec: dict) -> int:
        headers = {"Authorization": f"token {self.token}", "Content-Type": "application/json"}
        status, body = self.service.send(Request("POST", "/events/query", orjson.dumps(spec), headers))
        assert status == 200, body[:300]
        return orjson.loads(body)["total_count"]

    def direct_once(self, params: QueryParams) -> int:
        """Like the service: one search, or every composite page of a grouped query."""
        after, total = None, None
        while True:
            body = direct_body(params, after)
            # The service's own request: the same body, and for groups the same filter_path.
            path = f"/{self.pattern}/_search"
            if params.grouped:
                path += f"?filter_path={translate.GROUP_FILTER_PATH}"
            request = Request("POST", path, orjson.dumps(body), {"Content-Type": "application/json"})
            status, raw = self.direct.send(request)
            assert status == 200, raw[:300]
            response = orjson.loads(raw)
            total = response["hits"]["total"]["value"] if total is None else total
            if not params.grouped:
                return total
            groups = response.get("aggregations", {}).get("groups", {})
            after = groups.get("after_key")
            if after is None or len(groups.get("buckets", [])) < translate.COMPOSITE_PAGE:
                return total

    def compare(self, spec, runs: int, warmup: int = 3) -> tuple[list[float], list[float]]:
        """Latencies in ms of `runs` alternating pairs; both sides must count the same events.

        `spec` is a query, or a function of the run's number giving each run its own query.
        """
        specs = [spec(number) if callable(spec) else spec for number in range(warmup + runs)]
        # Parsed outside the clock: a client talking to Elasticsearch has its body ready.
        schema = CdxQuery()
        pairs = [(partial(self.service_once, s), partial(self.direct_once, schema.load(s))) for s in specs]
        for service, direct in pairs[:warmup]:
            assert service() == direct()
        sides = Sides()
        for number, (service, direct) in enumerate(pairs[warmup:]):
            calls = {"service": service, "direct": direct}
            for side in _order(number):
                began = time.perf_counter()
                calls[side]()
                getattr(sides, side).append((time.perf_counter() - began) * 1000)
        return sides.service, sides.direct


def set_request_cache(es: Elasticsearch, index: str, enabled: bool) -> None:
    es.indices.put_settings(index=index, settings={"index.requests.cache.enable": enabled})
    es.indices.clear_cache(index=index, request=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
