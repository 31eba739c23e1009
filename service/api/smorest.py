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
