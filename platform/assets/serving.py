"""The recommendation cache as an asset: after each `recommendations` run, publish every user's
list and the popular list to Redis under a new version and switch to it (serving/publish.py).

With no Redis configured the asset still records the popular list and the model version in the
warehouse (the service's embedded path reads them) and says that there is no cache.
"""

import time

import dagster as dg
import pandas as pd

from data_platform import catalog
from data_platform.checks import event_store
from data_platform.quality import health
from data_platform.resources.model_store import ModelStoreResource
from data_platform.resources.redis import RedisResource
from data_platform.resources.warehouse import WarehouseResource
from data_platform.serving import layout, publish
from data_platform.serving.warehouse import cache_table

POPULAR_N = 100
RECOMMENDATIONS = dg.AssetKey(catalog.RECOMMENDATIONS)


def latest_model_version(instance: dg.DagsterInstance, model_store: ModelStoreResource) -> str:
    """The model behind the stored `recommendations`: its materialization names it; the newest
    stored recommender otherwise."""
    event = event_store.latest_materialization_event(instance, RECOMMENDATIONS)
    metadata = event.asset_materialization.metadata if event and event.asset_materialization else {}
    if "model_version" in metadata:
        return str(metadata["model_version"].value)
    return model_store.store().manifest("recommender").version


@dg.asset(group_name=catalog.SERVING, io_manager_key="warehouse_io_manager", kinds={"redis", "sql"})
def recommendation_cache(
    context: dg.AssetExecutionContext,
    recommendations: pd.DataFrame,
    redis: RedisResource,
    model_store: ModelStoreResource,
) -> dg.Output:
    """Every user's top-N and the popular list in Redis under a new version, counted, then
    switched to atomically; the table keeps the popular list with the versions published."""
    started = time.perf_counter()
    store = model_store.store()
    model_version = latest_model_version(context.instance, model_store)
    created_at = store.manifest("recommender", model_version).created_at
    popular = publish.popular_from_model(store.load("recommender", model_version), POPULAR_N)
    client = redis.client()
    metadata: dict[str, object] = {"model_version": model_version, "cache_store": "redis" if client else "none"}
    if client is None:
        cache_version = layout.new_cache_version()
        context.log.info("no Redis configured (DATA_PLATFORM_REDIS_URL): the service reads the warehouse")
    else:
        result = publish.publish(client, recommendations, popular, model_version=model_version,
                                 model_created_at=created_at, prefix=redis.key_prefix)
        cache_version = result.cache_version
        # Text, not numbers: the anomaly check learns numeric keys, which live in quality.health.
        metadata.update({"cache_summary": f"{result.users} users published in {result.seconds:.1f} s",
                         "previous_cache_version": result.previous})
    table = cache_table(popular, cache_version=cache_version, model_version=model_version,
                        model_created_at=created_at)
    metadata.update({"cache_version": cache_version, health.ROW_COUNT: len(table),
                     health.DURATION_SECONDS: time.perf_counter() - started})
    return dg.Output(table, metadata=metadata)


@dg.asset_check(asset=recommendation_cache, name="served_version")
def served_version(
    context: dg.AssetCheckExecutionContext,
    redis: RedisResource,
    warehouse: WarehouseResource,
    model_store: ModelStoreResource,
) -> dg.AssetCheckResult:
    """Redis serves the latest model's version, to every user of the `recommendations` table."""
    client = redis.client()
    if client is None:
        return dg.AssetCheckResult(passed=True, metadata={"cache_store": "none"},
                                   description="no Redis configured: the service reads the warehouse table")
    users = warehouse.store().read("recommendations", columns=["user_id"])["user_id"].nunique()
    passed, why, metadata = publish.verify_served(
        client, redis.key_prefix, latest_model_version(context.instance, model_store), int(users)
    )
    return dg.AssetCheckResult(passed=passed, description=why, metadata=metadata,
                               severity=dg.AssetCheckSeverity.ERROR)


SERVING_ASSETS = [recommendation_cache]
SERVING_CHECKS = [served_version]
