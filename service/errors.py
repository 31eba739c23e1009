"""One JSON error shape for every failure: `{"error": {"code", "message", "details"?}}`.

Views raise `ApiError`; Werkzeug's HTTP errors, validation errors and Elasticsearch failures are
translated here, so no HTML page and no stack trace ever reaches a client.
"""

from __future__ import annotations

import logging

import elastic_transport
import elasticsearch
from flask import Flask, current_app, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    503: "service_unavailable",
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details=None, headers=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details, self.headers = details, headers or {}


#: How Elasticsearch says an index is blocked because a disk passed its flood-stage watermark.
STORAGE_FULL_SIGNS = ("flood-stage watermark", "read-only-allow-delete")


def storage_full(text: str) -> bool:
    """Whether an Elasticsearch error (or a bulk item's reason) is the disk-full write block."""
    return any(sign in text for sign in STORAGE_FULL_SIGNS)


def storage_full_error(details=None) -> ApiError:
    """503 `storage_full`: writes are blocked until Elasticsearch has disk space again, which it
    notices by itself (reads keep working)."""
    return ApiError(
        503,
        "storage_full",
        "Elasticsearch is out of disk space (flood-stage watermark): nothing was stored; "
        "writes resume once space is freed, retry later.",
        details,
    )


def validation_error(message: str, details) -> ApiError:
    return ApiError(400, "validation_error", message, details)


def unavailable(message: str = "Elasticsearch is unavailable; retry later.") -> ApiError:
    return ApiError(503, "service_unavailable", message)


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


def arguments_error(messages: dict, schema=None) -> ApiError:
    """400 naming every offending parameter; unknown ones come with the list of valid names."""
    flat = {}
    for location_messages in messages.values():
        flat.update(location_messages if isinstance(location_messages, dict) else {})
    flat = flat or messages
    unknown = sorted(name for name, errs in flat.items() if "Unknown field." in (errs or []))
    details = {"fields": flat}
    message = "Invalid parameters: " + ", ".join(sorted(flat))
    if unknown:
        message = "Unknown parameters: " + ", ".join(unknown)
        if schema is not None:
            details["valid"] = sorted(schema.fields)
    return validation_error(message, details)


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
