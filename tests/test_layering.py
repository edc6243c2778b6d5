"""The pure layer imports neither Dagster nor the Dagster layer, so it runs and tests without them."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PLATFORM = Path(__file__).resolve().parents[1] / "platform"  # imported as data_platform
PURE_PACKAGES = ("sources", "quality", "ml", "features", "serving", "streaming", "tablestore")
DAGSTER_LAYER = ("assets", "checks", "jobs", "resources", "definitions", "cli")


def module_name(path: Path) -> str:
    parts = path.relative_to(PLATFORM).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(("data_platform", *parts))


def imported_names(source: str, module: str, is_package: bool = False) -> Iterator[str]:
    """Every module an import statement names, at any depth: an import inside a function ties
    the layers together as much as one at the top. ``from a import b`` yields ``a`` and ``a.b``,
    since ``b`` may be a module."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            origin = ".".join([*base, *([node.module] if node.module else [])])
            yield origin
            yield from (f"{origin}.{alias.name}" for alias in node.names)


def is_dagster_side(name: str) -> bool:
    top, *rest = name.split(".")
    if top == "dagster" or top.startswith("dagster_"):
        return True
    return top == "data_platform" and bool(rest) and rest[0] in DAGSTER_LAYER


def violations(path: Path) -> list[str]:
    module = module_name(path)
    names = imported_names(path.read_text(encoding="utf-8"), module, path.name == "__init__.py")
    flagged = {name for name in names if is_dagster_side(name)}
    # One line per import: `from a.b import c` is reported as a.b, not also as a.b.c.
    shortest = {name for name in flagged if not any(name.startswith(f"{other}.") for other in flagged)}
    return sorted(f"{module} imports {name}" for name in shortest)


@pytest.mark.parametrize("package", PURE_PACKAGES)
def test_the_pure_layer_does_not_import_dagster_or_the_dagster_layer(package):
    modules = sorted((PLATFORM / package).rglob("*.py"))
    assert modules, f"no modules under platform/{package}"
    found = [line for path in modules for line in violations(path)]
    assert found == [], "\n".join(found)


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("import dagster as dg", "data_platform.ml.x", ["dagster"]),
        ("import dagster_postgres", "data_platform.ml.x", ["dagster_postgres"]),
        ("def f():\n    from data_platform.resources.warehouse import T", "data_platform.ml.x",
         ["data_platform.resources.warehouse", "data_platform.resources.warehouse.T"]),
        ("from data_platform import assets, ml", "data_platform.ml.x", ["data_platform.assets"]),
        ("from ..jobs import daily", "data_platform.serving.app", ["data_platform.jobs", "data_platform.jobs.daily"]),
        ("from . import cli", "data_platform.bench", ["data_platform.cli"]),
        ("from data_platform.tablestore import TableStore\nimport dagsterish", "data_platform.ml.x", []),
    ],
)
def test_the_check_sees_every_form_of_import(source, module, expected):
    assert [n for n in imported_names(source, module) if is_dagster_side(n)] == expected


def test_the_check_flags_a_real_dagster_layer_module():
    assert "data_platform.resources.warehouse imports dagster" in violations(
        PLATFORM / "resources" / "warehouse.py"
    )
