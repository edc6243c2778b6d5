"""Benchmark of `detect` against generated metric histories with injected incidents.

Each generated asset has the metrics a real asset records (row count with weekly seasonality and
trend, a distinct count, fractions in [0, 1], a small Poisson count, a near-constant column
count, a mean and a model error). Incidents are injected at known days. Every detector is run
walk-forward like the real check: day t is judged against days < t only, and our detectors get
their own past verdicts back as `excluded` flags, exactly as the asset check does.

Scoring: an incident is caught if any flag falls inside its window; each run of consecutive flags
outside incident windows is one false alert; false-alert rate = false alerts / clean runs.

This module is the development set (seed 0) and the shared parts (scoring, walk-forward,
baselines). `data-platform bench anomaly` (anomaly_eval) adds the evaluation seeds, the
single-metric families (families) and NAB's real series (nab).

    python -c "from data_platform.bench.anomaly import main; main()"
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from data_platform.quality.anomaly import AnomalyConfig, detect
from data_platform.quality.history import DEFAULT_LOOKBACK

INCIDENT_KINDS = ("spike", "drop", "zero", "level_shift", "null_spike", "schema_change")
# Only jointly anomalous: the distinct count leaves its usual ratio to the row count while each
# stays inside its own band. Opt-in (`joint=True`), so the main table keeps its incident mix.
JOINT_KINDS = (*INCIDENT_KINDS, "correlation_break")
# Judged days start here for every detector (baselines need 14 points); incidents start later.
EVAL_START = 21
FIRST_INCIDENT = 35
INCIDENT_GAP = 12


@dataclass
class Incident:
    kind: str
    metric: str
    start: int
    # Last day (inclusive) on which a flag counts as catching it.
    end: int
    # A change that stays: points after `end` up to this one (inclusive) are the detector's
    # adaptation, where flags count neither as catches nor as false alerts.
    adapt_until: int | None = None


@dataclass
class GeneratedAsset:
    data: pd.DataFrame
    incidents: list[Incident]


def generate_asset(
    rng: np.random.Generator, days: int, kinds: tuple[str, ...] = INCIDENT_KINDS
) -> GeneratedAsset:
    """One asset's metric history (rows = daily runs) and the incidents injected into it."""
    t = np.arange(days)
    index = pd.date_range("2025-01-06", periods=days, freq="D")
    level = rng.uniform(300, 5000)
    weekly = np.ones(7)
    if rng.random() < 0.5:
        # Busy or quiet weekends, and some weekday wobble.
        weekly = 1 + rng.uniform(-0.05, 0.05, 7)
        weekly[5:] *= rng.choice([rng.uniform(0.55, 0.8), rng.uniform(1.25, 1.6)])
    slope = rng.choice([0.0, rng.uniform(-0.002, 0.004)], p=[0.6, 0.4])
    cv = rng.uniform(0.02, 0.06)
    expected_rows = level * (1 + slope * t) * weekly[index.day_of_week]
    noise_rows = expected_rows * cv
    rows = np.round(expected_rows + rng.normal(0, 1, days) * noise_rows)
    distinct_ratio = rng.uniform(0.6, 0.9)
    null_p = rng.uniform(0.01, 0.1)
    quarantine_p = rng.uniform(0.001, 0.02)
    mean_level, mean_sd = rng.uniform(20, 200), 0.0
    mean_sd = mean_level * rng.uniform(0.01, 0.05)
    rmse_level = rng.uniform(0.5, 2.0)
    rmse_sd = rmse_level * rng.uniform(0.01, 0.04)
    mean = mean_level + rng.normal(0, mean_sd, days)
    rmse = rmse_level + rng.normal(0, rmse_sd, days)
    duplicates = rng.poisson(rng.uniform(0.5, 4.0), days).astype(float)
    columns = np.full(days, float(rng.integers(5, 30)))

    incidents: list[Incident] = []
    null_extra = np.zeros(days)
    # Distinct count moved by this many of its own sigmas (correlation_break), row count kept.
    distinct_shift = np.zeros(days)
    day = FIRST_INCIDENT + int(rng.integers(0, INCIDENT_GAP))
    while day < days - 4:
        kind = kinds[int(rng.integers(len(kinds)))]
        k = rng.uniform(6, 12)
        if kind == "spike":
            metric = str(rng.choice(["row_count", "mean/amount", "model_rmse"]))
            if metric == "row_count":
                rows[day] += k * noise_rows[day]
            elif metric == "mean/amount":
                mean[day] += k * mean_sd
            else:
                rmse[day] += k * rmse_sd
            incidents.append(Incident(kind, metric, day, day))
        elif kind == "drop":
            rows[day] = max(1.0, rows[day] - k * noise_rows[day])
            incidents.append(Incident(kind, "row_count", day, day))
        elif kind == "zero":
            rows[day] = 0.0
            incidents.append(Incident(kind, "row_count", day, day))
        elif kind == "level_shift":
            metric = str(rng.choice(["mean/amount", "model_rmse"]))
            shift = rng.uniform(5, 10) * rng.choice([-1, 1])
            if metric == "mean/amount":
                mean[day:] += shift * mean_sd
            else:
                rmse[day:] += abs(shift) * rmse_sd
            incidents.append(Incident(kind, metric, day, day + 2))
        elif kind == "correlation_break":
            # 2-3.5 sigma of the distinct count's own noise: inside its univariate band, but
            # 4-20 sigma off its ratio to the row count (1% noise). Sign random.
            distinct_shift[day] = rng.uniform(2.0, 3.5) * rng.choice([-1, 1])
            incidents.append(Incident(kind, "distinct_count/customer_id", day, day))
        elif kind == "null_spike":
            length = int(rng.integers(1, 3))
            null_extra[day : day + length] = rng.uniform(0.05, 0.3)
            incidents.append(Incident(kind, "null_fraction/email", day, day + length - 1))
        else:
            columns[day:] += 1
            incidents.append(Incident(kind, "column_count", day, day))
        day = incidents[-1].end + INCIDENT_GAP + int(rng.integers(0, INCIDENT_GAP))

    safe_rows = np.maximum(rows, 1).astype(int)
    nulls = rng.binomial(safe_rows, np.clip(null_p + null_extra, 0, 1)) / safe_rows
    quarantined = rng.binomial(safe_rows, quarantine_p) / safe_rows
    distinct = rows * distinct_ratio * (1 + rng.normal(0, 0.01, days))
    distinct_sd = expected_rows * distinct_ratio * np.hypot(cv, 0.01)
    distinct = np.round(distinct + distinct_shift * distinct_sd)
    empty = rows == 0
    data = pd.DataFrame(
        {
            "row_count": rows,
            "distinct_count/customer_id": np.where(empty, 0.0, distinct),
            # Fractions of an empty table do not exist: the metric is absent that day.
            "null_fraction/email": np.where(empty, np.nan, nulls),
            "quarantine_share": np.where(empty, np.nan, quarantined),
            "duplicate_key_count": duplicates,
            "column_count": columns,
            "mean/amount": np.where(empty, np.nan, mean),
            "model_rmse": rmse,
        },
        index=index.strftime("%Y-%m-%d"),
    )
    return GeneratedAsset(data, incidents)


