"""gunicorn settings (`gunicorn -c gunicorn.conf.py wsgi:app`); each can be set from the environment.

Requests spend most of their time waiting on Elasticsearch, so each worker process serves
several at once with threads (gthread); one process per core keeps Python's CPU work parallel.
"""

import ctypes
import gc
import os
import tempfile
from pathlib import Path

# Prometheus multiprocess mode: must be in the environment before any worker imports
# prometheus_client, so it is set here, in the master, before the app is loaded.
os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", str(Path(tempfile.gettempdir()) / f"events-metrics-{os.getpid()}")
)

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8888')}"
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 2))
worker_class = "gthread"
# 32 threads: concurrent single-event POSTs wait together on one group-commit `_bulk`, so more
# threads mean bigger bulks; measured (docs/benchmarks.md) 8 → 32 threads took single POSTs
# from about 240 to 380 events/s with no cost to queries or batches.
threads = int(os.environ.get("GUNICORN_THREADS", "32"))
keepalive = 30
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
    of docs/benchmarks.md: shaping 36 ms → 25 ms, JSON parsing 6 ms → 3 ms."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


def pre_request(worker, req):
    """Close the connection after a large batch: a kept-alive connection would pin its client to
    one worker, and two busy clients pinned to the same worker share its one core (the GIL)
    while the other worker idles. Reconnecting costs little next to a large batch, and the new
    connection goes to whichever worker accepts first, usually the idle one."""
    if _large(req):
        req.force_close()


def post_request(worker, req, environ, resp):
    """A large batch leaves megabytes free inside malloc's heaps: give them back to the system."""
    if _large(req) and _libc is not None and hasattr(_libc, "malloc_trim"):
        _libc.malloc_trim(0)


def _large(req) -> bool:
    length = next((value for name, value in req.headers if name == "CONTENT-LENGTH"), "0")
    return length.isdigit() and int(length) > LARGE_REQUEST_BYTES
