"""``TableStore``: tables of pandas frames in one SQL database (SQLite file or PostgreSQL)."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pandas as pd
import sqlalchemy as sa

from data_platform.sources.db import make_engine
from data_platform.tablestore.codecs import python_rows, restore_column
from data_platform.tablestore.copy import copy_in, copy_out
from data_platform.tablestore.manifest import Manifest
from data_platform.tablestore.schema import (
    MANIFEST_TABLE,
    PARTITION_COLUMN,
    PARTITION_DTYPE,
    SQL_TYPES,
    STAGING_PREFIX,
    TABLE_NAME_PATTERN,
    ColumnSpec,
    WarehouseError,
    check_table_name,
    describe_frame,
)

DEFAULT_CHUNK_ROWS = 100_000
CONNECT_ATTEMPTS = 4
CONNECT_FIRST_DELAY_S = 0.25


class TableStore:
    """Tables of pandas frames in one SQL database; see the package docstring for guarantees."""

    def __init__(self, url: str, schema: str | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS):
        self._engine = make_engine(url)
        self._postgres = self._engine.dialect.name == "postgresql"
        if schema is not None:
            if not self._postgres:
                raise WarehouseError(f"schema {schema!r}: schemas are supported on PostgreSQL only")
            if not isinstance(schema, str) or not TABLE_NAME_PATTERN.match(schema):
                raise WarehouseError(f"invalid schema name {schema!r}: use letters, digits and underscores")
        self.schema = schema
        self.chunk_rows = max(1, int(chunk_rows))
        self._manifest = Manifest(schema)
        self._manifest_ready = False
        if self._engine.dialect.name == "sqlite":
            self._control_sqlite_transactions()

    @property
    def backend(self) -> str:
        """The SQLAlchemy dialect name: ``sqlite`` or ``postgresql``."""
        return self._engine.dialect.name

    def _control_sqlite_transactions(self) -> None:
        # pysqlite neither begins a transaction before DDL nor lets us pick IMMEDIATE; without
        # this, a DROP would autocommit and a deferred writer could fail to upgrade its lock.
        @sa.event.listens_for(self._engine, "connect")
        def _own_transactions(dbapi_conn, _record):
            dbapi_conn.isolation_level = None

        @sa.event.listens_for(self._engine, "begin")
        def _begin(conn):
            immediate = conn.get_execution_options().get("dp_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    # -- connections ------------------------------------------------------------------------

    def _connect(self) -> sa.Connection:
        delay = CONNECT_FIRST_DELAY_S
        for attempt in range(1, CONNECT_ATTEMPTS + 1):
            try:
                return self._engine.connect()
            except sa.exc.OperationalError as error:
                if attempt == CONNECT_ATTEMPTS:
                    url = self._engine.url.render_as_string(hide_password=True)
                    raise WarehouseError(
                        f"cannot connect to the warehouse at {url} after {attempt} attempts: "
                        f"{type(error.orig).__name__}"
                    ) from None
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    @contextmanager
    def _transaction(self, write: bool = False) -> Iterator[sa.Connection]:
        with self._connect() as conn:
            if write:
                conn = conn.execution_options(dp_write=True)
            with conn.begin():
                yield conn

    def _lock(self, conn: sa.Connection, name: str) -> None:
        if self._postgres:
            key = f"{self.schema or ''}.{name}"
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})

    def _ensure_manifest(self) -> None:
        if self._manifest_ready:
            return
        with self._transaction(write=True) as conn:
            self._lock(conn, MANIFEST_TABLE)
            if self.schema is not None:
                conn.execute(sa.schema.CreateSchema(self.schema, if_not_exists=True))
            self._manifest.create(conn)
        self._manifest_ready = True

    # -- table objects ----------------------------------------------------------------------

    def _table(self, name: str, specs: Sequence[ColumnSpec], partitioned: bool) -> sa.Table:
        columns = [sa.Column(spec.name, SQL_TYPES[spec.kind]()) for spec in specs]
        if partitioned:
            columns.append(sa.Column(PARTITION_COLUMN, sa.Text, nullable=False))
        table = sa.Table(name, sa.MetaData(schema=self.schema), *columns)
        if partitioned:
            digest = hashlib.sha1(name.encode()).hexdigest()[:16]
            sa.Index(f"ix_dp_{digest}_partition", table.c[PARTITION_COLUMN])
        return table

    def _stored(self, conn: sa.Connection, table: str) -> tuple[list[ColumnSpec], bool]:
        specs = self._manifest.read(conn, table)
        if not specs:
            if sa.inspect(conn).has_table(table, schema=self.schema):
                raise WarehouseError(f"table {table!r} exists but was not written by the warehouse")
            raise WarehouseError(f"table {table!r} does not exist in the warehouse")
        partitioned = any(s.dtype == PARTITION_DTYPE for s in specs)
        return [s for s in specs if s.dtype != PARTITION_DTYPE], partitioned

    # -- writing ----------------------------------------------------------------------------

    def write(self, table: str, df: pd.DataFrame, partition: str | None = None) -> int:
        """Replace ``partition`` of ``table`` (or the whole table) with ``df``; returns rows written."""
        check_table_name(table)
        specs = describe_frame(table, df)
        if partition is not None and (not isinstance(partition, str) or not partition or "\x00" in partition):
            raise WarehouseError(f"table {table!r}: invalid partition key {partition!r}")
        self._ensure_manifest()
        frame = df.reset_index(drop=True)
        if partition is None:
            self._replace_table(table, frame, specs)
        else:
            self._replace_partition(table, frame, specs, partition)
        return len(frame)

    def _replace_partition(self, table: str, df: pd.DataFrame, specs: list[ColumnSpec], partition: str) -> None:
        with self._transaction(write=True) as conn:
            self._lock(conn, table)
            stored = self._manifest.read(conn, table)
            if stored and not any(s.dtype == PARTITION_DTYPE for s in stored):
                raise WarehouseError(
                    f"table {table!r} is stored unpartitioned; drop it before writing partitions"
                )
            stored = [s for s in stored if s.dtype != PARTITION_DTYPE]
            merged = self._merge_specs(table, stored, specs)
            sql_table = self._table(table, merged, partitioned=True)
            if not stored:
                if sa.inspect(conn).has_table(table, schema=self.schema):
                    raise WarehouseError(f"table {table!r} exists but was not written by the warehouse")
                sql_table.create(conn)
            else:
                self._add_columns(conn, sql_table, [s for s in merged if s.name not in {x.name for x in stored}])
                conn.execute(sa.delete(sql_table).where(sql_table.c[PARTITION_COLUMN] == partition))
            self._load(conn, sql_table, df, specs, partition)
            self._manifest.write(conn, table, [*merged, ColumnSpec(PARTITION_COLUMN, "text", PARTITION_DTYPE)])

    @staticmethod
    def _merge_specs(table: str, stored: list[ColumnSpec], new: list[ColumnSpec]) -> list[ColumnSpec]:
        by_name = {s.name: s for s in new}
        lowered = {s.name.lower(): s.name for s in stored}
        merged = []
        for old in stored:
            incoming = by_name.get(old.name)
            if incoming is None:
                merged.append(old)
            elif incoming.kind != old.kind:
                raise WarehouseError(
                    f"table {table!r}: column {old.name!r} is stored as {old.dtype} "
                    f"and cannot now take {incoming.dtype}"
                )
            else:
                merged.append(incoming)
        for spec in new:
            if spec.name not in {s.name for s in stored}:
                if spec.name.lower() in lowered:
                    raise WarehouseError(
                        f"table {table!r}: column {spec.name!r} clashes with stored column {lowered[spec.name.lower()]!r}"
                    )
                merged.append(spec)
        return merged

    def _add_columns(self, conn: sa.Connection, sql_table: sa.Table, specs: Sequence[ColumnSpec]) -> None:
        preparer = conn.dialect.identifier_preparer
        for spec in specs:
            column_type = SQL_TYPES[spec.kind]().compile(dialect=conn.dialect)
            conn.exec_driver_sql(
                f"ALTER TABLE {preparer.format_table(sql_table)} "
                f"ADD COLUMN {preparer.quote(spec.name)} {column_type}"
            )

    def _replace_table(self, table: str, df: pd.DataFrame, specs: list[ColumnSpec]) -> None:
        staging_name = f"{STAGING_PREFIX}{uuid.uuid4().hex[:20]}"
        with self._transaction(write=True) as conn:
            staging = self._table(staging_name, specs, partitioned=False)
            staging.create(conn)
            self._load(conn, staging, df, specs, None)
            # The lock comes after the load so that a long load does not block other writers.
            self._lock(conn, table)
            stored = self._manifest.read(conn, table)
            if any(s.dtype == PARTITION_DTYPE for s in stored):
                raise WarehouseError(
                    f"table {table!r} is stored partitioned; write a partition, or drop it first"
                )
            old = sa.Table(table, sa.MetaData(schema=self.schema))
            if stored:
                old.drop(conn)
            elif sa.inspect(conn).has_table(table, schema=self.schema):
                raise WarehouseError(f"table {table!r} exists but was not written by the warehouse")
            preparer = conn.dialect.identifier_preparer
            conn.exec_driver_sql(
                f"ALTER TABLE {preparer.format_table(staging)} RENAME TO {preparer.quote(table)}"
            )
            self._manifest.write(conn, table, specs)

    def _load(self, conn: sa.Connection, sql_table: sa.Table, df: pd.DataFrame,
              specs: Sequence[ColumnSpec], partition: str | None) -> None:
        if df.empty:
            return
        if self._postgres:
            copy_in(conn, sql_table, df, specs, partition, self.chunk_rows)
            return
        names = [s.name for s in specs] + ([PARTITION_COLUMN] if partition is not None else [])
        statement = str(sa.insert(sql_table).compile(dialect=conn.dialect, column_keys=names))
        for start in range(0, len(df), self.chunk_rows):
            chunk = df.iloc[start:start + self.chunk_rows]
            conn.exec_driver_sql(statement, python_rows(chunk, specs, partition))

    # -- reading ----------------------------------------------------------------------------

    def read(self, table: str, partitions: Sequence[str] | None = None,
             columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Rows of ``table`` (only ``partitions`` if given) with the dtypes they were written with.

        The ``_partition`` column is dropped unless it is named in ``columns``.
        """
        check_table_name(table)
        if isinstance(partitions, str):
            raise WarehouseError(f"table {table!r}: partitions must be a list of keys, not a string")
        self._ensure_manifest()
        with self._transaction() as conn:
            specs, partitioned = self._stored(conn, table)
            if partitions is not None and not partitioned:
                raise WarehouseError(f"table {table!r} is not partitioned; read it without partitions")
            available = {s.name: s for s in specs}
            if partitioned:
                available[PARTITION_COLUMN] = ColumnSpec(PARTITION_COLUMN, "text", PARTITION_DTYPE)
            if columns is None:
                chosen = specs
            else:
                missing = [c for c in columns if c not in available]
                if missing:
                    raise WarehouseError(f"table {table!r} has no column(s) {missing}")
                chosen = [available[c] for c in columns]
            sql_table = self._table(table, specs, partitioned)
            where = None
            if partitions is not None:
                where = sql_table.c[PARTITION_COLUMN].in_(list(partitions))
            if self._postgres:
                raw = copy_out(conn, sql_table, chosen, where)
            else:
                query = sa.select(*[sql_table.c[s.name] for s in chosen])
                if where is not None:
                    query = query.where(where)
                rows = conn.execute(query).all()
                # Column by column from plain tuples: pandas probing each SQLAlchemy Row for
                # attributes cost more than the query itself.
                values = list(zip(*rows, strict=True)) if rows else [()] * len(chosen)
                raw = pd.DataFrame(
                    {s.name: pd.Series(list(v), dtype=object) for s, v in zip(chosen, values, strict=True)},
                    columns=[s.name for s in chosen],
                )
        # copy=False keeps one block per column instead of copying same-dtype columns together.
        return pd.DataFrame({s.name: restore_column(raw[s.name], s.dtype) for s in chosen},
                            columns=[s.name for s in chosen], copy=False)

    # -- inspection and maintenance ---------------------------------------------------------

    def exists(self, table: str) -> bool:
        check_table_name(table)
        self._ensure_manifest()
        with self._transaction() as conn:
            return bool(self._manifest.read(conn, table))

    def partitions(self, table: str) -> list[str]:
        check_table_name(table)
        self._ensure_manifest()
        with self._transaction() as conn:
            specs, partitioned = self._stored(conn, table)
            if not partitioned:
                return []
            column = self._table(table, specs, True).c[PARTITION_COLUMN]
            return list(conn.execute(sa.select(column).distinct().order_by(column)).scalars())

    def row_count(self, table: str, partition: str | None = None) -> int:
        check_table_name(table)
        self._ensure_manifest()
        with self._transaction() as conn:
            specs, partitioned = self._stored(conn, table)
            sql_table = self._table(table, specs, partitioned)
            query = sa.select(sa.func.count()).select_from(sql_table)
            if partition is not None:
                if not partitioned:
                    raise WarehouseError(f"table {table!r} is not partitioned")
                query = query.where(sql_table.c[PARTITION_COLUMN] == partition)
            return int(conn.execute(query).scalar_one())

    def drop(self, table: str) -> None:
        check_table_name(table)
        self._ensure_manifest()
        with self._transaction(write=True) as conn:
            self._lock(conn, table)
            if self._manifest.read(conn, table):
                sa.Table(table, sa.MetaData(schema=self.schema)).drop(conn, checkfirst=True)
                self._manifest.delete(conn, table)

    def dispose(self) -> None:
        self._engine.dispose()
