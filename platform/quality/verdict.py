"""The result of judging one run's metrics against the asset's own history."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MetricResult:
    """One metric's judgement. `score` is signed: how far above (+) or below (-) the band."""

    name: str
    observed: float | None
    expected: float | None = None
    lower: float | None = None
    upper: float | None = None
    score: float = 0.0
    flagged: bool = False
    # robust_z | seasonal_robust_z | short_history_range | exact_change | zero | bounds |
    # learning | skipped
    method: str = "robust_z"
    reason: str | None = None


@dataclass
class MultivariateResult:
    iforest_score: float | None = None
    iforest_threshold: float | None = None
    iforest_flagged: bool = False
    lof_score: float | None = None
    lof_threshold: float | None = None
    lof_flagged: bool = False
    # Metrics that moved the vector most, worst first (for the explanation).
    top_contributors: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        return self.iforest_flagged and self.lof_flagged


@dataclass
class JointResult:
    """The joint tests (quality.joint): incidents that only show across metrics."""

    flagged: bool = False
    # broken_pair | joint_shift | stuck_upstream (the first that fired), or "" when none did.
    method: str = ""
    score: float = 0.0
    threshold: float = 0.0
    # Today's standardised residual per metric (robust sigmas), largest first.
    residuals: dict[str, float] = field(default_factory=dict)
    moved: list[str] = field(default_factory=list)
    reason: str | None = None
    tests: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass
class Verdict:
    is_anomaly: bool
    metrics: dict[str, MetricResult] = field(default_factory=dict)
    multivariate: MultivariateResult | None = None
    joint: JointResult | None = None
    reasons: list[str] = field(default_factory=list)
    # Cold start: too little history to judge; the check passes and says so.
    learning: bool = False
    history_points: int = 0
    min_history: int = 0
    # An anomaly at the ordinary budget that the stricter blocking budget does not confirm
    # (AnomalyConfig.blocking_budget_share): a blocking check alerts on it without blocking.
    below_blocking_bar: bool = False

    @property
    def flagged_metrics(self) -> list[MetricResult]:
        return [m for m in self.metrics.values() if m.flagged]

    def worst_metric(self) -> MetricResult | None:
        scored = [m for m in self.metrics.values() if m.observed is not None]
        if not scored:
            return None
        return max(scored, key=lambda m: (m.flagged, abs(m.score)))
