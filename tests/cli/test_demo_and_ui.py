"""`data-platform demo` records history in a persistent instance, and the UI serves that history."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory):
    """A demo of 2 days in a throwaway DAGSTER_HOME and warehouse, run through the console script."""
    root = tmp_path_factory.mktemp("demo")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(root / "home"),
        "DATA_PLATFORM_WAREHOUSE_URL": f"sqlite:///{root / 'warehouse.db'}",
        "DATA_PLATFORM_MODEL_DIR": str(root / "models"),
        "DATA_PLATFORM_RECOMMENDER_BUDGET_S": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "data_platform.cli", "demo", "--days", "2"],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root, env, proc.stdout


def test_demo_prints_progress_and_a_reconciled_summary(demo_home):
    root, _, out = demo_home
    assert "[2/3] daily job over 2 partitions" in out
    assert "Summary: 4 runs" in out
    # The instance was created from the repo's default configuration under DAGSTER_HOME.
    assert (root / "home" / "dagster.yaml").is_file()
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            rows[parts[0]] = int(parts[1])
    for entity in ("orders", "ratings", "reviews", "experiments"):
        assert rows[f"{entity}_raw"] == rows[f"{entity}_clean"] + rows[f"{entity}_quarantine"] > 0
    # Compute is timed in asset and check bodies, models included, and is part of the wall time.
    compute, wall = map(float, re.search(r"Compute inside asset and check bodies: ([\d.]+)s of ([\d.]+)s", out).groups())
    assert 0 < compute < wall
    downstream = re.search(r"downstream\s+([\d.]+)s\s+\(compute\s+([\d.]+)s\)", out)
    assert 0 < float(downstream.group(2)) <= float(downstream.group(1))


def test_rejects_bad_days_argument():
    proc = subprocess.run(
        [sys.executable, "-m", "data_platform.cli", "demo", "--days", "0"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and "--days must be at least 1" in proc.stderr


def test_rejects_an_end_outside_the_partitions(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "data_platform.cli", "demo", "--end", "1999-01-01"],
        cwd=tmp_path, env={**os.environ, "DAGSTER_HOME": str(tmp_path / "home")},
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2 and "--end 1999-01-01 is not a daily partition" in proc.stdout


def test_ui_serves_the_demo_history(demo_home, procs, tmp_path):
    root, env, _ = demo_home
    port = procs.free_port()
    with procs.Processes(tmp_path / "logs") as group:
        group.start("webserver", [sys.executable, "-m", "data_platform.cli", "ui", "--port", str(port)], env, cwd=root)
        procs.wait_for_webserver(port, group)
        query = """{ assetOrError(assetKey: {path: ["orders_clean"]}) {
            ... on Asset { assetMaterializations(limit: 50) { partition runId } } } }"""

        def materializations():
            # The code location may still be loading.
            asset = procs.graphql(port, query).get("data", {}).get("assetOrError") or {}
            return asset.get("assetMaterializations")

        found = group.wait_until(materializations, "orders_clean's materializations", 120, 2)
        assert len({m["partition"] for m in found}) == 2, found
