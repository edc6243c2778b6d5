"""Which past runs one metric learns from: exclusions that can end, and levels that can change.

The check feeds its own past verdicts back as `excluded` (one flag per run, for every metric of
the run). Used naively that is a trap: a run excluded because it looked odd never teaches the
baseline, so the baseline never learns that such values are ordinary, so every such value is
flagged and excluded again (a `min/rating` of 2.0 judged against a week of 1.5, for ever).
Two ways out, decided again on every run from the history alone:

- readmission: an excluded run rejoins this metric's baseline when its value lies inside the
  range of the metric's ordinary runs, or when the history keeps producing values that far out
  (at least `RECURRENCE` runs, excluded ones included): a run excluded for another metric, or a
  value that turned out to be ordinary, is ordinary;
- a new level: when an excluded streak sits on one side, far from the old band, and the runs
  since then, the current one included, stay there, the change is persistent: the baseline
  restarts at it, and the metric is learning again until it has `adaptation` points.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Values this far out must have come back this many times before they are ordinary: one or two
# past incidents of the same size stay out of the baseline.
RECURRENCE = 3
RECURRENCE_SHARE = 0.05
MAX_STREAKS = 3


@dataclass
class BaselineRows:
    """Rows of one metric's baseline, and where a persistent new level started (if any)."""

    rows: np.ndarray
    new_level_at: int | None = None
    readmitted: int = 0


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
    everything = np.sort(values[observed])
    centre = float(np.median(everything))
    needed = max(RECURRENCE, int(np.ceil(RECURRENCE_SHARE * everything.size)))
    out = base.copy()
    for i in candidates:
        v = values[i]
        if low <= v <= high:
            out[i] = True
            continue
        # How many runs, excluded ones included, were at least this far out on this side.
        if v > centre:
            beyond = everything.size - np.searchsorted(everything, v, side="left")
        else:
            beyond = np.searchsorted(everything, v, side="right")
        if beyond >= needed:
            out[i] = True
    return out, int(out.sum() - base.sum())


def new_level(
    values: np.ndarray,
    excluded: np.ndarray,
    current: float,
    *,
    min_streak: int,
    min_before: int,
    deviation: Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, float, float]],
) -> tuple[int, int] | None:
    """(start, end) rows of the excluded streak where a persistent new level started, or None.

    `deviation(before_rows, positions, values_at)` returns, against the band fitted on the runs
    before the streak: the deviations of `values_at` (at row `positions`, -1 for the current
    run) from its expected values, the band's scale, and its minimum meaningful change.
    A streak of at least `min_streak` excluded runs (one ordinary run inside it does not break
    it: a 5 sigma shift lands inside the band now and then) must sit beyond 3 robust sigma on
    one side, and the later runs (their median) and the current run at least half as far.
    """
    observed = ~np.isnan(values)
    positions = np.flatnonzero(observed)
    flagged = excluded[positions]
    bridged = flagged.copy()
    bridged[1:-1] |= flagged[:-2] & flagged[2:]
    # The latest few streaks: a spike a few days after a new level must not hide that level.
    for first, last in _runs(bridged, min_streak)[:MAX_STREAKS]:
        if flagged[first:last].sum() < min_streak:
            continue
        start, end = int(positions[first]), int(positions[last - 1] + 1)
        if _persistent(values, excluded, observed, start, end, current, min_before, deviation):
            return start, end
    return None


def _persistent(
    values: np.ndarray,
    excluded: np.ndarray,
    observed: np.ndarray,
    start: int,
    end: int,
    current: float,
    min_before: int,
    deviation: Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, float, float]],
) -> bool:
    before = observed & ~excluded
    before[start:] = False
    if before.sum() < min_before:
        return False
    since = np.flatnonzero(observed[start:]) + start
    at = np.concatenate((since, [-1]))
    now_values = np.concatenate((values[since], [current]))
    deviations, scale, floor = deviation(before, at, now_values)
    floor = max(3.0 * scale, floor)
    in_run = at < end
    in_run[-1] = False
    shift = float(np.median(deviations[in_run]))
    if abs(shift) <= floor:
        return False
    if np.mean(np.sign(deviations[in_run]) == np.sign(shift)) < 0.8:
        return False
    # The later runs and the current one stay at least half-way to the new level: a spike
    # followed by a normal day is an incident, not a new normal.
    for part in (deviations[~in_run], deviations[-1:]):
        middle = float(np.median(part))
        if np.sign(middle) != np.sign(shift) or abs(middle) < abs(shift) / 2:
            return False
    return True
