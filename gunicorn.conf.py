"""gunicorn settings (`gunicorn -c gunicorn.conf.py wsgi:app`); each can be set from the environment.

Requests spend most of their time waiting on Elasticsearch, so each worker process serves
several at once with threads (gthread); one process per core keeps Python's CPU work parallel.
"""

import ctypes
import os

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
# ACCESS_LOG="" turns the access log off (one formatted line per request costs CPU at high rates).
accesslog = os.environ.get("ACCESS_LOG", "-") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")

# Memory: measured peak RSS per worker (docs/benchmarks.md) must stay under 150 MB.
_libc = ctypes.CDLL(None) if os.name == "posix" else None
M_ARENA_MAX = -8
TRIM_AFTER_BYTES = 256 * 1024


def post_fork(server, worker):
    """glibc gives each of a worker's 32 threads its own malloc arena, each keeping what it freed;
    two arenas are plenty for threads that mostly wait on Elasticsearch."""
    if _libc is not None and hasattr(_libc, "mallopt"):
        _libc.mallopt(M_ARENA_MAX, 2)


def post_request(worker, req, environ, resp):
    """A large batch leaves megabytes free inside malloc's heaps: give them back to the system."""
    large = int(environ.get("CONTENT_LENGTH") or 0) > TRIM_AFTER_BYTES
    if large and _libc is not None and hasattr(_libc, "malloc_trim"):
        _libc.malloc_trim(0)
