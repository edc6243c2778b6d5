"""`data-platform bench checks`: the cost of one anomaly check evaluation against its history.

`run_check_benchmark` writes, straight to a temporary SQLite Dagster instance, a history of
materializations and of the check's own evaluations of them, then times `evaluate_anomaly`
(fetch + detect + explanation) per history length and metadata width.

    python -m data_platform.bench.checks
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import dagster as dg
import pandas as pd

from data_platform.checks import event_store
from data_platform.checks.anomaly import (
    DEFAULT_CHECK_NAME,
    STATE_KEY,
    evaluate_anomaly,
    state_value,
)
from data_platform.quality.history import DEFAULT_LOOKBACK
from data_platform.quality.judging import Detector, Point, PointVerdict, explain
from data_platform.quality.verdict import MetricResult, Verdict


def run_check_benchmark(
    history_lengths: Sequence[int] = (10, 100, 1000),
    n_metrics: Sequence[int] = (10, 50, 200),
    *,
    repeats: int = 5,
    lookback: int = DEFAULT_LOOKBACK,
    partitioned: bool = True,
    detector: Detector | None = None,
    seed: int = 0,
) -> list[dict[str, float | int]]:
    """Median seconds of one check evaluation (fetch + detect + explanation) per configuration.

    Each stored point is a materialization (one daily partition each when `partitioned`) plus
    this check's own evaluation of it, with an explanation as large as a real one, written
    straight to a temporary SQLite instance: the figures measure the check, not the assets.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    daily = dg.DailyPartitionsDefinition(start_date="2020-01-01")
    rows: list[dict[str, float | int]] = []
    for length in history_lengths:
        for width in n_metrics:
            with (
                tempfile.TemporaryDirectory() as tmp,
                dg.instance_for_test(temp_dir=tmp) as instance,
            ):
                key = dg.AssetKey(f"bench_{length}_{width}")
                _write_benchmark_history(
                    instance, key, length, width, rng, daily if partitioned else None
                )
                timings = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    result = evaluate_anomaly(
                        instance,
                        key,
                        lookback=lookback,
                        partitions_def=daily if partitioned else None,
                        detector=detector,
                        expected_events=[],
                    )
                    timings.append(time.perf_counter() - started)
                rows.append(
                    {
                        "history": length,
                        "metrics": width,
                        "history_points": int(result.metadata["history_points"].value),
                        "median_s": round(statistics.median(timings), 4),
                        "max_s": round(max(timings), 4),
                    }
                )
    return rows


def _write_benchmark_history(
    instance: dg.DagsterInstance,
    key: dg.AssetKey,
    length: int,
    width: int,
    rng: Any,
    partitions_def: dg.PartitionsDefinition | None,
) -> None:
    base = rng.uniform(10, 1000, size=width)
    partitions = partitions_def.get_partition_keys()[:length] if partitions_def else [None] * length
    explanation = explain(
        PointVerdict(
            Point(0, 0.0, "", None, {}),
            Verdict(False, {"m": MetricResult("m", 1.0, 1.0, 0.0, 2.0)}, history_points=length),
            False,
            history=pd.DataFrame({"m": rng.standard_normal(min(length, 180))}),
            excluded=[False] * min(length, 180),
        )
    )
    for i, partition in enumerate(partitions):
        values = base * (1 + 0.05 * rng.standard_normal(width))
        metrics = {f"mean/c{j}": float(v) for j, v in enumerate(values)}
        instance.report_runless_asset_event(
            dg.AssetMaterialization(key, partition=partition, metadata=metrics)
        )
        record = event_store.latest_materialization(instance, key)
        assert record is not None
        storage_id = record.storage_id
        is_anomaly = i % 50 == 49
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=key,
                check_name=DEFAULT_CHECK_NAME,
                passed=not is_anomaly,
                metadata={
                    "explanation": dg.MetadataValue.md(explanation),
                    STATE_KEY: state_value(
                        [
                            PointVerdict(
                                Point(storage_id, record.timestamp, record.run_id, partition, metrics),
                                None,
                                is_anomaly,
                            )
                        ]
                    ),
                },
            )
        )


if __name__ == "__main__":  # pragma: no cover - manual benchmark
    print(json.dumps(run_check_benchmark(), indent=1))
