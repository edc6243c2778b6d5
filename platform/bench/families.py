"""Single-metric series families for the anomaly benchmark, none of them seen while tuning.

Every series has ONE column named `value`, so a detector has to infer the metric's kind (count,
fraction, extreme, continuous) from the data, not from the name. Each case is generated from its
own seeded generator (`case_rng(seed, family, index)`), split into a base stream and an incident
stream: the clean variant (`inject=False`) of a case is the same series without the incidents,
so the two differ exactly where the incidents are.

Scoring windows: an incident is caught by a flag in [start, end]; for a change that stays,
`adapt_until` ends the points allowed for adaptation (neither catches nor false alerts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from data_platform.bench.anomaly import (
    EVAL_START,
    FIRST_INCIDENT,
    INCIDENT_GAP,
    Incident,
    generate_asset,
)

DAILY_POINTS = 150
HOURLY_POINTS = 6 * 168
# Hourly series: one week before any point is judged, two weeks before the first incident.
HOURLY_START = 168
HOURLY_FIRST_INCIDENT = 336
# Points after a change that stays during which the detector may adapt (flags neither count).
ADAPTATION = 7


@dataclass
class Case:
    """One series of a family (or one NAB file) with its incidents and first scored point."""

    family: str
    name: str
    data: pd.DataFrame
    incidents: list[Incident]
    start: int = EVAL_START


# values: one array (the single column `value`) or, for the joint families, a DataFrame of metrics.
Generator = Callable[[np.random.Generator, np.random.Generator, bool, int],
                     tuple[np.ndarray | pd.DataFrame, list[Incident], pd.DatetimeIndex]]


def _daily_index(rng: np.random.Generator, points: int) -> pd.DatetimeIndex:
    # A random first day, so weekly phases and weekdays of incidents vary between cases.
    first = pd.Timestamp("2025-01-06") + pd.Timedelta(days=int(rng.integers(0, 364)))
    return pd.date_range(first, periods=points, freq="D")


def _next_day(rng: np.random.Generator, after: int) -> int:
    return after + INCIDENT_GAP + int(rng.integers(0, INCIDENT_GAP))


def _weekly_profile(rng: np.random.Generator) -> np.ndarray:
    """Weekday wobble with weekend dips or peaks."""
    weekly = 1 + rng.uniform(-0.05, 0.05, 7)
    weekly[5:] *= rng.uniform(0.5, 0.8) if rng.random() < 0.5 else rng.uniform(1.2, 1.6)
    return weekly


def trending_volumes(base, hit, inject: bool, points: int):
    """Daily counts in the hundreds to thousands, weekly seasonality, +0.2-0.6 %/day, 2-8 % noise.

    Incidents: one-day drops or spikes of 25-60 % (at least 4 noise sigmas).
    """
    index = _daily_index(base, points)
    level = base.uniform(200, 3000)
    growth = base.uniform(0.002, 0.006)
    cv = base.uniform(0.02, 0.08)
    expected = level * (1 + growth) ** np.arange(points) * _weekly_profile(base)[index.day_of_week]
    values = np.round(expected * (1 + cv * base.normal(0, 1, points)))
    incidents = []
    day = FIRST_INCIDENT + int(hit.integers(0, INCIDENT_GAP))
    while inject and day < points - 4:
        size = hit.uniform(max(0.25, 4 * cv), 0.6)
        kind = "spike" if hit.random() < 0.5 else "drop"
        values[day] = np.round(values[day] * (1 + size if kind == "spike" else 1 - size))
        incidents.append(Incident(kind, "value", day, day))
        day = _next_day(hit, day)
    return values, incidents, index


def _min_rating_days(base, points: int, sizes: np.ndarray) -> np.ndarray:
    # Ratings 1-5 in half steps, low ones rare: the daily minimum is 1.0, 1.5, 2.0 (sometimes 2.5).
    levels = np.arange(1.0, 5.01, 0.5)
    low = base.uniform(0.004, 0.015)
    weights = np.array([low, 1.3 * low, 3 * low, 6 * low, 0.05, 0.1, 0.2, 0.3, 0.3])
    weights /= weights.sum()
    return np.array([levels[base.choice(levels.size, n, p=weights)].min() for n in sizes])


def _max_price_days(base, points: int, sizes: np.ndarray) -> np.ndarray:
    # Integer prices; the four most expensive items sell about once a day each, so the daily
    # maximum is one of them on almost every day.
    cheap = np.round(np.exp(base.uniform(np.log(3), np.log(80), int(base.integers(20, 60)))))
    top = np.sort(np.round(base.uniform(100, 1000) * base.uniform(0.5, 1.0, 4)))
    top = np.unique(np.concatenate([top, top[-1:] + np.arange(1, 5)]))[-4:]
    mean_n = sizes.mean()
    top_p = base.uniform(0.4, 1.5, top.size) / mean_n
    prices = np.concatenate([cheap, top])
    weights = np.concatenate([np.full(cheap.size, (1 - top_p.sum()) / cheap.size), top_p])
    return np.array([prices[base.choice(prices.size, n, p=weights)].max() for n in sizes])


def discrete_extremes(base, hit, inject: bool, points: int):
    """The min rating (1-5 in half steps) or max integer price of a daily sample of 20-200,
    under the name the platform's health metadata gives it (`min/rating`, `max/unit_price`).

    Ordinary days take 2-4 distinct values. Incidents: an impossible value (min rating 0 or
    -1; max price about ten times the usual).
    """
    index = _daily_index(base, points)
    sizes = np.maximum(5, base.poisson(base.uniform(20, 200), points))
    is_min = base.random() < 0.5
    values = (_min_rating_days if is_min else _max_price_days)(base, points, sizes)
    name = "min/rating" if is_min else "max/unit_price"
    incidents = []
    day = FIRST_INCIDENT + int(hit.integers(0, INCIDENT_GAP))
    while inject and day < points - 4:
        if is_min:
            values[day] = float(hit.choice([0.0, -1.0]))
        else:
            values[day] = np.round(values[day] * hit.uniform(8, 12))
        incidents.append(Incident("impossible_value", name, day, day))
        day = _next_day(hit, day)
    return pd.DataFrame({name: values}, index=index), incidents, index


def near_constant_counts(base, hit, inject: bool, points: int):
    """A column or category count constant for weeks (3-40).

    Incidents change it by 20-40 % (at least 1): half revert after 1-3 days, half stay (a new
    normal: caught on the change day or the next, then `ADAPTATION` points to adapt).
    """
    index = _daily_index(base, points)
    level = float(base.choice([3, 5, 6, 8, 10, 12, 16, 20, 24, 30, 40]))
    values = np.full(points, level)
    incidents = []
    day = FIRST_INCIDENT + int(hit.integers(0, INCIDENT_GAP))
    while inject and day < points - 4:
        current = values[day]
        changed = float(np.round(current * (1 + hit.choice([-1, 1]) * hit.uniform(0.2, 0.4))))
        if changed == current:
            changed = current + (1 if hit.random() < 0.5 else -1)
        changed = max(1.0, changed)
        if hit.random() < 0.5:
            length = int(hit.integers(1, 4))
            values[day : day + length] = changed
            incidents.append(Incident("count_change_reverted", "value", day, day + length - 1))
        else:
            values[day:] = changed
            end = min(day + 1, points - 1)
            incidents.append(Incident("count_change_stays", "value", day, end,
                                      adapt_until=min(day + ADAPTATION, points - 1)))
        day = _next_day(hit, max(incidents[-1].end, incidents[-1].adapt_until or 0))
    return values, incidents, index


def poisson_counts(base, hit, inject: bool, points: int):
    """Small Poisson counts (mean 0.5-5), e.g. duplicate keys. Incidents: one-day jumps of +15-30."""
    index = _daily_index(base, points)
    values = base.poisson(base.uniform(0.5, 5.0), points).astype(float)
    incidents = []
    day = FIRST_INCIDENT + int(hit.integers(0, INCIDENT_GAP))
    while inject and day < points - 4:
        values[day] += int(hit.integers(15, 31))
        incidents.append(Incident("jump", "value", day, day))
        day = _next_day(hit, day)
    return values, incidents, index


def fractions(base, hit, inject: bool, points: int):
    """A null fraction: binomial share of 300-3,000 rows a day, p 0.5-10 %.

    Incidents: 5-30 more points of nulls for 1-2 days.
    """
    index = _daily_index(base, points)
    rows = np.maximum(50, np.round(base.uniform(300, 3000) * (1 + 0.1 * base.normal(0, 1, points)))).astype(int)
    p = base.uniform(0.005, 0.10)
    nulls = base.binomial(rows, p).astype(float)
    incidents = []
    day = FIRST_INCIDENT + int(hit.integers(0, INCIDENT_GAP))
    while inject and day < points - 4:
        length = int(hit.integers(1, 3))
        extra = hit.uniform(0.05, 0.30)
        for d in range(day, day + length):
            # The extra nulls come from the rows that were not null: the share rises by `extra`.
            nulls[d] += max(1, hit.binomial(rows[d] - int(nulls[d]), extra / (1 - p)))
        incidents.append(Incident("null_spike", "value", day, day + length - 1))
        day = _next_day(hit, day + length - 1)
    return np.minimum(nulls, rows) / rows, incidents, index


def _noise(base, points: int) -> np.ndarray:
    """Unit-variance noise: normal, right-skewed (gamma) or heavy-tailed (Student t, df 4-6)."""
    kind = base.choice(["normal", "skewed", "heavy"])
    if kind == "skewed":
        shape = base.uniform(2, 4)
        return (base.gamma(shape, 1.0, points) - shape) / np.sqrt(shape)
    if kind == "heavy":
        df = int(base.integers(4, 7))
        return base.standard_t(df, points) / np.sqrt(df / (df - 2))
    return base.normal(0, 1, points)


def column_means(base, hit, inject: bool, points: int):
    """A column mean: continuous, 1-5 % coefficient of variation, sometimes skewed or heavy-tailed.

    Incidents: one-day moves of 6-12 sigma, up or down.
    """
    index = _daily_index(base, points)
    level = base.uniform(5, 500)
    sd = level * base.uniform(0.01, 0.05)
    values = level + sd * _noise(base, points)
    incidents = []
    day = FIRST_INCIDENT + int(hit.integers(0, INCIDENT_GAP))
    while inject and day < points - 4:
        values[day] += hit.choice([-1, 1]) * hit.uniform(6, 12) * sd
        incidents.append(Incident("shift_6_12_sigma", "value", day, day))
        day = _next_day(hit, day)
    return values, incidents, index


def hourly_cycles(base, hit, inject: bool, points: int):
    """Hourly volumes with a daily (24) and a weekly (168) cycle, 3-8 % noise, six weeks.

    Incidents from the third week: drops (half of them outages to 0-10 %) or spikes lasting
    1-4 hours, every 1-3 days.
    """
    first = pd.Timestamp("2025-01-06") + pd.Timedelta(hours=int(base.integers(0, 364 * 24)))
    index = pd.date_range(first, periods=points, freq="h")
    level = base.uniform(100, 5000)
    peak_hour = base.uniform(0, 24)
    amplitude = base.uniform(0.3, 0.7)
    daily = 1 + amplitude * np.cos(2 * np.pi * (index.hour.to_numpy() - peak_hour) / 24)
    weekly = _weekly_profile(base)[index.day_of_week]
    cv = base.uniform(0.03, 0.08)
    expected = level * daily * weekly
    values = np.round(np.maximum(0, expected * (1 + cv * base.normal(0, 1, points))))
    incidents = []
    hour = HOURLY_FIRST_INCIDENT + int(hit.integers(0, 24))
    while inject and hour < points - 8:
        length = int(hit.integers(1, 5))
        span = slice(hour, hour + length)
        roll = hit.random()
        if roll < 0.25:
            values[span] = np.round(expected[span] * hit.uniform(0, 0.1))
            kind = "outage"
        elif roll < 0.6:
            values[span] = np.round(values[span] * (1 - hit.uniform(max(0.3, 5 * cv), 0.7)))
            kind = "drop"
        else:
            values[span] = np.round(values[span] * (1 + hit.uniform(max(0.3, 5 * cv), 0.8)))
            kind = "spike"
        incidents.append(Incident(kind, "value", hour, hour + length - 1))
        hour += length + int(hit.integers(24, 72))
    return values, incidents, index


def level_changes(base, hit, inject: bool, points: int):
    """A volume (2-6 % noise, some weekly) or a mean that changes level for good, once.

    The change is 30-80 % (volumes) or 6-12 sigma (means) on a day between 45 and 30 before
    the end. Caught on the change day or the next; then `ADAPTATION` points to adapt.
    """
    index = _daily_index(base, points)
    is_volume = base.random() < 0.5
    if is_volume:
        weekly = _weekly_profile(base) if base.random() < 0.5 else np.ones(7)
        expected = base.uniform(200, 5000) * weekly[index.day_of_week]
        cv = base.uniform(0.02, 0.06)
        noise = base.normal(0, 1, points)
    else:
        level = base.uniform(5, 500)
        sd = level * base.uniform(0.01, 0.05)
        expected = np.full(points, level)
        noise = _noise(base, points)
    incidents = []
    if inject:
        day = int(hit.integers(45, points - 30))
        sign = hit.choice([-1, 1])
        if is_volume:
            expected[day:] *= 1 + sign * hit.uniform(0.3, 0.8)
        else:
            expected[day:] += sign * hit.uniform(6, 12) * sd
        incidents.append(Incident("level_change", "value", day, day + 1,
                                  adapt_until=min(day + ADAPTATION, points - 1)))
    if is_volume:
        # The noise stays proportional to the level, before and after the change.
        return np.round(expected * (1 + cv * noise)), incidents, index
    return expected + sd * noise, incidents, index


def _volume(base, index: pd.DatetimeIndex, points: int) -> tuple[np.ndarray, float]:
    """A daily volume's expected level (weekly profile half the time, mild trend) and its noise cv."""
    weekly = _weekly_profile(base) if base.random() < 0.5 else np.ones(7)
    trend = 1 + base.uniform(-0.001, 0.003) * np.arange(points)
    return base.uniform(300, 5000) * trend * weekly[index.day_of_week], base.uniform(0.02, 0.06)


