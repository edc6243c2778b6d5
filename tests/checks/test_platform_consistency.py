"""The pure replay (bench/platform.py) measures the real checks.

A short window runs through the real daily job in a temporary instance; the replay must record
the same metadata per asset and day (wall-clock durations aside) and reach the same verdict on
every check: passed or failed, the number of flagged metrics and (when it fails) the worst one,
and the assets a failing blocking check stopped. The window is drawn (tests/checks/windows.py) among those that
hold a reviews schema drift after the cold start, so the warehouse's column union (a drifted
column stays in the raw table) and the day after a drift are covered.
"""

from __future__ import annotations

import importlib.util
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest

from data_platform import catalog
from data_platform.bench import platform as platform_bench
from data_platform.checks.anomaly import DEFAULT_CHECK_NAME, plain_metadata
from data_platform.checks.completeness import COMPLETENESS_CHECK
from data_platform.definitions import build_definitions
from data_platform.jobs import DAILY_JOB, DIMENSIONS_JOB
from data_platform.quality.health import DURATION_SECONDS
from data_platform.resources.model_store import ModelStoreResource
from data_platform.resources.source import SourceResource
from data_platform.resources.warehouse import WarehouseResource
from data_platform.sources import synthetic

_spec = importlib.util.spec_from_file_location("checks_windows", Path(__file__).with_name("windows.py"))
windows = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(windows)

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
DAYS = 12
FIRST_END = date(2025, 3, 1)


def _drawn_window() -> tuple[int, date]:
    """The first drawn (seed, end) whose window has a reviews schema drift on a judged day
    that is not the last one."""
    last_end = date.today() - timedelta(days=1)
    for attempt in range(1000):
        [(seed, end)] = windows.draw_windows(1, FIRST_END, last_end, salt=f"consistency:{attempt}")
        days = platform_bench.window_days(end, DAYS)
        for incident in synthetic.incidents(days[0], end, seed=seed):
            if incident.kind == "schema_drift" and days.index(incident.day) >= platform_bench.COLD_START_DAYS:
                return seed, end
    raise AssertionError(f"{windows.reproduce()}: no window with a schema drift in 1000 draws")


def _without_duration(metadata: dict) -> dict:
    return {k: v for k, v in metadata.items() if k != DURATION_SECONDS}


def _summary(verdicts: list[platform_bench.AssetDay]) -> dict[tuple[str, str], tuple]:
    out = {}
    for v in verdicts:
        if v.skipped:
            out[(v.asset, v.day.isoformat())] = ("skipped",)
            continue
        worst = v.verdict.worst_metric() if v.verdict else None
        out[(v.asset, v.day.isoformat())] = _verdict(
            not v.is_anomaly, len(v.flagged_metrics), worst.name if worst else None
        )
    return out


def _verdict(passed: bool, flagged: int, worst: str | None) -> tuple:
    # On a passing verdict the "worst" metric is the largest score within range: often the
    # wall-clock duration, which differs between any two runs.
    return (passed, flagged, None if passed else worst)


def test_the_daily_job_has_the_checks_the_replay_judges():
    defs = build_definitions()
    graph = defs.resolve_job_def(DAILY_JOB).asset_layer.asset_graph
    anomaly = [k for k in graph.asset_check_keys if k.name == DEFAULT_CHECK_NAME]
    assert sorted(k.asset_key.to_user_string() for k in anomaly) == sorted(platform_bench.JUDGED_ASSETS)
    blocking = {k.asset_key.to_user_string() for k in anomaly if graph.get_check_spec(k).blocking}
    assert blocking == set(catalog.BLOCKING_ASSETS)
    for asset in blocking:
        in_run = {c.to_user_string() for c in graph.get(dg.AssetKey(asset)).child_keys}
        assert in_run == set(catalog.BLOCKS_IN_RUN.get(asset, ())), asset
    full = defs.resolve_asset_graph()
    for asset in blocking:
        children = {c.to_user_string() for c in full.get(dg.AssetKey(asset)).child_keys}
        assert children == set(catalog.DOWNSTREAM[asset]), asset


