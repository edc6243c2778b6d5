"""One parsed file with the day each of its rejects belongs to, and the rows and rejects of a
window (`start`/`end`, end exclusive)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from data_platform.sources.files.cells import parse_datetime
from data_platform.sources.files.listing import file_date
from data_platform.sources.files.rows import Field, conform_rejects, parse_records
from data_platform.sources.records import Records
from data_platform.sources.result import LineTally, empty_rejects


@dataclass(frozen=True)
class Parsed:
    """One file's rows: `data` typed (plus helper columns), `rejected` with an attribution day."""

    data: pd.DataFrame
    rejected: pd.DataFrame
    reject_day: pd.Series  # datetime64 day per reject, NaT when it cannot be placed
    lines: LineTally = LineTally()


def line_tally(parsed: list[Parsed]) -> LineTally:
    return sum((p.lines for p in parsed), LineTally())


def attribute_rejects(
    path: Path, rejected: pd.DataFrame, bad_cells: pd.DataFrame, time_col: str | None, first_day
) -> pd.Series:
    days = pd.Series(pd.NaT, index=range(len(rejected)), dtype="datetime64[ns]")
    if not len(rejected):
        return days
    fallback = file_date(path)
    fallback = pd.Timestamp(fallback) if fallback else first_day
    if time_col is not None and len(bad_cells) and time_col in bad_cells:
        cells = np.array([str(v).strip() for v in bad_cells[time_col]], dtype=object)
        parsed = pd.Series(parse_datetime(cells.reshape(len(cells)))[0])
        by_line = dict(zip(bad_cells["_line"], parsed.dt.normalize(), strict=True))
        days = rejected["line"].map(lambda n: by_line.get(n, pd.NaT)).astype("datetime64[ns]")
    return days.fillna(fallback) if fallback is not None and not pd.isna(fallback) else days


def in_window(times: pd.Series, start: date | None, end: date | None) -> np.ndarray:
    keep = np.ones(len(times), dtype=bool)
    if start is not None:
        keep &= (times >= pd.Timestamp(start)).fillna(False).to_numpy()
    if end is not None:
        keep &= (times < pd.Timestamp(end)).fillna(False).to_numpy()
    return keep


def select(
    parsed: list[Parsed], time_col: str | None, start, end
) -> tuple[pd.DataFrame, pd.DataFrame]:
    data = [p.data for p in parsed]
    rejects = []
    for p in parsed:
        if time_col is not None and (start is not None or end is not None):
            keep = in_window(p.reject_day, start, end) | p.reject_day.isna().to_numpy()
            rejects.append(p.rejected[keep])
        else:
            rejects.append(p.rejected)
    frame = pd.concat(data, ignore_index=True) if data else pd.DataFrame()
    if time_col is not None and len(frame):
        frame = frame[in_window(frame[time_col], start, end)]
    rejected = pd.concat(rejects, ignore_index=True) if rejects else empty_rejects()
    return frame.reset_index(drop=True), conform_rejects(rejected) if len(
        rejected
    ) else empty_rejects()


def parse_with_rejects(
    path: Path, records: Records, fields: dict[str, Field], time_col: str | None
) -> Parsed:
    data, rejected, bad_cells, lines = parse_records(path, records, fields)
    source_time = fields[time_col].source if time_col else None
    first_day = (
        data[time_col].min().normalize()
        if time_col and len(data) and data[time_col].notna().any()
        else None
    )
    return Parsed(
        data, rejected, attribute_rejects(path, rejected, bad_cells, source_time, first_day), lines
    )
