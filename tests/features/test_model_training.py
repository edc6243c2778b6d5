"""The models' training data through the feature store: values as of the training cutoff, never
from after it (on SQLite and on PostgreSQL), and no loss of model quality for it."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from data_platform.assets.feature_store import build_feature_store
from data_platform.assets.models import segmentation_model
from data_platform.features import OfflineStore, get_training_set, training
from data_platform.features.views import CUSTOMER_FEATURES, customer_rows
from data_platform.ml import recommender, segmentation
from data_platform.ml.features import customer_rfm
from data_platform.resources.model_store import ModelStore, ModelStoreResource
from data_platform.resources.warehouse import WarehouseIOManager, WarehouseResource
from data_platform.sources import synthetic
from data_platform.tablestore import TableStore

CUTOFF = pd.Timestamp("2026-03-10 12:00:00")
H = pd.Timedelta(hours=1)
D = pd.Timedelta(days=1)
FEATURES = CUSTOMER_FEATURES.feature_names
# Four kinds of customer, far apart in recency, orders, spend and basket shape (log scale).
KINDS = {"champions": (5, 30, 5000, 5.0, 2.0), "new": (8, 1, 60, 1.5, 1.0),
         "at_risk": (200, 12, 1500, 3.0, 4.0), "dormant": (300, 1, 40, 1.0, 1.0)}
FAST = segmentation.SegmentationConfig(k_min=3, k_max=5, n_bootstrap=3, n_init=2)


def computation(ids: list[str], values: np.ndarray, event: pd.Timestamp) -> pd.DataFrame:
    frame = pd.DataFrame(values, columns=FEATURES)
    frame.insert(0, "customer_id", ids)
    frame["event_timestamp"] = event
    return frame


def customers_of_kinds(n_per: int = 60, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """customers_clean-like labels and each one's feature values drawn around its kind."""
    rng = np.random.default_rng(seed)
    ids, truth, values = [], [], []
    for kind, (r, f, m, lines, units) in KINDS.items():
        for _ in range(n_per):
            ids.append(f"C{len(ids):04d}")
            truth.append(kind)
            noise = np.exp(rng.normal(0, 0.2, 5))
            values.append([r * noise[0], max(1.0, round(f * noise[1])), m * noise[2], m / f,
                           lines * noise[3], units * noise[4]])
    customers = pd.DataFrame({"customer_id": ids, "true_segment": truth, "country": "NL"})
    return customers, np.array(values)


def test_segmentation_reads_each_customers_value_as_of_the_cutoff_and_nothing_later(offline):
    ids = ["c1", "c2", "c3", "c4", "c5"]
    past = np.arange(30, dtype=float).reshape(5, 6) + 1.0
    offline.write(CUSTOMER_FEATURES, computation(ids, past, CUTOFF - 2 * D), created_at=CUTOFF - 2 * D + H,
                  computation="past")
    # c2 has a newer value known before the cutoff: it is the one to use.
    offline.write(CUSTOMER_FEATURES, computation(["c2"], past[1:2] * 10, CUTOFF - H), created_at=CUTOFF - H / 2,
                  computation="recent")
    # After the cutoff: a new computation, and a correction of the past made after the cutoff.
    offline.write(CUSTOMER_FEATURES, computation(ids, past + 1000, CUTOFF + H), created_at=CUTOFF + 2 * H,
                  computation="future")
    offline.write(CUSTOMER_FEATURES, computation(ids, past + 2000, CUTOFF - 2 * D), created_at=CUTOFF + H,
                  computation="late correction")
    # c6 only has a value older than the TTL; c7 has none.
    offline.write(CUSTOMER_FEATURES, computation(["c6"], past[:1], CUTOFF - 8 * D), created_at=CUTOFF - 8 * D,
                  computation="stale")
    customers = pd.DataFrame({"customer_id": ["c7", "c6", "c5", "c4", "c3", "c2", "c1"],
                              "true_segment": ["x"] * 7})

    training_set = training.segmentation_training_set(customers, offline, CUTOFF)

    got = training_set.data
    assert training_set.features_as_of == CUTOFF - H and training_set.cutoff == CUTOFF
    assert got["customer_id"].tolist() == ids
    expected = past.copy()
    expected[1] *= 10
    assert np.array_equal(got[FEATURES].to_numpy(dtype=float), expected)
    assert list(got.columns) == ["customer_id", "true_segment", *FEATURES]
    # The same cutoff after the future computation sees it: the cutoff, not the data, decides.
    later = training.segmentation_training_set(customers, offline, CUTOFF + 3 * H).data
    assert np.array_equal(later[FEATURES].to_numpy(dtype=float), past + 1000)


