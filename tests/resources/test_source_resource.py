"""The `source` resource: env vars per entity, dimensions following a file source, run-config override."""

import dagster as dg

from data_platform.definitions import build_definitions
from data_platform.jobs import DAILY_JOB
from data_platform.resources.source import source_resource_from_env, specs_from_env
from data_platform.resources.warehouse import TableStore, WarehouseResource


def test_specs_default_to_synthetic_and_dimensions_follow_file_facts():
    assert set(specs_from_env({}).values()) == {"synthetic"}
    specs = specs_from_env({"DATA_PLATFORM_ORDERS": "online_retail:/data/retail"})
    assert specs["orders"] == specs["customers"] == specs["products"] == "online_retail:/data/retail"
    assert specs["ratings"] == "synthetic"
    explicit = specs_from_env(
        {"DATA_PLATFORM_ORDERS": "online_retail:/data/retail", "DATA_PLATFORM_PRODUCTS": "synthetic"}
    )
    assert explicit["products"] == "synthetic" and explicit["customers"] == "online_retail:/data/retail"


def test_specs_from_env_stay_env_vars(monkeypatch):
    monkeypatch.setenv("DATA_PLATFORM_RATINGS", "sql:postgresql://user:hunter2@db/x::ratings")
    resource = source_resource_from_env()
    # The spec (which may carry a password) is bound by name, not by value.
    assert "hunter2" not in repr(resource._get_non_default_public_field_values())
    assert isinstance(resource.ratings, dg.EnvVar) and resource.ratings.env_var_name == "DATA_PLATFORM_RATINGS"
    assert "hunter2" not in repr(resource)


def test_run_config_overrides_one_entity(tmp_path):
    csv = tmp_path / "orders.csv"
    csv.write_text(
        "order_id,customer_id,order_date,product_id,quantity,unit_price\n"
        "o1,c1,2025-03-01,p1,2,3.5\n"
        "o2,c2,2025-03-01,p2,1,9.0\n"
    )
    url = f"sqlite:///{tmp_path / 'w.db'}"
    defs = build_definitions(warehouse=WarehouseResource(url=url))
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(DAILY_JOB).execute_in_process(
            instance=instance,
            partition_key="2025-03-01",
            run_config={"resources": {"source": {"config": {"orders": f"orders_csv:{csv}"}}}},
            raise_on_error=False,
        )
    assert result.success
    store = TableStore(url)
    try:
        assert sorted(store.read("orders_raw", ["2025-03-01"])["order_id"]) == ["o1", "o2"]
        assert store.row_count("ratings_raw", "2025-03-01") > 0  # still synthetic
    finally:
        store.dispose()
