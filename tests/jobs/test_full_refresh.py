"""full_refresh_job: one run materializes every asset of the platform, in dependency order."""

import dagster as dg
import pytest

from data_platform.definitions import build_definitions
from data_platform.jobs import FULL_REFRESH_JOB
from data_platform.resources.model_store import ModelStoreResource
from data_platform.resources.source import SourceResource
from data_platform.resources.warehouse import WarehouseResource

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

pytestmark = pytest.mark.slow


def test_full_refresh_materializes_every_asset_for_one_partition(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_PLATFORM_RECOMMENDER_BUDGET_S", "1")
    for name in ("DATA_PLATFORM_START_DATE", "DATA_PLATFORM_EXPECTED_EVENTS"):
        monkeypatch.delenv(name, raising=False)
    warehouse = WarehouseResource(url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    defs = build_definitions(
        warehouse=warehouse, source=SourceResource(), model_store=ModelStoreResource(root=str(tmp_path / "models"))
    )
    every_asset = {key.to_user_string() for key in defs.get_repository_def().asset_graph.get_all_asset_keys()}
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(FULL_REFRESH_JOB).execute_in_process(
            instance=instance, partition_key="2026-11-09", run_config=QUIET
        )
    assert result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == every_asset
    assert {"recommendations", "customer_rfm", "orders_clean", "products_clean"} <= materialized
    store = warehouse.store()
    assert len(store.read("orders_clean", partitions=["2026-11-09"])) == len(store.read("orders_clean")) > 0
    assert len(store.read("recommendations")) > 0
