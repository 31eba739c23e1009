"""Static files of the browser pages, all from this machine: the pages' own scripts and
styles, Swagger UI's distribution (shipped inside the `flask-swagger-ui` package) and
Chart.js (installed by `npm ci` from package-lock.json into node_modules/)."""

from __future__ import annotations

from pathlib import Path

import flask_swagger_ui
from flask import Blueprint, send_from_directory

from ..errors import ApiError

ROOT = Path(__file__).resolve().parents[2]
SWAGGER_UI_DIST = Path(flask_swagger_ui.__file__).resolve().parent / "dist"
CHART_JS_DIST = ROOT / "node_modules" / "chart.js" / "dist"
#: The only file of node_modules served: the Chart.js UMD build, a single self-contained script.
CHART_JS = "chart.umd.min.js"

blp = Blueprint("assets", __name__, static_folder="static", static_url_path="/assets/web")


@blp.route("/assets/swagger-ui/<path:name>")
def swagger_ui(name: str):
    return send_from_directory(SWAGGER_UI_DIST, name)


@blp.route(f"/assets/chart.js/{CHART_JS}")
def chart_js():
    if not (CHART_JS_DIST / CHART_JS).is_file():
        raise ApiError(404, "not_found", "Chart.js is not installed: run `npm ci` in the project.")
    return send_from_directory(CHART_JS_DIST, CHART_JS)
