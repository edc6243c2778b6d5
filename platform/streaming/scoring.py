"""Scores closed intervals with one StreamDetector per (key, metric) and plans the alerts.

The mean and the null fraction of an interval with fewer than `min_events` events are stored but
not judged (a handful of events makes them noise). A metric is *failing* in an interval when its detector's score reaches 1.0 (after warm-up).
Failing metrics become `Evaluation`s of the check-failure alerting (data_platform.quality.alerting),
so streams get the same throttling: the first failing interval of an incident alerts, the
following ones stay quiet unless it still fails after `reminder_interval` (event time), and a
recovery is told once the metric has passed `recovery_intervals` intervals in a row (so that a
score hovering around the line is one incident, not several). One alert message per interval
names every key and metric that changed state in it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from data_platform.quality.alerting import (
    Alert,
    AlertItem,
    CheckState,
    Evaluation,
    Group,
    judge_group,
    title,
)
from data_platform.quality.streaming import StreamConfig, StreamDetector
from data_platform.streaming.aggregate import METRICS, ClosedInterval
from data_platform.streaming.store import dumps

# The Dagster asset the stream's metrics show under (assets/streaming.py); alert links point there.
STREAM_ASSET_PATH = ("stream_metrics",)
SEVERITY = "WARN"

# Intervals are the detector's points: a window of six intervals, typical deviations learned over
# about 20 intervals, a warm-up of 60 intervals (5 minutes at 5-second intervals) and a cooldown
# as long. Chosen on the synthetic producer's streams (docs/streaming.md).
CONSUMER_DETECTOR = StreamConfig(window=6, baseline_windows=24, error_alpha=0.05, warmup=60, cooldown=60)


@dataclass
class MetricState:
    detector: StreamDetector
    check: CheckState = field(default_factory=CheckState)
    passes: int = 0  # passing intervals in a row


def interval_label(stream: str, start: float, end: float) -> str:
    first = datetime.fromtimestamp(start, UTC)
    last = datetime.fromtimestamp(end, UTC)
    return f"{stream} {first:%Y-%m-%d %H:%M:%S}–{last:%H:%M:%S} UTC"


class Scorer:
    """The detectors and alert states of one stream."""

    def __init__(self, stream: str, interval: float, *, detector_config: StreamConfig = CONSUMER_DETECTOR,
                 reminder_interval: timedelta = timedelta(hours=1), recovery_intervals: int = 3,
                 min_events: int = 10, rows: list[dict] | None = None) -> None:
        self.stream = stream
        self.interval = interval
        self.detector_config = detector_config
        self.reminder_interval = reminder_interval
        self.recovery_intervals = recovery_intervals
        self.min_events = min_events
        self.states: dict[tuple[str, str], MetricState] = {}
        for row in rows or []:
            self.states[(row["key"], row["metric"])] = MetricState(
                StreamDetector.from_state(json.loads(row["state"])),
                CheckState.from_json(json.loads(row["check_state"])),
                int(row["passes"]),
            )

    def keys(self) -> set[str]:
        return {key for key, _ in self.states}

    def score(self, closed: list[ClosedInterval]) -> tuple[list[dict], list[dict], list[tuple[Alert, ClosedInterval]]]:
        """Score rows, the detector rows that changed, and the alerts (in interval order)."""
        now = time.time()
        score_rows: list[dict] = []
        touched: set[tuple[str, str]] = set()
        planned: list[tuple[Alert, ClosedInterval]] = []
        for interval in closed:
            storage_id = round(interval.start / self.interval)
            label = interval_label(self.stream, interval.start, interval.end)
            evaluations: list[Evaluation] = []
            for km in interval.metrics:
                for metric in METRICS:
                    state = self.states.get((km.key, metric))
                    if state is None:
                        state = self.states[(km.key, metric)] = MetricState(StreamDetector(self.detector_config))
                    value = km.value(metric)
                    # A mean or a null fraction of a handful of events is noise: stored, not judged.
                    few = metric != "count" and km.count < self.min_events
                    verdict = state.detector.update(interval.end, None if few else value)
                    touched.add((km.key, metric))
                    judged = verdict.model not in ("warm-up", "missing")
                    failing = judged and verdict.score >= 1.0
                    score_rows.append({
                        "stream": self.stream, "key": km.key, "metric": metric,
                        "interval_start": interval.start, "interval_end": interval.end,
                        "value": value, "events": km.count, "score": verdict.score,
                        "failing": failing, "kind": verdict.kind if judged else verdict.model,
                        "expected": verdict.expected if judged else None,
                        "reason": verdict.reason, "stored_at": now,
                    })
                    if not judged:
                        continue
                    state.passes = 0 if failing else state.passes + 1
                    recovered = state.check.failing and state.passes >= self.recovery_intervals
                    if failing or recovered:
                        evaluations.append(Evaluation(
                            storage_id=storage_id, timestamp=interval.end, run_id="",
                            asset_path=STREAM_ASSET_PATH, check_name=f"{km.key}/{metric}",
                            passed=not failing, severity=SEVERITY, partition=label,
                            description=verdict.reason, metric=metric, observed=value,
                            expected=verdict.expected, score=verdict.score, explanation=verdict.reason,
                        ))
            if evaluations:
                alert = judge_group(Group(STREAM_ASSET_PATH, "", evaluations), self._checks(),
                                    self.reminder_interval)
                for check_id, check_state in alert.new_state.items():
                    key, metric = check_id.split(":", 1)[1].rsplit("/", 1)
                    self.states[(key, metric)].check = check_state
                if alert.items:
                    planned.append((alert, interval))
        detector_rows = [
            {"stream": self.stream, "key": key, "metric": metric,
             "state": dumps(self.states[(key, metric)].detector.to_state()),
             "check_state": dumps(self.states[(key, metric)].check.to_json()),
             "passes": self.states[(key, metric)].passes, "updated_at": now}
            for key, metric in sorted(touched)
        ]
        return score_rows, detector_rows, planned

    def _checks(self) -> dict[str, CheckState]:
        # judge_group reads only the checks of the evaluations it gets; the ids are built lazily.
        return _CheckView(self.states)

    def alert_row(self, alert: Alert, interval: ClosedInterval) -> dict:
        return {
            "alert_key": f"{self.stream}@{interval.start!r}",
            "stream": self.stream, "interval_start": interval.start, "interval_end": interval.end,
            "kind": alert.kind, "title": title(alert), "alert": alert_to_json(alert),
            "created_at": time.time(), "sinks_done": "", "sent_at": None, "acknowledged_at": None,
        }


class _CheckView(dict):
    """The alert states as judge_group expects them: check id -> CheckState."""

    def __init__(self, states: dict[tuple[str, str], MetricState]) -> None:
        super().__init__()
        self._states = states

    def get(self, check_id, default=None):
        key, metric = check_id.split(":", 1)[1].rsplit("/", 1)
        state = self._states.get((key, metric))
        return state.check if state is not None else default


def alert_to_json(alert: Alert) -> str:
    return json.dumps({
        "asset_path": list(alert.asset_path), "run_id": alert.run_id, "partition": alert.partition,
        "items": [{"kind": i.kind, "failing_since": i.failing_since, "evaluation": asdict(i.evaluation)}
                  for i in alert.items],
    })


def alert_from_json(text: str) -> Alert:
    data = json.loads(text)
    items = []
    for item in data["items"]:
        e = dict(item["evaluation"])
        e["asset_path"] = tuple(e["asset_path"])
        items.append(AlertItem(Evaluation(**e), item["kind"], item["failing_since"]))
    return Alert(tuple(data["asset_path"]), data["run_id"], data["partition"], items)
