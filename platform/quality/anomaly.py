"""Judge one run's metrics against the asset's own history: `detect(history, current) -> Verdict`.

Methods, combined into one verdict per run (see docs/anomaly.md):

- bounds: fixed min/max per metric, applied from the very first run (cold start included);
- exact_change: near-constant metrics (schema hash, column count) alert on any change;
- zero: a metric that has never been 0 becomes 0;
- robust_z / seasonal_robust_z: a robust one-step forecast (median level, trend only when
  significant, weekly profile only when significant) with a robust forecast-error scale. The
  threshold grows with the number of metrics so that a clean asset alerts on about
  `false_alert_rate` of its runs however many metrics it has;
- multivariate: IsolationForest and LOF over the robustly scaled metric vector; alone they
  alert only when both agree beyond their history-calibrated thresholds.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd
from scipy import special

from data_platform.quality import health, kinds
from data_platform.quality import joint as joint_tests
from data_platform.quality.baseline import BaselineRows, new_level, readmit
from data_platform.quality.multivariate import score_multivariate
from data_platform.quality.univariate import (
    Band,
    SeasonalProfile,
    count_noise_floor,
    fit_band,
    fit_hour_weekday_profile,
    fit_seasonal_profile,
    range_excess,
    reference_threshold,
)
from data_platform.quality.verdict import JointResult, MetricResult, MultivariateResult, Verdict

Direction = Literal["both", "up", "down"]
SCORE_CAP = 99.0
# The zero rule holds while at most this share of the baseline runs were 0.
ZERO_SHARE = 0.05
# Separate earlier episodes at least as far out that make a value the metric's ordinary tail.
TAIL_EPISODES = 10
TAIL_LEVEL_RUNS = 14
DAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


@dataclass(frozen=True)
class MetricConfig:
    """How one metric is judged.

    sensitivity: robust-sigma threshold; None derives it from the asset's false-alert budget.
    min_relative_change / min_absolute_change: a deviation must also be at least this large
    (relative to the expected value, or in absolute units) to alert, so 100 -> 101 on a
    perfectly flat series does not page.
    exact: any change from the previous run alerts (schema_hash, column_count, ...).
    zero_rule: alert when a metric that has never been 0 becomes 0.
    short_history: apply the short-history range rule (AnomalyConfig.short_history_points).
    min_value / max_value: deterministic bounds, applied even during cold start.
    """

    direction: Direction = "both"
    sensitivity: float | None = None
    min_relative_change: float = 0.02
    min_absolute_change: float = 0.0
    exact: bool = False
    zero_rule: bool = True
    min_value: float | None = None
    max_value: float | None = None
    enabled: bool = True
    short_history: bool = True

    def __post_init__(self) -> None:
        if self.direction not in ("both", "up", "down"):
            raise ValueError(f"direction must be 'both', 'up' or 'down', not {self.direction!r}")
        if self.sensitivity is not None and self.sensitivity <= 0:
            raise ValueError(f"sensitivity must be positive, not {self.sensitivity}")


# Small fractions are binomial noise with a large relative spread (0.005-0.022 of nulls for a
# week, 0.036 the next day by chance): bounds and the robust rules judge them, not the
# short-history range.
_FRACTION = MetricConfig(min_absolute_change=0.01, min_value=0.0, max_value=1.0, short_history=False)
_EXACT = MetricConfig(exact=True)
# The smallest and largest value of a column are extremes of a sample: heavy-tailed by nature
# (the cheapest product not bought today doubles min/unit_price), so a few points' range says
# little about them.
_EXTREME = MetricConfig(short_history=False)
# Wall-clock time on a shared machine is noise around a floor: only a run taking more than
# twice as long, and at least 30 s longer, than usual is news; a faster run never is.
_DURATION = MetricConfig(direction="up", min_relative_change=1.0, min_absolute_change=30.0,
                         zero_rule=False)
# Hours from the newest event to the partition end: how long before midnight the last event of
# a quiet day came is chance (0.001 h on most days, 2-3 h on some, for the synthetic reviews);
# a partition three hours staler than usual is news, and fresher data never alerts.
_LAG_HOURS = MetricConfig(direction="up", min_absolute_change=3.0, zero_rule=False,
                          short_history=False)
# Applied after the caller's own rules; names follow the platform's metadata keys.
DEFAULT_RULES: dict[str, MetricConfig] = {
    "duration_seconds": _DURATION,
    "freshness_lag_hours": _LAG_HOURS,
    "schema_hash": _EXACT,
    "*_hash": _EXACT,
    "column_count": _EXACT,
    "category_count/*": _EXACT,
    "null_fraction/*": _FRACTION,
    "quarantine_share": _FRACTION,
    "*_fraction": _FRACTION,
    "*_share": _FRACTION,
    "min/*": _EXTREME,
    "max/*": _EXTREME,
}


# Metrics that cannot be negative by construction (docs/metadata.md): counts, fractions, spreads,
# durations. Any other metric whose whole history is >= 0 is treated the same way.
NON_NEGATIVE: tuple[str, ...] = (
    health.ROW_COUNT, health.COLUMN_COUNT, health.DUPLICATE_KEY_COUNT, health.QUARANTINED_ROW_COUNT,
    health.QUARANTINE_SHARE, health.SOURCE_ROW_COUNT, health.REJECTED_ROW_COUNT,
    health.DURATION_SECONDS, f"{health.NULL_FRACTION}/*", f"{health.DISTINCT_COUNT}/*",
    f"{health.STD}/*", f"{health.QUARANTINED}/*", f"{health.REJECTED}/*", "*_count", "*_fraction",
    "*_share",
)


def is_non_negative(name: str, history: np.ndarray | None = None) -> bool:
    """True for a metric that cannot be negative: by name, or because it never was."""
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in NON_NEGATIVE):
        return True
    if history is None:
        return False
    seen = history[~np.isnan(history)]
    return bool(seen.size) and bool(np.all(seen >= 0))


@dataclass(frozen=True)
class AnomalyConfig:
    """Asset-level settings. `metrics` keys are exact names or fnmatch patterns ("mean/*")."""

    metrics: Mapping[str, MetricConfig] = field(default_factory=dict)
    default: MetricConfig = field(default_factory=MetricConfig)
    use_default_rules: bool = True
    # Most recent points kept; older history is ignored (speed, and old regimes fade out).
    lookback: int = 180
    # The same when runs are less than a day apart: four weeks of hourly runs, since the
    # weekly cycle (168 hours) needs three of them.
    lookback_subdaily: int = 672
    # Each method's own minimum history (points not excluded).
    min_history: int = 7
    min_history_seasonal: int = 21
    min_history_multivariate: int = 30
    # Target share of clean runs that alert, for the whole asset (family-wise).
    # Chosen on the benchmark's development seed 0: 0.003 beat 0.005 (held-out seeds 1 and 2
    # agreed); 0.002 then kept F1 (0.913 -> 0.912) with 16 % fewer false alerts, and on held-out
    # seed 10 raised F1 (0.893 -> 0.898) with 18 % fewer (2.60 -> 2.12 per 1,000 clean runs).
    false_alert_rate: float = 0.002
    # None: 7 for daily data (24 for hourly), tested for significance; 0 disables seasonality.
    period: int | None = None
    # A persistent change: after this many excluded runs showing the same shift, confirmed by
    # the runs since (the current one included), the baseline restarts at the new level. The
    # check alerts on the change, then reports "new level since <run>, learning" for
    # `adaptation` points, not blocking unless `adaptation_blocking`.
    reanchor_after: int = 1
    adaptation: int = 7
    adaptation_blocking: bool = False
    # Short-history range rule: below `short_history_points` baseline points a value also
    # alerts when it lies beyond the whole historical range by more than `short_history_widths`
    # times the range's width AND `short_history_relative` of the nearest extreme (counts: also
    # 3 sqrt(extreme + 1)). 0 points disables it.
    short_history_points: int = 21
    short_history_widths: float = 0.5
    short_history_relative: float = 0.5
    univariate: bool = True
    seasonality: bool = True
    # IsolationForest/LOF on the raw metric vectors: opt-in. On the joint-incident families they
    # added no recall to the univariate rules and the joint tests, at about 45 ms per check
    # (docs/anomaly.md, `bench joint`).
    multivariate: bool = False
    # Which multivariate flag alone makes the run anomalous: "both" (IForest and LOF agree),
    # "iforest", "lof" (used to benchmark each method alone) or "none".
    multivariate_alerts: Literal["both", "iforest", "lof", "none"] = "both"
    # Threshold = worst training score + margin x IQR of training scores; 3 keeps joint flags
    # to runs far outside everything seen (at 1, joint flags cost false alerts in the benchmark).
    multivariate_margin: float = 3.0
    # Score in the robustly whitened space (multivariate.whiten_robustly): sees correlated
    # metrics breaking their relation. Off by default: with many metrics and few points the
    # minor components are noise (201 of 500 clean 50-metric runs alerted); docs/anomaly.md.
    multivariate_whiten: bool = False
    # The joint tests on forecast residuals (quality.joint): "pairs" (a metric that moved
    # without its usual partner), "shift" (several related metrics 2-3 sigma at once), "stuck"
    # (metrics that never repeat a value repeat the previous run's, together). Empty: off.
    joint_tests: tuple[str, ...] = ("pairs", "shift", "stuck")
    # Their own per-run false-alert budget, beside the univariate family's.
    joint_false_alert_rate: float = 0.0005
    # A blocking check stops everything downstream of its asset for the day, so it blocks only
    # on verdicts that also hold at this share of both budgets (ten times rarer on ordinary
    # runs); an anomaly between the two bars alerts (WARN) without blocking. A default of
    # principle (a stopped pipeline costs more than a warning), not fitted. 1.0: every alert
    # blocks.
    blocking_budget_share: float = 0.1
    random_state: int = 0

    def __post_init__(self) -> None:
        if self.lookback < 2:
            raise ValueError(f"lookback must be at least 2, not {self.lookback}")
        if self.multivariate_alerts not in ("both", "iforest", "lof", "none"):
            raise ValueError(f"multivariate_alerts must be both/iforest/lof/none, not {self.multivariate_alerts!r}")
        unknown = set(self.joint_tests) - {"pairs", "shift", "stuck"}
        if unknown:
            raise ValueError(f"joint_tests are pairs/shift/stuck, not {sorted(unknown)}")
        if not 0 < self.false_alert_rate < 1:
            raise ValueError(f"false_alert_rate must be in (0, 1), not {self.false_alert_rate}")
        if not 0 < self.blocking_budget_share <= 1:
            raise ValueError(f"blocking_budget_share must be in (0, 1], not {self.blocking_budget_share}")
        if self.min_history < 3:
            raise ValueError(f"min_history must be at least 3, not {self.min_history}")
        if self.adaptation < 3:
            raise ValueError(f"adaptation must be at least 3 points, not {self.adaptation}")
        if self.reanchor_after < 1:
            raise ValueError(f"reanchor_after must be at least 1, not {self.reanchor_after}")

    def metric_config(self, name: str) -> MetricConfig:
        if name in self.metrics:
            return self.metrics[name]
        for pattern, cfg in self.metrics.items():
            if fnmatch.fnmatchcase(name, pattern):
                return cfg
        if self.use_default_rules:
            if name in DEFAULT_RULES:
                return DEFAULT_RULES[name]
            for pattern, cfg in DEFAULT_RULES.items():
                if fnmatch.fnmatchcase(name, pattern):
                    return cfg
        return self.default


@dataclass
class _Calendar:
    """Seasonal phase of each history row and of the current run."""

    period: int | None
    phases: np.ndarray | None
    current_phase: int | None
    # How to name a phase: "weekday", "hour", "hour_of_week" or "" (a position in the cycle).
    naming: str = ""

    def label(self) -> str:
        if self.current_phase is None:
            return ""
        if self.naming == "weekday":
            return f" for a {DAY_NAMES[self.current_phase]}"
        if self.naming == "hour":
            return f" at {self.current_phase:02d}:00"
        if self.naming == "hour_of_week":
            day, hour = divmod(self.current_phase, 24)
            return f" for a {DAY_NAMES[day]} at {hour:02d}:00"
        return f" at this point of the {self.period}-run cycle"


NO_CALENDAR = _Calendar(None, None, None)


@dataclass
class _Prepared:
    name: str
    cfg: MetricConfig
    observed: float
    values: np.ndarray
    base: np.ndarray
    # Row where a persistent new level started (the baseline restarted there), if any.
    new_level_at: int | None
    profile: SeasonalProfile | None
    kind: kinds.Kind
    cal: _Calendar


def _to_datetimes(index: pd.Index) -> pd.DatetimeIndex | None:
    if isinstance(index, pd.DatetimeIndex):
        return index
    if index.dtype.kind in "OSUT" or pd.api.types.is_string_dtype(index.dtype):
        try:
            parsed = pd.to_datetime(pd.Index(index.astype(str)), errors="coerce", format="mixed")
        except (ValueError, TypeError):
            return None
        if len(parsed) and not parsed.isna().any():
            return pd.DatetimeIndex(parsed)
    return None


def _spacing(history: pd.DataFrame) -> pd.Timedelta | None:
    """Median time between runs when the index holds times (or date partition keys)."""
    times = _to_datetimes(history.index) if len(history) >= 2 else None
    if times is None:
        return None
    step = pd.Series(times).diff().median()
    return step if isinstance(step, pd.Timedelta) and step > pd.Timedelta(0) else None


def _calendars(history: pd.DataFrame, current: pd.Series, period: int | None, first_row: int) -> list[_Calendar]:
    """Seasonal calendars to try, longest cycle first (each is used only if significant).

    From the partition spacing: daily runs, the week (7); hourly runs, the week (168, which
    also holds the day's shape) and the day (24); other spacings, the week and the day in runs
    when they are whole numbers of runs. Without times, or with another `period`: `period`
    (default 7) by position.
    """
    n_total = len(history)
    rows = slice(first_row, n_total)
    times = _to_datetimes(history.index) if n_total >= 2 else None
    step = _spacing(history) if times is not None else None
    if period is not None and period <= 1:
        return [NO_CALENDAR]
    if times is not None and step is not None:
        now = _to_datetimes(pd.Index([current.name])) if current.name is not None else None
        now_ts = now[0] if now is not None and not isinstance(current.name, (int, np.integer)) else times[-1] + step
        weekday, hour = np.asarray(times.day_of_week), np.asarray(times.hour)
        named = {
            (pd.Timedelta(days=1), 7): _Calendar(7, weekday[rows], int(now_ts.day_of_week), "weekday"),
            (pd.Timedelta(hours=1), 168): _Calendar(
                168, (weekday * 24 + hour)[rows], int(now_ts.day_of_week) * 24 + int(now_ts.hour), "hour_of_week"),
            (pd.Timedelta(hours=1), 24): _Calendar(24, hour[rows], int(now_ts.hour), "hour"),
        }
        if period is not None and (step, period) in named:
            return [named[(step, period)]]
        if period is None:
            out = [cal for (spacing, _), cal in named.items() if spacing == step]
            if not out:
                offset = np.round((times - times[0]) / step).astype(int)
                now_pos = int(round((now_ts - times[0]) / step))
                for cycle in (pd.Timedelta(days=7), pd.Timedelta(days=1)):
                    runs = cycle / step
                    if runs >= 2 and float(runs).is_integer():
                        out.append(_Calendar(int(runs), (np.asarray(offset) % int(runs))[rows], now_pos % int(runs)))
            return out or [NO_CALENDAR]
    if period is None:
        if times is not None:
            return [NO_CALENDAR]
        period = 7
    return [_Calendar(period, (np.arange(n_total) % period)[rows], n_total % period)]


def _when(label: object) -> str:
    """A row label as people write it: a date, a date and hour, or the label itself."""
    if isinstance(label, pd.Timestamp):
        return label.strftime("%Y-%m-%d" if label == label.normalize() else "%Y-%m-%d %H:%M")
    return str(label)


def _as_float(value: object) -> float:
    if value is None:
        return math.nan
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return out


def format_value(value: float | None) -> str:
    """How every number in a verdict reads: its reasons, and the check's table and alerts."""
    if value is None or not np.isfinite(value):
        return "n/a"
    if abs(value) >= 1000 or (abs(value) >= 10 and float(value).is_integer()):
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}"
    return f"{value:.3g}"


