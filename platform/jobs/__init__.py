"""Jobs and schedules: the daily partitioned job, dimensions, features, training, full refresh.

Jobs select by the groups of `data_platform.catalog`, the daily job by the catalog's daily
assets: an asset joins the jobs of its group.

Every job runs on the executor chosen by `DATA_PLATFORM_EXECUTOR` (see `executor_from_env`):
Dagster's default (one process per step on the run's machine) or dagster-celery workers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import dagster as dg

from data_platform import catalog

DAILY_JOB = "daily_job"
DIMENSIONS_JOB = "dimensions_job"
FEATURES_JOB = "features_job"
TRAINING_JOB = "training_job"
DOWNSTREAM_JOB = "downstream_job"
FULL_REFRESH_JOB = "full_refresh_job"

DAILY_SCHEDULE = "daily_schedule"
FEATURES_SCHEDULE = "features_schedule"
TRAINING_SCHEDULE = "training_schedule"
# Sundays at 05:00, after that night's daily partition (02:00) and features (04:00).
TRAINING_CRON = "0 5 * * 0"
FEATURES_CRON = "0 4 * * *"

EXECUTOR_ENV = "DATA_PLATFORM_EXECUTOR"
CELERY_BROKER_ENV = "DATA_PLATFORM_CELERY_BROKER_URL"
CELERY_BACKEND_ENV = "DATA_PLATFORM_CELERY_BACKEND_URL"


def executor_from_env(environ: dict[str, str] | None = None) -> dg.ExecutorDefinition | None:
    """The jobs' executor: None (Dagster's default) unless `DATA_PLATFORM_EXECUTOR=celery`.

    With `celery`, each step is sent to the broker at `DATA_PLATFORM_CELERY_BROKER_URL` and run
    by a `dagster-celery` worker; results come back over `DATA_PLATFORM_CELERY_BACKEND_URL`
    (default `rpc://`, i.e. through the broker). The URLs are bound as environment references,
    so no password reaches the run config or the UI. Workers and the run share the Dagster
    instance (PostgreSQL) and the warehouse: both must be reachable from every worker.
    """
    environ = dict(os.environ if environ is None else environ)
    choice = environ.get(EXECUTOR_ENV, "").strip().lower()
    if choice in ("", "default", "multiprocess"):
        return None
    if choice == "in_process":
        return dg.in_process_executor
    if choice != "celery":
        raise ValueError(f"{EXECUTOR_ENV}={choice!r}: expected one of default, in_process, celery")
    if not environ.get(CELERY_BROKER_ENV):
        raise ValueError(f"{EXECUTOR_ENV}=celery needs {CELERY_BROKER_ENV} (e.g. amqp://user:password@host:5672//)")
    try:
        from dagster_celery import celery_executor
    except ImportError as error:  # pragma: no cover - depends on the installed extras
        raise ValueError(f"{EXECUTOR_ENV}=celery needs the celery extra: pip install 'data-platform[celery]'") from error
    config: dict[str, object] = {"broker": {"env": CELERY_BROKER_ENV}}
    if environ.get(CELERY_BACKEND_ENV):
        config["backend"] = {"env": CELERY_BACKEND_ENV}
    return celery_executor.configured(config, name="celery_executor")


def build_jobs(
    *, sensor_checks: Sequence[dg.AssetChecksDefinition] = ()
) -> list[dg.UnresolvedAssetJobDefinition]:
    """The jobs; `sensor_checks` run only when their sensor launches them, never in a job: a
    freshness check judges the clock, and in a run of an older day it would fail on the days
    the run has not reached yet."""
    executor = executor_from_env()
    daily = dg.AssetSelection.assets(*catalog.DAILY_ASSETS)
    # The daily features are in the features group but follow their day's events.
    features = dg.AssetSelection.groups(*catalog.FEATURE_GROUPS) - daily
    models = dg.AssetSelection.groups(*catalog.MODEL_GROUPS)
    specs = [
        (DAILY_JOB, daily,
         "One day of every event entity: ingestion, cleaning, daily features, with their checks."),
        (DIMENSIONS_JOB, dg.AssetSelection.groups(*catalog.TABLE_GROUPS) - daily,
         "Customers and products (unpartitioned snapshots) with their checks."),
        (FEATURES_JOB, features,
         "Features over all stored days (customer RFM, user and item features)."),
        (TRAINING_JOB, models,
         "Train and evaluate the models (recommender, segmentation, sentiment, experiments)."),
        (DOWNSTREAM_JOB, features | models,
         "Features over all stored days, then models."),
        (FULL_REFRESH_JOB, dg.AssetSelection.all(),
         "Everything in dependency order: dimensions, the run's daily partition (a backfill "
         "covers a range), features and models."),
    ]
    if sensor_checks:
        specs = [(name, selection - dg.AssetSelection.checks(*sensor_checks), description)
                 for name, selection, description in specs]
    return [
        dg.define_asset_job(name, selection=selection, description=description, executor_def=executor)
        for name, selection, description in specs
    ]


def build_schedules(jobs: list[dg.UnresolvedAssetJobDefinition]) -> list[dg.ScheduleDefinition]:
    by_name = {job.name: job for job in jobs}
    return [
        dg.build_schedule_from_partitioned_job(
            by_name[DAILY_JOB],
            name=DAILY_SCHEDULE,
            hour_of_day=2,
            description="Each night, materialize yesterday's partition of the daily job.",
        ),
        dg.ScheduleDefinition(
            name=FEATURES_SCHEDULE,
            job=by_name[FEATURES_JOB],
            cron_schedule=FEATURES_CRON,
            description="Each night after the daily job, rebuild the features over all days.",
        ),
        dg.ScheduleDefinition(
            name=TRAINING_SCHEDULE,
            job=by_name[TRAINING_JOB],
            cron_schedule=TRAINING_CRON,
            description="Each Sunday after the night's features, retrain and evaluate every model.",
        ),
    ]
