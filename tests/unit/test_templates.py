"""The checked-in index templates are exactly what the registries generate."""

from service.datasets import DATASETS
from service.templates import index_template, stale_files


def test_checked_in_templates_are_current():
    assert stale_files() == [], "run `make templates` and commit index_templates/"


def test_every_registry_field_is_mapped_strictly():
    for dataset in DATASETS.values():
        mappings = index_template(dataset)["template"]["mappings"]
        assert mappings["dynamic"] == "strict"
        assert {f.name for f in dataset.fields} <= set(mappings["properties"])


def test_pii_is_stored_but_not_indexed():
    for dataset in DATASETS.values():
        properties = index_template(dataset)["template"]["mappings"]["properties"]
        for name in dataset.pii_fields:
            assert properties[name]["enabled"] is False
