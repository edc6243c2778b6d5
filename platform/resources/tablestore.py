"""A warehouse of pandas tables over any SQLAlchemy URL (SQLite file or PostgreSQL), without Dagster.

What it promises:

- Exact dtype round trip. A manifest table (``_dp_columns``) records each column's pandas dtype and
  position, written in the same transaction as the data, and ``read`` restores them: ``str``,
  ``string``, ``object`` (of str), ``int64``/``Int64`` (and the other integer widths), ``float64``/
  ``Float64``, ``bool``/``boolean``, ``datetime64[unit]`` and ``datetime64[unit, tz]`` (stored as
  naive UTC). An empty string comes back empty, a missing value comes back missing. A column that
  is NULL in some partition (schema drift) cannot be held by ``int64``/``bool``; it comes back as
  ``Int64``/``boolean`` instead. The DataFrame index is not stored. Timestamps are stored with
  microsecond precision, so nanosecond parts are refused rather than silently truncated.
- Atomic replacement. ``write(table, df, partition=k)`` deletes partition ``k`` and loads the frame
  in one transaction; ``write(table, df)`` loads a staging table and swaps it in within the same
  transaction. Readers see the old or the new version, never half of one; a failure leaves the
  old version; re-writing never duplicates.
- Partitioned tables carry a text column ``_partition`` (indexed). ``read`` drops it unless it is
  asked for in ``columns``. Row order is the storage order, not guaranteed across partitions.
- Names are validated and always quoted by SQLAlchemy; values are always bound parameters.
- PostgreSQL loads with one ``COPY FROM STDIN`` streaming CSV encoded chunk by chunk by Arrow's CSV
  writer, and reads with ``COPY TO STDOUT`` parsed by Arrow's CSV reader into typed columns;
  DDL and writes of one table are serialized with a transaction-level advisory lock. SQLite
  writes take ``BEGIN IMMEDIATE`` so that concurrent writers wait (busy timeout) instead of
  failing on a lock upgrade.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa
from pandas.api import types as pdt

from data_platform.sources.db import make_engine

PARTITION_COLUMN = "_partition"
MANIFEST_TABLE = "_dp_columns"
STAGING_PREFIX = "_dp_stage_"
TABLE_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
MAX_COLUMN_NAME_LENGTH = 63
DEFAULT_CHUNK_ROWS = 100_000
COPY_READ_SIZE = 1 << 20
CONNECT_ATTEMPTS = 4
CONNECT_FIRST_DELAY_S = 0.25
_PARTITION_DTYPE = "partition"

_SQL_TYPES = {
    "int": sa.BigInteger,
    "float": sa.Double,
    "bool": sa.Boolean,
    "datetime": sa.DateTime,
    "text": sa.Text,
}


class WarehouseError(Exception):
    """A table cannot be written or read as asked; the message names the table."""


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    kind: str  # one of _SQL_TYPES
    dtype: str  # str(pandas dtype), restored on read


def _kind_of_dtype(dtype_name: str) -> str:
    if dtype_name == _PARTITION_DTYPE:
        return "text"
    dtype = pdt.pandas_dtype(dtype_name)
    if pdt.is_bool_dtype(dtype):
        return "bool"
    if pdt.is_integer_dtype(dtype):
        return "int"
    if pdt.is_float_dtype(dtype):
        return "float"
    if pdt.is_datetime64_any_dtype(dtype):
        return "datetime"
    return "text"


def check_table_name(table: str) -> str:
    if not isinstance(table, str) or not TABLE_NAME_PATTERN.match(table):
        raise WarehouseError(
            f"invalid table name {table!r}: use letters, digits and underscores, "
            "starting with a letter or underscore, at most 63 characters"
        )
    if table == MANIFEST_TABLE or table.startswith(STAGING_PREFIX):
        raise WarehouseError(f"invalid table name {table!r}: reserved for the warehouse itself")
    return table


def _check_column_name(table: str, name: object) -> str:
    # PostgreSQL silently truncates identifiers past 63 bytes (not characters).
    if (not isinstance(name, str) or not name or "\x00" in name
            or len(name.encode("utf-8", "surrogatepass")) > MAX_COLUMN_NAME_LENGTH):
        raise WarehouseError(
            f"table {table!r}: invalid column name {name!r}: a non-empty string of at most "
            f"{MAX_COLUMN_NAME_LENGTH} bytes (UTF-8) without NUL"
        )
    return name


def describe_frame(table: str, df: pd.DataFrame) -> list[ColumnSpec]:
    """Column specs of a frame, or one WarehouseError naming the table and the offending column."""
    if not isinstance(df, pd.DataFrame):
        raise WarehouseError(f"table {table!r}: expected a pandas DataFrame, got {type(df).__name__}")
    if len(df.columns) == 0:
        raise WarehouseError(f"table {table!r}: a DataFrame without columns cannot be stored")
    seen: set[str] = set()
    specs = []
    for position, name in enumerate(df.columns):
        _check_column_name(table, name)
        if name == PARTITION_COLUMN:
            raise WarehouseError(f"table {table!r}: column name {PARTITION_COLUMN!r} is reserved")
        # SQLite compares identifiers case-insensitively; refuse what one backend would merge.
        if name.lower() in seen:
            raise WarehouseError(f"table {table!r}: duplicate column name {name!r}")
        seen.add(name.lower())
        series = df.iloc[:, position]
        specs.append(ColumnSpec(name, _kind_of_series(table, name, series), str(series.dtype)))
    return specs


def _kind_of_series(table: str, name: str, series: pd.Series) -> str:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype) or pdt.is_timedelta64_dtype(dtype):
        kind = None
    elif pdt.is_bool_dtype(dtype):
        kind = "bool"
    elif pdt.is_integer_dtype(dtype):
        kind = "int"
        if pdt.is_unsigned_integer_dtype(dtype) and bool((series.dropna() > np.iinfo("int64").max).any()):
            raise WarehouseError(f"table {table!r}: column {name!r} holds integers beyond the 64-bit signed range")
    elif pdt.is_float_dtype(dtype):
        kind = "float"
    elif pdt.is_datetime64_any_dtype(dtype):
        kind = "datetime"
        naive = series.dt.tz_convert("UTC").dt.tz_localize(None) if series.dt.tz else series
        nanos = naive.astype("datetime64[ns]").dropna().astype("int64")
        if bool((nanos % 1000 != 0).any()):
            raise WarehouseError(
                f"table {table!r}: column {name!r} has sub-microsecond timestamps, "
                "which SQL timestamps cannot hold; round them first"
            )
    elif isinstance(dtype, pd.StringDtype):
        kind = "text"
    elif pdt.is_object_dtype(dtype):
        kind = "text" if pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty") else None
    else:
        kind = None
    if kind is None:
        raise WarehouseError(
            f"table {table!r}: column {name!r} has dtype {dtype} which the warehouse does not store "
            "(supported: str/string/object of str, integers, floats, bool/boolean, datetime64)"
        )
    if kind == "text" and bool(series.astype("str").str.contains("\x00", regex=False).fillna(False).any()):
        raise WarehouseError(f"table {table!r}: column {name!r} holds a NUL character, which SQL text cannot")
    return kind


# ---------------------------------------------------------------------------------------------
# Encoding for COPY FROM STDIN (CSV), by Arrow's C++ CSV writer: NULL is an unquoted empty field and
# every text value is quoted, so an empty string ("") stays an empty string.


def _naive_utc(series: pd.Series) -> pd.Series:
    return series.dt.tz_convert("UTC").dt.tz_localize(None) if series.dt.tz else series


def _arrow_column(series: pd.Series, kind: str) -> pa.Array:
    if kind == "text":
        if isinstance(series.dtype, pd.StringDtype) and series.dtype.storage == "pyarrow":
            return pa.array(series.array, type=pa.string())
        return pa.array(series.to_numpy(dtype=object, na_value=None), type=pa.string(), from_pandas=True)
    if kind == "int":
        mask = series.isna().to_numpy() if series.hasnans else None
        values = series.to_numpy(dtype="int64", na_value=0)
        return pa.array(values, type=pa.int64(), mask=mask)
    if kind == "float":
        # NaN is stored as NULL, like every other missing value.
        return pa.array(series.to_numpy(dtype="float64", na_value=np.nan), type=pa.float64(), from_pandas=True)
    if kind == "bool":
        mask = series.isna().to_numpy() if series.hasnans else None
        return pa.array(series.to_numpy(dtype=bool, na_value=False), type=pa.bool_(), mask=mask)
    naive = _naive_utc(series).astype("datetime64[us]")
    return pa.array(naive.to_numpy(), type=pa.timestamp("us"), from_pandas=True)


def encode_csv(df: pd.DataFrame, specs: Sequence[ColumnSpec], partition: str | None = None) -> bytes:
    """UTF-8 CSV for PostgreSQL COPY of ``df`` (columns in ``specs`` order, then the partition)."""
    arrays = [_arrow_column(df[spec.name], spec.kind) for spec in specs]
    if partition is not None:
        arrays.append(pa.DictionaryArray.from_arrays(np.zeros(len(df), dtype="int32"), [partition]))
    table = pa.Table.from_arrays(arrays, names=[str(i) for i in range(len(arrays))])
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    return sink.getvalue().to_pybytes()


def _with_nones(values: list, missing: np.ndarray | None) -> list:
    if missing is not None:
        for position in np.flatnonzero(missing).tolist():
            values[position] = None
    return values


def _python_values(series: pd.Series, kind: str) -> list:
    """Plain Python values (None for missing) that sqlite3 binds without per-value adapters."""
    missing = series.isna().to_numpy() if series.hasnans else None
    if kind == "text":
        return series.to_numpy(dtype=object, na_value=None).tolist()
    if kind == "int":
        return _with_nones(series.to_numpy(dtype="int64", na_value=0).tolist(), missing)
    if kind == "float":
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        nan = np.isnan(values)  # NaN is stored as NULL, as on PostgreSQL
        return _with_nones(values.tolist(), nan if nan.any() else None)
    if kind == "bool":
        return _with_nones(series.to_numpy(dtype=bool, na_value=False).tolist(), missing)
    # SQLAlchemy's own storage format for SQLite DATETIME, which its reader parses.
    stamps = pa.array(_naive_utc(series).astype("datetime64[us]").to_numpy(), type=pa.timestamp("us"),
                      from_pandas=True)
    return stamps.cast(pa.string()).to_pylist()  # "YYYY-MM-DD HH:MM:SS.ffffff"


def _python_rows(df: pd.DataFrame, specs: Sequence[ColumnSpec], partition: str | None) -> list[tuple]:
    columns = [_python_values(df[spec.name], spec.kind) for spec in specs]
    if partition is not None:
        columns.append([partition] * len(df))
    return list(zip(*columns, strict=True))


# ---------------------------------------------------------------------------------------------
# Decoding: raw values (strings from CSV, Python objects from SQLite) back to the recorded dtype.

_BOOL_OF = {"t": True, "f": False, True: True, False: False}


def _nullable_integer(dtype: np.dtype) -> str:
    return "UInt" + dtype.name[4:] if dtype.name.startswith("uint") else "Int" + dtype.name[3:]


def restore_column(values: pd.Series, dtype_name: str) -> pd.Series:
    kind = _kind_of_dtype(dtype_name)
    if dtype_name == _PARTITION_DTYPE:
        return values.astype("str")
    dtype = pdt.pandas_dtype(dtype_name)
    if kind == "text":
        if pdt.is_object_dtype(dtype):
            return values.astype(object).where(values.notna(), None)
        return values.astype(dtype)
    if kind == "int":
        if pdt.is_integer_dtype(values.dtype):
            restored = values
        else:
            objects = values.astype(object).where(values.notna(), None).tolist()
            restored = pd.Series(pd.array(objects, dtype="Int64"), index=values.index)
        if restored.hasnans and not isinstance(dtype, pd.api.extensions.ExtensionDtype):
            return restored.astype(_nullable_integer(dtype))
        return restored.astype(dtype)
    if kind == "float":
        return pd.to_numeric(values, errors="raise").astype("float64").astype(dtype)
    if kind == "bool":
        restored = values if pdt.is_bool_dtype(values.dtype) else values.map(_BOOL_OF).astype("boolean")
        if restored.hasnans and not isinstance(dtype, pd.api.extensions.ExtensionDtype):
            return restored
        return restored.astype(dtype)
    if pdt.is_datetime64_any_dtype(values.dtype):
        stamps = values
    else:
        stamps = pd.to_datetime(values.astype(object), format="ISO8601")
    if isinstance(dtype, pd.DatetimeTZDtype):
        return stamps.dt.tz_localize("UTC").dt.tz_convert(dtype.tz).astype(dtype)
    return stamps.astype(dtype)


_ARROW_TYPES = {
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "datetime": pa.timestamp("us"),
    "text": pa.string(),
}


def _arrow_to_series(column: pa.ChunkedArray, kind: str) -> pd.Series:
    """A typed pandas Series from one parsed column, holding NULLs without losing the type."""
    if kind in ("int", "bool") and column.null_count:
        fill = 0 if kind == "int" else False
        values = column.fill_null(fill).to_numpy()
        mask = column.is_null().to_numpy(zero_copy_only=False)
        array = pd.arrays.IntegerArray(values, mask) if kind == "int" else pd.arrays.BooleanArray(values, mask)
        return pd.Series(array)
    if kind == "text":
        return column.to_pandas()
    return pd.Series(column.to_numpy())


def _csv_options(specs: Sequence[ColumnSpec], encoding: str) -> dict:
    keys = [str(i) for i in range(len(specs))]
    return {
        "read_options": pacsv.ReadOptions(column_names=keys, encoding=encoding),
        # A single NULL column is an empty line: it is a row, not a blank to skip.
        "parse_options": pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
        "convert_options": pacsv.ConvertOptions(
            column_types={k: _ARROW_TYPES[s.kind] for k, s in zip(keys, specs, strict=True)},
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["t"],
            false_values=["f"],
        ),
    }


def _empty_frame(specs: Sequence[ColumnSpec]) -> pd.DataFrame:
    names = [s.name for s in specs]
    return pd.DataFrame({n: pd.Series([], dtype=object) for n in names}, columns=names)


def _arrow_to_frame(table: pa.Table, specs: Sequence[ColumnSpec]) -> pd.DataFrame:
    return pd.DataFrame(
        {s.name: _arrow_to_series(table.column(i), s.kind) for i, s in enumerate(specs)},
        columns=[s.name for s in specs],
        copy=False,
    )


def decode_csv(data, specs: Sequence[ColumnSpec], encoding: str = "utf8") -> pd.DataFrame:
    """Parse PostgreSQL ``COPY ... TO STDOUT (FORMAT csv)`` output (bytes, or a binary stream
    parsed block by block as it arrives) into typed columns.

    PostgreSQL writes NULL as an unquoted empty field and an empty string as ``""``; Arrow's
    reader tells the two apart (``quoted_strings_can_be_null=False``).
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        if len(data) == 0:
            return _empty_frame(specs)
        return _arrow_to_frame(pacsv.read_csv(pa.py_buffer(data), **_csv_options(specs, encoding)), specs)
    if not data.peek(1):
        return _empty_frame(specs)
    return _arrow_to_frame(pacsv.open_csv(data, **_csv_options(specs, encoding)).read_all(), specs)


