"""Models as assets: each trains once per run, stores a versioned artifact, writes its output
tables and emits its evaluation metrics as numeric metadata, so the anomaly checks flag a
model-quality regression like any other anomaly.
"""

import base64
import os
import time

import dagster as dg
import pandas as pd

from data_platform.assets.feature_store import offline_store
from data_platform.catalog import MODELS
from data_platform.features import training
from data_platform.features.offline import now_utc
from data_platform.features.views import CUSTOMER_FEATURES
from data_platform.ml import experiments, recommender, segmentation, sentiment
from data_platform.quality import health
from data_platform.resources.model_store import ModelStoreResource, snapshot_id
from data_platform.resources.warehouse import WarehouseResource

IO = "warehouse_io_manager"
# The platform trains on every daily run of the downstream job; the full search budget is for
# the benchmark. Override with DATA_PLATFORM_RECOMMENDER_BUDGET_S.
RECOMMENDER_BUDGET_S = 5.0
# A sample-ratio mismatch this unlikely under the intended split means broken assignment.
SRM_ALPHA = 0.001


def _model_metadata(
    metrics: dict[str, float], manifest, frame: pd.DataFrame, started: float,
    cutoff: pd.Timestamp | None = None,
) -> dict[str, object]:
    out: dict[str, object] = {f"model/{k}": float(v) for k, v in metrics.items()}
    out["model_version"] = manifest.version
    out["data_snapshot_id"] = manifest.data_snapshot_id
    if cutoff is not None:  # the training set can be rebuilt as of this time (UTC)
        out["training_cutoff"] = cutoff.isoformat()
    out[health.ROW_COUNT] = len(frame)
    # Training, evaluation and scoring: a slowdown is an anomaly like any other.
    out[health.DURATION_SECONDS] = time.perf_counter() - started
    return out


@dg.asset(group_name=MODELS, io_manager_key=IO, kinds={"surprise", "sql"})
def recommendations(ratings_clean: pd.DataFrame, model_store: ModelStoreResource) -> dg.Output:
    """Top-10 items per user (seen items excluded) from the recommender: SVD + KNNBaseline +
    Bayesian MF blend for ratings, EASE for ranking; RMSE/MAE and precision/recall/NDCG@10
    against most-popular. Trained on the ratings given up to the training cutoff (it uses no
    feature view: data_platform.features.training)."""
    started = time.perf_counter()
    cutoff = now_utc()
    ratings = training.rating_labels(ratings_clean, cutoff)
    budget = float(os.environ.get("DATA_PLATFORM_RECOMMENDER_BUDGET_S", RECOMMENDER_BUDGET_S))
    model, metrics = recommender.train_and_evaluate(
        ratings, recommender.RecommenderConfig(time_budget_s=budget)
    )
    manifest = model_store.store().save(
        "recommender", model, metrics=metrics, data_snapshot_id=snapshot_id(ratings)
    )
    recs = model.recommend(n=10)
    return dg.Output(recs, metadata=_model_metadata(metrics, manifest, recs, started, cutoff))


@dg.multi_asset(
    group_name=MODELS,
    outs={
        "customer_segments": dg.AssetOut(io_manager_key=IO, kinds={"scikitlearn", "sql"},
                                         description="Segment of each customer (KMeans on log-scaled RFM)."),
        "segment_profiles": dg.AssetOut(io_manager_key=IO, kinds={"scikitlearn", "sql"},
                                        description="Size, share, mean R/F/M and a readable label per segment."),
    },
    deps=[CUSTOMER_FEATURES.name],
)
def segmentation_model(
    customers_clean: pd.DataFrame, warehouse: WarehouseResource, model_store: ModelStoreResource
):
    """Customers (with the synthetic source's true_segment, to report agreement with it) joined
    to customer_features through the feature store: nothing computed after the training cutoff
    (`training_cutoff`), no event after the data's end then (`features_as_of`)."""
    started = time.perf_counter()
    with offline_store(warehouse) as offline:
        training_set = training.segmentation_training_set(customers_clean, offline, now_utc())
    data = training_set.data
    model, metrics = segmentation.train_and_evaluate(data)
    manifest = model_store.store().save(
        "segmentation", model, metrics=metrics, data_snapshot_id=snapshot_id(data)
    )
    assigned = pd.DataFrame(
        {"customer_id": data["customer_id"].to_numpy(), "segment": model.assign(data).to_numpy()}
    )
    profiles = model.profiles(data)
    png = base64.b64encode(model.pca_plot_png(data)).decode()
    metadata = _model_metadata(metrics, manifest, assigned, started, training_set.cutoff)
    metadata["features_as_of"] = training_set.features_as_of.isoformat()
    metadata["segments_plot"] = dg.MetadataValue.md(f"![segments (PCA)](data:image/png;base64,{png})")
    yield dg.Output(assigned, "customer_segments", metadata=metadata)
    yield dg.Output(profiles, "segment_profiles", metadata={health.ROW_COUNT: len(profiles)})


@dg.multi_asset(
    group_name=MODELS,
    outs={
        "review_sentiment": dg.AssetOut(io_manager_key=IO, kinds={"scikitlearn", "sql"},
                                        description="Calibrated P(positive) for every review."),
        "product_sentiment": dg.AssetOut(io_manager_key=IO, kinds={"scikitlearn", "sql"},
                                         description="Per-product sentiment features."),
    },
)
def sentiment_model(reviews_clean: pd.DataFrame, model_store: ModelStoreResource):
    started = time.perf_counter()
    labelled = reviews_clean[reviews_clean["label"].notna()]
    model, metrics = sentiment.train_and_evaluate(labelled, sentiment.SentimentConfig(folds=5))
    manifest = model_store.store().save(
        "sentiment", model, metrics=metrics, data_snapshot_id=snapshot_id(labelled)
    )
    scored = model.score_reviews(reviews_clean)
    per_product = sentiment.product_sentiment(scored)
    yield dg.Output(scored, "review_sentiment", metadata=_model_metadata(metrics, manifest, scored, started))
    yield dg.Output(per_product, "product_sentiment", metadata={health.ROW_COUNT: len(per_product)})


@dg.asset(
    group_name=MODELS,
    io_manager_key=IO,
    kinds={"statsmodels", "sql"},
    check_specs=[dg.AssetCheckSpec("sample_ratio_mismatch", asset="experiment_results")],
)
def experiment_results(experiments_clean: pd.DataFrame):
    """Per experiment and variant: conversion, lift with confidence interval, p-value, power,
    minimum detectable effect and the sample-ratio-mismatch p-value."""
    started = time.perf_counter()
    analysis, metrics = experiments.train_and_evaluate(experiments_clean)
    table = analysis.results
    yield dg.Output(
        table,
        metadata={
            **{f"model/{k}": float(v) for k, v in metrics.items()},
            health.ROW_COUNT: len(table),
            health.DURATION_SECONDS: time.perf_counter() - started,
        },
    )
    p = metrics.get("srm_pvalue", 1.0)
    yield dg.AssetCheckResult(
        check_name="sample_ratio_mismatch",
        passed=bool(p >= SRM_ALPHA),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"srm_pvalue": float(p), "alpha": SRM_ALPHA},
        description=(
            f"variant sizes match the intended split (chi-square p = {p:.3g})"
            if p >= SRM_ALPHA
            else f"sample-ratio mismatch: chi-square p = {p:.2g} < {SRM_ALPHA}: assignment is broken"
        ),
    )


MODEL_ASSETS = [recommendations, segmentation_model, sentiment_model, experiment_results]
