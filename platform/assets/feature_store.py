"""Feature views as assets: the registry is the asset graph.

Per view: ``<view>`` appends one computation to the offline history (its owner, TTL, entity and
version are the asset's owners, metadata and code version; the anomaly checks learn from its
metadata) with a ``freshness`` check, and ``<view>_online`` materializes the latest values into
the online store (Redis, or the warehouse table without Redis) with a ``parity`` check.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import pandas as pd

from data_platform.assets.health import health_metadata
from data_platform.catalog import FEATURE_STORE, online_asset
from data_platform.features import OfflineStore
from data_platform.features.offline import now_utc
from data_platform.features.online import RedisOnlineStore, SqlOnlineStore, materialize, parity
from data_platform.features.view import FeatureView
from data_platform.features.views import SOURCES, VIEWS
from data_platform.quality import health
from data_platform.resources.redis import RedisResource
from data_platform.resources.warehouse import WarehouseResource

IO = "warehouse_io_manager"


@contextmanager
def offline_store(warehouse: WarehouseResource) -> Iterator[OfflineStore]:
    """The warehouse's offline store, disposed of when the block ends."""
    offline = OfflineStore(warehouse.url, schema=warehouse.schema_name)
    try:
        yield offline
    finally:
        offline.dispose()


def _online(redis: RedisResource, offline: OfflineStore):
    client = redis.client()
    return RedisOnlineStore(client, redis.key_prefix) if client is not None else SqlOnlineStore(offline)


def _view_asset(view: FeatureView, source: str, to_rows) -> dg.AssetsDefinition:
    @dg.asset(name=view.name, group_name=FEATURE_STORE, code_version=view.version, owners=[view.owner],
              description=view.description, metadata=view.summary(), kinds={"sql"},
              ins={"table": dg.AssetIn(source, input_manager_key=IO)})
    def _asset(table: pd.DataFrame, warehouse: WarehouseResource) -> dg.MaterializeResult:
        started = time.perf_counter()
        computed_at = now_utc()
        rows = to_rows(table, computed_at)
        with offline_store(warehouse) as offline:
            offline.write(view, rows, created_at=computed_at)
        metadata = health_metadata(rows[[view.entity, *view.feature_names]], key=(view.entity,), started=started)
        metadata.update(view.summary())
        return dg.MaterializeResult(metadata=metadata)

    @dg.asset_check(asset=_asset, name="freshness")
    def _freshness(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with offline_store(warehouse) as offline:
            state = offline.freshness(view)
        age = state["age_seconds"]
        text = "no history yet" if age is None else f"newest event {age / 3600:.1f} h old"
        return dg.AssetCheckResult(
            passed=bool(state["fresh"]), description=f"{text} (TTL {view.ttl})",
            metadata={"age_seconds": float(age) if age is not None else -1.0,
                      "ttl_seconds": view.ttl.total_seconds(), "entities": state["entities"]})

    return _asset, _freshness


def _online_asset(view: FeatureView) -> tuple:
    @dg.asset(name=online_asset(view.name), group_name=FEATURE_STORE, code_version=view.version,
              owners=[view.owner], deps=[view.name], kinds={"redis", "sql"},
              description=f"The latest value per entity of `{view.name}` in the online store.")
    def _asset(warehouse: WarehouseResource, redis: RedisResource) -> dg.MaterializeResult:
        with offline_store(warehouse) as offline:
            result = materialize(view, offline, _online(redis, offline))
        return dg.MaterializeResult(metadata={
            health.ROW_COUNT: result.entities, health.DURATION_SECONDS: result.seconds,
            "online_store": result.store, "online_version": result.version,
            "previous_online_version": result.previous, "as_of": result.as_of})

    @dg.asset_check(asset=_asset, name="parity", blocking=False)
    def _parity(warehouse: WarehouseResource, redis: RedisResource) -> dg.AssetCheckResult:
        with offline_store(warehouse) as offline:
            check = parity(view, offline, _online(redis, offline))
        return dg.AssetCheckResult(
            passed=check.passed, description=check.describe(), severity=dg.AssetCheckSeverity.ERROR,
            metadata={"entities_checked": check.checked, "mismatched": len(check.mismatched),
                      "missing_online": len(check.missing_online),
                      "online_only": len(check.unexpected_online)})

    return _asset, _parity


def build_feature_store() -> tuple[list[dg.AssetsDefinition], list[dg.AssetChecksDefinition]]:
    assets, checks = [], []
    for view in VIEWS:
        for asset, check in (_view_asset(view, *SOURCES[view.name]), _online_asset(view)):
            assets.append(asset)
            checks.append(check)
    return assets, checks
