"""The events service: a Flask app in front of Elasticsearch (see README, "Architecture")."""

from __future__ import annotations

import logging

from flask import Flask

from . import conditional, cors, errors, extensions, observability, templates, web
from .config import Settings
from .jsonio import OrjsonProvider

log = logging.getLogger(__name__)
API_VERSION = "1.0.0"
#: The OpenAPI document's description (Markdown: /docs renders it).
DESCRIPTION = """Event ingest and aggregation over Elasticsearch.

Every data endpoint needs the header `Authorization: token <secret>`: press **Authorize** and
give the secret (a bare secret is sent as `token <secret>`) to try calls from this page. Build
and chart grouped queries in the [query explorer](/explore)."""


def create_app(settings: Settings | None = None, es=None) -> Flask:
    """The app factory: every worker and every test builds its own app."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.config.update(
        SETTINGS=settings,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        API_TITLE="Events service",
        API_VERSION=API_VERSION,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
    )
    extensions.init_app(app, settings, es)
    observability.init_app(app, settings.log_level)
    _register_api(app)
    web.init_app(app, app.extensions["api"])
    cors.init_app(app, settings)
    conditional.init_app(app, settings)
    errors.init_app(app)
    from . import cli

    cli.init_app(app)
    if settings.install_templates:
        _install_templates(app, settings)
    return app


def _register_api(app: Flask) -> None:
    from .api import cdx, health, roundware
    from .api.smorest import Api

    api = Api(app, spec_kwargs={"info": {"description": DESCRIPTION}})
    api.spec.components.security_scheme(
        "token",
        {"type": "apiKey", "in": "header", "name": "Authorization", "description": "`token <secret>`"},
    )
    api.spec.options["security"] = [{"token": []}]
    for blueprint in (health.blp, cdx.blp, roundware.blp):
        api.register_blueprint(blueprint)
    app.extensions["api"] = api


def _install_templates(app: Flask, settings: Settings) -> None:
    """Best effort: a node that is down now is retried by /ready, not fatal to the worker."""
    try:
        templates.install(app.extensions["es"], settings.index_prefix)
        app.extensions["tokens"].ensure_index()
    except Exception as exc:  # the worker must start even while Elasticsearch is away
        log.warning("could not install index templates yet: %r", exc)