def correlation_breaks(base, hit, inject: bool, points: int):
    """A row count with two metrics that follow it (distinct customers, revenue: ratio noise
    1-2 %), and two independent ones. Incident: one follower moves alone by 2-3.5 of its own
    sigmas, inside its own band but far off its ratio to the row count.
    """
    index = _daily_index(base, points)
    expected, cv = _volume(base, index, points)
    rows = expected * (1 + cv * base.normal(0, 1, points))
    followers = {"distinct_count/customer_id": base.uniform(0.5, 0.9), "sum/amount": base.uniform(20, 80)}
    ratio_cv = {"distinct_count/customer_id": base.uniform(0.005, 0.015), "sum/amount": base.uniform(0.01, 0.02)}
    data = {"row_count": np.round(rows)}
    for name, ratio in followers.items():
        data[name] = rows * ratio * (1 + ratio_cv[name] * base.normal(0, 1, points))
    data["null_fraction/email"] = base.binomial(np.maximum(rows, 1).astype(int), base.uniform(0.01, 0.08)) / np.maximum(rows, 1)
    data["mean/discount"] = base.uniform(2, 10) * (1 + base.uniform(0.01, 0.04) * base.normal(0, 1, points))
    incidents = []
    day = FIRST_INCIDENT + int(hit.integers(0, INCIDENT_GAP))
    while inject and day < points - 2:
        name = str(hit.choice(list(followers)))
        own_sigma = expected[day] * followers[name] * np.hypot(cv, ratio_cv[name])
        data[name][day] += hit.uniform(2.0, 3.5) * hit.choice([-1, 1]) * own_sigma
        incidents.append(Incident("correlation_break", name, day, day))
        day = _next_day(hit, day)
    data["distinct_count/customer_id"] = np.round(data["distinct_count/customer_id"])
    return pd.DataFrame(data, index=index), incidents, index


