"""Security on a real node: secrets at rest, institution scoping through every endpoint, `pii`,
field names only from the registry, and scopes on every data endpoint of the OpenAPI document.
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from service import auth as auth_module
from tests.conftest import auth, empty_index

MARKER = "PII-SECRET-7f3a"
EVENTS = [
    {
        "uuid": f"s{i}",
        "institution_id": inst,
        "gender": gender,
        "age": 20 + i,
        "start_time": f"2021-01-0{i}",
        "results": [{"condition": "mtb", "result": "positive"}],
        "pii": {"name": f"{MARKER}-{i}"},
    }
    for i, (inst, gender) in enumerate([(1, "f"), (2, "m"), (2, "f"), (None, "x"), (1, "m"), (3, "f")], 1)
]
OWN = {"s1", "s5"}


@pytest.fixture(scope="module")
def stored(app, es, settings, tokens):
    empty_index(es, settings, "cdx")
    client = app.test_client()
    events = [{k: v for k, v in e.items() if v is not None} for e in EVENTS]
    response = client.post("/events?refresh=wait_for", json=events, headers=auth(tokens["full"]))
    assert response.status_code == 201, response.json
    assert MARKER not in response.text


def test_secrets_are_stored_only_as_sha256(es, settings, tokens):
    hits = es.search(index=f"{settings.index_prefix}tokens", size=1000)["hits"]["hits"]
    stored = {hit["_id"]: hit["_source"] for hit in hits}
    for secret in tokens.values():
        digest = hashlib.sha256(secret.encode()).hexdigest()
        assert stored[digest]["secret_hash"] == digest
    text = json.dumps(stored)
    assert not any(secret in text for secret in tokens.values())
    assert set().union(*(source for source in stored.values())) <= set(
        auth_module.TOKEN_MAPPING["properties"]
    )


def test_the_stored_hash_is_compared_in_constant_time(app, tokens, monkeypatch):
    calls = []
    real = auth_module.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth_module.hmac, "compare_digest", spy)
    store = auth_module.TokenStore(app.extensions["es"], app.extensions["tokens"].index, cache_seconds=0)
    assert store.authenticate(tokens["query"]) is not None
    digest = hashlib.sha256(tokens["query"].encode()).hexdigest()
    assert calls == [(digest, digest)]


def uuids(response) -> set[str]:
    assert response.status_code == 200, response.json
    return {event["uuid"] for event in response.json["events"]}


def test_restricted_token_sees_only_its_institution_everywhere(client, tokens, stored):
    mine = auth(tokens["inst1"])
    assert uuids(client.get("/events", headers=mine)) == OWN
    assert uuids(client.get("/events?institution=2,3,null", headers=mine)) == set()
    assert uuids(client.get("/events?institution=not(null)", headers=mine)) == OWN
    assert uuids(client.post("/events/query", json={"institution": [2, 3]}, headers=mine)) == set()
    assert uuids(client.post("/events/query", json={"gender": ["f", "m", "x"]}, headers=mine)) == OWN
    assert uuids(client.open("/events", method="GET", json={"uuid": ["s2", "s3"]}, headers=mine)) == set()
    for uuid in {e["uuid"] for e in EVENTS} - OWN:
        assert client.get(f"/events/{uuid}", headers=mine).status_code == 404, uuid
    for uuid in OWN:
        assert client.get(f"/events/{uuid}", headers=mine).status_code == 200, uuid
    for group in ("institution", "gender", "result", "year(start_time)"):
        response = client.get(f"/events?group_by={group}", headers=mine)
        assert response.json["total_count"] == 2, group
        assert sum(row["count"] for row in response.json["events"]) == 2, group
    rows = client.post("/events/query", json={"group_by": [{"age": [[0, 100]]}]}, headers=mine).json
    assert rows["events"] == [{"age": [0, 100], "count": 2}]


def test_a_cursor_from_an_unrestricted_query_replays_only_own_events(client, tokens, stored):
    everyone = client.get("/events?page_size=1&order_by=age", headers=auth(tokens["query"])).json
    assert everyone["total_count"] == len(EVENTS)
    cursor = everyone["next_cursor"]
    seen, pages = set(), 0
    while cursor and pages < 10:
        page = client.get(f"/events?page_size=1&order_by=age&cursor={cursor}", headers=auth(tokens["inst1"]))
        seen |= uuids(page)
        cursor, pages = page.json["next_cursor"], pages + 1
    assert seen == OWN - {"s1"}  # s1 (the youngest) was the unrestricted first page


def test_restricted_token_may_not_ingest_for_others_nor_use_roundware(client, tokens, stored):
    mine = auth(tokens["inst1"])
    foreign = client.post("/events", json=[{"institution_id": 1}, {"institution_id": 2}], headers=mine)
    assert foreign.status_code == 403 and foreign.json["error"]["details"] == {"indexes": [1]}
    assert client.post("/events", json={"gender": "f"}, headers=mine).status_code == 403
    for method, path in (("GET", "/api/2/events/"), ("GET", "/api/2/events/1/")):
        assert client.open(path, method=method, headers=mine).status_code == 403, path


def test_pii_appears_in_no_answer_not_even_errors(client, tokens, stored):
    headers = auth(tokens["full"])
    answers = [
        client.get(path, headers=headers)
        for path in (
            "/events?page_size=1000",
            "/events/s1",
            "/events?group_by=gender,result",
            f"/events?uuid=s1&gender={MARKER}",
            "/events?order_by=pii",
            "/events?group_by=pii",
            "/events?pii=x",
            "/events?pii.name=x",
        )
    ]
    answers.append(client.post("/events/query", json={"pii": {"name": MARKER}}, headers=headers))
    answers.append(client.post("/events", json={"uuid": "s1", "pii": {"name": MARKER}}, headers=headers))
    answers.append(client.post("/events", json={"age": -1, "pii": {"name": MARKER}}, headers=headers))
    answers.append(
        client.post("/events", json=[{"age": -1, "pii": {"n": MARKER}}, {"pii": 5}], headers=headers)
    )
    for response in answers:
        assert response.status_code < 500
        assert MARKER not in response.text, (response.request.path, response.text[:300])
    listed = client.get("/events?page_size=1000", headers=headers).json["events"]
    assert listed and all("pii" not in event and "derived" not in event for event in listed)


FOREIGN_NAMES = [
    "_id",
    "_source",
    "_score",
    "_doc",
    "script",
    "pii",
    "pii.name",
    "derived.x",
    "derived.admin_level_1",
    "custom_fields.x",
    "results.condition",
    "doc['age'].value",
    "age;drop",
    "created_at.keyword",
    "secret_hash",
    "-_id",
]


@pytest.mark.parametrize("name", FOREIGN_NAMES)
@pytest.mark.parametrize("path", ["/events", "/api/2/events/"])
def test_only_registry_names_order_and_group(client, tokens, path, name):
    headers = auth(tokens["full"])
    for parameter in ("order_by", "group_by"):
        response = client.get(path, query_string={parameter: name}, headers=headers)
        assert response.status_code == 400, (parameter, response.json)
        assert parameter in response.json["error"]["details"]["fields"]
    if path == "/events":
        for body in (
            {"order_by": [name]},
            {"group_by": [name]},
            {"group_by": {name: [[0, 1]]}},
            {"group_by": [{name: {"script": "1"}}]},
        ):
            response = client.post("/events/query", json=body, headers=headers)
            assert response.status_code == 400, (body, response.json)


HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def data_operations(app) -> list[tuple[str, str, str | None]]:
    """(method, path, required scope) for every operation of the OpenAPI document."""
    spec = app.test_client().get("/openapi.json").json
    adapter = app.url_map.bind("localhost")
    operations = []
    for template, methods in spec["paths"].items():
        path = re.sub(r"\{[^}]+\}", "1", template)
        for method, operation in methods.items():
            if method not in HTTP_METHODS:  # e.g. path-level "parameters"
                continue
            endpoint, _ = adapter.match(path, method=method.upper())
            scope = getattr(app.view_functions[endpoint], "required_scope", None)
            public = operation.get("security") == []
            assert public == (scope is None), (method, template)
            operations.append((method.upper(), path, scope))
    return operations


def test_every_data_endpoint_of_the_openapi_document_enforces_its_scope(app, client, tokens, stored):
    operations = data_operations(app)
    guarded = [op for op in operations if op[2]]
    assert {scope for _, _, scope in guarded} == {"ingest", "query"}
    assert len(guarded) >= 7
    for method, path, scope in guarded:
        other = "query" if scope == "ingest" else "ingest"
        body = {"json": {"session_id": 1, "event_type": "x"}} if method == "POST" else {}
        for headers, expected in (
            ({}, 401),
            (auth("not-a-token"), 401),
            ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
            (auth(tokens[other]), 403),
        ):
            response = client.open(path, method=method, headers=headers, **body)
            assert response.status_code == expected, (method, path, headers, response.json)
        response = client.open(path, method=method, headers=auth(tokens[scope]), **body)
        assert response.status_code not in (401, 403), (method, path, response.json)
