"""CORS: pages of the origins in CORS_ORIGINS may call the API (preflight answered, the token
header allowed, the paging and caching headers readable); other origins get no CORS headers,
and with the default (none) no origin does."""

from __future__ import annotations

from dataclasses import replace

import pytest

from service import create_app
from service.cors import origins
from tests.conftest import auth

DASHBOARD = "https://dash.example.org"
EXPOSED = {"x-total-count", "x-next-cursor", "x-request-id", "etag"}


@pytest.fixture(scope="module")
def cors_client(settings, es):
    app = create_app(replace(settings, cors_origins=f"{DASHBOARD}, http://127.0.0.1:3000/"))
    return app.test_client()


def names(header: str | None) -> set[str]:
    return {name.strip().lower() for name in (header or "").split(",") if name.strip()}


def test_an_allowed_origin_may_read_answers_and_their_headers(cors_client, tokens):
    response = cors_client.get(
        "/api/2/events/?page_size=1", headers={**auth(tokens["query"]), "Origin": DASHBOARD}
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == DASHBOARD
    assert names(response.headers["Access-Control-Expose-Headers"]) >= EXPOSED
    assert response.headers.getlist("Vary") == ["Authorization, Origin"]  # one line, both names
    assert "Access-Control-Allow-Credentials" not in response.headers  # tokens, not cookies
    # Errors too, so the page can show why.
    refused = cors_client.get("/events", headers={"Origin": DASHBOARD})
    assert refused.status_code == 401
    assert refused.headers["Access-Control-Allow-Origin"] == DASHBOARD


def test_the_preflight_allows_the_token_header(cors_client):
    response = cors_client.options(
        "/events",
        headers={
            "Origin": "http://127.0.0.1:3000",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:3000"
    assert {"authorization", "content-type"} <= names(response.headers["Access-Control-Allow-Headers"])
    assert "get" in names(response.headers["Access-Control-Allow-Methods"])
    assert int(response.headers["Access-Control-Max-Age"]) > 0


def test_other_origins_get_no_cors_headers(cors_client, tokens):
    response = cors_client.get(
        "/events?page_size=0", headers={**auth(tokens["query"]), "Origin": "https://evil.test"}
    )
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = cors_client.options(
        "/events",
        headers={
            "Origin": "https://evil.test",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers
    assert "Access-Control-Allow-Headers" not in preflight.headers


def test_by_default_no_origin_is_allowed(client, tokens):
    response = client.get("/events?page_size=0", headers={**auth(tokens["query"]), "Origin": DASHBOARD})
    assert response.status_code == 200
    assert not [name for name, _ in response.headers.items() if name.lower().startswith("access-control-")]


def test_any_origin_with_a_star(settings, es, tokens):
    client = create_app(replace(settings, cors_origins="*")).test_client()
    response = client.get("/health", headers={"Origin": "https://anywhere.test"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_origins_setting_is_parsed():
    from service.config import Settings

    assert origins(Settings(cors_origins="")) == []
    assert origins(Settings(cors_origins=" https://a.test/ ,http://b.test:8080")) == [
        "https://a.test",
        "http://b.test:8080",
    ]