def walk_forward(data: pd.DataFrame, config: AnomalyConfig | None) -> np.ndarray:
    """Flags of `detect` for every point, like the asset check: point t is judged against the
    `lookback` points before it, and past flags come back as `excluded`."""
    cfg = config or AnomalyConfig()
    lookback = getattr(cfg, "lookback", DEFAULT_LOOKBACK)
    if isinstance(data.index, pd.DatetimeIndex) and len(data) > 1 and (data.index[1] - data.index[0]) < pd.Timedelta(days=1):
        # The check keeps more sub-daily history (the weekly cycle of hourly runs).
        lookback = max(lookback, getattr(cfg, "lookback_subdaily", lookback))
    flags = np.zeros(len(data), dtype=bool)
    for t in range(1, len(data)):
        first = max(0, t - lookback)
        verdict = detect(data.iloc[first:t], data.iloc[t], config, excluded=flags[first:t])
        flags[t] = verdict.is_anomaly
    return flags


def _any_metric(z: pd.DataFrame, limit: float) -> np.ndarray:
    # A zero standard deviation gives no z (as in Elementary): such points are not flagged.
    return (z.replace([np.inf, -np.inf], np.nan).abs() > limit).any(axis=1).to_numpy()


def elementary_flags(data: pd.DataFrame) -> np.ndarray:
    """Elementary-style: z over a 14-point window that includes the tested point, |z| > 3."""
    rolling = data.rolling(14, min_periods=14)
    return _any_metric((data - rolling.mean()) / rolling.std(), 3.0)


