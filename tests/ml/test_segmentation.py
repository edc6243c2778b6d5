import pickle

import numpy as np
import pandas as pd
import pytest

from data_platform.ml import segmentation as seg

# Latent segments as (median recency days, median orders, median spend): clearly apart on a log scale.
SEGMENTS = {
    "champions": (5, 30, 5000),
    "new": (8, 1, 60),
    "at_risk": (200, 12, 1500),
    "dormant": (300, 1, 40),
}


def make_rfm(n_per=100, seed=0, with_shares=False):
    rng = np.random.default_rng(seed)
    rows = []
    for name, (r, f, m) in SEGMENTS.items():
        for _ in range(n_per):
            rows.append(
                {
                    "recency_days": r * np.exp(rng.normal(0, 0.25)),
                    "frequency": max(1, round(f * np.exp(rng.normal(0, 0.25)))),
                    "monetary": m * np.exp(rng.normal(0, 0.25)),
                    "true_segment": name,
                }
            )
    df = pd.DataFrame(rows)
    if with_shares:
        df["share_home"] = rng.uniform(0, 1, len(df))
    df.insert(0, "customer_id", [f"c{i}" for i in range(len(df))])
    return df


FAST = seg.SegmentationConfig(k_min=3, k_max=5, n_bootstrap=20, n_init=2)


def test_recovers_true_segments_with_stable_readable_segments():
    rfm = make_rfm()
    model, m = seg.train_and_evaluate(rfm, FAST)
    assert m["k"] == 4
    assert m["ari_true_segments"] > 0.8
    assert m["stability"] > 0.9
    assert m["smallest_segment_share"] >= 0.02
    assert m["silhouette"] > 0.4
    assert all(isinstance(v, float) for v in m.values())
    prof = model.profiles(rfm)
    assert list(prof.columns) == [
        "segment",
        "size",
        "share",
        "mean_recency_days",
        "mean_frequency",
        "mean_monetary",
        "label",
    ]
    assert prof["size"].sum() == len(rfm)
    assert prof["share"].sum() == pytest.approx(1.0)
    assert prof["label"].is_unique
    # The highest-spending, most recent segment is segment 0 and is called what it is.
    assert prof.loc[0, "label"] == "champions"
    labels = dict(zip(prof["label"], prof["mean_recency_days"], strict=True))
    assert "dormant" in labels and labels["dormant"] > 100


def test_assign_keeps_index_marks_incomplete_rows_and_survives_pickle():
    rfm = make_rfm(n_per=60, with_shares=True)
    model, _ = seg.train_and_evaluate(rfm, FAST)
    assert "share_home" in model.features
    probe = rfm.iloc[:5].copy().set_axis([10, 11, 12, 13, 14])
    probe.loc[12, "monetary"] = np.nan
    out = pickle.loads(pickle.dumps(model)).assign(probe)
    assert list(out.index) == [10, 11, 12, 13, 14]
    assert out.isna().tolist() == [False, False, True, False, False]
    assert out.dropna().tolist() == model.assign(probe).dropna().tolist()


def test_pca_plot_is_a_small_png():
    rfm = make_rfm(n_per=50)
    model, _ = seg.train_and_evaluate(rfm, FAST)
    png = model.pca_plot_png(rfm)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert 1_000 < len(png) < 200_000


def test_bad_input_is_refused_clearly():
    with pytest.raises(ValueError, match="missing column"):
        seg.train_and_evaluate(make_rfm().drop(columns=["monetary"]), FAST)
    with pytest.raises(ValueError, match="too few"):
        seg.train_and_evaluate(make_rfm(n_per=3), FAST)


def test_basket_shape_separates_customers_that_rfm_cannot():
    """Two groups with the same recency, orders and spend: one buys many single items, the
    other a few bulk lines. Only the basket columns tell them apart."""
    rng = np.random.default_rng(3)
    rows = []
    for name, lines, units in (("many_items", 6.0, 1.0), ("bulk", 1.2, 5.0)):
        for _ in range(150):
            rows.append(
                {
                    "recency_days": 10 * np.exp(rng.normal(0, 0.3)),
                    "frequency": max(1, round(8 * np.exp(rng.normal(0, 0.3)))),
                    "monetary": 900 * np.exp(rng.normal(0, 0.3)),
                    "lines_per_order": lines * np.exp(rng.normal(0, 0.1)),
                    "units_per_line": units * np.exp(rng.normal(0, 0.1)),
                    "true_segment": name,
                }
            )
    rfm = pd.DataFrame(rows)
    cfg = seg.SegmentationConfig(k_min=2, k_max=4, n_bootstrap=3, n_init=3)
    model, m = seg.train_and_evaluate(rfm, cfg)
    assert model.features == seg.RFM_COLUMNS + seg.BASKET_COLUMNS
    assert m["ari_true_segments"] > 0.95
    _, without = seg.train_and_evaluate(
        rfm,
        seg.SegmentationConfig(
            k_min=2, k_max=4, n_bootstrap=3, n_init=3, use_basket_features=False
        ),
    )
    assert without["ari_true_segments"] < 0.2


def test_category_shares_weigh_as_one_feature_together():
    w = seg.feature_weights(("recency_days", "share_a", "share_b", "share_c", "share_d"))
    assert w.tolist() == pytest.approx([1.0, 0.5, 0.5, 0.5, 0.5])
    assert np.sum(w[1:] ** 2) == pytest.approx(1.0)  # the block's total variance is one feature's


@pytest.mark.parametrize(("days", "min_ari"), [(28, 0.6), (90, 0.9)])
def test_recovers_the_synthetic_sources_segments(days, min_ari):
    """End to end on the platform's own generator: orders -> customer_rfm -> segments."""
    from datetime import date, timedelta

    from data_platform.ml.features import customer_rfm
    from data_platform.sources import synthetic

    end = date(2026, 12, 1)
    orders = synthetic.generate_range("orders", end - timedelta(days=days), end)
    rfm = customer_rfm(orders, products=synthetic.generate("products"))
    truth = synthetic.generate("customers")[["customer_id", "true_segment"]]
    rfm = rfm.merge(truth, on="customer_id", how="left")
    model, m = seg.train_and_evaluate(rfm, seg.SegmentationConfig(n_bootstrap=3, n_init=3))
    assert set(seg.BASKET_COLUMNS) <= set(model.features)
    assert m["ari_true_segments"] >= min_ari
    assert m["k"] >= 3 and m["smallest_segment_share"] >= 0.02


def test_online_retail_segments_are_stable_and_actionable(real_data_dir):
    """The real-data targets: bootstrap stability >= 0.9, smallest segment >= 2%."""
    from data_platform.bench.models import online_retail_rfm

    rfm = online_retail_rfm(str(real_data_dir / "online_retail"))
    model, m = seg.train_and_evaluate(rfm, seg.SegmentationConfig(n_bootstrap=10))
    assert set(seg.BASKET_COLUMNS) <= set(model.features)
    assert m["n_customers"] > 4000
    assert m["stability"] >= 0.9
    assert m["smallest_segment_share"] >= 0.02
