"""A third dataset is its declaration: endpoints, OpenAPI entries and index template follow.

The dataset here is declared in the test and never shipped. Nothing else is written for it:
the app is given it, and everything a client can do with the shipped datasets works on it,
on a real node.
"""

from __future__ import annotations

import json
import uuid as uuids

import pytest

from service import create_app, templates
from service.datasets import CDX, ROUNDWARE
from service.engine.fields import Date, Integer, Keyword
from service.engine.filters import Bound, Match
from service.engine.groups import Terms
from service.engine.registry import Dataset, Field, date_groups
from tests.conftest import auth


def prepare(event, now, new_id):
    return {"id": event.get("id") or str(uuids.uuid4())}


SCRATCH = Dataset(
    name="scratch",
    doc="Sensor readings, declared by a test.",
    id_field="id",
    tiebreak_field="id",
    time_field="taken_at",
    default_order=("-taken_at",),
    prepare=prepare,
    partition_fields=("taken_at",),
    fields=(
        Field("id", Keyword(), (Match("id"),)),
        Field(
            "taken_at",
            Date(),
            (Bound("taken_since", op="gte"), Bound("taken_until", op="lte")),
            date_groups("taken_at"),
            required=True,
        ),
        Field("sensor", Keyword(), (Match("sensor"),), (Terms("sensor"),), required=True),
        Field("reading", Integer(), (Match("reading"),), stats=True),
    ),
)
BASE = "/scratch/events"


@pytest.fixture(scope="module")
def scratch_client(settings, es):
    app = create_app(settings, es=None, datasets=(CDX, ROUNDWARE, SCRATCH))
    return app.test_client()


def test_its_endpoints_are_in_the_openapi_document(scratch_client):
    spec = scratch_client.get("/openapi.json").json
    paths = spec["paths"]
    assert {"post", "get"} <= set(paths[BASE])
    assert {f"{BASE}/query", f"{BASE}/export", f"{BASE}/{{event_id}}"} <= set(paths)
    parameters = {p["name"] for p in paths[BASE]["get"]["parameters"]}
    assert {"sensor", "reading", "taken_since", "taken_until", "group_by", "stats"} <= parameters


def test_its_template_is_generated_and_installed(es, settings, scratch_client):
    template = templates.index_template(SCRATCH, settings.index_prefix)
    assert template["index_patterns"] == [f"{settings.index_prefix}scratch*"]
    assert template["template"]["mappings"]["properties"]["sensor"]["type"] == "keyword"
    assert es.indices.get_index_template(name=templates.template_name(SCRATCH, settings.index_prefix))


def test_ingest_query_group_export_and_get_by_id(scratch_client, tokens):
    readings = [
        {"id": "r1", "taken_at": "2024-05-01T10:00:00Z", "sensor": "north", "reading": 3},
        {"id": "r2", "taken_at": "2024-05-01T11:00:00Z", "sensor": "north", "reading": 5},
        {"id": "r3", "taken_at": "2024-05-02T09:00:00Z", "sensor": "south", "reading": 7},
    ]
    posted = scratch_client.post(f"{BASE}?refresh=wait_for", json=readings, headers=auth(tokens["ingest"]))
    assert posted.status_code == 201 and posted.json["stored"] == 3
    again = scratch_client.post(f"{BASE}?refresh=wait_for", json=readings[:1], headers=auth(tokens["ingest"]))
    assert again.status_code == 200 and again.json["duplicates"] == 1

    headers = auth(tokens["query"])
    listed = scratch_client.get(f"{BASE}?sensor=north&order_by=reading", headers=headers).json
    assert listed["total_count"] == 2 and [e["id"] for e in listed["events"]] == ["r1", "r2"]

    grouped = scratch_client.get(f"{BASE}?group_by=sensor,day(taken_at)&stats=reading", headers=headers).json
    assert [(row["sensor"], row["taken_at"], row["count"]) for row in grouped["events"]] == [
        ("north", "2024-05-01", 2),
        ("south", "2024-05-02", 1),
    ]
    assert grouped["events"][0]["stats"]["reading"]["sum"] == 8

    body = {"group_by": ["sensor"], "reading": [5, 7]}
    queried = scratch_client.post(f"{BASE}/query", json=body, headers=headers).json
    assert [(row["sensor"], row["count"]) for row in queried["events"]] == [("north", 1), ("south", 1)]

    assert scratch_client.get(f"{BASE}/r3", headers=headers).json["reading"] == 7
    assert scratch_client.get(f"{BASE}/nope", headers=headers).status_code == 404

    exported = scratch_client.get(f"{BASE}/export?sensor=south", headers=headers)
    assert [json.loads(line)["id"] for line in exported.data.splitlines()] == ["r3"]

    refused = scratch_client.get(f"{BASE}?gender=male", headers=headers)
    assert refused.status_code == 400 and "gender" in refused.json["error"]["message"]
