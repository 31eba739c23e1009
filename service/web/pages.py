"""The browser pages, in the OpenAPI document and needing no token (the token is typed into
the page, which sends it in the `Authorization` header; it never goes into a URL)."""

from __future__ import annotations

from flask import current_app, jsonify, render_template

from ..api.smorest import EVENT, Blueprint
from .catalog import catalog

blp = Blueprint(
    "pages",
    __name__,
    template_folder="templates",
    description="Pages for people: the interactive API docs and the query explorer.",
)
HTML = {"schema": {"type": "string"}, "content_type": "text/html", "description": "an HTML page"}


@blp.route("/docs")
@blp.doc(
    summary="This API's interactive documentation",
    description="Swagger UI over `/openapi.json`: every operation with its parameters, schemas "
    "and examples. *Authorize* with `token <secret>` (or the bare secret) to try calls.",
    security=[],
)
@blp.alt_response(200, **HTML)
def docs():
    return render_template("docs.html", title=current_app.config["API_TITLE"])


@blp.route("/explore")
@blp.doc(
    summary="The query explorer",
    description="Build a filtered, grouped query of a dataset, see its rows as a table and a "
    "chart, and copy the equivalent URL or curl command.",
    security=[],
)
@blp.alt_response(200, **HTML)
def explore():
    return render_template("explore.html", title=current_app.config["API_TITLE"])


@blp.route("/explore/datasets.json")
@blp.doc(
    summary="What the explorer offers, per dataset",
    description="Each dataset's query endpoints, filters, groupings (with the key their rows "
    "carry), statistics fields and other query parameters, generated from the dataset "
    "declarations and this OpenAPI document.",
    security=[],
)
@blp.alt_response(200, schema=EVENT, description='{"datasets": [...]}')
def datasets():
    found = current_app.extensions.get("explorer_catalog")
    if found is None:  # the document is complete once the app serves requests
        found = catalog(current_app.extensions["api"].spec.to_dict())
        current_app.extensions["explorer_catalog"] = found
    return jsonify(found)
