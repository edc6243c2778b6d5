"""The platform's own feature views, over the feature tables the pipeline already builds."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from data_platform.features.offline import naive_utc_stamp, now_utc
from data_platform.features.view import Feature, FeatureView

OWNER = "team:ml-platform"
# The features job recomputes every view each night: a value a week old means it stopped.
TTL = timedelta(days=7)


def _platform_view(name: str, entity: str, version: str, description: str, *features: Feature) -> FeatureView:
    """A view of the platform's own: one owner and one TTL for all of them."""
    return FeatureView(name=name, entity=entity, features=features, ttl=TTL, owner=OWNER,
                       description=description, version=version)


CUSTOMER_FEATURES = _platform_view(
    "customer_features", "customer_id",
    "2",  # 2: the basket shape (lines_per_order, units_per_line) that the segmentation trains on
    "Recency, frequency, spend and basket shape of each customer (from customer_rfm).",
    Feature("recency_days", "Float64", "days from the last order line to the computation's data time"),
    Feature("frequency", "Float64", "distinct purchase orders"),
    Feature("monetary", "Float64", "value of every line, returns subtract"),
    Feature("avg_basket", "Float64", "purchase value per order"),
    Feature("lines_per_order", "Float64", "purchase lines per order"),
    Feature("units_per_line", "Float64", "units per purchase line"),
)

PRODUCT_FEATURES = _platform_view(
    "product_features", "item_id", "1",
    "Rating activity of each product (from item_features).",
    Feature("n_ratings", "Int64", "ratings received"),
    Feature("mean_rating", "Float64", "mean rating"),
    Feature("bayesian_mean", "Float64", "mean rating shrunk toward the global mean"),
    Feature("popularity_rank", "Int64", "1 = the most rated item"),
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


# Each view's source table and how its rows become view rows (the assets read the table).
SOURCES = {
    CUSTOMER_FEATURES.name: ("customer_rfm", customer_rows),
    PRODUCT_FEATURES.name: ("item_features", product_rows),
}
