"""What every source adapter returns, and the one error type a structural problem raises."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

# Row-level rejects keep enough to find and fix the row at its origin.
REJECT_COLUMNS = ("file", "line", "column", "value", "reason", "raw")


def empty_rejects() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "file": pd.Series(dtype="string"),
            "line": pd.Series(dtype="Int64"),
            "column": pd.Series(dtype="string"),
            "value": pd.Series(dtype="string"),
            "reason": pd.Series(dtype="string"),
            "raw": pd.Series(dtype="string"),
        }
    )


@dataclass(frozen=True)
class LineTally:
    """Physical lines of the files read, whole files whatever the window asked for.

    Each line is in an accepted record, in a rejected record, in a header, or blank; counting
    lines as well as records shows a record that swallowed the lines after it (a multi-line
    reject) and proves that no line went missing. `decoded_with_fallback` counts the lines, of
    any of those kinds, that were not valid in the file's encoding and were decoded with the
    source's declared fallback encoding.
    """

    total: int = 0
    accepted: int = 0
    rejected: int = 0
    header: int = 0
    blank: int = 0
    decoded_with_fallback: int = 0

    @property
    def balanced(self) -> bool:
        return self.total == self.accepted + self.rejected + self.header + self.blank

    def __add__(self, other: LineTally) -> LineTally:
        return LineTally(
            self.total + other.total,
            self.accepted + other.accepted,
            self.rejected + other.rejected,
            self.header + other.header,
            self.blank + other.blank,
            self.decoded_with_fallback + other.decoded_with_fallback,
        )


@dataclass
class LoadResult:
    """`.data`: the entity's canonical DataFrame; `.rejected`: rows that could not be parsed.

    `.lines`: the physical lines of the files read (`LineTally`); None for sources without lines
    (synthetic, SQL) and for entities derived from another entity's rows.
    """

    data: pd.DataFrame
    rejected: pd.DataFrame = field(default_factory=empty_rejects)
    entity: str = ""
    files: tuple[str, ...] = ()
    lines: LineTally | None = None

    @property
    def source_rows(self) -> int:
        return len(self.data) + len(self.rejected)


class SourceError(Exception):
    """A structural problem with a source: names the file (or URL) and what is wrong."""

    def __init__(self, where: str, problem: str):
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{where}: {problem}")
