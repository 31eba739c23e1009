"""Docs follow code: every filter and grouping the registries offer is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service import create_app
from service.config import Settings
from service.datasets import DATASETS
from service.engine.groups import AdminLevel

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


@pytest.fixture(scope="module")
def spec():
    app = create_app(Settings(install_templates=False, es_url="http://127.0.0.1:9"))
    return app.test_client().get("/openapi.json").json


@pytest.mark.parametrize("dataset", DATASETS.values(), ids=DATASETS)
def test_every_filter_is_in_readme_and_openapi(dataset, spec):
    documented = {p["name"] for p in spec["paths"][dataset.http.collection]["get"]["parameters"]}
    for name in dataset.filters:
        assert f"`{name}`" in README, name
        assert name in documented, name
    common = {"page_size", "offset", "order_by", "group_by", "time_zone", "cursor"}
    extras = {"fill", "stats", "min_count", "week_start", "rate", "distinct", "top", "compare"}
    assert common | extras <= documented
    for name in extras:
        assert f"`{name}" in README, name
    export = {p["name"] for p in spec["paths"][dataset.http.export]["get"]["parameters"]}
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


@pytest.mark.parametrize("dataset", DATASETS.values(), ids=DATASETS)
def test_every_endpoint_is_in_openapi(dataset, spec):
    paths = dataset.http
    item = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", paths.item)  # Werkzeug's rule as OpenAPI writes it
    assert {paths.collection, paths.query, paths.export, item} <= set(spec["paths"])


def test_every_operations_endpoint_is_in_openapi(spec):
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


API_DOC = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()


@pytest.mark.parametrize("dataset", DATASETS.values(), ids=DATASETS)
def test_the_contract_names_every_filter_grouping_and_endpoint(dataset):
    """docs/api.md is the contract the code cites: what a dataset offers is named there."""
    for name in dataset.filters:
        assert f"`{name}`" in API_DOC, name
    for name, group in dataset.groups.items():
        if isinstance(group, AdminLevel):
            assert '"admin_level"' in API_DOC
        else:
            assert f"`{name.split('(')[0]}" in API_DOC, name
    paths = dataset.http
    for path in (paths.collection, paths.export, paths.query):
        assert f"`{path}" in API_DOC or f"{path}`" in API_DOC, path


def test_the_contract_names_every_error_code_and_option():
    from service.errors import CODES

    for status, code in CODES.items():
        if status not in (409, 422, 500):  # never answered: 500 is a bug, the others unused
            assert f"`{code}`" in API_DOC, code
    for option in ("fill", "stats", "min_count", "week_start", "time_zone", "cursor", "page_size", "offset"):
        assert f"`{option}" in API_DOC, option
