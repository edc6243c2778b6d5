"""`data-platform bench ...`: each benchmark prints a markdown table for docs/benchmarks.md.

Every figure is a median of repeated runs where the benchmark repeats, measured on the machine
that runs the command; ratios compare numbers measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as stdlib_platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta

PIPELINE_ROWS = (10_000, 100_000, 1_000_000, 10_000_000)
PIPELINE_ROWS_QUICK = (2_000, 20_000)


def machine() -> str:
    return f"{os.cpu_count()} cores, Python {stdlib_platform.python_version()}"


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux: the peak of this process so far.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _synthetic_rows(entity: str, rows: int, seed: int = 0):
    """About `rows` rows of one entity, generated day by day at a scale that keeps days realistic.

    The population (customers, products) grows with the scale (a tenth of it, at least the
    reference world), so that a larger size is more of the same marketplace rather than the same
    2,000 customers re-rating the same 300 products, while the models (whose cost grows with the
    number of users and items, not rows) stay trainable: 6,600 customers × 1,000 products at
    1M rows, 66,000 × 10,000 at 10M.
    """
    import pandas as pd

    from data_platform.sources import synthetic

    per_day = len(synthetic.generate(entity, date(2025, 3, 3), seed=seed, incidents=False))
    days = max(1, min(60, rows // max(per_day, 1)))
    scale = max(rows / (per_day * days), 1e-3)
    frames, start = [], date(2025, 3, 3)
    for offset in range(days):
        frames.append(
            synthetic.generate(entity, start + timedelta(days=offset), seed=seed, scale=scale,
                               incidents=False, population=max(1.0, scale / 10))
        )
    return pd.concat(frames, ignore_index=True)


def pipeline_stages(rows: int, with_models: bool) -> dict:
    """One size of the pipeline, stage by stage, in this process (peak RSS is this process's)."""
    import numpy as np
    import pandas as pd

    from data_platform.ml import features
    from data_platform.quality import health
    from data_platform.quality.anomaly import detect
    from data_platform.quality.cleaning import clean
    from data_platform.tablestore import TableStore

    out: dict = {"rows": rows, "stages": []}

    def stage(name, fn):
        started = time.perf_counter()
        value = fn()
        out["stages"].append(
            {"stage": name, "seconds": time.perf_counter() - started, "peak_rss_mb": _peak_rss_mb()}
        )
        return value

    raw = stage(
        "ingestion (generate)",
        lambda: {e: _synthetic_rows(e, rows) for e in ("orders", "ratings")},
    )
    out["raw_rows"] = {e: len(f) for e, f in raw.items()}
    with tempfile.TemporaryDirectory() as tmp:
        store = TableStore(f"sqlite:///{tmp}/bench.db")
        stage("warehouse write (SQLite)", lambda: [store.write(f"{e}_raw", f) for e, f in raw.items()])
        store.dispose()
    cleaned = stage("cleaning", lambda: {e: clean(e, f).clean for e, f in raw.items()})
    out["clean_rows"] = {e: len(f) for e, f in cleaned.items()}
    metrics = stage(
        "health metadata",
        lambda: {e: health.compute_health(f, key=()) for e, f in cleaned.items()},
    )
    rfm = stage("features: customer_rfm", lambda: features.customer_rfm(cleaned["orders"]))
    stage("features: user/item", lambda: (features.user_features(cleaned["ratings"]), features.item_features(cleaned["ratings"])))
    if with_models:
        from data_platform.ml import segmentation

        stage("model: segmentation", lambda: segmentation.train_and_evaluate(rfm))
        if rows <= 1_000_000:
            from data_platform.ml import recommender

            stage("model: recommender", lambda: recommender.train_and_evaluate(cleaned["ratings"]))

    def one_check():
        current = pd.Series(metrics["orders"], dtype=float)
        rng = np.random.default_rng(0)
        history = pd.DataFrame(
            [current * (1 + rng.normal(0, 0.02, len(current))) for _ in range(180)]
        ).reset_index(drop=True)
        return detect(history, current)

    stage("checks: one anomaly check", one_check)
    return out


def bench_pipeline(args: argparse.Namespace) -> int:
    sizes = args.rows or (PIPELINE_ROWS_QUICK if args.quick else PIPELINE_ROWS)
    results = []
    for rows in sizes:
        # A fresh process per size so the peak RSS belongs to that size alone.
        cmd = [sys.executable, "-m", "data_platform.bench", "_pipeline", str(rows)]
        if not args.quick:
            cmd.append("--models")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        total = sum(s["seconds"] for s in results[-1]["stages"])
        print(f"  {rows:>10,} rows: {total:7.1f}s", file=sys.stderr, flush=True)
    print(f"### bench pipeline ({machine()})\n")
    stages = [s["stage"] for s in results[0]["stages"]]
    header = "| stage | " + " | ".join(f"{r['rows']:,} rows: s / peak MB" for r in results) + " |"
    print(header)
    print("|" + " --- |" * (len(results) + 1))
    for name in stages:
        cells = []
        for r in results:
            match = [s for s in r["stages"] if s["stage"] == name]
            cells.append(f"{match[0]['seconds']:.2f} / {match[0]['peak_rss_mb']:.0f}" if match else "—")
        print(f"| {name} | " + " | ".join(cells) + " |")
    totals = [sum(s["seconds"] for s in r["stages"]) for r in results]
    print("| **total** | " + " | ".join(f"**{t:.2f}**" for t in totals) + " |")
    data = [
        sum(s["seconds"] for s in r["stages"] if not s["stage"].startswith("model:")) for r in results
    ]
    print("| data stages (no models) | " + " | ".join(f"{t:.2f}" for t in data) + " |")
    print("| raw rows orders / ratings | " + " | ".join(
        f"{r['raw_rows']['orders']:,} / {r['raw_rows']['ratings']:,}" for r in results) + " |")
    print("| clean rows orders / ratings | " + " | ".join(
        f"{r['clean_rows']['orders']:,} / {r['clean_rows']['ratings']:,}" for r in results) + " |")
    by_rows = {r["rows"]: t for r, t in zip(results, data, strict=True)}
    if 1_000_000 in by_rows and 10_000_000 in by_rows:
        print(f"\ndata stages: time at 10M / time at 1M = "
              f"{by_rows[10_000_000] / by_rows[1_000_000]:.1f} (target ≤ 12)")
    return 0


def bench_io(args: argparse.Namespace) -> int:
    from data_platform.resources.warehouse_bench import run_io_benchmark

    sizes = args.rows or ([20_000] if args.quick else [1_000_000])
    repeats = 1 if args.quick else 3
    targets = []
    with tempfile.TemporaryDirectory() as tmp:
        targets.append(("SQLite", f"sqlite:///{tmp}/bench.db"))
        if args.postgres_url:
            targets.append(("PostgreSQL", args.postgres_url))
        print(f"### bench io ({machine()}, median of {repeats})\n")
        print("| backend | rows | write rows/s | read rows/s | raw COPY write rows/s | raw COPY read rows/s | write ratio | read ratio |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for label, url in targets:
            for rows in sizes:
                runs = [run_io_benchmark(url, rows) for _ in range(repeats)]
                med: dict[str, float] = {}
                for key in runs[0]:
                    values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
                    if values:
                        med[key] = statistics.median(values)
                print(
                    f"| {label} | {rows:,} | {med.get('store_write_rows_per_s', 0):,.0f} | "
                    f"{med.get('store_read_rows_per_s', 0):,.0f} | "
                    f"{_fmt(med.get('raw_copy_write_rows_per_s'))} | {_fmt(med.get('raw_copy_read_rows_per_s'))} | "
                    f"{_ratio(med.get('write_ratio_store_to_raw'))} | {_ratio(med.get('read_ratio_store_to_raw'))} |"
                )
    return 0


def _fmt(value) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _ratio(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def bench_anomaly(args: argparse.Namespace) -> int:
    """Development and evaluation splits plus NAB; progress on stderr, markdown on stdout."""
    from pathlib import Path

    from data_platform.quality import anomaly_eval, nab

    split = getattr(args, "split", "all")
    seeds = tuple(getattr(args, "seeds", None) or anomaly_eval.EVAL_SEEDS)
    nab_dir = getattr(args, "nab_dir", None)
    if nab_dir is not None and not (Path(nab_dir) / "combined_windows.json").is_file():
        print(f"--nab-dir {nab_dir}: no combined_windows.json there", file=sys.stderr)
        return 2
    nab_dir = nab_dir or nab.default_nab_dir()
    if nab_dir is None and split != "dev":
        print("NAB folder not found: the real-series section is skipped", file=sys.stderr)
    jobs = getattr(args, "jobs", None) or min(2, os.cpu_count() or 1)
    try:
        results = anomaly_eval.run_evaluation(split, seeds, args.quick, nab_dir, jobs, progress=sys.stderr)
    except ValueError as error:
        print(f"bench anomaly: {error}", file=sys.stderr)
        return 2
    print(anomaly_eval.render_markdown(results))
    if getattr(args, "json", None):
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
        print(f"results written to {args.json}", file=sys.stderr)
    return 0


def bench_checks(args: argparse.Namespace) -> int:
    from data_platform.checks import anomaly

    lengths = (10, 100) if args.quick else (10, 100, 1_000, 10_000)
    metric_counts = (10,) if args.quick else (10, 50, 200)
    rows = anomaly.run_check_benchmark(history_lengths=lengths, n_metrics=metric_counts)
    print(f"### bench checks ({machine()})\n")
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + " --- |" * len(keys))
    for row in rows:
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
    return 0


def bench_models(args: argparse.Namespace) -> int:
    from data_platform.ml import bench as ml_bench

    target = list(args.target) or (["scale", "20000"] if args.quick else ["scale"])
    return ml_bench.main(target)


def bench_platform(args: argparse.Namespace) -> int:
    """The daily job's checks replayed without Dagster over long windows (issue 12 targets)."""
    from data_platform.quality import platform_bench

    days = getattr(args, "days", None) or (platform_bench.QUICK_DAYS if args.quick else 180)
    seeds = list(getattr(args, "seeds", None) or ([0] if args.quick else [0, 1, 2]))
    try:
        end_text = getattr(args, "end_date", None)
        end = date.fromisoformat(end_text) if end_text else date.today() - timedelta(days=1)
    except ValueError:
        print(f"bench platform: --end-date {end_text!r} is not a YYYY-MM-DD date", file=sys.stderr)
        return 2
    if days < 1:
        print("bench platform: --days must be at least 1", file=sys.stderr)
        return 2
    both = bool(getattr(args, "no_incidents_too", False))
    jobs = max(1, min(getattr(args, "jobs", None) or 1, 2))
    print(f"### bench platform ({machine()}): {days} days ending {end}, seeds "
          f"{','.join(map(str, seeds))}, incident calendar {'on and off' if both else 'on'}\n")
    started = time.perf_counter()
    results = platform_bench.run_windows(seeds, end, days, both=both, jobs=jobs)
    print(platform_bench.render_markdown(results))
    print(f"\nTargets: every incident after the cold start ({platform_bench.COLD_START_DAYS} days) "
          f"caught on its day; at most {platform_bench.allowed_false_alerts(days)} false alert(s) "
          f"per asset in {days} days; no blocking failure with the calendar off. Wall time "
          f"{time.perf_counter() - started:.0f}s ({jobs} process{'es' if jobs > 1 else ''}).\n")
    print("#### Misses and false alerts, with the verdicts' reasons\n")
    print(platform_bench.render_findings(results))
    return 0


def bench_streaming(args: argparse.Namespace) -> int:
    """The stream detector on NAB's series at 5-minute points (issue 17; docs/streaming.md)."""
    from data_platform.quality import streaming_bench

    return streaming_bench.main(getattr(args, "nab_dir", None), args.quick, getattr(args, "json", None))


def bench_joint(args: argparse.Namespace) -> int:
    """Ablation of the joint detectors on the joint-incident families (issue 19; docs/anomaly.md)."""
    from data_platform.quality import joint_bench

    return joint_bench.main(getattr(args, "seeds", None), getattr(args, "cases", None), args.quick,
                            getattr(args, "jobs", None))


def main(args: argparse.Namespace) -> int:
    handlers = {
        "io": bench_io,
        "pipeline": bench_pipeline,
        "checks": bench_checks,
        "anomaly": bench_anomaly,
        "models": bench_models,
        "platform": bench_platform,
        "streaming": bench_streaming,
        "joint": bench_joint,
    }
    return handlers[args.which](args)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "_pipeline":
        result = pipeline_stages(int(sys.argv[2]), with_models="--models" in sys.argv)
        print(json.dumps(result))
        sys.exit(0)
    sys.exit(2)
