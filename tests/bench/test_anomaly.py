"""The anomaly benchmark: generators, the split runner, NAB loading and the scoring are honest."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest

from data_platform.bench import anomaly_eval, families, nab
from data_platform.bench.anomaly import (
    Incident,
    elementary_flags,
    generate_asset,
    one_sigma_flags,
    render_markdown,
    run_benchmark,
    score_flags,
    three_sigma_flags,
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
    from data_platform.bench.anomaly import INCIDENT_KINDS, JOINT_KINDS

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


SINGLE_METRIC = [name for name, spec in families.FAMILIES.items() if spec.generate is not None and not spec.joint]
JOINT = [name for name, spec in families.FAMILIES.items() if spec.joint]


@pytest.mark.parametrize("family", SINGLE_METRIC)
def test_family_cases_are_deterministic_per_seed(family):
    first = families.generate_case(family, 1, 5)
    again = families.generate_case(family, 1, 5)
    other_seed = families.generate_case(family, 2, 5)
    pd.testing.assert_frame_equal(first.data, again.data)
    assert first.incidents == again.incidents
    assert not first.data.iloc[:, 0].equals(other_seed.data.iloc[:, 0])
    # One metric, named as the platform names it where the family is one of its own metrics.
    named = {"discrete_extremes": ({"min/rating"}, {"max/unit_price"})}.get(family, ({"value"},))
    assert set(first.data.columns) in named
    assert isinstance(first.data.index, pd.DatetimeIndex)
    step = pd.Timedelta(hours=1) if families.FAMILIES[family].hourly else pd.Timedelta(days=1)
    assert (first.data.index[1:] - first.data.index[:-1] == step).all()


@pytest.mark.parametrize("family", JOINT)
def test_joint_families_are_deterministic_and_their_incidents_name_metrics_of_the_case(family):
    first = families.generate_case(family, 1, 5)
    again = families.generate_case(family, 1, 5)
    clean = families.generate_case(family, 1, 5, inject=False)
    pd.testing.assert_frame_equal(first.data, again.data)
    assert first.incidents == again.incidents and first.incidents and not clean.incidents
    assert first.data.shape[1] >= 4 and not first.data.isna().any().any()
    for incident in first.incidents:
        assert set(incident.metric.split(",")) <= set(first.data.columns)
    # The incidents are the only difference from the clean variant.
    changed = (first.data != clean.data).any(axis=1).to_numpy().nonzero()[0]
    inside = {day for i in first.incidents for day in range(i.start, i.end + 1)}
    assert set(changed) <= inside and changed.size > 0


def test_platform_cases_are_the_dev_generator_in_run_benchmark_order():
    cases = families.platform_cases(0, 2, 60)
    rng = np.random.default_rng(0)
    expected = [generate_asset(rng, 60) for _ in range(2)]
    for case, asset in zip(cases, expected, strict=True):
        pd.testing.assert_frame_equal(case.data, asset.data)
        assert case.incidents == asset.incidents


def test_dev_and_eval_seeds_are_disjoint():
    assert anomaly_eval.DEV_SEED not in anomaly_eval.EVAL_SEEDS
    tasks = anomaly_eval.plan("all", (1, 2), quick=True)
    assert {t.seed for t in tasks if t.section == "dev"} == {anomaly_eval.DEV_SEED}
    assert {t.seed for t in tasks if t.section == "eval"} == {1}  # quick: the first eval seed
    # The dev split: the platform generator and the joint families (their thresholds are chosen there).
    joint = {name for name, spec in families.FAMILIES.items() if spec.joint}
    assert {t.group for t in tasks if t.section == "dev"} == {"platform_metrics", *joint}
    with pytest.raises(ValueError, match="development seed"):
        anomaly_eval.plan("eval", (0, 1))


def test_cli_refuses_the_dev_seed_and_a_folder_without_nab(capsys, tmp_path):
    from data_platform.cli import main

    assert main(["bench", "anomaly", "--split", "eval", "--seeds", "0,1"]) == 2
    assert "development seed 0" in capsys.readouterr().err
    assert main(["bench", "anomaly", "--seeds", "1", "--nab-dir", str(tmp_path)]) == 2
    assert "combined_windows.json" in capsys.readouterr().err


@pytest.mark.parametrize("family", SINGLE_METRIC)
def test_incidents_are_injected_exactly_where_the_family_says(family):
    seen_incidents = 0
    for index in range(6):
        hit = families.generate_case(family, 3, index, inject=True)
        clean = families.generate_case(family, 3, index, inject=False)
        assert not clean.incidents
        differs = hit.data.iloc[:, 0].to_numpy() != clean.data.iloc[:, 0].to_numpy()
        if not hit.incidents:
            assert not differs.any()
            continue
        seen_incidents += len(hit.incidents)
        assert all(i.start >= hit.start for i in hit.incidents)
        assert not differs[: hit.incidents[0].start].any()
        assert differs[hit.incidents[0].start]
        if all(i.adapt_until is None for i in hit.incidents):
            assert all(differs[i.start] for i in hit.incidents)
            windows = np.zeros(differs.size, dtype=bool)
            for i in hit.incidents:
                windows[i.start : i.end + 1] = True
            np.testing.assert_array_equal(differs, windows)
        else:
            # A change that stays differs from the clean series to the end; every incident
            # (later ones relative to the new level) starts with a change.
            values = hit.data.iloc[:, 0].to_numpy()
            assert differs[-1]
            assert all(values[i.start] != values[i.start - 1] for i in hit.incidents)
            assert all(i.adapt_until == i.start + families.ADAPTATION
                       for i in hit.incidents if i.adapt_until is not None)
    assert seen_incidents >= 6


def test_family_shapes_match_their_descriptions():
    hourly = families.generate_case("hourly_cycles", 1, 0)
    assert len(hourly.data) >= 5 * 168 and hourly.start == 168
    levels = [families.generate_case("level_changes", 1, i, inject=True) for i in range(4)]
    assert all(len(c.incidents) == 1 and c.incidents[0].end == c.incidents[0].start + 1 for c in levels)
    for i in range(4):
        constant = families.generate_case("near_constant_counts", 1, i, inject=False)
        assert constant.data["value"].nunique() == 1
        counts = families.generate_case("poisson_counts", 1, i, inject=False).data["value"]
        assert (counts >= 0).all() and (counts == counts.round()).all() and counts.mean() < 8
        shares = families.generate_case("fractions", 1, i).data["value"]
        assert shares.between(0, 1).all()
    for i in range(6):
        extremes = families.generate_case("discrete_extremes", 1, i, inject=False).data.iloc[:, 0]
        distinct = extremes.rolling(14).apply(lambda w: len(set(w))).dropna()
        # Ordinary days take 2-4 distinct values: most two-week windows show 2 to 4 of them.
        assert ((distinct >= 2) & (distinct <= 4)).mean() >= 0.7, i


def test_score_flags_adaptation_window_and_probation():
    flags = np.zeros(100, dtype=bool)
    flags[[10, 51, 53, 54, 55, 58, 59, 70, 71, 72]] = True
    incidents = [
        Incident("level_change", "value", 50, 51, adapt_until=57),  # caught at 51; 53-55 adapt
        Incident("spike", "value", 5, 8),  # over before scoring starts: not counted
        Incident("spike", "value", 71, 71),  # splits the run 70-72 into two false alerts
        Incident("spike", "value", 90, 91),  # missed
    ]
    score = score_flags(flags, incidents, start=21)
    assert score["incidents"] == 3 and score["caught"] == 2
    # 58-59 is one false alert after adaptation, 70 and 72 two more; 10 is in probation.
    assert score["false_alerts"] == 3 and score["flagged_clean_runs"] == 4
    assert score["clean_runs"] == 100 - 21 - 8 - 1 - 2
    summary = anomaly_eval.summarise(score)
    assert summary["precision"] == pytest.approx(2 / 5) and summary["recall"] == pytest.approx(2 / 3)
    assert summary["f1"] == pytest.approx(2 * 0.4 * (2 / 3) / (0.4 + 2 / 3))
    assert summary["false_alerts_per_1000"] == pytest.approx(1000 * 3 / 68)


def test_score_flags_needs_a_judged_flag_to_catch_an_incident_straddling_probation():
    incident = Incident("nab_window", "value", 18, 24)
    early = np.zeros(40, dtype=bool)
    early[19] = True
    late = early.copy()
    late[23] = True
    assert score_flags(early, [incident], start=21)["caught"] == 0
    assert score_flags(late, [incident], start=21)["caught"] == 1


def _write_nab(root, files: dict[str, pd.Series], windows: dict[str, list[list[str]]]):
    for name, values in files.items():
        path = root / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame({"timestamp": values.index.strftime("%Y-%m-%d %H:%M:%S"), "value": values.to_numpy()})
        frame.to_csv(path, index=False)
    (root / "combined_windows.json").write_text(json.dumps(windows))


def test_nab_loader_aggregates_to_hours_and_days_and_keeps_windows(tmp_path):
    times = pd.date_range("2020-01-01", periods=5 * 288, freq="5min")
    values = pd.Series(np.arange(times.size, dtype=float), index=times)
    values = values.drop(values.index[(values.index >= "2020-01-02 03:00") & (values.index < "2020-01-02 04:00")])
    flat = pd.Series(1.0, index=times[:288])
    _write_nab(tmp_path, {"catA/s1.csv": values, "catB/flat.csv": flat}, {
        "catA/s1.csv": [["2020-01-03 10:07:00.000000", "2020-01-03 12:02:00.000000"],
                        ["2020-01-03 20:00:00.000000", "2020-01-03 21:00:00.000000"]],
        "catB/flat.csv": [],
    })
    series = nab.load_nab(tmp_path)
    assert [(s.category, s.file) for s in series] == [("catA", "s1.csv"), ("catB", "flat.csv")]
    hourly = nab.aggregate(series[0], "hourly")
    assert len(hourly.data) == 5 * 24 - 1  # the empty hour is no point
    assert hourly.data["value"].iloc[0] == pytest.approx(np.arange(12).mean())
    first = hourly.data.index.get_loc(pd.Timestamp("2020-01-03 10:00"))
    assert [(i.start, i.end) for i in hourly.incidents] == [(first, first + 2), (first + 10, first + 11)]
    assert hourly.start == max(21, int(np.ceil(0.15 * len(hourly.data))))
    daily = nab.aggregate(series[0], "daily")
    assert len(daily.data) == 5
    # Both windows fall on day 3: one incident.
    assert [(i.start, i.end) for i in daily.incidents] == [(2, 2)]
    assert daily.start == 21
    # Daily points never get past probation here; the flat series has no hourly windows.
    assert nab.nab_cases(tmp_path, "daily") == []
    assert [c.name for c in nab.nab_cases(tmp_path, "hourly")] == ["catA/s1.csv", "catB/flat.csv"]


def test_nab_folder_from_the_environment_and_clear_errors(tmp_path, monkeypatch):
    _write_nab(tmp_path / "nab_dev", {"c/x.csv": pd.Series([1.0], index=pd.date_range("2020-01-01", periods=1))},
               {"c/x.csv": [], "c/missing.csv": []})
    monkeypatch.setenv(nab.REAL_DATA_ENV, str(tmp_path))
    assert nab.default_nab_dir() == tmp_path / "nab_dev"
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        nab.load_nab(tmp_path / "nab_dev")
    with pytest.raises(FileNotFoundError, match="combined_windows.json"):
        nab.load_nab(tmp_path)


@pytest.mark.parametrize("baseline", [elementary_flags, three_sigma_flags, one_sigma_flags])
def test_baselines_flag_an_obvious_spike(baseline):
    values = 100 + np.random.default_rng(4).normal(0, 2, 40)
    values[30] = 200.0
    flags = baseline(pd.DataFrame({"value": values}))
    assert flags[30]
    if baseline is not one_sigma_flags:  # the 14-point windows need 14 points
        assert not flags[:13].any()


def test_run_task_scores_every_method_on_a_small_family_task():
    task = anomaly_eval.Task("eval", "family", 1, "poisson_counts", (0,), 60)
    (row,) = anomaly_eval.run_task(task)
    assert set(row["scores"]) == set(anomaly_eval.METHODS)
    case = families.generate_case("poisson_counts", 1, 0, points=60)
    for score in row["scores"].values():
        assert score["incidents"] == len(case.incidents) >= 1
        assert score["clean_runs"] == 60 - 21 - sum(i.end - i.start + 1 for i in case.incidents)


def test_report_pools_eval_families_and_names_where_we_are_not_ahead():
    def row(group, seed, ours, elementary):
        blank = dict(incidents=ours["incidents"], caught=0, false_alerts=0, clean_runs=100, flagged_clean_runs=0)
        scores = {m: dict(blank) for m in anomaly_eval.METHODS}
        scores[anomaly_eval.OURS].update(ours)
        scores["baseline: Elementary-style (14 incl. current, |z|>3)"].update(elementary)
        return {"section": "eval", "group": group, "seed": seed, "case": group, "points": 120,
                "scores": scores, "seconds": dict.fromkeys(anomaly_eval.METHODS, 0.0)}

    rows = [row("fractions", 1, {"incidents": 4, "caught": 4}, {"incidents": 4, "caught": 2}),
            row("column_means", 2, {"incidents": 4, "caught": 2}, {"incidents": 4, "caught": 3})]
    summary = anomaly_eval.aggregate(rows)
    pooled = summary["eval"][anomaly_eval.SYNTHETIC_POOLED][anomaly_eval.OURS]
    assert (pooled["incidents"], pooled["caught"], pooled["clean_runs"]) == (8, 6, 200)
    assert set(summary["eval by seed"]) == {"seed 1", "seed 2"}
    behind = anomaly_eval.not_ahead(summary)
    assert any("column means" in line and "Elementary" in line for line in behind)
    assert not any("fractions" in line and "Elementary" in line for line in behind)
    results = {"split": "eval", "eval_seeds": [1, 2], "quick": False, "nab_dir": None, "jobs": 1,
               "seconds": 1.0, "cpu_count": 2, "clean_every": 4, "dev_seed": 0, "summary": summary,
               "size": asdict(anomaly_eval.FULL)}
    text = anomaly_eval.render_markdown(results)
    assert "#### Headline: synthetic families together, evaluation (seeds 1, 2" in text
    assert "`data-platform bench anomaly --split eval --seeds 1,2`" in text
    assert "Real series (NAB) skipped" in text
