"""``data-platform bench features``: the feature store at its target sizes.

1. Training set on PostgreSQL: 3 views of ``ROWS_PER_VIEW`` history rows each (entities with a
   row every few days), 100,000 label rows; ``get_training_set`` timed end to end (labels
   uploaded, one SQL statement, result read back), built twice (the hashes must match).
2. Online materialization into Redis (a ``redis-server`` of its own): each view's latest value
   per entity, timed end to end and for the Redis write alone (encode + pipelined publish).
3. Lookups over HTTP from ``data-platform serve`` (one worker) with the serving load generator
   (open loop, latency from the intended send time): single entities at 500/s, 50-entity batches.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from datetime import timedelta

import numpy as np
import pandas as pd

from data_platform.features.offline import OfflineStore, get_training_set, training_set_hash
from data_platform.features.online import RedisOnlineStore, encode_payloads, materialize
from data_platform.features.view import Feature, FeatureView

ROWS_PER_VIEW, ROWS_QUICK = 1_000_000, 30_000
LABELS, LABELS_QUICK = 100_000, 5_000
ENTITIES_SHARE = 0.1  # entities = rows * share: ten computations per entity
NOW = pd.Timestamp("2026-06-01")
PREFIX = "bench"


def bench_views() -> list[FeatureView]:
    return [
        FeatureView(name=f"bench_{name}", entity=entity, ttl=timedelta(days=days), owner="team:bench",
                    features=tuple(Feature(f"{name}_f{i}") for i in range(4)) + (Feature(f"{name}_n", "Int64"),))
        for name, entity, days in (("customer", "customer_id", 30), ("product", "item_id", 60),
                                   ("store", "store_id", 90))
    ]


def history(view: FeatureView, rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    entities = max(1, int(rows * ENTITIES_SHARE))
    frame = pd.DataFrame({
        view.entity: [f"E{i:07d}" for i in rng.integers(0, entities, rows)],
        view.event_timestamp: NOW - pd.to_timedelta(rng.integers(0, 120 * 86400, rows), unit="s"),
    })
    frame[view.created_timestamp] = frame[view.event_timestamp] + pd.to_timedelta(
        rng.integers(0, 6 * 3600, rows), unit="s")
    for feature in view.features:
        if feature.dtype == "Int64":
            frame[feature.name] = pd.array(rng.integers(0, 1000, rows), dtype="Int64")
        else:
            frame[feature.name] = rng.random(rows)
    return frame


def labels(views: list[FeatureView], n: int, rows: int, seed: int = 99) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    entities = max(1, int(rows * ENTITIES_SHARE))
    out = {v.entity: [f"E{i:07d}" for i in rng.integers(0, entities, n)] for v in views}
    out["event_timestamp"] = NOW - pd.to_timedelta(rng.integers(0, 100 * 86400, n), unit="s")
    out["label"] = rng.integers(0, 2, n)
    return pd.DataFrame(out)


def main(args: argparse.Namespace) -> int:
    from data_platform.bench import serving
    from data_platform.bench.runner import machine
    from data_platform.sources.db import make_engine

    url = (getattr(args, "postgres_url", None) or os.environ.get("DATA_PLATFORM_BENCH_POSTGRES_URL")
           or os.environ.get("DATA_PLATFORM_TEST_POSTGRES_URL"))
    if not url:
        raise SystemExit("bench features needs PostgreSQL: --postgres-url or DATA_PLATFORM_BENCH_POSTGRES_URL")
    quick = bool(getattr(args, "quick", False))
    rows = ROWS_QUICK if quick else ROWS_PER_VIEW
    n_labels = LABELS_QUICK if quick else LABELS
    single_s, batch_s = (5, 5) if quick else (30, 20)
    views = bench_views()
    schema = f"bench_fs_{uuid.uuid4().hex[:8]}"
    offline = OfflineStore(url, schema=schema)
    report: dict[str, object] = {"rows_per_view": rows, "labels": n_labels}
    try:
        started = time.perf_counter()
        for seed, view in enumerate(views):
            frame = history(view, rows, seed)
            half = len(frame) // 2  # two computations per view, like two runs of the asset
            offline.write(view, frame.iloc[:half], computation="first")
            offline.write(view, frame.iloc[half:], computation="second")
        with offline.engine.begin() as conn:
            conn.exec_driver_sql(f'ANALYZE "{schema}"."fv_bench_customer"')
        report["load_s"] = time.perf_counter() - started
        wanted = labels(views, n_labels, rows)
        timings, hashes = [], []
        for _ in range(2):
            started = time.perf_counter()
            result = get_training_set(wanted, views, offline)
            timings.append(time.perf_counter() - started)
            hashes.append(training_set_hash(result))
        filled = float(result[views[0].feature_names[0]].notna().mean())
        report.update(training_s=timings, same_hash=hashes[0] == hashes[1], filled_share=filled)

        with serving.bench_world(1000) as world:
            import redis

            client = redis.Redis(port=world["redis_port"])
            online = RedisOnlineStore(client, PREFIX)
            materialized = []
            for view in views:
                done = materialize(view, offline, online, as_of=NOW)
                latest = offline.latest(view, as_of=NOW)
                started = time.perf_counter()
                online.write(view, encode_payloads(view, latest), NOW.isoformat())
                write_s = time.perf_counter() - started
                materialized.append({"view": view.name, "entities": done.entities, "end_to_end_s": done.seconds,
                                     "redis_write_s": write_s})
            report["materialize"] = materialized
            entities = [f"E{i:07d}" for i in range(int(rows * ENTITIES_SHARE))]
            rng = np.random.default_rng(5)
            singles = [["GET", f"/v1/features/bench_customer/{entities[i]}", None]
                       for i in rng.integers(0, len(entities), 20_000)]
            batches = [["POST", "/v1/features/bench_customer",
                        json.dumps({"entity_ids": [entities[i] for i in rng.integers(0, len(entities), 50)]})]
                       for _ in range(2000)]
            with serving.running_service(world) as port:
                folder = world["folder"]
                serving.load(port, 500, 3, singles, folder)  # warm-up, not reported
                report["single"] = serving.load(port, 500, single_s, singles, folder)
                report["batch"] = serving.load(port, 100, batch_s, batches, folder)
            client.close()
    finally:
        offline.dispose()
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        engine.dispose()
    print_report(report, machine(), serving)
    return 0


def print_report(r: dict, machine: str, serving) -> None:
    rows = r["rows_per_view"]
    print(f"### Feature store ({machine}; PostgreSQL; 3 views x {rows:,} history rows; "
          f"{r['labels']:,} labels)\n")
    print(f"- History loaded (COPY, two computations per view) in {r['load_s']:.1f} s.")
    t = r["training_s"]
    print(f"- Training set, {r['labels']:,} labels x 3 views: {t[0]:.1f} s, rebuilt in {t[1]:.1f} s; "
          f"same hash: {r['same_hash']}; {r['filled_share']:.0%} of labels found a value in the first view.")
    for m in r["materialize"]:
        print(f"- Materialize {m['view']}: {m['entities']:,} entities in {m['end_to_end_s']:.2f} s end to end "
              f"({m['entities'] / m['end_to_end_s']:,.0f}/s); Redis write alone {m['redis_write_s']:.2f} s "
              f"({m['entities'] / m['redis_write_s']:,.0f}/s).")
    print("\n| lookup over HTTP | offered /s | achieved /s | requests | errors | p50 ms | p99 ms | p99.9 ms "
          "| max ms | from send p50 / p99 ms | answered from |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    print(serving.row("single entity", r["single"]))
    print(serving.row("batch of 50 entities", r["batch"]))
