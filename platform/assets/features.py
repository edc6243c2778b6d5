"""Features: customer RFM (+ category mix), recommender user/item features, review text features."""


import time

import dagster as dg
import pandas as pd

from data_platform.assets.health import health_metadata
from data_platform.assets.partitions import partition_day
from data_platform.catalog import FEATURES
from data_platform.ml import features

IO = "warehouse_io_manager"


def build_feature_assets(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(group_name=FEATURES, io_manager_key=IO, kinds={"pandas", "sql"})
    def customer_rfm(orders_clean: pd.DataFrame, products_clean: pd.DataFrame) -> dg.Output:
        """Recency, frequency, monetary value and category mix per customer over every stored day."""
        started = time.perf_counter()
        rfm = features.customer_rfm(orders_clean, products=products_clean)
        return dg.Output(rfm, metadata=health_metadata(rfm, key=("customer_id",), started=started))

    @dg.asset(group_name=FEATURES, io_manager_key=IO, kinds={"pandas", "sql"})
    def user_features(ratings_clean: pd.DataFrame) -> dg.Output:
        """Per-user rating activity for the recommender."""
        started = time.perf_counter()
        frame = features.user_features(ratings_clean)
        return dg.Output(frame, metadata=health_metadata(frame, key=("user_id",), started=started))

    @dg.asset(group_name=FEATURES, io_manager_key=IO, kinds={"pandas", "sql"})
    def item_features(ratings_clean: pd.DataFrame, products_clean: pd.DataFrame) -> dg.Output:
        """Per-item popularity and shrunk mean rating for the recommender."""
        started = time.perf_counter()
        frame = features.item_features(ratings_clean, products_clean)
        return dg.Output(frame, metadata=health_metadata(frame, key=("item_id",), started=started))

    @dg.asset(
        group_name=FEATURES, io_manager_key=IO, partitions_def=partitions_def, kinds={"pandas", "sql"}
    )
    def review_text_features(context: dg.AssetExecutionContext, reviews_clean: pd.DataFrame) -> dg.Output:
        """Length, negation and emphasis features of each day's reviews."""
        started = time.perf_counter()
        frame = features.review_text_features(reviews_clean)
        return dg.Output(
            frame,
            metadata=health_metadata(
                frame, key=("review_id",), day=partition_day(context), started=started
            ),
        )

    return [customer_rfm, user_features, item_features, review_text_features]
