"""Customer segmentation: KMeans over log-scaled RFM and basket features, k chosen by silhouette.

Recency, frequency and monetary value are heavy-tailed (a few wholesalers spend a thousand
times the median), so they are log-transformed before standard scaling; otherwise KMeans spends
its clusters on outliers. The basket shape (`lines_per_order`, `units_per_line`, used when the
frame has them) is log-scaled the same way: customers who differ in how they buy (many single
items, or a few bulk lines) can spend alike, so RFM alone cannot tell them apart. Optional
`share_<category>` columns are already on [0, 1]; after scaling, the whole category-mix block is
weighted as one feature (each column by 1/sqrt(count)), so that a catalogue of many categories
does not outvote the behavioural features. Negative monetary values (net refunds) count as 0.

k is the candidate in [k_min, k_max] with the best silhouette among those whose smallest
segment holds at least `min_segment_share` of customers (a 0.3% segment is not actionable).
Stability is the mean adjusted Rand index between the model's labels and those of KMeans
refitted on bootstrap resamples, both evaluated on every customer.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    silhouette_score,
)
from sklearn.preprocessing import StandardScaler

RFM_COLUMNS = ("recency_days", "frequency", "monetary")
BASKET_COLUMNS = ("lines_per_order", "units_per_line")
LOG_COLUMNS = RFM_COLUMNS + BASKET_COLUMNS
SHARE_PREFIX = "share_"


@dataclass(frozen=True)
class SegmentationConfig:
    k_min: int = 3
    k_max: int = 8
    min_segment_share: float = 0.02
    n_bootstrap: int = 20
    n_init: int = 10
    use_category_shares: bool = True
    # Basket columns are used when present in the frame.
    use_basket_features: bool = True
    # Silhouette is O(n^2); above this many customers it is computed on a seeded sample.
    silhouette_sample: int = 5000
    seed: int = 0


class Segmenter:
    """Trained segmentation; segment 0 is the highest-spending segment."""

    def __init__(self, features: tuple[str, ...], scaler, kmeans, order: np.ndarray):
        self.features = features
        self._scaler = scaler
        self._weights = feature_weights(features)
        self._kmeans = kmeans
        # Maps KMeans' arbitrary cluster numbers to segments ordered by mean monetary value.
        self._order = order
        self.labels: dict[int, str] = {}

    @property
    def k(self) -> int:
        return int(self._kmeans.n_clusters)

    def transform(self, rfm: pd.DataFrame) -> np.ndarray:
        return self._scaler.transform(feature_matrix(rfm, self.features)) * self._weights

    def assign(self, rfm: pd.DataFrame) -> pd.Series:
        """Segment per row (index kept); rows with a missing RFM value get <NA>."""
        check_columns(rfm, self.features)
        ok = complete_rows(rfm, self.features)
        out = pd.Series(pd.NA, index=rfm.index, dtype="Int64", name="segment")
        if ok.any():
            raw = self._kmeans.predict(self.transform(rfm[ok]))
            out[ok] = self._order[raw]
        return out

    def profiles(self, rfm: pd.DataFrame) -> pd.DataFrame:
        seg = self.assign(rfm)
        df = pd.DataFrame(
            {
                "segment": seg,
                "recency_days": pd.to_numeric(rfm["recency_days"]).astype(float),
                "frequency": pd.to_numeric(rfm["frequency"]).astype(float),
                "monetary": pd.to_numeric(rfm["monetary"]).astype(float),
            }
        ).dropna(subset=["segment"])
        grouped = df.groupby("segment")
        prof = pd.DataFrame(
            {
                "size": grouped.size(),
                "mean_recency_days": grouped["recency_days"].mean(),
                "mean_frequency": grouped["frequency"].mean(),
                "mean_monetary": grouped["monetary"].mean(),
            }
        ).reindex(range(self.k), fill_value=0)
        prof["size"] = prof["size"].astype("int64")
        total = max(int(prof["size"].sum()), 1)
        prof["share"] = prof["size"] / total
        prof["label"] = [self.labels.get(s, f"segment {s}") for s in prof.index]
        prof = prof.rename_axis("segment").reset_index()
        return prof[
            [
                "segment",
                "size",
                "share",
                "mean_recency_days",
                "mean_frequency",
                "mean_monetary",
                "label",
            ]
        ]

    def pca_plot_png(self, rfm: pd.DataFrame, max_points: int = 3000) -> bytes:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ok = complete_rows(rfm, self.features)
        sub = rfm[ok]
        if len(sub) > max_points:
            sub = sub.sample(max_points, random_state=0)
        x = self.transform(sub)
        seg = self.assign(sub).to_numpy(dtype=int)
        xy = (
            PCA(n_components=2, random_state=0).fit_transform(x)
            if x.shape[1] >= 2
            else np.c_[x, 0 * x]
        )
        fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=80)
        for s in range(self.k):
            m = seg == s
            ax.scatter(xy[m, 0], xy[m, 1], s=4, alpha=0.6, label=self.labels.get(s, str(s)))
        ax.set_xlabel("PC1")
        ax.set_ylabel("PC2")
        ax.set_title("Customer segments (PCA of scaled RFM)", fontsize=9)
        ax.legend(fontsize=6, markerscale=2, loc="best")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        return buf.getvalue()


def train_and_evaluate(
    data: pd.DataFrame, config: SegmentationConfig | None = None
) -> tuple[Segmenter, dict[str, float]]:
    cfg = config or SegmentationConfig()
    if cfg.k_min < 2 or cfg.k_max < cfg.k_min:
        raise ValueError(f"segmentation: need 2 <= k_min <= k_max, got {cfg.k_min}..{cfg.k_max}")
    shares = (
        tuple(c for c in data.columns if c.startswith(SHARE_PREFIX))
        if cfg.use_category_shares
        else ()
    )
    basket = (
        tuple(c for c in BASKET_COLUMNS if c in data.columns) if cfg.use_basket_features else ()
    )
    features = RFM_COLUMNS + basket + shares
    check_columns(data, features)
    ok = complete_rows(data, features)
    rfm = data[ok]
    if len(rfm) < cfg.k_max * 5:
        raise ValueError(
            f"segmentation: {len(rfm)} complete customers is too few for up to {cfg.k_max} segments"
        )
    scaler = StandardScaler().fit(feature_matrix(rfm, features))
    x = scaler.transform(feature_matrix(rfm, features)) * feature_weights(features)
    rng = np.random.default_rng(cfg.seed)
    sample = rng.choice(len(x), size=min(len(x), cfg.silhouette_sample), replace=False)

    best = None
    fallback = None
    for k in range(cfg.k_min, cfg.k_max + 1):
        km = KMeans(n_clusters=k, n_init=cfg.n_init, random_state=cfg.seed).fit(x)
        sil = float(silhouette_score(x[sample], km.labels_[sample]))
        smallest = float(np.bincount(km.labels_, minlength=k).min() / len(x))
        if fallback is None or smallest > fallback[2]:
            fallback = (km, sil, smallest)
        if smallest >= cfg.min_segment_share and (best is None or sil > best[1]):
            best = (km, sil, smallest)
    # If no k satisfies the size floor, the most balanced candidate is the least bad.
    km, sil, smallest = best or fallback

    means = pd.Series(feature_matrix(rfm, ("monetary",))[:, 0]).groupby(km.labels_).mean()
    order = np.empty(km.n_clusters, dtype=np.int64)
    order[means.sort_values(ascending=False).index.to_numpy()] = np.arange(km.n_clusters)
    model = Segmenter(features, scaler, km, order)
    labels = model.assign(rfm).to_numpy(dtype=int)
    model.labels = name_segments(rfm, labels, model.k)

    metrics = {
        "k": float(model.k),
        "silhouette": sil,
        "davies_bouldin": float(davies_bouldin_score(x, labels)),
        "calinski_harabasz": float(calinski_harabasz_score(x, labels)),
        "stability": bootstrap_stability(x, km, cfg),
        "smallest_segment_share": smallest,
        "largest_segment_share": float(np.bincount(labels).max() / len(labels)),
        "n_customers": float(len(rfm)),
        "n_excluded": float((~ok).sum()),
    }
    if "true_segment" in rfm.columns and rfm["true_segment"].notna().any():
        known = rfm["true_segment"].notna().to_numpy()
        metrics["ari_true_segments"] = float(
            adjusted_rand_score(rfm["true_segment"].astype(str).to_numpy()[known], labels[known])
        )
    return model, metrics


def bootstrap_stability(x: np.ndarray, km: KMeans, cfg: SegmentationConfig) -> float:
    rng = np.random.default_rng(cfg.seed + 1)
    scores = []
    for b in range(cfg.n_bootstrap):
        idx = rng.integers(0, len(x), len(x))
        refit = KMeans(n_clusters=km.n_clusters, n_init=cfg.n_init, random_state=cfg.seed + 1 + b)
        refit.fit(x[idx])
        scores.append(adjusted_rand_score(km.labels_, refit.predict(x)))
    return float(np.mean(scores)) if scores else float("nan")


def name_segments(rfm: pd.DataFrame, labels: np.ndarray, k: int) -> dict[int, str]:
    """Readable names from each segment's mean percentile of recency and of frequency+monetary."""
    recent = 1.0 - pd.to_numeric(rfm["recency_days"]).astype(float).rank(pct=True).to_numpy()
    value = 0.5 * (
        pd.to_numeric(rfm["frequency"]).astype(float).rank(pct=True).to_numpy()
        + pd.to_numeric(rfm["monetary"]).astype(float).rank(pct=True).to_numpy()
    )
    names = {}
    for s in range(k):
        m = labels == s
        r, v = (float(recent[m].mean()), float(value[m].mean())) if m.any() else (0.5, 0.5)
        if r >= 0.55:
            name = "champions" if v >= 0.6 else ("loyal" if v >= 0.45 else "new")
        elif r < 0.45:
            name = "at risk" if v >= 0.5 else "dormant"
        else:
            name = "loyal" if v >= 0.6 else ("promising" if v >= 0.4 else "needs attention")
        names[s] = name
    # Segments are ordered by spend, so a repeated name gets a suffix on the lower-spending one.
    seen: dict[str, int] = {}
    for s in range(k):
        base = names[s]
        seen[base] = seen.get(base, 0) + 1
        if seen[base] > 1:
            names[s] = f"{base} ({seen[base]})"
    return names


def check_columns(df: pd.DataFrame, features) -> None:
    missing = [c for c in features if c not in df.columns]
    if missing:
        raise ValueError(f"segmentation: RFM frame is missing column(s) {missing}")


def complete_rows(df: pd.DataFrame, features) -> np.ndarray:
    numeric = pd.DataFrame({c: pd.to_numeric(df[c], errors="coerce") for c in features})
    return numeric.notna().all(axis=1).to_numpy()


def feature_matrix(df: pd.DataFrame, features) -> np.ndarray:
    cols = []
    for c in features:
        v = pd.to_numeric(df[c], errors="coerce").astype(float).to_numpy()
        cols.append(np.log1p(np.clip(v, 0.0, None)) if c in LOG_COLUMNS else v)
    return np.column_stack(cols)


def feature_weights(features) -> np.ndarray:
    """1 per behavioural feature; the category shares together weigh as much as one feature."""
    n_shares = sum(c.startswith(SHARE_PREFIX) for c in features)
    return np.array(
        [1.0 / np.sqrt(n_shares) if c.startswith(SHARE_PREFIX) else 1.0 for c in features]
    )
