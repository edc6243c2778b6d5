"""What kind of metric a history is: learned from its values, and from its name where it is ours.

Extremes (`min/*`, `max/*`), small discrete domains, fractions, counts and continuous values
behave differently; the detector picks the model that fits (docs/anomaly.md, "Metric kinds"):

- constant: one value on every baseline run for at least `CONSTANT_MIN_POINTS` runs (a column
  count, a category count). Any change is news; for a constant 0 count, a change that a rare
  Poisson event cannot explain.
- discrete: a small domain of values (at most `DISCRETE_MAX_VALUES` distinct, each seen about
  twice or more: ratings' minimum of 1, 1.5 or 2, a Poisson count of 0-6). A value the metric
  took on an ordinary run is never an anomaly, and its spread is the spread of its values.
- extreme: the smallest or largest value of a sample: heavy-tailed by nature, never judged
  constant (a week of `min/rating` = 1.5 says little about tomorrow).
- fraction, count, continuous: the robust forecast with its noise floors.
"""

from __future__ import annotations

import fnmatch
from enum import StrEnum

import numpy as np

# Weeks of one value before "any change alerts": a week of 1.5 is not a law.
CONSTANT_MIN_POINTS = 14
DISCRETE_MAX_VALUES = 8
EXTREME_PATTERNS = ("min/*", "max/*")
# Cardinalities of a day's sample (7 countries ordered from, 6 on a quiet day): counts, never
# constants, however long they held.
SAMPLE_COUNT_PATTERNS = ("distinct_count/*",)
FRACTION_PATTERNS = ("null_fraction/*", "*_fraction", "*_share", "quarantine_share")


class Kind(StrEnum):
    CONSTANT = "constant"
    DISCRETE = "discrete"
    EXTREME = "extreme"
    FRACTION = "fraction"
    COUNT = "count"
    CONTINUOUS = "continuous"