_fmt = format_value


def format_range(lower: float | None, upper: float | None) -> str:
    return f"{format_value(lower)}–{format_value(upper)}"


def _label(name: str) -> str:
    if name.startswith("dagster/"):
        # Dagster's own keys (dagster/row_count) read as their last part.
        return name.split("/", 1)[1].replace("_", " ")
    if "/" in name:
        kind, column = name.split("/", 1)
        return f"{kind.replace('_', ' ')} of {column}"
    return name.replace("_", " ")


def _cap(score: float) -> float:
    if not np.isfinite(score):
        return math.copysign(SCORE_CAP, score) if not np.isnan(score) else 0.0
    return float(max(-SCORE_CAP, min(SCORE_CAP, score)))


def _baseline(
    values: np.ndarray,
    excluded: np.ndarray,
    cal: _Calendar,
    cfg: AnomalyConfig,
    mcfg: MetricConfig,
    profile: SeasonalProfile | None,
    current: float,
) -> BaselineRows:
    """Rows of the baseline for one metric (quality/baseline.py): excluded runs that turn out
    ordinary rejoin it, and a persistent new level restarts it.
    """

    def deviation(before: np.ndarray, at: np.ndarray, at_values: np.ndarray):
        band = _fit(values, before, cal, profile)
        seen = values[before]
        # A constant has no noise: the count floor of the band does not apply to it.
        scale = 0.0 if seen.size >= kinds.CONSTANT_MIN_POINTS and np.ptp(seen) == 0 else band.scale
        if profile is None or cal.phases is None:
            centres = np.full(at.size, band.expected)
        else:
            # One deseasoned level, each row's phase added back (one fit, not one per phase).
            neutral = 1.0 if profile.multiplicative else 0.0
            level = fit_band(values[before], profile.loo[before], neutral,
                             multiplicative=profile.multiplicative).expected
            phases = np.array([cal.current_phase if i < 0 else int(cal.phases[i]) for i in at.tolist()])
            factors = profile.profile[phases]
            centres = level * factors if profile.multiplicative else level + factors
        floor = max(mcfg.min_absolute_change, mcfg.min_relative_change * abs(band.expected))
        return at_values - centres, scale, floor

    change = new_level(values, excluded, current, min_streak=cfg.reanchor_after,
                       min_before=cfg.min_history, deviation=deviation)
    if change.streak is None:
        rows, readmitted = readmit(values, excluded | change.tail)
        return BaselineRows(rows, None, readmitted, change.tail)
    start, end = change.streak
    # The streak that showed the new level is the new level; later exclusions still count.
    since = np.arange(values.size) >= start
    tail = (excluded | change.tail) & (np.arange(values.size) >= end)
    rows, readmitted = readmit(np.where(since, values, np.nan), tail)
    return BaselineRows(rows, start, readmitted, change.tail)


