"""A whole Dagster run killed with SIGKILL in the middle of a write leaves no partial partition.

test_crash.py kills a process that drives the warehouse store directly; here the process is a
real run: ``dagster job execute -j daily_job`` for one partition, loading the project's
definitions from the environment like any deployment, with the in-process executor (every step
runs in the run's process, so killing it kills the run and all its steps).

A ``sitecustomize`` module on the child's PYTHONPATH is the only fault injection: when the run's
`orders_clean` write has loaded every row and only COMMIT is left, it touches a marker and waits.
The test checks that the write transaction is really open, then kills the run's whole process
group with SIGKILL. What must hold:

- every daily table holds the partition whole or not at all (compared with the re-run's copy);
  the killed write left nothing, the writes committed before it are complete;
- Dagster never claims more than the warehouse holds: every asset the killed run recorded as
  materialized has its partition in the warehouse;
- a re-run on the same instance succeeds and lands every table's partition exactly once.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from data_platform.catalog import DAILY_ASSETS
from data_platform.definitions import build_definitions
from data_platform.jobs import DAILY_JOB
from data_platform.resources.source import SourceResource
from data_platform.resources.warehouse import TableStore, WarehouseResource
from data_platform.sources import synthetic
from data_platform.sources.db import make_engine
from data_platform.sources.schemas import EVENT_ENTITIES
from data_platform.tablestore import STAGING_PREFIX

_spec = importlib.util.spec_from_file_location("crash_helpers", Path(__file__).with_name("test_crash.py"))
crash_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(crash_helpers)

PARTITION = "2025-03-03"
HALT_TABLE = "orders_clean"
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}

# Python imports `sitecustomize` at startup: the run process gets the halt without a line of
# test code in the platform.
SITECUSTOMIZE = textwrap.dedent(
    """
    import os, time
    from pathlib import Path
    from data_platform.tablestore import manifest

    _table, _marker = os.environ["DP_TEST_HALT_TABLE"], Path(os.environ["DP_TEST_HALT_MARKER"])
    _original = manifest.Manifest.write

    def _halt_before_commit(self, conn, table, specs):
        _original(self, conn, table, specs)
        if table == _table:
            _marker.write_text(str(os.getpid()))
            time.sleep(300)
            raise SystemExit("was not killed")

    manifest.Manifest.write = _halt_before_commit
    """
)


def start_run(tmp_path: Path, home: Path, url: str) -> subprocess.Popen:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATA_PLATFORM_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(home),
        DATA_PLATFORM_WAREHOUSE_URL=url,
        DATA_PLATFORM_SYNTHETIC_INCIDENTS="0",
        DATA_PLATFORM_EXECUTOR="in_process",
        DP_TEST_HALT_TABLE=HALT_TABLE,
        DP_TEST_HALT_MARKER=str(tmp_path / "halted"),
        PYTHONPATH=str(hooks),
    )
    command = [str(Path(sys.executable).with_name("dagster")), "job", "execute", "-m", "data_platform.definitions",
               "-j", DAILY_JOB, "--tags", f'{{"dagster/partition": "{PARTITION}"}}']
    with open(tmp_path / "run.log", "w") as log:
        return subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def wait_for_halt(marker: Path, child: subprocess.Popen, log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not marker.exists():
        if child.poll() is not None:
            raise AssertionError(f"the run ended before the halt ({child.returncode}):\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the run never reached the halt:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


def partition_or_none(store: TableStore, table: str) -> pd.DataFrame | None:
    # The warehouse starts empty and the run writes one partition: a table exists once its
    # partition was committed (an empty partition has no rows to show it by).
    if not store.exists(table):
        return None
    frame = store.read(table, partitions=[PARTITION])
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def test_run_killed_mid_write_leaves_no_partial_partition_and_the_rerun_lands_once(
    platform_home, sqlite_url, tmp_path
):
    child = start_run(tmp_path, platform_home, sqlite_url)
    try:
        wait_for_halt(tmp_path / "halted", child, tmp_path / "run.log")
        crash_helpers.assert_write_transaction_open(sqlite_url)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    store = TableStore(sqlite_url)
    try:
        after_kill = {table: partition_or_none(store, table) for table in DAILY_ASSETS}
    finally:
        store.dispose()
    assert after_kill[HALT_TABLE] is None, "the killed write must leave nothing"
    assert after_kill["orders_raw"] is not None, "orders_raw was committed before orders_clean started"
    engine = make_engine(sqlite_url)
    try:
        assert [t for t in sa.inspect(engine).get_table_names() if t.startswith(STAGING_PREFIX)] == []
    finally:
        engine.dispose()

    with dg.DagsterInstance.from_config(str(platform_home)) as instance:
        [killed] = instance.get_runs()
        recorded = {
            e.asset_materialization.asset_key.to_user_string()
            for e in instance.all_logs(killed.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        }
        assert "orders_raw" in recorded and HALT_TABLE not in recorded
        assert all(after_kill[table] is not None for table in recorded), recorded

        defs = build_definitions(
            warehouse=WarehouseResource(url=sqlite_url), source=SourceResource(synthetic_incidents=False)
        )
        rerun = defs.resolve_job_def(DAILY_JOB).execute_in_process(
            instance=instance, partition_key=PARTITION, run_config=QUIET, raise_on_error=False
        )
        assert rerun.success

    store = TableStore(sqlite_url)
    try:
        for table, survived in after_kill.items():
            landed = partition_or_none(store, table)
            assert landed is not None, table
            assert store.row_count(table) == store.row_count(table, PARTITION) == len(landed), table
            if survived is not None:  # whole, or it would differ from the re-run's copy
                pd.testing.assert_frame_equal(survived, landed, obj=table)
        for entity in EVENT_ENTITIES:
            generated = synthetic.generate(entity, date.fromisoformat(PARTITION), incidents=False)
            raw = store.row_count(f"{entity}_raw", PARTITION)
            assert raw + store.row_count(f"{entity}_rejected", PARTITION) == len(generated) > 0, entity
            assert store.row_count(f"{entity}_clean", PARTITION) + store.row_count(
                f"{entity}_quarantine", PARTITION
            ) == raw, entity
        assert not store.read("orders_raw", [PARTITION]).duplicated(["order_id", "line_no"]).any()
    finally:
        store.dispose()