def test_the_checks_of_daily_assets_are_partitioned_like_them():
    defs = build_definitions()
    graph = defs.resolve_job_def(DAILY_JOB).asset_layer.asset_graph
    daily = dg.DailyPartitionsDefinition
    by_check = {k: graph.get_check_spec(k).partitions_def for k in graph.asset_check_keys}
    # Every check in the daily job but the one that looks across partitions has a status per day:
    # the anomaly checks and the rules declared inside the ingestion and cleaning steps alike.
    unpartitioned = sorted({k.name for k, p in by_check.items() if p is None})
    assert unpartitioned == [COMPLETENESS_CHECK]
    assert all(isinstance(p, daily) for k, p in by_check.items() if k.name != COMPLETENESS_CHECK)
    assert {"anomaly", "has_rows", "rows_reconciled", "fresh"} <= {k.name for k in by_check}
    dimensions = defs.resolve_job_def(DIMENSIONS_JOB).asset_layer.asset_graph
    assert all(dimensions.get_check_spec(k).partitions_def is None for k in dimensions.asset_check_keys)


@pytest.mark.slow
def test_replay_records_and_judges_like_the_real_job(monkeypatch, tmp_path, platform_instance):
    monkeypatch.delenv("DATA_PLATFORM_START_DATE", raising=False)
    monkeypatch.delenv("DATA_PLATFORM_EXPECTED_EVENTS", raising=False)
    seed, end = _drawn_window()
    days = platform_bench.window_days(end, DAYS)
    where = f"{windows.reproduce()}: seed {seed}, {days[0]}..{end}"
    defs = build_definitions(
        warehouse=WarehouseResource(url=f"sqlite:///{tmp_path / 'warehouse.db'}"),
        source=SourceResource(seed=seed),
        model_store=ModelStoreResource(root=str(tmp_path / "models")),
    )
    assert defs.resolve_job_def(DIMENSIONS_JOB).execute_in_process(
        instance=platform_instance, run_config=QUIET
    ).success
    daily = defs.resolve_job_def(DAILY_JOB)
    recorded: dict[date, dict[str, dict]] = {}
    real: dict[tuple[str, str], tuple] = {}
    for day in days:
        key = day.isoformat()
        result = daily.execute_in_process(
            instance=platform_instance, partition_key=key, run_config=QUIET, raise_on_error=False
        )
        recorded[day] = {
            e.materialization.asset_key.to_user_string(): plain_metadata(e.materialization.metadata)
            for e in result.get_asset_materialization_events()
            if e.materialization.asset_key.to_user_string() in platform_bench.JUDGED_ASSETS
        }
        for evaluation in result.get_asset_check_evaluations():
            if evaluation.check_name != COMPLETENESS_CHECK:
                assert evaluation.partition == key, (where, evaluation.check_name)
            if evaluation.check_name != DEFAULT_CHECK_NAME:
                continue
            meta = evaluation.metadata
            real[(evaluation.asset_key.to_user_string(), key)] = _verdict(
                evaluation.passed,
                int(meta["flagged_metrics"].value),
                meta["metric"].value if "metric" in meta else None,
            )
        for asset in platform_bench.JUDGED_ASSETS:
            if asset not in recorded[day]:
                real[(asset, key)] = ("skipped",)

    replayed = platform_bench.window_metadata(days, seed=seed)
    for day in days:
        for asset, metadata in recorded[day].items():
            mine = replayed[day][asset]
            assert list(mine) == list(metadata), (where, day, asset)
            assert _without_duration(mine) == _without_duration(metadata), (where, day, asset)

    judged = _summary(platform_bench.judge(replayed))
    mismatched = {k: (real[k], judged.get(k)) for k in real if real[k] != judged.get(k)}
    assert not mismatched, f"{where}: (real, replay) differ: {mismatched}"
    assert set(judged) == set(real), where
    # The recorded metadata (real durations) judged by the replay: the same verdicts again.
    assert _summary(platform_bench.judge(recorded)) == real, where
