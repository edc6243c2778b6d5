"""Metric kinds, exclusions that end, new levels and calendars from the partition spacing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_platform.quality import kinds
from data_platform.quality.anomaly import AnomalyConfig, detect
from data_platform.quality.baseline import readmit
from data_platform.quality.univariate import (
    fit_hour_weekday_profile,
    group_medians,
    leave_one_out_medians,
)

DAYS = pd.date_range("2026-01-05", periods=400, freq="D")


def _walk(data: pd.DataFrame, config: AnomalyConfig | None = None, start: int = 1):
    flags = np.zeros(len(data), dtype=bool)
    verdicts = {}
    for t in range(start, len(data)):
        verdict = detect(data.iloc[:t], data.iloc[t], config, excluded=flags[:t])
        flags[t] = verdict.is_anomaly
        verdicts[t] = verdict
    return flags, verdicts


@pytest.mark.parametrize("changed", [13.0, 7.0, 12.0])
def test_a_constant_metric_that_changes_by_a_fifth_or_more_alerts(changed):
    history = pd.DataFrame({"value": [10.0] * 60}, index=DAYS[:60])
    verdict = detect(history, pd.Series({"value": changed}, name=DAYS[60]))
    assert verdict.is_anomaly
    assert verdict.metrics["value"].method == "constant_change"
    assert "on all 60 runs" in verdict.reasons[0]


def test_a_constant_metric_within_its_minimum_change_does_not_alert():
    history = pd.DataFrame({"value": [100.0] * 60}, index=DAYS[:60])
    assert not detect(history, pd.Series({"value": 101.0}, name=DAYS[60])).is_anomaly


def test_a_count_that_was_always_zero_alerts_only_beyond_a_rare_event():
    history = pd.DataFrame({"value": [0.0] * 30}, index=DAYS[:30])
    assert not detect(history, pd.Series({"value": 1.0}, name=DAYS[30])).is_anomaly
    assert detect(history, pd.Series({"value": 5.0}, name=DAYS[30])).is_anomaly


def test_a_week_of_one_value_is_not_yet_a_constant():
    history = pd.DataFrame({"value": [1.5] * 8}, index=DAYS[:8])
    assert kinds.infer_kind("value", history["value"].to_numpy()) is not kinds.Kind.CONSTANT
    assert kinds.infer_kind("min/rating", np.full(60, 1.5)) is kinds.Kind.EXTREME


def test_a_discrete_extreme_never_locks_itself_out():
    """min/rating takes 1, 1.5 and 2 on ordinary days: no exclusion loop, whatever the seed."""
    for seed in range(5):
        rng = np.random.default_rng(seed)
        values = rng.choice([1.0, 1.5, 2.0], p=[0.2, 0.6, 0.2], size=150)
        # A stretch of one value first, as a short history often shows.
        values[:14] = 1.5
        flags, _ = _walk(pd.DataFrame({"min/rating": values}, index=DAYS[:150]))
        assert flags.sum() <= 1, (seed, np.flatnonzero(flags))


def test_a_value_seen_on_an_ordinary_run_is_not_flagged_but_a_far_one_is():
    rng = np.random.default_rng(3)
    values = rng.choice([1.0, 1.5, 2.0], p=[0.1, 0.8, 0.1], size=60)
    history = pd.DataFrame({"min/rating": values}, index=DAYS[:60])
    assert not detect(history, pd.Series({"min/rating": 2.0}, name=DAYS[60])).is_anomaly
    far = detect(history, pd.Series({"min/rating": -3.0}, name=DAYS[60]))
    assert far.is_anomaly and "never varied" not in far.reasons[0]


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_a_value_two_steps_past_a_small_domain_wall_alerts_one_step_does_not(seed):
    """A minimum rating that piles up at 1.0 (1, 1.5, 2 on ordinary days): 0 is outside the
    domain though it is only about 3 of its sigmas away; 0.5 is the domain's next value."""
    rng = np.random.default_rng(seed)
    values = rng.choice([1.0, 1.5, 2.0], p=[0.6, 0.3, 0.1], size=60)
    history = pd.DataFrame({"value": values}, index=DAYS[:60])
    assert detect(history, pd.Series({"value": 0.0}, name=DAYS[60])).is_anomaly
    assert not detect(history, pd.Series({"value": 0.5}, name=DAYS[60])).is_anomaly