def _profile(
    values: np.ndarray, excluded: np.ndarray, cal: _Calendar, cfg: AnomalyConfig
) -> SeasonalProfile | None:
    """Seasonal profile from the observed rows; `loo` spans all rows.

    Excluded rows (past incidents) do not shape a phase that has clean rows, so one excluded
    Monday spike cannot set next Monday's expectation. A phase whose rows are all excluded is
    fitted from them: a weekend dip flagged before seasonality was learned is excluded each
    time, and must still be learnable.
    """
    if not cfg.seasonality or cal.period is None or cal.phases is None:
        return None
    observed = ~np.isnan(values)
    if cal.naming == "hour_of_week" and observed.sum() < 3 * cal.period:
        # One to three weeks of hours: the day's shape times a weekday factor.
        if observed.sum() < 2 * cal.period:
            return None
        fitted = fit_hour_weekday_profile(values[observed], cal.phases[observed],
                                          excluded=excluded[observed])
    elif observed.sum() < max(cfg.min_history_seasonal, 3 * cal.period):
        return None
    else:
        fitted = fit_seasonal_profile(values[observed], cal.phases[observed], cal.period,
                                      excluded=excluded[observed])
    if fitted is None:
        return None
    loo = fitted.profile[cal.phases].astype(float)
    loo[observed] = fitted.loo
    return SeasonalProfile(fitted.profile, loo, multiplicative=fitted.multiplicative)


