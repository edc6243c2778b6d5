"""The catalog: every asset the platform defines, its group, its entity and what it reads.

Pure (no Dagster). The asset modules take their group names from here, the jobs select by
group, and the platform's checks, the demo and the benchmarks read the tables below.
tests/test_catalog.py holds the definitions to the catalog both ways: an asset cannot be
added, renamed or regrouped without it.
"""

from __future__ import annotations

from collections.abc import Iterable

from data_platform.features.views import CUSTOMER_FEATURES, SOURCES, VIEWS
from data_platform.sources.schemas import DIMENSION_ENTITIES, ENTITIES, EVENT_ENTITIES

# The asset groups (as the UI shows them).
INGESTION = "ingestion"
CLEANING = "cleaning"
FEATURES = "features"
FEATURE_STORE = "feature_store"
MODELS = "models"
SERVING = "serving"
STREAMING = "streaming"
GROUPS = (INGESTION, CLEANING, FEATURES, FEATURE_STORE, MODELS, SERVING, STREAMING)

# Per entity, ingestion writes what the source delivered (raw) and the rows it could not parse
# (rejected); cleaning writes the valid rows (clean) and the rows it removed (quarantine).
RAW, REJECTED, CLEAN, QUARANTINE = "raw", "rejected", "clean", "quarantine"
STAGE_GROUP = {RAW: INGESTION, REJECTED: INGESTION, CLEAN: CLEANING, QUARANTINE: CLEANING}


def table(entity: str, stage: str) -> str:
    """The asset of one entity at one stage: `orders_clean`."""
    if entity not in ENTITIES or stage not in STAGE_GROUP:
        raise ValueError(f"no table for entity {entity!r} at stage {stage!r}")
    return f"{entity}_{stage}"


def tables(entities: Iterable[str], stages: Iterable[str] = tuple(STAGE_GROUP)) -> tuple[str, ...]:
    """The tables of `entities` at `stages`, entity by entity in stage order."""
    stages = tuple(stages)
    return tuple(table(entity, stage) for entity in entities for stage in stages)


def online_asset(view: str) -> str:
    """The asset that materializes a feature view's latest values into the online store."""
    return f"{view}_online"


ENTITY_TABLES = tables(ENTITIES)
_TABLE_ENTITY = {table(entity, stage): entity for entity in ENTITIES for stage in STAGE_GROUP}
# Tables of the rows a stage set aside: judged through their parent's metadata (rejected and
# quarantined row counts), so they carry no anomaly check of their own.
SET_ASIDE_TABLES = tables(ENTITIES, (REJECTED, QUARANTINE))

CUSTOMER_RFM = "customer_rfm"
USER_FEATURES = "user_features"
ITEM_FEATURES = "item_features"
REVIEW_TEXT_FEATURES = "review_text_features"
FEATURE_TABLES = (CUSTOMER_RFM, USER_FEATURES, ITEM_FEATURES, REVIEW_TEXT_FEATURES)
# Features of one day's events, partitioned like them (the others cover every stored day).
DAILY_FEATURES = (REVIEW_TEXT_FEATURES,)

# Per feature view (data_platform.features.views): its offline history, then its online values.
FEATURE_STORE_ASSETS = tuple(name for view in VIEWS for name in (view.name, online_asset(view.name)))

RECOMMENDATIONS = "recommendations"
CUSTOMER_SEGMENTS = "customer_segments"
SEGMENT_PROFILES = "segment_profiles"
REVIEW_SENTIMENT = "review_sentiment"
PRODUCT_SENTIMENT = "product_sentiment"
EXPERIMENT_RESULTS = "experiment_results"
MODEL_OUTPUTS = (RECOMMENDATIONS, CUSTOMER_SEGMENTS, SEGMENT_PROFILES, REVIEW_SENTIMENT,
                 PRODUCT_SENTIMENT, EXPERIMENT_RESULTS)

RECOMMENDATION_CACHE = "recommendation_cache"
SERVING_ASSETS = (RECOMMENDATION_CACHE,)

STREAM_METRICS = "stream_metrics"
STREAMING_ASSETS = (STREAM_METRICS,)

