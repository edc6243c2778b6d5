"""The joint tests (quality.joint): incidents that no single metric shows."""

import numpy as np
import pandas as pd
import pytest

from data_platform.quality import AnomalyConfig, detect
from data_platform.quality.joint import joint_repeat_chance, repeat_chance
from data_platform.quality.plot import plot_residuals_png

DAYS = pd.date_range("2026-01-01", periods=90, freq="D")
NOW = DAYS[-1] + pd.Timedelta(days=1)


def coupled_history(rng):
    rows = 1000 * (1 + 0.05 * rng.normal(0, 1, DAYS.size))
    return pd.DataFrame({
        "row_count": np.round(rows),
        "distinct_count/customer_id": np.round(0.7 * rows * (1 + 0.005 * rng.normal(0, 1, DAYS.size))),
        "mean/discount": 5 * (1 + 0.02 * rng.normal(0, 1, DAYS.size)),
    }, index=DAYS)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_a_metric_that_moves_without_its_partner_is_a_broken_pair(seed):
    history = coupled_history(np.random.default_rng(seed))
    typical = history.median()
    # Distinct customers up 2.5 of their own sigmas (5 % of 700 is 35), rows at their median:
    # inside each metric's own band, 25 sigma off their 0.5 % ratio noise.
    broken = typical.copy().rename(NOW)
    broken["distinct_count/customer_id"] = typical["distinct_count/customer_id"] + 2.5 * 35
    verdict = detect(history, broken)
    assert not any(m.flagged for m in verdict.metrics.values())
    assert verdict.is_anomaly and verdict.joint.method == "broken_pair"
    assert verdict.joint.moved[0] == "distinct_count/customer_id" and "row_count" in verdict.joint.reason
    # Both moving together by the same share is ordinary.
    together = typical.copy().rename(NOW)
    together[["row_count", "distinct_count/customer_id"]] *= 1.08
    assert not detect(history, together).is_anomaly
    # Without the joint tests, the break goes unseen.
    assert not detect(history, broken, AnomalyConfig(joint_tests=())).is_anomaly


def test_several_metrics_repeating_yesterday_exactly_is_a_stuck_upstream():
    rng = np.random.default_rng(5)
    history = pd.DataFrame({name: level * (1 + 0.03 * rng.normal(0, 1, DAYS.size))
                            for name, level in (("sum/amount", 5e4), ("mean/amount", 40.0), ("std/amount", 12.0))},
                           index=DAYS)
    frozen = history.iloc[-1].rename(NOW)
    verdict = detect(history, frozen)
    assert verdict.is_anomaly and verdict.joint.method == "stuck_upstream"
    assert set(verdict.joint.moved) == set(history.columns)
    one_repeat = history.median().rename(NOW)
    one_repeat["mean/amount"] = history["mean/amount"].iloc[-1]
    assert not detect(history, one_repeat).is_anomaly


def test_copies_of_one_count_repeating_together_are_one_repeat_not_a_stuck_upstream():
    """Reviews: every row has its own id and text, so the row count and both distinct counts are
    one number; a day with as many reviews as yesterday repeats all of them at once."""
    rng = np.random.default_rng(6)
    rows = np.round(120 + 11 * rng.normal(0, 1, DAYS.size))
    history = pd.DataFrame({"dagster/row_count": rows, "source_row_count": rows + 2,
                            "distinct_count/review_id": rows, "distinct_count/text": rows,
                            "mean/rating": 3.8 + 0.05 * rng.normal(0, 1, DAYS.size)}, index=DAYS)
    same_count = history.median().rename(NOW)
    for name in ("dagster/row_count", "distinct_count/review_id", "distinct_count/text"):
        same_count[name] = rows[-1]
    same_count["source_row_count"] = rows[-1] + 2
    verdict = detect(history, same_count)
    assert "stuck_upstream" not in verdict.joint.tests, verdict.joint.tests
    assert not verdict.is_anomaly
    # Two metrics that move apart freezing together still are.
    frozen = same_count.copy()
    frozen["mean/rating"] = history["mean/rating"].iloc[-1]
    assert detect(history, frozen).joint.method == "stuck_upstream"