def _fit(values: np.ndarray, rows: np.ndarray, cal: _Calendar, profile: SeasonalProfile | None) -> Band:
    return _fit_at(values, rows, cal, profile, cal.current_phase)


def _fit_at(
    values: np.ndarray, rows: np.ndarray, cal: _Calendar, profile: SeasonalProfile | None,
    phase: int | None,
) -> Band:
    if profile is None or phase is None:
        return fit_band(values[rows])
    return fit_band(values[rows], profile.loo[rows], float(profile.profile[phase]),
                    cal.phases[rows], phase, multiplicative=profile.multiplicative)


def _judge_exact(
    name: str, mcfg: MetricConfig, observed: object, column: pd.Series | None,
    excluded: np.ndarray | None = None,
) -> MetricResult:
    """Any change from the previous run alerts, once: a change that stays is the new value, and
    a return to the last ordinary value after an excluded run (a schema drift that reverted the
    next day) is not a second change."""
    if column is not None and excluded is not None:
        kept = column.notna().to_numpy()
        ordinary = column[kept & ~excluded].dropna()
    else:
        ordinary = pd.Series(dtype=object)
    history = column.dropna() if column is not None else pd.Series(dtype=object)
    if history.empty:
        return MetricResult(name, _as_float(observed) if _is_number(observed) else None,
                            method="exact_change", reason=f"{_label(name)} is new: no history yet")
    previous = history.iloc[-1]
    if not _same(observed, previous) and not ordinary.empty and _same(observed, ordinary.iloc[-1]):
        previous = ordinary.iloc[-1]
    changed = not _same(observed, previous)
    obs_f = _as_float(observed) if _is_number(observed) else None
    prev_f = _as_float(previous) if _is_number(previous) else None
    score = 0.0
    if changed:
        score = SCORE_CAP if obs_f is None or prev_f is None else math.copysign(SCORE_CAP, obs_f - prev_f)
    reason = (
        f"{_label(name)} changed from {_show(previous)} to {_show(observed)} (any change alerts)"
        if changed
        else None
    )
    return MetricResult(name, obs_f, expected=prev_f, lower=prev_f, upper=prev_f, score=score,
                        flagged=changed, method="exact_change", reason=reason)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _same(a: object, b: object) -> bool:
    if _is_number(a) and _is_number(b):
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-12)
    return str(a) == str(b)


def _show(value: object) -> str:
    return _fmt(float(value)) if _is_number(value) else repr(str(value))


def _bounds(name: str, mcfg: MetricConfig, x: float) -> MetricResult | None:
    if mcfg.min_value is not None and x < mcfg.min_value:
        return MetricResult(name, x, lower=mcfg.min_value, upper=mcfg.max_value, score=-SCORE_CAP,
                            flagged=True, method="bounds",
                            reason=f"{_label(name)} {_fmt(x)} is below its allowed minimum {_fmt(mcfg.min_value)}")
    if mcfg.max_value is not None and x > mcfg.max_value:
        return MetricResult(name, x, lower=mcfg.min_value, upper=mcfg.max_value, score=SCORE_CAP,
                            flagged=True, method="bounds",
                            reason=f"{_label(name)} {_fmt(x)} is above its allowed maximum {_fmt(mcfg.max_value)}")
    return None


