"""Which past runs one metric learns from: exclusions that can end, and levels that can change.

The check feeds its own past verdicts back as `excluded` (one flag per run, for every metric of
the run). Used naively that is a trap: a run excluded because it looked odd never teaches the
baseline, so the baseline never learns that such values are ordinary, so every such value is
flagged and excluded again (a `min/rating` of 2.0 judged against a week of 1.5, for ever).
Two ways out, decided again on every run from the history alone:

- readmission: an excluded run rejoins this metric's baseline when its value lies inside the
  range of the metric's ordinary runs, or when the history keeps producing that very value
  (in at least `RECURRENCE` separate episodes, excluded ones included): a run excluded for
  another metric, or a value that turned out to be ordinary, is ordinary;
- a new level: when an excluded streak sits on one side, far from the old band, and the runs
  since then, the current one included, stay there, the change is persistent: the baseline
  restarts at it, and the metric is learning again until it has `adaptation` points.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# A value outside the ordinary range must have come back this many times, in separate episodes,
# before it is ordinary: one or two past incidents stay out of the baseline.
RECURRENCE = 3
# ... and make up this share of the window: an incident that repeats the same impossible value
# (a minimum rating of 0) every few weeks is still an incident.
RECURRENCE_SHARE = 0.15
MAX_STREAKS = 12
EARLY_RUNS = 7


@dataclass
class BaselineRows:
    """Rows of one metric's baseline, and where a persistent new level started (if any)."""

    rows: np.ndarray
    new_level_at: int | None = None
    readmitted: int = 0
    # Runs the check did not exclude that belong to an incident (LevelChange.tail).
    tail: np.ndarray | None = None


def _runs(mask: np.ndarray, min_length: int) -> list[tuple[int, int]]:
    """(start, end) of the runs of True of at least `min_length`, latest first, end exclusive."""
    if min_length <= 0 or mask.size < min_length:
        return []
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    starts, ends = edges[::2], edges[1::2]
    long = np.flatnonzero(ends - starts >= min_length)
    return [(int(starts[i]), int(ends[i])) for i in long[::-1]]


def readmit(values: np.ndarray, excluded: np.ndarray) -> tuple[np.ndarray, int]:
    """Baseline rows after ordinary excluded runs rejoin (see the module docstring)."""
    observed = ~np.isnan(values)
    base = observed & ~excluded
    candidates = np.flatnonzero(observed & excluded)
    if candidates.size == 0 or not base.any():
        return base, 0
    ordinary = values[base]
    low, high = float(ordinary.min()), float(ordinary.max())
    positions = np.flatnonzero(observed)
    seen = values[positions]
    # An episode starts where the value differs from the previous observed run's.
    starts = np.concatenate(([True], ~np.isclose(seen[1:], seen[:-1], rtol=1e-9, atol=1e-12)))
    out = base.copy()
    for i in candidates:
        v = values[i]
        if low <= v <= high:
            out[i] = True
            continue
        same = np.isclose(seen, v, rtol=1e-9, atol=1e-12)
        if np.count_nonzero(same & starts) >= RECURRENCE and same.mean() >= RECURRENCE_SHARE:
            out[i] = True
    return out, int(out.sum() - base.sum())


@dataclass
class LevelChange:
    """What the excluded streaks say: a persistent new level (its streak's rows), and rows that
    followed a streak at its level before the metric went back (the tail of an incident that
    the check took for a new level while it was being confirmed: they stay out)."""

    streak: tuple[int, int] | None
    tail: np.ndarray


def new_level(
    values: np.ndarray,
    excluded: np.ndarray,
    current: float,
    *,
    min_streak: int,
    min_before: int,
    deviation: Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, float, float]],
) -> LevelChange:
    """Where a persistent new level started, if anywhere (see LevelChange).

    `deviation(before_rows, positions, values_at)` returns, against the band fitted on the runs
    before the streak: the deviations of `values_at` (at row `positions`, -1 for the current
    run) from its expected values, the band's scale, and its minimum meaningful change.
    A streak of at least `min_streak` excluded runs (one ordinary run inside it does not break
    it: a 5 sigma shift lands inside the band now and then) must sit beyond 3 robust sigma on
    one side, and the runs since (their median; the first `EARLY_RUNS` of them too, or the current
    run while there are fewer) at least half as far.
    """
    observed = ~np.isnan(values)
    positions = np.flatnonzero(observed)
    flagged = excluded[positions]
    bridged = flagged.copy()
    bridged[1:-1] |= flagged[:-2] & flagged[2:]
    tail = np.zeros(values.size, dtype=bool)
    found = None
    # The latest few streaks, oldest first (the tail of an earlier incident must not count as
    # the old level of a later one); the latest persistent one wins, so a spike a few days
    # after a new level does not hide that level.
    for first, last in _runs(bridged, min_streak)[:MAX_STREAKS][::-1]:
        if flagged[first:last].sum() < min_streak:
            continue
        start, end = int(positions[first]), int(positions[last - 1] + 1)
        # A later streak is judged against the level in force since the last new level.
        since = found[0] if found is not None else 0
        persistent, after = _persistent(values, excluded | tail, observed, start, end, current,
                                        min_before, deviation, since)
        if persistent:
            found = (start, end)
        tail |= after
    return LevelChange(found, tail)


def _persistent(
    values: np.ndarray,
    excluded: np.ndarray,
    observed: np.ndarray,
    start: int,
    end: int,
    current: float,
    min_before: int,
    deviation: Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, float, float]],
    since: int = 0,
) -> tuple[bool, np.ndarray]:
    """Whether the streak [start, end) began a new level; if not, the runs right after it that
    still sat at its level (see LevelChange.tail)."""
    tail = np.zeros(values.size, dtype=bool)
    before = observed & ~excluded
    before[start:] = False
    before[:since] = False
    if before.sum() < min_before:
        return False, tail
    since = np.flatnonzero(observed[start:]) + start
    at = np.concatenate((since, [-1]))
    now_values = np.concatenate((values[since], [current]))
    deviations, scale, floor = deviation(before, at, now_values)
    floor = max(3.0 * scale, floor)
    in_run = at < end
    in_run[-1] = False
    shift = float(np.median(deviations[in_run]))
    if abs(shift) <= floor:
        return False, tail
    if np.mean(np.sign(deviations[in_run]) == np.sign(shift)) < 0.8:
        return False, tail
    # The later runs and the current one stay at least half-way to the new level: a spike
    # followed by a normal day is an incident, not a new normal.
    persistent = True
    later = deviations[:-1][~in_run[:-1]]
    # The runs right after the streak and all the runs since: a level that went back and came
    # again later is two incidents, not one new level.
    # Once the runs right after the streak have confirmed it, the new level is the normal the
    # current run is judged against (a return to the old level is news, not a veto).
    parts = [later[:EARLY_RUNS], later] if later.size >= EARLY_RUNS else [later, deviations[-1:]]
    for part in parts:
        if part.size == 0:
            continue
        middle = float(np.median(part))
        if np.sign(middle) != np.sign(shift) or abs(middle) < abs(shift) / 2:
            persistent = False
    if not persistent:
        later = np.flatnonzero(~in_run[:-1])
        for k in later:
            if np.sign(deviations[k]) != np.sign(shift) or abs(deviations[k]) <= floor:
                break
            tail[at[k]] = True
    return persistent, tail
