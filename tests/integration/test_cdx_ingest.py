"""CDX ingest on a real node: bodies, validation, batches, duplicates, refresh (API.md section 3)."""

from __future__ import annotations

import gzip
import json

import pytest

from tests.conftest import auth


@pytest.fixture(autouse=True)
def _empty(fresh_cdx):
    pass


def post(client, tokens, body, query="?refresh=wait_for", token="ingest", **kwargs):
    if not isinstance(body, bytes | str):
        kwargs.setdefault("json", body)
        return client.post(f"/events{query}", headers=auth(tokens[token]), **kwargs)
    return client.post(
        f"/events{query}", data=body, headers={**auth(tokens[token]), **kwargs.pop("headers", {})}, **kwargs
    )


def count(client, tokens, query="") -> int:
    return client.get(f"/events?page_size=0&{query}", headers=auth(tokens["query"])).json["total_count"]


def test_single_event_gets_uuid_and_created_at(client, tokens):
    response = post(client, tokens, {"gender": "female", "age": 31})
    assert response.status_code == 201
    assert response.json["stored"] == 1 and response.json["duplicates"] == 0
    (uuid,) = response.json["ids"]
    event = client.get(f"/events/{uuid}", headers=auth(tokens["query"])).json
    assert event["uuid"] == uuid and event["gender"] == "female"
    assert event["created_at"].startswith("20")


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"colour": "red"}, "colour"),
        ({"age": -1}, "age"),
        ({"age": "5"}, "age"),
        ({"age": 5.5}, "age"),
        ({"institution_id": True}, "institution_id"),
        ({"device_id": 1.5}, "device_id"),
        ({"start_time": "yesterday"}, "start_time"),
        ({"start_time": "2020-13-45"}, "start_time"),
        ({"parent_locations": ["a"]}, "parent_locations"),
        ({"results": [{"condition": "mtb", "extra": 1}]}, "results"),
        ({"results": {"condition": "mtb"}}, "results"),
        ({"custom_fields": [1, 2]}, "custom_fields"),
    ],
)
def test_invalid_single_event_is_400_naming_the_field(client, tokens, event, field):
    response = post(client, tokens, event)
    assert response.status_code == 400, response.json
    assert response.json["error"]["code"] == "validation_error"
    assert field in response.json["error"]["details"]["fields"]
    assert count(client, tokens) == 0


def test_batch_stores_valid_events_and_reports_invalid_ones(client, tokens):
    batch = [{"uuid": "a"}, {"age": "old"}, {"uuid": "b"}, "not an object"]
    response = post(client, tokens, batch)
    assert response.status_code == 207
    body = response.json
    assert (body["stored"], body["duplicates"], body["rejected"]) == (2, 0, 2)
    assert body["ids"] == ["a", None, "b", None]
    assert [error["index"] for error in body["errors"]] == [1, 3]
    assert "age" in body["errors"][0]["errors"]
    assert count(client, tokens) == 2


def test_batch_with_nothing_storable_is_400(client, tokens):
    response = post(client, tokens, [{"age": -1}, {"colour": 1}])
    assert response.status_code == 400
    error = response.json["error"]
    assert error["code"] == "validation_error"
    assert error["details"]["rejected"] == 2
    assert [item["index"] for item in error["details"]["errors"]] == [0, 1]


def test_ndjson_with_a_broken_line(client, tokens):
    body = '{"uuid": "n1"}\n{"uuid": \n\n{"uuid": "n3"}\n'
    response = post(client, tokens, body, content_type="application/x-ndjson")
    assert response.status_code == 207
    assert response.json["stored"] == 2
    assert response.json["errors"][0]["index"] == 1
    assert "_line" in response.json["errors"][0]["errors"]


@pytest.mark.parametrize("content_type", ["application/json", "application/x-ndjson"])
def test_gzip_bodies(client, tokens, content_type):
    events = [{"uuid": "g1"}, {"uuid": "g2"}]
    text = json.dumps(events) if content_type == "application/json" else "\n".join(map(json.dumps, events))
    response = post(
        client,
        tokens,
        gzip.compress(text.encode()),
        content_type=content_type,
        headers={"Content-Encoding": "gzip"},
    )
    assert response.status_code == 201, response.json
    assert count(client, tokens, "uuid=g1,g2") == 2


