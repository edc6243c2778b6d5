"""The anomaly check's engine without Dagster: points, walk-forward judging, the state codec
and the explanation.

A point is one materialization as the checks see it (where it sits and its numeric metadata).
`judge_walk_forward` judges one run's points against the asset's past points with a detector
(`data_platform.quality.anomaly.detect`), leaving past anomalies and calendar events out of the
baseline. `encode_state` / `judged_points` / `snapshot_points` are the check's bookkeeping (one
JSON entry per evaluation) that later evaluations read back. `explain` writes the markdown a
user reads in the check's panel and in alerts; `charts` draws the chart of the metric that
drove it (and of the joint tests' residuals), which the check stores under its own metadata
keys (`PLOT_KEY`, `RESIDUALS_PLOT_KEY`) as markdown images (`image_markdown`).
`data_platform.checks.anomaly` wires these into Dagster (reads the event log, writes results).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from data_platform.quality.history import (
    ExpectedEvents,
    history_frame,
    numeric_metrics,
    order_points,
)
from data_platform.quality.plot import plot_metric_png, plot_residuals_png, png_data_uri
from data_platform.quality.verdict import MetricResult, Verdict

STATE_VERSION = 1
# The charts, each under its own metadata key as a markdown image (a data-URI PNG): the Dagster
# UI has no image metadata type, and renders markdown images in the entry's dialog. The
# explanation stays text, so alerts and text sinks need not strip images out of it; results
# written before these keys carry the chart inside the explanation (the alerts still read it).
PLOT_KEY = "anomaly/plot"
RESIDUALS_PLOT_KEY = "anomaly/residuals_plot"
# Said by a blocking check whose anomaly the stricter blocking budget does not confirm
# (AnomalyConfig.blocking_budget_share): it fails as WARN, which blocks nothing.
BELOW_BLOCKING_BAR = (
    "Below the blocking bar: the stricter budget a blocking check stops on "
    "(`blocking_budget_share`) does not confirm this anomaly, so it is alerted as WARN and "
    "nothing downstream was stopped."
)

Detector = Callable[..., Verdict]


@dataclass
class Point:
    """One materialization as the checks see it: where it sits and its numeric metadata."""

    storage_id: int
    timestamp: float
    run_id: str
    partition: str | None
    metadata: dict[str, object]
    # Dagster's metadata values as stored (schemas, text) for rules that need more than numbers.
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> Hashable:
        return self.partition if self.partition is not None else self.storage_id


@dataclass
class PointVerdict:
    point: Point
    verdict: Verdict | None
    is_anomaly: bool
    note: str = ""
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    excluded: list[bool] = field(default_factory=list)


def judge_walk_forward(
    asset: str,
    current: list[Point],
    past: list[Point],
    order: list[str] | None,
    flags: dict[int, bool],
    calendar: ExpectedEvents,
    marked_expected: bool,
    *,
    metrics: Sequence[str] | None,
    config: Any,
    lookback: int,
    detect: Detector,
    expected_tag: str = "",
) -> list[PointVerdict]:
    """Judge `current` (one run's materializations) in order against `past`, each point against
    the points before it: `flags` (storage id -> anomalous) are left out of the baseline, the
    calendar's points are neither alerted on nor learned from, `marked_expected` (the run tag
    `expected_tag`) turns an anomaly into a new normal. Later points of the same run learn from
    earlier ones unless those were anomalous; `flags` is updated in place."""
    by_id = {p.storage_id: p for p in past}
    if current[0].partition is not None:
        current = sorted(current, key=lambda p: order.index(p.partition) if order else p.partition)
    judged: list[PointVerdict] = []
    records = [(p.key, p.metadata) for p in past]
    ids = {p.key: p.storage_id for p in past}
    for point in current:
        event = calendar.match(asset, point.key if point.partition else point.timestamp)
        ordered = order_points(records, before=point.key, lookback=lookback, order=order)
        kept = [by_id[ids[k]] for k, _ in ordered]
        excluded = [
            flags.get(p.storage_id, False)
            or calendar.match(asset, p.key if p.partition else p.timestamp) is not None
            for p in kept
        ]
        index = None if point.partition is not None else [p.timestamp for p in kept]
        history = history_frame([(p.key, p.metadata) for p in kept], metrics=metrics, index=index)
        observed = pd.Series(
            numeric_metrics(point.metadata, metrics),
            dtype=float,
            name=point.partition
            if point.partition is not None
            else pd.Timestamp(point.timestamp, unit="s", tz="UTC"),
        )
        verdict = detect(history, observed, config, excluded=excluded) if len(observed) else None
        is_anomaly = bool(verdict is not None and verdict.is_anomaly)
        note = ""
        if event is not None:
            note = f"Expected event{': ' + event.name if event.name else ''} ({event.key}): not alerted, not learned from."
            is_anomaly = False
        elif marked_expected and is_anomaly:
            note = f"Marked as expected by run tag `{expected_tag}`: the point joins the baseline."
            is_anomaly = False
        judged.append(PointVerdict(point, verdict, is_anomaly, note, history, excluded))
        # Walk forward: later points of the same run learn from this one unless it is anomalous.
        by_id[point.storage_id] = point
        ids[point.key] = point.storage_id
        records.append((point.key, point.metadata))
        flags[point.storage_id] = is_anomaly
    return judged


def encode_state(judged: Sequence[PointVerdict]) -> dict[str, Any]:
    """The bookkeeping of one evaluation: per judged point, in the order judged, its storage id,
    partition, timestamp, run id, verdict and numeric metadata."""
    return {
        "v": STATE_VERSION,
        "points": [
            {
                "storage_id": j.point.storage_id,
                "partition": j.point.partition,
                "timestamp": j.point.timestamp,
                "run_id": j.point.run_id,
                "is_anomaly": j.is_anomaly,
                "metadata": j.point.metadata,
            }
            for j in judged
        ],
    }


def judged_points(items: Any) -> list[tuple[int, bool]]:
    """(storage id, was anomalous) per item of a state's points; malformed items are skipped."""
    if not isinstance(items, list):
        return []
    return [
        (int(item["storage_id"]), bool(item["is_anomaly"]))
        for item in items
        if isinstance(item, dict) and "storage_id" in item and "is_anomaly" in item
    ]