def _max_price_days(seed: int, size: int) -> np.ndarray:
    """A day's maximum price: one of the top items (613-616) on most days, the dearest cheap
    item (72) on about one day in twelve, when none of the top ones sold."""
    rng = np.random.default_rng(seed)
    values = rng.choice([613.0, 614.0, 615.0, 616.0], size=size)
    values[rng.random(size) < 1 / 12] = 72.0
    return values


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_a_maximum_that_keeps_falling_back_to_the_same_item_learns_it(seed):
    values = _max_price_days(seed, 120)
    flags, _ = _walk(pd.DataFrame({"max/unit_price": values}, index=DAYS[:120]), start=14)
    cheap = np.flatnonzero(values == 72.0)
    cheap = cheap[cheap >= 14]
    # The first fall alerts (a never-seen value); a return to it is a state, not news.
    first = [t for t in cheap if not np.any(values[:t] == 72.0)]
    later = [t for t in cheap if np.any(values[:t] == 72.0)]
    assert flags[first].all(), (first, np.flatnonzero(flags))
    assert later and not flags[later].any(), (later, np.flatnonzero(flags))


def test_only_the_inward_side_of_a_named_extreme_is_learned_from_recurrence():
    values = _max_price_days(24, 90)
    history = pd.DataFrame({"max/unit_price": values}, index=DAYS[:90])
    excluded = values == 72.0
    assert not detect(history, pd.Series({"max/unit_price": 72.0}, name=DAYS[90]),
                      excluded=excluded).is_anomaly
    # Above the top items is news, however often the maximum fell below them.
    assert detect(history, pd.Series({"max/unit_price": 800.0}, name=DAYS[90]),
                  excluded=excluded).is_anomaly
    # The same history under a name that is not an extreme: the recurring 72 stays an incident.
    plain = history.rename(columns={"max/unit_price": "value"})
    assert detect(plain, pd.Series({"value": 72.0}, name=DAYS[90]), excluded=excluded).is_anomaly
    assert kinds.inward("min/rating", 0.5) and not kinds.inward("min/rating", -0.5)
    assert kinds.inward("max/unit_price", -1.0) and not kinds.inward("mean/unit_price", -1.0)


def test_a_small_domain_spreads_each_side_its_own_way():
    values = np.array([613.0, 614.0, 615.0, 616.0] * 10 + [72.0] * 4)
    assert kinds.value_spread(values, side=1.0) < 2.0
    assert kinds.value_spread(values, side=-1.0) > 100.0
    assert kinds.value_spread(values) > kinds.value_spread(values, side=1.0)


def test_beyond_domain_needs_a_wall_and_enough_runs():
    piled = np.array([1.0] * 10 + [1.5] * 5 + [2.0] * 2)
    assert kinds.beyond_domain(piled, 0.0) == pytest.approx(2.0)
    assert kinds.beyond_domain(piled, 3.0) == 0.0  # 2.0 is no wall
    assert kinds.beyond_domain(piled, 1.5) == 0.0  # inside
    assert kinds.beyond_domain(piled[:10], 0.0) == 0.0  # one value: no domain
    assert kinds.beyond_domain(piled[-8:], 0.0) == 0.0  # too few runs to tell


def test_a_domain_is_a_lattice_of_its_step():
    """Platform seed 12: the shortest review's mean word length (3.5 = 7/2, 3.57 = 25/7, 3.6 =
    18/5, ...) took a few values on 18 days and a 3.38 was called "5 of its steps below": uneven
    gaps are a sample's extremes, not a domain with walls. Prices in cents are one."""
    words = np.array([3.5] * 6 + [25 / 7] * 4 + [3.6] * 4 + [11 / 3] * 2 + [3.75, 3.8])
    assert kinds.beyond_domain(words, 3.38) == 0.0
    cents = np.array([4.99] * 8 + [5.49] * 4 + [5.99] * 4)
    assert kinds.beyond_domain(cents, 3.99) == pytest.approx(2.0)  # two 50-cent steps below


