"""Data quality, pure: health metrics, cleaning rules and the anomaly detector (no Dagster).

`detect(history, current, config=None) -> Verdict` judges one run's metrics against the asset's
own past; see docs/anomaly.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from data_platform.quality.verdict import MetricResult, MultivariateResult, Verdict

if TYPE_CHECKING:
    from data_platform.quality.anomaly import AnomalyConfig, MetricConfig, detect

__all__ = [
    "AnomalyConfig",
    "MetricConfig",
    "MetricResult",
    "MultivariateResult",
    "Verdict",
    "detect",
]

# Importing any module of this package runs this file, and the detector pulls in SciPy: the
# health metrics every asset computes, and the checks' definitions, load it only when used.
_FROM_ANOMALY = frozenset({"AnomalyConfig", "MetricConfig", "detect"})


def __getattr__(name: str) -> Any:
    if name in _FROM_ANOMALY:
        from data_platform.quality import anomaly

        return getattr(anomaly, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
