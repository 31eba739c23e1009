"""Well-behaved clients that measure the service while something else hurts it: a fixed rate of
requests (health, a query, a one-event ingest), each with a client timeout, and the latency
percentiles and statuses they saw. Loopback only; bounded in time."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import orjson
import urllib3

from tests.load import NO_ANSWER, cdx_event

#: What a probe sends, in turn: (method, path, needs a body).
PROBES = (("GET", "/health", False), ("GET", "/events?page_size=0", False), ("POST", "/events", True))


@dataclass
class Probed:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int, seconds: float) -> None:
        with self.lock:
            self.statuses[status] += 1
            self.latencies.append(seconds)

    def summary(self) -> dict:
        ordered = sorted(self.latencies) or [0.0]
        total = sum(self.statuses.values())
        failed = sum(n for status, n in self.statuses.items() if status not in (200, 201))
        return {
            "requests": total,
            "failed": failed,
            "statuses": dict(sorted(self.statuses.items())),
            "p50_ms": round(1000 * ordered[len(ordered) // 2], 1),
            "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1),
            "max_ms": round(1000 * ordered[-1], 1),
        }


def probe(base_url: str, secret: str, seconds: float, rate: float = 20.0, timeout: float = 5.0) -> dict:
    """`rate` requests a second for `seconds`, from 4 client threads, each request on a connection
    of its own, as many separate clients would (a timed-out request counts as failed)."""
    result = Probed()
    until = time.monotonic() + seconds
    headers = {"Authorization": f"token {secret}", "Content-Type": "application/json", "Connection": "close"}
    clients = 4

    def run(offset: int) -> None:
        limits = urllib3.Timeout(connect=timeout, read=timeout)
        pool = urllib3.PoolManager(maxsize=1, retries=False, timeout=limits)
        turn, next_at = offset, time.monotonic() + offset / rate
        while next_at < until:
            time.sleep(max(0.0, next_at - time.monotonic()))
            if time.monotonic() >= until:
                break
            method, path, with_body = PROBES[turn % len(PROBES)]
            body = orjson.dumps(cdx_event()) if with_body else None
            begin = time.monotonic()
            try:
                response = pool.request(method, base_url + path, body=body, headers=headers)
                status = response.status
            except urllib3.exceptions.HTTPError:
                status = NO_ANSWER
            result.add(status, time.monotonic() - begin)
            turn += clients
            # A slot missed while waiting for an answer is dropped, not sent late in a burst.
            next_at = max(next_at + clients / rate, time.monotonic())

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 2 * timeout + 5)
    return result.summary()


def flood(base_url: str, seconds: float, connections: int = 8, path: str = "/events?page_size=0") -> dict:
    """`connections` clients sending requests back to back for `seconds`, each with a random
    token nobody issued (a flood of unknown tokens). Returns the statuses seen."""
    import secrets

    statuses: Counter = Counter()
    lock = threading.Lock()
    until = time.monotonic() + seconds

    def run() -> None:
        pool = urllib3.PoolManager(maxsize=1, retries=False, timeout=urllib3.Timeout(connect=5, read=5))
        while time.monotonic() < until:
            headers = {"Authorization": f"token {secrets.token_urlsafe(32)}"}
            try:
                status = pool.request("GET", base_url + path, headers=headers).status
            except urllib3.exceptions.HTTPError:
                status = NO_ANSWER
            with lock:
                statuses[status] += 1

    threads = [threading.Thread(target=run, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 15)
    return {"requests": sum(statuses.values()), "statuses": dict(statuses)}


if __name__ == "__main__":  # python -m tests.probes flood URL SECONDS CONNECTIONS
    import json
    import sys

    _, url, seconds, connections = sys.argv[1:5]
    print(json.dumps(flood(url, float(seconds), int(connections))), flush=True)
