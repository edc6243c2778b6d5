"""What the undated text sources share: sentences as review rows, their deterministic
``reviewed_at`` spread over ``UNDATED_DAYS`` days, and the window's rows and rejects."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from data_platform.sources.files.assembly import result
from data_platform.sources.files.rows import conform_rejects
from data_platform.sources.files.windows import Parsed, in_window, line_tally
from data_platform.sources.result import LineTally, LoadResult, SourceError

UNDATED_START = date(2025, 1, 1)
UNDATED_DAYS = 28


def review_ids(file_name: str, lines: np.ndarray) -> list[str]:
    return [hashlib.sha1(f"{file_name}:{n}".encode()).hexdigest()[:16] for n in lines]


def sentence_frame(path: Path, rows: list, rejects: list, counted: LineTally) -> Parsed:
    """`counted` holds the file's total and blank lines; a sentence or a reject is one line."""
    lines = np.asarray([r[0] for r in rows], dtype=np.int64)
    data = pd.DataFrame(
        {
            "review_id": pd.array(review_ids(path.name, lines), dtype="string"),
            "text": pd.array([r[1] for r in rows], dtype="string"),
            "label": pd.array([r[2] for r in rows], dtype="Int64"),
            "_line": lines,
        }
    )
    rejected = conform_rejects(
        pd.DataFrame(rejects, columns=["line", "column", "value", "reason", "raw"]).assign(
            file=str(path)
        )
    )
    tally = dataclasses.replace(counted, accepted=len(rows), rejected=len(rejects))
    return Parsed(
        data,
        rejected,
        pd.Series(pd.NaT, index=range(len(rejected)), dtype="datetime64[ns]"),
        tally,
    )


def undated_anchor(options: dict | None) -> date:
    raw = (options or {}).get("start") or os.environ.get("DATA_PLATFORM_START_DATE")
    if not raw:
        return UNDATED_START
    try:
        return date.fromisoformat(str(raw))
    except ValueError:
        raise SourceError(str(raw), "start date of undated rows must be YYYY-MM-DD") from None


def load_sentences(
    path: Path, parse, files: list[Path], start, end, options, fallback=None
) -> LoadResult:
    parsed = [parse(f, fallback) for f in files]
    data = pd.concat([p.data for p in parsed], ignore_index=True)
    anchor = pd.Timestamp(undated_anchor(options))
    offsets = (np.arange(len(data), dtype=np.int64) * (UNDATED_DAYS * 86_400)) // max(len(data), 1)
    data["reviewed_at"] = (anchor + pd.to_timedelta(offsets, unit="s")).astype("datetime64[ns]")
    data = data.assign(product_id=pd.NA, customer_id=pd.NA, rating=pd.NA)
    data = data[in_window(data["reviewed_at"], start, end)]
    # Rejects of an undated source belong to the day of the rows around them: the same spread.
    rejected = pd.concat([p.rejected for p in parsed], ignore_index=True)
    if len(rejected) and (start is not None or end is not None):
        rejected = rejected[reject_window(parsed, anchor, start, end)]
    return result("reviews", data, rejected, files, line_tally(parsed))


def reject_window(parsed: list[Parsed], anchor: pd.Timestamp, start, end) -> np.ndarray:
    """A reject takes the time its line would have had among the valid rows of its file."""
    total = sum(len(p.data) for p in parsed)
    keep, offset = [], 0
    for p in parsed:
        lines = p.data["_line"].to_numpy()
        position = offset + np.searchsorted(lines, p.rejected["line"].astype("int64").to_numpy())
        seconds = (position * (UNDATED_DAYS * 86_400)) // max(total, 1)
        keep.append(in_window(pd.Series(anchor + pd.to_timedelta(seconds, unit="s")), start, end))
        offset += len(p.data)
    return np.concatenate(keep) if keep else np.zeros(0, dtype=bool)
