"""The Definitions object `defs`: every asset, check, job, schedule and resource of the platform."""

from __future__ import annotations

import os

import dagster as dg

from data_platform import catalog
from data_platform.assets.cleaning import build_cleaning_asset
from data_platform.assets.feature_store import build_feature_store
from data_platform.assets.features import build_feature_assets
from data_platform.assets.ingestion import build_ingestion_asset
from data_platform.assets.models import MODEL_ASSETS
from data_platform.assets.partitions import daily_partitions
from data_platform.assets.serving import SERVING_ASSETS, SERVING_CHECKS
from data_platform.assets.streaming import STREAM_ASSETS, STREAM_CHECKS
from data_platform.checks.completeness import (
    build_completeness_checks,
    build_partition_freshness_checks,
    build_partition_freshness_sensor,
)
from data_platform.checks.platform import build_platform_checks
from data_platform.jobs import build_jobs, build_schedules
from data_platform.jobs.alerts import build_check_failure_sensor
from data_platform.resources.alerts import alert_resources_from_env, sinks_from_env
from data_platform.resources.model_store import ModelStoreResource
from data_platform.resources.redis import RedisResource, redis_from_env
from data_platform.resources.source import (
    SourceResource,
    source_resource_from_env,
    specs_from_env,
)
from data_platform.resources.warehouse import WarehouseIOManager, WarehouseResource
from data_platform.sources.db import tune_sqlite_connections
from data_platform.sources.schemas import ENTITIES, EVENT_ENTITIES

# Every process that loads these definitions (the demo, run workers, the CLI) stores Dagster
# events in SQLite on the embedded default: make those commits cheap (see the function's doc).
tune_sqlite_connections()


def warehouse_from_env() -> WarehouseResource:
    # An EnvVar keeps the URL (and any password in it) out of the UI and the run config.
    if os.environ.get("DATA_PLATFORM_WAREHOUSE_URL"):
        return WarehouseResource(url=dg.EnvVar("DATA_PLATFORM_WAREHOUSE_URL"))
    return WarehouseResource()


def model_store_from_env() -> ModelStoreResource:
    if os.environ.get("DATA_PLATFORM_MODEL_DIR"):
        return ModelStoreResource(root=dg.EnvVar("DATA_PLATFORM_MODEL_DIR"))
    return ModelStoreResource()


def build_definitions(
    *,
    warehouse: WarehouseResource | None = None,
    source: SourceResource | None = None,
    model_store: ModelStoreResource | None = None,
    redis: RedisResource | None = None,
) -> dg.Definitions:
    """All definitions; tests and embedders pass their own warehouse or source."""
    source = source or source_resource_from_env()
    partitions_def = daily_partitions(specs_from_env())
    assets: list[dg.AssetsDefinition] = []
    for entity in ENTITIES:
        assets.append(build_ingestion_asset(entity, partitions_def))
        assets.append(build_cleaning_asset(entity, partitions_def))
    assets.extend(build_feature_assets(partitions_def))
    assets.extend(MODEL_ASSETS)
    assets.extend(SERVING_ASSETS)
    feature_store_assets, feature_store_checks = build_feature_store()
    assets.extend(feature_store_assets)
    checks = build_platform_checks(assets) + SERVING_CHECKS + STREAM_CHECKS + feature_store_checks
    # A daily partition that never arrives: late (freshness, on a clock) or skipped (a gap).
    raw_events = list(catalog.tables(EVENT_ENTITIES, [catalog.RAW]))
    freshness_checks = build_partition_freshness_checks(raw_events)
    checks += build_completeness_checks(raw_events) + freshness_checks
    assets.extend(STREAM_ASSETS)
    jobs = build_jobs(sensor_checks=freshness_checks)
    warehouse = warehouse or warehouse_from_env()
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=jobs,
        schedules=build_schedules(jobs),
        sensors=[
            build_check_failure_sensor(sinks=sinks_from_env()),
            build_partition_freshness_sensor(freshness_checks),
        ],
        resources={
            "source": source,
            "warehouse": warehouse,
            "warehouse_io_manager": WarehouseIOManager(warehouse=warehouse),
            "model_store": model_store or model_store_from_env(),
            "redis": redis or redis_from_env(),
            **alert_resources_from_env(),
        },
    )


defs = build_definitions()
