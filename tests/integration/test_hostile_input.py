"""Hostile and careless input over HTTP: every answer is a 4xx in the one error shape, never a 5xx.

One table of (request → expected status and error code); each row is something a broken device,
a fuzzer or an attacker sends. `pii` and stack traces never appear in any of the answers.
"""

from __future__ import annotations

import gzip
import json

import pytest

from tests.conftest import auth

NESTING = 100_000
JSON = "application/json"
NDJSON = "application/x-ndjson"


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def deep_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


# (id, method, path, body, content type, extra headers, status, error code or None)
CASES = [
    ("malformed json", "POST", "/events", '{"age": 3', JSON, {}, 400, "invalid_json"),
    ("json NaN", "POST", "/events", '{"age": NaN}', JSON, {}, 400, "invalid_json"),
    ("json scalar", "POST", "/events", "42", JSON, {}, 400, "validation_error"),
    ("empty array", "POST", "/events", "[]", JSON, {}, 400, "validation_error"),
    ("invalid utf-8", "POST", "/events", b'{"gender": "\xff"}', JSON, {}, 400, "invalid_json"),
    ("nested arrays", "POST", "/events", nested(NESTING), JSON, {}, 400, "invalid_json"),
    ("nested objects", "POST", "/events", deep_object(NESTING), JSON, {}, 400, "invalid_json"),
    (
        "nested in custom_fields",
        "POST",
        "/events",
        '{"custom_fields": ' + deep_object(NESTING) + "}",
        JSON,
        {},
        400,
        "invalid_json",
    ),
    ("nested ndjson line", "POST", "/events", nested(NESTING) + "\n", NDJSON, {}, 400, "validation_error"),
    (
        "nested query body",
        "POST",
        "/events/query",
        '{"gender": ' + nested(NESTING, "") + "}",
        JSON,
        {},
        400,
        "invalid_json",
    ),
    ("nested GET body", "GET", "/events", nested(NESTING), JSON, {}, 400, "invalid_json"),
    ("wrong type age", "POST", "/events", '{"age": "old"}', JSON, {}, 400, "validation_error"),
    ("wrong type results", "POST", "/events", '{"results": "positive"}', JSON, {}, 400, "validation_error"),
    ("age beyond integer", "POST", "/events", '{"age": 3000000000}', JSON, {}, 400, "validation_error"),
    (
        "long beyond 64 bits",
        "POST",
        "/events",
        '{"institution_id": 9223372036854775808}',
        JSON,
        {},
        400,
        "validation_error",
    ),
    ("unknown field", "POST", "/events", '{"colour": "red"}', JSON, {}, 400, "validation_error"),
    (
        "invalid date",
        "POST",
        "/events",
        '{"start_time": "2024-02-30T10:00:00"}',
        JSON,
        {},
        400,
        "validation_error",
    ),
    (
        "invalid offset",
        "POST",
        "/events",
        '{"start_time": "2024-01-01T10:00:00+25:00"}',
        JSON,
        {},
        400,
        "validation_error",
    ),
    ("year zero", "POST", "/events", '{"start_time": "0000-01-01"}', JSON, {}, 400, "validation_error"),
    ("text/plain", "POST", "/events", '{"age": 1}', "text/plain", {}, 415, "unsupported_media_type"),
    ("no content type", "POST", "/events", '{"age": 1}', None, {}, 415, "unsupported_media_type"),
    (
        "brotli",
        "POST",
        "/events",
        '{"age": 1}',
        JSON,
        {"Content-Encoding": "br"},
        415,
        "unsupported_media_type",
    ),
    (
        "broken gzip",
        "POST",
        "/events",
        b"\x1f\x8b\x08garbage",
        JSON,
        {"Content-Encoding": "gzip"},
        400,
        "invalid_body",
    ),
    (
        "enormous body",
        "POST",
        "/events",
        b"[" + b" " * (11 * 1024 * 1024) + b"]",
        JSON,
        {},
        413,
        "payload_too_large",
    ),
    (
        "gzip bomb",
        "POST",
        "/events",
        gzip.compress(b"[" + b" " * (16 * 1024 * 1024) + b"]"),
        JSON,
        {"Content-Encoding": "gzip"},
        413,
        "payload_too_large",
    ),
    (
        "enormous query body",
        "POST",
        "/events/query",
        b'{"gender": "' + b"x" * (11 * 1024 * 1024) + b'"}',
        JSON,
        {},
        413,
        "payload_too_large",
    ),
    ("query body array", "POST", "/events/query", "[1]", JSON, {}, 400, "invalid_json"),
    ("query body xml", "POST", "/events/query", "<q/>", "application/xml", {}, 415, "unsupported_media_type"),
    (
        "huge page_size",
        "GET",
        "/events?page_size=99999999999999999999999",
        None,
        None,
        {},
        400,
        "validation_error",
    ),
    ("page_size over max", "GET", "/events?page_size=1001", None, None, {}, 400, "validation_error"),
    ("huge offset", "GET", "/events?offset=99999999999999999999999", None, None, {}, 400, "validation_error"),
    ("deep offset", "GET", "/events?offset=9990&page_size=50", None, None, {}, 400, "validation_error"),
    ("negative offset", "GET", "/events?offset=-1", None, None, {}, 400, "validation_error"),
    (
        "pathological wildcard",
        "GET",
        "/events?assay_name=" + "*a" * 50 + "*",
        None,
        None,
        {},
        400,
        "validation_error",
    ),
    (
        "long wildcard",
        "GET",
        "/events?assay_name=" + "a" * 300 + "*",
        None,
        None,
        {},
        400,
        "validation_error",
    ),
    (
        "too many values",
        "GET",
        "/events?gender=" + ",".join(["x"] * 2000),
        None,
        None,
        {},
        400,
        "validation_error",
    ),
    ("invalid date param", "GET", "/events?since=2024-13-45", None, None, {}, 400, "validation_error"),
    ("date param year 99999", "GET", "/events?since=99999-01-01", None, None, {}, 400, "validation_error"),
    ("integer param too big", "GET", "/events?age=3000000000", None, None, {}, 400, "validation_error"),
    (
        "unknown time zone",
        "GET",
        "/events?group_by=day(start_time)&time_zone=Mars/Olympus",
        None,
        None,
        {},
        400,
        "validation_error",
    ),
    (
        "path as time zone",
        "GET",
        "/events?group_by=day(start_time)&time_zone=../../etc/passwd",
        None,
        None,
        {},
        400,
        "validation_error",
    ),
    (
        "offset past 18h",
        "GET",
        "/events?group_by=day(start_time)&time_zone=%2B19:00",
        None,
        None,
        {},
        400,
        "validation_error",
    ),
    ("unknown parameter", "GET", "/events?gendre=f", None, None, {}, 400, "validation_error"),
    ("unknown body key", "POST", "/events/query", '{"gendre": "f"}', JSON, {}, 400, "validation_error"),
    ("garbage cursor", "GET", "/events?cursor=!!!", None, None, {}, 400, "validation_error"),
    ("uuid longer than any id", "GET", "/events/" + "x" * 5000, None, None, {}, 404, "not_found"),
    (
        "roundware partial date month 13",
        "GET",
        "/api/2/events/?server_time=2017-13",
        None,
        None,
        {},
        400,
        "validation_error",
    ),
    (
        "roundware date past 9999 in UTC",
        "GET",
        "/api/2/events/?server_time=9999-12-31T23-05:00",
        None,
        None,
        {},
        400,
        "validation_error",
    ),
    (
        "roundware date offset 99:99",
        "GET",
        "/api/2/events/?server_time=2017-01-01T00:00%2B99:99",
        None,
        None,
        {},
        400,
        "validation_error",
    ),
    (
        "roundware session beyond long",
        "GET",
        "/api/2/events/?session_id=99999999999999999999",
        None,
        None,
        {},
        400,
        "validation_error",
    ),
    (
        "roundware latitude nan",
        "POST",
        "/api/2/events/",
        '{"session_id": 1, "event_type": "a", "latitude": "nan"}',
        JSON,
        {},
        400,
        "validation_error",
    ),
    (
        "roundware tag beyond long",
        "POST",
        "/api/2/events/",
        '{"session_id": 1, "event_type": "a", "tag_ids": "9223372036854775808"}',
        JSON,
        {},
        400,
        "validation_error",
    ),
    (
        "roundware batch none storable",
        "POST",
        "/api/2/events/",
        '[{"session_id": "x"}, {}]',
        JSON,
        {},
        400,
        "validation_error",
    ),
    ("method not allowed", "DELETE", "/events", None, None, {}, 405, "method_not_allowed"),
    ("unknown path", "GET", "/events/a/b", None, None, {}, 404, "not_found"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type", "headers", "status", "code"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_hostile_input_is_a_clean_4xx(
    client, tokens, method, path, body, content_type, headers, status, code
):
    headers = {**auth(tokens["full"]), **headers}
    if content_type:
        headers["Content-Type"] = content_type
    response = client.open(path, method=method, data=body, headers=headers)
    assert response.status_code == status, response.data[:300]
    assert response.mimetype == "application/json"
    error = response.json["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and "Traceback" not in response.text


def test_ndjson_with_one_broken_line_stores_the_others(client, tokens, fresh_cdx):
    body = '{"uuid": "h1", "pii": {"name": "x"}}\n{"uuid": "h2", \n{"uuid": "h3"}\n'
    response = client.post(
        "/events?refresh=wait_for", data=body, headers={**auth(tokens["full"]), "Content-Type": NDJSON}
    )
    assert response.status_code == 207
    assert response.json["ids"] == ["h1", None, "h3"]
    assert response.json["errors"][0]["index"] == 1 and "_line" in response.json["errors"][0]["errors"]


def test_deep_but_allowed_nesting_in_stored_objects_round_trips(client, tokens, fresh_cdx):
    """Nesting below the JSON parser's limit is stored and returned as given."""
    custom = json.loads(deep_object(200))
    response = client.post(
        "/events?refresh=wait_for",
        json={"uuid": "deep", "custom_fields": custom},
        headers=auth(tokens["full"]),
    )
    assert response.status_code == 201
    event = client.get("/events/deep", headers=auth(tokens["query"])).json
    assert event["custom_fields"] == custom


@pytest.mark.parametrize("bad", [b'"\xff"', b'"\xed\xa0\x80"', b"1e999"], ids=["ff", "surrogate", "inf"])
def test_an_ndjson_line_that_is_not_json_is_its_own_error(client, tokens, fresh_cdx, bad):
    """Invalid UTF-8 or an infinite number in one line: that line's error, the others stored."""
    body = b'{"uuid": "u1"}\n{"uuid": "u2", "gender": ' + bad + b'}\n{"uuid": "u3"}\n'
    response = client.post(
        "/events?refresh=wait_for", data=body, headers={**auth(tokens["full"]), "Content-Type": NDJSON}
    )
    assert response.status_code == 207, response.data[:300]
    assert response.json["ids"] == ["u1", None, "u3"]
    assert response.json["errors"][0]["index"] == 1
    assert response.json["errors"][0]["errors"]["_line"][0].startswith("Not valid JSON")


@pytest.mark.parametrize("bad", [b'"\xff"', b"1e999", b'"\\ud800"'], ids=["ff", "inf", "surrogate"])
def test_a_json_array_with_an_item_that_is_not_json_is_the_bodys_400(client, tokens, fresh_cdx, bad):
    """Array items are read one by one, but a body that is not JSON is refused whole, as before."""
    body = b' [{"uuid": "a1"}, {"uuid": "a2", "gender": ' + bad + b"}]"
    response = client.post("/events", data=body, headers={**auth(tokens["full"]), "Content-Type": JSON})
    assert response.status_code == 400, response.data[:300]
    assert response.json["error"]["code"] == "invalid_json"
    assert "not valid JSON" in response.json["error"]["message"]
    assert client.get("/events/a1", headers=auth(tokens["full"])).status_code == 404
