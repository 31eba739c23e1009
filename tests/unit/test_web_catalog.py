"""The explorer's choices come from the dataset declarations and the OpenAPI document."""

from __future__ import annotations

import copy

import pytest

from service import create_app
from service.config import Settings
from service.datasets import DATASETS
from service.web.catalog import catalog


@pytest.fixture(scope="module")
def spec():
    app = create_app(Settings(install_templates=False, es_url="http://127.0.0.1:9"))
    return app.test_client().get("/openapi.json").json


def by_name(found: dict) -> dict:
    return {dataset["name"]: dataset for dataset in found["datasets"]}


def test_every_dataset_with_its_endpoints_filters_groups_and_options(spec):
    found = by_name(catalog(spec))
    assert set(found) == set(DATASETS)
    assert found["cdx"]["query"] == {"method": "GET", "path": "/events"}
    assert found["cdx"]["json_query"] == {"method": "POST", "path": "/events/query"}
    assert found["roundware"]["query"] == {"method": "GET", "path": "/api/2/events/"}
    assert found["roundware"]["json_query"] == {"method": "POST", "path": "/api/2/events/query"}
    for name, dataset in DATASETS.items():
        entry = found[name]
        assert [f["name"] for f in entry["filters"]] == list(dataset.filters)
        assert [g["name"] for g in entry["groups"]] == list(dataset.groups)
        assert entry["stats"] == list(dataset.stats_fields)
        options = {o["name"] for o in entry["options"]}
        assert {"time_zone", "fill", "stats", "min_count", "week_start"} <= options
        assert not options & (set(dataset.filters) | {"group_by"})
    kinds = {g["name"]: g["kind"] for g in found["cdx"]["groups"]}
    assert kinds["day(start_time)"] == "date" and kinds["gender"] == "terms"
    assert kinds["age"] == "age" and kinds["admin_level"] == "admin_level"
    assert kinds["report_delay_hours"] == "ranges"  # only as a JSON object
    assert {"rate", "distinct", "top", "compare"} <= {o["name"] for o in found["cdx"]["options"]}
    fill = next(o for o in found["cdx"]["options"] if o["name"] == "fill")
    assert fill["enum"] == ["zero"]


def test_a_parameter_the_api_gains_becomes_an_option(spec):
    grown = copy.deepcopy(spec)
    grown["paths"]["/events"]["get"]["parameters"].append(
        {"in": "query", "name": "rate", "description": "events per `day`", "schema": {"type": "string"}}
    )
    options = by_name(catalog(grown))["cdx"]["options"]
    assert {"name": "rate", "description": "events per `day`", "type": "string"} in options


def test_endpoints_are_found_by_their_parameters_when_tags_change(spec):
    """Views are about to move into one generic blueprint per dataset: other tags, same shape."""
    renamed = copy.deepcopy(spec)
    for methods in renamed["paths"].values():
        for operation in methods.values():
            if isinstance(operation, dict) and "tags" in operation:
                operation["tags"] = ["events"]
    found = by_name(catalog(renamed))
    assert found["cdx"]["query"]["path"] == "/events"
    assert found["roundware"]["query"]["path"] == "/api/2/events/"
    assert found["cdx"]["json_query"] == {"method": "POST", "path": "/events/query"}
