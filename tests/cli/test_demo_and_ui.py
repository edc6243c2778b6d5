"""`data-platform demo` records history in a persistent instance, and the UI serves that history."""

import os
import re
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from data_platform.catalog import ASSET_ENTITY
from data_platform.cli import last_daily_partition
from data_platform.sources import synthetic

REPO_ROOT = Path(__file__).resolve().parents[2]


def _last_incident_day() -> date:
    """The latest day of the synthetic incident calendar before today (one day in 9)."""
    day = date.today() - timedelta(days=1)
    while synthetic.incident_on(day) is None:
        day -= timedelta(days=1)
    return day


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory):
    """A demo of 2 days in a throwaway DAGSTER_HOME and warehouse, run through the console script;
    the second day holds an incident, which falls in the checks' learning window."""
    root = tmp_path_factory.mktemp("demo")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(root / "home"),
        "DATA_PLATFORM_WAREHOUSE_URL": f"sqlite:///{root / 'warehouse.db'}",
        "DATA_PLATFORM_MODEL_DIR": str(root / "models"),
        "DATA_PLATFORM_RECOMMENDER_BUDGET_S": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "data_platform.cli", "demo", "--days", "2",
         "--end", _last_incident_day().isoformat()],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root, env, proc.stdout


@pytest.fixture(scope="module")
def demo_runs(demo_home) -> list:
    """The demo's run records, read before any test adds runs to its instance."""
    import dagster as dg

    _, env, _ = demo_home
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])  # the instance's storage reads it
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            return list(instance.get_run_records())


def test_demo_prints_progress_and_a_reconciled_summary(demo_home):
    root, _, out = demo_home
    assert "[2/3] daily job over 2 partitions" in out
    assert "Summary: 4 runs" in out
    # The partitions start at the demo's first day, not months earlier (all counted missing).
    first = _last_incident_day() - timedelta(days=1)
    assert f"partitions start {first}, where this instance's data starts" in out
    # The instance was created from the repo's default configuration under DAGSTER_HOME.
    assert (root / "home" / "dagster.yaml").is_file()
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            rows[parts[0]] = int(parts[1])
    for entity in ("orders", "ratings", "reviews", "experiments"):
        assert rows[f"{entity}_raw"] == rows[f"{entity}_clean"] + rows[f"{entity}_quarantine"] > 0
    # A past window is replayed on its own clock: the feature store's freshness and online
    # parity, judged after the window, do not fail because today is later.
    if _last_incident_day() < date.today() - timedelta(days=1):
        assert f"clock:     {_last_incident_day() + timedelta(days=1)} 04:00 UTC" in out
    header = "Failing checks (partition, asset, check):"
    failing = out.split(header)[-1].split("Injected incidents")[0] if header in out else ""
    assert not [line for line in failing.splitlines() if line.strip().startswith("- ")], failing
    # Compute is timed in asset and check bodies, models included, and is part of the wall time.
    compute, wall = map(float, re.search(r"Compute inside asset and check bodies: ([\d.]+)s of ([\d.]+)s", out).groups())
    assert 0 < compute < wall
    downstream = re.search(r"downstream\s+([\d.]+)s\s+\(compute\s+([\d.]+)s\)", out)
    assert 0 < float(downstream.group(2)) <= float(downstream.group(1))


def test_the_summary_reports_the_incident_in_the_learning_window(demo_home):
    _, _, out = demo_home
    day = _last_incident_day()
    incident = synthetic.incident_on(day)
    assert "Injected incidents (synthetic calendar, DATA_PLATFORM_SYNTHETIC_INCIDENTS): 1: " in out
    [line] = [line for line in out.splitlines() if line.startswith(f"  {day}  {incident.entity} ")]
    # A rule (rows, keys, schema) may catch it on its first day; the anomaly checks cannot yet.
    failing = {tuple(line.split()[1:]) for line in out.splitlines() if line.startswith(f"  {day}  ")
               and len(line.split()) == 3}
    caught = [(a, c) for a, c in failing if ASSET_ENTITY.get(a) == incident.entity]
    if caught:
        assert "caught by " in line and "1 caught" in out
    else:
        assert re.search(r": not judged \(learning: 1 of \d+ points of history; the checks pass", line), line
        assert "1 not judged (learning)" in out


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


