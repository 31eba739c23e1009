"""Conditional GETs: query answers carry an ETag of their bytes; the same answer is a 304
without a body, a changed one a 200 with a new tag. Ingest and errors carry none."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import auth


@pytest.fixture
def tag(client, tokens):
    tag = f"etag-{uuid.uuid4().hex[:8]}"
    events = [{"system_user": tag, "gender": gender} for gender in ("female", "female", "male")]
    response = client.post("/events?refresh=wait_for", json=events, headers=auth(tokens["ingest"]))
    assert response.status_code == 201, response.json
    return tag


def test_the_same_answer_is_a_304_and_a_changed_one_a_200_with_a_new_etag(client, tokens, tag):
    query = f"/events?system_user={tag}&group_by=gender"
    first = client.get(query, headers=auth(tokens["query"]))
    assert first.status_code == 200
    etag = first.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")  # strong
    assert first.headers["Cache-Control"] == "private, no-cache"
    assert "Authorization" in first.headers["Vary"]

    again = client.get(query, headers={**auth(tokens["query"]), "If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["ETag"] == etag

    other = client.get(query, headers={**auth(tokens["query"]), "If-None-Match": '"not-this-one"'})
    assert other.status_code == 200 and other.data == first.data

    more = client.post(
        "/events?refresh=wait_for",
        json={"system_user": tag, "gender": "male"},
        headers=auth(tokens["ingest"]),
    )
    assert more.status_code == 201
    changed = client.get(query, headers={**auth(tokens["query"]), "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert [row["count"] for row in changed.json["events"]] == [2, 2]


def test_head_and_roundware_lists_are_conditional_too(client, tokens, tag):
    query = f"/events?system_user={tag}&page_size=0"
    etag = client.get(query, headers=auth(tokens["query"])).headers["ETag"]
    head = client.head(query, headers={**auth(tokens["query"]), "If-None-Match": etag})
    assert head.status_code == 304
    listed = client.get("/api/2/events/?page_size=1", headers=auth(tokens["query"]))
    assert listed.status_code == 200 and listed.headers.get("ETag")
    repeat = client.get(
        "/api/2/events/?page_size=1",
        headers={**auth(tokens["query"]), "If-None-Match": listed.headers["ETag"]},
    )
    assert repeat.status_code == 304
    assert repeat.headers["X-Total-Count"] == listed.headers["X-Total-Count"]


def test_only_successful_get_query_answers_carry_an_etag(client, tokens, tag):
    posted = client.post("/events", json={"system_user": tag}, headers=auth(tokens["ingest"]))
    assert posted.status_code == 201 and "ETag" not in posted.headers
    queried = client.post("/events/query", json={"system_user": tag}, headers=auth(tokens["query"]))
    assert queried.status_code == 200 and "ETag" not in queried.headers
    refused = client.get("/events?time_zone=Mars/Base", headers=auth(tokens["query"]))
    assert refused.status_code == 400 and "ETag" not in refused.headers
    unauthorised = client.get("/events")
    assert unauthorised.status_code == 401 and "ETag" not in unauthorised.headers
    exported = client.get(f"/events/export?system_user={tag}", headers=auth(tokens["query"]))
    assert exported.status_code == 200 and "ETag" not in exported.headers
    exported.close()
