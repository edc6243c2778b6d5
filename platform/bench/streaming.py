"""`data-platform bench streaming`: the stream detector on NAB's series at native resolution.

Every series of the NAB folder is streamed point by point through a fresh `StreamDetector`.
The series are split by a fixed rule, alternating by sorted "category/file" name: even positions
(0, 2, ...) are the development half, odd positions the evaluation half. The alert threshold (a
multiple of the configured thresholds) is chosen on the development half only, by NAB standard
score, and reported unchanged on both halves, beside the configured default (multiple 1.0) and a
rolling 3-sigma z-score computed in the same run. Scores: NAB's normalised score (standard,
low-FP and low-FN profiles), event-based precision, recall and F1 over NAB's windows, and false
alert events per 1,000 scored points. The detector's throughput is measured on the same pass.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from data_platform.bench import nab, nab_score
from data_platform.quality.streaming import StreamConfig, StreamDetector

ROLLING_WINDOW = 288  # one day of 5-minute points
ROLLING_SIGMAS = 3.0
THRESHOLD_GRID = tuple(round(0.5 + 0.05 * i, 2) for i in range(41))  # 0.5 .. 2.5
QUICK_FILES = (
    "artificialWithAnomaly/art_daily_jumpsup.csv",
    "artificialWithAnomaly/art_daily_flatmiddle.csv",
    "realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv",
    "realTraffic/speed_6005.csv",
)
# NAB's published standard-profile scores on the full corpus of 58 series, for scale.
PUBLISHED = {"HTM": 70.5, "Windowed Gaussian": 39.6, "Random": 11.0}
PROFILES = {"standard": nab_score.STANDARD, "low FP": nab_score.REWARD_LOW_FP,
            "low FN": nab_score.REWARD_LOW_FN}


@dataclass
class Series:
    name: str
    split: str
    points: int
    windows: list[tuple[int, int]]
    scores: np.ndarray  # the detector's score per point
    alerts: list[int]  # the detector's own alerts at its configured thresholds
    rolling_alerts: np.ndarray
    seconds: float
    window_alerts: list[int]  # the ablation: the window detector alone, default thresholds


def split_names(names: list[str]) -> dict[str, str]:
    """The fixed rule: alternating by sorted name, even positions development, odd evaluation."""
    return {name: ("dev" if i % 2 == 0 else "eval") for i, name in enumerate(sorted(names))}


def rolling_z_alerts(values: np.ndarray, window: int = ROLLING_WINDOW,
                     sigmas: float = ROLLING_SIGMAS) -> np.ndarray:
    """Indices where |x - mean| > sigmas * std of the previous `window` points (a full window)."""
    import pandas as pd

    s = pd.Series(values)
    mean = s.rolling(window).mean().shift(1)
    std = s.rolling(window).std().shift(1)
    z = ((s - mean).abs() / std.where(std > 0)).to_numpy()
    flagged = np.isfinite(z) & (z > sigmas)
    # A constant baseline has no spread: any change from it is flagged.
    flagged |= (std.to_numpy() == 0) & (s.to_numpy() != mean.to_numpy())
    return np.flatnonzero(flagged)


def stream_series(values: np.ndarray, stamps: np.ndarray, config: StreamConfig):
    detector = StreamDetector(config)
    update = detector.update
    scores = np.empty(len(values))
    alerts = []
    started = time.perf_counter()
    for i, (t, x) in enumerate(zip(stamps.tolist(), values.tolist(), strict=False)):
        verdict = update(t, x)
        scores[i] = verdict.score
        if verdict.is_anomaly:
            alerts.append(i)
    return scores, alerts, time.perf_counter() - started


def replay_alerts(scores: np.ndarray, multiple: float, config: StreamConfig) -> list[int]:
    """The detector's alert rule at another threshold multiple (its scores do not depend on it)."""
    out: list[int] = []
    last = -(10**12)
    for i in np.flatnonzero(scores >= multiple).tolist():
        if i >= config.warmup and i - last >= config.cooldown:
            out.append(i)
            last = i
    return out


