"""A daily partition that never arrives: the freshness checks on a clock and the gap check, on
real instances, with the check-failure alerts (log sink) reading their evaluations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from dagster._core.test_utils import freeze_time

from data_platform.checks.completeness import (
    COMPLETENESS_CHECK,
    DEADLINE_ENV,
    FRESHNESS_SENSOR,
    build_completeness_checks,
    build_partition_freshness_checks,
    build_partition_freshness_sensor,
    deadline_cron,
    evaluate_completeness,
)
from data_platform.definitions import build_definitions
from data_platform.jobs import DAILY_JOB
from data_platform.jobs.alerts import build_check_failure_sensor
from data_platform.resources.model_store import ModelStoreResource
from data_platform.resources.source import SourceResource
from data_platform.resources.warehouse import WarehouseResource
from data_platform.sources.schemas import EVENT_ENTITIES

FRESHNESS_CHECK = "freshness_check"  # Dagster's name for the time-partition freshness check
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


@dg.asset(partitions_def=dg.DailyPartitionsDefinition(start_date="2026-10-01"))
def shop_orders_raw() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"dagster/row_count": 10})


class Alerts:
    """The platform's check-failure sensor with the log sink, ticked the way the daemon does."""

    def __init__(self, instance: dg.DagsterInstance, defs: dg.Definitions, capfd) -> None:
        self.instance, self.defs, self.capfd = instance, defs, capfd
        self.sensor = build_check_failure_sensor(sinks=("log",), minimum_interval_seconds=1)
        self.cursor: str | None = None
        self.tick()  # a new sensor starts at the end of the log

    def tick(self) -> str:
        """What the tick logged (the alerts' text)."""
        self.capfd.readouterr()
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor, definitions=self.defs)
        self.cursor = self.sensor(context).cursor
        captured = self.capfd.readouterr()
        return captured.out + captured.err


def test_a_skipped_day_is_named_when_a_later_day_arrives_until_it_is_backfilled(capfd):
    checks = build_completeness_checks([shop_orders_raw.key])
    assert not next(iter(checks[0].check_specs)).blocking
    defs = dg.Definitions(assets=[shop_orders_raw], asset_checks=checks)
    with dg.instance_for_test() as instance:
        alerts = Alerts(instance, defs, capfd)

        def run(day: str) -> dg.AssetCheckEvaluation:
            result = dg.materialize([shop_orders_raw, *checks], instance=instance, partition_key=day)
            [evaluation] = result.get_asset_check_evaluations()
            assert evaluation.check_name == COMPLETENESS_CHECK
            return evaluation

        assert run("2026-10-01").passed and run("2026-10-02").passed
        assert "shop_orders_raw" not in alerts.tick()
        late = run("2026-10-04")  # 2026-10-03 never arrived
        assert not late.passed
        assert late.severity == dg.AssetCheckSeverity.WARN
        assert late.description == "1 day between 2026-10-01 and 2026-10-04 never stored: 2026-10-03"
        assert late.metadata["partition"].value == "2026-10-04"
        assert late.metadata["missing_partitions"].value == 1
        assert late.metadata["missing"].value == ["2026-10-03"]
        # The alert names the judged partition and the missing day.
        logged = alerts.tick()
        assert f"WARN shop_orders_raw [2026-10-04]: {COMPLETENESS_CHECK} failed" in logged
        assert "partition: 2026-10-04" in logged and "never stored: 2026-10-03" in logged
        # The check alone (no partition: the newest stored day) still sees the gap.
        alone = evaluate_completeness(instance, shop_orders_raw.key)
        assert not alone.passed and alone.metadata["partition"].value == "2026-10-04"

        backfilled = run("2026-10-03")
        assert backfilled.passed
        assert backfilled.description == "Every day from 2026-10-01 to 2026-10-03 is stored."
        assert run("2026-10-05").passed
        assert evaluate_completeness(instance, shop_orders_raw.key).passed
        # The backfill is the first passing evaluation: it is the recovery.
        assert f"RECOVERED shop_orders_raw [2026-10-03]: {COMPLETENESS_CHECK} passing again" in alerts.tick()


