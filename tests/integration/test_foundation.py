"""The foundation on a real node: templates, authentication, error shape, docs, CLI."""

from __future__ import annotations

import json

from service.datasets import DATASETS
from service.templates import index_template
from tests.conftest import auth


def test_templates_installed_with_registry_mappings(app, es, settings):
    for dataset in DATASETS.values():
        name = f"{settings.index_prefix}{dataset.name}"
        found = es.indices.get_index_template(name=name)["index_templates"][0]["index_template"]
        expected = index_template(dataset, settings.index_prefix)["template"]["mappings"]
        assert found["template"]["mappings"]["dynamic"] == "strict"
        assert found["index_patterns"] == [f"{settings.index_prefix}{dataset.name}*"]
        # Any monthly index the first write makes gets exactly these mappings.
        simulated = es.indices.simulate_index_template(name=f"{settings.index_prefix}{dataset.name}-2031.07")
        assert simulated["template"]["mappings"]["dynamic"] == "strict"
        assert set(simulated["template"]["mappings"]["properties"]) == set(expected["properties"])
    cdx = es.indices.simulate_index_template(name=f"{settings.index_prefix}cdx-2031.07")
    properties = cdx["template"]["mappings"]["properties"]
    assert properties["results"]["type"] == "nested"
    assert properties["start_time"]["type"] == "date"
    assert properties["pii"]["enabled"] is False


def test_template_install_is_idempotent(runner):
    for _ in range(2):
        result = runner.invoke(args=["templates", "install"])
        assert result.exit_code == 0, result.output
        assert "installed" in result.output


def test_missing_token_is_401(client):
    response = client.get("/events")
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"


def test_unknown_token_is_401(client):
    response = client.get("/events", headers=auth("not-a-token"))
    assert response.status_code == 401


def test_bearer_and_token_schemes_both_work(client, tokens):
    for scheme in ("token", "Bearer"):
        response = client.get("/events?page_size=0", headers=auth(tokens["query"], scheme))
        assert response.status_code == 200, response.json


def test_wrong_scope_is_403(client, tokens):
    response = client.get("/events", headers=auth(tokens["ingest"]))
    assert response.status_code == 403
    assert "query" in response.json["error"]["message"]
    response = client.post("/events", json={"gender": "f"}, headers=auth(tokens["query"]))
    assert response.status_code == 403


def test_unknown_route_is_json_404(client):
    response = client.get("/no/such/route")
    assert response.status_code == 404
    assert response.mimetype == "application/json"
    assert response.json["error"]["code"] == "not_found"


def test_wrong_method_is_json_405(client):
    response = client.delete("/events")
    assert response.status_code == 405
    assert response.json["error"]["code"] == "method_not_allowed"


def test_body_too_large_is_413(app, tokens):
    client = app.test_client()
    limit = app.config["SETTINGS"].max_body_bytes
    response = client.post(
        "/events",
        data=b"[" + b" " * limit + b"]",
        content_type="application/json",
        headers=auth(tokens["ingest"]),
    )
    assert response.status_code == 413
    assert response.json["error"]["code"] == "payload_too_large"


def test_unsupported_content_type_is_415(client, tokens):
    response = client.post(
        "/events", data="gender=f", content_type="text/plain", headers=auth(tokens["ingest"])
    )
    assert response.status_code == 415
    assert response.json["error"]["code"] == "unsupported_media_type"


def test_health_and_ready(client):
    assert client.get("/health").json == {"status": "ok"}
    response = client.get("/ready")
    assert response.status_code == 200, response.json
    assert response.json["templates"] == "installed"


def test_openapi_and_docs_page_need_no_token(client):
    spec = client.get("/openapi.json")
    assert spec.status_code == 200
    assert "/events" in spec.json["paths"]
    page = client.get("/docs")  # Swagger UI renders the operations (tests/browser checks them)
    assert page.status_code == 200
    assert b"/openapi.json" in page.data and b"swagger-ui-bundle.js" in page.data


def test_token_cli_create_list_revoke(runner, client):
    created = runner.invoke(args=["tokens", "create", "--name", "cli-test", "--scopes", "query"])
    assert created.exit_code == 0, created.output
    token = json.loads(created.output)
    assert client.get("/events?page_size=0", headers=auth(token["secret"])).status_code == 200
    listed = runner.invoke(args=["tokens", "list"])
    assert token["id"] in listed.output
    assert token["secret"] not in listed.output
    revoked = runner.invoke(args=["tokens", "revoke", token["id"]])
    assert revoked.exit_code == 0, revoked.output
    assert client.get("/events?page_size=0", headers=auth(token["secret"])).status_code == 401


def test_tokens_are_stored_hashed(es, settings, tokens):
    stored = es.search(index=f"{settings.index_prefix}tokens", size=100)["hits"]["hits"]
    text = json.dumps([hit["_source"] for hit in stored])
    for secret in tokens.values():
        assert secret not in text


def test_token_with_bad_scope_is_refused_by_cli(runner):
    result = runner.invoke(args=["tokens", "create", "--name", "x", "--scopes", "admin"])
    assert result.exit_code != 0
