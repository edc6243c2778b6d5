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


@dataclass
class LoadResult:
    """`.data`: the entity's canonical DataFrame; `.rejected`: rows that could not be parsed."""

    data: pd.DataFrame
    rejected: pd.DataFrame = field(default_factory=empty_rejects)
    entity: str = ""
    files: tuple[str, ...] = ()

    @property
    def source_rows(self) -> int:
        return len(self.data) + len(self.rejected)


class SourceError(Exception):
    """A structural problem with a source: names the file (or URL) and what is wrong."""

    def __init__(self, where: str, problem: str):
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{where}: {problem}")
