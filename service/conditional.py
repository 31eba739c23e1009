"""Conditional GETs of query answers: an `ETag` from the answer's bytes, and `304` when the
client already holds them (`If-None-Match`).

A dashboard polling the same grouped query every few seconds then downloads the rows only
when they changed. The tag is a digest of the body itself, so a changed answer (new events,
another token's scope) has another tag and is never answered 304. It applies to successful
GET / HEAD answers that a token authorised (the query endpoints), not to streamed exports,
ingest or the public pages.
"""

from __future__ import annotations

import hashlib

from flask import Flask, Response, g, request

from .config import Settings


def tag_of(body: bytes) -> str:
    """A strong entity tag: the digest of exactly these bytes."""
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def conditional(response: Response) -> Response:
    if (
        request.method not in ("GET", "HEAD")
        or response.status_code != 200
        or response.is_streamed
        or response.direct_passthrough
        or g.get("token") is None
    ):
        return response
    response.set_etag(tag_of(response.get_data()))
    # Any cache may keep it, but only for this client, and must ask again each time.
    response.headers["Cache-Control"] = "private, no-cache"
    response.vary.add("Authorization")
    return response.make_conditional(request)


def init_app(app: Flask, settings: Settings) -> None:
    app.after_request(conditional)
