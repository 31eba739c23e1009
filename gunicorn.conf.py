"""gunicorn settings (`gunicorn -c gunicorn.conf.py wsgi:app`); each can be set from the environment.

Requests spend most of their time waiting on Elasticsearch, and some clients are slow or hostile
(docs/reliability.md, "Slow clients"), so each worker process serves its connections with
gevent: a connection waiting on its client or on Elasticsearch costs a greenlet (a few KiB),
not a thread, so no number of slow connections can hold every worker busy. One process per core
keeps Python's CPU work parallel. A connection's request headers must arrive within `keepalive`
seconds, and its body at `REQUEST_BODY_MIN_RATE` on average after `REQUEST_BODY_GRACE_SECONDS`,
else it is cut.
"""

import ctypes
import gc
import os
import tempfile
import threading
import time
from pathlib import Path

# Prometheus multiprocess mode: must be in the environment before any worker imports
# prometheus_client, so it is set here, in the master, before the app is loaded.
os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", str(Path(tempfile.gettempdir()) / f"events-metrics-{os.getpid()}")
)

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8888')}"
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 2))
# gevent: measured (docs/reliability.md) 200 connections trickling their headers took every
# gthread thread (20 of 20 other requests timed out); under gevent the same attack left the
# others' p99 within a few ms of its level without it. `gthread` remains selectable.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gevent")
#: Connections each gevent worker serves at once (beyond that it stops accepting until some
#: end): with `keepalive` and the body rate below, this bounds a worker's memory under attack.
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "1000"))
# gthread only: 32 threads: concurrent single-event POSTs wait together on one group-commit
# `_bulk`, so more threads mean bigger bulks; measured (docs/benchmarks.md) 8 → 32 threads took
# single POSTs from about 240 to 380 events/s with no cost to queries or batches.
threads = int(os.environ.get("GUNICORN_THREADS", "32"))
#: Seconds an idle kept-alive connection is kept, and (gevent) the most a client may take to send
#: a request's headers, counted from the connection's start or its previous answer.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "15"))
#: A request body must arrive at this many bytes a second on average, after a grace period:
#: a body trickled slower is cut (408, connection closed). 64 KiB/s lets a 10 MiB batch take
#: 170 s; a byte-at-a-time body is cut after the grace period.
REQUEST_BODY_MIN_RATE = int(os.environ.get("REQUEST_BODY_MIN_RATE", str(64 * 1024)))
REQUEST_BODY_GRACE_SECONDS = float(os.environ.get("REQUEST_BODY_GRACE_SECONDS", "10"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
# Recycle workers now and then so a slow leak can never grow without bound.
max_requests = 100_000
max_requests_jitter = 10_000
# The service writes its own JSON line per request (service/observability.py); set ACCESS_LOG=-
# for gunicorn's plain access log as well.
accesslog = os.environ.get("ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")


def on_starting(server):
    """Start from an empty metrics folder: samples of a previous run must not add up."""
    folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()


def child_exit(server, worker):
    """A dead worker's gauges leave the totals; its counters stay (they were served)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


# Memory: measured peak RSS per worker (docs/benchmarks.md) must stay under 150 MB.
_libc = ctypes.CDLL(None) if os.name == "posix" else None
M_ARENA_MAX = -8
#: A request body this large is a batch: its connection is closed and malloc trimmed after it.
LARGE_REQUEST_BYTES = 256 * 1024


def post_fork(server, worker):
    """glibc gives each of a worker's 32 threads its own malloc arena, each keeping what it freed;
    two arenas are plenty for threads that mostly wait on Elasticsearch."""
    if _libc is not None and hasattr(_libc, "mallopt"):
        _libc.mallopt(M_ARENA_MAX, 2)


#: Container allocations between young-generation collections (Python's default is 700).
GC_YOUNG_THRESHOLD = 20_000


def post_worker_init(worker):
    """A request allocates thousands of short-lived dicts (a batch's events, a grouped answer's
    buckets and rows), each 700 of which would start a collection that rescans the young ones
    and, every hundredth, every object of the app. The app's own objects live as long as the
    worker: freeze them out of the scans, and collect less often. Measured on the grouped query
    of docs/benchmarks.md: shaping 36 ms → 25 ms, JSON parsing 6 ms → 3 ms.

    Under gevent, the app also reads request bodies against a deadline (`BodyDeadline`)."""
    if _gevent(worker):
        worker.wsgi = BodyDeadline(worker.wsgi)
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


#: The request each greenlet (gevent) or thread is serving, for `BodyDeadline` to close.
_serving = threading.local()


def pre_request(worker, req):
    """Close the connection after a large batch: a kept-alive connection would pin its client to
    one worker, and two busy clients pinned to the same worker share its one core (the GIL)
    while the other worker idles. Reconnecting costs little next to a large batch, and the new
    connection goes to whichever worker accepts first, usually the idle one."""
    _serving.request = req
    if _large(req):
        req.force_close()


def post_request(worker, req, environ, resp):
    """A large batch leaves megabytes free inside malloc's heaps: give them back to the system."""
    if _large(req) and _libc is not None and hasattr(_libc, "malloc_trim"):
        _libc.malloc_trim(0)


def _large(req) -> bool:
    length = next((value for name, value in req.headers if name == "CONTENT-LENGTH"), "0")
    return length.isdigit() and int(length) > LARGE_REQUEST_BYTES


def _gevent(worker) -> bool:
    return type(worker).__module__.startswith("gunicorn.workers.ggevent")


class BodyDeadline:
    """WSGI middleware: the request body is read against a deadline that grows with what arrived,
    `REQUEST_BODY_GRACE_SECONDS + bytes / REQUEST_BODY_MIN_RATE` after the headers. A read that
    would pass it fails with 408 (in the one error shape) and the connection is closed, so a
    client trickling its body holds a connection for a bounded time. gevent only: the deadline
    interrupts the blocked read (gevent.Timeout)."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if environ.get("CONTENT_LENGTH") or environ.get("HTTP_TRANSFER_ENCODING"):
            environ["wsgi.input"] = DeadlineInput(environ["wsgi.input"], environ.get("CONTENT_LENGTH"))
        return self.app(environ, start_response)


class DeadlineInput:
    """A `wsgi.input` whose reads give up at the body's deadline (see `BodyDeadline`)."""

    def __init__(self, stream, content_length):
        self.stream, self.started, self.received = stream, time.monotonic(), 0
        self.expected = int(content_length) if (content_length or "").isdigit() else None

    def _within_deadline(self, read, size: int | None):
        import gevent
        from werkzeug.exceptions import RequestTimeout

        wanted = size if size is not None and size >= 0 else None
        if wanted is None:
            wanted = (self.expected - self.received) if self.expected is not None else 1 << 20
        allowed = (
            REQUEST_BODY_GRACE_SECONDS
            + (self.received + wanted) / REQUEST_BODY_MIN_RATE
            - (time.monotonic() - self.started)
        )
        cut = RequestTimeout("The request body arrived too slowly.")
        if allowed <= 0:
            self._close()
            raise cut
        try:
            with gevent.Timeout(allowed, cut):
                data = read()
        except RequestTimeout:
            self._close()
            raise
        self.received += len(data)
        return data

    @staticmethod
    def _close():
        request = getattr(_serving, "request", None)
        if request is not None:
            request.force_close()

    def read(self, size=None):
        return self._within_deadline(lambda: self.stream.read(size), size)

    def readline(self, size=None):
        return self._within_deadline(lambda: self.stream.readline(size), size)

    def readlines(self, hint=None):
        return list(iter(self.readline, b""))

    def __iter__(self):
        return iter(self.readline, b"")
