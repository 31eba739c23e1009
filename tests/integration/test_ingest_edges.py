"""Ingest at the edges of what Elasticsearch and the calendar hold: every bad value is a 400
naming its field (207 in a batch, the others stored), never a 5xx, never half-stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from service.datasets import CDX
from service.engine.dates import from_iso
from service.store import EventStore
from tests.conftest import auth

JSON = "application/json"
NDJSON = "application/x-ndjson"


@pytest.fixture(autouse=True)
def _empty(fresh_cdx):
    pass


def post(client, tokens, body, path="/events", query="?refresh=wait_for", content_type=JSON):
    """Bodies go out through the standard library's JSON, which writes integers of any size."""
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    headers = {**auth(tokens["ingest"]), "Content-Type": content_type}
    return client.post(f"{path}{query}", data=data, headers=headers)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def field_errors(response) -> dict:
    """The field errors of a refused single event."""
    assert response.status_code == 400, response.json
    assert response.json["error"]["code"] == "validation_error"
    return response.json["error"]["details"]["fields"]


def batch_errors(response) -> dict[int, dict]:
    """Position → field errors of a 207."""
    assert response.status_code == 207, response.json
    return {error["index"]: error["errors"] for error in response.json["errors"]}


def stored(client, tokens, uuid: str) -> dict | None:
    response = client.get(f"/events/{uuid}", headers=auth(tokens["query"]))
    return response.json if response.status_code == 200 else None


# -- clock correction at the calendar's edges -----------------------------------------------------


def test_correction_past_year_9999_is_that_events_field_error(client, tokens):
    sent_at = iso(datetime.now(UTC) - timedelta(days=1))  # the client is a day behind: +1 day
    late = {"uuid": "past-9999", "start_time": "9999-12-31T12:00:00Z"}
    single = post(client, tokens, late, query=f"?refresh=wait_for&sent_at={sent_at.replace('+', '%2B')}")
    assert "start_time" in field_errors(single)
    batch = post(client, tokens, {"sent_at": sent_at, "events": [{"uuid": "fine-9999"}, late]})
    assert list(batch_errors(batch)) == [1] and "start_time" in batch_errors(batch)[1]
    assert batch.json["ids"] == ["fine-9999", None]
    assert stored(client, tokens, "fine-9999")["clock_correction"]["offset_ms"] > 0
    assert stored(client, tokens, "past-9999") is None


def test_correction_before_year_1_is_that_events_field_error(client, tokens):
    sent_at = iso(datetime.now(UTC) + timedelta(days=1))  # a day ahead: -1 day
    early = {"uuid": "before-1", "start_time": "0001-01-01T06:00:00Z"}
    batch = post(client, tokens, {"sent_at": sent_at, "events": [early, {"uuid": "fine-1"}]})
    assert list(batch_errors(batch)) == [0] and "start_time" in batch_errors(batch)[0]
    assert stored(client, tokens, "fine-1") is not None
    roundware = post(
        client,
        tokens,
        {"session_id": 1, "event_type": "edge", "client_time": "0001-01-01T00:00:00Z"},
        path="/api/2/events/",
        query=f"?sent_at={sent_at.replace('+', '%2B')}",
    )
    assert "client_time" in field_errors(roundware)


def test_offset_ms_is_exactly_received_at_minus_sent_at(client, tokens):
    """Both as stored, to the millisecond, and each corrected time is its original + offset_ms."""
    for n in range(12):
        sent = datetime.now(UTC) - timedelta(hours=3, microseconds=n * 83)
        sent_at = sent.isoformat(timespec="microseconds")
        body = {
            "sent_at": sent_at,
            "events": [{"uuid": f"exact-{n}", "start_time": "2024-05-01T10:00:00.250Z"}],
        }
        assert post(client, tokens, body, query="").status_code == 201
        event = stored(client, tokens, f"exact-{n}")  # a get: real time, no refresh needed
        correction = event["clock_correction"]
        offset = timedelta(milliseconds=correction["offset_ms"])
        assert from_iso(correction["received_at"]) - from_iso(correction["sent_at"]) == offset
        assert from_iso(event["start_time"]) == from_iso("2024-05-01T10:00:00.250Z") + offset
        assert abs(from_iso(correction["sent_at"]) - sent) < timedelta(milliseconds=1)


@pytest.mark.parametrize(
    "sent_at",
    [
        "yesterday",
        "",
        "2024-13-01T00:00:00Z",
        1700000000,
        "0001-01-01T00:00:00+18:00",
        "2024-01-01T00:00:00+19:00",
    ],
)
def test_unreadable_sent_at_is_a_400_naming_it(client, tokens, sent_at):
    response = post(client, tokens, {"sent_at": sent_at, "events": [{"uuid": "never"}]})
    assert "sent_at" in field_errors(response)
    assert stored(client, tokens, "never") is None


