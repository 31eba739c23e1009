"""flask-smorest wired to our conventions: strict argument parsing and our error shape."""

from __future__ import annotations

import flask_smorest
from webargs.flaskparser import FlaskParser

from ..errors import handle_http_exception


class StrictParser(FlaskParser):
    """Unknown query parameters are an error everywhere (a typo must not widen a filter)."""

    DEFAULT_UNKNOWN_BY_LOCATION = dict.fromkeys(FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION)
    DEFAULT_VALIDATION_STATUS = 400


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = StrictParser()


class Api(flask_smorest.Api):
    def handle_http_exception(self, error):
        return handle_http_exception(error)


#: Query parameters of every ingest endpoint, for the OpenAPI document.
INGEST_PARAMETERS = [
    {
        "in": "query",
        "name": "refresh",
        "description": "wait_for (or true): answer once the events are searchable",
        "schema": {"type": "string", "enum": ["wait_for", "true", "false"]},
    },
    {
        "in": "query",
        "name": "sent_at",
        "description": "the client's clock when sending: client-clock times are corrected by the "
        "skew, originals kept in clock_correction (also as a JSON envelope "
        '{"sent_at": ..., "events": [...]})',
        "schema": {"type": "string", "format": "date-time"},
    },
]
