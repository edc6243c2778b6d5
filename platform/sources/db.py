"""Engines for any SQLAlchemy URL, with the drivers this project ships.

SQLAlchemy 2.1 maps a bare ``postgresql://`` URL to psycopg 3; the project installs
psycopg2-binary, so bare PostgreSQL URLs are pinned to psycopg2 here. SQLite files get WAL
and a busy timeout so that a reader and a writer in two processes wait instead of failing.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str | sa.URL) -> sa.URL:
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


def is_postgres(url: str | sa.URL) -> bool:
    return normalize_url(url).get_backend_name() == "postgresql"


def is_sqlite(url: str | sa.URL) -> bool:
    return normalize_url(url).get_backend_name() == "sqlite"


def make_engine(url: str | sa.URL, **kwargs) -> sa.Engine:
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        engine = sa.create_engine(parsed, **kwargs)

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # pragma: no cover - exercised by every SQLite test
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(parsed, **kwargs)


_SQLITE_TUNED = False


def tune_sqlite_connections(synchronous: str | None = None) -> None:
    """WAL + `synchronous=NORMAL` for every SQLite connection this process opens.

    Dagster's embedded instance opens a SQLite connection per stored event; with the default
    `synchronous=FULL` each commit waits for the disk, which dominates a run's wall time. WAL with
    NORMAL keeps every commit atomic and survives a crash of the process; only an operating-system
    crash or power loss can lose the last transactions. Set `DATA_PLATFORM_SQLITE_SYNCHRONOUS=FULL`
    to trade speed for that. Production instances use PostgreSQL and are not affected.
    """
    global _SQLITE_TUNED
    if _SQLITE_TUNED:
        return
    import os
    import sqlite3

    level = (synchronous or os.environ.get("DATA_PLATFORM_SQLITE_SYNCHRONOUS", "NORMAL")).upper()
    if level not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise ValueError(f"DATA_PLATFORM_SQLITE_SYNCHRONOUS must be OFF, NORMAL, FULL or EXTRA, not {level!r}")

    @sa.event.listens_for(sa.engine.Engine, "connect")
    def _tune(dbapi_conn, _record):  # pragma: no cover - exercised by every SQLite connection
        if isinstance(dbapi_conn, sqlite3.Connection):
            cur = dbapi_conn.cursor()
            try:
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA synchronous={level}")
            except sqlite3.OperationalError:
                pass  # a locked or read-only file keeps its own settings
            finally:
                cur.close()

    _SQLITE_TUNED = True
