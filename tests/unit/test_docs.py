"""Docs follow code: every filter and grouping the registries offer is documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from service import create_app
from service.config import Settings
from service.datasets import DATASETS
from service.engine.groups import AdminLevel

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
PATHS = {"cdx": "/events", "roundware": "/api/2/events/"}


@pytest.fixture(scope="module")
def spec():
    app = create_app(Settings(install_templates=False, es_url="http://127.0.0.1:9"))
    return app.test_client().get("/openapi.json").json


@pytest.mark.parametrize("dataset", DATASETS.values(), ids=DATASETS)
def test_every_filter_is_in_readme_and_openapi(dataset, spec):
    documented = {p["name"] for p in spec["paths"][PATHS[dataset.name]]["get"]["parameters"]}
    for name in dataset.filters:
        assert f"`{name}`" in README, name
        assert name in documented, name
    common = {"page_size", "offset", "order_by", "group_by", "time_zone", "cursor"}
    extras = {"fill", "stats", "min_count", "week_start", "rate", "distinct", "top", "compare"}
    assert common | extras <= documented
    for name in extras:
        assert f"`{name}" in README, name
    export = {
        p["name"] for p in spec["paths"][PATHS[dataset.name].rstrip("/") + "/export"]["get"]["parameters"]
    }
    assert set(dataset.filters) | {"format", "order_by"} <= export


@pytest.mark.parametrize("dataset", DATASETS.values(), ids=DATASETS)
def test_what_each_field_allows_is_in_readme(dataset):
    """The registry's rate, distinct, stats and range fields, each named in README."""
    for name in [
        *dataset.rate_groups,
        *dataset.distinct_fields,
        *dataset.stats_fields,
        *dataset.range_groups,
    ]:
        assert f"`{name}`" in README, name
    for header in ("X-Rate", "X-Distinct", "X-Compare"):
        assert f"`{header}`" in README, header


@pytest.mark.parametrize("dataset", DATASETS.values(), ids=DATASETS)
def test_every_grouping_is_in_readme(dataset):
    for name, group in dataset.groups.items():
        if isinstance(group, AdminLevel):
            assert f'"{name}"' in README
        elif "(" in name:
            assert f"`{name.split('(')[0]}`" in README, name
        else:
            assert f"`{name}`" in README, name


def test_every_setting_is_in_readme():
    for name in Settings.__dataclass_fields__:
        assert f"`{name.upper()}`" in README, name


def test_every_endpoint_is_in_openapi(spec):
    assert {
        "/events",
        "/events/query",
        "/events/{event_id}",
        "/api/2/events/",
        "/api/2/events/{event_id}/",
    } <= set(spec["paths"])
    assert {"/health", "/ready", "/docs"} <= set(spec["paths"])


def test_every_command_is_in_readme():
    """Each of our `flask` commands (and each subcommand) heads a paragraph of the CLI section."""
    app = create_app(Settings(install_templates=False, es_url="http://127.0.0.1:9"))
    ours = {name: command for name, command in app.cli.commands.items() if name != "openapi"}
    assert {"tokens", "templates", "import", "export", "retention"} <= set(ours)
    for name, command in ours.items():
        heading = next((line for line in README.splitlines() if line.startswith(f"**`{name} ")), "")
        assert heading, name
        for sub in getattr(command, "commands", {}):
            assert sub in heading, (name, sub)
