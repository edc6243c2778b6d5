"""The PostgreSQL server crashes in the middle of a daily run: nothing is lost, the partition lands once.

The test starts its own PostgreSQL cluster (see conftest.py) and runs the daily job twice against
it, each run in a database of its own: once undisturbed, as the reference, and once with the
server crashing. In the second run, when the `orders_clean` write has loaded every row of the
partition into its transaction and only COMMIT is left, the server is stopped with
``pg_ctl stop -m immediate`` (every server process quits at once, no checkpoint) and started
again, which runs crash recovery from the WAL. The writer's COMMIT then fails on its dead
connection, the step's RetryPolicy runs it again, and the run succeeds.

What must hold: after recovery the crashed transaction is gone and everything committed before
the crash is there (the raw partitions, an older version of the partition and its neighbour);
after the run every daily table's partition equals the reference run's, row for row: nothing lost,
nothing twice.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from data_platform.catalog import DAILY_ASSETS
from data_platform.definitions import build_definitions
from data_platform.jobs import DAILY_JOB
from data_platform.resources.source import SourceResource
from data_platform.resources.warehouse import TableStore, WarehouseResource
from data_platform.sources.db import make_engine
from data_platform.tablestore import STAGING_PREFIX

PARTITION = "2025-03-03"
NEIGHBOUR = "2025-03-02"
CRASH_TABLE = "orders_clean"
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}

# Resources are plain config: the crashing store finds its cluster (and leaves what it saw) here.
CLUSTERS: dict[int, object] = {}
SEEN: dict[int, dict] = {}


def count(url: str, sql: str, **params) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar_one()
    finally:
        engine.dispose()


def read_sorted(store: TableStore, table: str, partition: str) -> pd.DataFrame:
    frame = store.read(table, partitions=[partition])
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


class CrashBeforeCommitStore(TableStore):
    """Crashes the server once, inside the write of `crash_table`, after its last row was loaded."""

    def __init__(self, url: str, port: int, crash_table: str, marker: str):
        super().__init__(url)
        self.url, self.port, self.crash_table, self.marker = url, port, crash_table, Path(marker)
        write_manifest = self._manifest.write  # the last step of every write, before COMMIT

        def write_manifest_then_crash(conn, table, specs):
            write_manifest(conn, table, specs)
            self._crash_once(conn, table)

        self._manifest.write = write_manifest_then_crash

    def _crash_once(self, conn, table):
        if table != self.crash_table or self.marker.exists():
            return
        self.marker.touch()
        cluster, seen = CLUSTERS[self.port], SEEN.setdefault(self.port, {})
        seen["rows_in_transaction"] = conn.execute(
            sa.text(f'SELECT count(*) FROM "{table}" WHERE _partition = :p'), {"p": PARTITION}
        ).scalar_one()
        seen["open_transactions"] = count(
            self.url,
            # Client backends only: an autovacuum worker also has a transaction and a database.
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND xact_start IS NOT NULL",
        )
        seen["pid_before"] = cluster.postmaster_pid()
        cluster.crash()
        cluster.start()
        seen["pid_after"] = cluster.postmaster_pid()
        # What a fresh connection sees once recovery is over, before the step is retried.
        after = TableStore(self.url)
        try:
            seen["crashed_partition"] = read_sorted(after, table, PARTITION)
            seen["neighbour"] = read_sorted(after, table, NEIGHBOUR)
            seen["orders_raw"] = read_sorted(after, "orders_raw", PARTITION)
        finally:
            after.dispose()
        # Returning lets the writer send COMMIT on a connection whose server process is gone.


class CrashingWarehouse(WarehouseResource):
    port: int
    crash_table: str
    marker: str

    def store(self) -> TableStore:
        if self._store is None:
            self._store = CrashBeforeCommitStore(self.url, self.port, self.crash_table, self.marker)
        return self._store


def run_daily(warehouse: WarehouseResource) -> dg.ExecuteInProcessResult:
    defs = build_definitions(warehouse=warehouse, source=SourceResource(synthetic_incidents=False))
    with dg.instance_for_test() as instance:
        return defs.resolve_job_def(DAILY_JOB).execute_in_process(
            instance=instance, partition_key=PARTITION, run_config=QUIET, raise_on_error=False
        )


def test_server_crash_mid_write_loses_nothing_and_the_retried_partition_lands_once(throwaway_postgres, tmp_path):
    cluster = throwaway_postgres
    reference_url = cluster.create_database("reference")
    crashed_url = cluster.create_database("crashed")

    assert run_daily(WarehouseResource(url=reference_url)).success
    reference = TableStore(reference_url)
    try:
        expected = {table: read_sorted(reference, table, PARTITION) for table in DAILY_ASSETS}
    finally:
        reference.dispose()
    assert len(expected["orders_raw"]) > 0 and len(expected[CRASH_TABLE]) > 0

    # Committed before the run: an older version of the partition and a neighbour partition.
    store = TableStore(crashed_url)
    older = expected[CRASH_TABLE].head(7)
    store.write(CRASH_TABLE, older, partition=PARTITION)
    store.write(CRASH_TABLE, expected[CRASH_TABLE], partition=NEIGHBOUR)
    store.dispose()

    CLUSTERS[cluster.port] = cluster
    try:
        result = run_daily(CrashingWarehouse(
            url=crashed_url, port=cluster.port, crash_table=CRASH_TABLE, marker=str(tmp_path / "crashed")
        ))
        seen = SEEN.pop(cluster.port)
    finally:
        CLUSTERS.pop(cluster.port, None)

    # The crash hit an open write transaction holding the whole new partition.
    assert seen["rows_in_transaction"] == len(expected[CRASH_TABLE])
    assert seen["open_transactions"] == 1
    assert seen["pid_after"] != seen["pid_before"]
    assert "database system was not properly shut down; automatic recovery in progress" in cluster.log()
    # Recovery threw the uncommitted transaction away and kept every committed one.
    pd.testing.assert_frame_equal(seen["crashed_partition"], older)
    pd.testing.assert_frame_equal(seen["neighbour"], expected[CRASH_TABLE])
    pd.testing.assert_frame_equal(seen["orders_raw"], expected["orders_raw"])

    assert result.success
    restarted = [e.step_key for e in result.all_events if e.event_type_value == "STEP_RESTARTED"]
    assert restarted == ["clean_orders"]
    store = TableStore(crashed_url)
    try:
        for table, frame in expected.items():
            pd.testing.assert_frame_equal(read_sorted(store, table, PARTITION), frame, obj=table)
            assert store.row_count(table, PARTITION) == len(frame), table
        pd.testing.assert_frame_equal(read_sorted(store, CRASH_TABLE, NEIGHBOUR), expected[CRASH_TABLE])
        assert store.row_count(CRASH_TABLE) == 2 * len(expected[CRASH_TABLE])
        assert not store.read("orders_raw", [PARTITION]).duplicated(["order_id", "line_no"]).any()
        engine = make_engine(crashed_url)
        try:
            assert [t for t in sa.inspect(engine).get_table_names() if t.startswith(STAGING_PREFIX)] == []
        finally:
            engine.dispose()
    finally:
        store.dispose()
