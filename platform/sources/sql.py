"""SQL adapter: one entity from a table or a SELECT query of any SQLAlchemy database.

A table name is validated against `TABLE_NAME` and quoted by SQLAlchemy, never formatted into
SQL. A SELECT query is run as written: the operator who configured it owns it. The day of an
event entity is selected in pandas after reading, so that a row whose event time cannot be
parsed is still seen: it is rejected, and reported with the earliest day of the source's valid
rows (each reject exactly once over a set of daily fetches). Values that cannot be cast to the
canonical type, and missing required values, send their row to `.rejected` (``line`` is the
1-based position of the row in the result set).
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from data_platform.sources.db import is_sqlite, make_engine
from data_platform.sources.files import NUL, NUL_REASON, NUL_SHOWN, to_timestamps
from data_platform.sources.result import LoadResult, SourceError, empty_rejects
from data_platform.sources.schemas import BOOL, SCHEMAS, STRING, TIMESTAMP, coerce

TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
SELECT = re.compile(r"^\s*(select|with)\s", re.IGNORECASE)


def describe(url: str, target: str) -> str:
    """The source named without its password, for errors and the `file` column of rejects."""
    try:
        shown = sa.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparseable URL is not echoed: it may hold a password
        shown = "<invalid url>"
    return f"{shown}::{target}"


def read_sql(url: str, target: str, entity: str, day: date | None = None) -> LoadResult:
    where = describe(url, target)
    schema = SCHEMAS[entity]
    if is_sqlite(url):
        database = sa.make_url(url).database
        # Opening a missing SQLite file would create an empty one (and its folders) for nothing.
        if database and database != ":memory:" and not Path(database).expanduser().is_file():
            raise SourceError(where, "SQLite database file not found")
    try:
        engine = make_engine(url)
    except Exception as exc:  # noqa: BLE001 - any driver/URL problem is structural
        raise SourceError(where, f"cannot open database: {exc}") from None
    window = (day, day + timedelta(days=1)) if schema.partitioned and day is not None else None
    try:
        with engine.connect() as conn:
            if SELECT.match(target):
                frame = pd.read_sql_query(sa.text(target), conn)
            elif TABLE_NAME.match(target):
                frame = read_table(conn, target)
            else:
                raise SourceError(where, "expected a table name ([schema.]name) or a SELECT query")
    except SourceError:
        raise
    except Exception as exc:  # noqa: BLE001 - missing table, bad query, lost connection
        raise SourceError(where, f"query failed: {str(exc).splitlines()[0]}") from None
    finally:
        engine.dispose()
    missing = [c for c in schema.required if c not in frame.columns]
    if missing:
        raise SourceError(
            where, f"missing required column(s) {missing}; columns are {list(frame.columns)}"
        )
    return conform_rows(frame, entity, where, window)


def read_table(conn, name: str) -> pd.DataFrame:
    schema_name, _, table_name = name.rpartition(".")
    table = sa.table(table_name, schema=schema_name or None)
    return pd.read_sql_query(sa.select(sa.literal_column("*")).select_from(table), conn)


def conform_rows(frame: pd.DataFrame, entity: str, where: str, window) -> LoadResult:
    schema = SCHEMAS[entity]
    frame = frame.reset_index(drop=True)
    out = pd.DataFrame(index=frame.index)
    reason = np.full(len(frame), None, dtype=object)
    column = np.full(len(frame), None, dtype=object)
    value = np.full(len(frame), None, dtype=object)
    for col, dtype in schema.columns.items():
        raw = (
            frame[col]
            if col in frame.columns
            else pd.Series(pd.NA, index=frame.index, dtype=object)
        )
        if dtype == TIMESTAMP:
            cast = to_timestamps(raw.astype(object), None)
        elif dtype == BOOL:
            cast = to_booleans(raw)
        else:
            cast = coerce(raw, dtype)
        present = raw.notna().to_numpy()
        problem = np.where(
            present & cast.isna().to_numpy(), f"unparseable {dtype_name(dtype)}", None
        )
        if col in schema.required:
            problem = np.where(~present, "missing required value", problem)
        if dtype == STRING:
            has_nul = cast.astype(object).map(lambda v: isinstance(v, str) and NUL in v)
            problem = np.where(has_nul.to_numpy(dtype=bool), NUL_REASON, problem)
        first = (reason == None) & (problem != None)  # noqa: E711 - elementwise on object arrays
        reason[first], column[first] = problem[first], col
        value[first] = raw.astype("string").str.replace(NUL, NUL_SHOWN, regex=False).to_numpy()[first]
        out[col] = cast
    keep = reason == None  # noqa: E711
    raw_rows = (
        frame[~keep].astype("string").to_json(orient="records", lines=True).splitlines()
        if (~keep).any()
        else []
    )
    rejected = pd.DataFrame(
        {
            "file": pd.array([where] * int((~keep).sum()), dtype="string"),
            "line": pd.array(np.flatnonzero(~keep) + 1, dtype="Int64"),
            "column": pd.array(column[~keep], dtype="string"),
            "value": pd.array(value[~keep], dtype="string"),
            "reason": pd.array(reason[~keep], dtype="string"),
            "raw": pd.array(raw_rows, dtype="string"),
        }
    )
    data = out[keep]
    if window is not None:
        times = out[schema.event_time]
        first_day = times[keep].min()
        reject_day = (
            times[~keep]
            .dt.normalize()
            .fillna(first_day.normalize() if pd.notna(first_day) else pd.NaT)
        )
        inside = (reject_day >= pd.Timestamp(window[0])) & (reject_day < pd.Timestamp(window[1]))
        rejected = rejected[inside.fillna(True).to_numpy()].reset_index(drop=True)
        times = data[schema.event_time]
        data = data[(times >= pd.Timestamp(window[0])) & (times < pd.Timestamp(window[1]))]
    return LoadResult(
        data=schema.conform(data),
        rejected=rejected if len(rejected) else empty_rejects(),
        entity=entity,
        files=(where,),
    )


BOOLEAN_WORDS = {
    **dict.fromkeys(("true", "t", "yes", "y", "1", "1.0"), True),
    **dict.fromkeys(("false", "f", "no", "n", "0", "0.0"), False),
}


def to_booleans(raw: pd.Series) -> pd.Series:
    """Booleans from native bools, 0/1 (SQLite) or words; anything else becomes missing."""
    words = raw.astype(object).map(lambda v: None if pd.isna(v) else str(v).strip().lower())
    return words.map(BOOLEAN_WORDS).astype("boolean")


def dtype_name(dtype: str) -> str:
    return {
        TIMESTAMP: "timestamp",
        "Float64": "number",
        "Int64": "integer",
        "boolean": "boolean",
    }.get(dtype, "value")
