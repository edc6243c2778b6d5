"""`data-platform bench pipeline`: the pipeline's stages in-process, size by size.

Each size runs in a fresh process (`python -m data_platform.bench.pipeline _pipeline ROWS`) so
its peak RSS belongs to that size alone; the table compares sizes measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta

from data_platform.bench.runner import machine

PIPELINE_ROWS = (10_000, 100_000, 1_000_000, 10_000_000)
PIPELINE_ROWS_QUICK = (2_000, 20_000)


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


def main(args: argparse.Namespace) -> int:
    sizes = args.rows or (PIPELINE_ROWS_QUICK if args.quick else PIPELINE_ROWS)
    results = []
    for rows in sizes:
        # A fresh process per size so the peak RSS belongs to that size alone.
        cmd = [sys.executable, "-m", "data_platform.bench.pipeline", "_pipeline", str(rows)]
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


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "_pipeline":
        result = pipeline_stages(int(sys.argv[2]), with_models="--models" in sys.argv)
        print(json.dumps(result))
        sys.exit(0)
    sys.exit(2)
