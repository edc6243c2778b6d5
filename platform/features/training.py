"""The training data of the platform's models, read through the feature store at a cutoff.

The training cutoff is the time a model trains: nothing computed after it is used.

- **Segmentation**: the labels are the customers (``customers_clean``: one row per customer,
  with ``true_segment`` when the source knows it, the evaluation label), all labelled at the
  end of the data ``customer_features`` had at the cutoff (its newest event time then: the
  cutoff itself on a live platform, an earlier day on a replay or a backfill computed today);
  ``get_training_set`` adds each customer's value as of that time, from rows created by the
  cutoff, within the view's TTL. Nothing from after the cutoff is used, no event after the
  label time either. A customer with no value (no purchase yet, or only a value older than the
  TTL) has nothing to segment by and is left out.
- **Recommender**: its models learn from the ratings alone (user, item, stars, time); no feature
  view holds anything they use, so nothing is joined. What it takes from the store is the
  cutoff rule: its labels are the ratings given at or before the training cutoff.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from data_platform.features.offline import OfflineStore, get_training_set, naive_utc_stamp
from data_platform.features.views import CUSTOMER_FEATURES

SEGMENT_LABEL = "true_segment"
RATED_AT = "rated_at"


@dataclass(frozen=True)
class TrainingSet:
    data: pd.DataFrame
    cutoff: pd.Timestamp  # nothing created after it is used
    features_as_of: pd.Timestamp  # the label time: no event after it is used


def segmentation_training_set(customers: pd.DataFrame, store: OfflineStore,
                              cutoff: pd.Timestamp) -> TrainingSet:
    """One row per customer with a value of ``customer_features``, by customer: the entity,
    ``true_segment`` when ``customers`` has it, and the view's features as of the data's end
    at ``cutoff`` (the same history and cutoff give the same rows)."""
    view = CUSTOMER_FEATURES
    cutoff = naive_utc_stamp(cutoff)
    as_of = store.newest_event(view, known_at=cutoff)
    if as_of is None:
        raise ValueError(f"segmentation: {view.name!r} holds no value computed by the training cutoff "
                         f"{cutoff}: materialize {view.name} first")
    columns = [view.entity, *([SEGMENT_LABEL] if SEGMENT_LABEL in customers.columns else [])]
    labels = (customers[columns].dropna(subset=[view.entity])
              .drop_duplicates(view.entity).sort_values(view.entity).reset_index(drop=True))
    labels[view.event_timestamp] = as_of
    joined = get_training_set(labels, [view], store, known_at=cutoff)
    known = joined[view.feature_names].notna().any(axis=1).to_numpy()
    if not known.any():
        raise ValueError(f"segmentation: no customer of the labels has a value of {view.name!r} "
                         f"as of {as_of} (its newest data at the training cutoff {cutoff})")
    data = joined[known].drop(columns=[view.event_timestamp]).reset_index(drop=True)
    return TrainingSet(data, cutoff, as_of)


def rating_labels(ratings: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """The ratings given at or before ``cutoff`` (all columns, in their order)."""
    if RATED_AT not in ratings.columns:
        raise ValueError(f"ratings lack the column {RATED_AT!r}: a training cutoff needs the rating times")
    rated_at = pd.to_datetime(ratings[RATED_AT], utc=True, format="ISO8601").dt.tz_localize(None)
    known = (rated_at <= naive_utc_stamp(cutoff)).to_numpy()
    return ratings[known].reset_index(drop=True)
