"""The measured phases. Each alternates service and direct rounds on identical input.

Both sides get the same events (the service stores them in `<prefix>cdx`, the direct side in
an index of the same template), the same concurrency and the same load generator; only the
path to Elasticsearch differs.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import partial
from pathlib import Path

import orjson
from elasticsearch import Elasticsearch

from service.datasets.cdx import CDX
from service.engine import analytics, shape, translate
from service.engine.params import QueryParams, query_schema

from . import load
from .data import Dataset, batch_sizes, document
from .load import Request

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process (all its threads) used so far; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime: fields 14 and 15


class Meter:
    """CPU seconds the service's workers and the node spend while something runs.

    CPU time per event hardly depends on how busy a shared machine is, where throughput
    does: it is the figure the goals are set in (µs of service CPU per event or request).
    """

    def __init__(self, worker_pids: Callable[[], list[int]], node_pid: int | None):
        self.worker_pids, self.node_pid = worker_pids, node_pid

    def _now(self) -> tuple[dict[int, float], float]:
        workers = {pid: cpu_seconds(pid) for pid in self.worker_pids()}
        return workers, cpu_seconds(self.node_pid) if self.node_pid else 0.0

    def run(self, call) -> tuple[object, float, float]:
        """(call's result, workers' CPU seconds, node's CPU seconds) over the call."""
        workers, node = self._now()
        result = call()
        after, node_after = self._now()
        # A worker recycled meanwhile (max_requests) takes its CPU time with it: not counted.
        used = sum(seconds - workers.get(pid, 0.0) for pid, seconds in after.items() if pid in workers)
        return result, used, node_after - node


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
    meter: Meter


@dataclass
class Ingest:
    """One ingest phase, both sides: wall seconds and CPU seconds, by side."""

    events: int
    requests: int = 0
    seconds: dict = field(default_factory=lambda: {"service": 0.0, "direct": 0.0})
    #: CPU of the service's workers (the direct side has none).
    worker_cpu: float = 0.0
    node_cpu: dict = field(default_factory=lambda: {"service": 0.0, "direct": 0.0})

    def rate(self, side: str) -> float:
        return self.events / self.seconds[side]

    def add(self, side: str, meter: Meter, call):
        """Run one round of `side`, adding its wall and CPU times; the call's result."""
        began = time.perf_counter()
        result, workers, node = meter.run(call)
        self.seconds[side] += time.perf_counter() - began
        self.node_cpu[side] += node
        if side == "service":
            self.worker_cpu += workers
        return result


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


def bulk_body(prefix: str, events: list[dict], index: str | None = None) -> bytes:
    """`create` actions for the events: into their monthly indices, or all into `index`."""
    return ndjson(
        item
        for event in events
        for item in (
            {"create": {"_index": index or monthly_index(prefix, event), "_id": event["uuid"]}},
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


def batch_ingest(
    setup: Setup,
    start: int,
    count: int,
    rounds: int,
    concurrency: int,
    one_month: bool = False,
    plain_index: str | None = None,
) -> Ingest:
    """Both sides over `rounds` alternating rounds of NDJSON batches of 500-5,000 events.

    The events' times spread over two years (a backlog: each batch touches some 24 monthly
    indices) unless `one_month` moves them all into June 2025 (a day's uploads). With
    `plain_index` the direct side writes every event into that one index instead of the
    monthly ones: what Elasticsearch costs without the service's layout.
    """
    data = setup.data
    rng = random.Random(f"{data.seed}:batches:{start}")
    figures = Ingest(count)
    per_round = -(-count // rounds)
    headers = {"Authorization": f"token {setup.token}", "Content-Type": "application/x-ndjson"}
    for number, offset in enumerate(range(start, start + count, per_round)):
        events = data.events(offset, min(per_round, start + count - offset))
        if one_month:
            events = [in_one_month(event) for event in events]
        batches, at = [], 0
        for size in batch_sizes(rng, len(events)):
            batches.append(events[at : at + size])
            at += size
        figures.requests += len(batches)
        service_requests = [Request("POST", "/events", ndjson(batch), headers) for batch in batches]
        direct_bodies = [bulk_body(setup.direct_prefix, batch, plain_index) for batch in batches]
        runs = {
            "service": partial(_service_batches, setup.service_url, service_requests, concurrency),
            "direct": partial(_direct_batches, setup.es, direct_bodies, concurrency),
        }
        for side in _order(number):
            figures.add(side, setup.meter, runs[side])
    return figures


def in_one_month(event: dict) -> dict:
    """The event moved into June 2025 (same day of month up to the 28th, same time of day)."""
    moved = dict(event)
    for name in ("start_time", "created_at"):
        text = event[name]
        moved[name] = f"2025-06-{min(int(text[8:10]), 28):02d}{text[10:]}"
    return moved


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


def single_ingest(setup: Setup, start: int, count: int, rounds: int, clients: int) -> Ingest:
    """Both sides: one event per request from `clients` keep-alive connections."""
    data = setup.data
    figures = Ingest(count, requests=count)
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
            outcome = figures.add(side, setup.meter, runs[side])
            assert outcome.count(201) == len(events), f"{side} single events: {outcome.statuses}"
    return figures


def _order(number: int) -> tuple[str, str]:
    """Alternate which side goes first, so neither always meets a node still busy merging."""
    return ("service", "direct") if number % 2 == 0 else ("direct", "service")


# -- queries ---------------------------------------------------------------------------------

ANALYTICS = "grouped, rate + distinct + top"
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
    # docs/api.md §6.8-6.10: a lookup search ranks the laboratories, then composite pages made
    # small by the distinct-device sub-aggregations (a `terms` of 1,001 under each bucket).
    ANALYTICS: {
        "since": "2025-01-01",
        "condition": "mtb",
        "group_by": ["laboratory", "week(start_time)"],
        "rate": ["result:positive"],
        "distinct": ["device"],
        "top": "laboratory:10",
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


def direct_body(params: QueryParams, after_keys=None, size: int = translate.COMPOSITE_PAGE) -> dict:
    """The service's own translation: the body (or composite page) it sends for `params`."""
    if params.grouped:
        return translate.group_body(CDX, params, (), after_keys, size=size)
    page_size = 50 if params.page_size is None else params.page_size
    return translate.search_body(CDX, params, page_size)


@dataclass(frozen=True)
class QueryFigures:
    """One query's pairs: each side's latencies in ms, and the CPU seconds the service's workers
    spent over the timed pairs (the direct side leaves them idle; None: not measured)."""

    service: list[float]
    direct: list[float]
    worker_cpu: float | None

    def cpu_ms_per_query(self) -> float | None:
        return None if self.worker_cpu is None else self.worker_cpu / len(self.service) * 1000


class QueryRunner:
    def __init__(
        self, service_url: str, token: str, es_url: str, index_pattern: str, meter: Meter | None = None
    ):
        self.service = load.Connection(service_url)
        self.direct = load.Connection(es_url)
        self.token, self.pattern = token, index_pattern
        self.meter = meter
        #: Runs numbered so far: a query made for each run is never one this runner asked
        #: before, also in a later pass (the request cache on), whose answers the workers'
        #: cache of shaped rows could otherwise still hold.
        self.numbered = 0

    def service_once(self, spec: dict) -> int:
        headers = {"Authorization": f"token {self.token}", "Content-Type": "application/json"}
        status, body = self.service.send(Request("POST", "/events/query", orjson.dumps(spec), headers))
        assert status == 200, body[:300]
        return orjson.loads(body)["total_count"]

    def direct_once(self, params: QueryParams) -> int:
        """Like the service (service/queries.py): one search, or for a grouped query the lookup
        searches its plan needs (`top`'s ranking) and then every composite page."""
        if not params.grouped:
            return self.direct_search(direct_body(params), grouped=False)["hits"]["total"]["value"]
        needed = analytics.lookups(CDX, params)
        if needed:
            found = {
                name: analytics.value_counts(self.direct_pages(analytics.lookup_params(params, group))[1])
                for name, group in needed.items()
            }
            params = analytics.plan(CDX, params, found)
        return self.direct_pages(params)[0]

    def direct_pages(self, params: QueryParams) -> tuple[int, list[list[dict]]]:
        """(events matching, every page of buckets), paged as `QueryService.all_buckets` does."""
        pages, after, total = [], None, None
        size = translate.composite_size(params)
        while True:
            response = self.direct_search(direct_body(params, after, size), grouped=True)
            total = response["hits"]["total"]["value"] if total is None else total
            groups = response.get("aggregations", {}).get("groups", {})
            buckets = shape.buckets_of(groups)
            pages.append(buckets)
            after = groups.get("after_key")
            if after is None or len(buckets) < size:
                return total, pages

    def direct_search(self, body: dict, grouped: bool) -> dict:
        """The service's own request: the same body, and for groups the same filter_path."""
        path = f"/{self.pattern}/_search"
        if grouped:
            path += f"?filter_path={translate.GROUP_FILTER_PATH}"
        request = Request("POST", path, orjson.dumps(body), {"Content-Type": "application/json"})
        status, raw = self.direct.send(request)
        assert status == 200, raw[:300]
        return orjson.loads(raw)

    def compare(self, spec, runs: int, warmup: int = 3) -> QueryFigures:
        """Latencies in ms of `runs` alternating pairs (both sides must count the same events),
        and the workers' CPU over them when the runner has a meter.

        `spec` is a query, or a function of the run's number giving each run its own query.
        """
        if callable(spec):
            numbers = range(self.numbered, self.numbered + warmup + runs)
            self.numbered += warmup + runs
            specs = [spec(number) for number in numbers]
        else:
            specs = [spec] * (warmup + runs)
        # Parsed outside the clock: a client talking to Elasticsearch has its body ready.
        schema = CdxQuery()
        pairs = [(partial(self.service_once, s), partial(self.direct_once, schema.load(s))) for s in specs]
        for service, direct in pairs[:warmup]:
            assert service() == direct()
        sides = Sides()

        def timed_pairs() -> None:
            for number, (service, direct) in enumerate(pairs[warmup:]):
                calls = {"service": service, "direct": direct}
                for side in _order(number):
                    began = time.perf_counter()
                    calls[side]()
                    getattr(sides, side).append((time.perf_counter() - began) * 1000)

        if self.meter is None:
            timed_pairs()
            return QueryFigures(sides.service, sides.direct, None)
        _, workers, _ = self.meter.run(timed_pairs)
        return QueryFigures(sides.service, sides.direct, workers)


def set_request_cache(es: Elasticsearch, index: str, enabled: bool) -> None:
    es.indices.put_settings(index=index, settings={"index.requests.cache.enable": enabled})
    es.indices.clear_cache(index=index, request=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
