"""`data-platform demo` records history in a persistent instance, and the UI serves that history."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_ui_serves_the_demo_history(demo_home):
    root, env, _ = demo_home
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "data_platform.cli", "ui", "--port", str(port)],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"webserver did not start: {server.stdout.read()[-3000:]}")
                time.sleep(1)
        query = """{ assetOrError(assetKey: {path: ["orders_clean"]}) {
            ... on Asset { assetMaterializations(limit: 50) { partition runId } } } }"""
        deadline = time.monotonic() + 120
        while True:
            data = graphql(port, query)
            asset = data.get("data", {}).get("assetOrError") or {}
            if "assetMaterializations" in asset or time.monotonic() > deadline:
                break
            time.sleep(2)  # the code location may still be loading
        partitions = {m["partition"] for m in asset["assetMaterializations"]}
        assert len(partitions) == 2, data
    finally:
        server.terminate()
        server.wait(timeout=30)