def _judge_zero(p: _Prepared, robust: MetricResult) -> MetricResult | None:
    """A metric that is (almost) never 0 becomes 0, while 0 is clearly unusual for it.

    Small counts (duplicates ~ Poisson(3)) hit 0 now and then by chance; requiring 0 to lie
    three robust sigma below the expected value keeps the rule to metrics where 0 means broken.
    One earlier 0 in twenty runs (an incident during cold start, or one the check let through)
    does not make 0 ordinary; a 0 on more than `ZERO_SHARE` of the runs does.
    """
    if not p.cfg.zero_rule or p.observed != 0 or robust.expected is None:
        return None
    seen = p.values[p.base]
    zeros = int(np.count_nonzero(seen == 0))
    if p.cfg.direction == "up" or zeros > ZERO_SHARE * seen.size:
        return None
    scale = (robust.expected - robust.lower) if robust.lower is not None else 0.0
    if robust.score > -3.0 or robust.expected <= 0 or scale <= 0:
        return None
    # Nor below the metric's minimum meaningful change: a quarantine share of 0.5% falling to 0
    # is one or two rows, under the 0.01 that fractions need to move before anything alerts.
    if robust.expected < max(p.cfg.min_absolute_change, p.cfg.min_relative_change * robust.expected):
        return None
    before = "it was never 0" if zeros == 0 else f"it was 0 on {zeros}"
    return replace(
        robust, flagged=True, method="zero",
        reason=f"{_label(p.name)} is 0 (expected {_fmt(robust.expected)}; "
        f"{before} of {int(p.base.sum())} runs before)",
    )


def _judge_short_history(p: _Prepared, robust: MetricResult, cfg: AnomalyConfig) -> MetricResult | None:
    """With few points, a value far outside everything seen alerts (docs/anomaly.md, Cold start).

    The family-wise robust threshold is honest about how little a MAD of 7 points says (about
    54 sigma with 30 metrics), so a 70% drop of a count swinging +/-20% by weekday is missed.
    The whole range of the (incident-free) history is a better-used summary of few points; a
    value beyond it by half its width and by half the nearest extreme is far from any chance
    excursion of a metric with that little spread.
    """
    if robust.flagged or not p.cfg.short_history:
        return None
    values = p.values[p.base]
    n = values.size
    if n >= cfg.short_history_points or n < cfg.min_history:
        return None
    x, mcfg = p.observed, p.cfg
    values = _without_past_outliers(values, cfg, mcfg)
    where = range_excess(values, x)
    if where.excess == 0.0:
        return None
    if (where.excess > 0 and mcfg.direction == "down") or (where.excess < 0 and mcfg.direction == "up"):
        return None
    counts = bool(np.all(values == np.round(values)))
    width = where.high - where.low

    def margin(edge: float) -> float:
        out = max(cfg.short_history_widths * width, cfg.short_history_relative * abs(edge),
                  mcfg.min_absolute_change, mcfg.min_relative_change * abs(edge))
        # A small count has Poisson noise whatever its short history showed.
        return max(out, 3.0 * math.sqrt(abs(edge) + 1.0)) if counts else out

    lower, upper = where.low - margin(where.low), where.high + margin(where.high)
    if lower <= x <= upper:
        return None
    side = "below" if x < lower else "above"
    extreme = "lowest" if side == "below" else "highest"
    return replace(
        robust, lower=lower, upper=upper, flagged=True, method="short_history_range",
        reason=f"{_label(p.name)} {_fmt(x)} is far {side} anything in its {n} runs of history "
        f"({_fmt(where.low)}–{_fmt(where.high)}; {where.widths:.1f} range widths and "
        f"{where.relative:.0%} beyond the {extreme})",
    )


def _without_past_outliers(values: np.ndarray, cfg: AnomalyConfig, mcfg: MetricConfig) -> np.ndarray:
    """The short history without points this very rule would have flagged against the others.

    During cold start nothing is excluded, so an incident on the third day (a 70% volume drop)
    would stretch the range that judges the twelfth: each point far beyond the range of the
    rest (by the rule's own margins) is left out, the most extreme first.
    """
    kept = values
    while kept.size > cfg.min_history:
        order = np.argsort(kept)
        worst = None
        for i in (order[0], order[-1]):
            rest = np.delete(kept, i)
            where = range_excess(rest, float(kept[i]))
            edge = where.low if where.excess < 0 else where.high
            margin = max(cfg.short_history_widths * (where.high - where.low),
                         cfg.short_history_relative * abs(edge), mcfg.min_absolute_change)
            if where.excess != 0 and abs(where.excess) > margin:
                if worst is None or abs(where.excess) > worst[1]:
                    worst = (i, abs(where.excess))
        if worst is None:
            break
        kept = np.delete(kept, worst[0])
    return kept


def _clip_band(result: MetricResult, p: _Prepared) -> MetricResult:
    """The reported normal range never goes where the metric cannot: below 0 for a count, a
    fraction or a mean of non-negative values (its history was never negative), outside a
    configured min/max (fractions: [0, 1]). Whether the run is flagged is decided before.
    """
    lower, upper = result.lower, result.upper
    floor = p.cfg.min_value
    if floor is None and is_non_negative(p.name, p.values[p.base]):
        floor = 0.0
    if lower is not None and floor is not None:
        lower = max(lower, floor)
    if upper is not None and p.cfg.max_value is not None:
        upper = min(upper, p.cfg.max_value)
    if lower == result.lower and upper == result.upper:
        return result
    reason = result.reason
    if reason:
        # The reason quotes the range the table shows: the clipped one.
        reason = reason.replace(format_range(result.lower, result.upper), format_range(lower, upper))
    return replace(result, lower=lower, upper=upper, reason=reason)