def test_a_segmentation_trained_through_the_store_never_learns_from_future_values(offline):
    customers, values = customers_of_kinds()
    ids = customers["customer_id"].tolist()
    offline.write(CUSTOMER_FEATURES, computation(ids, values, CUTOFF - D), created_at=CUTOFF - D,
                  computation="known")
    # After the cutoff every customer's values are shuffled among customers: a model that saw
    # them could not recover the kinds.
    shuffled = values[np.random.default_rng(1).permutation(len(values))]
    offline.write(CUSTOMER_FEATURES, computation(ids, shuffled, CUTOFF + H), created_at=CUTOFF + H,
                  computation="future")

    data = training.segmentation_training_set(customers, offline, CUTOFF).data
    _, metrics = segmentation.train_and_evaluate(data, FAST)
    expected = customers[["customer_id", "true_segment"]].assign(**dict(zip(FEATURES, values.T, strict=True)))
    _, direct = segmentation.train_and_evaluate(expected, FAST)
    assert metrics["ari_true_segments"] > 0.9
    assert metrics == pytest.approx(direct)  # the same model as on the values known at the cutoff
    leaked = training.segmentation_training_set(customers, offline, CUTOFF + 2 * H).data
    assert segmentation.train_and_evaluate(leaked, FAST)[1]["ari_true_segments"] < 0.2


def test_without_a_value_at_the_cutoff_segmentation_says_so(offline):
    customers, values = customers_of_kinds(n_per=2)
    offline.write(CUSTOMER_FEATURES, computation(customers["customer_id"].tolist(), values, CUTOFF + H),
                  created_at=CUTOFF + H)
    with pytest.raises(ValueError, match="'customer_features' holds no value computed by the training cutoff"):
        training.segmentation_training_set(customers, offline, CUTOFF)
    strangers = pd.DataFrame({"customer_id": ["nobody"]})
    with pytest.raises(ValueError, match="no customer of the labels has a value"):
        training.segmentation_training_set(strangers, offline, CUTOFF + 2 * H)


def test_a_replay_trains_on_the_data_it_has_computed_today_but_never_on_later_events(offline):
    """History computed at the cutoff for data that ended weeks before (a backfill, a file
    source): the labels sit at the data's end, so the TTL holds, and what was computed by the
    cutoff counts; what was computed after the cutoff (a correction, the next day) does not."""
    ids = ["c1", "c2"]
    end = CUTOFF - 20 * D
    first = np.ones((2, 6))
    offline.write(CUSTOMER_FEATURES, computation(ids, first, end - D), created_at=CUTOFF - 2 * H,
                  computation="day 1")
    offline.write(CUSTOMER_FEATURES, computation(ids, first * 2, end), created_at=CUTOFF - H, computation="day 2")
    # Computed after the cutoff: a correction of day 2, and the next day.
    offline.write(CUSTOMER_FEATURES, computation(ids, first * 3, end), created_at=CUTOFF + H, computation="fix")
    offline.write(CUSTOMER_FEATURES, computation(ids, first * 4, end + D), created_at=CUTOFF + H,
                  computation="day 3")
    training_set = training.segmentation_training_set(pd.DataFrame({"customer_id": ids}), offline, CUTOFF)
    assert training_set.features_as_of == end
    assert (training_set.data[FEATURES].to_numpy(dtype=float) == 2.0).all()
    # The join's own rule without known_at: at the data's end nothing computed today was known.
    labels = pd.DataFrame({"customer_id": ids, "event_timestamp": [end, end]})
    plain = get_training_set(labels, [CUSTOMER_FEATURES], offline)
    assert plain[FEATURES].isna().all().all()
    known_later = get_training_set(labels, [CUSTOMER_FEATURES], offline, known_at=CUTOFF + 2 * H)
    assert (known_later[FEATURES].to_numpy(dtype=float) == 3.0).all()


def test_recommender_labels_are_the_ratings_given_up_to_the_cutoff():
    rng = np.random.default_rng(0)
    n = 600
    ratings = pd.DataFrame({"user_id": [f"u{i % 30}" for i in range(n)],
                            "item_id": [f"i{rng.integers(0, 40)}" for _ in range(n)],
                            "rating": rng.integers(1, 6, n).astype(float),
                            "rated_at": CUTOFF - pd.to_timedelta(rng.integers(1, 100_000, n), unit="s")})
    # After the cutoff: new pairs and a re-rating of a known pair that must not replace the old one.
    after = pd.DataFrame({"user_id": ["u0", "u999", "u998"], "item_id": [ratings.item_id[0], "i0", "i1"],
                          "rating": [1.0 if ratings.rating[0] > 1 else 5.0, 3.0, 4.0],
                          "rated_at": [CUTOFF + H, CUTOFF + 2 * H, CUTOFF + D]})
    stored = pd.concat([ratings, after]).sample(frac=1.0, random_state=2).reset_index(drop=True)

    labels = training.rating_labels(stored, CUTOFF.tz_localize("UTC"))

    assert len(labels) == n and (labels["rated_at"] <= CUTOFF).all()
    prepared = recommender.prepare_ratings(labels)
    assert recommender.prepare_ratings(ratings).sort_values(["user_id", "item_id"]).reset_index(drop=True).equals(
        prepared.sort_values(["user_id", "item_id"]).reset_index(drop=True))
    _, metrics = recommender.train_and_evaluate(labels, recommender.RecommenderConfig(time_budget_s=0.5))
    assert metrics["n_users"] == 30 and metrics["n_ratings"] == len(prepared)
    with pytest.raises(ValueError, match="rated_at"):
        training.rating_labels(stored.drop(columns=["rated_at"]), CUTOFF)


