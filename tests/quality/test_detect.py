"""detect(): the univariate rules, cold start, configuration and what Elementary gets wrong."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_platform.quality.anomaly import AnomalyConfig, MetricConfig, detect


def daily(values: dict[str, list[float]] | pd.DataFrame, start: str = "2025-01-06") -> pd.DataFrame:
    frame = pd.DataFrame(values)
    frame.index = pd.date_range(start, periods=len(frame), freq="D").strftime("%Y-%m-%d")
    return frame


def noisy(n: int, level: float = 1000.0, sd: float = 20.0, seed: int = 0) -> list[float]:
    return list(np.round(np.random.default_rng(seed).normal(level, sd, n)))


def test_spike_after_seven_flat_ish_points_is_caught():
    # Elementary's z includes the tested point: with 8 points |z| <= 7/sqrt(8) < 3, never fires.
    history = daily({"row_count": [1000, 1012, 995, 1003, 990, 1008, 1001]})
    verdict = detect(history, pd.Series({"row_count": 1400.0}))
    assert not verdict.learning
    assert verdict.is_anomaly
    result = verdict.metrics["row_count"]
    assert result.flagged and result.method == "robust_z"
    assert result.score > 0 and result.upper < 1400
    assert "row count 1,400 is far above the expected 1,001" in verdict.reasons[0]


def test_past_incident_in_window_does_not_widen_the_band():
    values = noisy(30)
    values[20] = 5000.0  # an incident the check already flagged
    history = daily({"row_count": values})
    excluded = [i == 20 for i in range(30)]
    normal = detect(history, pd.Series({"row_count": 1010.0}), excluded=excluded)
    assert not normal.is_anomaly
    second = detect(history, pd.Series({"row_count": 1200.0}), excluded=excluded)
    assert second.is_anomaly
    # Even if the caller forgot to exclude it, medians keep the band tight.
    unexcluded = detect(history, pd.Series({"row_count": 1200.0}))
    assert unexcluded.is_anomaly
    assert unexcluded.metrics["row_count"].upper < 1150


def run_walk_forward(series: list[float], config: AnomalyConfig | None = None) -> list[bool]:
    history = daily({"row_count": series})
    flags: list[bool] = []
    for day in range(len(series)):
        verdict = detect(history.iloc[:day], history.iloc[day], config, excluded=flags)
        flags.append(verdict.is_anomaly)
    return flags


def test_level_shift_alerts_first_day_then_reanchors():
    before = noisy(40, seed=1)
    after = noisy(40, level=1500.0, seed=2)
    flags = run_walk_forward(before + after)
    assert flags[40], "the shift is caught on its first day"
    assert sum(flags[40:]) <= 3, "after reanchor_after=3 flags the new level is the baseline"
    assert not any(flags[44:])
    assert sum(flags[7:40]) == 0


def test_level_shift_marked_expected_stops_alerting():
    series = noisy(40, seed=1) + noisy(12, level=1500.0, seed=2)
    history = daily({"row_count": series})
    # The caller marked the new level as expected: nothing is excluded.
    late = detect(history, pd.Series({"row_count": 1490.0}))
    assert not late.is_anomaly


def test_one_percent_change_on_flat_series_does_not_alert():
    history = daily({"row_count": [100.0] * 20, "mean/amount": [5.5] * 20})
    verdict = detect(history, pd.Series({"row_count": 101.0, "mean/amount": 5.55}))
    assert not verdict.is_anomaly
    moved = detect(history, pd.Series({"row_count": 130.0, "mean/amount": 5.5}))
    assert moved.is_anomaly and moved.metrics["row_count"].flagged


def test_schema_hash_change_alerts_once():
    history = daily({"schema_hash": ["abc"] * 10, "row_count": noisy(10)})
    changed = detect(history, pd.Series({"schema_hash": "abd", "row_count": 1000.0}, dtype=object))
    assert changed.is_anomaly
    assert changed.metrics["schema_hash"].method == "exact_change"
    assert "changed from 'abc' to 'abd'" in changed.reasons[0]
    history.loc[history.index[-1], "schema_hash"] = "abd"
    again = detect(history, pd.Series({"schema_hash": "abd", "row_count": 1000.0}, dtype=object))
    assert not again.metrics["schema_hash"].flagged


def test_column_count_change_alerts_via_default_rule():
    history = daily({"column_count": [12.0] * 10})
    verdict = detect(history, pd.Series({"column_count": 13.0}))
    assert verdict.metrics["column_count"].flagged
    assert verdict.metrics["column_count"].method == "exact_change"


def test_zero_rule():
    history = daily({"row_count": noisy(20, level=300.0, sd=60.0)})
    verdict = detect(history, pd.Series({"row_count": 0.0}))
    assert verdict.is_anomaly
    assert verdict.metrics["row_count"].method == "zero"
    assert "is 0 (expected" in verdict.reasons[0] and "it was never 0" in verdict.reasons[0]
    # Small counts reach 0 by chance: not a zero alert.
    small = daily({"duplicate_key_count": [3, 2, 4, 1, 3, 5, 2, 3, 4, 2, 1, 3, 2, 4, 3]})
    quiet = detect(small, pd.Series({"duplicate_key_count": 0.0}))
    assert not quiet.is_anomaly


def test_cold_start_reason_and_bounds_still_apply():
    history = daily({"row_count": [100.0, 102, 98, 101, 99]})
    config = AnomalyConfig(metrics={"row_count": MetricConfig(min_value=10)})
    verdict = detect(history, pd.Series({"row_count": 500.0}), config)
    assert verdict.learning and not verdict.is_anomaly
    assert verdict.history_points == 5 and verdict.min_history == 7
    assert "learning: 5 of 7 points" in verdict.reasons
    below = detect(history, pd.Series({"row_count": 3.0}), config)
    assert below.is_anomaly and below.metrics["row_count"].method == "bounds"
    assert below.learning


# One week, Monday first, of a count that is 25-30% busier at the weekend.
WEEK = [1000.0, 1040, 980, 1010, 1020, 1250, 1300]


def test_seventy_percent_drop_on_the_eighth_point_is_caught_by_the_range_rule():
    history = daily({"row_count": WEEK})
    verdict = detect(history, pd.Series({"row_count": 300.0}, name="2025-01-13"))
    result = verdict.metrics["row_count"]
    assert verdict.is_anomaly and result.flagged
    assert result.method == "short_history_range"
    assert result.lower > 300 and result.upper > 1300
    assert "far below anything in its 7 runs of history (980–1,300" in verdict.reasons[0]
    # The robust threshold alone is honest about 7 points: far too wide to see it.
    off = detect(history, pd.Series({"row_count": 300.0}), AnomalyConfig(short_history_points=0))
    assert not off.is_anomaly


def test_normal_weekday_swing_on_the_eighth_point_is_not_flagged():
    history = daily({"row_count": WEEK})
    for value in (960.0, 1005.0, 1380.0):  # a quiet Monday, an ordinary one, a busy one
        verdict = detect(history, pd.Series({"row_count": value}, name="2025-01-13"))
        assert not verdict.is_anomaly, (value, verdict.reasons)


def test_range_rule_respects_direction_limits_and_exemptions():
    history = daily({"row_count": WEEK, "min/price": [4.0, 4.5, 4.2, 4.9, 4.1, 4.3, 4.6]})
    up_only = AnomalyConfig(metrics={"row_count": MetricConfig(direction="up")})
    assert not detect(history, pd.Series({"row_count": 300.0}), up_only).is_anomaly
    # The cheapest products not bought today: an extreme of a sample, exempt from the range rule.
    assert not detect(history, pd.Series({"min/price": 8.0})).is_anomaly
    # From short_history_points on, only the robust rules judge.
    long = daily({"row_count": WEEK * 3})
    late = detect(long, pd.Series({"row_count": 1980.0}))
    assert late.metrics["row_count"].method != "short_history_range"


def test_empty_history_is_learning():
    verdict = detect(pd.DataFrame(), pd.Series({"row_count": 5.0}))
    assert verdict.learning and not verdict.is_anomaly
    assert verdict.reasons == ["learning: 0 of 7 points"]


def test_direction_config():
    history = daily({"rmse": list(np.random.default_rng(3).normal(1.0, 0.01, 30))})
    up_only = AnomalyConfig(metrics={"rmse": MetricConfig(direction="up")})
    assert not detect(history, pd.Series({"rmse": 0.8}), up_only).is_anomaly
    assert detect(history, pd.Series({"rmse": 1.2}), up_only).is_anomaly
    assert detect(history, pd.Series({"rmse": 0.8})).is_anomaly


def test_sensitivity_config():
    history = daily({"mean/amount": list(np.random.default_rng(4).normal(50, 1, 60))})
    current = pd.Series({"mean/amount": 53.0})
    assert not detect(history, current).is_anomaly
    strict = AnomalyConfig(metrics={"mean/*": MetricConfig(sensitivity=2.0)})
    assert detect(history, current, strict).is_anomaly


def test_seasonality_busy_saturday_is_normal_but_not_on_a_tuesday():
    rng = np.random.default_rng(5)
    dates = pd.date_range("2025-01-06", periods=56, freq="D")  # starts on a Monday
    rows = np.where(dates.day_of_week == 5, 2000.0, 1000.0) + rng.normal(0, 20, 56)
    history = pd.DataFrame({"row_count": rows}, index=dates)
    saturday = pd.Series({"row_count": 2010.0}, name=pd.Timestamp("2025-03-08"))
    tuesday = pd.Series({"row_count": 2010.0}, name=pd.Timestamp("2025-03-04"))
    on_saturday = detect(history, saturday)
    assert not on_saturday.is_anomaly
    assert on_saturday.metrics["row_count"].method == "seasonal_robust_z"
    on_tuesday = detect(history.iloc[:-4], tuesday)
    assert on_tuesday.is_anomaly
    assert "for a Tuesday" in on_tuesday.reasons[0]


def test_trend_is_followed():
    days = np.arange(60)
    history = daily({"row_count": list(1000 + 10 * days + np.random.default_rng(6).normal(0, 5, 60))})
    assert not detect(history, pd.Series({"row_count": 1600.0})).is_anomaly
    assert detect(history, pd.Series({"row_count": 1450.0})).is_anomaly


def test_new_metric_and_missing_values_are_not_alerted():
    history = daily({"row_count": noisy(10), "mean/x": [np.nan] * 5 + [1.0] * 5})
    verdict = detect(history, pd.Series({"row_count": 1000.0, "mean/new": 9e9, "mean/x": np.nan}))
    assert not verdict.is_anomaly
    assert verdict.metrics["mean/new"].method == "skipped"
    assert verdict.metrics["mean/x"].observed is None


def test_range_index_and_lookback():
    history = pd.DataFrame({"m": noisy(400, level=10.0, sd=1.0)})
    verdict = detect(history, pd.Series({"m": 10.0}), AnomalyConfig(lookback=50))
    assert verdict.history_points == 50


def test_bad_input_raises_clear_errors():
    history = daily({"m": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="excluded has 2 flags but history has 3 rows"):
        detect(history, pd.Series({"m": 1.0}), excluded=[True, False])
    with pytest.raises(TypeError, match="history must be a pandas DataFrame"):
        detect([1, 2, 3], pd.Series({"m": 1.0}))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="direction"):
        MetricConfig(direction="sideways")  # type: ignore[arg-type]


def test_multivariate_scores_are_deterministic_and_reported():
    rng = np.random.default_rng(7)
    base = rng.normal(0, 1, (60, 1))
    history = daily(pd.DataFrame({f"m{i}": 100 + 5 * base[:, 0] + rng.normal(0, 1, 60) for i in range(5)}))
    # Each metric is normal on its own, but the usual co-movement is broken.
    current = pd.Series({"m0": 108.0, "m1": 92.0, "m2": 108.0, "m3": 92.0, "m4": 100.0})
    opted_in = AnomalyConfig(multivariate=True)
    first, second = detect(history, current, opted_in), detect(history, current, opted_in)
    assert detect(history, current).multivariate is None  # opt-in
    # The joint tests see the broken co-movement by default.
    assert detect(history, current).joint.flagged
    assert first.multivariate is not None
    assert first.multivariate.iforest_score == second.multivariate.iforest_score
    assert first.multivariate.lof_score == second.multivariate.lof_score
    assert first.multivariate.lof_flagged
    assert not any(m.flagged for m in first.metrics.values())


def test_small_share_reaching_zero_is_below_the_minimum_change():
    # About 5 quarantined rows in 1000: 0 is a quiet day, not a broken one (0.005 < 0.01).
    shares = list(np.random.default_rng(3).binomial(1000, 0.005, 20) / 1000 + 0.0005)
    verdict = detect(daily({"quarantine_share": shares}), pd.Series({"quarantine_share": 0.0}))
    assert not verdict.is_anomaly
    # A large share collapsing to 0 is still news.
    big = daily({"quarantine_share": list(0.2 + np.random.default_rng(4).normal(0, 0.01, 20))})
    assert detect(big, pd.Series({"quarantine_share": 0.0})).is_anomaly


def test_duration_and_freshness_lag_alert_only_when_clearly_worse():
    rng = np.random.default_rng(6)
    history = daily({
        "duration_seconds": list(2.0 + rng.exponential(0.3, 20)),
        "freshness_lag_hours": list(0.001 + rng.exponential(0.0002, 20)),
    })
    # A busy machine triples a 2 s step; a 4 s lag is 40 s the next day: neither is news.
    busy = detect(history, pd.Series({"duration_seconds": 7.0, "freshness_lag_hours": 0.011}))
    assert not busy.is_anomaly
    assert not detect(history, pd.Series({"duration_seconds": 0.5})).is_anomaly
    slow = detect(history, pd.Series({"duration_seconds": 60.0, "freshness_lag_hours": 5.0}))
    assert slow.metrics["duration_seconds"].flagged
    assert slow.metrics["freshness_lag_hours"].flagged


def test_identical_series_count_once_in_the_false_alert_budget():
    rows = noisy(20, sd=20.0, seed=8)
    alone = detect(daily({"row_count": rows}), pd.Series({"row_count": 1000.0}))
    # The distinct count of a per-row id equals the row count: the same test, not a second one.
    twice = detect(
        daily({"row_count": rows, "distinct_count/order_id": rows}),
        pd.Series({"row_count": 1000.0, "distinct_count/order_id": 1000.0}),
    )
    assert twice.metrics["row_count"].upper == pytest.approx(alone.metrics["row_count"].upper)
    other = detect(
        daily({"row_count": rows, "mean/amount": noisy(20, 50.0, 1.0, seed=9)}),
        pd.Series({"row_count": 1000.0, "mean/amount": 50.0}),
    )
    assert other.metrics["row_count"].upper > alone.metrics["row_count"].upper


def test_skewed_metric_with_a_lucky_cluster_gets_its_real_spread():
    # Seven of thirteen values cluster within 0.05 of the median: the MAD alone says sigma 0.06.
    values = [3.88, 3.87, 4.38, 3.84, 3.82, 3.82, 3.63, 4.21, 3.81, 3.59, 3.82, 4.06, 4.43]
    verdict = detect(daily({"mean/revenue": values}), pd.Series({"mean/revenue": 4.66}))
    assert not verdict.is_anomaly
    assert detect(daily({"mean/revenue": values}), pd.Series({"mean/revenue": 12.0})).is_anomaly


def test_weekly_dip_excluded_every_time_is_still_learned():
    rng = np.random.default_rng(10)
    dates = pd.date_range("2025-01-06", periods=35, freq="D")  # starts on a Monday
    rows = np.where(dates.day_of_week == 6, 400.0, 1000.0) + rng.normal(0, 15, 35)
    history = pd.DataFrame({"row_count": rows}, index=dates)
    # Every Sunday was flagged before the weekly profile existed.
    excluded = dates.day_of_week == 6
    sunday = pd.Series({"row_count": 405.0}, name=pd.Timestamp("2025-02-09"))
    verdict = detect(history, sunday, excluded=excluded)
    assert verdict.metrics["row_count"].method == "seasonal_robust_z"
    assert not verdict.is_anomaly


def test_std_of_a_binary_column_is_left_to_its_mean():
    rng = np.random.default_rng(11)
    means = list(0.5 + rng.normal(0, 0.03, 20))
    history = daily({
        "mean/label": means,
        "std/label": [float(np.sqrt(m * (1 - m))) for m in means],
        "min/label": [0.0] * 20,
        "max/label": [1.0] * 20,
    })
    # p = 0.36 moves the std from its flat top 0.50 to 0.48: many of its tiny sigmas.
    current = pd.Series({"mean/label": 0.40, "std/label": 0.48, "min/label": 0.0, "max/label": 1.0})
    verdict = detect(history, current)
    assert verdict.metrics["std/label"].method == "skipped"
    assert not verdict.metrics["std/label"].flagged
    # A numeric column that is not 0/1 keeps its std.
    wide = history.assign(**{"max/label": 5.0})
    assert detect(wide, current.copy()).metrics["std/label"].method != "skipped"


def test_normal_range_never_goes_where_the_metric_cannot():
    rng = np.random.default_rng(5)
    history = daily({
        # A skewed mean of prices: a wide band at 10 points reaches far below 0.
        "mean/unit_price": list(rng.lognormal(3.5, 0.6, 10)),
        "dagster/row_count": list(rng.poisson(20, 10).astype(float)),
        "null_fraction/email": [0.3, 0.7, 0.1, 0.9, 0.5, 0.2, 0.8, 0.4, 0.6, 0.35],
        "mean/profit": list(rng.normal(0.0, 10.0, 10)),
    })
    now = pd.Series({"mean/unit_price": 40.0, "dagster/row_count": 20.0,
                     "null_fraction/email": 0.5, "mean/profit": 1.0})
    verdict = detect(history, now)
    unclipped = detect(history, now, AnomalyConfig(short_history_points=0))
    price = verdict.metrics["mean/unit_price"]
    assert price.lower == 0.0 and price.upper > 100
    assert verdict.metrics["dagster/row_count"].lower == 0.0
    fraction = verdict.metrics["null_fraction/email"]
    assert fraction.lower == 0.0 and fraction.upper == 1.0
    # A metric that has been negative keeps its negative range.
    assert verdict.metrics["mean/profit"].lower < -10
    assert not verdict.is_anomaly and not unclipped.is_anomaly


def test_whitening_lets_lof_see_a_broken_ratio_inside_each_band():
    from data_platform.quality.multivariate import score_multivariate

    rng = np.random.default_rng(11)
    rows = 1000 * (1 + 0.1 * rng.normal(size=90))
    history = np.column_stack([
        rows,
        0.8 * rows * (1 + 0.01 * rng.normal(size=90)),  # distinct customers follow the rows
        rng.normal(50, 2, 90),
        rng.normal(0.05, 0.005, 90),
    ])
    names = ["rows", "distinct", "mean", "null_fraction"]
    # Distinct count 1.8 of its own sigmas low while the row count is as usual: the ratio is
    # 0.8 -> 0.66, 18 sigma off, but each metric is inside its range.
    now = np.array([1000.0, 800 - 1.8 * 80.0, 50.0, 0.05])
    assert history[:, 1].min() < now[1]
    plain = score_multivariate(history, now, names, margin=3.0)
    whitened = score_multivariate(history, now, names, margin=3.0, whiten=True)
    assert not plain.lof_flagged
    assert whitened.lof_flagged and whitened.lof_score > whitened.lof_threshold
    ordinary = score_multivariate(history, history[-1] * 1.01, names, margin=3.0, whiten=True)
    assert not ordinary.lof_flagged


def test_the_reason_quotes_the_range_the_table_shows_after_clipping():
    # A non-negative metric whose band would reach below 0: the range is clipped at 0, and the
    # reason says the same range as the check's table (one formatting for both).
    import numpy as np
    import pandas as pd

    from data_platform.quality import detect
    from data_platform.quality.anomaly import format_range

    rng = np.random.default_rng(3)
    days = pd.date_range("2026-01-01", periods=40, freq="D")
    history = pd.DataFrame({"mean/discount": np.abs(rng.normal(0.5, 0.6, size=40))}, index=days)
    verdict = detect(history, pd.Series({"mean/discount": 9.0}, name=days[-1] + pd.Timedelta(days=1)))
    m = verdict.metrics["mean/discount"]
    assert m.flagged and m.lower == 0.0
    assert f"normal range {format_range(m.lower, m.upper)}" in m.reason


def test_a_blocking_check_blocks_only_on_what_the_stricter_budget_confirms():
    history = daily({"row_count": noisy(120, seed=3)})
    verdicts = {x: detect(history, pd.Series({"row_count": float(x)})) for x in range(1040, 1400, 4)}
    anomalous = [x for x, v in verdicts.items() if v.is_anomaly]
    warned = [x for x in anomalous if verdicts[x].below_blocking_bar]
    blocking = [x for x in anomalous if not verdicts[x].below_blocking_bar]
    # Between the two bars: an alert that does not block; far past both: a blocking failure.
    assert warned and blocking and max(warned) < min(blocking)
    assert not any(v.below_blocking_bar for v in verdicts.values() if not v.is_anomaly)
    # Every alert blocks when the share is 1; a share outside (0, 1] is refused.
    every = AnomalyConfig(blocking_budget_share=1.0)
    assert not detect(history, pd.Series({"row_count": float(warned[0])}), every).below_blocking_bar
    with pytest.raises(ValueError, match="blocking_budget_share"):
        AnomalyConfig(blocking_budget_share=0.0)
