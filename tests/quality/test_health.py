from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from data_platform.quality import health


def tiny_orders() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": pd.array(["A", "A", "B", "C"], dtype="string"),
            "line_no": pd.array([1, 1, 1, 2], dtype="Int64"),
            "unit_price": pd.array([1.0, 3.0, None, 5.0], dtype="Float64"),
            "flag": pd.array([True, False, True, None], dtype="boolean"),
            "ordered_at": pd.to_datetime(
                ["2025-01-01 10:00", "2025-01-01 12:00", "2025-01-01 18:00", None]
            ),
        }
    )


def test_exact_metrics_on_a_tiny_frame():
    df = tiny_orders()
    metrics = health.compute_health(
        df,
        key=("order_id", "line_no"),
        event_time="ordered_at",
        partition_end=pd.Timestamp("2025-01-02"),
        quarantined=1,
        rejected=2,
        source_rows=7,
        duration_seconds=0.5,
    )
    assert metrics[health.ROW_COUNT] == 4
    assert metrics[health.COLUMN_COUNT] == 5
    assert metrics[health.DUPLICATE_KEY_COUNT] == 1
    assert metrics[health.QUARANTINED_ROW_COUNT] == 1
    assert metrics[health.QUARANTINE_SHARE] == pytest.approx(1 / 5)
    assert metrics[health.REJECTED_ROW_COUNT] == 2
    assert metrics[health.SOURCE_ROW_COUNT] == 7
    assert metrics[health.DURATION_SECONDS] == 0.5
    # Newest event 18:00, partition ends at midnight.
    assert metrics[health.FRESHNESS_LAG_HOURS] == pytest.approx(6.0)

    assert metrics[health.null_fraction_key("order_id")] == 0.0
    assert metrics[health.distinct_count_key("order_id")] == 3
    assert metrics[health.distinct_count_key("line_no")] == 2
    assert metrics[health.mean_key("line_no")] == pytest.approx(1.25)
    assert metrics[health.null_fraction_key("unit_price")] == 0.25
    assert metrics[health.mean_key("unit_price")] == pytest.approx(3.0)
    assert metrics[health.std_key("unit_price")] == pytest.approx(2.0)
    assert metrics[health.min_key("unit_price")] == 1.0
    assert metrics[health.max_key("unit_price")] == 5.0
    assert health.distinct_count_key("unit_price") not in metrics
    # Booleans are rates: only the mean.
    assert metrics[health.mean_key("flag")] == pytest.approx(2 / 3)
    assert health.std_key("flag") not in metrics
    assert metrics[health.null_fraction_key("ordered_at")] == 0.25
    assert metrics[health.min_key("ordered_at")] == pd.Timestamp("2025-01-01 10:00").timestamp()
    assert metrics[health.max_key("ordered_at")] == pd.Timestamp("2025-01-01 18:00").timestamp()


def test_key_order_is_fixed_table_first_then_columns_in_order():
    df = tiny_orders()
    keys = list(health.compute_health(df, key=("order_id",)).keys())
    assert keys[:7] == [
        health.ROW_COUNT,
        health.COLUMN_COUNT,
        health.SCHEMA_HASH,
        health.DUPLICATE_KEY_COUNT,
        health.QUARANTINED_ROW_COUNT,
        health.QUARANTINE_SHARE,
        health.null_fraction_key("order_id"),
    ]
    column_order = [k.split("/", 1)[1] for k in keys[6:]]
    assert column_order == sorted(column_order, key=list(df.columns).index)
    assert keys == list(health.compute_health(df.copy(), key=("order_id",)).keys())


def test_undefined_metrics_are_left_out_and_output_is_json_safe():
    df = pd.DataFrame(
        {
            "empty": pd.array([None, None, None], dtype="Float64"),
            "single": pd.array([2.0, None, None], dtype="Float64"),
            "with_inf": np.array([1.0, np.inf, 3.0]),
            "when": pd.to_datetime([None, None, None]),
        }
    )
    metrics = health.compute_health(df, event_time="when", partition_end=pd.Timestamp("2025-01-02"))
    assert metrics[health.null_fraction_key("empty")] == 1.0
    assert health.mean_key("empty") not in metrics
    assert metrics[health.mean_key("single")] == 2.0
    assert health.std_key("single") not in metrics
    assert metrics[health.mean_key("with_inf")] == 2.0
    assert health.FRESHNESS_LAG_HOURS not in metrics
    json.dumps(metrics, allow_nan=False)
    assert all(isinstance(v, int | float) and math.isfinite(v) for v in metrics.values())


def test_empty_frame_has_row_count_zero_and_no_division_by_zero():
    metrics = health.compute_health(pd.DataFrame({"a": pd.array([], dtype="Int64")}), key=("a",))
    assert metrics[health.ROW_COUNT] == 0
    assert metrics[health.QUARANTINE_SHARE] == 0.0
    assert metrics[health.null_fraction_key("a")] == 0.0
    assert metrics[health.DUPLICATE_KEY_COUNT] == 0


def test_freshness_accepts_a_timezone_aware_partition_end():
    df = tiny_orders()
    end = pd.Timestamp("2025-01-02", tz="Europe/Paris")  # 23:00 UTC on the 1st
    lag = health.freshness_lag_hours(df, "ordered_at", end)
    assert lag == pytest.approx(5.0)


def test_max_columns_limits_per_column_metrics():
    df = tiny_orders()
    metrics = health.compute_health(df, max_columns=1)
    assert health.null_fraction_key("order_id") in metrics
    assert health.null_fraction_key("line_no") not in metrics
    assert metrics[health.COLUMN_COUNT] == 5


def test_schema_hash_depends_on_names_and_dtypes_not_values():
    df = tiny_orders()
    same_schema = df.iloc[:1].copy()
    assert health.schema_hash(df) == health.schema_hash(same_schema)
    assert 0 <= health.schema_hash(df) < 2**31
    assert health.schema_hash(df) != health.schema_hash(df.rename(columns={"flag": "flag2"}))
    assert health.schema_hash(df) != health.schema_hash(df.astype({"line_no": "Float64"}))


def test_schema_hash_is_stable_across_processes():
    code = (
        "import pandas as pd\n"
        "from data_platform.quality.health import schema_hash\n"
        "df = pd.DataFrame({'a': pd.array([1], dtype='Int64'), 'b': pd.array(['x'], dtype='string')})\n"
        "print(schema_hash(df))\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    df = pd.DataFrame({"a": pd.array([1], dtype="Int64"), "b": pd.array(["x"], dtype="string")})
    assert outputs == {str(health.schema_hash(df))}


def test_column_schema_lists_names_and_dtypes():
    assert health.column_schema(tiny_orders())[:3] == [
        ("order_id", "string"),
        ("line_no", "Int64"),
        ("unit_price", "Float64"),
    ]


def test_every_emitted_key_is_a_health_key_and_schema_keys_are_not():
    metrics = health.compute_health(
        tiny_orders(),
        key=("order_id",),
        event_time="ordered_at",
        partition_end=pd.Timestamp("2025-01-02"),
        rejected=0,
        source_rows=4,
        duration_seconds=1.0,
    )
    assert all(health.is_health_key(k) for k in metrics)
    assert health.is_health_key(health.quarantined_reason_key("negative_price"))
    assert not health.is_health_key(health.COLUMN_SCHEMA)
    assert not health.is_health_key(health.TABLE_NAME)
    assert not health.is_health_key("mean/")
    assert not health.is_health_key("something_else")