def test_gzip_that_inflates_past_the_limit_is_413(app, client, tokens):
    limit = app.config["SETTINGS"].max_body_bytes
    bomb = gzip.compress(b"[" + b" " * (limit + 10) + b"]")
    response = post(
        client, tokens, bomb, content_type="application/json", headers={"Content-Encoding": "gzip"}
    )
    assert response.status_code == 413


def test_broken_gzip_is_400(client, tokens):
    response = post(
        client, tokens, b"not gzip", content_type="application/json", headers={"Content-Encoding": "gzip"}
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("body", "code"),
    [(b"{not json", "invalid_json"), (b"[]", "validation_error"), (b'"text"', "validation_error")],
)
def test_malformed_bodies_are_400(client, tokens, body, code):
    response = post(client, tokens, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"]["code"] == code


def test_repeated_uuid_is_stored_once_and_reported_as_duplicate(client, tokens):
    first = post(client, tokens, {"uuid": "dup", "gender": "f"})
    assert first.status_code == 201
    again = post(client, tokens, {"uuid": "dup", "gender": "f"})
    assert again.status_code == 200
    assert (again.json["stored"], again.json["duplicates"]) == (0, 1)
    within = post(client, tokens, [{"uuid": "dup2"}, {"uuid": "dup2"}, {"uuid": "dup"}])
    assert within.status_code == 201
    assert (within.json["stored"], within.json["duplicates"]) == (1, 2)
    assert count(client, tokens, "uuid=dup") == 1
    assert count(client, tokens, "uuid=dup2") == 1


def test_refresh_wait_for_makes_events_visible(client, tokens):
    post(client, tokens, [{"uuid": f"r{i}"} for i in range(3)], query="?refresh=wait_for")
    assert count(client, tokens) == 3
    assert post(client, tokens, {"uuid": "t"}, query="?refresh=true").status_code == 201
    assert count(client, tokens) == 4
    assert post(client, tokens, {}, query="?refresh=sometimes").status_code == 400


def test_an_unknown_query_parameter_is_400_and_nothing_is_stored(client, tokens):
    """A typo such as `refesh` would otherwise be dropped, and the client not wait."""
    response = post(client, tokens, {"uuid": "typo"}, query="?refesh=wait_for")
    assert response.status_code == 400
    error = response.json["error"]
    assert "refesh" in error["message"] and error["details"]["valid"] == ["refresh", "sent_at"]
    assert count(client, tokens, "uuid=typo") == 0
    roundware = client.post(
        "/api/2/events/?refesh=true",
        json={"session_id": 1, "event_type": "x"},
        headers=auth(tokens["ingest"]),
    )
    assert roundware.status_code == 400 and "refesh" in roundware.json["error"]["message"]
    by_id = client.get("/events/typo?fields=uuid", headers=auth(tokens["query"]))
    assert by_id.status_code == 400 and "fields" in by_id.json["error"]["message"]


def test_default_does_not_wait_but_event_is_stored(es, settings, client, tokens):
    response = post(client, tokens, {"uuid": "later"}, query="")
    assert response.status_code == 201
    es.indices.refresh(index=f"{settings.index_prefix}cdx*")
    assert count(client, tokens, "uuid=later") == 1


def test_restricted_token_ingests_only_its_institutions(client, tokens):
    assert post(client, tokens, {"institution_id": 1}, token="inst1").status_code == 201
    response = post(client, tokens, [{"institution_id": 1}, {"institution_id": 2}], token="inst1")
    assert response.status_code == 403
    assert response.json["error"]["details"]["indexes"] == [1]
    assert post(client, tokens, {"gender": "f"}, token="inst1").status_code == 403
    assert count(client, tokens) == 1


def test_nulls_are_accepted_and_returned(client, tokens):
    event = {"uuid": "nulls", "gender": None, "custom_fields": {"a": None}}
    assert post(client, tokens, event).status_code == 201
    stored = client.get("/events/nulls", headers=auth(tokens["query"])).json
    assert stored["gender"] is None and stored["custom_fields"] == {"a": None}
    assert count(client, tokens, "gender=null") == 1


def test_clock_skew_is_corrected_with_sent_at(client, tokens):
    from datetime import UTC, datetime, timedelta

    from service.datasets.fields import from_iso

    # The device's clock is two hours behind: what it calls 10:00 happened at about 12:00 + (now - sent).
    sent_at = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    body = {"sent_at": sent_at, "events": [{"uuid": "skew", "start_time": "2024-05-01T10:00:00Z"}]}
    response = post(client, tokens, body)
    assert response.status_code == 201, response.json
    event = client.get("/events/skew", headers=auth(tokens["query"])).json
    correction = event["clock_correction"]
    assert correction["original"] == {"start_time": "2024-05-01T10:00:00Z"}
    assert abs(correction["offset_ms"] - 2 * 3600 * 1000) < 60_000
    shift = from_iso(event["start_time"]) - from_iso("2024-05-01T10:00:00Z")
    assert shift == timedelta(milliseconds=correction["offset_ms"])
    assert count(client, tokens, "since=2024-05-01T11:59:00Z") == 1
    as_param = post(
        client,
        tokens,
        {"uuid": "skew2", "start_time": "2024-05-01T10:00:00Z"},
        query=f"?refresh=wait_for&sent_at={sent_at.replace('+', '%2B')}",
    )
    assert as_param.status_code == 201
    bad = post(client, tokens, {"sent_at": "yesterday", "events": [{"uuid": "x"}]})
    assert bad.status_code == 400 and "sent_at" in str(bad.json["error"])


def test_large_batches_are_stored_in_slices_each_reported(client, tokens, monkeypatch):
    from elastic_transport import ConnectionError as TransportConnectionError

    from service import store
    from service.pipeline import BULK_EVENTS

    events = [{"uuid": f"slice-{n}"} for n in range(BULK_EVENTS + 5)]
    assert post(client, tokens, events).json["stored"] == BULK_EVENTS + 5

    # The second slice's `_bulk` fails as a whole: the first slice is stored and said so.
    # (Events with a time of their own, so that every `_bulk` is a slice's, with no claims.)
    calls, send = [], store.bulk_items

    def second_fails(es, operations, refresh=False):
        calls.append(len(operations))
        if len(calls) == 2:
            raise TransportConnectionError("node gone")
        return send(es, operations, refresh)

    monkeypatch.setattr(store, "bulk_items", second_fails)
    events = [{"uuid": f"half-{n}", "start_time": "2024-05-01"} for n in range(BULK_EVENTS + 5)]
    response = post(client, tokens, events)
    assert calls == [BULK_EVENTS, 5]
    assert response.status_code == 207
    body = response.json
    assert (body["stored"], body["rejected"]) == (BULK_EVENTS, 5)
    assert [error["index"] for error in body["errors"]] == list(range(BULK_EVENTS, BULK_EVENTS + 5))
    assert {error["status"] for error in body["errors"]} == {"failed"}
    assert count(client, tokens, f"uuid=half-0,half-{BULK_EVENTS + 4}") == 1

    # When the first slice fails nothing is stored: the request's answer is the 503.
    calls.clear()
    calls.append(0)  # so the next call, the first slice's, is the second
    response = post(
        client, tokens, [{"uuid": f"none-{n}", "start_time": "2024-05-01"} for n in range(BULK_EVENTS + 5)]
    )
    assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0


def test_repeated_grouped_query_sees_new_events(client, tokens):
    """Grouped rows are remembered per worker, but keyed by Elasticsearch's answer: never stale."""
    query = {"group_by": ["gender", {"age": [[0, 18], [18, None]]}]}

    def rows():
        response = client.post("/events/query", json=query, headers=auth(tokens["query"]))
        assert response.status_code == 200, response.json
        return response.json["events"]

    post(client, tokens, [{"gender": "female", "age": 31}, {"gender": "male", "age": 4}])
    first = rows()
    assert (
        rows()
        == first
        == [
            {"gender": "female", "age": [18, None], "count": 1},
            {"gender": "male", "age": [0, 18], "count": 1},
        ]
    )
    post(client, tokens, {"gender": "female", "age": 40})
    assert rows()[0] == {"gender": "female", "age": [18, None], "count": 2}