def mix_shifts(base, hit, inject: bool, points: int):
    """Related column statistics with independent noise (a null share, a column's mean and std,
    another column's mean) beside a volume. Incident: three of the four move 2-3 of their own
    sigmas the same day, none alone past a univariate threshold.
    """
    index = _daily_index(base, points)
    expected, cv = _volume(base, index, points)
    rows = np.round(expected * (1 + cv * base.normal(0, 1, points)))
    null_p = base.uniform(0.02, 0.08)
    n = np.maximum(rows, 1)
    sd = {"null_fraction/email": np.sqrt(null_p * (1 - null_p) / n)}
    centre = {"null_fraction/email": np.full(points, null_p)}
    for name, low, high in (("mean/amount", 20, 200), ("std/amount", 5, 60), ("mean/quantity", 1, 5)):
        level = base.uniform(low, high)
        centre[name] = np.full(points, level)
        sd[name] = np.full(points, level * base.uniform(0.01, 0.04))
    noise = {name: base.normal(0, 1, points) for name in centre}
    shift = {name: np.zeros(points) for name in centre}
    incidents = []
    day = FIRST_INCIDENT + int(hit.integers(0, INCIDENT_GAP))
    while inject and day < points - 2:
        moved = hit.choice(list(centre), size=3, replace=False)
        for name in moved:
            shift[name][day] = hit.uniform(2.0, 3.0) * hit.choice([-1, 1])
        incidents.append(Incident("mix_shift", ",".join(sorted(moved)), day, day))
        day = _next_day(hit, day)
    data = {"row_count": rows}
    for name in centre:
        data[name] = centre[name] + (noise[name] + shift[name]) * sd[name]
    data["null_fraction/email"] = np.clip(data["null_fraction/email"], 0, 1)
    return pd.DataFrame(data, index=index), incidents, index