def test_customer_rows_are_never_stamped_after_their_computation():
    rfm = pd.DataFrame({"customer_id": ["a", "b"], **{f: [1.0, 2.0] for f in FEATURES},
                        "last_order_at": [CUTOFF - 2 * H, CUTOFF - 3 * H]})
    rfm["recency_days"] = [1.0, 1.0 + 1 / 24]  # customer_rfm's data time: a day after the last order
    assert (customer_rows(rfm, CUTOFF)["event_timestamp"] == CUTOFF).all()
    data_time = customer_rows(rfm, CUTOFF + 2 * D)["event_timestamp"]
    assert ((data_time - (CUTOFF + D - 2 * H)).abs() < pd.Timedelta(milliseconds=1)).all()


def test_segmentation_through_the_store_is_no_worse_on_the_synthetic_source(offline):
    """The demo's 28 days: customer_rfm -> customer_features -> the training set at the
    cutoff -> segments, against training on customer_rfm directly (the path before)."""
    end = date(2026, 12, 1)
    orders = synthetic.generate_range("orders", end - timedelta(days=28), end)
    customers = synthetic.generate("customers")
    rfm = customer_rfm(orders, products=synthetic.generate("products"))
    computed_at = pd.Timestamp(end) + pd.Timedelta(hours=4)
    offline.write(CUSTOMER_FEATURES, customer_rows(rfm, computed_at), created_at=computed_at)
    config = segmentation.SegmentationConfig(n_bootstrap=3, n_init=3)

    data = training.segmentation_training_set(customers, offline, computed_at + pd.Timedelta(hours=1)).data
    model, metrics = segmentation.train_and_evaluate(data, config)
    truth = customers[["customer_id", "true_segment"]]
    _, before = segmentation.train_and_evaluate(rfm.merge(truth, on="customer_id", how="left"), config)

    assert len(data) == len(rfm) and metrics["n_excluded"] == 0
    assert set(segmentation.BASKET_COLUMNS) <= set(model.features)
    assert metrics["ari_true_segments"] >= max(0.6, before["ari_true_segments"])
    assert metrics["stability"] >= before["stability"] - 0.02


def test_the_segmentation_asset_trains_on_the_feature_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    customers, values = customers_of_kinds(n_per=40)
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    rfm = customers[["customer_id"]].assign(**dict(zip(FEATURES, values.T, strict=True)))
    rfm["last_order_at"] = (now - pd.to_timedelta(rfm["recency_days"], unit="D")).dt.floor("s")
    tables = TableStore(url)
    tables.write("customer_rfm", rfm.iloc[:-10])  # the last ten customers never ordered
    tables.write("customers_clean", customers)
    tables.dispose()
    warehouse = WarehouseResource(url=url)
    view_asset = next(a for a in build_feature_store()[0] if a.key.path[-1] == CUSTOMER_FEATURES.name)
    result = dg.materialize(
        [dg.SourceAsset("customer_rfm"), dg.SourceAsset("customers_clean", io_manager_key="warehouse_io_manager"),
         view_asset, segmentation_model],
        resources={"warehouse": warehouse, "warehouse_io_manager": WarehouseIOManager(warehouse=warehouse),
                   "model_store": ModelStoreResource(root=str(tmp_path / "models"))})
    assert result.success
    metadata = result.asset_materializations_for_node("segmentation_model")[0].metadata
    assert pd.Timestamp(metadata["training_cutoff"].value) >= now
    assert pd.Timestamp(metadata["features_as_of"].value) <= pd.Timestamp(metadata["training_cutoff"].value)
    assert metadata["model/ari_true_segments"].value > 0.9
    tables = TableStore(url)
    segments = tables.read("customer_segments")
    tables.dispose()
    assert sorted(segments["customer_id"]) == sorted(rfm["customer_id"].iloc[:-10])
    assert ModelStore(tmp_path / "models").manifest("segmentation").data_snapshot_id.endswith(f"-{len(rfm) - 10}")
    offline = OfflineStore(url)
    assert offline.freshness(CUSTOMER_FEATURES)["entities"] == len(rfm) - 10
    offline.dispose()
