"""What the query explorer offers, generated from the dataset declarations and the OpenAPI
document (never a hand-kept list): each dataset's query endpoints, filters, groupings,
statistics fields and every other query parameter its GET operation documents.

A parameter the API gains later (say `rate`) shows up in the explorer's options without a
change here: only filters and `group_by` get controls of their own.
"""

from __future__ import annotations

from ..datasets import DATASETS
from ..engine.groups import AdminLevel, AgeRanges, DateBuckets, Group, NumericRanges
from ..engine.registry import Dataset

#: Parameters the explorer builds itself (from its grouping rows), not offered as options.
BUILT = frozenset({"group_by"})
HTTP_METHODS = ("get", "post")


def catalog(spec: dict) -> dict:
    """`{"datasets": [...]}` for every dataset with a GET operation that groups."""
    found = []
    for dataset in DATASETS.values():
        query = query_operation(spec, dataset)
        if query is None:
            continue
        path, operation = query
        parameters = {p["name"]: p for p in operation.get("parameters", []) if p.get("in") == "query"}
        found.append(
            {
                "name": dataset.name,
                "doc": dataset.doc,
                "query": {"method": "GET", "path": path},
                "json_query": json_operation(spec, dataset, path),
                "filters": [describe(parameters[name]) for name in dataset.filters if name in parameters],
                "groups": [describe_group(group) for group in dataset.groups.values()],
                "stats": list(dataset.stats_fields),
                "options": [
                    describe(parameter)
                    for name, parameter in parameters.items()
                    if name not in dataset.filters and name not in BUILT
                ],
            }
        )
    return {"datasets": found}


def describe(parameter: dict) -> dict:
    schema = parameter.get("schema", {})
    item = {"name": parameter["name"], "description": parameter.get("description") or ""}
    item["description"] = item["description"] or schema.get("description", "")
    for key in ("type", "enum", "format", "minimum", "maximum"):
        if key in schema:
            item[key] = schema[key]
    if schema.get("type") == "array":
        item["multiple"] = True
    return item


def describe_group(group: Group) -> dict:
    """A grouping as the explorer offers it; `key` is the name its rows carry today."""
    item = {"name": group.name, "key": group.key or group.name, "field": group.field, "doc": group.doc}
    if isinstance(group, DateBuckets):
        return {**item, "kind": "date", "interval": group.interval}
    if isinstance(group, AgeRanges):  # by name: exact ages; as a JSON object: ranges
        return {**item, "kind": "age"}
    if isinstance(group, NumericRanges):  # only as a JSON object: ranges (reporting delays)
        return {**item, "kind": "ranges"}
    if isinstance(group, AdminLevel):  # only as a JSON object: {"admin_level": N}
        return {**item, "kind": "admin_level", "depth": group.depth}
    return {**item, "kind": "terms"}


def tags_match(operation: dict, dataset: Dataset) -> bool:
    return dataset.name in operation.get("tags", [])


def query_operation(spec: dict, dataset: Dataset) -> tuple[str, dict] | None:
    """The dataset's GET operation taking `group_by`: the one tagged with its name, else the one
    whose parameters hold most of its filters."""
    candidates = []
    for path, methods in spec.get("paths", {}).items():
        operation = methods.get("get")
        if not operation:
            continue
        names = {p["name"] for p in operation.get("parameters", [])}
        if "group_by" in names:
            overlap = len(names & set(dataset.filters))
            candidates.append((tags_match(operation, dataset), overlap, path, operation))
    candidates = [c for c in candidates if c[0] or c[1]]
    if not candidates:
        return None
    _, _, path, operation = max(candidates, key=lambda c: (c[0], c[1]))
    return path, operation


def json_operation(spec: dict, dataset: Dataset, get_path: str) -> dict | None:
    """A POST operation of the dataset whose JSON body is its query (it takes `group_by`), for
    what only JSON can say (age ranges, admin levels)."""
    schemas = spec.get("components", {}).get("schemas", {})
    for path, methods in spec.get("paths", {}).items():
        operation = methods.get("post")
        if not operation or not (tags_match(operation, dataset) or path.startswith(get_path)):
            continue
        body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
        schema = body.get("schema", {})
        if "$ref" in schema:
            schema = schemas.get(schema["$ref"].rsplit("/", 1)[-1], {})
        if "group_by" in schema.get("properties", {}):
            return {"method": "POST", "path": path}
    return None