def evaluate(series: list[Series], alerts_of) -> dict:
    """NAB scores per profile and event metrics of one detector (alerts_of(series) -> indices)."""
    result: dict = {}
    all_alerts = [alerts_of(s) for s in series]
    for label, profile in PROFILES.items():
        scored = [nab_score.score_series(s.points, s.windows, a, profile) for s, a in zip(series, all_alerts, strict=False)]
        result[f"nab {label}"] = nab_score.normalized_score(scored, profile)
    detected = missed = false = scored_points = 0
    for s, a in zip(series, all_alerts, strict=False):
        d, m, f = nab_score.event_counts(s.points, s.windows, a)
        detected, missed, false = detected + d, missed + m, false + f
        scored_points += s.points - nab_score.probation_length(s.points)
    precision = detected / (detected + false) if detected + false else 0.0
    recall = detected / (detected + missed) if detected + missed else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    result.update(windows=detected + missed, detected=detected, false_alerts=false,
                  precision=precision, recall=recall, f1=f1,
                  false_per_1000=1000 * false / max(scored_points, 1), points=scored_points)
    return result


def run(nab_dir: Path | str, quick: bool = False, config: StreamConfig | None = None,
        progress=None) -> dict:
    config = config or StreamConfig()
    window_only = replace(config, point_threshold=math.inf, tail_sigmas=0.0)
    # The split is made over every series of the folder, so that --quick keeps each one's half.
    every = _all_names(nab_dir)
    splits = split_names(every)
    quick_files = [f for f in QUICK_FILES if f in splits] or sorted(every)[:4]
    loaded = nab.load_nab(nab_dir, quick_files if quick else None)
    names = [f"{s.category}/{s.file}" for s in loaded]
    series: list[Series] = []
    for s, name in zip(loaded, names, strict=False):
        values = s.values.to_numpy(dtype=float)
        stamps = s.values.index.as_unit("ns").asi8 / 1e9
        scores, alerts, seconds = stream_series(values, stamps, config)
        _, window_alerts, _ = stream_series(values, stamps, window_only)
        windows = nab_score.window_indices(list(s.values.index), s.windows)
        series.append(Series(name, splits[name], len(values), windows, scores, alerts,
                             rolling_z_alerts(values), seconds, window_alerts))
        if progress:
            print(f"  {name}: {len(values)} points, {len(alerts)} alerts, {seconds:.2f}s",
                  file=progress, flush=True)
    dev = [s for s in series if s.split == "dev"]
    ev = [s for s in series if s.split == "eval"]
    sweep = {m: evaluate(dev, lambda s, m=m: replay_alerts(s.scores, m, config))["nab standard"]
             for m in THRESHOLD_GRID} if dev else {}
    chosen = max(sweep, key=lambda m: (sweep[m], -abs(m - 1.0))) if sweep else 1.0
    detectors = {
        f"stream detector, threshold x{chosen:g} (chosen on dev)":
            lambda s: replay_alerts(s.scores, chosen, config),
        "stream detector, default thresholds": lambda s: s.alerts,
        "window detector alone, default thresholds": lambda s: s.window_alerts,
        f"rolling {ROLLING_SIGMAS:g}-sigma z-score ({ROLLING_WINDOW} points)":
            lambda s: s.rolling_alerts.tolist(),
    }
    results = {"config": config.__dict__, "chosen_multiple": chosen, "sweep_dev": sweep,
               "splits": {}, "series": {s.name: s.split for s in series}, "quick": quick}
    for label, part in (("dev", dev), ("eval", ev), ("all", series)):
        if part:
            results["splits"][label] = {name: evaluate(part, fn) for name, fn in detectors.items()}
            results["splits"][label]["_series"] = len(part)
    categories = sorted({s.name.split("/")[0] for s in series})
    results["categories"] = {
        c: {name: evaluate([s for s in series if s.name.startswith(c + "/")], fn)
            for name, fn in detectors.items()}
        for c in categories
    }
    total_points = sum(s.points for s in series)
    total_seconds = sum(s.seconds for s in series)
    probe = StreamDetector(config)
    results["throughput"] = {"points": total_points, "seconds": total_seconds,
                             "points_per_second": total_points / total_seconds if total_seconds else 0.0,
                             "state_bytes": len(json.dumps(probe.to_state()))}
    return results


