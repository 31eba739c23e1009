"""The stack's floors: what the fixed stack costs before any of the service's own code runs.

The performance goals are the service's CPU per batch event and per single-event request.
Two floors, measured in the same run on the same machine, show how much of each goal the stack
itself already takes:

- **single POST**: `bench.floor_app` (Flask reading the JSON event and answering it, nothing
  else) served with the repo's `gunicorn.conf.py`, as the service is, from as many keep-alive
  clients as each single-POST phase; its workers' CPU per request;
- **batch event**: in-process, an NDJSON body of bench events split into lines, each read into
  Python objects (`orjson.loads`) and written back under its `create` action line, as a `_bulk`
  body needs: no validation, service fields, derived keys, HTTP or Elasticsearch. The least of
  a few repeats, with the garbage collector off: a lower bound.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import orjson

from . import load
from .data import Dataset
from .load import Request
from .phases import Meter
from .server import Service

#: Events far past any phase's, so the floors' events are never the phases' own.
FLOOR_OFFSET = 50_000_000
WARM_REQUESTS = 300
BATCH_EVENTS, BATCH_REPEATS = 5_000, 5


@dataclass(frozen=True)
class Floor:
    name: str
    #: µs of CPU per request or per event.
    cpu_us: float
    unit: str


def single_post(data: Dataset, clients: int, count: int, log_path: Path) -> float:
    """Worker CPU µs per request of `bench.floor_app` under `count` single POSTs."""
    service = Service(
        "", "", log_path, env={"ACCESS_LOG": ""}, ready_path="/health", app="bench.floor_app:app"
    )
    service.start()
    try:
        events = data.events(FLOOR_OFFSET, count + WARM_REQUESTS)
        headers = {"Content-Type": "application/json"}
        requests = [Request("POST", "/events", orjson.dumps(event), headers) for event in events]
        load.run(service.url, requests[:WARM_REQUESTS], clients)
        outcome, workers, _ = Meter(service.worker_pids, None).run(
            partial(load.run, service.url, requests[WARM_REQUESTS:], clients)
        )
        assert outcome.count(201) == count, f"floor app: {outcome.statuses}"
        return workers / count * 1e6
    finally:
        service.stop()


def bulk_lines(ndjson: bytes) -> bytes:
    """Each line read into Python objects and written back under its `create` action line."""
    lines = []
    for line in ndjson.splitlines():
        event = orjson.loads(line)
        action = b'{"create":{"_index":"floor","_id":' + orjson.dumps(event["uuid"]) + b"}}\n"
        lines.append(action + orjson.dumps(event) + b"\n")
    return b"".join(lines)


def batch_event(data: Dataset) -> float:
    """CPU µs per event of `bulk_lines` over a body of `BATCH_EVENTS` bench events (the least of
    `BATCH_REPEATS`)."""
    body = b"".join(orjson.dumps(event) + b"\n" for event in data.events(FLOOR_OFFSET, BATCH_EVENTS))
    times = []
    gc.disable()
    try:
        for _ in range(BATCH_REPEATS):
            began = time.process_time()
            bulk_lines(body)
            times.append(time.process_time() - began)
    finally:
        gc.enable()
    return min(times) / BATCH_EVENTS * 1e6


def measure(data: Dataset, clients: list[int], single_count: int, log_path: Path) -> list[Floor]:
    """The single-POST floor at each number of clients, then the batch-event floor."""
    floors = [
        Floor(
            f"single POST, {n} clients: Flask reading the event and answering it",
            single_post(data, n, single_count, log_path),
            "request",
        )
        for n in clients
    ]
    batch = "batch event: read into Python objects and written back as `_bulk` lines"
    return [*floors, Floor(batch, batch_event(data), "event")]
