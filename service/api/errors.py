"""One JSON error shape for every failure: `{"error": {"code", "message", "details"?}}`.

`ApiError`, Werkzeug's HTTP errors, argument validation errors and Elasticsearch failures are
translated here, so no HTML page and no stack trace ever reaches a client.
"""

from __future__ import annotations

import logging

import elastic_transport
import elasticsearch
from flask import Flask, current_app, jsonify
from werkzeug.exceptions import HTTPException

from ..errors import CODES, ApiError, arguments_error, storage_full, storage_full_error, unavailable

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str, details=None, headers=None):
    body = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    response = jsonify({"error": body})
    response.status_code = status
    if status in (429, 503):
        response.headers["Retry-After"] = str(current_app.config["SETTINGS"].retry_after_seconds)
    response.headers.update(headers or {})
    return response


def handle_api_error(error: ApiError):
    return error_response(error.status, error.code, error.message, error.details, error.headers)


def handle_http_exception(error: HTTPException):
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    if "messages" in data:  # webargs / flask-smorest argument validation
        return handle_api_error(arguments_error(data["messages"], data.get("schema")))
    message = error.description or error.name
    if status == 413:
        message = "Request body too large."
    return error_response(status, CODES.get(status, "error"), message)


def handle_elasticsearch_error(error: Exception):
    if isinstance(error, elasticsearch.ApiError):
        if storage_full(str(error)):
            return handle_api_error(storage_full_error())
        if error.status_code == 429:
            return error_response(429, "too_many_requests", "Elasticsearch is overloaded; retry later.")
        if error.status_code == 400:
            log.warning("elasticsearch refused a request: %s", error)
            return error_response(400, "bad_request", f"The query was refused: {error.error}")
        if error.status_code == 404:
            return error_response(503, "service_unavailable", "An index is missing; retry later.")
    log.warning("elasticsearch failure: %r", error)
    return handle_api_error(unavailable())


def handle_unexpected(error: Exception):
    log.exception("unhandled error")
    return error_response(500, "internal_error", "Internal error.")


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, handle_api_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(elasticsearch.ApiError, handle_elasticsearch_error)
    app.register_error_handler(elastic_transport.TransportError, handle_elasticsearch_error)
    app.register_error_handler(Exception, handle_unexpected)
