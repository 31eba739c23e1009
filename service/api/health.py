"""Health, readiness and metrics (no token needed); the docs page is in service/web/."""

from __future__ import annotations

from flask import current_app, jsonify

from .. import observability, templates
from ..errors import unavailable
from .smorest import EVENT, Blueprint

blp = Blueprint("operations", __name__, description="Health, readiness and metrics.")


@blp.route("/health")
@blp.doc(summary="The process is up", security=[])
@blp.alt_response(200, schema=EVENT, description='{"status": "ok"}')
def health():
    return jsonify({"status": "ok"})


@blp.route("/ready")
@blp.doc(summary="Elasticsearch answers and the index templates are installed", security=[])
@blp.alt_response(200, schema=EVENT, description='{"status": "ready", ...}')
def ready():
    es, settings = current_app.extensions["es"], current_app.config["SETTINGS"]
    try:
        es.cluster.health(timeout="2s")
        datasets = tuple(current_app.extensions["datasets"].values())
        installed = templates.installed(es, settings.index_prefix, datasets)
        if not installed and settings.install_templates:
            templates.install(es, settings.index_prefix, datasets)
            current_app.extensions["tokens"].ensure_index()
            installed = True
    except Exception as exc:  # any failure to reach the cluster means "not ready"
        raise unavailable(f"Elasticsearch is not ready: {type(exc).__name__}.") from exc
    if not installed:
        raise unavailable("The index templates are not installed (flask templates install).")
    return jsonify({"status": "ready", "elasticsearch": "ok", "templates": "installed"})


@blp.route("/metrics")
@blp.doc(summary="Prometheus metrics of every worker (requests, ingest, Elasticsearch)", security=[])
@blp.alt_response(
    200, schema={"type": "string"}, content_type="text/plain", description="Prometheus text exposition"
)
def metrics():
    return observability.metrics_response()
