"""The pure layer imports neither Dagster nor the Dagster layer, so it runs and tests without them.

The benchmarks (`data_platform.bench`) may import any layer, but only the CLI imports them: no
runtime module carries or loads benchmark code.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

PLATFORM = Path(__file__).resolve().parents[1] / "platform"  # imported as data_platform
PURE_PACKAGES = ("sources", "quality", "ml", "features", "serving", "streaming", "tablestore")
PURE_MODULES = ("catalog",)  # asset names and groups, read by both layers
DAGSTER_LAYER = ("assets", "checks", "jobs", "resources", "definitions", "cli")
BENCH = "bench"
BENCH_IMPORTERS = (BENCH, "cli")  # the benchmark package itself and `data-platform bench`


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


def is_bench(name: str) -> bool:
    top, *rest = name.split(".")
    return top == "data_platform" and bool(rest) and rest[0] == BENCH


def violations(path: Path, forbidden: Callable[[str], bool] = is_dagster_side) -> list[str]:
    module = module_name(path)
    names = imported_names(path.read_text(encoding="utf-8"), module, path.name == "__init__.py")
    flagged = {name for name in names if forbidden(name)}
    # One line per import: `from a.b import c` is reported as a.b, not also as a.b.c.
    shortest = {name for name in flagged if not any(name.startswith(f"{other}.") for other in flagged)}
    return sorted(f"{module} imports {name}" for name in shortest)


@pytest.mark.parametrize("package", PURE_PACKAGES + PURE_MODULES)
def test_the_pure_layer_does_not_import_dagster_or_the_dagster_layer(package):
    module = PLATFORM / f"{package}.py"
    modules = [module] if module.is_file() else sorted((PLATFORM / package).rglob("*.py"))
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
        ("from .. import cli", "data_platform.bench.runner", ["data_platform.cli"]),
        ("from data_platform.tablestore import TableStore\nimport dagsterish", "data_platform.ml.x", []),
    ],
)
def test_the_check_sees_every_form_of_import(source, module, expected):
    assert [n for n in imported_names(source, module) if is_dagster_side(n)] == expected


def test_the_check_flags_a_real_dagster_layer_module():
    assert "data_platform.resources.warehouse imports dagster" in violations(
        PLATFORM / "resources" / "warehouse.py"
    )


def runtime_modules() -> list[Path]:
    """Every module but the benchmarks and the CLI that runs them."""
    return sorted(
        path for path in PLATFORM.rglob("*.py")
        if path.relative_to(PLATFORM).with_suffix("").parts[0] not in BENCH_IMPORTERS
    )


def test_no_runtime_module_imports_the_benchmarks():
    modules = runtime_modules()
    assert PLATFORM / "definitions.py" in modules and PLATFORM / "quality" / "anomaly.py" in modules
    found = [line for path in modules for line in violations(path, is_bench)]
    assert found == [], "\n".join(found)


def test_benchmark_code_lives_in_the_bench_package():
    assert (PLATFORM / BENCH / "__init__.py").is_file()
    outside = [str(path.relative_to(PLATFORM)) for path in runtime_modules() if "bench" in path.stem]
    assert outside == [], outside


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("from data_platform import bench, quality", "data_platform.quality.x", ["data_platform.bench"]),
        ("def f():\n    from ..bench import runner", "data_platform.serving.app",
         ["data_platform.bench", "data_platform.bench.runner"]),
        ("import data_platform.bench.platform as replay", "data_platform.checks.x", ["data_platform.bench.platform"]),
        ("from data_platform.quality import anomaly\nimport benchmarks", "data_platform.ml.x", []),
    ],
)
def test_the_check_sees_every_import_of_the_benchmarks(source, module, expected):
    assert [n for n in imported_names(source, module) if is_bench(n)] == expected


def test_the_check_flags_the_cli_import_of_the_benchmarks():
    assert "data_platform.cli imports data_platform.bench" in violations(PLATFORM / "cli.py", is_bench)