def stuck_upstream(base, hit, inject: bool, points: int):
    """Five continuous metrics of one upstream feed. Incident: the feed stops refreshing and
    three to five of them repeat the previous run's values exactly for 1-3 runs, each in range.
    """
    index = _daily_index(base, points)
    expected, cv = _volume(base, index, points)
    rows = expected * (1 + cv * base.normal(0, 1, points))
    data = {
        "row_count": np.round(rows),
        "distinct_count/customer_id": np.round(rows * base.uniform(0.5, 0.9) * (1 + 0.02 * base.normal(0, 1, points))),
        "sum/amount": rows * base.uniform(20, 80) * (1 + 0.03 * base.normal(0, 1, points)),
        "mean/amount": base.uniform(20, 80) * (1 + base.uniform(0.01, 0.04) * base.normal(0, 1, points)),
        "std/amount": base.uniform(5, 40) * (1 + base.uniform(0.02, 0.05) * base.normal(0, 1, points)),
    }
    incidents = []
    day = FIRST_INCIDENT + int(hit.integers(0, INCIDENT_GAP))
    while inject and day < points - 4:
        length = int(hit.integers(1, 4))
        frozen = hit.choice(list(data), size=int(hit.integers(3, 6)), replace=False)
        for name in frozen:
            data[name][day : day + length] = data[name][day - 1]
        incidents.append(Incident("stuck_upstream", ",".join(sorted(frozen)), day, day + length - 1))
        day = _next_day(hit, day + length)
    return pd.DataFrame(data, index=index), incidents, index


