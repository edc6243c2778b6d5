"""Scale-out: the daily job on dagster-celery workers writes what an in-process run writes.

A real celery worker process (the compose service's command, the app of
`data_platform.jobs.celery_worker`) takes the steps from RabbitMQ; the broker URL and its password
stay in the environment, never in a file under DAGSTER_HOME. The run and the worker share a PostgreSQL Dagster instance
(deploy/dagster.postgres.yaml) and a PostgreSQL warehouse: the warehouse IO manager is how one
step's output reaches a step on another machine. The same partition run in-process into another
fresh warehouse must give equal tables.
"""

import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import pandas as pd
import pytest
from dagster._core.events import DagsterEventType

from data_platform.definitions import build_definitions
from data_platform.jobs import DAILY_JOB, DIMENSIONS_JOB
from data_platform.resources.model_store import ModelStoreResource
from data_platform.resources.source import SourceResource
from data_platform.resources.warehouse import WarehouseResource

BIN = Path(sys.executable).parent
PARTITION = "2026-11-09"
COMPARED = (
    "products_clean", "customers_quarantine",
    "orders_raw", "orders_rejected", "orders_clean", "orders_quarantine",
    "ratings_clean", "reviews_clean", "experiments_clean", "review_text_features",
)
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def execute(job: str, env: dict[str, str], cwd: Path, partition: str | None = None) -> None:
    """`dagster job execute`: the run happens in this CLI process, its steps on the workers."""
    cmd = [str(BIN / "dagster"), "job", "execute", "-m", "data_platform.definitions", "-j", job]
    if partition:
        cmd += ["--tags", f'{{"dagster/partition": "{partition}"}}']
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{job} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"


def in_process(warehouse_url: str, models: Path) -> None:
    defs = build_definitions(
        warehouse=WarehouseResource(url=warehouse_url),
        source=SourceResource(),
        model_store=ModelStoreResource(root=str(models)),
    )
    with dg.instance_for_test() as instance:
        assert defs.resolve_job_def(DIMENSIONS_JOB).execute_in_process(instance=instance, run_config=QUIET).success
        assert defs.resolve_job_def(DAILY_JOB).execute_in_process(
            instance=instance, partition_key=PARTITION, run_config=QUIET
        ).success


def table(warehouse_url: str, name: str) -> pd.DataFrame:
    frame = WarehouseResource(url=warehouse_url).store().read(name)
    # Row order is not part of a table's content.
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def test_daily_job_on_celery_workers_equals_an_in_process_run(
    tmp_path, deploy_home, new_postgres_database, procs, celery_broker_url
):
    home, env = deploy_home
    celery_warehouse = env["DATA_PLATFORM_WAREHOUSE_URL"]
    local_warehouse = new_postgres_database()
    env = {**env, "DATA_PLATFORM_CELERY_BROKER_URL": celery_broker_url, "DATA_PLATFORM_EXECUTOR": "celery"}
    worker_name = f"dp-test-{uuid.uuid4().hex[:8]}"
    with procs.Processes(tmp_path / "logs") as group:
        # The compose service's command, with this test's worker name.
        group.start("celery_worker", ["celery", "-A", "data_platform.jobs.celery_worker", "worker",
                                      "--prefetch-multiplier=1", "--loglevel=INFO", "-n", worker_name],
                    env, cwd=tmp_path)
        group.wait_until(lambda: " ready." in group.log("celery_worker", tail=100_000),
                         "the celery worker to connect to the broker", 120, 1)
        execute(DIMENSIONS_JOB, env, tmp_path)
        execute(DAILY_JOB, env, tmp_path, PARTITION)
        worker_log = group.log("celery_worker", tail=1_000_000)

    in_process(local_warehouse, tmp_path / "local_models")

    # Every step ran on the worker: the worker received them and reported them to the instance.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [run] = instance.get_runs(dg.RunsFilter(job_name=DAILY_JOB))
        assert run.status == dg.DagsterRunStatus.SUCCESS and run.tags["dagster/partition"] == PARTITION
        assert run.run_config == {}, "the broker URL is an environment reference, not run config"
        starts = instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_START)
        engine_messages = [
            e.message for e in instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT)
        ]
        in_worker = [m for m in engine_messages if "in celery worker" in m]
        assert starts and len(in_worker) == len(starts), engine_messages
        checks = instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
        assert checks and all(e.dagster_event.event_specific_data.passed for e in checks)
    assert worker_log.count("execute_plan[") >= len(starts), worker_log[-3000:]

    for name in COMPARED:
        celery_rows, local_rows = table(celery_warehouse, name), table(local_warehouse, name)
        if name in ("orders_clean", "orders_raw", "ratings_clean"):
            assert len(local_rows) > 0, name
        pd.testing.assert_frame_equal(celery_rows, local_rows, obj=name)
    store = WarehouseResource(url=celery_warehouse).store()
    assert len(store.read("orders_clean", partitions=[PARTITION])) == len(table(celery_warehouse, "orders_clean"))

    # No file under DAGSTER_HOME holds the broker URL or its password.
    password = urlsplit(celery_broker_url).password
    assert password, "the test broker URL must carry a password for this check to mean something"
    secrets = [celery_broker_url.encode(), f":{password}@".encode()]
    files = [p for p in home.rglob("*") if p.is_file()]
    assert files and not [str(p) for p in files if any(s in p.read_bytes() for s in secrets)]
