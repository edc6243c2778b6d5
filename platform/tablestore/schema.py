"""What a table may hold: reserved names, name validation, and each column's storage kind.

A column is described by a :class:`ColumnSpec`: its name, the kind the database stores it as
(one of :data:`SQL_TYPES`) and the pandas dtype that ``read`` restores.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa
from pandas.api import types as pdt

PARTITION_COLUMN = "_partition"
MANIFEST_TABLE = "_dp_columns"
STAGING_PREFIX = "_dp_stage_"
TABLE_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
MAX_COLUMN_NAME_LENGTH = 63
# The manifest's dtype for the partition column, which has no pandas dtype of its own.
PARTITION_DTYPE = "partition"

SQL_TYPES = {
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
    kind: str  # one of SQL_TYPES
    dtype: str  # str(pandas dtype), restored on read


def kind_of_dtype(dtype_name: str) -> str:
    if dtype_name == PARTITION_DTYPE:
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