@pytest.mark.slow
def test_dev_serves_the_demo_history_and_runs_what_the_ui_launches(demo_home, demo_runs, procs, tmp_path,
                                                                    monkeypatch):
    root, env, _ = demo_home
    port = procs.free_port()
    with procs.Processes(tmp_path / "logs") as group:
        group.start("dev", [sys.executable, "-m", "data_platform.cli", "dev", "--port", str(port)], env, cwd=root)
        procs.wait_for_webserver(port, group, name="dev")
        query = """{ assetOrError(assetKey: {path: ["orders_clean"]}) {
            ... on Asset { assetMaterializations(limit: 50) { partition runId } } } }"""

        def materializations():
            # The code location may still be loading.
            asset = procs.graphql(port, query).get("data", {}).get("assetOrError") or {}
            return asset.get("assetMaterializations")

        found = group.wait_until(materializations, "orders_clean's materializations", 120, 2)
        assert len({m["partition"] for m in found}) == 2, found
        # The catalog's partitions start at the demo's first day (none counted missing before it)
        # and run to yesterday, the latest complete day.
        keys_query = """{ assetNodeOrError(assetKey: {path: ["orders_raw"]}) {
            ... on AssetNode { partitionKeys } } }"""
        keys = procs.graphql(port, keys_query)["data"]["assetNodeOrError"]["partitionKeys"]
        assert keys[0] == min(m["partition"] for m in found), keys
        assert keys[-1] == last_daily_partition().isoformat() and len(keys) < 12, keys

        # The daemon runs beside the webserver: the queued run coordinator starts launched runs.
        daemons_query = "{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }"

        def daemons_healthy():
            statuses = procs.graphql(port, daemons_query)["data"]["instance"]["daemonHealth"]["allDaemonStatuses"]
            required = [d for d in statuses if d["required"]]
            return required if required and all(d["healthy"] for d in required) else None

        daemons = group.wait_until(daemons_healthy, "healthy daemons", 120, 2)
        assert {"SCHEDULER", "SENSOR", "QUEUED_RUN_COORDINATOR"} <= {d["daemonType"] for d in daemons}

        # Launch a run as the UI's Materialize button does, and watch it finish.
        launch = """mutation { launchRun(executionParams: {selector: {repositoryLocationName: "data_platform",
            repositoryName: "__repository__", jobName: "dimensions_job"}, runConfigData: "{}"}) {
            __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
        launched = procs.graphql(port, launch)["data"]["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        status_query = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"

        def finished():
            status = procs.graphql(port, status_query, {"id": run_id})["data"]["runOrError"]["status"]
            return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None

        assert group.wait_until(finished, "the launched run to finish", 300, 2) == "SUCCESS"

        # The demo's runs name the code location as the runs that the UI launches do, and store
        # the job's snapshot that the location serves.
        import dagster as dg

        monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])  # the instance's storage reads it
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            launched_run = instance.get_run_by_id(run_id)
        served = launched_run.remote_job_origin.repository_origin
        for run in [record.dagster_run for record in demo_runs]:
            origin = run.remote_job_origin.repository_origin
            assert (origin.code_location_origin.location_name, origin.repository_name) == (
                served.code_location_origin.location_name, served.repository_name)
        [demo_dimensions] = [r.dagster_run for r in demo_runs if r.dagster_run.job_name == "dimensions_job"]
        assert demo_dimensions.job_snapshot_id == launched_run.job_snapshot_id


def test_every_demo_run_is_a_run_of_the_code_location_that_dev_serves(demo_runs):
    from data_platform.cli import CODE_LOCATION
    from data_platform.definitions import defs

    runs = [record.dagster_run for record in demo_runs]
    assert sorted(r.job_name for r in runs) == ["daily_job", "daily_job", "dimensions_job", "downstream_job"]
    repository = defs.get_repository_def()
    for run in runs:
        origin = run.remote_job_origin
        assert origin is not None, run.run_id
        assert origin.location_name == CODE_LOCATION
        assert origin.repository_origin.repository_name == repository.name
        assert repository.has_job(origin.job_name) and origin.job_name == run.job_name


def test_the_ui_lists_the_demo_runs_under_their_job_and_on_the_timeline(demo_home, demo_runs, monkeypatch,
                                                                          tmp_path):
    """Dagster's GraphQL layer, in process, on the workspace that `data-platform dev` serves."""
    import dagster as dg
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster_graphql.cli import execute_query

    from data_platform.cli import CODE_LOCATION, WORKSPACE_YAML

    _, env, _ = demo_home
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])  # the instance's storage reads it
    runs = [record.dagster_run for record in demo_runs]
    # The code server that the workspace starts loads the definitions as `dev` does: the demo's
    # settings, partitions starting where its data starts.
    first_day = min(r.tags["dagster/partition"] for r in runs if r.job_name == "daily_job")
    for name in ("DATA_PLATFORM_WAREHOUSE_URL", "DATA_PLATFORM_MODEL_DIR", "DATA_PLATFORM_RECOMMENDER_BUDGET_S"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.setenv("DATA_PLATFORM_START_DATE", first_day)
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(WORKSPACE_YAML)
    runs_query = """query($filter: RunsFilter) { runsOrError(filter: $filter) { __typename
        ... on Runs { results { runId jobName pipelineSnapshotId
            repositoryOrigin { repositoryLocationName repositoryName } } } } }"""
    jobs_query = """query($location: String!, $repository: String!) {
        repositoryOrError(repositorySelector: {repositoryLocationName: $location, repositoryName: $repository}) {
            __typename ... on Repository { jobs { name pipelineSnapshotId } } } }"""
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance, \
            WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(workspace)])) as context:
        [location] = context.create_request_context().code_location_names
        assert location == CODE_LOCATION
        served = {}
        for repository in {run.remote_job_origin.repository_origin.repository_name for run in runs}:
            result = execute_query(context, jobs_query, {"location": location, "repository": repository})
            found = result["data"]["repositoryOrError"]
            assert found["__typename"] == "Repository", result
            served.update({(repository, job["name"]): job["pipelineSnapshotId"] for job in found["jobs"]})
        # Each job's page lists its runs by job name and code location.
        for job_name in {r.job_name for r in runs}:
            result = execute_query(context, runs_query, {"filter": {
                "pipelineName": job_name, "tags": [{"key": "dagster/code_location", "value": location}]}})
            listed = {r["runId"] for r in result["data"]["runsOrError"]["results"]}
            assert {r.run_id for r in runs if r.job_name == job_name} <= listed, result
        # The Overview timeline reads the runs of a time window and places each by its code
        # location's origin; a run without one is left off ("No runs").
        window = {"updatedAfter": min(record.create_timestamp.timestamp() for record in demo_runs) - 60}
        timeline = execute_query(context, runs_query, {"filter": window})["data"]["runsOrError"]["results"]
        demo_rows = [row for row in timeline if row["runId"] in {r.run_id for r in runs}]
        assert len(demo_rows) == len(runs) == 4
        for row in demo_rows:
            origin = row["repositoryOrigin"]
            assert origin is not None and origin["repositoryLocationName"] == location, row
            # The run's job is one the location serves, in the snapshot it serves.
            assert served[(origin["repositoryName"], row["jobName"])] == row["pipelineSnapshotId"], row