@dataclass(frozen=True)
class Family:
    key: int  # stable part of every case's seed: never reuse or renumber
    title: str
    generate: Generator | None
    points: int = DAILY_POINTS
    start: int = EVAL_START
    # Cases per seed relative to the other families (one change per level-change series).
    weight: int = 1
    hourly: bool = False
    # Several metrics per series, incidents that only show jointly (also in the dev split).
    joint: bool = False


FAMILIES: dict[str, Family] = {
    "platform_metrics": Family(0, "platform metrics (multi-metric, dev generator)", None),
    "trending_volumes": Family(1, "trending weekly volumes", trending_volumes),
    "discrete_extremes": Family(2, "discrete extremes (min rating / max price)", discrete_extremes),
    "near_constant_counts": Family(3, "near-constant counts", near_constant_counts),
    "poisson_counts": Family(4, "small Poisson counts", poisson_counts),
    "fractions": Family(5, "fractions (null share)", fractions),
    "column_means": Family(6, "column means", column_means),
    "hourly_cycles": Family(7, "hourly series, daily + weekly cycles", hourly_cycles,
                            points=HOURLY_POINTS, start=HOURLY_START, hourly=True),
    "level_changes": Family(8, "level changes that stay", level_changes, weight=2),
    "correlation_breaks": Family(9, "joint: broken correlations", correlation_breaks, joint=True),
    "mix_shifts": Family(10, "joint: mix shifts (3 metrics at 2-3 sigma)", mix_shifts, joint=True),
    "stuck_upstream": Family(11, "joint: stuck upstream (metrics frozen)", stuck_upstream, joint=True),
}
# Cases of one family and seed: every `CLEAN_EVERY`-th is the clean variant (no incident).
CLEAN_EVERY = 4


def case_rng(seed: int, family: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, FAMILIES[family].key, index])


def generate_case(family: str, seed: int, index: int, *, inject: bool | None = None,
                  points: int | None = None) -> Case:
    """Case `index` of a single-metric family at `seed`; `inject=None`: clean every 4th case."""
    spec = FAMILIES[family]
    if spec.generate is None:
        raise ValueError(f"{family} is generated per seed by platform_cases, not per case")
    if inject is None:
        inject = index % CLEAN_EVERY != CLEAN_EVERY - 1
    base, hit = case_rng(seed, family, index).spawn(2)
    values, incidents, index_ = spec.generate(base, hit, inject, points or spec.points)
    if isinstance(values, pd.DataFrame):
        data = values.astype(float)
    else:
        data = pd.DataFrame({"value": np.asarray(values, dtype=float)}, index=index_)
    label = "" if inject else " (clean)"
    return Case(family, f"{family}/seed{seed}/{index}{label}", data, incidents, spec.start)


def platform_cases(seed: int, n_series: int, days: int) -> list[Case]:
    """The development generator (`generate_asset`), drawn in sequence from `default_rng(seed)`
    exactly as `run_benchmark(seed)` draws it."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n_series):
        asset = generate_asset(rng, days)
        cases.append(Case("platform_metrics", f"platform_metrics/seed{seed}/{i}", asset.data,
                          asset.incidents, EVAL_START))
    return cases
