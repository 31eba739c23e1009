"""`flask import`, `export` and `retention` against a real node."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from service.cli import events as cli_events
from service.datasets import CDX
from service.store import EventStore
from tests.conftest import auth, empty_index

EVENTS = [
    {
        "uuid": "x1",
        "start_time": "2020-03-02T10:00:00Z",
        "age": 31,
        "gender": "female",
        "device_id": 17,
        "institution_id": 1,
        "location_id": 111,
        "parent_locations": [1, 11],
        "results": [{"condition": "mtb", "result": "positive"}],
        "custom_fields": {"batch": [1, 2], "note": "a,b"},
    },
    {"uuid": "x2", "start_time": "2021-01-10T00:30:00+02:00", "device_id": "dev-a", "institution_id": 2},
    {"uuid": "x3", "gender": "male", "institution_id": 1, "assay_name": "GX1"},
]


def count(client, tokens, query="") -> int:
    return client.get(f"/events?page_size=0&{query}", headers=auth(tokens["query"])).json["total_count"]


def test_import_reports_broken_lines_and_stores_the_rest(
    runner, client, tokens, fresh_cdx, tmp_path, monkeypatch
):
    path = tmp_path / "events.ndjson"
    path.write_text(
        '{"uuid": "i1", "gender": "female"}\n'
        '{"uuid": "i2", \n'  # not JSON
        "\n"
        '{"uuid": "i3", "age": -1}\n'  # invalid
        '{"uuid": "i4", "start_time": "2019-05-01T00:00:00Z"}\n'
        '{"uuid": "i1", "gender": "female"}\n'  # a repeat
    )
    result = runner.invoke(args=["import", "cdx", str(path), "--batch-size", "2"])
    assert result.exit_code == 1, result.output
    assert "stored: 2, duplicates: 1, invalid: 2, failed: 0" in result.stdout
    assert "line 2: invalid" in result.stderr and "_line" in result.stderr
    assert "line 4: invalid" in result.stderr and "age" in result.stderr
    assert count(client, tokens) == 2
    assert count(client, tokens, "uuid=i1,i4") == 2

    monkeypatch.setattr(cli_events, "MAX_SHOWN_ERRORS", 1)
    again = runner.invoke(args=["import", "cdx", str(path)])
    assert "stored: 0, duplicates: 3, invalid: 2, failed: 0" in again.stdout
    shown = [text for text in again.stderr.splitlines() if text.startswith("line ")]
    assert len(shown) == 1 and "... and 1 more" in again.stderr


def test_import_csv(runner, client, tokens, fresh_cdx, tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(
        "uuid,age,gender,device_id,parent_locations,results\n"
        'c1,31,female,dev-a,"[1, 12]","[{""condition"": ""mtb"", ""result"": ""positive""}]"\n'
        "c2,old,male,17,,\n"
        "c3,,,17,,\n"
    )
    result = runner.invoke(args=["import", "cdx", str(path)])
    assert result.exit_code == 1
    assert "stored: 2, duplicates: 0, invalid: 1" in result.stdout
    assert "line 3: invalid" in result.stderr
    event = client.get("/events/c1", headers=auth(tokens["query"])).json
    assert event["age"] == 31 and event["parent_locations"] == [1, 12]
    assert event["results"] == [{"condition": "mtb", "result": "positive"}]
    assert client.get("/events/c3", headers=auth(tokens["query"])).json["device_id"] == 17


def exported(runner, tmp_path, name, *args) -> str:
    path = tmp_path / name
    result = runner.invoke(args=["export", "cdx", "--output", str(path), "--batch-size", "2", *args])
    assert result.exit_code == 0, result.output
    return path.read_text()


@pytest.mark.parametrize("file_format", ["ndjson", "csv"])
def test_export_round_trips_through_import(runner, client, tokens, es, settings, tmp_path, file_format):
    empty_index(es, settings, "cdx")
    response = client.post("/events?refresh=wait_for", json=EVENTS, headers=auth(tokens["ingest"]))
    assert response.status_code == 201
    first = exported(runner, tmp_path, f"first.{file_format}")
    assert len(first.strip().splitlines()) == len(EVENTS) + (file_format == "csv")

    empty_index(es, settings, "cdx")
    result = runner.invoke(args=["import", "cdx", str(tmp_path / f"first.{file_format}")])
    assert result.exit_code == 0, result.output
    assert f"stored: {len(EVENTS)}, duplicates: 0, invalid: 0" in result.stdout
    again = exported(runner, tmp_path, f"again.{file_format}")
    if file_format == "ndjson":
        assert [json.loads(line) for line in again.splitlines()] == [
            json.loads(x) for x in first.splitlines()
        ]
        posted = {event["uuid"]: event for event in EVENTS}
        for line in again.splitlines():
            event = json.loads(line)
            assert {k: v for k, v in event.items() if k != "created_at"} == posted[event["uuid"]]
    else:
        assert again == first


@pytest.mark.parametrize("file_format", ["ndjson", "csv"])
def test_clock_corrected_events_import_back_unchanged_into_their_month(
    runner, client, tokens, es, settings, tmp_path, file_format
):
    """A device's clock an hour behind moves its event across a month boundary; the export
    keeps the correction, and the import stores the very same document in the same month
    (README: `flask export`), where a retry of the original post still meets it."""
    empty_index(es, settings, "cdx")
    late = {"uuid": "late-1", "start_time": "2024-01-31T23:30:00Z", "age": 40}
    body = {"sent_at": "2024-01-31T23:40:00Z", "events": [late]}
    assert (
        client.post("/events?refresh=wait_for", json=body, headers=auth(tokens["ingest"])).status_code == 201
    )
    before = client.get("/events/late-1", headers=auth(tokens["query"])).json
    assert before["clock_correction"]["original"] == {"start_time": "2024-01-31T23:30:00Z"}
    assert before["start_time"] > "2024-02"  # corrected past the month's end (now is later)
    first = exported(runner, tmp_path, f"late.{file_format}")

    empty_index(es, settings, "cdx")
    result = runner.invoke(args=["import", "cdx", str(tmp_path / f"late.{file_format}")])
    assert result.exit_code == 0, result.output
    assert "stored: 1, duplicates: 0, invalid: 0" in result.stdout
    assert client.get("/events/late-1", headers=auth(tokens["query"])).json == before
    es.indices.refresh(index=f"{settings.index_prefix}cdx*")
    found = es.search(index=f"{settings.index_prefix}cdx*", query={"ids": {"values": ["late-1"]}})
    assert [hit["_index"] for hit in found["hits"]["hits"]] == [f"{settings.index_prefix}cdx-2024.01"]
    assert exported(runner, tmp_path, f"again.{file_format}") == first
    again = client.post("/events", json=body, headers=auth(tokens["ingest"]))
    assert again.status_code == 200 and again.json["duplicates"] == 1


def test_an_import_refuses_a_clock_correction_it_could_not_have_made(runner, fresh_cdx, tmp_path):
    correction = {
        "sent_at": "2024-01-31T23:40:00.000Z",
        "received_at": "2024-02-01T00:40:00.000Z",
        "offset_ms": 3_600_000,
        "original": {"start_time": "2024-01-31T23:30:00Z"},
    }
    lines = [
        {"uuid": "ok", "start_time": "2024-02-01T00:30:00.000Z", "clock_correction": correction},
        {"uuid": "edited", "start_time": "2024-02-01T00:31:00.000Z", "clock_correction": correction},
        {
            "uuid": "skewed",
            "start_time": "2024-02-01T00:30:00.000Z",
            "clock_correction": {**correction, "offset_ms": 1},
        },
        {"uuid": "bad-age", "age": -1, "clock_correction": {**correction, "original": {"uuid": "x"}}},
    ]
    path = tmp_path / "edited.ndjson"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = runner.invoke(args=["import", "cdx", str(path)])
    assert result.exit_code == 1
    assert "stored: 1, duplicates: 0, invalid: 3" in result.stdout
    assert (
        "line 2: invalid: {'clock_correction': ['start_time is not the original time plus offset_ms.']}"
        in result.stderr
    )
    assert (
        "line 3: invalid" in result.stderr and "offset_ms must be received_at minus sent_at" in result.stderr
    )
    assert (
        "line 4: invalid" in result.stderr
        and "original may only hold" in result.stderr
        and "age" in result.stderr
    )


def test_a_posted_clock_correction_is_still_refused(client, tokens, fresh_cdx):
    event = {"uuid": "p", "clock_correction": {"sent_at": "2024-01-01T00:00:00Z"}}
    response = client.post("/events", json=event, headers=auth(tokens["ingest"]))
    assert response.status_code == 400
    assert response.json["error"]["details"]["fields"] == {"clock_correction": ["Unknown field."]}


def test_export_applies_the_api_filters(runner, client, tokens, es, settings, tmp_path):
    empty_index(es, settings, "cdx")
    client.post("/events?refresh=wait_for", json=EVENTS, headers=auth(tokens["ingest"]))
    text = exported(runner, tmp_path, "f.ndjson", "--filter", "institution=1", "-f", "order_by=uuid")
    assert [json.loads(line)["uuid"] for line in text.splitlines()] == ["x1", "x3"]
    text = exported(runner, tmp_path, "g.ndjson", "-f", "gender=male", "-f", "gender=female")
    assert sorted(json.loads(line)["uuid"] for line in text.splitlines()) == ["x1", "x3"]
    bad = runner.invoke(args=["export", "cdx", "--filter", "colour=red"])
    assert bad.exit_code == 2 and "colour" in bad.output


@pytest.mark.parametrize(
    "given",
    [
        ["-f", "since=2020-01-01", "-f", "since=2021-01-01"],  # the first would be dropped
        ["-f", "stats=age"],  # the export writes events, not statistics
        ["-f", "min_count=5"],
        ["-f", "format=csv"],  # that is --format
    ],
)
def test_export_refuses_filters_it_would_ignore(runner, given):
    name = given[1].partition("=")[0]
    refused = runner.invoke(args=["export", "cdx", *given])
    assert refused.exit_code == 2 and name in refused.output, refused.output


def test_retention_deletes_only_old_months_and_only_with_apply(runner, client, tokens, es, settings):
    prefix = settings.index_prefix
    empty_index(es, settings, "cdx")
    old = [
        {"uuid": "old1", "start_time": "2019-01-15T00:00:00Z"},
        {"uuid": "old2", "start_time": "2019-02-10"},
    ]
    recent = {"uuid": "new", "start_time": datetime.now(UTC).isoformat()}
    client.post("/events?refresh=wait_for", json=[*old, recent], headers=auth(tokens["ingest"]))
    client.post(
        "/api/2/events/?refresh=wait_for",
        json={"session_id": 1, "event_type": "x"},
        headers=auth(tokens["ingest"]),
    )
    es.indices.create(index=f"{prefix}cdx-legacy")  # matched by the pattern, but not monthly
    this_month = f"{prefix}cdx-{datetime.now(UTC):%Y.%m}"
    everything = set(EventStore(es, prefix).indices(CDX))
    assert {f"{prefix}cdx-2019.01", f"{prefix}cdx-2019.02", this_month} <= everything

    dry = runner.invoke(args=["retention", "--older-than", "12m"])
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.splitlines() == [
        f"would delete {prefix}cdx-2019.01",
        f"would delete {prefix}cdx-2019.02",
    ]
    assert set(EventStore(es, prefix).indices(CDX)) == everything

    applied = runner.invoke(args=["retention", "--older-than", "12m", "--apply"])
    assert applied.exit_code == 0, applied.output
    assert applied.stdout.splitlines() == [f"deleted {prefix}cdx-2019.01", f"deleted {prefix}cdx-2019.02"]
    assert set(EventStore(es, prefix).indices(CDX)) == everything - {
        f"{prefix}cdx-2019.01",
        f"{prefix}cdx-2019.02",
    }
    assert count(client, tokens) == 1
    assert es.indices.exists(index=f"{prefix}tokens")
    assert es.count(index=f"{prefix}roundware*")["count"] >= 1

    assert runner.invoke(args=["retention", "--older-than", "soon"]).exit_code == 2
    es.indices.delete(index=f"{prefix}cdx-legacy")