@pytest.mark.parametrize("history", [
    [1.5] * 7 + [1.0, 2.0, 1.0],
    [1.5, 1.5, 1.0, 1.5, 2.0, 1.5, 1.5, 1.5, 1.5, 1.0],
])
def test_an_extremes_next_value_inward_is_its_sample_not_an_anomaly(history):
    """Demo window ending 2026-07-16: a day's minimum rating of 2.5 after ten days of 1-2 failed
    reviews' checks (38.9 robust sigma): a day without ratings under 2.5 is the sample's next
    value inward. Two steps inward and any step outward past a wall still alert."""
    index = pd.date_range("2026-06-19", periods=len(history), freq="D")
    past = pd.DataFrame({"min/rating": history}, index=index)
    today = index[-1] + pd.Timedelta(days=1)

    def anomalous(x):
        return detect(past, pd.Series({"min/rating": x}, name=today)).is_anomaly

    assert not anomalous(2.5)
    assert anomalous(3.0) and anomalous(0.0)
    assert kinds.next_value(np.array(history), 2.5) and kinds.next_value(np.array(history), 0.5)
    assert not kinds.next_value(np.array([3.5, 25 / 7, 3.6, 3.5]), 3.5 - 1 / 35)  # no lattice


def test_a_poisson_count_past_its_largest_value_is_not_outside_its_domain():
    """Small counts thin out upwards: the largest value seen is never the most common one."""
    for seed in range(5):
        values = np.random.default_rng(seed).poisson(3.0, 60).astype(float)
        assert kinds.beyond_domain(values, values.max() + 2) == 0.0


@pytest.mark.parametrize("seed", [31, 32, 33])
def test_spikes_the_history_keeps_producing_become_its_tail(seed):
    """Hourly counts of 0-3 with bursts of 40-80 every day or so: the first bursts alert, and a
    burst no larger than ten seen before (each excluded in turn) is ordinary; one twice as large
    as any before still alerts."""
    rng = np.random.default_rng(seed)
    hours = pd.date_range("2026-03-02", periods=400, freq="h")
    values = rng.poisson(1.5, hours.size).astype(float)
    bursts = np.sort(rng.choice(np.arange(30, 390), 18, replace=False))
    values[bursts] = rng.uniform(40, 80, bursts.size).round()
    flags, _ = _walk(pd.DataFrame({"value": values}, index=hours), start=24)
    assert flags[bursts[:3]].all()
    # A burst no larger than ten earlier ones is the metric's tail (the level around is 1.5).
    habitual = [b for k, b in enumerate(bursts) if np.count_nonzero(values[bursts[:k]] >= values[b]) >= 10]
    assert habitual and not flags[habitual].any(), (habitual, np.flatnonzero(flags))
    now = pd.Series({"value": 2 * values[bursts].max()}, name=hours[-1] + pd.Timedelta(hours=1))
    assert detect(pd.DataFrame({"value": values}, index=hours), now, excluded=flags).is_anomaly


def test_a_repeated_incident_that_is_not_yet_a_habit_still_alerts():
    values = np.full(120, 100.0) + np.random.default_rng(4).normal(0, 2, 120)
    values[[20, 45, 70, 95]] = 30.0  # the same drop four times in 120 runs
    data = pd.DataFrame({"value": values}, index=DAYS[:120])
    flags, _ = _walk(data, start=14)
    assert flags[[20, 45, 70, 95]].all()


def test_an_excluded_run_whose_value_is_ordinary_rejoins_the_baseline():
    values = np.array([10.0, 11, 9, 10, 12, 10, 11, 50, 10.5, 9.5])
    excluded = np.zeros(10, dtype=bool)
    excluded[[3, 7]] = True  # row 3 was excluded for another metric, row 7 is a real spike
    rows, readmitted = readmit(values, excluded)
    assert rows[3] and not rows[7]
    assert readmitted == 1


def test_a_value_that_keeps_coming_back_is_ordinary_but_a_repeated_incident_is_not():
    values = np.full(60, 10.0)
    values[::5] = 14.0  # every fifth run, separate episodes: a fifth of the window
    excluded = values == 14.0
    rows, _ = readmit(values, excluded)
    assert rows[excluded].all()
    values = np.full(60, 10.0)
    values[[10, 25, 40, 55]] = 0.0  # the same impossible value, four times: still incidents
    excluded = values == 0.0
    rows, _ = readmit(values, excluded)
    assert not rows[excluded].any()


def test_a_persistent_change_alerts_once_then_learns_the_new_level():
    rng = np.random.default_rng(0)
    values = 100 + rng.normal(0, 2, 90)
    values[50:] += 30
    data = pd.DataFrame({"value": values}, index=DAYS[:90])
    flags, verdicts = _walk(data, start=14)
    assert flags[50], "the change alerts on its day"
    assert not flags[51:].any(), np.flatnonzero(flags)
    learning = verdicts[51].metrics["value"]
    assert learning.method == "new_level" and "new level since 2026-02-24" in learning.reason
    assert verdicts[60].metrics["value"].method in ("robust_z", "seasonal_robust_z")
    # Judged against the new level again: a return to the old level is news.
    back = detect(data, pd.Series({"value": 100.0}, name=DAYS[90]), excluded=flags)
    assert back.is_anomaly


