"""The `recommendation_cache` asset and its `served_version` check, run by Dagster on a real
model store, a SQLite warehouse and the shared Redis (or none)."""

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from data_platform.assets.serving import recommendation_cache, served_version
from data_platform.ml.recommender import EaseRanker
from data_platform.resources.model_store import ModelStoreResource
from data_platform.resources.redis import RedisResource
from data_platform.resources.warehouse import WarehouseIOManager, WarehouseResource
from data_platform.serving import publish
from data_platform.tablestore import TableStore


def interactions(users=30, items=25, seed=0):
    rng = np.random.default_rng(seed)
    rows = [(f"u{u}", f"i{i}") for u in range(users) for i in rng.choice(items, 6, replace=False)]
    return pd.DataFrame(rows, columns=["user_id", "item_id"])


@dg.asset(name="recommendations", io_manager_key="warehouse_io_manager")
def small_recommendations(model_store: ModelStoreResource) -> dg.Output:
    """The real ranker (EASE) on a small matrix, stored like the recommender asset stores it."""
    ranker = EaseRanker(interactions(), lam=10.0, max_items=100)
    manifest = model_store.store().save("recommender", ranker, metrics={}, data_snapshot_id="small")
    return dg.Output(ranker.recommend(n=5), metadata={"model_version": manifest.version})


def resources(tmp_path, redis_resource):
    warehouse = WarehouseResource(url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    return {
        "warehouse": warehouse,
        "warehouse_io_manager": WarehouseIOManager(warehouse=warehouse),
        "model_store": ModelStoreResource(root=str(tmp_path / "models")),
        "redis": redis_resource,
    }


def run(tmp_path, redis_resource, instance):
    return dg.materialize([small_recommendations, recommendation_cache, served_version],
                          resources=resources(tmp_path, redis_resource), instance=instance)


def test_the_asset_publishes_every_user_and_the_check_sees_the_model_served(tmp_path, redis_url, redis_prefix):
    import redis

    redis_resource = RedisResource(url=redis_url, key_prefix=redis_prefix)
    with dg.instance_for_test() as instance:
        first = run(tmp_path, redis_resource, instance)
        assert first.success
        [mat] = [m for m in first.get_asset_materialization_events()
                 if m.asset_key == dg.AssetKey("recommendation_cache")]
        metadata = {k: v.value for k, v in mat.materialization.metadata.items()}
        assert metadata["cache_store"] == "redis" and metadata["cache_summary"].startswith("30 users")
        [check] = first.get_asset_check_evaluations()
        assert check.passed and check.metadata["coverage"].value == 1.0

        client = redis.Redis.from_url(redis_url)
        served = publish.served_version(client, redis_prefix)
        assert served.model_version == metadata["model_version"] and served.users == 30
        # The popular list is the model's own list for a user it never saw.
        assert served.popular.count(b'"rank":') == 25
        stored = TableStore(f"sqlite:///{tmp_path / 'warehouse.db'}").read("recommendation_cache")
        assert set(stored["model_version"]) == {metadata["model_version"]}
        assert list(stored["rank"]) == list(range(1, 26))
        client.close()

        # A newer model is trained, but the cache is not refreshed: the check says it is stale.
        assert dg.materialize([small_recommendations], resources=resources(tmp_path, redis_resource),
                              instance=instance).success
        check_only = dg.materialize(
            [small_recommendations, recommendation_cache, served_version],
            selection=dg.AssetSelection.checks(served_version),
            resources=resources(tmp_path, redis_resource), instance=instance, raise_on_error=False,
        )
        [check] = check_only.get_asset_check_evaluations()
        assert not check.passed and "stale" in check.description


def test_without_redis_the_asset_records_that_there_is_no_cache_and_succeeds(tmp_path):
    with dg.instance_for_test() as instance:
        result = run(tmp_path, RedisResource(), instance)
    assert result.success
    [mat] = [m for m in result.get_asset_materialization_events()
             if m.asset_key == dg.AssetKey("recommendation_cache")]
    assert mat.materialization.metadata["cache_store"].value == "none"
    [check] = result.get_asset_check_evaluations()
    assert check.passed and "no Redis configured" in check.description
    stored = TableStore(f"sqlite:///{tmp_path / 'warehouse.db'}").read("recommendation_cache")
    assert len(stored) == 25 and stored["model_version"].iloc[0] == mat.materialization.metadata["model_version"].value


@pytest.mark.parametrize("url, configured", [(None, False), ("redis://127.0.0.1:1/0", True)])
def test_the_resource_has_no_client_without_a_url(url, configured):
    resource = RedisResource(url=url)
    assert resource.configured is configured
    assert (resource.client() is None) is (not configured)
