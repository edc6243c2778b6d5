"""Joint detectors: incidents that no single metric shows, judged on forecast residuals.

Each metric's history is turned into one-step residuals (the value minus the median of the
previous `RESIDUAL_WINDOW` ordinary runs, after its seasonal profile), standardised by their
robust scale. Residuals take trend and seasonality out, so what is left of two metrics'
co-movement is their real coupling (a row count and its distinct customers), not a shared
weekday pattern. Three tests read them, each calibrated on the asset's own history:

- broken pair: two positive metrics whose ratio is far steadier than either of them (a row
  count and its distinct customers share volume, trend and weekday, which cancel in the
  ratio), and today the ratio jumped: one moved without the other. A 2-3 sigma move of one
  alone is many sigma of the ratio's own noise.
- joint shift: the Mahalanobis distance of today's residual vector under the residuals'
  shrunk correlation, against a chi-square reference scaled by how the history's own distances
  compare with it. Catches several related statistics moving 2-3 sigma at once.
- stuck upstream: two or more metrics that (almost) never repeat a value repeat the previous
  run's value exactly, at once: a feed that stopped refreshing, each metric still in range.

IsolationForest and LOF (PyOD) can score the same residual vectors (`residual_matrix`); the
benchmark's ablation (docs/anomaly.md) shows what they add.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from data_platform.quality.univariate import reference_threshold, robust_scale
from data_platform.quality.verdict import JointResult

RESIDUAL_WINDOW = 7
MIN_RESIDUALS = 20
# A pair is coupled when its ratio's run-to-run noise is under this share of either metric's.
PAIR_COUPLING = 0.8
PAIR_PRESELECT = 0.5
# Shrinkage of the residual correlation toward the identity: a few dozen runs estimate a
# correlation matrix poorly, and an overconfident one turns noise into distance.
SHRINKAGE = 0.2
# A metric that repeated its previous value on more runs than this never counts as frozen.
REPEAT_SHARE_MAX = 0.1
# Two metrics whose run-to-run changes are identical on at least this share of runs are copies
# for the stuck test (counted once).
COPY_SHARE = 0.9
CLIP = 6.0
# The joint-shift test needs at least this many more runs than metrics.
MIN_SPARE_ROWS = 20


@dataclass
class Series:
    """One metric's deseasoned values (history rows, oldest first) and today's."""

    name: str
    values: np.ndarray  # deseasoned history, NaN where missing
    base: np.ndarray  # ordinary rows (not excluded)
    current: float  # deseasoned current value
    raw: np.ndarray  # history as measured (for exact repeats)
    raw_current: float


def standardised_residuals(s: Series) -> tuple[np.ndarray, float] | None:
    """Residuals of the ordinary history rows (NaN elsewhere) and today's, in robust sigmas."""
    n = s.values.size
    out = np.full(n, np.nan)
    usable = s.base & ~np.isnan(s.values)
    idx = np.flatnonzero(usable)
    if idx.size < MIN_RESIDUALS + RESIDUAL_WINDOW:
        return None
    vals = s.values[idx]
    # Median of the previous RESIDUAL_WINDOW ordinary values for each ordinary value.
    windows = np.lib.stride_tricks.sliding_window_view(vals[:-1], RESIDUAL_WINDOW)
    prior = np.median(windows, axis=1)
    errors = vals[RESIDUAL_WINDOW:] - prior
    now = s.current - float(np.median(vals[-RESIDUAL_WINDOW:]))
    scale = robust_scale(errors)
    if not scale > 0 or not math.isfinite(now):
        return None
    out[idx[RESIDUAL_WINDOW:]] = errors / scale
    return out, now / scale