def test_a_spike_is_not_a_new_level():
    rng = np.random.default_rng(1)
    values = 100 + rng.normal(0, 2, 80)
    values[50] += 40
    values[65] -= 40
    flags, _ = _walk(pd.DataFrame({"value": values}, index=DAYS[:80]), start=14)
    assert flags[50] and flags[65]
    assert flags.sum() == 2


def test_adaptation_can_stay_blocking():
    rng = np.random.default_rng(0)
    values = 100 + rng.normal(0, 2, 60)
    values[50:] += 30
    data = pd.DataFrame({"value": values}, index=DAYS[:60])
    flags, verdicts = _walk(data, AnomalyConfig(adaptation_blocking=True), start=14)
    assert flags[50:57].all()
    assert verdicts[52].metrics["value"].method == "new_level"


def _trending_weekly(rng: np.random.Generator, days: int = 150) -> pd.DataFrame:
    index = DAYS[:days]
    weekly = np.ones(7)
    weekly[5:] = 1.45
    level = 2000 * (1 + 0.005 * np.arange(days)) * weekly[index.day_of_week]
    return pd.DataFrame({"value": np.round(level * (1 + rng.normal(0, 0.04, days)))}, index=index)


def test_a_growing_weekly_series_is_learned_multiplicatively():
    """Weekend peaks grow with the level; clean days of a growing series rarely alert."""
    flagged = 0
    for seed in range(4):
        flags, _ = _walk(_trending_weekly(np.random.default_rng(seed)), start=21)
        flagged += int(flags.sum())
    assert flagged <= 2, flagged


def test_a_drop_on_a_growing_weekly_series_is_caught():
    data = _trending_weekly(np.random.default_rng(7))
    history, day = data.iloc[:120], data.iloc[120].copy()
    day["value"] *= 0.6
    verdict = detect(history, day)
    assert verdict.is_anomaly and verdict.metrics["value"].method == "seasonal_robust_z"


def test_hourly_runs_learn_the_week_once_three_weeks_are_there():
    rng = np.random.default_rng(0)
    hours = pd.date_range("2026-03-02", periods=24 * 28 + 1, freq="h")
    daily = 1 + 0.6 * np.sin((hours.hour - 8) / 24 * 2 * np.pi)
    weekly = np.where(hours.day_of_week >= 5, 0.6, 1.0)
    values = np.round(500 * daily * weekly * (1 + rng.normal(0, 0.03, hours.size)))
    data = pd.DataFrame({"value": values}, index=hours)
    history, now = data.iloc[:-1], data.iloc[-1].copy()
    ordinary = detect(history, now)
    assert not ordinary.is_anomaly
    now["value"] *= 0.5
    dropped = detect(history, now)
    assert dropped.is_anomaly
    assert "for a Monday at 00:00" in dropped.reasons[0]


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_hourly_runs_know_the_weekend_after_two_weeks(seed):
    """With two to three weeks of hours the week is the day's shape times a weekday factor: the
    first hour of the third Saturday is expected busy (the day's shape alone expects Friday's
    level and alerts), a drop on it is not ordinary."""
    rng = np.random.default_rng(seed)
    days = 19  # the judged hour opens the third Saturday: two Saturdays seen before it
    hours = pd.date_range("2026-03-02", periods=24 * days + 1, freq="h")
    daily = 1 + 0.5 * np.cos((hours.hour - rng.uniform(0, 24)) / 24 * 2 * np.pi)
    weekly = np.where(hours.day_of_week == 5, 1.5, np.where(hours.day_of_week == 6, 1.3, 1.0))
    values = np.round(800 * daily * weekly * (1 + rng.normal(0, 0.04, hours.size)))
    data = pd.DataFrame({"value": values}, index=hours)
    history, now = data.iloc[:-1], data.iloc[-1].copy()
    assert now.name.day_name() == "Saturday" and now.name.hour == 0
    ordinary = detect(history, now)
    assert not ordinary.is_anomaly, ordinary.reasons
    assert ordinary.metrics["value"].expected == pytest.approx(now["value"], rel=0.12)
    now["value"] *= 0.4
    dropped = detect(history, now)
    assert dropped.is_anomaly
    assert "for a Saturday at 00:00" in dropped.reasons[0]


