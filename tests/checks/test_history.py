"""Pure helpers behind the anomaly checks: history frames, the expected-events calendar, plots."""

from __future__ import annotations

import struct
from datetime import date

import pandas as pd
import pytest

from data_platform.quality.history import (
    ExpectedEvents,
    build_history,
    coerce_expected_events,
    expected_empty_reason,
    expected_events_from_env,
    load_expected_events,
    numeric_metrics,
    select_metric_keys,
)
from data_platform.quality.plot import plot_metric_png, png_data_uri


def test_latest_record_of_a_partition_wins_and_order_follows_partition_keys():
    records = [
        ("2024-01-02", {"dagster/row_count": 20}),
        ("2024-01-01", {"dagster/row_count": 10}),
        ("2024-01-03", {"dagster/row_count": 30}),
        ("2024-01-02", {"dagster/row_count": 21}),  # re-run replaces the first 01-02
    ]
    history = build_history(records, before="2024-01-03")
    assert list(history.index) == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-02")]
    assert history["dagster/row_count"].tolist() == [10.0, 21.0]


def test_lookback_keeps_only_the_most_recent_points():
    records = [(f"2024-01-{d:02d}", {"m": float(d)}) for d in range(1, 29)]
    history = build_history(records, before="2024-01-28", lookback=5)
    assert history["m"].tolist() == [22.0, 23.0, 24.0, 25.0, 26.0, 27.0][-5:]


def test_explicit_order_is_used_for_non_date_keys():
    records = [("b", {"m": 2}), ("a", {"m": 1}), ("c", {"m": 3})]
    history = build_history(records, before="a", order=["c", "b", "a"])
    assert history["m"].tolist() == [3.0, 2.0]
    with pytest.raises(ValueError, match="not in the given partition order"):
        build_history([("z", {"m": 1})], order=["a"])


def test_metric_selection_skips_dagster_keys_flags_and_text():
    metadata = {
        "dagster/row_count": 5,
        "dagster/duration_ms": 12.0,
        "mean/price": 3.5,
        "flag": True,
        "note": "text",
        "bad": float("nan"),
    }
    assert numeric_metrics(metadata) == {"dagster/row_count": 5.0, "mean/price": 3.5}
    assert select_metric_keys(metadata, ["mean/*", "dagster/duration_ms"]) == [
        "dagster/duration_ms",
        "mean/price",
    ]


def test_expected_events_match_partition_keys_and_days(tmp_path):
    events = coerce_expected_events(
        [date(2024, 12, 25), "2024-11-29", {"key": "release-7", "assets": ["orders"]}]
    )
    assert events.match("orders", "2024-12-25") is not None
    assert events.match("orders", "2024-12-25-13:00") is not None  # hourly partition of that day
    assert events.match("orders", "release-7") is not None
    assert events.match("customers", "release-7") is None
    assert events.match("orders", "2024-12-24") is None


def test_expected_events_load_from_yaml_csv_and_env(tmp_path):
    yaml_file = tmp_path / "events.yaml"
    yaml_file.write_text("- date: 2024-12-25\n  name: Christmas\n- 2025-01-01\n")
    csv_file = tmp_path / "events.csv"
    csv_file.write_text("date,name,assets\n2024-11-29,Black Friday,orders;order_items\n")
    from_yaml = load_expected_events(yaml_file)
    assert from_yaml.match("x", "2024-12-25").name == "Christmas"
    assert len(from_yaml) == 2
    from_csv = load_expected_events(csv_file)
    assert from_csv.match("order_items", "2024-11-29") is not None
    assert from_csv.match("customers", "2024-11-29") is None
    env = expected_events_from_env({"DATA_PLATFORM_EXPECTED_EVENTS": str(csv_file)})
    assert len(env) == 1
    assert len(expected_events_from_env({})) == 0
    assert isinstance(coerce_expected_events(str(yaml_file)), ExpectedEvents)


def test_expected_events_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_expected_events(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.csv"
    bad.write_text("day,name\n2024-01-01,x\n")
    with pytest.raises(ValueError, match="bad.csv"):
        load_expected_events(bad)


def test_plot_is_a_small_png_data_uri():
    png = plot_metric_png(
        [100.0 + (i % 7) for i in range(180)],
        observed=400.0,
        expected=103.0,
        lower=95.0,
        upper=111.0,
        flagged=True,
        title="dagster/row_count",
        excluded=[10, 20],
    )
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    # Legible in the check panel and in e-mails, yet small enough to embed in every evaluation.
    assert 640 <= width <= 800 and 240 <= height <= 300
    # A 64-colour palette: 180 points with a band and markers stay well under 60 KB.
    assert len(png) < 25_000
    assert png_data_uri(png).startswith("data:image/png;base64,iVBOR")


def test_plot_handles_empty_history_and_missing_band():
    png = plot_metric_png([], observed=None)
    assert png[:4] == b"\x89PNG"


def test_a_weekday_empty_on_each_of_the_last_three_weeks_is_a_closed_day():
    from datetime import timedelta

    first = date(2026, 11, 2)  # a Monday
    counts = {first + timedelta(days=i): 0 if i % 7 == 5 else 120 for i in range(27)}
    reason = expected_empty_reason("2026-11-28", counts)  # the fourth Saturday
    assert reason is not None and "last 3 Saturdays (2026-11-07, 2026-11-14, 2026-11-21)" in reason
    assert expected_empty_reason("2026-11-27", counts) is None  # a Friday with no rows
    # A missing week is no evidence: two empty Saturdays out of three are not a pattern.
    del counts[date(2026, 11, 14)]
    assert expected_empty_reason("2026-11-28", counts) is None
    assert expected_empty_reason("2026-11-28", counts, weeks=1) is not None


def test_calendar_declares_recurring_weekdays(tmp_path):
    path = tmp_path / "events.yaml"
    path.write_text("- every Saturday\n- weekday: sunday\n  name: closed\n  assets: [orders_raw]\n")
    events = load_expected_events(path)
    assert events.match("any", "2026-11-28").key == "every Saturday"
    assert events.match("orders_raw", "2026-11-29").name == "closed"
    assert events.match("ratings_raw", "2026-11-29") is None
    assert events.match("any", "2026-11-27") is None
    assert expected_empty_reason("2026-11-29", {}, asset="orders_raw", events=events) == "expected event closed"
    with pytest.raises(ValueError, match="every <weekday>"):
        coerce_expected_events(["every satday"])