def residual_matrix(series: list[Series]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(names, history rows x metrics, today's vector) of standardised residuals; rows where a
    metric has no residual hold NaN."""
    names, columns, today = [], [], []
    for s in series:
        res = standardised_residuals(s)
        if res is None:
            continue
        names.append(s.name)
        columns.append(res[0])
        today.append(res[1])
    if not names:
        return [], np.empty((0, 0)), np.empty(0)
    return names, np.column_stack(columns), np.asarray(today)


def judge_joint(series: list[Series], alpha: float, *, pairs: bool = True, shift: bool = True,
                stuck: bool = True) -> JointResult | None:
    """The joint tests on these metrics; None with fewer than two usable metrics."""
    names, matrix, today = residual_matrix(series)
    result = JointResult()
    # Most specific first: the first test that fires names the incident; all record their figures.
    if stuck:
        _judge_stuck(series, alpha, result)
    if pairs:
        _judge_pairs(series, alpha, result)
    if len(names) >= 2:
        rows = np.all(~np.isnan(matrix), axis=1)
        if rows.sum() >= MIN_RESIDUALS:
            # Each metric's scale is itself estimated from these few runs: as in the univariate
            # bands, a residual is read through a Student t of 0.37 (n - 1) degrees of freedom
            # (a MAD's efficiency) and mapped to the Gaussian value of the same tail chance.
            df = max(2.0, 0.37 * (int(rows.sum()) - 1))
            history = np.clip(_gaussian_equivalent(matrix[rows], df), -CLIP, CLIP)
            now = np.clip(_gaussian_equivalent(today, df), -CLIP, CLIP)
            result.residuals = dict(sorted(zip(names, today.round(2).tolist(), strict=True),
                                           key=lambda kv: -abs(kv[1])))
            if shift:
                _judge_shift(names, history, now, alpha, result)
    elif not result.flagged and not result.tests:
        return None
    return result


def _gaussian_equivalent(z: np.ndarray, df: float) -> np.ndarray:
    """The Gaussian value whose tail chance equals a Student t's at `z` (symmetric)."""
    return np.sign(z) * -special.ndtri(special.stdtr(df, -np.abs(z)))


def _one_step(values: np.ndarray) -> tuple[np.ndarray, float] | None:
    """One-step errors against the median of the previous RESIDUAL_WINDOW values, and the
    forecast error of the value after the last one (None: too few values)."""
    if values.size < MIN_RESIDUALS + RESIDUAL_WINDOW:
        return None
    prior = np.median(np.lib.stride_tricks.sliding_window_view(values[:-1], RESIDUAL_WINDOW), axis=1)
    return values[RESIDUAL_WINDOW:] - prior, float(np.median(values[-RESIDUAL_WINDOW:]))


def _judge_pairs(series: list[Series], alpha: float, result: JointResult) -> None:
    """Log ratios of positive metrics: a pair is coupled when its ratio's one-step errors are
    far smaller than either metric's own (shared volume, trend and weekday cancel out)."""
    logs = {}
    for s in series:
        rows = s.base & np.isfinite(s.raw)
        if s.raw_current > 0 and rows.sum() >= MIN_RESIDUALS + RESIDUAL_WINDOW and np.all(s.raw[rows] > 0):
            logs[s.name] = (np.log(np.where(rows, s.raw, np.nan)), math.log(s.raw_current))
    names = list(logs)
    if len(names) < 2:
        return
    # Rows where every candidate metric was measured: their one-step errors line up, and one
    # correlation matrix of them preselects the pairs worth the exact ratio test (a coupled
    # pair's errors correlate by at least about 0.6; checking all pairs exactly is O(m^2)).
    block = np.column_stack([logs[n][0] for n in names])
    common = ~np.isnan(block).any(axis=1)
    if common.sum() < MIN_RESIDUALS + RESIDUAL_WINDOW:
        return
    block = block[common]
    prior = np.median(np.lib.stride_tricks.sliding_window_view(block[:-1], RESIDUAL_WINDOW, axis=0), axis=2)
    errors_all = block[RESIDUAL_WINDOW:] - prior
    own = {n: robust_scale(errors_all[:, k]) for k, n in enumerate(names)}
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.nan_to_num(np.corrcoef(errors_all, rowvar=False), nan=0.0)
    candidates = []
    for a, b in zip(*np.nonzero(np.triu(corr >= PAIR_PRESELECT, k=1)), strict=True):
        i, j = names[a], names[b]
        fit = _one_step(block[:, a] - block[:, b])
        if fit is None:
            continue
        errors, level = fit
        scale = robust_scale(errors)
        if scale > 0 and scale < PAIR_COUPLING * min(own[i], own[j]):
            candidates.append((i, j, errors, level, scale))
    best = None
    for i, j, errors, level, scale in candidates:
        score = (logs[i][1] - logs[j][1] - level - float(np.median(errors))) / scale
        threshold = reference_threshold(errors.size, alpha / len(candidates))
        if best is None or abs(score) / threshold > best[0]:
            best = (abs(score) / threshold, i, j, score, threshold, scale)
    if best is None:
        return
    ratio, i, j, score, threshold, scale = best
    result.tests["broken_pair"] = (abs(score), threshold)
    if ratio > 1 and not result.flagged:
        now = dict(zip(*residual_matrix(series)[::2], strict=True))
        alone, other = (i, j) if abs(now.get(i, 0.0)) >= abs(now.get(j, 0.0)) else (j, i)
        result.flagged, result.method = True, "broken_pair"
        result.score, result.threshold = abs(score), threshold
        result.moved = [alone, other]
        result.reason = (
            f"{alone} moved {now.get(alone, math.nan):+.1f}σ and {other} {now.get(other, math.nan):+.1f}σ, "
            f"but their ratio, which usually varies {100 * scale:.1f} % from run to run (far less than "
            f"either alone), is {abs(score):.1f}σ off (threshold {threshold:.1f}): one moved without the other")


def _shrunk_inverse(history: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Median centre and the inverse of the correlation shrunk toward the identity."""
    m = history.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.nan_to_num(np.corrcoef(history, rowvar=False), nan=0.0)
    corr = (1 - SHRINKAGE) * corr + SHRINKAGE * np.eye(m)
    try:
        return np.median(history, axis=0), np.linalg.inv(corr)
    except np.linalg.LinAlgError:
        return None


def _judge_shift(names: list[str], history: np.ndarray, now: np.ndarray, alpha: float,
                 result: JointResult) -> None:
    m, n = len(names), history.shape[0]
    if n - m < MIN_SPARE_ROWS:
        # Too few runs per metric to estimate their correlations: a new run would look far
        # from the history by estimation error alone.
        return
    fitted = _shrunk_inverse(history)
    if fitted is None:
        return
    centre, inverse = fitted
    d2 = float((now - centre) @ inverse @ (now - centre))
    # Calibration out of sample: each half of the history judged by a fit on the other half
    # (fewer runs than the real fit: conservative). Heavy tails and estimation error both show
    # as distances above the chi-square's; the reference is scaled up by them, never down.
    half = n // 2
    outside = []
    for fit_rows, test_rows in ((slice(0, half), slice(half, n)), (slice(half, n), slice(0, half))):
        other = _shrunk_inverse(history[fit_rows])
        if other is None:
            return
        c, inv = other
        diff = history[test_rows] - c
        outside.append(np.einsum("ij,jk,ik->i", diff, inv, diff))
    factor = max(1.0, float(np.median(np.concatenate(outside))) / float(special.chdtri(m, 0.5)))
    threshold = factor * float(special.chdtri(m, alpha))
    result.tests["joint_shift"] = (d2, threshold)
    if d2 > threshold and not result.flagged:
        moved = [n for n, z in sorted(zip(names, now, strict=True), key=lambda kv: -abs(kv[1])) if abs(z) >= 1.5]
        result.flagged, result.method = True, "joint_shift"
        result.score, result.threshold = d2, threshold
        result.moved = moved[:5]
        parts = ", ".join(f"{n} {z:+.1f}σ" for n, z in sorted(zip(names, now, strict=True),
                                                             key=lambda kv: -abs(kv[1]))[:4])
        result.reason = (
            f"{len(moved)} metrics moved together ({parts}), none far enough alone: joint "
            f"distance {d2:.1f} > {threshold:.1f} ({m} metrics over {n} runs)")


def repeat_chance(raw: np.ndarray) -> float:
    """How likely an ordinary run repeats the previous value exactly: the largest of the share of
    repeats seen, the chance that two runs of the history take the same value (a mean of a few
    half-star ratings sits on a coarse lattice however fine its smallest gap), and what the
    metric's resolution allows (a count with a spread of 80 repeats about once in 280 runs; a
    share of 2,000 rows, much more often; a float, almost never)."""
    repeats = float(np.mean(raw[1:] == raw[:-1]))
    distinct, counts = np.unique(raw, return_counts=True)
    spread = robust_scale(raw - np.median(raw))
    if distinct.size < 2 or not spread > 0:
        return 1.0
    collisions = float(np.sum(counts * (counts - 1.0)) / (raw.size * (raw.size - 1.0)))
    step = float(np.min(np.diff(distinct)))
    return min(1.0, max(repeats, collisions, step / (2.0 * math.sqrt(math.pi) * spread)))


# Pseudo-pairs of the independence prior in `joint_repeat_chance`: with few history pairs that
# share the earlier metrics' values, the estimate leans on the metric's own chance.
PRIOR_PAIRS = 2.0
# Pairs of runs closer than this are not read for dependence: a feed that froze before shows as
# repeats between nearby runs, a dependence (same denominator, same mean) between any two.
PAIR_MIN_GAP = 7


def joint_repeat_chance(raws: list[np.ndarray], chances: list[float]) -> float:
    """How likely these metrics all repeat at once on an ordinary run, dependence included.

    A chain of conditional chances, read off the history's pairs of runs at least
    `PAIR_MIN_GAP` runs apart: the chance of the first metric's repeat, times the share of pairs
    equal on the next metric among the pairs equal on all before it, and so on (shrunk toward
    the metric's own chance by `PRIOR_PAIRS`, and never below it). A mean rating repeats far more often on a day
    whose review count repeated (same denominator), and a quarantine share always does when the
    rows read and kept both did; a product of the separate chances would call such coincidences
    impossible. `raws`: the metrics' histories on the same runs (no NaN); the commonest
    repeaters go first, where most pairs inform the next.
    """
    order = np.argsort(chances)[::-1]
    n = raws[0].size
    gap = np.subtract.outer(np.arange(n), np.arange(n))
    same = gap >= PAIR_MIN_GAP  # each far pair once
    chance = float(chances[order[0]])
    for k, index in enumerate(order):
        equal = same & np.equal.outer(raws[index], raws[index])
        if k:
            before = float(np.count_nonzero(same))
            both = float(np.count_nonzero(equal))
            # Only ever up: pairs cannot show a chance far below one in their number, and
            # equal values are not less likely together than apart.
            chance *= max(chances[index], (both + PRIOR_PAIRS * chances[index]) / (before + PRIOR_PAIRS))
        same = equal
    return chance


ROW_COUNT_NAMES = ("dagster/row_count", "row_count")


def _column(name: str, prefix: str) -> str | None:
    return name[len(prefix):] if name.startswith(prefix) else None


def mean_repeat_chance(mean: Series, count: Series, nulls: Series | None) -> float:
    """How likely a column's mean repeats when the row count did: the chance that its sum does.

    With the same count, the mean repeats exactly when the sum of the column repeats. A sum of
    n half-star ratings lies on a lattice of 0.5 and spreads about sqrt(n) times a rating's
    spread: two such sums are equal about once in 75 runs at n = 110, while the gaps between a
    mean's distinct values over days of different counts are tiny and call the same repeat
    near impossible. The lattice is read off the history's sums (mean x non-null rows); a
    column whose sums show no lattice (prices, amounts) gets 0: no change. Our metadata keys
    only (`mean/<col>`, the row count, `null_fraction/<col>`)."""
    rows = mean.base & count.base & ~np.isnan(mean.raw) & ~np.isnan(count.raw)
    share = np.zeros(mean.raw.size)
    if nulls is not None:
        rows &= nulls.base & ~np.isnan(nulls.raw)
        share = np.nan_to_num(nulls.raw)
    if np.count_nonzero(rows) < MIN_RESIDUALS:
        return 0.0
    n = np.round(count.raw[rows] * (1.0 - share[rows]))
    sums = np.round(mean.raw[rows] * n, 6)
    distinct = np.unique(sums[n > 0])
    if distinct.size < 2:
        return 0.0
    step = float(np.min(np.diff(distinct)))
    # The lattice must explain the sums: each a whole number of steps (to rounding).
    if step <= 0 or np.max(np.abs(distinct / step - np.round(distinct / step))) > 1e-3:
        return 0.0
    today = float(np.round(count.raw_current * (1.0 - (np.nan_to_num(nulls.raw_current) if nulls else 0.0))))
    if today <= 0:
        return 0.0
    # A value's spread: the day-to-day spread of the mean times the square root of the rows.
    sigma = robust_scale(mean.raw[rows] - np.median(mean.raw[rows])) * math.sqrt(float(np.median(n)))
    if not sigma > 0:
        return 0.0
    return min(1.0, step / (2.0 * math.sqrt(math.pi) * math.sqrt(today) * sigma))


def _given_count(frozen: list[Series], chances: list[float], series: list[Series]) -> list[float]:
    """Each frozen `mean/<col>` whose row count is frozen too: at least its sum's chance."""
    by_name = {s.name: s for s in series}
    count = next((s for s in frozen if s.name in ROW_COUNT_NAMES), None)
    if count is None:
        return chances
    out = list(chances)
    for k, s in enumerate(frozen):
        column = _column(s.name, "mean/")
        if column is not None:
            nulls = by_name.get(f"null_fraction/{column}")
            out[k] = max(out[k], mean_repeat_chance(s, count, nulls))
    return out


def _copies(a: Series, b: Series) -> bool:
    """True when two metrics moved by the same amounts on nearly every run both have (a table's
    row count and its count of distinct ids when every row has its own id; the rows delivered
    and the rows kept, which differ only on the few days rows are set aside): they are one
    signal, and when one repeats its value the other almost always does, so their repeats are
    not independent evidence."""
    both = ~np.isnan(a.raw) & ~np.isnan(b.raw)
    if np.count_nonzero(both) < MIN_RESIDUALS:
        return False
    same = np.diff(a.raw[both]) == np.diff(b.raw[both])
    return bool(np.mean(same) >= COPY_SHARE)


def _judge_stuck(series: list[Series], alpha: float, result: JointResult) -> None:
    """Metrics that repeat the previous run's value now: together less likely than `alpha`,
    over every set of that many metrics that could have frozen. Copies of a metric already
    counted add no evidence and are not counted; other dependence between the frozen metrics is
    read off the history (`joint_repeat_chance`)."""
    usable = [s for s in series
              if math.isfinite(s.raw_current) and not np.isnan(s.raw[-1])
              and np.count_nonzero(s.base & ~np.isnan(s.raw)) >= MIN_RESIDUALS]
    if sum(s.raw_current == s.raw[-1] for s in usable) < 2:
        # Fewer than two repeats: nothing below can flag (it only sets metrics aside), and
        # the chances and copies cost O(metrics²) on every run.
        return
    frozen: list[Series] = []
    chances: list[float] = []
    eligible, counted = 0, []
    for s in usable:
        raw = s.raw[s.base & ~np.isnan(s.raw)]
        p = repeat_chance(raw)
        if p > REPEAT_SHARE_MAX:
            continue
        if any(_copies(s, other) for other in counted):
            continue
        counted.append(s)
        eligible += 1
        if s.raw_current == s.raw[-1]:
            frozen.append(s)
            chances.append(p)
    if len(frozen) < 2:
        return
    chances = _given_count(frozen, chances, series)
    rows = np.logical_and.reduce([s.base & ~np.isnan(s.raw) for s in frozen])
    chance = joint_repeat_chance([s.raw[rows] for s in frozen], chances)
    names = [s.name for s in frozen]
    sets = math.comb(eligible, len(frozen))
    result.tests["stuck_upstream"] = (float(len(frozen)), chance * sets)
    if chance * sets <= alpha and not result.flagged:
        result.flagged, result.method = True, "stuck_upstream"
        result.score, result.threshold = float(len(frozen)), 2.0
        result.moved = names
        result.reason = (f"{len(frozen)} metrics repeat the previous run's values exactly "
                         f"({', '.join(names)}), together less likely than once in "
                         f"{1 / (chance * sets):,.0f} ordinary runs: the upstream may have stopped refreshing")
