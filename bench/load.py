"""A light load generator: a pool of threads, each with its own keep-alive connection.

`http.client` costs far less CPU per request than a full client library, so on a 2-core
machine the generator takes as little as possible from the server it measures. Every request
is prepared before the clock starts; loops are bounded by the list of requests given.
"""

from __future__ import annotations

import http.client
import queue
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes
    headers: dict


@dataclass
class Outcome:
    seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)

    def count(self, *codes: int) -> int:
        return sum(n for status, n in self.statuses.items() if status in codes)


class Connection:
    """One keep-alive connection that reconnects once if the server closed it."""

    def __init__(self, base_url: str, timeout: float = 60):
        parts = urlsplit(base_url)
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def send(self, request: Request) -> tuple[int, bytes]:
        for attempt in (1, 2):
            try:
                self.conn.request(request.method, request.path, body=request.body, headers=request.headers)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def run(base_url: str, requests: list[Request], clients: int, keep_latencies: bool = False) -> Outcome:
    """Send every request once from `clients` concurrent connections; the wall time and statuses."""
    work: queue.SimpleQueue = queue.SimpleQueue()
    for request in requests:
        work.put(request)
    outcome, lock = Outcome(), threading.Lock()
    connections = [Connection(base_url) for _ in range(clients)]
    start_line = threading.Barrier(clients + 1)

    def client(connection: Connection) -> None:
        statuses, latencies = {}, []
        start_line.wait()
        while True:
            try:
                request = work.get_nowait()
            except queue.Empty:
                break
            began = time.perf_counter()
            status, _ = connection.send(request)
            latencies.append(time.perf_counter() - began)
            statuses[status] = statuses.get(status, 0) + 1
        with lock:
            for status, n in statuses.items():
                outcome.statuses[status] = outcome.statuses.get(status, 0) + n
            if keep_latencies:
                outcome.latencies += latencies

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in connections]
    for thread in threads:
        thread.start()
    start_line.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    outcome.seconds = time.perf_counter() - began
    for connection in connections:
        connection.close()
    return outcome
