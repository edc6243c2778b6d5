"""`bench checks`: one row per configuration, over the history the check really reads."""

from __future__ import annotations

from data_platform.bench.checks import run_check_benchmark


def test_benchmark_reports_one_row_per_configuration():
    rows = run_check_benchmark(history_lengths=(3, 12), n_metrics=(2,), repeats=1)
    assert [(r["history"], r["metrics"]) for r in rows] == [(3, 2), (12, 2)]
    assert rows[1]["history_points"] == 11
    assert all(r["median_s"] > 0 for r in rows)