def _copy_to_frame(cursor, statement: str, specs: Sequence[ColumnSpec], encoding: str) -> pd.DataFrame:
    """Run ``COPY ... TO STDOUT`` in a thread that feeds a pipe, and parse what arrives meanwhile:
    the server, the driver and the (GIL-free) parser work at the same time."""
    read_fd, write_fd = os.pipe()
    source = os.fdopen(read_fd, "rb", buffering=COPY_READ_SIZE)
    sink = os.fdopen(write_fd, "wb", buffering=COPY_READ_SIZE)
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            cursor.copy_expert(statement, sink)
        except BaseException as error:  # re-raised in the calling thread
            failure.append(error)
        finally:
            try:
                sink.close()
            except OSError:
                pass  # the reader is gone; its own error is the one to report

    producer = threading.Thread(target=produce, name="dp-copy-out", daemon=True)
    producer.start()
    try:
        frame = decode_csv(source, specs, encoding)
    except BaseException:
        source.close()  # unblocks a producer waiting on a full pipe
        producer.join()
        # A failed COPY ends the stream early, so the parser fails too: report the cause. A
        # broken pipe is only the producer noticing that the parser gave up.
        if failure and not isinstance(failure[0], BrokenPipeError):
            raise failure[0] from None
        raise
    source.close()
    producer.join()
    if failure:
        raise failure[0]
    return frame


