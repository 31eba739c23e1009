"""CORS for browser dashboards on other origins (flask-cors), allowed only to `CORS_ORIGINS`.

Tokens travel in the `Authorization` header, never in cookies, so no credentials mode is
needed: an allowed origin's page sends the header itself, after a preflight this answers.
Refused origins get no CORS headers at all, so their browsers keep the answer from the page.
"""

from __future__ import annotations

from flask import Flask, Response
from flask_cors import CORS
from werkzeug.http import parse_set_header

from .config import Settings

#: Request headers a page may send (besides the CORS-safelisted ones).
ALLOWED_HEADERS = ["Authorization", "Content-Type", "If-None-Match", "X-Request-ID"]
#: Response headers a page may read (besides the CORS-safelisted ones).
EXPOSED_HEADERS = [
    "X-Total-Count",
    "X-Next-Cursor",
    "X-Request-ID",
    "ETag",
    # What roundware's plain array answers beside its events (api/roundware.ARRAY_HEADERS).
    "X-Stats",
    "X-Rate",
    "X-Distinct",
    "X-Compare",
    "X-Suppressed",
]
METHODS = ["GET", "HEAD", "POST", "OPTIONS"]
#: Seconds a browser may reuse a preflight's answer.
PREFLIGHT_MAX_AGE = 600


def origins(settings: Settings) -> list[str]:
    return [origin.strip().rstrip("/") for origin in settings.cors_origins.split(",") if origin.strip()]


def vary_on_origin(response: Response) -> Response:
    """One `Vary` header naming `Origin` (flask-cors adds its own line, and only when several
    origins are allowed): an answer's CORS headers depend on the asking origin, so no cache may
    hand one origin's copy to another."""
    vary = {}
    for line in response.headers.getlist("Vary"):
        vary.update((name.lower(), name) for name in parse_set_header(line))
    vary.setdefault("origin", "Origin")
    response.headers["Vary"] = ", ".join(vary.values())
    return response


def init_app(app: Flask, settings: Settings) -> None:
    allowed = origins(settings)
    if not allowed:  # the default: no origin but the service's own
        return
    if "*" not in allowed:
        app.after_request(vary_on_origin)  # registered first, so it runs after flask-cors's hook
    CORS(
        app,
        origins="*" if "*" in allowed else allowed,
        send_wildcard="*" in allowed,
        methods=METHODS,
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        supports_credentials=False,
        max_age=PREFLIGHT_MAX_AGE,
    )