def _demo(tmp_path, extra_env, *args, timeout=120):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"),
           "DATA_PLATFORM_WAREHOUSE_URL": f"sqlite:///{tmp_path / 'warehouse.db'}", **extra_env}
    return subprocess.run([sys.executable, "-m", "data_platform.cli", "demo", *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_a_missing_source_is_one_line_naming_the_setting(tmp_path):
    proc = _demo(tmp_path, {"DATA_PLATFORM_ORDERS": f"orders_csv:{tmp_path / 'nowhere'}"}, "--days", "1")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("data-platform: DATA_PLATFORM_ORDERS=orders_csv:") and "no such file" in lines[0]


def test_an_unreachable_warehouse_fails_before_the_first_partition_without_its_password(tmp_path):
    import socket

    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = _demo(tmp_path, {"DATA_PLATFORM_WAREHOUSE_URL": f"postgresql://nobody:s3cret@127.0.0.1:{port}/x"},
                 "--days", "1", timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "DATA_PLATFORM_WAREHOUSE_URL: cannot reach postgresql://nobody:***@127.0.0.1" in proc.stderr
    assert "s3cret" not in proc.stdout + proc.stderr and "[1/3]" not in proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1


def test_ctrl_c_ends_the_process_even_when_the_run_left_threads_that_block_exit(tmp_path):
    """A run's thread pool (non-daemon workers) would hold interpreter shutdown until its work
    ends; the demo's interrupt path ends the process after the grace period instead."""
    import signal
    import textwrap
    import time

    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent("""
        import sys, time
        from concurrent.futures import ThreadPoolExecutor
        from data_platform import cli

        def execute():
            pool = ThreadPoolExecutor(1)
            return pool.submit(time.sleep, 120).result()

        try:
            print("running", flush=True)
            cli._in_worker_thread(execute)
        except KeyboardInterrupt:
            cli._exit_now_if_a_run_is_left(130)
            sys.exit(3)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "running"
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 130
    assert time.monotonic() - sent < 5 + 10  # the grace period, then out


def test_ctrl_c_stops_the_demo_within_seconds(tmp_path):
    import signal
    import time

    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"),
           "DATA_PLATFORM_WAREHOUSE_URL": f"sqlite:///{tmp_path / 'warehouse.db'}"}
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        # Its own session, as a terminal's foreground job: SIGINT is not ignored.
        proc = subprocess.Popen([sys.executable, "-m", "data_platform.cli", "demo", "--days", "20"],
                                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        # Interrupted inside the daily job: its first run has started.
        while "[2/3]" not in log.read_text() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
        assert "[2/3]" in log.read_text(), log.read_text()
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        rc = proc.wait(timeout=60)
        stopped_after = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert rc == 130, text[-2000:]
    assert "interrupted: stopped after" in text and "[3/3]" not in text
    assert stopped_after < 30, f"{stopped_after:.0f}s"
    # Nothing of the demo's process group outlives it for long: Dagster's compute-log capture
    # (`tail -F` and its orphan watcher) polls for its parent and ends within a few seconds.
    gone_by = time.monotonic() + 20
    while time.monotonic() < gone_by:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.25)
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)
