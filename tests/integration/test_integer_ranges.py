"""Integers at and past the limits of Elasticsearch's field types and of JSON, on a real node:
in the query string, in JSON query bodies and in events, each is a 400 naming its parameter
or field, never a 5xx nor a refusal by Elasticsearch."""

from __future__ import annotations

import pytest

from service.datasets.cdx import CDX
from service.engine import shape
from service.engine.params import query_schema
from tests.conftest import auth

INTEGER = 2**31
LONG = 2**63
PAST = ["18446744073709551616", "-9223372036854775809", "1e400", "-1e400", "1" + "0" * 40]

#: parameter → (a value past its type's range, a value inside it)
CDX_INTEGERS = {
    "age": (INTEGER, 3),
    "min_age": (INTEGER, 3),
    "max_age": (-1, 3),
    "error_code": (INTEGER, -3),
    "laboratory": (LONG, 3),
    "institution": (LONG, 3),
    "location": (-LONG - 1, 3),
    "page_size": (10_001, 3),
    "offset": (10_001, 3),
}
ROUNDWARE_INTEGERS = {
    "id": (LONG, 3),
    "session_id": (LONG, -3),
    "tag_ids": (-LONG - 1, 3),
    "page_size": (-1, 3),
    "offset": (10_001, 3),
}
CASES = [("/events", name, limits) for name, limits in CDX_INTEGERS.items()] + [
    ("/api/2/events/", name, limits) for name, limits in ROUNDWARE_INTEGERS.items()
]


def named(response, parameter: str) -> None:
    assert response.status_code == 400, (parameter, response.json)
    assert response.json["error"]["code"] == "validation_error", response.json
    assert parameter in response.json["error"]["details"]["fields"], response.json


@pytest.mark.parametrize(("path", "name", "limits"), CASES)
def test_integer_parameters_out_of_range_in_the_query_string(client, tokens, path, name, limits):
    outside, inside = limits
    assert client.get(f"{path}?{name}={inside}", headers=auth(tokens["query"])).status_code == 200
    for value in [str(outside), *PAST]:
        named(client.get(f"{path}?{name}={value}", headers=auth(tokens["query"])), name)


@pytest.mark.parametrize(("name", "limits"), CDX_INTEGERS.items())
def test_integer_parameters_out_of_range_in_a_json_body(client, tokens, name, limits):
    headers = {**auth(tokens["query"]), "Content-Type": "application/json"}
    for value in [str(limits[0]), *PAST]:
        for body in (f'{{"{name}": {value}}}', f'{{"{name}": [1, {value}]}}'):
            if name in ("page_size", "offset", "min_age", "max_age") and body.endswith("]}"):
                continue  # single values
            named(client.post("/events/query", data=body, headers=headers), name)
            named(client.get("/events", data=body, headers=headers), name)


@pytest.mark.parametrize(
    "group",
    [
        '{"age": [[0, 2147483649]]}',
        '{"age": [[-1, 5]]}',
        '{"age": {"from": 9223372036854775808}}',
        '{"age": [[0, 1e400]]}',
        '{"admin_level": 1e400}',
        '{"admin_level": 18446744073709551616}',
    ],
)
def test_group_objects_out_of_range_are_refused(client, tokens, group):
    headers = {**auth(tokens["query"]), "Content-Type": "application/json"}
    named(client.post("/events/query", data=f'{{"group_by": [{group}]}}', headers=headers), "group_by")


def test_age_ranges_reach_one_past_the_largest_age(client, tokens):
    body = {"group_by": [{"age": [[0, INTEGER]]}]}
    response = client.post("/events/query", json=body, headers=auth(tokens["query"]))
    assert response.status_code == 200, response.json


@pytest.mark.parametrize(
    ("path", "event", "field"),
    [
        ("/events", {"age": INTEGER}, "age"),
        ("/events", {"error_code": -INTEGER - 1}, "error_code"),
        ("/events", {"laboratory_id": LONG}, "laboratory_id"),
        ("/events", {"parent_locations": [1, LONG]}, "parent_locations"),
        ("/api/2/events/", {"session_id": LONG, "event_type": "a"}, "session_id"),
    ],
)
def test_events_with_integers_past_their_type_name_the_field(client, tokens, path, event, field):
    response = client.post(path, json=event, headers=auth(tokens["ingest"]))
    named(response, field)


def test_every_integer_parameter_documents_its_range(client):
    document = client.get("/openapi.json").json
    for path, names in (("/events", CDX_INTEGERS), ("/api/2/events/", ROUNDWARE_INTEGERS)):
        parameters = {p["name"]: p["schema"] for p in document["paths"][path]["get"]["parameters"]}
        for name in names:
            schema = parameters[name]
            one = schema["items"]["anyOf"][0] if schema.get("type") == "array" else schema
            assert one["type"] == "integer" and "minimum" in one and "maximum" in one, (path, name, schema)
    group_by = document["components"]["schemas"]["CdxQuery"]["properties"]["group_by"]
    objects = {next(iter(item["properties"])): item for item in group_by["items"]["anyOf"][1:]}
    assert objects["admin_level"]["properties"]["admin_level"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": 9,
    }
    assert '"maximum": 2147483648' in str(objects["age"]).replace("'", '"')


def forged(after, query: dict) -> str:
    """A cursor as the service makes them, carrying values it never would."""
    return shape.encode_cursor(after, shape.fingerprint(CDX, query_schema(CDX)().load(query)))


@pytest.mark.parametrize(
    ("query", "after"),
    [
        ({}, [2**70, "a"]),
        ({}, [-(2**63) - 1, "a"]),
        ({}, [float("inf"), "a"]),
        ({}, [{"nested": 1}, "a"]),
        ({"group_by": "day(start_time)", "page_size": "1"}, {"g0": 2**70}),
        ({"group_by": "day(start_time)", "page_size": "1"}, {"g0": float("nan")}),
    ],
)
def test_forged_cursors_with_values_past_64_bits_name_the_cursor(client, tokens, query, after):
    string = "&".join(f"{name}={value}" for name, value in query.items())
    response = client.get(f"/events?{string}&cursor={forged(after, query)}", headers=auth(tokens["query"]))
    named(response, "cursor")
