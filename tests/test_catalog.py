"""The catalog names every asset of the definitions, with its group and what it reads, and the
jobs execute exactly the assets the catalog assigns them: no asset is added, renamed, regrouped
or moved to another job without the catalog."""

from __future__ import annotations

import dagster as dg
import pytest

from data_platform import catalog
from data_platform.checks.anomaly import DEFAULT_CHECK_NAME
from data_platform.checks.completeness import build_partition_freshness_checks
from data_platform.definitions import defs
from data_platform.jobs import (
    DAILY_JOB,
    DIMENSIONS_JOB,
    DOWNSTREAM_JOB,
    FEATURES_JOB,
    FULL_REFRESH_JOB,
    TRAINING_JOB,
)
from data_platform.sources.schemas import DIMENSION_ENTITIES, ENTITIES, EVENT_ENTITIES

GRAPH = defs.resolve_asset_graph()
ALL_KEYS = GRAPH.get_all_asset_keys()


def names(keys) -> set[str]:
    return {key.to_user_string() for key in keys}


def in_groups(*groups: str) -> set[str]:
    return set(catalog.in_groups(*groups))


FEATURES_OVER_ALL_DAYS = in_groups(*catalog.FEATURE_GROUPS) - set(catalog.DAILY_FEATURES)
JOB_ASSETS = {
    DAILY_JOB: set(catalog.DAILY_ASSETS),
    DIMENSIONS_JOB: in_groups(*catalog.TABLE_GROUPS) - set(catalog.DAILY_ASSETS),
    FEATURES_JOB: FEATURES_OVER_ALL_DAYS,
    TRAINING_JOB: in_groups(*catalog.MODEL_GROUPS),
    DOWNSTREAM_JOB: FEATURES_OVER_ALL_DAYS | in_groups(*catalog.MODEL_GROUPS),
    FULL_REFRESH_JOB: set(catalog.ASSETS),
}
# Launched by their sensor only, never in a job (see data_platform.jobs.build_jobs).
SENSOR_ONLY_CHECKS = {
    key for check in build_partition_freshness_checks(catalog.tables(EVENT_ENTITIES, [catalog.RAW]))
    for key in check.check_keys
}


def test_every_asset_is_in_the_catalog_with_its_group_and_back():
    groups = {key.to_user_string(): GRAPH.get(key).group_name for key in ALL_KEYS}
    assert groups == catalog.GROUP_OF
    assert set(catalog.GROUP_OF.values()) == set(catalog.GROUPS)
    assert len(catalog.ASSETS) == len(set(catalog.ASSETS)) == len(ALL_KEYS)


def test_every_asset_reads_what_the_catalog_says():
    reads = {key.to_user_string(): names(GRAPH.get(key).parent_keys) for key in ALL_KEYS}
    assert reads == {asset: set(catalog.READS.get(asset, ())) for asset in catalog.ASSETS}


def test_the_daily_assets_are_the_partitioned_ones():
    partitioned = {key.to_user_string() for key in ALL_KEYS if GRAPH.get(key).partitions_def is not None}
    assert partitioned == set(catalog.DAILY_ASSETS)
    assert set(catalog.DIMENSION_ASSETS) == in_groups(*catalog.TABLE_GROUPS) - partitioned


@pytest.mark.parametrize("job_name", sorted(JOB_ASSETS))
def test_each_job_executes_the_assets_the_catalog_assigns_it(job_name):
    layer = defs.resolve_job_def(job_name).asset_layer
    expected = JOB_ASSETS[job_name]
    assert names(layer.executable_asset_keys) == expected
    # With every check of those assets, but the ones only their sensor launches.
    checks = {key for asset in expected for key in GRAPH.get(dg.AssetKey(asset)).check_keys}
    assert set(layer.asset_graph.asset_check_keys) == checks - SENSOR_ONLY_CHECKS


def test_the_blocking_checks_are_on_the_blocking_assets_and_stop_their_readers():
    anomaly = [key for key in GRAPH.asset_check_keys if key.name == DEFAULT_CHECK_NAME]
    blocking = {key.asset_key.to_user_string() for key in anomaly if GRAPH.get_check_spec(key).blocking}
    assert blocking == set(catalog.BLOCKING_ASSETS)
    daily = defs.resolve_job_def(DAILY_JOB).asset_layer.asset_graph
    for asset in catalog.BLOCKING_ASSETS:
        key = dg.AssetKey(asset)
        assert names(GRAPH.get(key).child_keys) == set(catalog.DOWNSTREAM[asset]), asset
        assert names(daily.get(key).child_keys) == set(catalog.BLOCKS_IN_RUN.get(asset, ())), asset


def test_the_entity_of_an_asset_is_the_one_entity_it_is_made_of():
    for entity in ENTITIES:
        for stage in catalog.STAGE_GROUP:
            assert catalog.ASSET_ENTITY[catalog.table(entity, stage)] == entity
    assert catalog.ASSET_ENTITY[catalog.REVIEW_TEXT_FEATURES] == "reviews"
    assert catalog.ASSET_ENTITY[catalog.RECOMMENDATION_CACHE] == "ratings"  # through recommendations
    # Made of orders and products, of no asset at all: no entity of their own.
    assert catalog.CUSTOMER_RFM not in catalog.ASSET_ENTITY
    assert catalog.STREAM_METRICS not in catalog.ASSET_ENTITY
    assert set(catalog.DIMENSION_ASSETS) == set(catalog.tables(DIMENSION_ENTITIES))


def test_names_outside_the_catalog_are_refused():
    with pytest.raises(ValueError, match="no table"):
        catalog.table("order", catalog.CLEAN)
    with pytest.raises(ValueError, match="no table"):
        catalog.table("orders", "cleaned")
    with pytest.raises(ValueError, match="unknown groups"):
        catalog.in_groups(catalog.FEATURES, "feature")