def test_hour_weekday_profile_is_none_without_a_weekday_effect():
    rng = np.random.default_rng(5)
    hours = pd.date_range("2026-03-02", periods=24 * 12, freq="h")
    values = np.asarray(500 * (1 + 0.5 * np.sin(hours.hour / 24 * 2 * np.pi)) * (1 + rng.normal(0, 0.03, hours.size)))
    phases = np.asarray(hours.day_of_week * 24 + hours.hour)
    assert fit_hour_weekday_profile(values, phases) is None


def test_hourly_history_keeps_four_weeks():
    hours = pd.date_range("2026-03-02", periods=900, freq="h")
    data = pd.DataFrame({"value": np.arange(900.0) % 24 + 100}, index=hours)
    verdict = detect(data, pd.Series({"value": 112.0}, name=hours[-1] + pd.Timedelta(hours=1)))
    assert verdict.history_points == AnomalyConfig().lookback_subdaily


def test_group_medians_match_numpy():
    rng = np.random.default_rng(0)
    for _ in range(100):
        n, k = int(rng.integers(1, 40)), int(rng.integers(1, 6))
        values, groups = rng.normal(size=n).round(1), rng.integers(0, k, n)
        medians = group_medians(values, groups, k)
        loo = leave_one_out_medians(values, groups, k)
        for g in range(k):
            members = values[groups == g]
            assert np.isnan(medians[g]) if members.size == 0 else np.isclose(medians[g], np.median(members))
        for i in range(n):
            others = values[(groups == groups[i]) & (np.arange(n) != i)]
            assert np.isnan(loo[i]) if others.size == 0 else np.isclose(loo[i], np.median(others))


def test_a_schema_drift_that_reverts_alerts_once_and_one_that_stays_alerts_once():
    columns = [8.0] * 30 + [7.0, 8.0] + [8.0] * 10 + [9.0] * 10
    flags, _ = _walk(pd.DataFrame({"column_count": columns}, index=DAYS[:52]), start=7)
    assert list(np.flatnonzero(flags)) == [30, 42]


def test_a_missing_partition_is_caught_even_after_an_earlier_one():
    rng = np.random.default_rng(2)
    rows = np.round(1000 + rng.normal(0, 30, 60))
    rows[20] = rows[45] = 0.0
    flags, _ = _walk(pd.DataFrame({"dagster/row_count": rows}, index=DAYS[:60]), start=7)
    assert flags[20] and flags[45]


def test_a_sample_cardinality_is_never_a_constant():
    values = np.full(100, 7.0)
    assert kinds.infer_kind("distinct_count/country", values) is kinds.Kind.COUNT
    history = pd.DataFrame({"distinct_count/country": values}, index=DAYS[:100])
    assert not detect(history, pd.Series({"distinct_count/country": 6.0}, name=DAYS[100])).is_anomaly
    assert detect(history, pd.Series({"distinct_count/country": 1.0}, name=DAYS[100])).is_anomaly


def test_a_share_that_was_always_zero_needs_more_than_a_sliver():
    history = pd.DataFrame({"mean/is_outlier": [0.0] * 30}, index=DAYS[:30])
    assert not detect(history, pd.Series({"mean/is_outlier": 0.0008}, name=DAYS[30])).is_anomaly
    assert detect(history, pd.Series({"mean/is_outlier": 0.2}, name=DAYS[30])).is_anomaly


def test_the_mean_of_a_flag_that_was_always_0_needs_a_shares_minimum_change():
    # mean/unit_price_outlier is the share of rows flagged: 0 for months, then one odd row in
    # 500 is not an incident; 5 % of rows flagged is.
    import numpy as np
    import pandas as pd

    from data_platform.quality import detect

    days = pd.date_range("2026-01-01", periods=90, freq="D")
    history = pd.DataFrame({"mean/unit_price_outlier": np.zeros(90), "min/unit_price_outlier": np.zeros(90),
                            "max/unit_price_outlier": np.zeros(90)}, index=days)
    now = days[-1] + pd.Timedelta(days=1)

    def verdict(share):
        current = pd.Series({"mean/unit_price_outlier": share, "min/unit_price_outlier": 0.0,
                             "max/unit_price_outlier": 1.0}, name=now)
        return detect(history, current).metrics["mean/unit_price_outlier"]

    assert not verdict(0.002).flagged and not verdict(0.009).flagged
    assert verdict(0.05).flagged