def _python_encoding(dbapi_connection) -> str:
    import psycopg2.extensions

    return psycopg2.extensions.encodings.get(dbapi_connection.encoding, "utf_8")


class _ChunkStream:
    """A file-like view of lazily encoded CSV chunks: one COPY streams them all, and the server
    parses one chunk while the next is being encoded, with only one chunk in memory."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._current = b""
        self._offset = 0
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        while self._offset >= len(self._current):
            try:
                self._current = next(self._chunks, None)
            except BaseException as error:
                # The driver reports only the message; keep the exception to re-raise it.
                self.error = error
                raise
            self._offset = 0
            if self._current is None:
                self._current = b""
                return b""
        end = len(self._current) if size is None or size < 0 else self._offset + size
        piece = self._current[self._offset:end]
        self._offset += len(piece)
        return piece

    def readline(self, size: int = -1) -> bytes:
        return self.read(size)


class TableStore:
    """Tables of pandas frames in one SQL database; see the module docstring for guarantees."""

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
        self._manifest_ready = False
        if self._engine.dialect.name == "sqlite":
            self._control_sqlite_transactions()
        self._manifest = sa.Table(
            MANIFEST_TABLE,
            sa.MetaData(schema=schema),
            sa.Column("table_name", sa.Text, primary_key=True),
            sa.Column("column_name", sa.Text, primary_key=True),
            sa.Column("dtype", sa.Text, nullable=False),
            sa.Column("position", sa.Integer, nullable=False),
        )

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
            self._manifest.create(conn, checkfirst=True)
        self._manifest_ready = True

    # -- table objects ----------------------------------------------------------------------

    def _table(self, name: str, specs: Sequence[ColumnSpec], partitioned: bool) -> sa.Table:
        columns = [sa.Column(spec.name, _SQL_TYPES[spec.kind]()) for spec in specs]
        if partitioned:
            columns.append(sa.Column(PARTITION_COLUMN, sa.Text, nullable=False))
        table = sa.Table(name, sa.MetaData(schema=self.schema), *columns)
        if partitioned:
            digest = hashlib.sha1(name.encode()).hexdigest()[:16]
            sa.Index(f"ix_dp_{digest}_partition", table.c[PARTITION_COLUMN])
        return table

    def _read_manifest(self, conn: sa.Connection, table: str) -> list[ColumnSpec]:
        m = self._manifest.c
        rows = conn.execute(
            sa.select(m.column_name, m.dtype).where(m.table_name == table).order_by(m.position)
        ).all()
        return [ColumnSpec(name, _kind_of_dtype(dtype), dtype) for name, dtype in rows]

    def _write_manifest(self, conn: sa.Connection, table: str, specs: Sequence[ColumnSpec]) -> None:
        conn.execute(sa.delete(self._manifest).where(self._manifest.c.table_name == table))
        rows = [
            {"table_name": table, "column_name": s.name, "dtype": s.dtype, "position": i}
            for i, s in enumerate(specs)
        ]
        conn.execute(sa.insert(self._manifest), rows)

    def _stored(self, conn: sa.Connection, table: str) -> tuple[list[ColumnSpec], bool]:
        specs = self._read_manifest(conn, table)
        if not specs:
            if sa.inspect(conn).has_table(table, schema=self.schema):
                raise WarehouseError(f"table {table!r} exists but was not written by the warehouse")
            raise WarehouseError(f"table {table!r} does not exist in the warehouse")
        partitioned = any(s.dtype == _PARTITION_DTYPE for s in specs)
        return [s for s in specs if s.dtype != _PARTITION_DTYPE], partitioned

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
            stored = self._read_manifest(conn, table)
            if stored and not any(s.dtype == _PARTITION_DTYPE for s in stored):
                raise WarehouseError(
                    f"table {table!r} is stored unpartitioned; drop it before writing partitions"
                )
            stored = [s for s in stored if s.dtype != _PARTITION_DTYPE]
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
            self._write_manifest(conn, table, [*merged, ColumnSpec(PARTITION_COLUMN, "text", _PARTITION_DTYPE)])

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
            column_type = _SQL_TYPES[spec.kind]().compile(dialect=conn.dialect)
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
            stored = self._read_manifest(conn, table)
            if any(s.dtype == _PARTITION_DTYPE for s in stored):
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
            self._write_manifest(conn, table, specs)

    def _load(self, conn: sa.Connection, sql_table: sa.Table, df: pd.DataFrame,
              specs: Sequence[ColumnSpec], partition: str | None) -> None:
        if df.empty:
            return
        if self._postgres:
            self._copy_in(conn, sql_table, df, specs, partition)
            return
        names = [s.name for s in specs] + ([PARTITION_COLUMN] if partition is not None else [])
        statement = str(sa.insert(sql_table).compile(dialect=conn.dialect, column_keys=names))
        for start in range(0, len(df), self.chunk_rows):
            chunk = df.iloc[start:start + self.chunk_rows]
            conn.exec_driver_sql(statement, _python_rows(chunk, specs, partition))

    def _copy_in(self, conn: sa.Connection, sql_table: sa.Table, df: pd.DataFrame,
                 specs: Sequence[ColumnSpec], partition: str | None) -> None:
        preparer = conn.dialect.identifier_preparer
        names = [s.name for s in specs] + ([PARTITION_COLUMN] if partition is not None else [])
        statement = (
            f"COPY {preparer.format_table(sql_table)} ({', '.join(preparer.quote(n) for n in names)}) "
            "FROM STDIN WITH (FORMAT csv)"
        )
        dbapi = conn.connection.dbapi_connection
        encoding = _python_encoding(dbapi)
        chunks = (
            encode_csv(df.iloc[start:start + self.chunk_rows], specs, partition)
            for start in range(0, len(df), self.chunk_rows)
        )
        if encoding != "utf_8":
            chunks = (chunk.decode("utf-8").encode(encoding) for chunk in chunks)
        stream = _ChunkStream(chunks)
        cursor = dbapi.cursor()
        try:
            cursor.copy_expert(statement, stream, size=COPY_READ_SIZE)
        except Exception as copy_error:
            if stream.error is not None:
                raise stream.error from copy_error
            raise
        finally:
            cursor.close()

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
                available[PARTITION_COLUMN] = ColumnSpec(PARTITION_COLUMN, "text", _PARTITION_DTYPE)
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
                raw = self._copy_out(conn, sql_table, chosen, where)
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

    def _copy_out(self, conn: sa.Connection, sql_table: sa.Table, chosen: Sequence[ColumnSpec],
                  where) -> pd.DataFrame:
        query = sa.select(*[sql_table.c[spec.name] for spec in chosen])
        if where is not None:
            query = query.where(where)
        compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        dbapi = conn.connection.dbapi_connection
        cursor = dbapi.cursor()
        try:
            cursor.execute("SET LOCAL datestyle TO 'ISO, YMD'")
            cursor.execute("SET LOCAL extra_float_digits TO 1")
            # mogrify is the driver's own parameter binding (what execute does), applied to the
            # SELECT that COPY wraps, because COPY itself takes no parameters.
            encoding = _python_encoding(dbapi)
            select_sql = cursor.mogrify(compiled.string, compiled.params).decode(encoding)
            return _copy_to_frame(cursor, f"COPY ({select_sql}) TO STDOUT WITH (FORMAT csv)", chosen, encoding)
        finally:
            cursor.close()

    # -- inspection and maintenance ---------------------------------------------------------

    def exists(self, table: str) -> bool:
        check_table_name(table)
        self._ensure_manifest()
        with self._transaction() as conn:
            return bool(self._read_manifest(conn, table))

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
            if self._read_manifest(conn, table):
                sa.Table(table, sa.MetaData(schema=self.schema)).drop(conn, checkfirst=True)
                conn.execute(sa.delete(self._manifest).where(self._manifest.c.table_name == table))

    def dispose(self) -> None:
        self._engine.dispose()