def test_sent_at_far_off_stores_what_it_can(client, tokens):
    body = {
        "sent_at": "0001-01-01T00:00:00Z",  # the client thinks it is year 1: +2,000 years
        "events": [{"uuid": "far-a"}, {"uuid": "far-b", "start_time": "8500-01-01T00:00:00Z"}],
    }
    response = post(client, tokens, body)
    assert list(batch_errors(response)) == [1] and "start_time" in batch_errors(response)[1]
    correction = stored(client, tokens, "far-a")["clock_correction"]
    assert correction["sent_at"] == "0001-01-01T00:00:00.000Z"
    assert from_iso(correction["received_at"]) - from_iso(correction["sent_at"]) == timedelta(
        milliseconds=correction["offset_ms"]
    )


# -- times at the calendar's edges ---------------------------------------------------------------

EDGE_TIMES = [
    ("0001-01-01T00:00:00Z", "0001.01"),
    ("0001-01-01T00:00:00-18:00", "0001.01"),
    ("9999-12-31T23:59:59.999Z", "9999.12"),
    ("9999-12-31T23:59:59.999+18:00", "9999.12"),
    ("0001-01-01T00:00:00+18:00", None),  # year 0 in UTC
    ("0001-01-01T17:59:59.999+18:00", None),
    ("9999-12-31T23:59:59.999-18:00", None),  # year 10000 in UTC
    ("9999-12-31T06:00:00-18:00", None),
    ("2024-01-01T00:00:00+18:01", None),  # beyond the widest offset Elasticsearch reads
    ("2024-01-01T00:00:00-23:59", None),
    ("2024-01-01T00:00:00+01:75", None),  # minutes past 59
]


@pytest.mark.parametrize(("text", "month"), EDGE_TIMES)
@pytest.mark.parametrize("field", ["start_time", "created_at"])
def test_times_at_the_calendar_edges(client, tokens, es, settings, field, text, month):
    uuid = f"edge-{field}-{EDGE_TIMES.index((text, month))}"
    response = post(client, tokens, [{"uuid": uuid, field: text}, {"uuid": f"{uuid}-ok"}])
    if month is None:
        assert list(batch_errors(response)) == [0] and field in batch_errors(response)[0]
        assert stored(client, tokens, uuid) is None
        assert field in field_errors(post(client, tokens, {"uuid": uuid, field: text}))
    else:
        assert response.status_code == 201, response.json
        assert es.exists(index=f"{settings.index_prefix}cdx-{month}", id=uuid)
        assert stored(client, tokens, uuid)[field] == text
    assert stored(client, tokens, f"{uuid}-ok") is not None


@pytest.mark.parametrize(("text", "month"), EDGE_TIMES)
def test_roundware_client_times_at_the_calendar_edges(client, tokens, text, month):
    body = {"session_id": 1, "event_type": "edge", "client_time": text}
    response = post(client, tokens, body, path="/api/2/events/")
    if month is None:
        assert "client_time" in field_errors(response)
    else:
        assert response.status_code == 201, response.json
        assert response.json["client_time"] == text


# -- integers at the Elasticsearch types' limits ------------------------------------------------

INT, LONG = 2**31, 2**63
INTEGERS = [
    ("age", INT - 1, True),
    ("age", INT, False),
    ("age", 2**63, False),
    ("age", 2**64, False),
    ("error_code", -INT, True),
    ("error_code", -INT - 1, False),
    ("error_code", INT, False),
    ("institution_id", LONG - 1, True),
    ("institution_id", -LONG, True),
    ("institution_id", LONG, False),
    ("institution_id", 2**64 - 1, False),
    ("institution_id", 2**64, False),
    ("institution_id", -LONG - 1, False),
    ("location_id", LONG, False),
    ("laboratory_id", 10**30, False),
    ("parent_locations", [1, LONG - 1], True),
    ("parent_locations", [1, LONG], False),
    ("parent_locations", [-LONG - 1], False),
    ("parent_locations", [2**64], False),
    ("device_id", 2**64 - 1, True),  # a keyword: any integer JSON holds exactly
    ("device_id", 2**64, False),
]


@pytest.mark.parametrize(("field", "value", "ok"), INTEGERS, ids=lambda v: str(v)[:24])
def test_cdx_integers_at_the_type_limits(client, tokens, es, settings, field, value, ok):
    uuid = f"int-{INTEGERS.index((field, value, ok))}"
    single = post(client, tokens, {"uuid": uuid, field: value})
    if ok:
        assert single.status_code == 201, single.json
        assert stored(client, tokens, uuid)[field] == value
        return
    assert field in field_errors(single)
    batch = post(client, tokens, [{"uuid": f"{uuid}-ok"}, {"uuid": uuid, field: value}])
    assert list(batch_errors(batch)) == [1] and field in batch_errors(batch)[1]
    assert stored(client, tokens, uuid) is None and stored(client, tokens, f"{uuid}-ok") is not None
    # Refused before anything was written for it: not even its uuid's claim.
    claims = EventStore(es, settings.index_prefix).claims_index(CDX)
    assert not es.options(ignore_status=404).exists(index=claims, id=uuid)


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [
        ("session_id", LONG - 1, True),
        ("session_id", LONG, False),
        ("session_id", 2**64, False),
        ("tag_ids", [LONG], False),
        ("tag_ids", f"3,{LONG}", False),
        ("tag_ids", [2**64], False),
    ],
    ids=lambda v: str(v)[:24],
)
def test_roundware_integers_at_the_type_limits(client, tokens, field, value, ok):
    body = {"session_id": 1, "event_type": "limits", field: value}
    response = post(client, tokens, body, path="/api/2/events/")
    if ok:
        assert response.status_code == 201, response.json
    else:
        assert field in field_errors(response)
        batch = post(client, tokens, [{"session_id": 1, "event_type": "ok"}, body], path="/api/2/events/")
        assert list(batch_errors(batch)) == [1] and field in batch_errors(batch)[1]


