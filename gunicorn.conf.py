"""gunicorn settings (`gunicorn -c gunicorn.conf.py wsgi:app`); each can be set from the environment.

Requests spend most of their time waiting on Elasticsearch, so each worker process serves
several at once with threads (gthread); one process per core keeps Python's CPU work parallel.
"""

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
