"""Embedded SQLite instance storage that keeps its event-log connections open.

Dagster's `SqliteEventLogStorage` builds a SQLAlchemy engine, opens a SQLite connection and
closes it again for every read and every stored event (a daily run of this platform stores
about 250 events, each touching the run shard and often the index shard). Closing the last
connection to a WAL database also checkpoints it. Measured on the demo, that connection churn
was the largest single cost of a run (docs/benchmarks.md).

`KeepOpenSqliteEventLogStorage` keeps one engine with one pooled connection per shard: the
index shard and the `max_open_shards` most recently used run shards. Everything else (schema,
WAL journal, file layout, the lock that serializes access) is Dagster's own. A forked child (a Celery prefork worker, a multiprocessing fork) never uses or closes what it
inherited: engines are per process id, and the inherited ones are dropped without closing.
A shard whose file disappeared (`wipe`, a deleted run) is opened afresh.

Enable it in `$DAGSTER_HOME/dagster.yaml` (the repository's dagster.yaml does):

    storage:
      custom:
        module: data_platform.resources.instance_storage
        class: KeepOpenSqliteStorage
        config:
          base_dir: {env: DAGSTER_HOME}

PostgreSQL instances (deploy/dagster.postgres.yaml) pool connections already and do not use it.
"""

from __future__ import annotations

import os
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SqliteEventLogStorage,
)
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from dagster._serdes import ConfigurableClassData
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool, QueuePool

DEFAULT_MAX_OPEN_SHARDS = 8
# How long a writer waits for another process's lock: Dagster's own SQLite storage waits 30 s in
# later 1.13 releases and sqlite3's default 5 s before them; ours is the same on every release.
SQLITE_BUSY_TIMEOUT_SECONDS = 30


class _OpenEngines:
    """This process's engines by shard, least recently used first.

    Kept apart from the storage so that a finalizer can close them at interpreter exit (a
    cleanly closed WAL database leaves no -wal/-shm files behind) without keeping the storage
    alive.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.by_shard: OrderedDict[str, Engine] = OrderedDict()

    def adopt_after_fork(self) -> None:
        if self.pid == os.getpid():
            return
        # Inherited through fork: the parent still owns these connections. Forget them without
        # closing (closing would checkpoint the parent's databases under its feet).
        for engine in self.by_shard.values():
            engine.dispose(close=False)
        self.by_shard.clear()
        self.pid = os.getpid()

    def close(self, shard: str) -> None:
        engine = self.by_shard.pop(shard, None)
        if engine is not None:
            engine.dispose()

    def close_all(self) -> None:
        if self.pid != os.getpid():
            return
        for shard in list(self.by_shard):
            self.close(shard)


class KeepOpenSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` with one long-lived connection per recently used shard."""

    def __init__(
        self,
        base_dir: str,
        inst_data: ConfigurableClassData | None = None,
        max_open_shards: int = DEFAULT_MAX_OPEN_SHARDS,
    ):
        if max_open_shards < 1:
            raise ValueError(f"max_open_shards must be at least 1, not {max_open_shards}")
        self._max_open_shards = max_open_shards
        self._open = _OpenEngines()
        weakref.finalize(self, self._open.close_all)
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Any):
        return cls(inst_data=inst_data, **config_value)

    @property
    def open_shards(self) -> list[str]:
        """Shards with an open engine in this process, least recently used first."""
        return list(self._open.by_shard) if self._open.pid == os.getpid() else []

    def _engine(self, shard: str) -> Engine:
        self._open.adopt_after_fork()
        engines = self._open.by_shard
        if shard in engines and not os.path.exists(self.path_for_shard(shard)):
            # Deleted underneath us (a wipe by another process): start a new file and schema.
            self._open.close(shard)
            self._initialized_dbs.discard(shard)
        if shard not in engines:
            url = self.conn_string_for_shard(shard)
            if shard not in self._initialized_dbs:
                # Dagster's schema set-up inspects the file on a second connection.
                setup = create_engine(
                    url, poolclass=NullPool, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
                )
                self._initdb(setup)
                setup.dispose()
                self._initialized_dbs.add(shard)
            engines[shard] = create_engine(
                url,
                poolclass=QueuePool,
                pool_size=1,
                max_overflow=0,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            )
            runs_open = [s for s in engines if s != INDEX_SHARD_NAME]
            for victim in runs_open[: max(0, len(runs_open) - self._max_open_shards)]:
                self._open.close(victim)
        engines.move_to_end(shard)
        return engines[shard]

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:  # type: ignore[override]
        # Same contract as Dagster's: one lock serializes every connection of this storage.
        with self._db_lock:
            with self._engine(shard).connect() as conn, conn.begin():
                yield conn

    def close_connections(self) -> None:
        """Close every connection this process holds (the next access reopens one)."""
        with self._db_lock:
            self._open.close_all()

    def wipe(self) -> None:
        self.close_connections()  # the run-shard files are about to be deleted
        super().wipe()

    def dispose(self) -> None:
        super().dispose()
        self.close_connections()


class KeepOpenSqliteStorage(DagsterSqliteStorage):
    """The default SQLite instance storage (same files under `base_dir`), with the event log
    of `KeepOpenSqliteEventLogStorage`."""

    def __init__(
        self,
        base_dir: str,
        inst_data: ConfigurableClassData | None = None,
        max_open_shards: int = DEFAULT_MAX_OPEN_SHARDS,
    ):
        # Dagster's constructor lays out the three storages; only the event log is swapped
        # (the plain one it builds first costs a directory check and is never used).
        super().__init__(base_dir, inst_data=inst_data)
        self._event_log_storage = KeepOpenSqliteEventLogStorage(
            _event_logs_directory(base_dir), max_open_shards=max_open_shards
        )

    @classmethod
    def config_type(cls):
        from dagster import Field, IntSource, StringSource

        return {
            "base_dir": StringSource,
            "max_open_shards": Field(IntSource, is_required=False, default_value=DEFAULT_MAX_OPEN_SHARDS),
        }

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Any):
        return cls(inst_data=inst_data, **config_value)
