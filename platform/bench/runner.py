"""`data-platform bench ...`: each benchmark prints a markdown table for docs/benchmarks.md.

`main(args)` hands the parsed command line to the benchmark's module (loaded only when that
benchmark runs); the handlers here turn options into calls and results into the table.

Every figure is a median of repeated runs where the benchmark repeats, measured on the machine
that runs the command; ratios compare numbers measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as stdlib_platform
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta


def machine() -> str:
    return f"{os.cpu_count()} cores, Python {stdlib_platform.python_version()}"


def bench_io(args: argparse.Namespace) -> int:
    from data_platform.bench.warehouse import run_io_benchmark

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

    from data_platform.bench import anomaly_eval, nab

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
    from data_platform.bench.checks import run_check_benchmark

    lengths = (10, 100) if args.quick else (10, 100, 1_000, 10_000)
    metric_counts = (10,) if args.quick else (10, 50, 200)
    rows = run_check_benchmark(history_lengths=lengths, n_metrics=metric_counts)
    print(f"### bench checks ({machine()})\n")
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + " --- |" * len(keys))
    for row in rows:
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
    return 0


def bench_models(args: argparse.Namespace) -> int:
    from data_platform.bench import models as ml_bench

    target = list(args.target) or (["scale", "20000"] if args.quick else ["scale"])
    return ml_bench.main(target)


def bench_platform(args: argparse.Namespace) -> int:
    """The daily job's checks replayed without Dagster over long windows (issue 12 targets)."""
    from data_platform.bench import platform as platform_bench

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
    from data_platform.bench import streaming as streaming_bench

    return streaming_bench.main(getattr(args, "nab_dir", None), args.quick, getattr(args, "json", None))


def bench_joint(args: argparse.Namespace) -> int:
    """Ablation of the joint detectors on the joint-incident families (issue 19; docs/anomaly.md)."""
    from data_platform.bench import joint as joint_bench

    return joint_bench.main(getattr(args, "seeds", None), getattr(args, "cases", None), args.quick,
                            getattr(args, "jobs", None))


def bench_pipeline(args: argparse.Namespace) -> int:
    from data_platform.bench import pipeline

    return pipeline.main(args)


def bench_serving(args: argparse.Namespace) -> int:
    from data_platform.bench import serving

    return serving.main(args)


def bench_features(args: argparse.Namespace) -> int:
    from data_platform.bench import features

    return features.main(args)


def bench_streaming_consumer(args: argparse.Namespace) -> int:
    from data_platform.bench import streaming_consumer

    return streaming_consumer.main(args)


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
        "serving": bench_serving,
        "features": bench_features,
        "streaming-consumer": bench_streaming_consumer,
    }
    return handlers[args.which](args)
