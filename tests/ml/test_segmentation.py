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