def test_a_late_newest_day_fails_its_freshness_check_and_reaches_the_alerts(capfd):
    freshness = build_partition_freshness_checks([shop_orders_raw.key], cron=deadline_cron({}))
    sensor = build_partition_freshness_sensor(freshness)
    defs = dg.Definitions(assets=[shop_orders_raw], asset_checks=freshness, sensors=[sensor])
    with dg.instance_for_test() as instance:
        for offset in range(8):  # 2026-10-01 .. 2026-10-08; 2026-10-09 never arrives
            day = (datetime(2026, 10, 1) + timedelta(days=offset)).date().isoformat()
            dg.materialize([shop_orders_raw], instance=instance, partition_key=day)
        alerts = Alerts(instance, defs, capfd)

        def evaluate_at(now: datetime) -> dg.AssetCheckEvaluation:
            # As the daemon would: the sensor asks for a run of the checks, the run evaluates them.
            with freeze_time(now):
                request = sensor(dg.build_sensor_context(instance=instance, definitions=defs))
                assert isinstance(request, dg.RunRequest), request
                [key] = request.asset_check_keys
                assert (key.asset_key, key.name) == (shop_orders_raw.key, FRESHNESS_CHECK)
                result = dg.materialize(
                    [shop_orders_raw, *freshness],
                    selection=dg.AssetSelection.checks(*request.asset_check_keys),
                    instance=instance,
                )
            [evaluation] = result.get_asset_check_evaluations()
            return evaluation

        # Before the default deadline (06:00 UTC) the day before yesterday is the newest expected.
        early = evaluate_at(datetime(2026, 10, 10, 5, 0, tzinfo=UTC))
        assert early.passed, early.description
        assert "2026-10-08" in early.description
        assert "shop_orders_raw" not in alerts.tick()
        # Past the deadline yesterday (2026-10-09) is expected, and it is missing.
        late = evaluate_at(datetime(2026, 10, 10, 7, 0, tzinfo=UTC))
        assert not late.passed
        assert late.severity == dg.AssetCheckSeverity.WARN
        assert "expected partition 2026-10-09 to have arrived" in late.description
        logged = alerts.tick()
        assert f"WARN shop_orders_raw: {FRESHNESS_CHECK} failed" in logged
        assert "expected partition 2026-10-09" in logged


def test_each_raw_event_asset_has_both_detectors_and_the_freshness_sensor(monkeypatch):
    monkeypatch.delenv(DEADLINE_ENV, raising=False)
    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    raw_events = {dg.AssetKey(f"{entity}_raw") for entity in EVENT_ENTITIES}
    freshness = {k for k in graph.asset_check_keys if k.name == FRESHNESS_CHECK}
    assert {k.asset_key for k in freshness} == raw_events
    gap_checks = {k for k in graph.asset_check_keys if k.name == COMPLETENESS_CHECK}
    assert {k.asset_key for k in gap_checks} == raw_events
    for key in freshness:
        params = graph.get_check_spec(key).metadata["dagster/freshness_params"].value
        assert params == {"deadline_cron": "0 6 * * *", "timezone": "UTC"}

    sensor = defs.resolve_sensor_def(FRESHNESS_SENSOR)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    with dg.instance_for_test() as instance:
        request = sensor(dg.build_sensor_context(instance=instance, definitions=defs))
    assert isinstance(request, dg.RunRequest)
    assert set(request.asset_check_keys) == freshness  # never evaluated: all of them

    # The gap check runs with each day; the freshness checks only when their sensor asks.
    daily = defs.resolve_job_def(DAILY_JOB).asset_layer.asset_graph.asset_check_keys
    assert gap_checks <= daily
    for job in defs.jobs:
        in_job = defs.resolve_job_def(job.name).asset_layer.asset_graph.asset_check_keys
        assert not freshness & set(in_job), job.name


def test_the_deadline_comes_from_the_environment():
    assert deadline_cron({}) == "0 6 * * *"
    assert deadline_cron({DEADLINE_ENV: "7.5"}) == "30 7 * * *"
    assert deadline_cron({DEADLINE_ENV: "0"}) == "0 0 * * *"
    for wrong in ("24", "-1", "six", "nan", "inf"):
        with pytest.raises(ValueError, match=DEADLINE_ENV):
            deadline_cron({DEADLINE_ENV: wrong})


@pytest.mark.slow
def test_the_daily_job_names_a_skipped_day_on_every_raw_event_asset(tmp_path, monkeypatch):
    monkeypatch.delenv("DATA_PLATFORM_START_DATE", raising=False)
    defs = build_definitions(
        warehouse=WarehouseResource(url=f"sqlite:///{tmp_path / 'warehouse.db'}"),
        source=SourceResource(synthetic_incidents=False),
        model_store=ModelStoreResource(root=str(tmp_path / "models")),
    )
    daily = defs.resolve_job_def(DAILY_JOB)
    raw_events = {f"{entity}_raw" for entity in EVENT_ENTITIES}

    def gap_checks(instance: dg.DagsterInstance, day: str) -> dict[str, dg.AssetCheckEvaluation]:
        result = daily.execute_in_process(
            instance=instance, partition_key=day, run_config=QUIET, raise_on_error=False
        )
        return {
            e.asset_key.to_user_string(): e
            for e in result.get_asset_check_evaluations()
            if e.check_name == COMPLETENESS_CHECK
        }

    with dg.instance_for_test() as instance:
        first = gap_checks(instance, "2026-11-01")
        assert set(first) == raw_events and all(e.passed for e in first.values())
        skipped = gap_checks(instance, "2026-11-03")
        for asset, evaluation in skipped.items():
            assert not evaluation.passed, asset
            assert evaluation.metadata["partition"].value == "2026-11-03"
            assert evaluation.description.endswith("never stored: 2026-11-02")
        backfill = gap_checks(instance, "2026-11-02")
        assert set(backfill) == raw_events and all(e.passed for e in backfill.values())
