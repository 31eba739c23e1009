"""schemathesis against the service's own OpenAPI document, in process, on a real node.

Every operation gets generated valid and invalid requests, with a token holding both scopes:
no answer may be a 5xx, and each must conform to the document (status, content type, body
schema). `FUZZ_EXAMPLES` sets the examples per operation (10 here, 150 in `make reliability`).
"""

from __future__ import annotations

import json
import os

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service import create_app
from service.config import Settings
from tests.conftest import auth

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    """NDJSON bodies are documented as a string: send it as the body's text."""
    return value.encode() if isinstance(value, str) else json.dumps(value).encode()


def document_only_app():
    """The app as far as its OpenAPI document goes: building it touches no node."""
    return create_app(Settings.from_env(es_url="http://127.0.0.1:9", install_templates=False))


schema = schemathesis.openapi.from_wsgi("/openapi.json", document_only_app())


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_within_its_documented_contract(case, app, tokens):
    case.call_and_validate(app=app, headers=auth(tokens["full"]), checks=CHECKS)
