"""The service in a browser: interactive API docs (Swagger UI) at `/docs` and the query
explorer at `/explore`, each page and every script it runs served by the service itself (no
CDN): Swagger UI from the `flask-swagger-ui` package, Chart.js from `npm ci`'s node_modules.
"""

from __future__ import annotations

from flask import Flask

from .assets import blp as assets_blp
from .pages import blp as pages_blp


def init_app(app: Flask, api) -> None:
    """Pages go through the API (so they are in the OpenAPI document); assets do not."""
    api.register_blueprint(pages_blp)
    app.register_blueprint(assets_blp)
