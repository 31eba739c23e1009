"""The Kibana saved objects parse, hang together, and only name fields the templates map."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.datasets import DATASETS
from service.templates import DEFAULT_PREFIX, index_template

KIBANA = Path(__file__).resolve().parents[2] / "kibana"
COUNT_OF_RECORDS = "___records___"  # Lens' pseudo-field of `count`


def objects(name: str) -> list[dict]:
    lines = (KIBANA / f"{name}.ndjson").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def lens_columns(lens: dict) -> list[dict]:
    layers = lens["attributes"]["state"]["datasourceStates"]["formBased"]["layers"]
    return [column for layer in layers.values() for column in layer["columns"].values()]


def test_there_is_a_file_per_dataset_and_nothing_else():
    assert {path.stem for path in KIBANA.glob("*.ndjson")} == set(DATASETS)


@pytest.mark.parametrize("dataset", DATASETS.values(), ids=DATASETS)
def test_a_data_view_with_the_time_field_and_a_dashboard(dataset):
    found = objects(dataset.name)
    (view,) = [o for o in found if o["type"] == "index-pattern"]
    assert view["attributes"]["title"] == dataset.index_pattern(DEFAULT_PREFIX)
    assert view["attributes"]["timeFieldName"] == dataset.time_field
    assert [o["type"] for o in found].count("dashboard") == 1


@pytest.mark.parametrize("dataset", DATASETS.values(), ids=DATASETS)
def test_every_reference_resolves_within_the_file(dataset):
    found = objects(dataset.name)
    ids = {(o["type"], o["id"]) for o in found}
    assert len(ids) == len(found), "ids are unique"
    for obj in found:
        for reference in obj.get("references", []):
            assert (reference["type"], reference["id"]) in ids, (obj["id"], reference)
    (dashboard,) = [o for o in found if o["type"] == "dashboard"]
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    names = {reference["name"] for reference in dashboard["references"]}
    assert panels and all(f"{p['panelIndex']}:{p['panelRefName']}" in names for p in panels)
    shown = {reference["id"] for reference in dashboard["references"]}
    assert shown == {o["id"] for o in found if o["type"] == "lens"}, "every visualization is on it"


@pytest.mark.parametrize("dataset", DATASETS.values(), ids=DATASETS)
def test_every_field_named_exists_in_the_index_template(dataset):
    properties = index_template(dataset)["template"]["mappings"]["properties"]
    paths = flatten(properties)
    named = set()
    for obj in objects(dataset.name):
        if obj["type"] == "index-pattern":
            named.add(obj["attributes"]["timeFieldName"])
        elif obj["type"] == "lens":
            named |= {c["sourceField"] for c in lens_columns(obj) if c["sourceField"] != COUNT_OF_RECORDS}
    assert named and named <= set(paths), named - set(paths)
    for path in named:
        # Kibana aggregates only on indexed fields with doc values: no nested, no disabled objects.
        assert paths[path].get("type") in ("keyword", "long", "integer", "double", "date"), path


def flatten(properties: dict, parent: str = "") -> dict[str, dict]:
    """Every field path of a mapping (`derived.results_result`) → its mapping."""
    flat = {}
    for name, spec in properties.items():
        flat[f"{parent}{name}"] = spec
        flat.update(flatten(spec.get("properties", {}), f"{parent}{name}."))
    return flat


@pytest.mark.parametrize("dataset", DATASETS.values(), ids=DATASETS)
def test_the_reporting_delay_is_charted(dataset):
    """Each derived delay is on its dataset's dashboard (an aggregatable double, as above)."""
    named = {c["sourceField"] for o in objects(dataset.name) if o["type"] == "lens" for c in lens_columns(o)}
    assert {f.path for f in dataset.derived_fields} <= named
