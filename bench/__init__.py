"""`make bench`: the service measured side by side with Elasticsearch itself (issue 5).

One run starts (or uses) a node, serves the app under gunicorn with the repo's own
`gunicorn.conf.py`, and measures interleaved rounds of the service and of the same documents or
request bodies sent straight to Elasticsearch. See `docs/benchmarks.md` for the figures.
"""