def _judge_robust(p: _Prepared, cal: _Calendar, cfg: AnomalyConfig, n_family: int) -> MetricResult:
    x, mcfg = p.observed, p.cfg
    alpha = cfg.false_alert_rate / max(n_family, 1)
    if p.kind is kinds.Kind.CONSTANT:
        return _judge_constant(p, alpha)
    band = _fit(p.values, p.base, cal, p.profile)
    scale = band.scale
    seen = p.values[p.base]
    if p.kind is kinds.Kind.DISCRETE and not band.seasonal:
        # A small domain has no trend: its typical value is its median.
        band = replace(band, expected=float(np.median(seen)), trend=0.0)
    if p.kind is kinds.Kind.DISCRETE:
        # A small domain's forecast errors are mostly 0 (most runs repeat a value); the values
        # themselves show how far it ordinarily moves, each side its own way: a day's maximum
        # price sits at its top items and falls far on days none of them sold, which says
        # nothing about how far above them it may go. Counts keep their Poisson floor.
        side_scale = count_noise_floor(kinds.value_spread(seen, x - band.expected), band.expected, seen)
        scale = side_scale or scale
    elif p.kind is kinds.Kind.EXTREME or scale == 0:
        scale = max(scale, kinds.value_spread(seen))
    delta = x - band.expected
    if mcfg.sensitivity is not None:
        threshold = mcfg.sensitivity
    else:
        threshold = reference_threshold(band.n_eff, alpha, band.tail(1 if delta > 0 else -1))
    min_delta = max(mcfg.min_absolute_change, mcfg.min_relative_change * abs(band.expected))
    if p.kind is kinds.Kind.EXTREME and scale == 0:
        # An extreme that never moved (max/rating always 5) may move with a smaller sample:
        # only a change by half its value is evidence.
        min_delta = max(min_delta, 0.5 * abs(band.expected))
    half_width = max(threshold * scale, min_delta)
    lower, upper = band.expected - half_width, band.expected + half_width
    if scale > 0:
        score = delta / scale
    else:
        score = 0.0 if delta == 0 else math.copysign(math.inf, delta)
    flagged = (x > upper and mcfg.direction != "down") or (x < lower and mcfg.direction != "up")
    if flagged and p.kind in (kinds.Kind.DISCRETE, kinds.Kind.EXTREME) and kinds.seen_before(seen, x):
        # A value the metric took on an ordinary run is not news.
        flagged = False
    if flagged and _recurring_tail(p, x, delta):
        flagged = False
    # An extreme falling back into its sample (the day's maximum is the next item's price when
    # no expensive one sold) to a value it has come back to before is one of its states.
    known_state = kinds.inward(p.name, delta) and kinds.recurring_value(p.values, x)
    # ... and so is its sample's next value inward, one step past what it took (a day's
    # minimum rating of 2.5 after 1-2: a sample without its lowest ratings).
    known_state = known_state or (kinds.inward(p.name, delta) and p.kind is kinds.Kind.DISCRETE
                                  and kinds.next_value(seen, x))
    flagged = flagged and not known_state
    steps = kinds.beyond_domain(seen, x) if p.kind is kinds.Kind.DISCRETE and not known_state else 0.0
    outside_domain = (not flagged and steps >= kinds.DOMAIN_STEPS - 1e-9
                      and ((delta > 0 and mcfg.direction != "down") or (delta < 0 and mcfg.direction != "up")))
    flagged = flagged or outside_domain
    method = "seasonal_robust_z" if band.seasonal else "robust_z"
    reason = None
    if flagged:
        side = "above" if delta > 0 else "below"
        sigma = f"{abs(score):.1f} robust σ {side}" if np.isfinite(score) else "it never varied before"
        if outside_domain:
            sigma = (f"{steps:.0f} of its steps {side} every value of its {seen.size} ordinary runs "
                     f"({_fmt(seen.min())}–{_fmt(seen.max())})")
        reason = (
            f"{_label(p.name)} {_fmt(x)} is far {side} the expected {_fmt(band.expected)} "
            f"(normal range {format_range(lower, upper)}{cal.label() if band.seasonal else ''}; {sigma})"
        )
        if p.new_level_at is not None:
            reason += "; baseline restarted at an earlier persistent change"
    return MetricResult(p.name, x, expected=band.expected, lower=lower, upper=upper,
                        score=_cap(score), flagged=flagged, method=method, reason=reason)


def _recurring_tail(p: _Prepared, x: float, delta: float) -> bool:
    """True when the history, its excluded runs included, has been this far out (deseasoned, on
    the same side) in at least `TAIL_EPISODES` separate episodes: a spiky metric whose spikes the
    check excluded one by one (tweets per hour: 50-80 on a usual 0-3, every day or two) keeps
    producing them, so they are its ordinary tail, not news. Fewer episodes (a repeated incident
    every few weeks) stay anomalous.
    """
    observed = ~np.isnan(p.values)
    if np.count_nonzero(observed) < TAIL_EPISODES * 4:
        return False
    values, current = p.values, x
    if p.profile is not None and p.cal.current_phase is not None:
        values = p.profile.remove(values, p.profile.loo)
        current = float(p.profile.remove(np.array([x]), np.array([p.profile.profile[p.cal.current_phase]]))[0])
    # Each run against the running median of the runs before it (a trend or a level change is
    # not a tail), the current run against the same median of the latest runs.
    seen = values[observed]
    level = pd.Series(seen).rolling(TAIL_LEVEL_RUNS, min_periods=3).median().shift(1).to_numpy()
    gap = seen - level
    now = current - float(np.median(seen[-TAIL_LEVEL_RUNS:]))
    beyond = (gap >= now) if delta > 0 else (gap <= now)
    beyond &= ~np.isnan(gap)
    episodes = int(np.count_nonzero(beyond & ~np.concatenate(([False], beyond[:-1]))))
    return episodes >= TAIL_EPISODES


def _judge_constant(p: _Prepared, alpha: float) -> MetricResult:
    """A metric with one value on every baseline run: any change is news (10 -> 13 columns).

    A count that was always 0 may still see a rare event: with n zeros its rate is at most
    3 / n (95%), so only a count that such a rate makes less likely than `alpha` alerts.
    """
    x, mcfg = p.observed, p.cfg
    value = float(p.values[p.base][0])
    n = int(p.base.sum())
    delta = x - value
    min_delta = max(mcfg.min_absolute_change, mcfg.min_relative_change * abs(value))
    flagged = abs(delta) > min_delta and (
        (delta > 0 and mcfg.direction != "down") or (delta < 0 and mcfg.direction != "up"))
    if flagged and value == 0 and x > 0 and float(x).is_integer():
        flagged = float(special.pdtrc(x - 1.0, 3.0 / n)) < alpha
    elif flagged and value == 0 and 0 < abs(x) < 1:
        # A share that was always 0 becoming a sliver (one outlier row in a thousand) is the
        # same rare event; the fractions' minimum change (0.01) applies.
        flagged = abs(x) > _FRACTION.min_absolute_change
    score = 0.0 if delta == 0 else math.copysign(SCORE_CAP, delta)
    reason = None
    if flagged:
        reason = (f"{_label(p.name)} changed from {_fmt(value)} to {_fmt(x)}: it was "
                  f"{_fmt(value)} on all {n} runs before")
    return MetricResult(p.name, x, expected=value, lower=value - min_delta, upper=value + min_delta,
                        score=score, flagged=flagged, method="constant_change", reason=reason)