# -- ids and stored objects that Elasticsearch or the encoder would refuse -------------------------


@pytest.mark.parametrize("uuid", ["", "a" * 513, "€" * 171], ids=["empty", "513 bytes", "513 bytes of €"])
def test_uuids_elasticsearch_cannot_hold_are_field_errors(client, tokens, uuid):
    """A longer `_id` would make Elasticsearch refuse the whole `_bulk`, other events with it."""
    assert "uuid" in field_errors(post(client, tokens, {"uuid": uuid}))
    batch = post(client, tokens, [{"uuid": "beside-a-long-id"}, {"uuid": uuid}])
    assert list(batch_errors(batch)) == [1] and "uuid" in batch_errors(batch)[1]
    assert stored(client, tokens, "beside-a-long-id") is not None
    longest = "€" * 170 + "ab"  # 512 bytes
    assert post(client, tokens, {"uuid": longest}).status_code == 201


def deep(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize("field", ["custom_fields", "pii"])
def test_stored_objects_nested_too_deep_are_field_errors(client, tokens, field):
    assert post(client, tokens, {"uuid": f"deep-{field}", field: deep(200)}).status_code == 201
    batch = post(
        client, tokens, [{"uuid": f"deeper-{field}", field: deep(201)}, {"uuid": f"shallow-{field}"}]
    )
    assert list(batch_errors(batch)) == [0] and field in batch_errors(batch)[0]
    assert field in field_errors(post(client, tokens, {"uuid": f"deepest-{field}", field: deep(900)}))
    assert client.get("/events?page_size=5", headers=auth(tokens["query"])).status_code == 200


# -- empty and huge batches -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("[]", JSON),
        ("", NDJSON),
        ("\n\n  \n", NDJSON),
        ('{"sent_at": "2024-01-01T00:00:00Z", "events": []}', JSON),
    ],
    ids=["json array", "ndjson", "blank ndjson lines", "envelope"],
)
def test_empty_batches_are_a_400(client, tokens, body, content_type):
    response = post(client, tokens, body, content_type=content_type)
    assert response.status_code == 400 and response.json["error"]["code"] == "validation_error"


def test_a_batch_just_under_the_body_limit_is_stored_whole(app, client, tokens, es, settings):
    limit = settings.max_body_bytes
    # No time of their own: each uuid is claimed too.
    line = json.dumps({"uuid": "huge-000000", "error_description": "x" * 900, "age": 1}) + "\n"
    count = limit // len(line)
    lines = [line.replace("000000", f"{n:06d}") for n in range(count)]
    body = "".join(lines)
    body += " " * (limit - len(body))  # exactly the limit
    assert len(body.encode()) == limit
    response = post(client, tokens, body, query="", content_type=NDJSON)
    assert response.status_code == 201, response.json["errors"][:3]
    assert response.json["stored"] == count
    es.indices.refresh(index=f"{settings.index_prefix}cdx*")
    assert es.count(index=f"{settings.index_prefix}cdx*")["count"] == count
    assert post(client, tokens, body + " ", query="", content_type=NDJSON).status_code == 413


@pytest.mark.parametrize("field", ["error_code", "age"])
@pytest.mark.parametrize("descending", [False, True], ids=["asc", "desc"])
def test_an_integer_at_its_limit_sorts_before_the_missing_ones(client, tokens, field, descending):
    """Missing values sort last either way, even past an event holding the type's extreme."""
    low = 0 if field == "age" else -(2**31)
    # The extremes' uuids sort after the missing ones': a tie with them would show.
    values = {"i-y": 2**31 - 1, "i-b": None, "i-z": low, "i-d": 7, "i-e": None}
    events = [{"uuid": uuid, field: value} for uuid, value in values.items()]
    events = [{key: value for key, value in event.items() if value is not None} for event in events]
    assert post(client, tokens, events).status_code == 201
    order = f"-{field}" if descending else field
    answer = client.get(f"/events?order_by={order}&page_size=10", headers=auth(tokens["query"])).json
    present = sorted((v, u) for u, v in values.items() if v is not None)
    expected = [u for _, u in (present[::-1] if descending else present)] + ["i-b", "i-e"]
    assert [event["uuid"] for event in answer["events"]] == expected
