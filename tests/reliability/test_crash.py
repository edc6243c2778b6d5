"""A writer killed with SIGKILL in the middle of a warehouse write leaves the previous version intact.

The write runs in a real child process. A hook in the child touches a marker file at a chosen
point of the write (after the first chunk was loaded, or after every chunk was loaded and only the
commit is left) and then waits; the parent sees the marker, checks that a write transaction is
really open, and kills the child with SIGKILL: no ``finally``, no rollback from the client. What
the database holds afterwards must be exactly what it held before, and a re-run must write exactly
one copy.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from data_platform.resources.tablestore import STAGING_PREFIX, TableStore
from data_platform.sources.db import make_engine

BIG_ROWS = 120_000
CHUNK_ROWS = 10_000

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import pandas as pd
    from data_platform.resources import tablestore

    url, table, partition, stop_at, marker = sys.argv[1:6]
    rows, chunk_rows = int(sys.argv[6]), int(sys.argv[7])

    def halt():
        # Announce the point reached, then stay inside the open transaction until killed.
        Path(marker).write_text("reached")
        time.sleep(120)
        raise SystemExit("was not killed")

    def after_chunks(function, limit):
        count = {"n": 0}
        def wrapped(*args, **kwargs):
            out = function(*args, **kwargs)
            count["n"] += 1
            if count["n"] == limit:
                halt()
            return out
        return wrapped

    if stop_at == "first_chunk":
        # The second chunk is being produced: the first one is already in the transaction.
        tablestore.encode_csv = after_chunks(tablestore.encode_csv, 2)
        tablestore._python_rows = after_chunks(tablestore._python_rows, 2)
    elif stop_at == "before_commit":
        # The manifest is written last, after every chunk was loaded: only COMMIT is left.
        original = tablestore.TableStore._write_manifest
        def before_commit(self, conn, name, specs):
            original(self, conn, name, specs)
            halt()
        tablestore.TableStore._write_manifest = before_commit
    store = tablestore.TableStore(url, chunk_rows=chunk_rows)
    frame = pd.DataFrame({"id": range(rows), "label": "new", "payload": "x" * 40})
    store.write(table, frame, partition=None if partition == "-" else partition)
    store.dispose()
    """
)


def spawn_writer(url: str, table: str, partition: str | None, stop_at: str, marker: Path,
                 rows: int = BIG_ROWS) -> subprocess.Popen:
    args = [url, table, partition or "-", stop_at, str(marker), str(rows), str(CHUNK_ROWS)]
    return subprocess.Popen([sys.executable, "-c", CHILD, *args], stderr=subprocess.PIPE)


def wait_for(marker: Path, child: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not marker.exists():
        if child.poll() is not None:
            raise AssertionError(f"writer exited before the crash point: {child.stderr.read().decode()}")
        if time.monotonic() > deadline:
            child.kill()
            raise AssertionError("writer never reached the crash point")
        time.sleep(0.02)


def assert_write_transaction_open(url: str) -> None:
    """Proof that the kill lands inside the write, not before or after it."""
    if url.startswith("sqlite"):
        # The child holds the RESERVED lock of BEGIN IMMEDIATE; nobody else can start a write.
        database = sa.make_url(url).database
        probe = sqlite3.connect(database, timeout=0, isolation_level=None)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                probe.execute("BEGIN IMMEDIATE")
        finally:
            probe.close()
        return
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            open_transactions = conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
            )).scalar_one()
    finally:
        engine.dispose()
    assert open_transactions == 1


def kill_mid_write(url: str, table: str, partition: str | None, stop_at: str, tmp_path: Path) -> None:
    marker = tmp_path / f"reached-{stop_at}"
    child = spawn_writer(url, table, partition, stop_at, marker)
    try:
        wait_for(marker, child)
        assert_write_transaction_open(url)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL


def staging_tables(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        return [n for n in sa.inspect(engine).get_table_names() if n.startswith(STAGING_PREFIX)]
    finally:
        engine.dispose()


def rerun(url: str, table: str, partition: str | None, tmp_path: Path, rows: int) -> None:
    child = spawn_writer(url, table, partition, "never", tmp_path / "unused", rows=rows)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 0, err.decode()


STOP_POINTS = ["first_chunk", "before_commit"]


@pytest.mark.parametrize("stop_at", STOP_POINTS)
def test_killed_partition_write_keeps_previous_partition(warehouse_url, tmp_path, stop_at):
    store = TableStore(warehouse_url)
    try:
        previous = pd.DataFrame({"id": range(1000), "label": "old", "payload": "p"})
        neighbour = pd.DataFrame({"id": range(500), "label": "neighbour", "payload": "n"})
        store.write("facts", previous, partition="2024-01-02")
        store.write("facts", neighbour, partition="2024-01-01")

        kill_mid_write(warehouse_url, "facts", "2024-01-02", stop_at, tmp_path)

        # The killed transaction is gone: the same frames come back, value for value.
        pd.testing.assert_frame_equal(store.read("facts", partitions=["2024-01-02"]), previous)
        pd.testing.assert_frame_equal(store.read("facts", partitions=["2024-01-01"]), neighbour)
        assert store.row_count("facts") == 1500
        assert store.partitions("facts") == ["2024-01-01", "2024-01-02"]

        rows = 3 * CHUNK_ROWS + 7
        rerun(warehouse_url, "facts", "2024-01-02", tmp_path, rows)
        again = store.read("facts", partitions=["2024-01-02"])
        assert len(again) == rows and again["id"].is_unique and set(again["label"]) == {"new"}
        pd.testing.assert_frame_equal(store.read("facts", partitions=["2024-01-01"]), neighbour)
        assert store.row_count("facts") == rows + 500
    finally:
        store.dispose()


@pytest.mark.parametrize("stop_at", STOP_POINTS)
def test_killed_table_write_keeps_previous_table(warehouse_url, tmp_path, stop_at):
    store = TableStore(warehouse_url)
    try:
        previous = pd.DataFrame({"id": range(1000), "label": "old", "payload": "p"})
        store.write("snapshot", previous)

        kill_mid_write(warehouse_url, "snapshot", None, stop_at, tmp_path)

        pd.testing.assert_frame_equal(store.read("snapshot"), previous)
        # The staging table was created inside the killed transaction, so it is gone too.
        assert staging_tables(warehouse_url) == []

        rows = 2 * CHUNK_ROWS + 3
        rerun(warehouse_url, "snapshot", None, tmp_path, rows)
        again = store.read("snapshot")
        assert len(again) == rows and again["id"].is_unique and set(again["label"]) == {"new"}
        assert staging_tables(warehouse_url) == []
    finally:
        store.dispose()
