"""Unit tests never reach Elasticsearch: any request a client would send fails loudly here.

The integration tests (tests/integration, tests/reliability) are the ones that talk to a node;
a unit test that reaches for one by accident (a fixture that installs templates, a view that
searches) would be slow, flaky and secretly an integration test.
"""

from __future__ import annotations

import pytest
from elastic_transport import Transport


class ElasticsearchInUnitTest(AssertionError):
    pass


@pytest.fixture(autouse=True)
def no_elasticsearch(monkeypatch):
    def refuse(self, method, target, *args, **kwargs):
        raise ElasticsearchInUnitTest(f"a unit test sent {method} {target} to Elasticsearch")

    monkeypatch.setattr(Transport, "perform_request", refuse)
