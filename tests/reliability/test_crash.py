"""A writer killed with SIGKILL in the middle of a warehouse write leaves the previous version intact.

The write runs in a real child process. A hook in the child touches a marker file at a chosen
point of the write (after the first chunk was loaded, or after every chunk was loaded and only the
commit is left) and then waits; the parent sees the marker, checks that a write transaction is
really open, and kills the child with SIGKILL: no ``finally``, no rollback from the client. What
the database holds afterwards must be exactly what it held before, and a re-run must write exactly
one copy.

The second part puts a loopback TCP proxy between the store and PostgreSQL and cuts every
connection: an outage shorter than the connect retries is ridden out, a longer one fails with a
clear error, and a cut in the middle of a COPY fails the write without touching the old partition.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from data_platform import tablestore
from data_platform.sources.db import make_engine
from data_platform.tablestore import STAGING_PREFIX, TableStore, WarehouseError

BIG_ROWS = 120_000
CHUNK_ROWS = 10_000

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import pandas as pd
    from data_platform import tablestore

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
        tablestore.copy.encode_csv = after_chunks(tablestore.copy.encode_csv, 2)
        tablestore.store.python_rows = after_chunks(tablestore.store.python_rows, 2)
    elif stop_at == "before_commit":
        # The manifest is written last, after every chunk was loaded: only COMMIT is left.
        original = tablestore.manifest.Manifest.write
        def before_commit(self, conn, name, specs):
            original(self, conn, name, specs)
            halt()
        tablestore.manifest.Manifest.write = before_commit
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


# ---------------------------------------------------------------------------------------------
# Transient database outages, through a loopback TCP proxy in front of the real PostgreSQL.


class FlakyProxy:
    """Forwards 127.0.0.1:<port> to PostgreSQL; `cut` drops every live connection and refuses new
    ones for a while, like a failover or a network blip."""

    def __init__(self, host: str, port: int):
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.refused = 0
        self._down_until = 0.0
        self._live: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, database_url: str) -> str:
        parsed = sa.make_url(database_url).set(host="127.0.0.1", port=self.port)
        return parsed.render_as_string(hide_password=False)

    def cut(self, seconds: float) -> None:
        with self._lock:
            self._down_until = time.monotonic() + seconds
            for sock in self._live:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._live.clear()

    def wait_until_up(self) -> None:
        time.sleep(max(0.0, self._down_until - time.monotonic()))

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        self.cut(0)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if time.monotonic() < self._down_until:
                self.refused += 1
                client.close()
                continue
            upstream = socket.create_connection(self.upstream)
            with self._lock:
                self._live.update((client, upstream))
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def flaky(postgres_url):
    parsed = sa.make_url(postgres_url)
    proxy = FlakyProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
    yield proxy, proxy.url(postgres_url)
    proxy.close()


def test_outage_shorter_than_the_connect_retries_is_ridden_out(flaky):
    proxy, url = flaky
    store = TableStore(url)
    try:
        store.write("facts", pd.DataFrame({"id": range(100), "label": "old"}), partition="p")
        # The pooled connection dies and reconnects are refused for 1 s: within the retry budget
        # (CONNECT_ATTEMPTS with waits of 0.25 s, 0.5 s, 1 s).
        proxy.cut(1.0)
        started = time.monotonic()
        store.write("facts", pd.DataFrame({"id": range(5000), "label": "new"}), partition="p")
        assert time.monotonic() - started >= 0.5 and proxy.refused >= 1
        again = store.read("facts", partitions=["p"])
        assert len(again) == 5000 and again["id"].is_unique and set(again["label"]) == {"new"}
    finally:
        store.dispose()


def test_outage_longer_than_the_retries_fails_cleanly_and_keeps_the_partition(flaky, monkeypatch):
    proxy, url = flaky
    monkeypatch.setattr(tablestore.store, "CONNECT_FIRST_DELAY_S", 0.05)
    store = TableStore(url)
    try:
        previous = pd.DataFrame({"id": range(100), "label": "old"})
        store.write("facts", previous, partition="p")
        proxy.cut(1.5)  # longer than the retries' waits: 0.05 + 0.1 + 0.2 s
        with pytest.raises(WarehouseError, match="cannot connect to the warehouse .* after 4 attempts"):
            store.write("facts", pd.DataFrame({"id": range(10), "label": "new"}), partition="p")
        proxy.wait_until_up()
        pd.testing.assert_frame_equal(store.read("facts", partitions=["p"]), previous)
    finally:
        store.dispose()


def test_connection_cut_during_the_copy_fails_the_write_atomically(flaky, monkeypatch):
    """A write is one transaction: a cut mid-COPY is not retried inside the write (the rows sent so
    far are gone with the connection); the write raises, and the re-run writes one copy."""
    proxy, url = flaky
    store = TableStore(url, chunk_rows=1000)
    try:
        previous = pd.DataFrame({"id": range(100), "label": "old"})
        store.write("facts", previous, partition="p")
        encode = tablestore.copy.encode_csv
        calls = {"n": 0}

        def cut_on_third_chunk(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 3:
                proxy.cut(0.2)
            return encode(*args, **kwargs)

        monkeypatch.setattr(tablestore.copy, "encode_csv", cut_on_third_chunk)
        new = pd.DataFrame({"id": range(10_000), "label": "new"})
        with pytest.raises(sa.exc.DBAPIError):
            store.write("facts", new, partition="p")
        assert calls["n"] >= 3
        pd.testing.assert_frame_equal(store.read("facts", partitions=["p"]), previous)
        store.write("facts", new, partition="p")
        again = store.read("facts", partitions=["p"])
        assert len(again) == 10_000 and again["id"].is_unique and set(again["label"]) == {"new"}
    finally:
        store.dispose()