def _binary_columns(window: pd.DataFrame, current: pd.Series) -> set[str]:
    """Columns whose min and max were always 0 or 1, with a mean: 0/1 flags.

    Their std is sqrt(p(1 - p)) of the mean p: near p = 0.5 it sits on that curve's flat top,
    so its history barely varies and an ordinary move of the mean looks like many sigma.
    """
    out = set()
    for name in current.index:
        name = str(name)
        if not name.startswith("mean/"):
            continue
        column = name[5:]
        lows = [current.get(f"min/{column}")]
        highs = [current.get(f"max/{column}")]
        if f"min/{column}" in window.columns and f"max/{column}" in window.columns:
            lows += window[f"min/{column}"].dropna().tolist()
            highs += window[f"max/{column}"].dropna().tolist()
        values = [_as_float(v) for v in lows + highs]
        if values and all(v in (0.0, 1.0) for v in values):
            out.add(column)
    return out


def _distinct_series(prepared: list[_Prepared]) -> int:
    """How many different series the robust methods test, for the multiple-testing budget.

    A metric identical to another on every run (the distinct count of a column unique per row
    equals the row count) is the same test twice: it must not tighten every other threshold.
    """
    seen = {(p.observed, np.nan_to_num(p.values, nan=np.inf).tobytes()) for p in prepared}
    return len(seen)


def detect(
    history: pd.DataFrame,
    current: pd.Series | Mapping[str, object],
    config: AnomalyConfig | None = None,
    *,
    excluded: Sequence[bool] | np.ndarray | pd.Series | None = None,
    period: int | None = None,
) -> Verdict:
    """Judge `current` (metric name -> value) against `history` (rows = past runs, oldest first).

    excluded: one flag per history row; True leaves the row out of every baseline (past
    anomalies not marked expected, calendar events). period: seasonal period override
    (0 disables); defaults to `config.period`, then to detection from the index.
    """
    cfg = config or AnomalyConfig()
    if not isinstance(history, pd.DataFrame):
        raise TypeError(f"history must be a pandas DataFrame, not {type(history).__name__}")
    if not isinstance(current, pd.Series):
        current = pd.Series(dict(current), dtype=object)
    if excluded is None:
        excluded_all = np.zeros(len(history), dtype=bool)
    else:
        excluded_all = np.asarray(excluded, dtype=bool)
        if excluded_all.shape != (len(history),):
            raise ValueError(
                f"excluded has {excluded_all.size} flags but history has {len(history)} rows"
            )
    lookback = cfg.lookback
    step = _spacing(history)
    if step is not None and step < pd.Timedelta(days=1):
        lookback = max(lookback, cfg.lookback_subdaily)
    first_row = max(0, len(history) - lookback)
    window = history.iloc[first_row:]
    excluded_rows = excluded_all[first_row:]
    cals = _calendars(history, current, period if period is not None else cfg.period, first_row)
    history_points = int((~excluded_rows).sum())
    learning = history_points < cfg.min_history

    results: dict[str, MetricResult] = {}
    prepared: list[_Prepared] = []
    multivariate_names: list[str] = []
    binary = _binary_columns(window, current)
    for name, raw in current.items():
        name = str(name)
        mcfg = cfg.metric_config(name)
        column = window[name] if name in window.columns else None
        if not mcfg.enabled:
            results[name] = MetricResult(name, None, method="skipped", reason="disabled by configuration")
            continue
        if name.startswith("std/") and name[4:] in binary:
            results[name] = MetricResult(
                name, _as_float(raw), method="skipped",
                reason="the std of a 0/1 column is a function of its mean, judged instead")
            continue
        if name.startswith("mean/") and name[5:] in binary:
            # The mean of a 0/1 flag is a share of rows: a share's minimum change applies
            # (0 -> 0.2 % of rows flagged is one odd row, not an incident).
            mcfg = replace(mcfg, min_absolute_change=max(mcfg.min_absolute_change, _FRACTION.min_absolute_change))
        x = _as_float(raw)
        if not np.isnan(x):
            hit = _bounds(name, mcfg, x)
            if hit is not None:
                results[name] = hit
                continue
        if learning:
            results[name] = MetricResult(
                name, None if np.isnan(x) else x, method="learning",
                reason=f"learning: {history_points} of {cfg.min_history} points")
            continue
        if not cfg.univariate:
            # Still a judged dimension for the multivariate detectors.
            if column is not None and not mcfg.exact and not np.isnan(x):
                multivariate_names.append(name)
            results[name] = MetricResult(name, None if np.isnan(x) else x, method="skipped",
                                         reason="univariate methods disabled")
            continue
        if mcfg.exact:
            results[name] = _judge_exact(name, mcfg, raw, column, excluded_rows)
            continue
        if np.isnan(x):
            results[name] = MetricResult(name, None, method="skipped", reason="no numeric value this run")
            continue
        if column is None:
            results[name] = MetricResult(name, x, method="skipped", reason="new metric: no history yet")
            continue
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        cal, profile = cals[-1], None
        for candidate in cals:
            profile = _profile(values, excluded_rows, candidate, cfg)
            if profile is not None:
                cal = candidate
                break
        rows = _baseline(values, excluded_rows, cal, cfg, mcfg, profile, x)
        if profile is not None and rows.tail is not None and rows.tail.any():
            # An incident's tail must not shape the seasonal profile either.
            profile = _profile(values, excluded_rows | rows.tail, cal, cfg) or profile
        n_base = int(rows.rows.sum())
        if rows.new_level_at is not None and n_base < cfg.adaptation:
            since = _when(window.index[rows.new_level_at])
            results[name] = MetricResult(
                name, x, method="new_level", flagged=cfg.adaptation_blocking,
                reason=f"{_label(name)}: new level since {since}; learning: {n_base} of "
                f"{cfg.adaptation} points")
            continue
        if n_base < cfg.min_history:
            results[name] = MetricResult(name, x, method="learning",
                                         reason=f"learning: {n_base} of {cfg.min_history} points")
            continue
        constant_min = kinds.CONSTANT_MIN_POINTS
        if rows.new_level_at is not None:
            before = values[: rows.new_level_at][~np.isnan(values[: rows.new_level_at])]
            if before.size >= constant_min and np.ptp(before[-constant_min:]) == 0:
                constant_min = cfg.adaptation
        kind = kinds.infer_kind(name, values[rows.rows], constant_min)
        prepared.append(_Prepared(name, mcfg, x, values, rows.rows, rows.new_level_at, profile, kind, cal))

    n_family = _distinct_series(prepared)
    for p in prepared:
        results[p.name] = _judge_robust(p, p.cal, cfg, n_family)
        zero = _judge_zero(p, results[p.name])
        if zero is not None:
            results[p.name] = zero
        short = _judge_short_history(p, results[p.name], cfg)
        if short is not None:
            results[p.name] = short
        results[p.name] = _clip_band(results[p.name], p)

    multivariate = None
    if cfg.multivariate and not learning:
        names = multivariate_names + [p.name for p in prepared]
        multivariate = _multivariate(window, excluded_rows, current, names, cfg)

    joint = None
    if cfg.joint_tests and not learning:
        joint = _joint(prepared, cfg)

    flagged = sorted((m for m in results.values() if m.flagged), key=lambda m: -abs(m.score))
    reasons = [m.reason for m in flagged if m.reason]
    is_anomaly = bool(flagged)
    if joint is not None and joint.flagged:
        is_anomaly = True
        reasons.append(joint.reason)
    if multivariate is not None and _multivariate_alerts(multivariate, cfg.multivariate_alerts):
        is_anomaly = True
        moved = ", ".join(_label(n) for n in multivariate.top_contributors[:3]) or "several metrics"
        reasons.append(
            "the metrics together look unlike any past run (IsolationForest "
            f"{multivariate.iforest_score:.3g} > {multivariate.iforest_threshold:.3g}, LOF "
            f"{multivariate.lof_score:.3g} > {multivariate.lof_threshold:.3g}); most changed: {moved}"
        )
    if learning:
        reasons.append(f"learning: {history_points} of {cfg.min_history} points")
    verdict = Verdict(
        is_anomaly=is_anomaly,
        metrics=results,
        multivariate=multivariate,
        joint=joint,
        reasons=reasons,
        learning=learning,
        history_points=history_points,
        min_history=cfg.min_history,
    )
    if is_anomaly and cfg.blocking_budget_share < 1:
        # Rare (anomalous runs only): the same judgement at the blocking budget.
        strict = replace(cfg, false_alert_rate=cfg.false_alert_rate * cfg.blocking_budget_share,
                         joint_false_alert_rate=cfg.joint_false_alert_rate * cfg.blocking_budget_share,
                         blocking_budget_share=1.0)
        verdict.below_blocking_bar = not detect(history, current, strict, excluded=excluded,
                                                period=period).is_anomaly
    return verdict