def test_rows_delivered_and_rows_kept_are_one_signal_though_they_differ_some_days():
    """Orders: the rows delivered and the rows kept differ only on the few days some are set
    aside; a day with as many orders as yesterday repeats both, which is not a stuck feed."""
    rng = np.random.default_rng(7)
    kept = np.round(470 + 60 * rng.normal(0, 1, DAYS.size))
    set_aside = np.where(rng.random(DAYS.size) < 0.05, rng.integers(1, 6, DAYS.size), 0)
    set_aside[-3:] = 0
    history = pd.DataFrame({"dagster/row_count": kept, "source_row_count": kept + set_aside,
                            "distinct_count/order_id": kept,
                            "mean/amount": 50 + 0.5 * rng.normal(0, 1, DAYS.size)}, index=DAYS)
    same_count = history.median().rename(NOW)
    for name in ("dagster/row_count", "source_row_count", "distinct_count/order_id"):
        same_count[name] = history[name].iloc[-1]
    verdict = detect(history, same_count)
    assert not verdict.is_anomaly, verdict.joint.reason
    # With the mean frozen as well, two independent signals repeat: that is a stuck feed.
    same_count["mean/amount"] = history["mean/amount"].iloc[-1]
    assert detect(history, same_count).joint.method == "stuck_upstream"


def test_several_independent_metrics_moving_together_is_a_joint_shift():
    rng = np.random.default_rng(8)
    names = ["null_fraction/email", "mean/amount", "std/amount", "mean/quantity"]
    levels = np.array([0.05, 50.0, 20.0, 3.0])
    sd = levels * 0.03
    history = pd.DataFrame(levels + sd * rng.normal(0, 1, (DAYS.size, 4)), index=DAYS, columns=names)
    shifted = pd.Series(levels + 3.2 * sd * np.array([1, -1, 1, 1]), index=names, name=NOW)
    verdict = detect(history, shifted)
    statistic, threshold = verdict.joint.tests["joint_shift"]
    assert statistic > threshold and verdict.is_anomaly
    ordinary = pd.Series(levels + 0.5 * sd, index=names, name=NOW)
    quiet = detect(history, ordinary).joint
    assert not quiet.flagged and quiet.tests["joint_shift"][0] < quiet.tests["joint_shift"][1]


def test_unknown_joint_tests_are_refused_and_the_residual_plot_is_a_png():
    with pytest.raises(ValueError, match="joint_tests"):
        AnomalyConfig(joint_tests=("pairs", "magic"))
    png = plot_residuals_png({"a": 2.5, "b": -1.0}, ["a"], title="residuals")
    assert png.startswith(b"\x89PNG") and len(png) > 500


def _small_reviews(seed: int, days: int = 150) -> pd.DataFrame:
    """A day's reviews: about 25, each rated in half stars; the mean lies on a lattice of
    0.5 / count, so a day with yesterday's count repeats yesterday's mean far more often than
    the two repeats apart would suggest."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2026-01-01", periods=days, freq="D")
    stars = np.arange(1.0, 5.5, 0.5)
    weights = np.array([5, 3, 5, 5, 10, 12, 20, 20, 20]) / 100
    counts = rng.poisson(25, days).astype(float)
    means = [float(rng.choice(stars, int(c), p=weights).mean()) for c in counts]
    return pd.DataFrame({"dagster/row_count": counts, "mean/rating": means}, index=index)


def test_a_mean_repeating_with_its_denominator_is_one_coincidence_not_a_stuck_feed():
    history = _small_reviews(3)
    same = history.iloc[-1].rename(history.index[-1] + pd.Timedelta(days=1))
    verdict = detect(history, same)
    assert not verdict.is_anomaly, verdict.joint.reason
    # The chain's chance is what the history's far pairs show, several times the product.
    counts, means = history["dagster/row_count"].to_numpy(), history["mean/rating"].to_numpy()
    chances = [repeat_chance(counts), repeat_chance(means)]
    chained = joint_repeat_chance([counts, means], chances)
    i, j = np.triu_indices(counts.size, 7)
    shown = np.mean((counts[i] == counts[j]) & (means[i] == means[j]))
    assert chained >= 0.5 * shown and chained > 3 * chances[0] * chances[1]


def test_dependence_only_raises_the_joint_chance_of_a_repeat():
    rng = np.random.default_rng(4)
    counts = rng.poisson(40, 200).astype(float)
    floats = rng.normal(10, 1, 200)
    chances = [repeat_chance(counts), repeat_chance(floats)]
    # Independent: no pair of far runs shares the float, yet the chance is not pushed below the
    # product (the history cannot show chances under one in its number of pairs).
    assert joint_repeat_chance([counts, floats], chances) == pytest.approx(chances[0] * chances[1])
    # A deterministic function of the count repeats whenever the count does.
    assert joint_repeat_chance([counts, counts / 7], chances[:1] * 2) > 0.5 * chances[0]


def test_a_joint_shift_on_few_runs_counts_for_less_than_the_same_shift_on_many():
    """Each metric's scale comes from the history: over a few dozen runs it is uncertain, and
    the residuals are read through the same Student t as the univariate bands."""
    def distance(n: int, sigmas: float) -> tuple[float, float]:
        rng = np.random.default_rng(1)
        index = pd.date_range("2026-01-01", periods=n, freq="D")
        frame = pd.DataFrame(rng.normal(100, 5, (n, 4)), index=index,
                             columns=[f"mean/c{i}" for i in range(4)])
        now = pd.Series(100 + sigmas * 5.0, index=frame.columns, name=index[-1] + pd.Timedelta(days=1))
        return detect(frame, now, AnomalyConfig(joint_tests=("shift",))).joint.tests["joint_shift"]

    few, many = distance(34, 2.2), distance(150, 2.2)
    assert few[0] < many[0]
    assert few[0] < few[1] and many[0] > many[1]


def _reviews(seed: int, days: int = 110, size: float = 110.0) -> pd.DataFrame:
    """About `size` half-star reviews a day (weekly profile, growing): count, mean and std of
    the rating."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2026-01-01", periods=days, freq="D")
    weekly = np.array([1.15, 1.1, 1.0, 1.0, 0.95, 0.8, 0.85])[index.dayofweek]
    counts = rng.poisson(size * weekly * np.linspace(0.9, 1.1, days))
    samples = [rng.choice(STARS, int(c), p=STAR_WEIGHTS) for c in counts]
    return pd.DataFrame({"dagster/row_count": counts.astype(float),
                         "mean/rating": [float(s.mean()) for s in samples],
                         "std/rating": [float(s.std()) for s in samples]}, index=index)


