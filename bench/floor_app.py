"""The smallest app the service's stack can serve a single POST with: Flask reading the JSON
event and answering it, nothing else (no token, validation, storage, metrics or log line).

`bench.floors` serves it with the repo's `gunicorn.conf.py`, as the service is served, so its
CPU per request is what the stack costs before any of the service's own code runs.
"""

from __future__ import annotations

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/health")
def health():
    return {"status": "ok"}


@app.post("/events")
def post_event():
    event = request.get_json()
    return jsonify({"stored": 1, "duplicates": 0, "rejected": 0, "ids": [event.get("uuid")]}), 201
