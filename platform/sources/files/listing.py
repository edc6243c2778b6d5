"""Which files a source path means, and the dates in their names (``YYYY-MM-DD.csv``)."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from data_platform.sources.result import SourceError

DATED_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})\.csv(\.gz)?$")


def list_files(path: Path, *, suffixes: tuple[str, ...], names: tuple[str, ...] = ()) -> list[Path]:
    if not path.exists():
        raise SourceError(path, "no such file or folder")
    if path.is_file():
        return [path]
    found = sorted(
        p
        for p in path.iterdir()
        if p.is_file()
        and (p.name.removesuffix(".gz").endswith(suffixes) or p.name.removesuffix(".gz") in names)
    )
    if not found:
        raise SourceError(path, f"folder holds no {' or '.join(suffixes + names)} files")
    return found


def find_member(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def file_date(path: Path) -> date | None:
    match = DATED_NAME.match(path.name)
    if not match:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


def dated_range(path: Path) -> tuple[date, date] | None:
    """(first, last) day from the names of a folder of YYYY-MM-DD.csv files, None if not all dated."""
    if not path.is_dir():
        return None
    files = list_files(path, suffixes=(".csv",))
    dates = [file_date(f) for f in files]
    if any(d is None for d in dates):
        return None
    return min(dates), max(dates)