STARS = np.arange(1.0, 5.5, 0.5)
STAR_WEIGHTS = np.array([5, 3, 5, 5, 10, 12, 20, 20, 20]) / 100


def _same_sum_chance(n: int) -> float:
    """The exact chance that two days of n ratings have the same sum (so, with the same count,
    the same mean): the sum of squares of the sum's distribution on the half-star lattice."""
    dist = np.array([1.0])
    for _ in range(n):
        dist = np.convolve(dist, STAR_WEIGHTS)
    return float(np.sum(dist ** 2))


@pytest.mark.parametrize("seed", range(21, 26))
def test_a_mean_of_many_ratings_repeating_with_its_count_is_read_as_a_repeated_sum(seed):
    """Seed 11's platform replay: 110 reviews and their mean rating repeated yesterday's, called a
    1-in-42,188 coincidence; with the same count, the mean repeats whenever the sum does."""
    from data_platform.quality.joint import Series, mean_repeat_chance

    history = _reviews(seed)
    yesterday = history.iloc[-1]
    n = int(yesterday["dagster/row_count"])

    def series(name):
        raw = history[name].to_numpy()
        return Series(name, raw, np.ones(raw.size, bool), float(yesterday[name]), raw, float(yesterday[name]))

    estimated = mean_repeat_chance(series("mean/rating"), series("dagster/row_count"), None)
    exact = _same_sum_chance(n)
    assert 0.5 * exact < estimated < 2 * exact
    # Count and mean repeat, the std does not (other ratings, same sum): a coincidence about as
    # rare as the count's repeat times the sum's, over the 3 pairs of metrics that could have
    # repeated: near the false-alert budget, so at most a warning, never a blocking failure.
    same = yesterday.copy().rename(history.index[-1] + pd.Timedelta(days=1))
    same["std/rating"] = history["std/rating"].median()
    verdict = detect(history, same)
    _, chance_of_sets = verdict.joint.tests["stuck_upstream"]
    count_chance = repeat_chance(history["dagster/row_count"].to_numpy())
    assert chance_of_sets >= 0.5 * 3 * count_chance * exact
    assert not verdict.is_anomaly or verdict.below_blocking_bar
    # Everything repeating is still a stuck feed.
    frozen = yesterday.copy().rename(same.name)
    assert detect(history, frozen).joint.method == "stuck_upstream"
    # Means of continuous values (amounts) show no lattice: their own chance stands.
    amounts = history.assign(**{"mean/rating": history["mean/rating"] + np.random.default_rng(seed).normal(0, 1e-3, len(history))})
    raw = amounts["mean/rating"].to_numpy()
    floaty = Series("mean/rating", raw, np.ones(raw.size, bool), raw[-1], raw, raw[-1])
    assert mean_repeat_chance(floaty, series("dagster/row_count"), None) == 0.0