# Every asset and its group.
GROUP_OF: dict[str, str] = {
    **{table(entity, stage): group for entity in ENTITIES for stage, group in STAGE_GROUP.items()},
    **dict.fromkeys(FEATURE_TABLES, FEATURES),
    **dict.fromkeys(FEATURE_STORE_ASSETS, FEATURE_STORE),
    **dict.fromkeys(MODEL_OUTPUTS, MODELS),
    **dict.fromkeys(SERVING_ASSETS, SERVING),
    **dict.fromkeys(STREAMING_ASSETS, STREAMING),
}
ASSETS = tuple(GROUP_OF)


def in_groups(*groups: str) -> tuple[str, ...]:
    """The assets of `groups`, in catalog order."""
    unknown = set(groups) - set(GROUPS)
    if unknown:
        raise ValueError(f"unknown groups {sorted(unknown)}: the groups are {GROUPS}")
    return tuple(asset for asset in ASSETS if GROUP_OF[asset] in groups)


def _clean(entity: str) -> str:
    return table(entity, CLEAN)


# What each asset reads (its upstream assets); assets missing here read no asset.
READS: dict[str, tuple[str, ...]] = {
    **{table(entity, stage): (table(entity, RAW),) for entity in ENTITIES for stage in (CLEAN, QUARANTINE)},
    CUSTOMER_RFM: (_clean("orders"), _clean("products")),
    USER_FEATURES: (_clean("ratings"),),
    ITEM_FEATURES: (_clean("ratings"), _clean("products")),
    REVIEW_TEXT_FEATURES: (_clean("reviews"),),
    **{view.name: (SOURCES[view.name][0],) for view in VIEWS},
    **{online_asset(view.name): (view.name,) for view in VIEWS},
    RECOMMENDATIONS: (_clean("ratings"),),
    # The segmentation trains on customers joined to customer_features (the feature store).
    CUSTOMER_SEGMENTS: (_clean("customers"), CUSTOMER_FEATURES.name),
    SEGMENT_PROFILES: (_clean("customers"), CUSTOMER_FEATURES.name),
    REVIEW_SENTIMENT: (_clean("reviews"),),
    PRODUCT_SENTIMENT: (_clean("reviews"),),
    EXPERIMENT_RESULTS: (_clean("experiments"),),
    RECOMMENDATION_CACHE: (RECOMMENDATIONS,),
}


def readers(asset: str, among: Iterable[str] = ASSETS) -> tuple[str, ...]:
    """The assets of `among` that read `asset`, sorted by name."""
    return tuple(sorted(a for a in among if asset in READS.get(a, ())))


def _entities(asset: str) -> frozenset[str]:
    """The entities whose tables an asset is computed from, at any distance."""
    if asset in _TABLE_ENTITY:
        return frozenset({_TABLE_ENTITY[asset]})
    return frozenset().union(*(_entities(parent) for parent in READS.get(asset, ())))


def _asset_entity() -> dict[str, str]:
    out: dict[str, str] = {}
    for asset in ASSETS:
        entities = _entities(asset)
        if len(entities) == 1:
            [out[asset]] = entities
    return out


# The entity an asset belongs to: each entity's own tables, and every asset computed from one
# entity's tables alone (an incident of that entity shows there and nowhere else).
ASSET_ENTITY: dict[str, str] = _asset_entity()

# Per day, the event entities' tables and the daily features (the daily job); the dimensions'
# tables are unpartitioned snapshots (the dimensions job).
DAILY_ASSETS = tables(EVENT_ENTITIES) + DAILY_FEATURES
DIMENSION_ASSETS = tables(DIMENSION_ENTITIES)
TABLE_GROUPS = (INGESTION, CLEANING)
# Over every stored day: the feature tables and the feature views built on them...
FEATURE_GROUPS = (FEATURES, FEATURE_STORE)
# ...and the models, with the recommendation cache refreshed whenever they are retrained.
MODEL_GROUPS = (MODELS, SERVING)

# Critical assets: their anomaly checks are ERROR and blocking, so a bad day of orders, ratings
# or reviews stops what reads it.
BLOCKING_ASSETS = (_clean("orders"), _clean("ratings"), _clean("reviews"))
# What a failing blocking check stops in the daily job's own run (no point recorded that day)...
BLOCKS_IN_RUN: dict[str, tuple[str, ...]] = {
    asset: readers(asset, DAILY_ASSETS) for asset in BLOCKING_ASSETS if readers(asset, DAILY_ASSETS)
}
# ...and every asset that reads a blocking asset (what a blocked day holds up).
DOWNSTREAM: dict[str, tuple[str, ...]] = {asset: readers(asset) for asset in BLOCKING_ASSETS}