_JOINT_KINDS = (kinds.Kind.COUNT, kinds.Kind.CONTINUOUS, kinds.Kind.FRACTION)


def _joint(prepared: list[_Prepared], cfg: AnomalyConfig) -> JointResult | None:
    """The joint tests on the judged continuous metrics, deseasoned as their bands are."""
    series = []
    for p in prepared:
        if p.kind not in _JOINT_KINDS or p.new_level_at is not None or p.name == health.DURATION_SECONDS:
            continue
        values, current = p.values, p.observed
        if p.profile is not None and p.cal.current_phase is not None:
            values = p.profile.remove(values, p.profile.loo)
            current = float(p.profile.remove(np.array([current]), np.array([p.profile.profile[p.cal.current_phase]]))[0])
        series.append(joint_tests.Series(p.name, values, p.base, current, p.values, p.observed))
    if len(series) < 2:
        return None
    return joint_tests.judge_joint(series, cfg.joint_false_alert_rate, pairs="pairs" in cfg.joint_tests,
                                   shift="shift" in cfg.joint_tests, stuck="stuck" in cfg.joint_tests)


def _multivariate_alerts(result: MultivariateResult, mode: str) -> bool:
    if mode == "both":
        return result.flagged
    if mode == "iforest":
        return result.iforest_flagged
    if mode == "lof":
        return result.lof_flagged
    return False


def _multivariate(
    window: pd.DataFrame,
    excluded_rows: np.ndarray,
    current: pd.Series,
    names: list[str],
    cfg: AnomalyConfig,
) -> MultivariateResult | None:
    rows = ~excluded_rows
    if rows.sum() < cfg.min_history_multivariate or len(names) < 2:
        return None
    block = window.loc[rows, names].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    # Metrics measured in most runs only: a sparse column would mostly be imputed noise.
    dense = np.mean(~np.isnan(block), axis=0) >= 0.8
    if dense.sum() < 2:
        return None
    kept = [n for n, keep in zip(names, dense, strict=True) if keep]
    now = np.array([_as_float(current[n]) for n in kept])
    return score_multivariate(block[:, dense], now, kept, margin=cfg.multivariate_margin,
                              random_state=cfg.random_state, whiten=cfg.multivariate_whiten)


def with_metric(config: AnomalyConfig, name: str, **changes: object) -> AnomalyConfig:
    """A copy of `config` where metric `name` (or pattern) gets these MetricConfig fields."""
    base = config.metric_config(name)
    metrics = dict(config.metrics)
    metrics[name] = replace(base, **changes)
    return replace(config, metrics=metrics)
