"""flask-smorest wired to our conventions: strict argument parsing, our error shape, and the
shapes of our answers in the OpenAPI document (documentation only: views build their JSON)."""

from __future__ import annotations

import flask_smorest
from marshmallow import Schema, ValidationError, fields
from webargs.flaskparser import FlaskParser

from ..engine.params import GroupBy
from .errors import handle_http_exception


class StrictParser(FlaskParser):
    """Unknown query parameters are an error everywhere (a typo must not widen a filter)."""

    DEFAULT_UNKNOWN_BY_LOCATION = dict.fromkeys(FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION)
    DEFAULT_VALIDATION_STATUS = 400

    def load_querystring(self, req, schema):
        """A parameter of one value given twice is refused: reading one would drop the other."""
        repeated = [
            name
            for name, values in req.args.lists()
            if len(values) > 1 and not getattr(schema.fields.get(name), "is_multiple", False)
        ]
        if repeated:
            raise ValidationError({name: ["Given more than once; it takes one value."] for name in repeated})
        return super().load_querystring(req, schema)


class ErrorBody(Schema):
    code = fields.String(required=True, metadata={"description": "e.g. validation_error"})
    message = fields.String(required=True)
    details = fields.Raw(metadata={"description": "the offending fields or parameters, per-item reports"})


class ErrorSchema(Schema):
    """The one error shape (errors.py): `{"error": {"code", "message", "details"?}}`."""

    error = fields.Nested(ErrorBody, required=True)


class IngestReport(Schema):
    stored = fields.Integer(required=True, metadata={"example": 2})
    duplicates = fields.Integer(required=True, metadata={"example": 0})
    rejected = fields.Integer(required=True, metadata={"example": 1})
    ids = fields.List(
        fields.Raw(allow_none=True),
        required=True,
        metadata={"description": "null: not stored", "example": ["3f2a9c1e-…", None, "77b0d2aa-…"]},
    )
    errors = fields.List(
        fields.Dict(),
        required=True,
        metadata={
            "description": "{index, status, errors}",
            "example": [
                {"index": 1, "status": "invalid", "errors": {"age": ["Must be greater than or equal to 0."]}}
            ],
        },
    )


class QueryResult(Schema):
    total_count = fields.Integer(
        required=True,
        allow_none=True,
        metadata={
            "example": 23,
            "description": "null when min_count withholds it (it would give a hidden count away)",
        },
    )
    events = fields.List(
        fields.Dict(),
        required=True,
        metadata={
            "description": "events, or grouped rows: their keys (a date group's is its field; "
            '`{"other": K}` for the K values `top` merged), count, and as asked `stats`, `rate`, '
            "`distinct`, `previous` and `change`; under min_count a hidden row has count null and "
            '"suppressed": true',
            "example": [
                {"gender": "female", "result": "positive", "count": 7},
                {"gender": "male", "result": "positive", "count": 16},
            ],
        },
    )
    next_cursor = fields.String(
        allow_none=True,
        metadata={
            "description": "null on the last page; absent with page_size=0 and for grouped rows "
            "without page_size"
        },
    )
    exact = fields.Boolean(metadata={"description": "grouped answers: counts are exact, no group left out"})
    stats = fields.Dict(
        metadata={"description": "stats= without group_by: the whole answer's; a field's null: withheld"}
    )
    suppressed = fields.Dict(
        metadata={
            "description": "with min_count: {min_count, rows (hidden), count (their events: 0, or "
            "null when any row is hidden)}"
        }
    )
    rate = fields.Dict(
        metadata={
            "description": "with `rate` and without `group_by`: the whole answer's, as each row's "
            '`"rate"`: `{"NAME:VALUE": {"numerator", "denominator", "value", "ci95": [low, high]}}` '
            "(value and ci95 null without events; all null when min_count hides them)",
            "example": {
                "result:positive": {
                    "numerator": 12,
                    "denominator": 80,
                    "value": 0.15,
                    "ci95": [0.0879, 0.2456],
                }
            },
        }
    )
    distinct = fields.Dict(
        metadata={
            "description": "with `distinct` and without `group_by`: the whole answer's, as each row's "
            '`"distinct"`: `{"NAME": {"count", "exact"}}` (exact up to 1,000 values, else an estimate)',
            "example": {"device": {"count": 37, "exact": True}},
        }
    )
    previous = fields.Dict(
        metadata={
            "description": 'with `compare` and without `group_by`: the compared period\'s `{"count"}` '
            "(each row has its own, matched by keys; rows only in that period come with count 0)",
            "example": {"count": 64},
        }
    )
    change = fields.Float(
        allow_none=True,
        metadata={
            "description": "with `compare`: (count - previous) / previous; null when previous is 0 or hidden"
        },
    )


EVENT = {"type": "object"}
EVENTS = {"type": "array", "items": EVENT}


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = StrictParser()


class Api(flask_smorest.Api):
    ERROR_SCHEMA = ErrorSchema

    def init_app(self, app, *, spec_kwargs=None):
        super().init_app(app, spec_kwargs=spec_kwargs)
        self.ma_plugin.converter.add_parameter_attribute_function(group_by_in_query_string)

    def handle_http_exception(self, error):
        return handle_http_exception(error)


def group_by_in_query_string(self, field, ret, **kwargs) -> dict:
    """In a query string `group_by` is comma-separated text (`gender,week(start_time)`), so it
    is documented (and offered by "try it out") as a string there; JSON bodies keep the list of
    names and objects its schema describes."""
    if ret.get("in") == "query" and isinstance(field, GroupBy):
        return {"schema": {"type": "string"}}
    return {}


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


#: The export endpoints' answer, for the OpenAPI document.
EXPORT_RESPONSES = {
    "200": {
        "description": "every matching event: one JSON object per line, or CSV with a header row",
        "content": {
            "application/x-ndjson": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}