def snapshot_points(items: Any) -> list[Point]:
    """The points of a state's items with their numeric metadata; malformed items are skipped."""
    points = []
    for item in items if isinstance(items, list) else []:
        try:
            points.append(
                Point(
                    storage_id=int(item["storage_id"]),
                    timestamp=float(item["timestamp"]),
                    run_id=str(item.get("run_id", "")),
                    partition=item.get("partition"),
                    metadata=dict(item["metadata"]),
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return points


def explain(judged: PointVerdict, n_judged: int = 1, n_anomalous: int = 0) -> str:
    """Markdown text: the verdict, the metrics that drove it with their ranges, the reasons.
    No image: the charts are `charts(judged)`."""
    verdict = judged.verdict
    where = (
        f"partition `{judged.point.partition}`"
        if judged.point.partition
        else "this materialization"
    )
    lines: list[str] = []
    if verdict is None:
        lines.append(f"**No anomaly**: {where} has no numeric metadata to judge.")
    elif judged.is_anomaly:
        names = ", ".join(f"`{m.name}`" for m in verdict.flagged_metrics) or "the metric vector"
        lines.append(f"**Anomaly** in {where}: {names} outside the expected range.")
    elif verdict.history_points == 0:
        lines.append(
            f"**No anomaly** (learning: 0 of {verdict.min_history} points of history): no history "
            f"yet for {where}; the check passes while it learns."
        )
    elif verdict.learning:
        lines.append(
            f"**No anomaly** (learning: {verdict.history_points} of {verdict.min_history} points "
            f"of history): {where} passes while the baseline fills."
        )
    else:
        lines.append(f"**No anomaly** in {where} ({verdict.history_points} points of history).")
    if n_judged > 1:
        lines.append(f"\nThis run judged {n_judged} partitions; {n_anomalous} anomalous.")
    if judged.note:
        lines.append(f"\n{judged.note}")
    if verdict is None:
        return "\n".join(lines)
    adapting = [m for m in verdict.metrics.values() if m.method == "new_level" and m.reason]
    if adapting:
        lines.append("")
        lines.extend(f"- {m.reason} (after the alert on the change; not judged meanwhile)" for m in adapting)
    shown = metrics_to_show(verdict)
    if shown:
        # Here, not at the top: the detector's module pulls in SciPy, which importing the
        # definitions (every Dagster process does) should not pay for.
        from data_platform.quality.anomaly import format_range, format_value

        lines.append("\n| metric | observed | expected | range | score | method |")
        lines.append("| --- | --- | --- | --- | --- | --- |")
        for m in shown:
            lines.append(
                f"| `{m.name}`{' ⚠' if m.flagged else ''} | {format_value(m.observed)} "
                f"| {format_value(m.expected)} "
                f"| {format_range(m.lower, m.upper)} | {m.score:+.1f} | {m.method} |"
            )
    reasons = list(verdict.reasons) + [
        m.reason for m in shown if m.reason and m.reason not in verdict.reasons
    ]
    if reasons:
        lines.append("")
        lines.extend(f"- {r}" for r in reasons[:10])
    mv = verdict.multivariate
    if mv is not None and (mv.iforest_flagged or mv.lof_flagged):
        lines.append(
            f"\nMultivariate: IsolationForest {'flagged' if mv.iforest_flagged else 'ok'}, "
            f"LOF {'flagged' if mv.lof_flagged else 'ok'}; top contributors: "
            + ", ".join(f"`{c}`" for c in mv.top_contributors[:5])
        )
    joint = verdict.joint
    if joint is not None and joint.flagged:
        lines.append(f"\nJoint ({joint.method.replace('_', ' ')}): {joint.reason}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Charts:
    """PNG charts of one verdict (None where there is nothing to draw)."""

    # The worst metric's history with its expected band and the judged point.
    history: bytes | None = None
    # This run's forecast residual per metric, when a joint test fired.
    residuals: bytes | None = None


def charts(judged: PointVerdict) -> Charts:
    """The charts that go with `explain(judged)`."""
    verdict = judged.verdict
    if verdict is None:
        return Charts()
    residuals = None
    joint = verdict.joint
    if joint is not None and joint.flagged and joint.residuals:
        residuals = plot_residuals_png(joint.residuals, joint.moved, title="residuals this run")
    history = None
    worst = verdict.worst_metric()
    if worst is not None and worst.name in judged.history.columns:
        history = plot_metric_png(
            judged.history[worst.name].tolist(),
            observed=worst.observed,
            expected=worst.expected,
            lower=worst.lower,
            upper=worst.upper,
            flagged=worst.flagged,
            title=worst.name,
            excluded=[i for i, e in enumerate(judged.excluded) if e],
        )
    return Charts(history=history, residuals=residuals)


def image_markdown(png: bytes, alt: str = "plot") -> str:
    """Markdown holding just the image, as a data URI (what the Dagster UI renders)."""
    return f"![{alt}]({png_data_uri(png)})"


def metrics_to_show(verdict: Verdict, limit: int = 8) -> list[MetricResult]:
    flagged = verdict.flagged_metrics
    if flagged:
        return sorted(flagged, key=lambda m: -abs(m.score))[:limit]
    scored = [m for m in verdict.metrics.values() if m.observed is not None]
    return sorted(scored, key=lambda m: -abs(m.score))[:3]
