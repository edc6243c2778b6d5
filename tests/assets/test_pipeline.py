"""End to end: the three groups materialized in a temporary instance; every row accounted for."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pytest

from data_platform.definitions import build_definitions
from data_platform.jobs import DAILY_JOB, DIMENSIONS_JOB, DOWNSTREAM_JOB
from data_platform.resources.model_store import ModelStore, ModelStoreResource
from data_platform.resources.source import SourceResource
from data_platform.resources.warehouse import TableStore, WarehouseResource
from data_platform.sources import synthetic
from data_platform.sources.schemas import DIMENSION_ENTITIES, EVENT_ENTITIES

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def run_pipeline(defs: dg.Definitions, instance: dg.DagsterInstance, days: int) -> list[str]:
    assert defs.resolve_job_def(DIMENSIONS_JOB).execute_in_process(
        instance=instance, run_config=QUIET
    ).success
    daily = defs.resolve_job_def(DAILY_JOB)
    keys = daily.partitions_def.get_partition_keys()[-days:]
    for key in keys:
        result = daily.execute_in_process(
            instance=instance, partition_key=key, run_config=QUIET, raise_on_error=False
        )
        assert result.success, f"daily run {key} failed"
    assert defs.resolve_job_def(DOWNSTREAM_JOB).execute_in_process(
        instance=instance, run_config=QUIET
    ).success
    return keys


@pytest.mark.slow
def test_every_row_is_accounted_for(warehouse_url, monkeypatch, tmp_path):
    monkeypatch.delenv("DATA_PLATFORM_START_DATE", raising=False)
    monkeypatch.setenv("DATA_PLATFORM_RECOMMENDER_BUDGET_S", "1")
    defs = build_definitions(
        warehouse=WarehouseResource(url=warehouse_url),
        source=SourceResource(synthetic_incidents=False),
        model_store=ModelStoreResource(root=str(tmp_path / "models")),
    )
    with dg.instance_for_test() as instance:
        keys = run_pipeline(defs, instance, days=3)
        store = TableStore(warehouse_url)
        try:
            for entity in EVENT_ENTITIES:
                for key in keys:
                    generated = synthetic.generate(entity, date.fromisoformat(key), incidents=False)
                    raw = store.row_count(f"{entity}_raw", key)
                    rejected = store.row_count(f"{entity}_rejected", key)
                    clean = store.row_count(f"{entity}_clean", key)
                    quarantined = store.row_count(f"{entity}_quarantine", key)
                    assert raw + rejected == len(generated) > 0, (entity, key)
                    assert clean + quarantined == raw, (entity, key)
                assert sorted(store.partitions(f"{entity}_clean")) == sorted(keys)
            for entity in DIMENSION_ENTITIES:
                assert store.row_count(f"{entity}_clean") == len(synthetic.generate(entity)) > 0
            rfm = store.read("customer_rfm")
            customers = set(store.read("customers_clean")["customer_id"])
            assert len(rfm) > 0 and set(rfm["customer_id"]) <= customers
            assert store.row_count("review_text_features", keys[-1]) == store.row_count(
                "reviews_clean", keys[-1]
            )
        finally:
            store.dispose()

        # Every model was trained once, stored with its metrics, and wrote its output tables.
        models = ModelStore(tmp_path / "models")
        for name in ("recommender", "segmentation", "sentiment"):
            assert len(models.versions(name)) == 1
            assert models.manifest(name).metrics
        store = TableStore(warehouse_url)
        try:
            recs = store.read("recommendations")
            assert (recs.groupby("user_id").size() <= 10).all() and len(recs) > 0
            seen = store.read("ratings_clean")[["user_id", "item_id"]]
            overlap = recs.merge(seen, on=["user_id", "item_id"])
            assert overlap.empty, "recommendations must exclude items the user already rated"
            segments = store.read("customer_segments")
            assert segments["customer_id"].is_unique and segments["segment"].nunique() >= 3
            assert len(store.read("review_sentiment")) == sum(
                store.row_count("reviews_clean", k) for k in keys
            )
            results = store.read("experiment_results")
            assert set(results["variant"]) == {"A", "B"}
        finally:
            store.dispose()

        # Health metadata is recorded on every materialization for the checks to learn from.
        record = instance.fetch_materializations(dg.AssetKey("orders_clean"), limit=1).records[0]
        metadata = record.asset_materialization.metadata
        assert metadata["dagster/row_count"].value == clean_rows(warehouse_url, "orders_clean", record)
        assert "null_fraction/customer_id" in metadata
        assert "dagster/column_schema" in metadata
        assert metadata["dagster/table_name"].value.endswith("orders_clean")
        # Models record their metrics and their own training time as numeric metadata.
        for key in ("recommendations", "customer_segments", "review_sentiment", "experiment_results"):
            model_md = instance.fetch_materializations(dg.AssetKey(key), limit=1).records[0]
            model_md = model_md.asset_materialization.metadata
            assert any(name.startswith("model/") for name in model_md), key
            assert model_md["duration_seconds"].value > 0, key


def clean_rows(url: str, table: str, record) -> int:
    store = TableStore(url)
    try:
        return store.row_count(table, record.asset_materialization.partition)
    finally:
        store.dispose()


def test_rematerializing_a_partition_replaces_it(sqlite_url):
    defs = build_definitions(
        warehouse=WarehouseResource(url=sqlite_url),
        source=SourceResource(synthetic_incidents=False),
    )
    with dg.instance_for_test() as instance:
        assert defs.resolve_job_def(DIMENSIONS_JOB).execute_in_process(
            instance=instance, run_config=QUIET
        ).success
        daily = defs.resolve_job_def(DAILY_JOB)
        key = daily.partitions_def.get_partition_keys()[-1]
        for _ in range(2):
            assert daily.execute_in_process(instance=instance, partition_key=key, run_config=QUIET).success
        store = TableStore(sqlite_url)
        try:
            expected = len(synthetic.generate("ratings", date.fromisoformat(key), incidents=False))
            assert store.row_count("ratings_raw", key) == expected
            assert store.row_count("ratings_raw") == expected
        finally:
            store.dispose()
