"""The production deployment, run natively: the processes docker-compose.yml starts, on PostgreSQL.

A user-code gRPC server (`dagster api grpc -m data_platform.definitions`), `dagster-webserver`
and `dagster-daemon` share a DAGSTER_HOME whose dagster.yaml is deploy/dagster.postgres.yaml
(credentials from DAGSTER_PG_*) and load the code through deploy/workspace.yaml. Runs are
launched through the webserver's GraphQL API; the QueuedRunCoordinator leaves them queued until
the daemon dequeues them, so a run that succeeds proves all three processes work together.
"""

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.events import DagsterEventType

from data_platform.jobs import DAILY_JOB, DIMENSIONS_JOB, TRAINING_SCHEDULE
from data_platform.sources.db import make_engine

BIN = Path(sys.executable).parent
PARTITION = "2026-11-09"
LOCATION = "data_platform"
REPOSITORY = "__repository__"

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message stack }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
    ... on PipelineNotFoundError { message }
  }
}"""

RUN_STATUS = """
query Status($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { status } } }"""

LOCATION_STATUS = """
{ workspaceOrError { ... on Workspace { locationEntries {
    name locationOrLoadError { __typename ... on PythonError { message } } } } } }"""

SCHEDULES = """
query Schedules($selector: RepositorySelector!) {
  schedulesOrError(repositorySelector: $selector) {
    __typename ... on Schedules { results { name cronSchedule pipelineName scheduleState { id status } } }
  }
}"""

START_SCHEDULE = """
mutation Start($selector: ScheduleSelector!) {
  startSchedule(scheduleSelector: $selector) {
    __typename ... on ScheduleStateResult { scheduleState { id status } } ... on PythonError { message }
  }
}"""

STOP_SCHEDULE = """
mutation Stop($id: String!) {
  stopRunningSchedule(id: $id) {
    __typename ... on ScheduleStateResult { scheduleState { id status } } ... on PythonError { message }
  }
}"""


def grpc_ready(port: int, env: dict[str, str]) -> bool:
    check = subprocess.run(
        [str(BIN / "dagster"), "api", "grpc-health-check", "-h", "127.0.0.1", "-p", str(port)],
        env=env, capture_output=True, text=True, timeout=60,
    )
    return check.returncode == 0


@pytest.fixture
def deployment(tmp_path, deploy_home, procs):
    """(webserver port, DAGSTER_HOME, warehouse URL, process group) of a running deployment."""
    home, env = deploy_home
    grpc_port, web_port = procs.free_port(), procs.free_port()
    env = {**env, "DAGSTER_CODE_HOST": "127.0.0.1", "DAGSTER_CODE_PORT": str(grpc_port)}
    workspace = str(home / "workspace.yaml")
    with procs.Processes(tmp_path / "logs") as group:
        # The same commands as the compose services, with loopback and free ports.
        group.start("user_code", ["dagster", "api", "grpc", "-h", "127.0.0.1", "-p", str(grpc_port),
                                  "-m", "data_platform.definitions"], env, cwd=tmp_path)
        group.wait_until(lambda: grpc_ready(grpc_port, env), "the user-code gRPC server", 180, 2)
        group.start("webserver", ["dagster-webserver", "-h", "127.0.0.1", "-p", str(web_port),
                                  "-w", workspace], env, cwd=tmp_path)
        group.start("daemon", ["dagster-daemon", "run", "-w", workspace], env, cwd=tmp_path)
        procs.wait_for_webserver(web_port, group)
        yield web_port, home, env["DATA_PLATFORM_WAREHOUSE_URL"], group


def launch(procs, port: int, job: str, partition: str | None = None, in_process: bool = False) -> str:
    tags = [{"key": "dagster/partition", "value": partition}] if partition else []
    params = {
        "selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "jobName": job},
        "runConfigData": {"execution": {"config": {"in_process": {}}}} if in_process else {},
        "executionMetadata": {"tags": tags},
    }
    answer = procs.graphql(port, LAUNCH, {"params": params})
    result = answer["data"]["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", answer
    return result["run"]["runId"]


def test_webserver_and_daemon_run_jobs_from_the_code_server(deployment, procs):
    port, home, warehouse_url, group = deployment

    def location_loaded():
        entries = procs.graphql(port, LOCATION_STATUS)["data"]["workspaceOrError"]["locationEntries"]
        return [e for e in entries if e["name"] == LOCATION
                and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"]

    group.wait_until(location_loaded, "the code location in the webserver", 120, 1)

    # Dimensions first, as the demo does, then one day of events. The dimensions run on the
    # default executor (a process per step, as a run launched from the UI); the daily job's
    # some forty steps run in the run's process (the same run config the Launchpad takes),
    # which keeps this test at about a minute on two cores instead of three.
    dims = launch(procs, port, DIMENSIONS_JOB)
    status = group.wait_until(lambda: finished(procs, port, dims), f"run {dims}", 300, 2)
    assert status == "SUCCESS", group.logs()
    daily = launch(procs, port, DAILY_JOB, PARTITION, in_process=True)
    status = group.wait_until(lambda: finished(procs, port, daily), f"run {daily}", 300, 2)
    assert status == "SUCCESS", group.logs()

    with dg.DagsterInstance.from_config(str(home)) as instance:
        # The instance really is the PostgreSQL one of deploy/dagster.postgres.yaml.
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        run = instance.get_run_by_id(daily)
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["dagster/partition"] == PARTITION
        # The dimensions' steps ran in processes of their own.
        step_processes = {e.dagster_event.pid for e in instance.all_logs(dims, of_type=DagsterEventType.STEP_START)}
        assert len(step_processes) >= 2 and instance.get_run_by_id(dims).status == dg.DagsterRunStatus.SUCCESS
        for run_id in (dims, daily):
            # Queued by the webserver; only the daemon's queue loop turns a queued run into a
            # starting one (it then hands it to the run launcher).
            [enqueued] = instance.all_logs(run_id, of_type=DagsterEventType.RUN_ENQUEUED)
            [starting] = instance.all_logs(run_id, of_type=DagsterEventType.RUN_STARTING)
            assert enqueued.timestamp <= starting.timestamp
        evaluations = [
            event.dagster_event.event_specific_data
            for event in instance.all_logs(daily, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
        ]
        checked = {(e.asset_key.to_user_string(), e.check_name) for e in evaluations}
        assert ("orders_clean", "anomaly") in checked, checked
        assert len({asset for asset, _ in checked}) >= 8, checked
        assert all(e.passed for e in evaluations), [e for e in evaluations if not e.passed]
        materialized = instance.get_latest_materialization_event(dg.AssetKey("orders_clean"))
        assert materialized.run_id == daily

    engine = make_engine(warehouse_url)
    try:
        with engine.connect() as conn:
            for table in ("products_clean", "orders_raw", "orders_clean", "ratings_clean"):
                rows = conn.execute(sa.text(f'SELECT COUNT(*) FROM "{table}"')).scalar_one()
                assert rows > 0, table
            partitions = conn.execute(sa.text('SELECT DISTINCT "_partition" FROM "orders_clean"')).scalars().all()
            assert partitions == [PARTITION]
    finally:
        engine.dispose()

    # The schedules are visible and can be turned on and off, as from the UI's toggle.
    assert_schedules_listed_and_toggled(procs, port, group)


def finished(procs, port: int, run_id: str) -> str | None:
    status = procs.graphql(port, RUN_STATUS, {"runId": run_id})["data"]["runOrError"]["status"]
    return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None


def assert_schedules_listed_and_toggled(procs, port: int, group) -> None:
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}

    def schedules():
        answer = procs.graphql(port, SCHEDULES, {"selector": selector})["data"]["schedulesOrError"]
        return answer.get("results")

    listed = {s["name"]: s for s in group.wait_until(schedules, "the schedules", 120, 1)}
    assert listed["daily_schedule"]["cronSchedule"] == "0 2 * * *"
    assert listed["features_schedule"]["pipelineName"] == "features_job"
    training = listed[TRAINING_SCHEDULE]
    assert (training["cronSchedule"], training["pipelineName"]) == ("0 5 * * 0", "training_job")
    assert training["scheduleState"]["status"] == "STOPPED"

    started = procs.graphql(port, START_SCHEDULE, {"selector": {**selector, "scheduleName": TRAINING_SCHEDULE}})
    state = started["data"]["startSchedule"]["scheduleState"]
    assert state["status"] == "RUNNING", started
    assert {s["name"]: s for s in schedules()}[TRAINING_SCHEDULE]["scheduleState"]["status"] == "RUNNING"
    stopped = procs.graphql(port, STOP_SCHEDULE, {"id": state["id"]})
    assert stopped["data"]["stopRunningSchedule"]["scheduleState"]["status"] == "STOPPED", stopped
