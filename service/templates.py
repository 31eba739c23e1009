"""Index templates, generated from the dataset registries and installed idempotently.

`index_templates/<dataset>.json` is this module's output for the default prefix, checked in so
operators can read the mappings; a test keeps it current (`make templates` rewrites it).
"""

from __future__ import annotations

import json
from pathlib import Path

from elasticsearch import Elasticsearch

from .datasets import DATASETS
from .engine.registry import Dataset

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "index_templates"
DEFAULT_PREFIX = "events-"


def template_name(dataset: Dataset, prefix: str) -> str:
    return f"{prefix}{dataset.name}"


def index_template(dataset: Dataset, prefix: str = DEFAULT_PREFIX) -> dict:
    properties = {field.name: field.type.mapping() for field in dataset.fields}
    if dataset.derived_mapping:
        properties["derived"] = {"type": "object", "properties": dataset.derived_mapping}
    return {
        "index_patterns": [dataset.index_pattern(prefix)],
        "priority": 200,
        "template": {
            "settings": {
                "index.number_of_shards": 1,
                # One replica as soon as a second node exists; none on a single dev node.
                "index.auto_expand_replicas": "0-1",
                # No `index.refresh_interval`: left unset, Elasticsearch refreshes every second
                # only the shards searched in the last 30 s (`index.search.idle.after`); a
                # search of an idle shard first waits for a refresh, and `?refresh=wait_for`
                # still makes one, so every query sees what was acknowledged. An explicit "1s"
                # refreshed each written monthly shard every second whether anyone searched it
                # or not: single POSTs spread over 24 months cost the node 5,400-7,500 µs per
                # event with it against 700-1,550 without (docs/benchmarks.md, sixth round).
            },
            "mappings": {
                # A stray field is refused rather than growing the mapping.
                "dynamic": "strict",
                "properties": properties,
            },
        },
        "_meta": {
            "dataset": dataset.name,
            "description": dataset.doc,
            "generated_from": f"service/datasets/{dataset.name}.py",
        },
    }


def claims_template(prefix: str = DEFAULT_PREFIX) -> dict:
    """The claims indices (`<prefix>claims-<dataset>`, store.claims_index): a uuid's first
    receipt, read by id and deleted by month with the monthly index it names."""
    return {
        "index_patterns": [f"{prefix}claims-*"],
        "priority": 200,
        "template": {
            "settings": {"index.number_of_shards": 1, "index.auto_expand_replicas": "0-1"},
            "mappings": {"dynamic": "strict", "properties": {"received_at": {"type": "date"}}},
        },
        "_meta": {"description": "First receipts of event ids without a time of their own."},
    }


def render(template: dict) -> str:
    return json.dumps(template, indent=2, sort_keys=True) + "\n"


def write_files(directory: Path = TEMPLATES_DIR) -> list[Path]:
    directory.mkdir(exist_ok=True)
    written = []
    for dataset in DATASETS.values():
        path = directory / f"{dataset.name}.json"
        path.write_text(render(index_template(dataset)))
        written.append(path)
    return written


def install(es: Elasticsearch, prefix: str, datasets: tuple[Dataset, ...] | None = None) -> list[str]:
    """Put every dataset's template; safe to repeat. Indices are monthly and made by the
    first write into each month, with the template's mappings (see README, "Time-based indices")."""
    names = []
    for dataset in datasets or tuple(DATASETS.values()):
        name = template_name(dataset, prefix)
        template = index_template(dataset, prefix)
        es.indices.put_index_template(name=name, **template)
        # Monthly indices made before a field was added (a derived one) get it too: a template
        # only shapes new indices, and strict mappings would refuse the new field.
        es.indices.put_mapping(
            index=dataset.index_pattern(prefix),
            properties=template["template"]["mappings"]["properties"],
            allow_no_indices=True,
        )
        names.append(name)
    es.indices.put_index_template(name=f"{prefix}claims", **claims_template(prefix))
    return [*names, f"{prefix}claims"]


def installed(es: Elasticsearch, prefix: str, datasets: tuple[Dataset, ...] | None = None) -> bool:
    """Whether every dataset's template, and the claims', is in place (their existence: a
    template changed by hand is not noticed here; `flask templates check` compares files)."""
    names = [template_name(dataset, prefix) for dataset in datasets or tuple(DATASETS.values())]
    for name in [*names, f"{prefix}claims"]:
        found = es.options(ignore_status=404).indices.get_index_template(name=name)
        templates = found.get("index_templates") or []
        if not templates:
            return False
    return True


def stale_files(directory: Path = TEMPLATES_DIR) -> list[Path]:
    """Checked-in template files that differ from the registries' output."""
    stale = []
    for dataset in DATASETS.values():
        path = directory / f"{dataset.name}.json"
        if not path.exists() or path.read_text() != render(index_template(dataset)):
            stale.append(path)
    return stale
