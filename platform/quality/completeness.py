"""Which daily partitions never arrived (pure: no Dagster).

A check runs only when its asset materializes, so a day that is never delivered produces no
evaluation of its own. The next day that does arrive can notice it: every day between the
asset's first stored day and the judged one should have been stored too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

# Days named in a description; the count covers the rest.
LISTED_DAYS = 5


@dataclass(frozen=True)
class Gaps:
    """The days never stored from `first` (the first stored day, None if none) to `through`."""

    first: str | None
    through: str
    missing: tuple[str, ...]

    def describe(self, limit: int = LISTED_DAYS) -> str:
        if self.first is None:
            return f"No day up to {self.through} is stored yet: nothing to compare with."
        if not self.missing:
            return f"Every day from {self.first} to {self.through} is stored."
        named = ", ".join(self.missing[:limit])
        more = f" and {len(self.missing) - limit} more" if len(self.missing) > limit else ""
        days = "day" if len(self.missing) == 1 else "days"
        return (f"{len(self.missing)} {days} between {self.first} and {self.through} "
                f"never stored: {named}{more}")


def _day(key: str) -> date:
    try:
        day = date.fromisoformat(key)
    except ValueError:
        day = None
    # fromisoformat also reads week dates (2026-W45) and compact forms, which no daily key is.
    if day is None or day.isoformat() != key:
        raise ValueError(f"partition key {key!r} is not a day (YYYY-MM-DD)")
    return day


def missing_days(stored: Iterable[str], through: str) -> Gaps:
    """The daily partition keys from the first stored day up to `through` (included) never stored.

    `stored` holds the keys of every materialized partition, in any order; days after `through`
    are ignored, so re-judging an old day never depends on what came later. Nothing is missing
    before the first stored day: an asset may start whenever it likes.
    """
    last = _day(through)
    days = {day for day in map(_day, stored) if day <= last}
    if not days:
        return Gaps(first=None, through=through, missing=())
    first = min(days)
    span = (last - first).days + 1
    missing = tuple(
        day.isoformat()
        for day in (first + timedelta(days=offset) for offset in range(span))
        if day not in days
    )
    return Gaps(first=first.isoformat(), through=through, missing=missing)
