"""Multivariate detectors: PyOD IsolationForest and LOF over robustly scaled metric vectors.

They catch joint shifts that no single metric shows clearly. Their thresholds come from the
asset's own history (the worst training score plus a margin of the score spread), so a clean
history calibrates them without labels.
"""

from __future__ import annotations

import warnings

import numpy as np

from data_platform.quality.verdict import MultivariateResult

# Small forests keep a check fast (about 10 ms for 180 x 50); deterministic via random_state.
IFOREST_TREES = 16
IFOREST_SAMPLES = 64
LOF_NEIGHBORS = 20


def scale_robustly(history: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre on the median, divide by the IQR; NaN becomes the median (0 after scaling)."""
    median = np.nanmedian(history, axis=0)
    q75, q25 = np.nanpercentile(history, [75, 25], axis=0)
    spread = (q75 - q25) / 1.349
    spread = np.where(spread > 0, spread, np.nanstd(history, axis=0))
    spread = np.where(spread > 0, spread, 1.0)
    scaled_history = np.nan_to_num((history - median) / spread, nan=0.0)
    scaled_current = np.nan_to_num((current - median) / spread, nan=0.0)
    # Clipping keeps one wild metric from making every other dimension irrelevant to LOF.
    return np.clip(scaled_history, -50, 50), np.clip(scaled_current, -50, 50)


# Whitened components never count as less spread than this (in IQR-scaled units): a direction
# the history never moved in (two identical metrics) must not turn rounding into 50 sigma.
WHITEN_FLOOR = 0.1


def whiten_robustly(scaled_history: np.ndarray, scaled_current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotate robustly scaled vectors onto the history's principal components, each divided by
    its robust spread (at least WHITEN_FLOOR).

    Per-metric scaling leaves correlated metrics (a row count and its distinct count) on a thin
    diagonal; a run off that diagonal but inside each metric's own range is then no farther from
    its neighbours than an ordinary run. After whitening it lies far along a minor component.
    """
    centre = np.median(scaled_history, axis=0)
    _, _, components = np.linalg.svd(scaled_history - centre, full_matrices=False)
    history = (scaled_history - centre) @ components.T
    current = (scaled_current - centre) @ components.T
    q75, q25 = np.percentile(history, [75, 25], axis=0)
    spread = np.maximum((q75 - q25) / 1.349, WHITEN_FLOOR)
    return np.clip(history / spread, -50, 50), np.clip(current / spread, -50, 50)


def _threshold(train_scores: np.ndarray, margin: float) -> float:
    q75, q25 = np.percentile(train_scores, [75, 25])
    return float(np.max(train_scores) + margin * (q75 - q25))


def score_multivariate(
    history: np.ndarray,
    current: np.ndarray,
    names: list[str],
    *,
    margin: float = 1.0,
    random_state: int = 0,
    whiten: bool = False,
) -> MultivariateResult:
    """Score `current` (1-D) against `history` (rows = past runs) with IForest and LOF.

    whiten: score in the robustly whitened space (`whiten_robustly`) instead of per-metric
    scaled values; contributors are still named from the per-metric values.
    """
    # PyOD (and scikit-learn under it) load on first use: importing the checks stays fast.
    from pyod.models.iforest import IForest
    from pyod.models.lof import LOF

    scaled_history, scaled_current = scale_robustly(history, current)
    per_metric = scaled_current
    if whiten:
        scaled_history, scaled_current = whiten_robustly(scaled_history, scaled_current)
    n = scaled_history.shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        forest = IForest(
            n_estimators=IFOREST_TREES,
            max_samples=min(IFOREST_SAMPLES, n),
            random_state=random_state,
            n_jobs=1,
        ).fit(scaled_history)
        # A KD-tree avoids scikit-learn's OpenMP brute-force path, whose threads crawl on a
        # busy shared machine; results are identical.
        lof = LOF(n_neighbors=min(LOF_NEIGHBORS, n - 1), algorithm="kd_tree").fit(scaled_history)
        row = scaled_current.reshape(1, -1)
        iforest_score = float(forest.decision_function(row)[0])
        lof_score = float(lof.decision_function(row)[0])
    iforest_threshold = _threshold(forest.decision_scores_, margin)
    lof_threshold = _threshold(lof.decision_scores_, margin)
    order = np.argsort(-np.abs(per_metric))
    contributors = [names[i] for i in order[:5] if abs(per_metric[i]) >= 2.0]
    return MultivariateResult(
        iforest_score=iforest_score,
        iforest_threshold=iforest_threshold,
        iforest_flagged=iforest_score > iforest_threshold,
        lof_score=lof_score,
        lof_threshold=lof_threshold,
        lof_flagged=lof_score > lof_threshold,
        top_contributors=contributors,
    )
