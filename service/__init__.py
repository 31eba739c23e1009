"""The events service: a Flask app in front of Elasticsearch (see README, "Architecture")."""

from __future__ import annotations

import logging

from flask import Flask

from . import conditional, cors, extensions, observability, templates, web
from .api import errors
from .config import Settings
from .datasets import DATASETS
from .engine.registry import Dataset
from .jsonio import OrjsonProvider

log = logging.getLogger(__name__)
API_VERSION = "1.0.0"
#: The OpenAPI document's description (Markdown: /docs renders it).
DESCRIPTION = """Event ingest and aggregation over Elasticsearch.

Every data endpoint needs the header `Authorization: token <secret>`: press **Authorize** and
give the secret (a bare secret is sent as `token <secret>`) to try calls from this page. Build
and chart grouped queries in the [query explorer](/explore)."""


def create_app(
    settings: Settings | None = None, es=None, datasets: tuple[Dataset, ...] | None = None
) -> Flask:
    """The app factory: every worker and every test builds its own app, serving `datasets`
    (by default every shipped one), each with the endpoints its declaration describes."""
    settings = settings or Settings.from_env()
    datasets = tuple(datasets or DATASETS.values())
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
    app.extensions["datasets"] = {dataset.name: dataset for dataset in datasets}
    observability.init_app(app, settings.log_level)
    _register_api(app, settings, datasets)
    web.init_app(app, app.extensions["api"])
    cors.init_app(app, settings)
    conditional.init_app(app, settings)
    errors.init_app(app)
    from . import cli

    cli.init_app(app)
    if settings.install_templates:
        _install_templates(app, settings)
    return app


def _register_api(app: Flask, settings: Settings, datasets: tuple[Dataset, ...]) -> None:
    from .api import health
    from .api.smorest import Api
    from .api.views import dataset_blueprint

    api = Api(app, spec_kwargs={"info": {"description": DESCRIPTION}})
    api.spec.components.security_scheme(
        "token",
        {"type": "apiKey", "in": "header", "name": "Authorization", "description": "`token <secret>`"},
    )
    api.spec.options["security"] = [{"token": []}]
    api.register_blueprint(health.blp)
    for dataset in datasets:
        api.register_blueprint(dataset_blueprint(dataset, settings.default_page_size, settings.max_page_size))
    app.extensions["api"] = api


def _install_templates(app: Flask, settings: Settings) -> None:
    """Best effort: a node that is down now is retried by /ready, not fatal to the worker."""
    try:
        templates.install(
            app.extensions["es"], settings.index_prefix, tuple(app.extensions["datasets"].values())
        )
        app.extensions["tokens"].ensure_index()
    except Exception as exc:  # the worker must start even while Elasticsearch is away
        log.warning("could not install index templates yet: %r", exc)
