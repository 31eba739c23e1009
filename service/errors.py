"""The service's errors, free of HTTP machinery: what went wrong, its status and code.

Views, the query service and the ingest pipeline raise `ApiError`; `api/errors.py` turns it
(and Werkzeug's, marshmallow's and Elasticsearch's errors) into the one JSON error shape.
"""

from __future__ import annotations

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
