"""Family-wise false-alert rate: 50 metrics on one clean asset alert on about 1 run in 100 or less."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_platform.quality.anomaly import detect

N_METRICS = 50


def clean_asset(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Clean history of mixed metric kinds: Gaussian levels, fractions, small counts, a trend."""
    columns = {}
    for i in range(N_METRICS):
        kind = i % 5
        if kind == 0:
            columns[f"mean/c{i}"] = rng.normal(100, 5, n)
        elif kind == 1:
            columns[f"null_fraction/c{i}"] = rng.binomial(2000, 0.05, n) / 2000
        elif kind == 2:
            columns[f"duplicate_count/c{i}"] = rng.poisson(4, n).astype(float)
        elif kind == 3:
            columns[f"distinct_count/c{i}"] = np.round(rng.normal(5000, 80, n))
        else:
            columns[f"rmse/c{i}"] = 1.0 + 0.002 * np.arange(n) + rng.normal(0, 0.02, n)
    frame = pd.DataFrame(columns)
    frame.index = pd.date_range("2025-01-06", periods=n, freq="D")
    return frame


@pytest.mark.slow
def test_family_wise_false_alert_rate_on_clean_runs():
    rng = np.random.default_rng(42)
    runs, alerts = 0, 0
    # 100 independent assets x 5 runs each: history lengths from cold-start-ish to long.
    for asset in range(100):
        n = (10, 20, 40, 60, 120)[asset % 5] + 1
        data = clean_asset(rng, n + 4)
        for run in range(5):
            day = n - 1 + run
            verdict = detect(data.iloc[:day], data.iloc[day])
            runs += 1
            alerts += verdict.is_anomaly
    assert runs == 500
    assert alerts / runs <= 0.015, f"{alerts} of {runs} clean runs alerted"
