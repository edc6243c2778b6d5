"""Jobs and schedules: the daily partitioned job, dimensions, downstream features and models."""

from __future__ import annotations

import dagster as dg
from data_platform.sources.schemas import DIMENSION_ENTITIES, EVENT_ENTITIES

DAILY_JOB = "daily_job"
DIMENSIONS_JOB = "dimensions_job"
DOWNSTREAM_JOB = "downstream_job"

DAILY_FEATURES = ("review_text_features",)
DOWNSTREAM_ASSETS = ("customer_rfm", "user_features", "item_features")


def daily_asset_keys() -> list[str]:
    keys = [f"{e}_{stage}" for e in EVENT_ENTITIES for stage in ("raw", "rejected", "clean", "quarantine")]
    return keys + list(DAILY_FEATURES)


def dimension_asset_keys() -> list[str]:
    return [f"{e}_{stage}" for e in DIMENSION_ENTITIES for stage in ("raw", "rejected", "clean", "quarantine")]


def build_jobs(downstream_assets: tuple[str, ...] = DOWNSTREAM_ASSETS) -> list[dg.UnresolvedAssetJobDefinition]:
    return [
        dg.define_asset_job(
            DAILY_JOB,
            selection=dg.AssetSelection.assets(*daily_asset_keys()),
            description="One day of every event entity: ingestion, cleaning, daily features, with their checks.",
        ),
        dg.define_asset_job(
            DIMENSIONS_JOB,
            selection=dg.AssetSelection.assets(*dimension_asset_keys()),
            description="Customers and products (unpartitioned snapshots) with their checks.",
        ),
        dg.define_asset_job(
            DOWNSTREAM_JOB,
            selection=dg.AssetSelection.assets(*downstream_assets),
            description="Features over all stored days, then models.",
        ),
    ]


def build_schedules(jobs: list[dg.UnresolvedAssetJobDefinition]) -> list[dg.ScheduleDefinition]:
    by_name = {job.name: job for job in jobs}
    return [
        dg.build_schedule_from_partitioned_job(
            by_name[DAILY_JOB],
            name="daily_schedule",
            hour_of_day=2,
            description="Each night, materialize yesterday's partition of the daily job.",
        ),
        dg.ScheduleDefinition(
            name="downstream_schedule",
            job=by_name[DOWNSTREAM_JOB],
            cron_schedule="0 4 * * *",
            description="Each night after the daily job, rebuild features and models over all days.",
        ),
    ]
