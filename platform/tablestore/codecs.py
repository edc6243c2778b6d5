"""Frames to and from what the database speaks, and back to the dtypes they were written with.

- PostgreSQL ``COPY FROM STDIN`` takes CSV written by Arrow's C++ CSV writer: NULL is an unquoted
  empty field and every text value is quoted, so an empty string (``""``) stays an empty string.
  ``COPY TO STDOUT`` output is parsed by Arrow's CSV reader straight into typed columns.
- SQLite takes plain Python rows that sqlite3 binds without per-value adapters.
- :func:`restore_column` turns what was read (columns typed by Arrow's reader, Python objects from
  SQLite) back into the dtype the manifest recorded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from pandas.api import types as pdt

from data_platform.tablestore.schema import PARTITION_DTYPE, ColumnSpec, kind_of_dtype


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


def python_rows(df: pd.DataFrame, specs: Sequence[ColumnSpec], partition: str | None) -> list[tuple]:
    columns = [_python_values(df[spec.name], spec.kind) for spec in specs]
    if partition is not None:
        columns.append([partition] * len(df))
    return list(zip(*columns, strict=True))


_BOOL_OF = {"t": True, "f": False, True: True, False: False}


def _nullable_integer(dtype: np.dtype) -> str:
    return "UInt" + dtype.name[4:] if dtype.name.startswith("uint") else "Int" + dtype.name[3:]


def restore_column(values: pd.Series, dtype_name: str) -> pd.Series:
    kind = kind_of_dtype(dtype_name)
    if dtype_name == PARTITION_DTYPE:
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
