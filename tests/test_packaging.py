"""The repo root on sys.path must not shadow the standard-library `platform` module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_from_root(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )


def test_no_package_init_in_platform_folder():
    assert not (REPO_ROOT / "platform" / "__init__.py").exists()


def test_stdlib_platform_wins_from_repo_root():
    proc = run_from_root("-c", "import platform, dagster, pandas; print(platform.system())")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() in {"Linux", "Darwin", "Windows"}


def test_package_imports_as_data_platform_from_repo_root():
    proc = run_from_root("-c", "import data_platform.definitions as d; print(type(d.defs).__name__)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("Definitions")


def test_pytest_collects_from_repo_root():
    proc = run_from_root("-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "tests collected" in proc.stdout or "test" in proc.stdout.splitlines()[-1]


def test_every_subpackage_is_in_the_package_list():
    """An editable install finds any folder; a regular one ships only the listed packages."""
    import tomllib

    listed = set(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    root = REPO_ROOT / "platform"
    found = {"data_platform"} | {
        "data_platform." + ".".join(init.parent.relative_to(root).parts)
        for init in root.rglob("__init__.py")
    }
    assert found == listed, {"not listed": sorted(found - listed), "listed, no package": sorted(listed - found)}
