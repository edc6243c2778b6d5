"""Review sentiment: NB-weighted TF-IDF n-grams with logistic regression, calibrated.

Features are TF-IDF word 1-2-grams plus (optionally) character 2-5-grams within word
boundaries, which catch misspellings and word stems in short reviews. Each feature is scaled by
its naive-Bayes log-count ratio (Wang & Manning 2012, "NBSVM"): words that are lopsided between
classes get more weight before the linear model sees them, which helps most on short texts.
Because that scaling distorts the logistic model's probabilities, the classifier is wrapped in
sigmoid calibration with internal cross-validation, so `p_positive` can be averaged per
product and read as a share.

Metrics are k-fold cross-validated (stratified): accuracy, F1, ROC-AUC and Brier score, with
the majority-class accuracy as the baseline to beat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, brier_score_loss, f1_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import FeatureUnion, Pipeline


@dataclass(frozen=True)
class SentimentConfig:
    folds: int = 10
    char_ngrams: bool = True
    nb_scaling: bool = True
    c: float = 4.0
    calibration_folds: int = 3
    min_df: int = 1
    seed: int = 0


class NBScaler(BaseEstimator, TransformerMixin):
    """Multiply each feature by its naive-Bayes log-count ratio between the two classes."""

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def fit(self, x, y):
        y = np.asarray(y)
        p = self.alpha + np.asarray(x[y == 1].sum(axis=0)).ravel()
        q = self.alpha + np.asarray(x[y == 0].sum(axis=0)).ravel()
        self.ratio_ = np.log((p / p.sum()) / (q / q.sum()))
        return self

    def transform(self, x):
        return sparse.csr_matrix(x).multiply(self.ratio_).tocsr()


def build_pipeline(cfg: SentimentConfig) -> Pipeline:
    parts = [
        (
            "words",
            TfidfVectorizer(
                ngram_range=(1, 2), min_df=cfg.min_df, sublinear_tf=True, lowercase=True
            ),
        )
    ]
    if cfg.char_ngrams:
        parts.append(
            (
                "chars",
                TfidfVectorizer(
                    analyzer="char_wb", ngram_range=(2, 5), min_df=cfg.min_df, sublinear_tf=True
                ),
            )
        )
    steps = [("features", FeatureUnion(parts))]
    if cfg.nb_scaling:
        steps.append(("nb", NBScaler()))
    logit = LogisticRegression(C=cfg.c, max_iter=2000)
    steps.append(("clf", CalibratedClassifierCV(logit, method="sigmoid", cv=cfg.calibration_folds)))
    return Pipeline(steps)


class SentimentModel:
    def __init__(self, pipeline: Pipeline):
        self._pipeline = pipeline

    def predict_proba(self, texts) -> np.ndarray:
        """(n, 2) array: columns are P(negative), P(positive), as in scikit-learn."""
        return self._pipeline.predict_proba(clean_texts(texts))

    def score_reviews(self, reviews: pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
        """p_positive and predicted_label per review; reviews without text score <NA>."""
        if "text" not in reviews.columns:
            raise ValueError("reviews: missing column 'text'")
        has_text = (
            reviews["text"].notna().to_numpy()
            & (reviews["text"].astype("string").str.strip().fillna("") != "").to_numpy()
        )
        p = pd.Series(np.nan, index=reviews.index, dtype="Float64")
        if has_text.any():
            p[has_text] = self.predict_proba(reviews["text"][has_text])[:, 1]
        out = pd.DataFrame(
            {
                "review_id": _column_or_na(reviews, "review_id"),
                "product_id": _column_or_na(reviews, "product_id"),
                "p_positive": p,
                "predicted_label": (p >= threshold).astype("Int64"),
            }
        )
        return out.reset_index(drop=True)


def product_sentiment(scored: pd.DataFrame) -> pd.DataFrame:
    """Per product: reviews scored, mean p_positive, share predicted positive."""
    missing = [
        c for c in ("product_id", "p_positive", "predicted_label") if c not in scored.columns
    ]
    if missing:
        raise ValueError(f"scored reviews: missing column(s) {missing}")
    df = scored.dropna(subset=["product_id", "p_positive"])
    g = df.groupby("product_id", sort=True)
    out = pd.DataFrame(
        {
            "n_reviews": g.size().astype("int64"),
            "mean_p_positive": g["p_positive"].mean().astype(float),
            "share_positive": g["predicted_label"].mean().astype(float),
        }
    )
    return out.rename_axis("product_id").reset_index()


def train_and_evaluate(
    data: pd.DataFrame, config: SentimentConfig | None = None
) -> tuple[SentimentModel, dict[str, float]]:
    cfg = config or SentimentConfig()
    texts, labels = labelled_reviews(data)
    counts = np.bincount(labels, minlength=2)
    folds = min(cfg.folds, int(counts.min()))
    if folds < 2:
        raise ValueError(
            f"reviews: need at least 2 labelled reviews of each class, got {counts.tolist()}"
        )
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=cfg.seed)
    acc, f1, auc, brier, majority = [], [], [], [], []
    for train_idx, test_idx in cv.split(texts, labels):
        pipe = build_pipeline(cfg).fit(texts[train_idx], labels[train_idx])
        p = pipe.predict_proba(texts[test_idx])[:, 1]
        y = labels[test_idx]
        pred = (p >= 0.5).astype(int)
        acc.append(accuracy_score(y, pred))
        f1.append(f1_score(y, pred, zero_division=0.0))
        auc.append(roc_auc_score(y, p) if len(set(y)) == 2 else np.nan)
        brier.append(brier_score_loss(y, p))
        top = int(np.bincount(labels[train_idx], minlength=2).argmax())
        majority.append(float(np.mean(y == top)))
    model = SentimentModel(build_pipeline(cfg).fit(texts, labels))
    metrics = {
        "accuracy": float(np.mean(acc)),
        "accuracy_std": float(np.std(acc)),
        "f1": float(np.mean(f1)),
        "roc_auc": float(np.nanmean(auc)),
        "brier": float(np.mean(brier)),
        "accuracy_majority": float(np.mean(majority)),
        "folds": float(folds),
        "n_reviews": float(len(labels)),
        "share_positive": float(labels.mean()),
    }
    return model, metrics


def labelled_reviews(data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    missing = [c for c in ("text", "label") if c not in data.columns]
    if missing:
        raise ValueError(f"reviews: missing column(s) {missing}")
    label = pd.to_numeric(data["label"], errors="coerce")
    text = data["text"].astype("string")
    ok = label.isin([0, 1]).to_numpy() & text.notna().to_numpy()
    ok &= (text.str.strip().fillna("") != "").to_numpy()
    return clean_texts(text[ok]), label[ok].astype(int).to_numpy()


def clean_texts(texts) -> np.ndarray:
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not one string")
    return np.array(["" if pd.isna(t) else str(t) for t in texts], dtype=object)


def _column_or_na(df: pd.DataFrame, col: str) -> pd.Series:
    if col in df.columns:
        return df[col].astype("string")
    return pd.Series(pd.NA, index=df.index, dtype="string")
