"""Jobs and schedules of the definitions: targets, crons, and run requests that validate."""

from datetime import UTC, datetime

import dagster as dg
import pytest

from data_platform import catalog
from data_platform.definitions import defs
from data_platform.jobs import (
    DAILY_JOB,
    DAILY_SCHEDULE,
    DOWNSTREAM_JOB,
    FEATURES_JOB,
    FEATURES_SCHEDULE,
    FULL_REFRESH_JOB,
    TRAINING_JOB,
    TRAINING_SCHEDULE,
    executor_from_env,
)

REPO = defs.get_repository_def()


def asset_keys(job_name: str) -> set[str]:
    job = defs.resolve_job_def(job_name)
    return {key.to_user_string() for key in job.asset_layer.executable_asset_keys}


def test_each_job_selects_its_assets():
    # The exact asset set of every job, from the catalog: tests/test_catalog.py.
    all_assets = {key.to_user_string() for key in REPO.asset_graph.get_all_asset_keys()}
    assert asset_keys(TRAINING_JOB) == set(catalog.MODEL_OUTPUTS) | set(catalog.SERVING_ASSETS)
    # The feature views (offline history and online materialization) follow their feature tables.
    assert set(catalog.FEATURE_STORE_ASSETS) < asset_keys(FEATURES_JOB)
    # The demo's last step still builds every feature and model.
    assert asset_keys(DOWNSTREAM_JOB) == asset_keys(FEATURES_JOB) | asset_keys(TRAINING_JOB)
    assert asset_keys(FULL_REFRESH_JOB) == all_assets
    assert "orders_clean" in asset_keys(DAILY_JOB) and "recommendations" not in asset_keys(DAILY_JOB)
    assert defs.resolve_job_def(DAILY_JOB).partitions_def is not None
    assert defs.resolve_job_def(FULL_REFRESH_JOB).partitions_def is not None
    assert defs.resolve_job_def(TRAINING_JOB).partitions_def is None


@pytest.mark.parametrize(
    ("name", "cron", "job"),
    [
        (DAILY_SCHEDULE, "0 2 * * *", DAILY_JOB),
        (FEATURES_SCHEDULE, "0 4 * * *", FEATURES_JOB),
        (TRAINING_SCHEDULE, "0 5 * * 0", TRAINING_JOB),
    ],
)
def test_schedules_have_their_cron_and_target(name, cron, job):
    schedule = REPO.get_schedule_def(name)
    assert schedule.cron_schedule == cron
    assert schedule.job_name == job
    # Stopped until someone turns it on in the UI (or with `dagster schedule start`).
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED


def evaluate(name: str, when: datetime) -> dg.RunRequest:
    schedule = REPO.get_schedule_def(name)
    with dg.build_schedule_context(scheduled_execution_time=when) as context:
        result = schedule.evaluate_tick(context)
    assert result.skip_message is None, result.skip_message
    [request] = result.run_requests
    job = defs.resolve_job_def(schedule.job_name)
    assert dg.validate_run_config(job, request.run_config) is not None
    return request


def test_daily_schedule_requests_yesterdays_partition():
    request = evaluate(DAILY_SCHEDULE, datetime(2026, 11, 10, 2, tzinfo=UTC))
    assert request.partition_key == "2026-11-09"


def test_training_schedule_requests_an_unpartitioned_run_on_sunday():
    sunday = datetime(2026, 11, 15, 5, tzinfo=UTC)
    assert sunday.weekday() == 6
    request = evaluate(TRAINING_SCHEDULE, sunday)
    assert request.partition_key is None
    assert evaluate(FEATURES_SCHEDULE, sunday.replace(hour=4)).partition_key is None


def test_executor_comes_from_the_environment():
    assert executor_from_env({}) is None
    assert executor_from_env({"DATA_PLATFORM_EXECUTOR": "in_process"}) is dg.in_process_executor
    celery = executor_from_env({
        "DATA_PLATFORM_EXECUTOR": "celery",
        "DATA_PLATFORM_CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
    })
    assert celery.name == "celery_executor"
    with pytest.raises(ValueError, match="DATA_PLATFORM_CELERY_BROKER_URL"):
        executor_from_env({"DATA_PLATFORM_EXECUTOR": "celery"})
    with pytest.raises(ValueError, match="expected one of"):
        executor_from_env({"DATA_PLATFORM_EXECUTOR": "spark"})
