"""Data quality, pure: health metrics, cleaning rules and the anomaly detector (no Dagster).

`detect(history, current, config=None) -> Verdict` judges one run's metrics against the asset's
own past; see docs/anomaly.md.
"""

from data_platform.quality.anomaly import AnomalyConfig, MetricConfig, detect
from data_platform.quality.verdict import MetricResult, MultivariateResult, Verdict

__all__ = [
    "AnomalyConfig",
    "MetricConfig",
    "MetricResult",
    "MultivariateResult",
    "Verdict",
    "detect",
]
