"""The layout is the architecture: imports only run down the layers (README, "Architecture").

A request flows view → schema → plan → store → shape → JSON; building blocks sit under the
declarations that use them. Each rule names a package (or module) and what it must never
import, read from the source with `ast`, so a reversed arrow fails here before review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parents[2] / "service"


def module_name(path: Path) -> str:
    parts = path.relative_to(SERVICE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, absolute (relative imports resolved against its package)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


MODULES = {module_name(path): imports_of(path) for path in SERVICE.rglob("*.py")}


def modules_under(prefix: str) -> dict[str, set[str]]:
    return {name: found for name, found in MODULES.items() if name == prefix or name.startswith(prefix + ".")}


def offending(importer: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{name} imports {target}"
        for name, found in modules_under(importer).items()
        for target in found
        if any(target == f or target.startswith(f + ".") for f in forbidden)
    )


RULES = {
    # Building blocks never know the declarations built from them, nor the web.
    "service.engine": ("service.datasets", "flask", "flask_smorest", "elasticsearch", "service.store"),
    # Declarations use building blocks only.
    "service.datasets": ("service.api", "service.store", "service.queries", "service.ingest", "flask"),
    # The store sends bodies and returns answers: it plans, shapes and validates nothing.
    "service.store": (
        "service.ingest",
        "service.engine.shape",
        "service.engine.translate",
        "service.engine.params",
        "service.queries",
        "flask",
    ),
    # The query service runs plan → execute → shape without HTTP.
    "service.queries": ("flask", "service.api", "elasticsearch"),
    # Ingest runs without HTTP too (views and `flask import` share it).
    "service.ingest": ("flask", "service.api", "service.queries"),
    # Views are thin: no Elasticsearch client, no search bodies built or answers shaped by hand.
    # (`service.api.errors` alone names Elasticsearch's exceptions, to answer them as 429/503.)
    **dict.fromkeys(
        ("service.api.views", "service.api.http", "service.api.health", "service.api.smorest"),
        (
            "elasticsearch",
            "elastic_transport",
            "service.engine.translate",
            "service.engine.shape",
            "service.store",
        ),
    ),
}


@pytest.mark.parametrize("importer", sorted(RULES))
def test_no_import_runs_against_the_layering(importer):
    assert modules_under(importer), f"{importer} does not exist: update the rules with the layout"
    assert offending(importer, RULES[importer]) == []


def test_the_rules_see_a_reversed_arrow():
    """The checker itself can fail: a fake module importing upwards is caught."""
    MODULES["service.engine.fake"] = {"service.datasets.cdx"}
    try:
        assert offending("service.engine", RULES["service.engine"]) == [
            "service.engine.fake imports service.datasets.cdx"
        ]
    finally:
        del MODULES["service.engine.fake"]