def _named(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def infer_kind(name: str, values: np.ndarray, constant_min: int = CONSTANT_MIN_POINTS) -> Kind:
    """The kind of one metric from its baseline values (no NaN) and its name.

    constant_min: runs of one value that make a constant (fewer after a change of level of a
    metric that was constant before it: a column count 10 -> 13 is a constant again at once).
    """
    if values.size == 0:
        return Kind.CONTINUOUS
    extreme = _named(name, EXTREME_PATTERNS)
    distinct = np.unique(values)
    if (distinct.size == 1 and values.size >= constant_min and not extreme
            and not _named(name, SAMPLE_COUNT_PATTERNS)):
        return Kind.CONSTANT
    # A small domain: few values, each typically seen more than once.
    if 1 < distinct.size <= DISCRETE_MAX_VALUES and values.size >= 2 * distinct.size:
        return Kind.DISCRETE
    if extreme:
        return Kind.EXTREME
    if _named(name, FRACTION_PATTERNS) or (values.min() >= 0 and values.max() <= 1 and not
                                           np.all(values == np.round(values))):
        return Kind.FRACTION
    if np.all(values == np.round(values)):
        return Kind.COUNT
    return Kind.CONTINUOUS


def value_spread(values: np.ndarray, side: float = 0.0) -> float:
    """Standard deviation of a discrete metric's values, robust to a tenth of outliers.

    Winsorised at the 5th and 95th percentiles: a small domain's MAD is often 0 (most runs take
    the same value) while the metric plainly varies. side > 0 (< 0): the spread of the values
    at or above (below) the median, mirrored around it.
    """
    if values.size < 2:
        return 0.0
    if side:
        median = float(np.median(values))
        half = values[np.sign(side) * (values - median) >= 0] - median
        values = median + np.concatenate((half, -half))
    low, high = np.quantile(values, [0.05, 0.95])
    return float(np.std(np.clip(values, low, high), ddof=1))


# A small domain's value this many of its steps beyond everything it took (a minimum rating of
# 0 when ordinary days gave 1, 1.5 and 2) is outside the domain, however small its sigma says
# the move is; one step beyond is the domain's next value (a 2.5 after 1-2), not news.
DOMAIN_STEPS = 2
# ... once the domain has been seen this often.
DOMAIN_MIN_POINTS = 14
# ... and only past an edge that is a wall: a value the metric takes at least this share as often
# as its most common value (ratings' minimum piles up at 1.0; a small count's upper values
# thin out into a tail, where two steps past the largest seen is ordinary).
WALL_SHARE = 1.0


# How far (in steps) a value may sit from the lattice of the domain's step: rounding only.
LATTICE_TOLERANCE = 0.01


def beyond_domain(values: np.ndarray, x: float) -> float:
    """How many of the domain's steps `x` lies beyond a wall of the values seen (0 inside their
    range, or beyond an edge that thins out into a tail).

    The step is the smallest gap between two distinct values seen (0.5 for ratings in half
    steps, 1 for counts). 0 when there are too few values to tell a domain.
    """
    distinct, counts = np.unique(values, return_counts=True)
    if values.size < DOMAIN_MIN_POINTS or distinct.size < 2 or not np.isfinite(x):
        return 0.0
    step = float(np.min(np.diff(distinct)))
    # A domain has steps: every value a whole number of them from the smallest (ratings in
    # halves, counts, prices in cents). Values with uneven gaps (the shortest review's mean
    # word length: 3.5, 3.57, 3.6, ...) are a sample's extremes, not a domain with walls.
    offsets = (distinct - distinct[0]) / step
    if np.max(np.abs(offsets - np.round(offsets))) > LATTICE_TOLERANCE:
        return 0.0
    wall = WALL_SHARE * counts.max()
    if x < distinct[0] and counts[0] >= wall:
        return float((distinct[0] - x) / step)
    if x > distinct[-1] and counts[-1] >= wall:
        return float((x - distinct[-1]) / step)
    return 0.0


# An extreme's inward value (a maximum below its usual level) that the history took in this many
# separate earlier episodes, runs the check excluded included, is one of its states: the first
# appearance alerts, a return to it does not. Chosen on development seed 0 (2 -> 1: discrete
# extremes 12 -> 7 false alerts, recall kept); held-out seed 11: 14 -> 9, recall kept.
RECURRING_EPISODES = 1


def inward(name: str, delta: float) -> bool:
    """True when a move of `delta` takes an extreme (by its name) back into its own sample: a
    maximum down, a minimum up. The other side, past what the sample ever reached, is news."""
    if _named(name, ("max/*",)):
        return delta < 0
    if _named(name, ("min/*",)):
        return delta > 0
    return False


def recurring_value(values: np.ndarray, x: float) -> bool:
    """True when the history (NaN = no run) took the value `x` in `RECURRING_EPISODES` or more
    separate episodes."""
    seen = values[~np.isnan(values)]
    same = np.isclose(seen, x, rtol=1e-9, atol=1e-12)
    starts = same & ~np.concatenate(([False], same[:-1]))
    return int(np.count_nonzero(starts)) >= RECURRING_EPISODES


def next_value(values: np.ndarray, x: float) -> bool:
    """True when `x` is one step past the edge of a small domain's values (a lattice of its
    step): the domain's next value (a day's minimum rating of 2.5 after days of 1, 1.5 and 2)."""
    distinct = np.unique(values[np.isfinite(values)])
    if distinct.size < 2 or not np.isfinite(x):
        return False
    step = float(np.min(np.diff(distinct)))
    offsets = (distinct - distinct[0]) / step
    if np.max(np.abs(offsets - np.round(offsets))) > LATTICE_TOLERANCE:
        return False
    past = min(abs(x - (distinct[0] - step)), abs(x - (distinct[-1] + step))) / step
    return past <= LATTICE_TOLERANCE


def seen_before(values: np.ndarray, x: float) -> bool:
    """True when `x` equals a value of the baseline (to float precision)."""
    return bool(np.any(np.isclose(values, x, rtol=1e-9, atol=1e-12)))
