"""The platform's own feature views, over the feature tables the pipeline already builds."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from data_platform.features.offline import naive_utc_stamp, now_utc
from data_platform.features.view import Feature, FeatureView

OWNER = "team:ml-platform"

CUSTOMER_FEATURES = FeatureView(
    name="customer_features",
    entity="customer_id",
    features=(
        Feature("recency_days", "Float64", "days from the last order line to the computation's data time"),
        Feature("frequency", "Float64", "distinct purchase orders"),
        Feature("monetary", "Float64", "value of every line, returns subtract"),
        Feature("avg_basket", "Float64", "purchase value per order"),
        Feature("lines_per_order", "Float64", "purchase lines per order"),
        Feature("units_per_line", "Float64", "units per purchase line"),
    ),
    ttl=timedelta(days=7),
    owner=OWNER,
    description="Recency, frequency, spend and basket shape of each customer (from customer_rfm).",
    # 2: the basket shape (lines_per_order, units_per_line) that the segmentation trains on.
    version="2",
)

PRODUCT_FEATURES = FeatureView(
    name="product_features",
    entity="item_id",
    features=(
        Feature("n_ratings", "Int64", "ratings received"),
        Feature("mean_rating", "Float64", "mean rating"),
        Feature("bayesian_mean", "Float64", "mean rating shrunk toward the global mean"),
        Feature("popularity_rank", "Int64", "1 = the most rated item"),
    ),
    ttl=timedelta(days=7),
    owner=OWNER,
    description="Rating activity of each product (from item_features).",
    version="1",
)

VIEWS = (CUSTOMER_FEATURES, PRODUCT_FEATURES)


def customer_rows(rfm: pd.DataFrame, computed_at: pd.Timestamp | None = None) -> pd.DataFrame:
    """customer_rfm as view rows: the values are true as of the end of the data they describe
    (the last order line seen plus the recency of that customer), or as of their computation
    when that is earlier. customer_rfm measures recency to a day after the last order, a time
    the next morning's computation has not reached yet, and a row stamped in the future would
    be invisible to every lookup and training set until then."""
    rows = rfm[[CUSTOMER_FEATURES.entity, *CUSTOMER_FEATURES.feature_names]].copy()
    last = pd.to_datetime(rfm["last_order_at"], format="ISO8601")
    as_of = (last + pd.to_timedelta(rfm["recency_days"].astype("float64"), unit="D")).max()
    computed_at = naive_utc_stamp(computed_at) if computed_at is not None else now_utc()
    rows["event_timestamp"] = min(naive_utc_stamp(as_of), computed_at) if pd.notna(as_of) else computed_at
    return rows


def product_rows(items: pd.DataFrame, computed_at: pd.Timestamp) -> pd.DataFrame:
    """item_features as view rows: aggregates over every stored day, true as of their computation."""
    rows = items[[PRODUCT_FEATURES.entity, *PRODUCT_FEATURES.feature_names]].copy()
    rows["event_timestamp"] = computed_at
    return rows
