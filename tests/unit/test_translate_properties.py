"""Property tests of the query translation: any parameters either translate or are a 400.

Whatever a client puts in a query string or a JSON query body, reading it with the dataset's
query schema either raises marshmallow's ValidationError (the view answers 400 naming the
parameter) or yields parameters that translate into a JSON-serialisable Elasticsearch body.
Any other exception would be a 500.
"""

from __future__ import annotations

import contextlib
import os

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from service.datasets.cdx import CDX
from service.datasets.roundware import ROUNDWARE
from service.engine import shape
from service.engine.params import query_schema
from service.engine.translate import group_body, search_body

DATASETS = {"cdx": CDX, "roundware": ROUNDWARE}
#: Examples per dataset; `make reliability` raises it.
EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "250"))

# Tokens a hostile or careless client is likely to send, mixed with arbitrary text.
TOKENS = [
    "",
    " ",
    ",",
    "null",
    "not(null)",
    "NULL",
    "*",
    "**",
    "*a*a*a*a*a*",
    "a*",
    "?",
    "\\",
    "-",
    "0",
    "-1",
    "1",
    "1.5",
    "1e400",
    "nan",
    "inf",
    "-inf",
    "2147483648",
    "9223372036854775808",
    "99999999999999999999",
    "2024-01-01",
    "2024-13-45",
    "2024-02-30",
    "0000",
    "9999-12",
    "9999-12-31T23:59:59.999999",
    "2024-01-01T00:00:00+99:99",
    "2017",
    "2017-04-15T10",
    "UTC",
    "Z",
    "+05:30",
    "+19:00",
    "-18:00",
    "Europe/Paris",
    "Mars/Olympus",
    "../../etc/passwd",
    "count",
    "-count",
    "_id",
    "script",
    "pii",
    "derived.x",
    "custom_fields.x",
    "_source",
    "gender",
    "-age",
    "year(start_time)",
    "week(created_at)",
    "day(server_time)",
    "admin_level",
    "month(x)",
    "age",
    "event_type",
    "session_id",
    "tag_ids",
    "location",
    "result,condition",
]
text = st.one_of(st.sampled_from(TOKENS), st.text(max_size=20))
joined = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=4).map(",".join)
scalar = st.one_of(text, joined, st.integers(), st.floats(allow_nan=True), st.booleans(), st.none())
age_range = st.one_of(
    st.lists(st.one_of(st.integers(-5, 200), st.none(), st.floats(), text), max_size=3),
    st.dictionaries(st.sampled_from(["from", "to", "x"]), st.one_of(st.integers(), st.none(), text)),
)
group_object = st.dictionaries(
    st.sampled_from(["age", "admin_level", "gender", "x"]),
    st.one_of(st.lists(age_range, max_size=3), age_range, st.integers(-2, 12), st.booleans(), text),
    max_size=2,
)
value = st.one_of(scalar, st.lists(st.one_of(scalar, group_object), max_size=3), group_object)


def names(dataset) -> list[str]:
    return [*sorted(query_schema(dataset)().fields), "unknown", "page", "limit", "_source"]


def arguments(dataset):
    return st.dictionaries(st.sampled_from(names(dataset)), value, max_size=5)


def translate_or_refuse(dataset, args: dict) -> None:
    try:
        params = query_schema(dataset)().load(args)
    except ValidationError:
        return
    page_size = min(50 if params.page_size is None else params.page_size, 1000)
    for institutions in ((), (1, 2)):
        bodies = [search_body(dataset, params, page_size, institutions)]
        if params.grouped:
            bodies.append(group_body(dataset, params, institutions))
        for body in bodies:
            assert orjson.loads(orjson.dumps(body)) == body
    shape.fingerprint(dataset, params)


@pytest.mark.parametrize("dataset_name", sorted(DATASETS))
def test_any_query_translates_or_is_a_validation_error(dataset_name):
    dataset = DATASETS[dataset_name]

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(arguments(dataset))
    def check(args):
        translate_or_refuse(dataset, args)

    check()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_cursor_decodes_or_is_a_value_error(cursor):
    with contextlib.suppress(ValueError):
        shape.decode_cursor(cursor, "fingerprint")


@pytest.mark.parametrize(
    ("dataset", "args", "parameter"),
    [
        # Each of these once reached Elasticsearch or the translation and came back a 500,
        # or a refusal that did not name the parameter.
        (ROUNDWARE, {"server_time": "2017-13"}, "server_time"),
        (ROUNDWARE, {"server_time": "9999-12-31T23-05:00"}, "server_time"),  # year 10000 in UTC
        (CDX, {"since": "0001-01-01T00:00+05:00"}, "since"),  # year 0 in UTC
        (ROUNDWARE, {"server_time": "0000"}, "server_time"),
        (ROUNDWARE, {"server_time": "2017-01-01T00:00+99:99"}, "server_time"),
        (ROUNDWARE, {"session_id": "99999999999999999999"}, "session_id"),
        (CDX, {"age": "3000000000"}, "age"),
        (CDX, {"min_age": "99999999999999999999"}, "min_age"),
        (CDX, {"institution": "9223372036854775808"}, "institution"),
        (CDX, {"error_code": "-2147483649"}, "error_code"),
        (CDX, {"group_by": "day(start_time)", "time_zone": "+19:00"}, "time_zone"),
        # An empty cursor let an offset past 64 bits through to the body.
        (ROUNDWARE, {"offset": 2**64, "cursor": ""}, "offset"),
        (CDX, {"offset": "10001"}, "offset"),
    ],
)
def test_values_outside_what_elasticsearch_reads_are_refused_by_name(dataset, args, parameter):
    with pytest.raises(ValidationError) as error:
        query_schema(dataset)().load(args)
    assert parameter in error.value.messages


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("9999", {"gte": "9999-01-01T00:00:00+00:00"}),
        ("9999-12", {"gte": "9999-12-01T00:00:00+00:00"}),
        ("9999-12-31T23:59:59.999", {"gte": "9999-12-31T23:59:59.999000+00:00"}),
        ("9999-12-31-05:00", {"gte": "9999-12-31T00:00:00-05:00"}),  # ends in UTC's year 10000
        ("9999-12-31T18-05:00", {"gte": "9999-12-31T18:00:00-05:00"}),  # ends at 10000-01-01T00Z
        ("9999-11", {"gte": "9999-11-01T00:00:00+00:00", "lt": "9999-12-01T00:00:00+00:00"}),
        ("0001", {"gte": "0001-01-01T00:00:00+00:00", "lt": "0002-01-01T00:00:00+00:00"}),
    ],
)
def test_partial_datetimes_reaching_the_calendar_end_run_to_it(value, expected):
    params = query_schema(ROUNDWARE)().load({"server_time": value})
    (clause,) = search_body(ROUNDWARE, params, 10)["query"]["bool"]["filter"]
    assert clause == {"range": {"server_time": expected}}
