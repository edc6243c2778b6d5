"""From the records of one file to typed rows and row-level rejects: each row is parsed field by
field, the first problem of a row rejects it, and the file's physical lines are tallied."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from data_platform.sources.files.cells import UNPARSEABLE, Parser
from data_platform.sources.records import Records
from data_platform.sources.result import REJECT_COLUMNS, LineTally, empty_rejects

# SQL text (PostgreSQL) cannot hold NUL: a row with one is rejected, and in reject columns the
# character is shown as U+FFFD so that the reject itself can still be stored.
NUL = "\x00"
NUL_REASON = "NUL character (SQL text cannot hold it)"
NUL_SHOWN = "\ufffd"


@dataclass(frozen=True)
class Field:
    source: str  # column in the file
    parse: Parser
    required: bool = False


def parse_records(
    path: Path, records: Records, fields: dict[str, Field]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, LineTally]:
    """Typed valid rows (with `_line`), rejects (first problem of each row), rejected raw cells,
    and the file's physical lines counted by where they went."""
    width = len(records.header)
    counts = np.fromiter((len(r) for r in records.rows), dtype=np.int64, count=len(records.rows))
    shaped = counts == width
    good = [r for r, keep in zip(records.rows, shaped, strict=True) if keep]
    columns = list(zip(*good, strict=True)) if good else [() for _ in records.header]
    cells = pd.DataFrame(
        {
            name: np.array(col, dtype=object).reshape(len(good))
            for name, col in zip(records.header, columns, strict=True)
        },
        dtype=object,
    )
    lines = np.asarray(records.lines, dtype=np.int64)[shaped]
    raws = np.asarray(records.raws, dtype=object)[shaped]
    reason = np.full(len(cells), None, dtype=object)
    column = np.full(len(cells), None, dtype=object)
    value = np.full(len(cells), None, dtype=object)
    out = {}
    for name, spec in fields.items():
        text = np.array([v.strip() for v in cells[spec.source].to_numpy()], dtype=object).reshape(
            len(cells)
        )
        parsed, ok = spec.parse(text)
        empty = text == ""
        problem = np.where(~empty & ~ok, UNPARSEABLE.get(spec.parse, "unparseable value"), None)
        if spec.required:
            problem = np.where(empty, "missing required value", problem)
        has_nul = np.fromiter((NUL in v for v in text), dtype=bool, count=len(text))
        problem = np.where(has_nul, NUL_REASON, problem)
        first = (reason == None) & (problem != None)  # noqa: E711 - elementwise on object arrays
        reason[first], column[first], value[first] = problem[first], spec.source, text[first]
        out[name] = parsed
    out = pd.DataFrame(out, index=range(len(cells)))
    out["_line"] = lines
    keep = reason == None  # noqa: E711
    rejected = pd.DataFrame(
        {
            "file": str(path),
            "line": lines[~keep],
            "column": column[~keep],
            "value": value[~keep],
            "reason": reason[~keep],
            "raw": [r.rstrip("\r\n") for r in raws[~keep]],
        }
    )
    extra = [
        (
            line,
            None,
            None,
            f"wrong column count: {n} fields, header has {width}",
            raw.rstrip("\r\n"),
        )
        for line, raw, n, ok in zip(records.lines, records.raws, counts, shaped, strict=True)
        if not ok
    ] + [(line, None, None, reason_, raw) for line, reason_, raw, _ in records.bad]
    if extra:
        rejected = pd.concat(
            [
                rejected,
                pd.DataFrame(extra, columns=["line", "column", "value", "reason", "raw"]).assign(
                    file=str(path)
                ),
            ]
        )
    rejected = conform_rejects(rejected)
    # The raw cells of rejected rows let windows attribute each reject to its event day.
    bad_cells = cells[~keep].reset_index(drop=True).assign(_line=lines[~keep])
    spans = np.asarray(records.spans, dtype=np.int64)
    accepted = int(spans[shaped][keep].sum())
    tally = records.tally(
        accepted=accepted,
        rejected=int(spans.sum()) - accepted + sum(span for *_, span in records.bad),
    )
    return out[keep].reset_index(drop=True), rejected, bad_cells, tally


def conform_rejects(frame: pd.DataFrame) -> pd.DataFrame:
    out = empty_rejects()
    if frame is None or not len(frame):
        return out
    frame = frame.reset_index(drop=True)
    frame = frame.assign(
        **{
            c: frame[c]
            .astype(object)
            .map(lambda v: v.replace(NUL, NUL_SHOWN) if isinstance(v, str) else v)
            for c in ("value", "raw")
        }
    )
    return (
        pd.DataFrame({c: frame[c].astype(out[c].dtype) for c in REJECT_COLUMNS})
        .sort_values("line", kind="stable")
        .reset_index(drop=True)
    )


def line_numbers_in_orders(records: Records, order_column: str) -> dict[int, int]:
    """Position of each record within its order, in file order, counting every record."""
    if order_column not in records.header:
        return {}
    idx = records.header.index(order_column)
    seen: dict[str, int] = {}
    positions = {}
    for line, row in zip(records.lines, records.rows, strict=True):
        key = row[idx].strip() if idx < len(row) else ""
        seen[key] = seen.get(key, 0) + 1
        positions[line] = seen[key]
    return positions
