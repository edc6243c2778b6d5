"""Univariate detector: a robust one-step forecast with a robust forecast-error scale.

The baseline never contains the point being judged, and it is built from medians and median
absolute deviations, so a past incident inside the window neither moves the expected value nor
widens the band (Elementary's z-score does both). Weekly seasonality and a local trend are
modelled only when the history shows them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import special

MAD_TO_SIGMA = 1.4826
IQR_TO_SIGMA = 1.349
# Below this many baseline points the forecast error scale comes from the spread of the values
# themselves; with more, it comes from genuine out-of-sample one-step errors.
MIN_POINTS_FOR_ERRORS = 15
LEVEL_WINDOW = 14
TREND_WINDOW = 42


@dataclass
class Band:
    """What the history predicts for one point: a centre and a robust error scale."""

    expected: float
    scale: float
    seasonal: bool
    trend: float
    # Effective sample size behind `scale`: drives the heavy-tailed reference distribution.
    n_eff: int
    # Degrees of freedom of a Student t matching the tails of the forecast errors (inf: as
    # light as a Gaussian's); heavy-tailed metrics get thresholds that fit their own tails.
    tail_df: float = math.inf
    # The same for each side (above, below) of a skewed metric (a mean revenue's rare big
    # baskets stretch only the upper tail).
    tail_df_up: float = math.inf
    tail_df_down: float = math.inf

    def tail(self, side: int) -> float:
        """Degrees of freedom for a deviation on this side (+1 above, -1 below)."""
        return min(self.tail_df, self.tail_df_up if side > 0 else self.tail_df_down)


def robust_scale(values: np.ndarray) -> float:
    """MAD-based sigma, at least the IQR- and 90th-percentile-based ones.

    MAD is zero as soon as more than half the points are identical (small counts, fractions
    stuck at 0). The 90th percentile still ignores up to a tenth of outliers.
    """
    if values.size == 0:
        return 0.0
    q25, centre, q75 = np.quantile(values, [0.25, 0.5, 0.75])
    dev = np.abs(values - centre)
    half, ninety = np.quantile(dev, [0.5, 0.9])
    mad = float(half) * MAD_TO_SIGMA
    tail = float(ninety) / 1.645
    if mad > 0:
        # The MAD measures the half of the points nearest the median: when most of them
        # cluster (a skewed metric such as a mean revenue with occasional big spenders, a lucky
        # week), it can be a fifth of the real spread. The interquartile range looks at each
        # side separately, the 90th percentile of deviations at the tail; both still ignore a
        # tenth of outliers, and past incidents are excluded before this is computed.
        return max(mad, float(q75 - q25) / IQR_TO_SIGMA, tail)
    return tail


@dataclass
class SeasonalProfile:
    """Seasonal deviation per phase, and per input row the same without that row's own data.

    The leave-one-out values deseasonalise the history when measuring forecast errors: with
    three or four weeks, a phase median fitted on the very point it corrects would hide most
    of that point's noise and make the band far too narrow.
    """

    profile: np.ndarray
    loo: np.ndarray
    # Factors around 1 (a weekend at 1.4 times the weekday level grows with the level) instead
    # of offsets around 0: chosen for strictly positive metrics, whose seasonal swing scales
    # with a trending level (an offset fitted on months of growth underestimates the latest
    # weekend by the growth since).
    multiplicative: bool = False

    def remove(self, values: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """`values` without the seasonal component `rows` (one entry per value)."""
        return values / rows if self.multiplicative else values - rows

    def add(self, level: float, phase_value: float) -> float:
        return level * phase_value if self.multiplicative else level + phase_value


def group_medians(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Median of `values` per group 0..n_groups-1 (NaN for an empty group), without a loop."""
    order = np.lexsort((values, groups))
    ordered = values[order]
    counts = np.bincount(groups, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    out = np.full(n_groups, np.nan)
    full = counts > 0
    low = starts[full] + (counts[full] - 1) // 2
    high = starts[full] + counts[full] // 2
    out[full] = (ordered[low] + ordered[high]) / 2.0
    return out


def leave_one_out_medians(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Per row, the median of its group without that row (NaN for a group of one)."""
    order = np.lexsort((values, groups))
    ordered = values[order]
    counts = np.bincount(groups, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    sizes = counts[groups[order]]
    first = starts[groups[order]]
    rank = np.arange(values.size) - first
    remaining = sizes - 1

    def pick(position: np.ndarray) -> np.ndarray:
        # Position among the remaining rows -> position in the sorted group.
        shifted = position + (position >= rank)
        return ordered[np.clip(first + shifted, 0, values.size - 1)]

    low = np.maximum((remaining - 1) // 2, 0)
    high = np.maximum(remaining // 2, 0)
    medians = (pick(low) + pick(high)) / 2.0
    medians[remaining < 1] = np.nan
    out = np.empty(values.size)
    out[order] = medians
    return out


def fit_seasonal_profile(
    values: np.ndarray,
    phases: np.ndarray,
    period: int,
    p_value: float = 1e-3,
    excluded: np.ndarray | None = None,
) -> SeasonalProfile | None:
    """Median deviation of each phase from a centred running median, or None if not significant.

    The running median over one full period removes level and trend; a one-way ANOVA on the
    phase groups, winsorised within each group, decides whether the weekly pattern is real, so
    noise never gets a profile and one incident cannot fake one. (A rank test such as
    Kruskal-Wallis lacks the power with three weeks of history: ranks cap the evidence.)

    excluded: rows (past incidents) whose deviation must not shape the profile. Each phase is
    tested and fitted on its non-excluded rows; only a phase whose rows are all excluded falls
    back to them, because a weekly dip flagged before the profile existed is excluded every
    time it occurs and would otherwise never be learned. With three weeks a phase has two
    rows: one excluded spike would otherwise set half its median.
    """
    if values.size < 3 * period:
        return None
    half = period // 2
    level = np.median(sliding_window_view(values, period), axis=1)
    # Centred window: level[i] belongs to row i + half.
    inside = slice(half, half + level.size)
    multiplicative = bool(np.all(values > 0))
    resid = np.log(values[inside] / level) if multiplicative else values[inside] - level
    ph = phases[inside]
    if np.any(np.bincount(ph, minlength=period)[:period] < 2):
        return None
    if np.ptp(resid) == 0:
        return None
    used = np.ones(resid.size, dtype=bool)
    if excluded is not None:
        used = ~np.asarray(excluded, dtype=bool)[inside]
        empty = np.bincount(ph[used], minlength=period)[:period] == 0
        used |= empty[ph]
    if seasonal_p_value(resid[used], ph[used], period) >= p_value:
        return None
    raw = group_medians(resid[used], ph[used], period)
    offset = float(np.median(raw))
    profile = raw - offset
    loo = profile[phases].astype(float)
    # Each clean row corrected by its phase's median without it; a phase's only clean row has
    # no sibling to correct it out of sample, and excluded rows never fitted the profile, so
    # their full-profile value is already out of sample.
    inner = profile[ph].astype(float)
    own = leave_one_out_medians(resid[used], ph[used], period) - offset
    inner[used] = np.where(np.isnan(own), inner[used], own)
    loo[inside] = inner
    if multiplicative:
        # Fitted on log ratios (symmetric for dips and peaks), applied as factors.
        return SeasonalProfile(np.exp(profile), np.exp(loo), multiplicative=True)
    return SeasonalProfile(profile, loo)


# A day counts towards its weekday's factor with this many clean hours; each weekday needs
# this many such days, since the day (not the hour) is what repeats a weekly effect.
MIN_HOURS_PER_DAY = 12
MIN_DAYS_PER_WEEKDAY = 2


def fit_hour_weekday_profile(
    values: np.ndarray,
    phases: np.ndarray,
    p_value: float = 1e-3,
    excluded: np.ndarray | None = None,
) -> SeasonalProfile | None:
    """The week of hourly runs (168 phases = weekday * 24 + hour, rows in time order) as an
    hour-of-day profile times a day-of-week factor, from two weeks of history on (the full
    168-phase profile needs three).

    The day's shape comes from `fit_seasonal_profile` with period 24 (its running median follows
    each day's level, so a busy Saturday does not bend it). Each day's level is the median of
    its hours after that shape is removed; the weekdays' factors are kept only if the days'
    levels differ by weekday far more than days of one weekday differ among themselves (the
    profiles' ANOVA, with days as the replicates: a single odd day is not a weekly pattern).
    None when either part is missing or not significant.
    """
    hours, weekdays = phases % 24, phases // 24
    daily = fit_seasonal_profile(values, hours, 24, p_value, excluded)
    if daily is None:
        return None
    multiplicative = daily.multiplicative
    resid = np.log(values / daily.loo) if multiplicative else values - daily.loo
    used = np.isfinite(resid)
    if excluded is not None:
        used &= ~np.asarray(excluded, dtype=bool)
    # A new day starts where the phase does not follow on from the previous row's.
    day_id = np.concatenate(([0], np.cumsum(np.diff(phases // 24) != 0)))
    n_days = int(day_id[-1]) + 1
    kept = np.bincount(day_id[used], minlength=n_days) >= MIN_HOURS_PER_DAY
    if not kept.any():
        return None
    day_level = group_medians(resid[used], day_id[used], n_days)[kept]
    day_weekday = np.zeros(n_days, dtype=int)
    day_weekday[day_id] = weekdays
    day_weekday = day_weekday[kept]
    if np.any(np.bincount(day_weekday, minlength=7)[:7] < MIN_DAYS_PER_WEEKDAY):
        return None
    if seasonal_p_value(day_level, day_weekday, 7) >= p_value:
        return None
    raw = group_medians(day_level, day_weekday, 7)
    day = raw - float(np.median(raw))
    hour_profile = np.log(daily.profile) if multiplicative else daily.profile
    profile = (day[:, None] + hour_profile[None, :]).ravel()
    if multiplicative:
        return SeasonalProfile(np.exp(profile), daily.loo * np.exp(day[weekdays]), multiplicative=True)
    return SeasonalProfile(profile, daily.loo + day[weekdays])


def fit_band(
    values: np.ndarray,
    seasonal_rows: np.ndarray | None = None,
    seasonal_now: float = 0.0,
    phases: np.ndarray | None = None,
    current_phase: int | None = None,
    multiplicative: bool = False,
) -> Band:
    """Forecast the next point from `values` (oldest first) without looking at it.

    seasonal_rows: the seasonal component to remove from each value (leave-one-out, see
    SeasonalProfile), seasonal_now: the one to add back for the forecast; phases and
    current_phase let the band widen where the profile is least certain. multiplicative: the
    seasonal components are factors (SeasonalProfile.multiplicative), so the forecast and its
    scale are the deseasoned ones times this phase's factor.
    """
    seasonal = seasonal_rows is not None
    if seasonal and multiplicative:
        deseasoned = values / seasonal_rows
        factor, season_now = float(seasonal_now), 0.0
    else:
        deseasoned = values - seasonal_rows if seasonal else values
        factor, season_now = 1.0, float(seasonal_now) if seasonal else 0.0

    n = deseasoned.size
    if n < MIN_POINTS_FOR_ERRORS:
        centre = float(np.median(deseasoned))
        # Inflate by the variance of the median itself: the forecast is uncertain too.
        scale = robust_scale(deseasoned) * np.sqrt(1.0 + np.pi / (2.0 * max(n, 1))) * factor
        centre = centre * factor + season_now
        scale = count_noise_floor(scale, centre, values)
        return Band(centre, scale, seasonal, 0.0, n)

    window = min(LEVEL_WINDOW, n // 2)
    # Median of the `window` points before each point: genuine one-step-ahead errors.
    prior_level = np.median(sliding_window_view(deseasoned[:-1], window), axis=1)
    errors = deseasoned[window:] - prior_level
    scale = robust_scale(errors)
    if seasonal and phases is not None and current_phase is not None:
        # A profile learned from a few weeks is least certain at its worst phase: widen to this
        # phase's own error size (errors should centre on 0 there).
        same_phase = np.abs(errors[phases[window:] == current_phase])
        if same_phase.size >= 3:
            scale = max(scale, MAD_TO_SIGMA * float(np.median(same_phase)))
    # A trend makes the trailing median lag by a constant: the median recent error measures
    # that lag. It is applied only when clearly larger than its own noise, so flat series
    # keep a plain median forecast.
    recent = errors[-TREND_WINDOW:]
    lag = float(np.median(recent))
    # Overlapping windows correlate the errors: count roughly one independent error per window/3.
    independent = max(1.0, recent.size / max(1.0, window / 3.0))
    lag_noise = 1.2533 * scale / np.sqrt(independent)
    trend = lag * max(0.0, 1.0 - (lag_noise / lag) ** 2) if lag else 0.0
    centre = (float(np.median(deseasoned[-window:])) + trend) * factor + season_now
    scale = count_noise_floor(scale * factor, centre, values)
    if seasonal:
        # A seasonal profile learned from a few cycles leaves structured errors whose spread
        # says more about the profile than about the metric's tails: the phase scale above
        # already widens the band where the profile is least certain.
        return Band(centre, scale, seasonal, trend * factor, errors.size)
    centred = errors - np.median(errors)
    return Band(centre, scale, seasonal, trend * factor, errors.size, tail_degrees(errors),
                _side_degrees(centred[centred > 0]), _side_degrees(-centred[centred < 0]))


@dataclass
class RangeExcess:
    """How far a value lies outside the range of a short history, and which side."""

    low: float
    high: float
    # Signed distance beyond the nearest extreme (negative: below the minimum); 0 inside.
    excess: float
    # |excess| over the width of the range (inf when the range is a single value).
    widths: float
    # |excess| over |nearest extreme| (inf when that extreme is 0).
    relative: float


def range_excess(values: np.ndarray, x: float) -> RangeExcess:
    """Where `x` lies against the whole range of `values` (the short-history rule's evidence).

    With a handful of points the range says more than the MAD (it uses every point, and the
    caller has already left past incidents out), but a new point beyond it is not rare: one in
    n + 1 by chance. Only a value far beyond it, in range widths and relative to the nearest
    extreme, is evidence.
    """
    low, high = float(np.min(values)), float(np.max(values))
    width = high - low
    if x < low:
        excess, edge = x - low, low
    elif x > high:
        excess, edge = x - high, high
    else:
        return RangeExcess(low, high, 0.0, 0.0, 0.0)
    widths = abs(excess) / width if width > 0 else np.inf
    relative = abs(excess) / abs(edge) if edge != 0 else np.inf
    return RangeExcess(low, high, float(excess), float(widths), float(relative))


def count_noise_floor(scale: float, centre: float, values: np.ndarray) -> float:
    """`scale`, raised for integer counts (`values`: the history, all integers) to at least what a
    Poisson variable varies: sqrt(mean + 1), capped at 10.

    The MAD of small integers is quantised (often 0 or 0.5) and would make 3 -> 8 duplicates
    look like 16 sigma. Above 100 the 2% minimum relative change takes over, so the cap keeps
    a perfectly stable large count sensitive.
    """
    if values.size == 0 or not np.all(values == np.round(values)):
        return scale
    spread = float(np.max(np.abs(values - np.median(values))))
    # Poisson-like counts with a median of 0 still have a mean, which sets their noise.
    mean = max(abs(centre), float(np.mean(np.abs(values))))
    floor = float(np.sqrt(min(mean + 1.0, 100.0)))
    # Never above what the series has actually shown, nor below one unit: a count that sat at
    # 7 for ten days (the distinct word counts of fifty reviews) may be 6 tomorrow by chance,
    # while a flat large count stays sensitive through the 2% minimum change.
    return max(scale, min(floor, max(spread, 1.0)))


# |t| quantile ratio q(0.975) / q(0.75) of a Student t, by degrees of freedom: 2.91 for a
# Gaussian, 4.16 for 3 degrees of freedom.
# Heavier than 3 degrees of freedom is not told apart from a past incident by a few hundred
# errors: the grid stops there.
_TAIL_DF = np.array([3.0, 4.0, 5.0, 7.0, 10.0, 15.0, 30.0, 1e6])
_TAIL_RATIO = special.stdtrit(_TAIL_DF, 0.975) / special.stdtrit(_TAIL_DF, 0.75)
MIN_ERRORS_FOR_TAILS = 40


def tail_degrees(errors: np.ndarray) -> float:
    """Degrees of freedom of the Student t whose tails match these errors (inf if Gaussian or
    lighter, or too few errors to tell). Errors centred on their median; the 97.5th and 75th
    percentiles of their size tell tail from body, each robust to a few past incidents."""
    if errors.size < MIN_ERRORS_FOR_TAILS:
        return math.inf
    size = np.abs(errors - np.median(errors))
    body, tail = np.quantile(size, [0.5, 0.95])
    if body <= 0:
        return math.inf
    ratio = tail / body
    if ratio <= _TAIL_RATIO[-1]:
        return math.inf
    # The ratio falls as the degrees of freedom grow: interpolate on the reversed grid.
    return float(np.interp(ratio, _TAIL_RATIO[::-1], _TAIL_DF[::-1]))


def _side_degrees(sizes: np.ndarray) -> float:
    """tail_degrees of one side: its deviations from the median, mirrored."""
    if sizes.size < MIN_ERRORS_FOR_TAILS // 2:
        return math.inf
    return tail_degrees(np.concatenate((sizes, -sizes)))


def reference_threshold(n_eff: int, tail_probability: float, tail_df: float = math.inf) -> float:
    """Robust-sigma threshold whose two-sided tail probability is `tail_probability`.

    A MAD-based z is far from Gaussian at small n (MAD has ~37% efficiency), so the reference
    is a Student t whose degrees of freedom shrink accordingly; calibrated by simulation in the
    false-alert-rate test.
    """
    df = max(2.0, 0.37 * (max(n_eff, 2) - 1))
    threshold = float(special.stdtrit(df, 1.0 - tail_probability / 2.0))
    if math.isfinite(tail_df):
        # The scale is a robust sigma (MAD-like): in those units a t's quantile is
        # q(p) / (1.4826 q(0.75)).
        own = float(special.stdtrit(tail_df, 1.0 - tail_probability / 2.0)
                    / (MAD_TO_SIGMA * special.stdtrit(tail_df, 0.75)))
        threshold = max(threshold, own)
    return threshold


def seasonal_p_value(values: np.ndarray, groups: np.ndarray, n_groups: int) -> float:
    """One-way ANOVA p-value after clipping each group to its median +/- 3.5 pooled robust sigma."""
    counts = np.bincount(groups, minlength=n_groups).astype(float)
    # A phase may hold a single row (its siblings excluded); every phase must be present and
    # some group must have replicates to estimate the within-phase noise.
    if np.any(counts < 1) or values.size <= n_groups:
        return 1.0
    medians = group_medians(values, groups, n_groups)
    centred = values - medians[groups]
    sigma = robust_scale(centred)
    if sigma <= 0:
        sigma = float(np.std(centred))
    if sigma <= 0:
        return 0.0 if np.ptp(medians) > 0 else 1.0
    clipped = medians[groups] + np.clip(centred, -3.5 * sigma, 3.5 * sigma)
    means = np.bincount(groups, weights=clipped, minlength=n_groups) / counts
    grand = clipped.mean()
    between = np.sum(counts * (means - grand) ** 2) / (n_groups - 1)
    within = np.sum((clipped - means[groups]) ** 2) / (values.size - n_groups)
    if within <= 0:
        return 0.0 if between > 0 else 1.0
    return float(special.fdtrc(n_groups - 1, values.size - n_groups, between / within))


def kruskal_p_value(values: np.ndarray, groups: np.ndarray, n_groups: int) -> float:
    """Kruskal-Wallis H test p-value (tie-corrected), vectorised for speed."""
    n = values.size
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Average ranks for ties.
    boundaries = np.flatnonzero(np.diff(sorted_values)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [n]))
    average = (starts + ends + 1) / 2.0
    ranks = np.empty(n)
    ranks[order] = np.repeat(average, ends - starts)
    counts = np.bincount(groups, minlength=n_groups).astype(float)
    sums = np.bincount(groups, weights=ranks, minlength=n_groups)
    present = counts > 0
    h = 12.0 / (n * (n + 1)) * np.sum(sums[present] ** 2 / counts[present]) - 3.0 * (n + 1)
    ties = (ends - starts).astype(float)
    correction = 1.0 - np.sum(ties**3 - ties) / (n**3 - n)
    if correction <= 0:
        return 1.0
    return float(special.chdtrc(present.sum() - 1, h / correction))
