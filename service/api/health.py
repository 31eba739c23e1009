"""Health, readiness and the human-readable API docs page (no token needed)."""

from __future__ import annotations

from flask import current_app, jsonify, render_template_string

from .. import observability, templates
from ..errors import unavailable
from .smorest import EVENT, Blueprint

blp = Blueprint("operations", __name__, description="Health, readiness and documentation.")


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
        installed = templates.installed(es, settings.index_prefix)
        if not installed and settings.install_templates:
            templates.install(es, settings.index_prefix)
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


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ spec.info.title }}</title>
<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
code{background:#f3f3f3;padding:0 .2rem}h3{margin-bottom:.2rem}table{border-collapse:collapse}
td,th{border-bottom:1px solid #ddd;padding:.2rem .6rem;text-align:left;vertical-align:top}</style>
</head><body><h1>{{ spec.info.title }} <small>{{ spec.info.version }}</small></h1>
<p>The machine-readable document: <a href="/openapi.json">/openapi.json</a>.
Send <code>Authorization: token &lt;secret&gt;</code> to every data endpoint.</p>
{% for path, methods in spec.paths.items() %}{% for method, op in methods.items() %}
<h3><code>{{ method|upper }} {{ path }}</code> {{ op.summary }}</h3>
<p>{{ op.description }}</p>
{% if op.parameters %}<table><tr><th>parameter</th><th>in</th><th>description</th></tr>
{% for p in op.parameters %}<tr><td><code>{{ p.name }}</code></td><td>{{ p.in }}</td>
<td>{{ p.description or p.schema.description or "" }}</td></tr>{% endfor %}</table>{% endif %}
{% endfor %}{% endfor %}</body></html>"""


@blp.route("/docs")
@blp.doc(summary="This API's documentation as a page", security=[])
@blp.alt_response(200, schema={"type": "string"}, content_type="text/html", description="an HTML page")
def docs():
    spec = current_app.extensions["api"].spec.to_dict()
    return render_template_string(DOCS_PAGE, spec=spec)
