"""WarehouseIOManager through real Dagster materializations on SQLite and PostgreSQL."""

import dagster as dg
import pandas as pd
import pytest

from data_platform.resources.warehouse import (
    DEFAULT_WAREHOUSE_URL,
    WarehouseError,
    WarehouseIOManager,
    WarehouseResource,
)

DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01")
SEEN: dict[str, pd.DataFrame] = {}


@dg.asset(partitions_def=DAILY, key_prefix=["shop"])
def orders(context: dg.AssetExecutionContext) -> pd.DataFrame:
    day = context.partition_key
    size = int(day[-2:])  # a different row count per day makes mixed-up partitions visible
    return pd.DataFrame({"day": [day] * size, "amount": pd.Series(range(size), dtype="Int64")})


@dg.asset(partitions_def=DAILY, ins={"orders": dg.AssetIn(key=["shop", "orders"])})
def orders_of_the_day(orders: pd.DataFrame) -> pd.DataFrame:
    SEEN["orders_of_the_day"] = orders
    return orders.assign(doubled=orders["amount"] * 2)


@dg.asset(ins={"orders": dg.AssetIn(key=["shop", "orders"])})
def order_totals(orders: pd.DataFrame) -> pd.DataFrame:
    SEEN["order_totals"] = orders
    return orders.groupby("day", as_index=False)["amount"].sum()


@dg.asset
def nothing_to_store() -> None:
    return None


def resources_for(url: str) -> dict:
    warehouse = WarehouseResource(url=url)
    return {"warehouse": warehouse, "io_manager": WarehouseIOManager(warehouse=warehouse)}


def test_partitioned_upstream_feeds_partitioned_and_unpartitioned_downstream(warehouse_url):
    resources = resources_for(warehouse_url)
    assets = [orders, orders_of_the_day, order_totals, nothing_to_store]
    for day in ["2024-01-02", "2024-01-03", "2024-01-03"]:
        result = dg.materialize(assets, selection=[orders], partition_key=day, resources=resources)
        assert result.success
    metadata = result.asset_materializations_for_node("shop__orders")[0].metadata
    assert metadata["dagster/table_name"].value == "shop__orders"

    result = dg.materialize(assets, selection=[orders_of_the_day], partition_key="2024-01-02", resources=resources)
    assert result.success
    assert SEEN["orders_of_the_day"]["day"].unique().tolist() == ["2024-01-02"]
    assert len(SEEN["orders_of_the_day"]) == 2

    result = dg.materialize(assets, selection=[order_totals, nothing_to_store], resources=resources)
    assert result.success
    # Every stored partition, each exactly once although 2024-01-03 was materialized twice.
    read = SEEN["order_totals"]
    assert sorted(read["day"].value_counts().items()) == [("2024-01-02", 2), ("2024-01-03", 3)]
    assert str(read["amount"].dtype) == "Int64"

    store = resources["warehouse"].store()
    totals = store.read("order_totals").sort_values("day", ignore_index=True)
    assert totals["amount"].tolist() == [1, 3]
    assert not store.exists("nothing_to_store")
    assert store.read("orders_of_the_day")["doubled"].tolist() == [0, 2]


def test_missing_upstream_table_fails_with_a_clear_error(sqlite_url):
    with pytest.raises(WarehouseError, match="'shop__orders' is not in the warehouse: materialize asset 'shop/orders'"):
        dg.materialize([orders, order_totals], selection=[order_totals], resources=resources_for(sqlite_url))


def test_resource_defaults_to_a_local_sqlite_file_and_caches_its_store(sqlite_url):
    assert WarehouseResource().url == DEFAULT_WAREHOUSE_URL
    warehouse = WarehouseResource(url=sqlite_url)
    assert warehouse.store() is warehouse.store()


def test_url_from_env_var_stays_out_of_metadata(sqlite_url, monkeypatch):
    monkeypatch.setenv("DATA_PLATFORM_WAREHOUSE_URL", sqlite_url)
    warehouse = WarehouseResource(url=dg.EnvVar("DATA_PLATFORM_WAREHOUSE_URL"))
    resources = {"warehouse": warehouse, "io_manager": WarehouseIOManager(warehouse=warehouse)}
    result = dg.materialize([orders], partition_key="2024-01-05", resources=resources)
    assert result.success
    materialization = result.asset_materializations_for_node("shop__orders")[0]
    assert sqlite_url not in repr(materialization.metadata)
    assert WarehouseResource(url=sqlite_url).store().row_count("shop__orders") == 5
