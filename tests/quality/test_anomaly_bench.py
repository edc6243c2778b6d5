"""The anomaly benchmark runs, scores honestly, and the ensemble beats the baselines."""

from __future__ import annotations

import numpy as np

from data_platform.quality.anomaly_bench import (
    Incident,
    elementary_flags,
    generate_asset,
    render_markdown,
    run_benchmark,
    score_flags,
)


def test_score_flags_counts_runs_of_false_alerts_once():
    flags = np.zeros(40, dtype=bool)
    flags[[25, 26, 27]] = True  # one false alert spanning three runs
    flags[30] = True  # catches the incident
    flags[35] = True  # a second false alert
    score = score_flags(flags, [Incident("spike", "row_count", 30, 30), Incident("drop", "row_count", 33, 33)])
    assert score["caught"] == 1 and score["incidents"] == 2
    assert score["false_alerts"] == 2 and score["flagged_clean_runs"] == 4
    assert score["clean_runs"] == 40 - 21 - 2


def test_generated_asset_has_incidents_and_valid_fractions():
    asset = generate_asset(np.random.default_rng(1), 150)
    assert asset.incidents and all(i.start >= 35 for i in asset.incidents)
    fractions = asset.data["null_fraction/email"].dropna()
    assert fractions.between(0, 1).all()


def test_elementary_baseline_cannot_fire_with_its_own_point_in_the_window():
    values = np.full(30, 100.0) + np.random.default_rng(0).normal(0, 1, 30)
    values[20] = 10_000.0
    import pandas as pd

    flags = elementary_flags(pd.DataFrame({"m": values}))
    # |z| <= 13/sqrt(14) = 3.47 at best; the spike fires, but the next points stay quiet.
    assert flags[20]
    assert not flags[21:].any()


def test_quick_benchmark_ensemble_beats_baselines():
    results = run_benchmark(seed=0, quick=True)
    methods = results["methods"]
    ensemble = methods["ensemble (default detect)"]
    assert ensemble["recall"] >= 0.9
    for name, result in methods.items():
        if name.startswith("baseline"):
            assert ensemble["f1"] >= result["f1"], name
    table = render_markdown(results)
    assert "| ensemble (default detect) |" in table


def test_correlation_break_moves_the_ratio_far_and_each_metric_little():
    from data_platform.quality.anomaly_bench import INCIDENT_KINDS, JOINT_KINDS

    assert JOINT_KINDS[: len(INCIDENT_KINDS)] == INCIDENT_KINDS
    rng = np.random.default_rng(0)
    assets = [generate_asset(rng, 150, JOINT_KINDS) for _ in range(10)]
    breaks = [(a, i) for a in assets for i in a.incidents if i.kind == "correlation_break"]
    assert breaks
    for asset, incident in breaks:
        data = asset.data.iloc[: incident.start + 1]
        ratio = data["distinct_count/customer_id"] / data["row_count"]
        past = ratio.iloc[-31:-1]
        spread = 1.4826 * (past - past.median()).abs().median()
        # Far off the usual ratio (at least 4 of its own sigmas)...
        assert abs(ratio.iloc[-1] - past.median()) > 4 * spread
        # ...while the distinct count moved by at most 3.5 of its own noise sigmas plus the
        # row count's own deviation.
        distinct = data["distinct_count/customer_id"]
        assert abs(distinct.iloc[-1] - distinct.iloc[-31:-1].median()) < 8 * distinct.iloc[-31:-1].std()
