"""Typed cell parsers: each turns a column of stripped strings into typed values and says
which cells it could not parse (the reasons a reject gives are in `UNPARSEABLE`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

# Parsers take an object array of stripped strings ("" = empty) and return
# (values as a pandas extension array, ok mask that is only meaningful for non-empty cells).
Parser = Callable[[np.ndarray], tuple[pd.api.extensions.ExtensionArray, np.ndarray]]


def nonempty(cells: np.ndarray) -> pd.Series:
    return pd.Series(np.where(cells == "", None, cells), dtype=object)


def parse_str(cells: np.ndarray):
    return pd.array(np.where(cells == "", None, cells), dtype="string"), np.ones(
        len(cells), dtype=bool
    )


def integral_id(value: str) -> str:
    head, _, tail = value.partition(".")
    return head if head.isdigit() and tail and not tail.strip("0") else value


def parse_id(cells: np.ndarray):
    """Identifiers as strings; "17850.0" (an id stored as a float) becomes "17850"."""
    fixed = np.array([integral_id(v) if "." in v else v for v in cells], dtype=object)
    return parse_str(fixed.reshape(len(cells)))


def parse_float(cells: np.ndarray):
    num = pd.to_numeric(nonempty(cells), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    ok = np.isfinite(num)
    return pd.arrays.FloatingArray(np.where(ok, num, 0.0), ~ok), ok


def parse_int(cells: np.ndarray):
    num = pd.to_numeric(nonempty(cells), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    # Beyond 2**53 a float no longer holds every integer: such a count is not a quantity.
    ok = np.isfinite(num) & (np.abs(np.nan_to_num(num)) < 2**53)
    ok &= np.where(ok, num, 0.0) == np.round(np.where(ok, num, 0.0))
    return pd.arrays.IntegerArray(np.where(ok, num, 0).astype(np.int64), ~ok), ok


def parse_label(cells: np.ndarray):
    ok = (cells == "0") | (cells == "1")
    return pd.arrays.IntegerArray((cells == "1").astype(np.int64), ~ok), ok


def to_timestamps(values: pd.Series, fmt: str | None = "ISO8601") -> pd.Series:
    """Naive UTC timestamps; what cannot be parsed (or lies outside 1677-2262) becomes NaT."""
    try:
        out = pd.to_datetime(values, errors="coerce", format=fmt, utc=True)
    except (ValueError, OverflowError, TypeError):
        # errors="coerce" still raises on some out-of-range values: parse those one by one.
        out = pd.Series(
            [one_timestamp(v, fmt) for v in values], index=values.index, dtype="datetime64[ns, UTC]"
        )
    out = out.dt.tz_convert(None)
    # pandas may parse to a coarser unit that holds years the canonical nanoseconds cannot.
    inside = (out >= pd.Timestamp.min) & (out <= pd.Timestamp.max)
    return out.where(inside).astype("datetime64[ns]")


def one_timestamp(value, fmt: str | None):
    try:
        return pd.to_datetime(value, errors="coerce", format=fmt, utc=True)
    except (ValueError, OverflowError, TypeError):
        return pd.NaT


def parse_datetime(cells: np.ndarray):
    series = nonempty(cells)
    out = to_timestamps(series)
    retry = out.isna() & series.notna()
    if retry.any():
        # Spreadsheet exports of the same data write month/day/year.
        out = out.fillna(to_timestamps(series.where(retry), "%m/%d/%Y %H:%M"))
    return out.array, out.notna().to_numpy()


def parse_epoch(cells: np.ndarray):
    num, ok = parse_int(cells)
    seconds = np.where(ok, num.to_numpy(dtype=float, na_value=0.0), np.nan)
    out = pd.Series(pd.to_datetime(seconds, unit="s", errors="coerce")).astype("datetime64[ns]")
    return out.array, ok & out.notna().to_numpy()


UNPARSEABLE = {
    parse_float: "unparseable number",
    parse_int: "unparseable integer",
    parse_label: "unparseable label (expected 0 or 1)",
    parse_datetime: "unparseable date",
    parse_epoch: "unparseable timestamp",
}