def three_sigma_flags(data: pd.DataFrame) -> np.ndarray:
    """3-sigma of the previous 14 points (the tested point excluded)."""
    rolling = data.rolling(14, min_periods=14)
    return _any_metric((data - rolling.mean().shift(1)) / rolling.std().shift(1), 3.0)


def one_sigma_flags(data: pd.DataFrame) -> np.ndarray:
    """The glossary example: beyond one standard deviation of all previous points."""
    expanding = data.expanding(min_periods=2)
    return _any_metric((data - expanding.mean().shift(1)) / expanding.std().shift(1), 1.0)


def score_flags(flags: np.ndarray, incidents: list[Incident], start: int = EVAL_START) -> dict:
    """Points before `start` are not judged (warm-up, NAB's probation). An incident is caught by
    a judged flag inside [start, end]; an incident over before `start` is not counted. Points in
    an adaptation window are neither. Each run of consecutive judged flags on clean points is one
    false alert."""
    points = flags.size
    judged = np.arange(points) >= start
    in_window = np.zeros(points, dtype=bool)
    adapting = np.zeros(points, dtype=bool)
    counted = caught = 0
    for incident in incidents:
        window = slice(incident.start, incident.end + 1)
        in_window[window] = True
        if incident.adapt_until is not None:
            adapting[incident.end + 1 : incident.adapt_until + 1] = True
        if incident.end >= start:
            counted += 1
            caught += bool((flags[window] & judged[window]).any())
    clean = judged & ~in_window & ~adapting
    outside = flags & clean
    # A run of flags is broken by an unflagged point or by an incident or adaptation point.
    padded = np.concatenate(([False], outside))
    false_alerts = int(np.sum(padded[1:] & ~padded[:-1]))
    return {
        "incidents": counted,
        "caught": caught,
        "false_alerts": false_alerts,
        "clean_runs": int(clean.sum()),
        "flagged_clean_runs": int(outside.sum()),
    }


METHODS: dict[str, AnomalyConfig | None] = {
    "robust z + rules (no seasonality)": AnomalyConfig(seasonality=False, multivariate=False),
    "seasonal robust z + rules": AnomalyConfig(multivariate=False),
    "IsolationForest alone": AnomalyConfig(univariate=False, multivariate_alerts="iforest"),
    "LOF alone": AnomalyConfig(univariate=False, multivariate_alerts="lof"),
    "ensemble (default detect)": AnomalyConfig(),
    # Opt-in: LOF on robustly whitened vectors, alerting alone at margin 10 (docs/anomaly.md).
    "rules + whitened LOF (margin 10, opt-in)": AnomalyConfig(
        multivariate_alerts="lof", multivariate_whiten=True, multivariate_margin=10.0
    ),
    "baseline: Elementary-style (14 incl. current, |z|>3)": None,
    "baseline: 3-sigma of previous 14": None,
    "baseline: glossary 1-sigma": None,
}
BASELINES = {
    "baseline: Elementary-style (14 incl. current, |z|>3)": elementary_flags,
    "baseline: 3-sigma of previous 14": three_sigma_flags,
    "baseline: glossary 1-sigma": one_sigma_flags,
}


def _summarise(totals: dict) -> dict:
    caught, incidents, false_alerts = totals["caught"], totals["incidents"], totals["false_alerts"]
    precision = caught / (caught + false_alerts) if caught + false_alerts else 0.0
    recall = caught / incidents if incidents else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        **totals,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "false_alert_rate": false_alerts / totals["clean_runs"] if totals["clean_runs"] else 0.0,
    }


def run_benchmark(
    seed: int = 0,
    n_series: int | None = None,
    quick: bool = False,
    days: int | None = None,
    methods: list[str] | None = None,
    eval_start: int = EVAL_START,
    joint: bool = False,
) -> dict:
    """Generate `n_series` assets, run every method walk-forward, return per-method scores.

    eval_start: first scored day (default 21, where the 14-point baselines have a window);
    8 scores our detectors' cold start too (the baselines then see days they cannot judge).
    joint: add the `correlation_break` incident (only jointly anomalous) to the mix.
    """
    n_series = n_series or (2 if quick else 30)
    days = days or (70 if quick else 150)
    chosen = methods or list(METHODS)
    rng = np.random.default_rng(seed)
    kinds = JOINT_KINDS if joint else INCIDENT_KINDS
    assets = [generate_asset(rng, days, kinds) for _ in range(n_series)]
    results: dict[str, dict] = {}
    for name in chosen:
        totals = {"incidents": 0, "caught": 0, "false_alerts": 0, "clean_runs": 0, "flagged_clean_runs": 0}
        by_kind: dict[str, list[int]] = {}
        started = time.perf_counter()
        for asset in assets:
            if name in BASELINES:
                flags = BASELINES[name](asset.data)
            else:
                flags = walk_forward(asset.data, METHODS[name])
            for key, value in score_flags(flags, asset.incidents, eval_start).items():
                totals[key] += value
            for incident in asset.incidents:
                hit = bool(flags[incident.start : incident.end + 1].any())
                by_kind.setdefault(incident.kind, [0, 0])
                by_kind[incident.kind][0] += hit
                by_kind[incident.kind][1] += 1
        summary = _summarise(totals)
        summary["recall_by_kind"] = {k: v[0] / v[1] for k, v in sorted(by_kind.items())}
        summary["seconds"] = time.perf_counter() - started
        results[name] = summary
    return {
        "seed": seed,
        "eval_start": eval_start,
        "joint": joint,
        "n_series": n_series,
        "days": days,
        "metrics_per_asset": assets[0].data.shape[1] if assets else 0,
        "methods": results,
    }


