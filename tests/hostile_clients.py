"""Slow and idle HTTP clients, all driven from one process and one thread (as one laptop would):
the attack of the slow-client scenario (tests/integration/test_slow_clients.py).

Each connection is a plain non-blocking socket on loopback; one selector loop sends every
connection its next piece when due and notices when the server closes it. Kinds:

- `headers`: a request line, then one header line every `interval` seconds, never ending;
- `bytes`: the request headers one byte every `interval` seconds;
- `body`: full headers announcing a 100 kB body (with the token of $HOSTILE_TOKEN), then the body
  one byte every `interval` seconds;
- `idle`: one complete `GET /health` (kept alive), then nothing.

Run as `python -m tests.hostile_clients URL KIND COUNT SECONDS [INTERVAL]`: it attacks for SECONDS
(bounded), then prints a JSON report: connections opened, how many the server cut, and after how
long (the slow ones must be cut after the documented timeout). A connection the server cut is
opened again, so the pressure stays at COUNT connections for the whole run.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import selectors
import socket
import statistics
import sys
import time
from urllib.parse import urlsplit

KINDS = ("headers", "bytes", "body", "idle")
BODY_BYTES = 100_000
RAMP_SECONDS = 2.0
TOKEN = os.environ.get("HOSTILE_TOKEN", "unknown")


def request_bytes(kind: str, host: str) -> bytes:
    head = f"GET /health HTTP/1.1\r\nHost: {host}\r\nUser-Agent: slow-client\r\n"
    if kind == "body":
        return (
            f"POST /events HTTP/1.1\r\nHost: {host}\r\nAuthorization: token {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {BODY_BYTES}\r\n\r\n"
        ).encode()
    if kind == "idle":
        return (head + "\r\n").encode()
    return head.encode()


class Slow:
    """One connection and what it sends next."""

    def __init__(self, address, kind: str, host: str, interval: float):
        self.kind, self.interval = kind, interval
        self.sock = socket.socket()
        self.sock.setblocking(False)
        self.sock.connect_ex(address)
        self.opened = time.monotonic()
        self.pending = request_bytes(kind, host)
        self.next_at = self.opened
        self.lines = 0
        self.closed_after: float | None = None
        self.answered = b""

    def due(self, now: float) -> bool:
        return self.closed_after is None and now >= self.next_at

    def step(self, now: float) -> None:
        """Send the next piece."""
        if self.pending:
            if self.kind in ("bytes",):
                piece, self.pending = self.pending[:1], self.pending[1:]
            elif self.kind == "headers" and self.lines > 0:
                end = self.pending.find(b"\r\n") + 2
                piece, self.pending = self.pending[:end], self.pending[end:]
            else:
                piece, self.pending = self.pending, b""
        elif self.kind == "headers":
            piece = f"X-Slow-{self.lines}: {'a' * 20}\r\n".encode()
        elif self.kind == "bytes":
            piece = b"X"  # an ever-growing header value
            if self.lines == 0:
                piece = b"X-Slow: "
        elif self.kind == "body":
            piece = b" "
        else:
            self.next_at = float("inf")  # idle: the request went, now nothing
            return
        self.lines += 1
        self.next_at = now + self.interval
        try:
            self.sock.send(piece)
        except BlockingIOError:
            pass
        except OSError:
            self.closed(now)

    def readable(self, now: float) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.answered += data[:200]
            return
        self.closed(now)

    def closed(self, now: float) -> None:
        """The server cut it (the loop unregisters, then closes the socket)."""
        if self.closed_after is None:
            self.closed_after = now - self.opened


def attack(url: str, kind: str, count: int, seconds: float, interval: float = 0.5) -> dict:
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port
    assert host in ("127.0.0.1", "localhost", "::1"), "loopback only"
    address = (host, port)
    selector = selectors.DefaultSelector()
    live: list[Slow] = []
    cut: list[Slow] = []
    refused = ramped = 0

    def open_one() -> None:
        nonlocal refused
        conn = Slow(address, kind, f"{host}:{port}", interval)
        try:
            selector.register(conn.sock, selectors.EVENT_READ, conn)
        except (OSError, ValueError):
            refused += 1
            return
        live.append(conn)

    started = time.monotonic()
    until = started + seconds
    while time.monotonic() < until:
        now = time.monotonic()
        # Opened over RAMP_SECONDS, not at once: one worker would accept a burst alone.
        while ramped < min(count, count * (now - started) / RAMP_SECONDS + 1):
            open_one()
            ramped += 1
        next_due = min((c.next_at for c in live), default=now + 0.1)
        for key, _ in selector.select(max(0.0, min(next_due - now, 0.1))):
            key.data.readable(time.monotonic())
        now = time.monotonic()
        for conn in live:
            if conn.due(now):
                conn.step(now)
        gone = [c for c in live if c.closed_after is not None]
        for conn in gone:
            live.remove(conn)
            cut.append(conn)
            with contextlib.suppress(KeyError, ValueError, OSError):
                selector.unregister(conn.sock)
            conn.sock.close()
            open_one()  # keep the pressure up
    for conn in live:
        with contextlib.suppress(KeyError, ValueError, OSError):
            selector.unregister(conn.sock)
        conn.sock.close()
    cut_after = sorted(c.closed_after for c in cut)
    statuses: dict[str, int] = {}
    for conn in cut + live:
        line = conn.answered.split(b"\r\n", 1)[0].decode(errors="replace")
        status = line.split(" ")[1] if line.startswith("HTTP/") and " " in line else "none"
        statuses[status] = statuses.get(status, 0) + 1
    return {
        "kind": kind,
        "connections": count,
        "opened": len(cut) + len(live),
        "cut": len(cut),
        "refused": refused,
        "cut_after_s_min": round(cut_after[0], 1) if cut_after else None,
        "cut_after_s_median": round(statistics.median(cut_after), 1) if cut_after else None,
        "cut_after_s_max": round(cut_after[-1], 1) if cut_after else None,
        "server_answers": statuses,
        "seconds": round(time.monotonic() - started, 1),
    }


def main(argv: list[str]) -> int:
    url, kind, count, seconds = argv[0], argv[1], int(argv[2]), float(argv[3])
    interval = float(argv[4]) if len(argv) > 4 else 0.5
    if kind not in KINDS:
        print(f"kind must be one of {KINDS}", file=sys.stderr)
        return 2
    try:
        print(json.dumps(attack(url, kind, count, seconds, interval)), flush=True)
    except OSError as exc:
        if exc.errno == errno.EMFILE:
            print("too many open files: raise ulimit -n", file=sys.stderr)
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