def _all_names(nab_dir: Path | str) -> list[str]:
    return list(json.loads((Path(nab_dir) / "combined_windows.json").read_text()))


def render_markdown(results: dict) -> str:
    lines = []
    chosen = results["chosen_multiple"]
    for split, table in results["splits"].items():
        count = table["_series"]
        lines += [f"#### {split} ({count} series)", "",
                  "| detector | NAB standard | NAB low FP | NAB low FN | windows found | event precision "
                  "| event recall | event F1 | false alerts / 1,000 points |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for name, r in table.items():
            if name == "_series":
                continue
            lines.append(f"| {name} | {r['nab standard']:.1f} | {r['nab low FP']:.1f} | {r['nab low FN']:.1f} "
                         f"| {r['detected']}/{r['windows']} | {r['precision']:.2f} | {r['recall']:.2f} "
                         f"| {r['f1']:.2f} | {r['false_per_1000']:.2f} |")
        lines.append("")
    published = ", ".join(f"{k} {v}" for k, v in PUBLISHED.items())
    lines += [f"NAB's published standard scores (full 58-series corpus, for scale): {published}.", "",
              "#### NAB standard score and event F1 by category (both halves)", "",
              "| category | " + " | ".join(next(iter(results["categories"].values()))) + " |",
              "| --- |" + " ---: |" * len(next(iter(results["categories"].values())))]
    for category, table in results["categories"].items():
        # A category without windows has no NAB score: its false alerts per 1,000 points instead.
        cells = [f"{r['nab standard']:.1f} / {r['f1']:.2f}" if r["windows"] else
                 f"{r['false_per_1000']:.2f} false / 1,000" for r in table.values()]
        lines.append(f"| {category} | " + " | ".join(cells) + " |")
    tp = results["throughput"]
    sweep = results["sweep_dev"]
    if sweep:
        shown = ", ".join(f"x{m:g}: {v:.1f}" for m, v in sweep.items() if round(m * 20) % 5 == 0)
        lines += ["", f"Threshold multiple chosen on the development half: x{chosen:g} "
                  f"(dev NAB standard by multiple: {shown})."]
    lines += ["", f"Throughput: {tp['points_per_second']:,.0f} points/s over {tp['points']:,} points "
              f"(one core, `update` with epoch-second timestamps, verdict objects included); "
              f"state {tp['state_bytes']:,} bytes of JSON per stream, whatever its length."]
    return "\n".join(lines)


def main(nab_dir: str | None, quick: bool, json_path: str | None) -> int:
    from data_platform.bench.runner import machine

    if nab_dir is not None and not (Path(nab_dir) / "combined_windows.json").is_file():
        print(f"--nab-dir {nab_dir}: no combined_windows.json there", file=sys.stderr)
        return 2
    folder = nab_dir or nab.default_nab_dir()
    if folder is None:
        print("bench streaming: NAB folder not found (set DATA_PLATFORM_REAL_DATA or pass --nab-dir)",
              file=sys.stderr)
        return 2
    started = time.perf_counter()
    results = run(folder, quick, progress=sys.stderr)
    print(f"### bench streaming ({machine()}){' --quick' if quick else ''}: "
          f"{len(results['series'])} NAB series at 5-minute points\n")
    print(render_markdown(results))
    print(f"\nWall time {time.perf_counter() - started:.0f}s.")
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=1, default=str))
        print(f"results written to {json_path}", file=sys.stderr)
    return 0
