"""Health metrics of a table: the numbers every materialization records and the checks learn from.

This is the one module that names metadata keys (see docs/metadata.md). Every metric is a plain
int or float and never NaN or infinite, because Dagster stores metadata as JSON and the anomaly
checks fit on it: a metric that is undefined for a run (the mean of an all-missing column, the
std of a single value, the freshness of an empty table) is left out rather than faked.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from data_platform.sources.schemas import EntitySchema

# Dagster's standard keys.
ROW_COUNT = "dagster/row_count"
TABLE_NAME = "dagster/table_name"
COLUMN_SCHEMA = "dagster/column_schema"

# Table-level keys of our own.
DUPLICATE_KEY_COUNT = "duplicate_key_count"
QUARANTINED_ROW_COUNT = "quarantined_row_count"
QUARANTINE_SHARE = "quarantine_share"
FRESHNESS_LAG_HOURS = "freshness_lag_hours"
DURATION_SECONDS = "duration_seconds"
SCHEMA_HASH = "schema_hash"
COLUMN_COUNT = "column_count"
SOURCE_ROW_COUNT = "source_row_count"
REJECTED_ROW_COUNT = "rejected_row_count"

# Identifiers rather than magnitudes: any change is news, so a detector should compare them
# exactly instead of fitting a band around them.
EXACT_CHANGE_KEYS: tuple[str, ...] = (SCHEMA_HASH, COLUMN_COUNT)

_TABLE_KEYS = frozenset(
    {
        ROW_COUNT,
        DUPLICATE_KEY_COUNT,
        QUARANTINED_ROW_COUNT,
        QUARANTINE_SHARE,
        FRESHNESS_LAG_HOURS,
        DURATION_SECONDS,
        SCHEMA_HASH,
        COLUMN_COUNT,
        SOURCE_ROW_COUNT,
        REJECTED_ROW_COUNT,
    }
)

NULL_FRACTION = "null_fraction"
DISTINCT_COUNT = "distinct_count"
MEAN = "mean"
STD = "std"
MIN = "min"
MAX = "max"
# Per-reason row counts of the quarantine and rejected tables.
QUARANTINED = "quarantined"
REJECTED = "rejected"
_COLUMN_PREFIXES = (NULL_FRACTION, DISTINCT_COUNT, MEAN, STD, MIN, MAX, QUARANTINED, REJECTED)


def null_fraction_key(col: str) -> str:
    return f"{NULL_FRACTION}/{col}"


def distinct_count_key(col: str) -> str:
    return f"{DISTINCT_COUNT}/{col}"


def mean_key(col: str) -> str:
    return f"{MEAN}/{col}"


def std_key(col: str) -> str:
    return f"{STD}/{col}"


def min_key(col: str) -> str:
    return f"{MIN}/{col}"


def max_key(col: str) -> str:
    return f"{MAX}/{col}"


def quarantined_reason_key(reason: str) -> str:
    return f"{QUARANTINED}/{reason}"


def rejected_reason_key(reason: str) -> str:
    return f"{REJECTED}/{reason}"


def is_health_key(key: str) -> bool:
    """True for the numeric keys the anomaly checks learn from (not table name or schema)."""
    if key in _TABLE_KEYS:
        return True
    prefix, sep, rest = key.partition("/")
    return bool(sep) and bool(rest) and prefix in _COLUMN_PREFIXES


def column_schema(df: pd.DataFrame) -> list[tuple[str, str]]:
    return [(str(name), str(dtype)) for name, dtype in df.dtypes.items()]


def schema_hash(df: pd.DataFrame) -> int:
    """A hash of the column names and dtypes, equal in every process (unlike the salted hash())."""
    payload = json.dumps(column_schema(df), separators=(",", ":")).encode("utf-8")
    return int.from_bytes(hashlib.sha256(payload).digest()[:4], "big") & 0x7FFFFFFF


def compute_health(
    df: pd.DataFrame,
    *,
    key: Iterable[str] = (),
    event_time: str | None = None,
    partition_end: pd.Timestamp | None = None,
    quarantined: int = 0,
    rejected: int | None = None,
    source_rows: int | None = None,
    duration_seconds: float | None = None,
    max_columns: int | None = None,
) -> dict[str, float | int]:
    """Table and per-column health metrics of `df`, in a fixed key order.

    Table keys come first, then each column's keys in column order. `max_columns` limits the
    per-column metrics to the first that many columns, for wide tables whose every column would
    otherwise add six series to the history.
    """
    rows = int(len(df))
    out: dict[str, float | int] = {
        ROW_COUNT: rows,
        COLUMN_COUNT: int(df.shape[1]),
        SCHEMA_HASH: schema_hash(df),
    }
    key = tuple(key)
    if key and all(k in df.columns for k in key):
        out[DUPLICATE_KEY_COUNT] = int(df.duplicated(subset=list(key)).sum()) if rows else 0
    quarantined = int(quarantined)
    out[QUARANTINED_ROW_COUNT] = quarantined
    out[QUARANTINE_SHARE] = quarantined / (rows + quarantined) if rows + quarantined else 0.0
    if rejected is not None:
        out[REJECTED_ROW_COUNT] = int(rejected)
    if source_rows is not None:
        out[SOURCE_ROW_COUNT] = int(source_rows)
    lag = freshness_lag_hours(df, event_time, partition_end)
    if lag is not None:
        out[FRESHNESS_LAG_HOURS] = lag
    if duration_seconds is not None and math.isfinite(duration_seconds):
        out[DURATION_SECONDS] = float(duration_seconds)

    columns = list(df.columns)
    if max_columns is not None:
        columns = columns[: max(0, max_columns)]
    # Positional access: duplicated column names must not turn a Series into a DataFrame.
    for position, name in enumerate(columns):
        out.update(_column_health(str(name), df.iloc[:, position], rows))
    return out


def asset_health(
    df: pd.DataFrame,
    schema: EntitySchema | None = None,
    *,
    day: date | None = None,
    quarantined: int = 0,
    rejected: int | None = None,
    source_rows: int | None = None,
    duration_seconds: float | None = None,
    key: tuple[str, ...] | None = None,
) -> dict[str, float | int]:
    """The numeric metadata an asset records for one materialization (what the checks learn from).

    `schema` gives the key (unless `key` is given) and the event time, whose lag to the end of
    the partition `day` is the freshness. The assets add Dagster's non-numeric keys to this.
    """
    event_time = schema.event_time if schema is not None else None
    if event_time is not None and event_time not in df.columns:
        event_time = None
    partition_end = pd.Timestamp(day) + pd.Timedelta(days=1) if day is not None else None
    return compute_health(
        df,
        key=key if key is not None else (schema.key if schema is not None else ()),
        event_time=event_time,
        partition_end=partition_end,
        quarantined=quarantined,
        rejected=rejected,
        source_rows=source_rows,
        duration_seconds=duration_seconds,
    )


def freshness_lag_hours(
    df: pd.DataFrame, event_time: str | None, partition_end: pd.Timestamp | None
) -> float | None:
    """Hours from the newest event to the end of the partition; None when either is unknown."""
    if event_time is None or partition_end is None or event_time not in df.columns or not len(df):
        return None
    times = pd.to_datetime(df[event_time], errors="coerce", utc=True)
    newest = times.max()
    if pd.isna(newest):
        return None
    end = pd.Timestamp(partition_end)
    end = end.tz_localize("UTC") if end.tzinfo is None else end.tz_convert("UTC")
    return float((end - newest) / pd.Timedelta(hours=1))


def _column_health(name: str, series: pd.Series, rows: int) -> dict[str, float | int]:
    out: dict[str, float | int] = {}
    nulls = int(series.isna().sum())
    out[null_fraction_key(name)] = nulls / rows if rows else 0.0
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        # A boolean's only meaningful statistic is its rate of True.
        values = series.dropna().to_numpy(dtype=float)
        _put(out, mean_key(name), values.mean() if values.size else None)
        return out
    if pd.api.types.is_numeric_dtype(dtype):
        if pd.api.types.is_integer_dtype(dtype):
            out[distinct_count_key(name)] = int(series.nunique(dropna=True))
        values = series.to_numpy(dtype=float, na_value=np.nan)
        # inf is as undefined as a missing value for a mean; counting it would make the metric inf.
        values = values[np.isfinite(values)]
        if values.size:
            _put(out, mean_key(name), values.mean())
            _put(out, std_key(name), values.std(ddof=1) if values.size > 1 else None)
            _put(out, min_key(name), values.min())
            _put(out, max_key(name), values.max())
        return out
    if pd.api.types.is_datetime64_any_dtype(dtype):
        present = series.dropna()
        if len(present):
            _put(out, min_key(name), _epoch_seconds(present.min()))
            _put(out, max_key(name), _epoch_seconds(present.max()))
        return out
    if pd.api.types.is_timedelta64_dtype(dtype):
        return out
    out[distinct_count_key(name)] = int(series.nunique(dropna=True))
    return out


def _epoch_seconds(value: pd.Timestamp) -> float:
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return float((ts - pd.Timestamp(0)) / pd.Timedelta(seconds=1))


def _put(out: dict[str, float | int], name: str, value: float | None) -> None:
    if value is None:
        return
    value = float(value)
    if math.isfinite(value):
        out[name] = value