def run_cold_start_benchmark(
    configs: dict[str, AnomalyConfig] | None = None,
    *,
    seed: int = 0,
    first_day: str = "2026-06-01",
    days: int = 150,
    window: int = 21,
    step: int = 3,
) -> dict[str, dict]:
    """Cold start on the platform's synthetic entities: points 8..`window` of many short windows.

    The raw health metrics (`compute_health`) of orders, ratings, reviews and experiments over
    `days` days; a window of `window` days starts every `step` days and is judged walk-forward
    from its 8th point. A day is an incident when the synthetic calendar puts one on its entity.
    Returns per config: clean runs, flagged clean runs, incidents, caught incidents.
    """
    from datetime import date, timedelta

    from data_platform.quality.health import compute_health
    from data_platform.sources import synthetic
    from data_platform.sources.schemas import SCHEMAS

    configs = configs or {
        "default": AnomalyConfig(),
        "no short-history rule": AnomalyConfig(short_history_points=0),
    }
    start = date.fromisoformat(first_day)
    out = {name: {"clean_runs": 0, "flagged_clean_runs": 0, "incidents": 0, "caught": 0} for name in configs}
    for entity in ("orders", "ratings", "reviews", "experiments"):
        rows = {}
        for i in range(days):
            day = start + timedelta(days=i)
            frame = synthetic.generate(entity, day, seed=seed)
            rows[day.isoformat()] = compute_health(frame, key=list(SCHEMAS[entity].key))
        history = pd.DataFrame.from_dict(rows, orient="index")
        for first in range(0, days - window, step):
            part = history.iloc[first : first + window]
            part = part.loc[:, part.notna().any()]
            for name, config in configs.items():
                flags = np.zeros(len(part), dtype=bool)
                for t in range(7, len(part)):
                    verdict = detect(part.iloc[:t], part.iloc[t].dropna(), config, excluded=flags[:t])
                    flags[t] = verdict.is_anomaly
                    incident = synthetic.incident_on(date.fromisoformat(str(part.index[t])), seed=seed)
                    if incident is not None and incident.entity == entity:
                        out[name]["incidents"] += 1
                        out[name]["caught"] += bool(flags[t])
                    else:
                        out[name]["clean_runs"] += 1
                        out[name]["flagged_clean_runs"] += bool(flags[t])
    return out


def render_markdown(results: dict) -> str:
    lines = [
        f"{results['n_series']} generated assets x {results['days']} daily runs x "
        f"{results['metrics_per_asset']} metrics, seed {results['seed']}.",
        "",
        "| method | precision | recall | F1 | false alerts / clean runs | false-alert rate | seconds |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in results["methods"].items():
        lines.append(
            f"| {name} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | "
            f"{r['false_alerts']} / {r['clean_runs']} | {100 * r['false_alert_rate']:.2f}% | "
            f"{r['seconds']:.1f} |"
        )
    kinds = sorted({k for r in results["methods"].values() for k in r["recall_by_kind"]})
    lines += ["", "Recall by incident kind:", "", "| method | " + " | ".join(kinds) + " |",
              "| --- |" + " ---: |" * len(kinds)]
    for name, r in results["methods"].items():
        cells = " | ".join(f"{r['recall_by_kind'].get(k, 0.0):.2f}" for k in kinds)
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    quick = "--quick" in args
    print(render_markdown(run_benchmark(quick=quick)))


if __name__ == "__main__":
    main()
