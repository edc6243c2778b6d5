"""A sensor that alerts on failed asset checks: `build_check_failure_sensor`.

Dagster OSS has no sensor that fires on failed asset checks, so this one reads each check's
execution history after a per-check position (`data_platform.checks.event_store`: every check
of the code location and every check it has seen, evaluations reported outside a run included),
groups the failures of one asset in one run into one alert, throttles repeats
(`data_platform.quality.alerting`) and sends to the chosen sinks.

The cursor is JSON: each check's read position, each check's alert state (with the time of the
last evaluation applied, which orders evaluations), and which sinks already have an alert whose
delivery is unfinished. A sink that stays down after its retries
stops the cursor before that alert: the next tick retries it (sinks that already have it are
skipped), so an alert is never lost and never sent twice to the same sink.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import dagster as dg

from data_platform.checks import event_store
from data_platform.checks.anomaly import PLOT_KEY, judged_partition
from data_platform.quality.alerting import (
    Alert,
    CheckState,
    Evaluation,
    group_evaluations,
    judge_group,
    render_text,
)
from data_platform.resources.alerts import SINK_NAMES, SINK_RESOURCE_KEYS, AlertDeliveryError

DEFAULT_BASE_URL = "http://127.0.0.1:3000"
BASE_URL_ENV = "DATA_PLATFORM_UI_BASE_URL"
CURSOR_VERSION = 2
# Evaluations of a run still in progress wait for the run so its failures make one alert, but
# not forever: a run left "started" by a crashed worker must not silence every later alert.
MAX_HOLD_SECONDS = 3600.0
# A check planned by a run still going is read again until evaluated, for at most this long.
PLANNED_WAIT_SECONDS = 7 * 24 * 3600.0
_BATCH = 1000


def build_check_failure_sensor(
    *,
    sinks: Sequence[str] = ("log",),
    base_url: str = DEFAULT_BASE_URL,
    reminder_interval: timedelta = timedelta(hours=24),
    minimum_interval_seconds: int = 30,
    name: str = "check_failure_alerts",
    max_hold_seconds: float = MAX_HOLD_SECONDS,
    batch_size: int = _BATCH,
) -> dg.SensorDefinition:
    """A sensor sending one alert per asset and run with failed checks, to `sinks`.

    sinks: any of `log` (the sensor's log), `webhook`, `slack`, `email`; the last three need
    the resources `alert_webhook`, `alert_slack`, `alert_email` (see
    `data_platform.resources.alerts.alert_resources_from_env`). base_url: the Dagster UI
    links point to; DATA_PLATFORM_UI_BASE_URL replaces the default.
    """
    unknown = [s for s in sinks if s not in SINK_NAMES]
    if unknown or not sinks:
        raise ValueError(
            f"unknown alert sinks {unknown or list(sinks)}: choose from {list(SINK_NAMES)}"
        )
    sinks = tuple(dict.fromkeys(sinks))
    required = {SINK_RESOURCE_KEYS[s] for s in sinks if s != "log"}

    @dg.sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        required_resource_keys=required,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Alerts on failed asset checks via {', '.join(sinks)}; reminders every {reminder_interval}.",
    )
    def _sensor(context: dg.SensorEvaluationContext, **_bound: Any) -> dg.SensorResult:
        # Direct invocation also passes the required resources as keywords; they are read
        # from context.resources either way.
        url = (
            (os.environ.get(BASE_URL_ENV) or base_url) if base_url == DEFAULT_BASE_URL else base_url
        )
        return evaluate_alerts(
            context,
            sinks=sinks,
            base_url=url,
            reminder_interval=reminder_interval,
            max_hold_seconds=max_hold_seconds,
            batch_size=batch_size,
        )

    return _sensor


def evaluate_alerts(
    context: dg.SensorEvaluationContext,
    *,
    sinks: Sequence[str],
    base_url: str,
    reminder_interval: timedelta,
    max_hold_seconds: float = MAX_HOLD_SECONDS,
    batch_size: int = _BATCH,
) -> dg.SensorResult:
    """One tick: read new evaluations, alert, and return the next cursor."""
    instance = context.instance
    defined = event_store.checks_of(context.repository_def)
    if not context.cursor:
        # A new sensor starts at the end of the log: past failures were seen (or not) already,
        # and a first deployment must not flood the sinks with history.
        latest = event_store.latest_check_execution_ids(instance, defined)
        read = {check_id(k): latest.get(k, 0) for k in defined}
        return dg.SensorResult(
            skip_reason=dg.SkipReason(f"started at the end of the log ({len(defined)} checks)"),
            cursor=dump_cursor(read, {}, {}),
        )
    cursor = load_cursor(context.cursor)
    checks: dict[str, CheckState] = cursor["checks"]
    sent: dict[str, list[str]] = cursor["sent"]
    if cursor["read"] is None:
        read = _migrate(context, defined, checks, max_hold_seconds)
        sent.clear()  # its evaluations now count as applied: nothing left to finish
    else:
        read = cursor["read"]
    keys = {check_id(k): k for k in defined}
    keys.update((c, check_key(c)) for c in read if c not in keys)
    pending = _new_executions(instance, keys, read, batch_size)
    runs = _RunStatus(instance)
    evaluations, horizon = _unapplied(pending, checks, batch_size)
    ready, held_run = _ready(runs, evaluations, max_hold_seconds, horizon)
    delivered = failed = 0
    error = ""
    for group in group_evaluations(ready):
        alert = judge_group(group, checks, reminder_interval)
        if alert.items:
            done = sent.setdefault(alert.key, [])
            for sink in sinks:
                if sink in done:
                    continue
                try:
                    _send(context, sink, alert, base_url)
                except AlertDeliveryError as exc:
                    error = str(exc)
                    break
                done.append(sink)
            if len(done) < len(sinks):
                # Stop here: this alert and everything after it is read again next tick.
                failed += 1
                context.log.error(
                    f"alert for {alert.asset} (run {alert.run_id}) not delivered: {error}; "
                    f"kept for the next tick (delivered so far to: {', '.join(done) or 'none'})"
                )
                break
            del sent[alert.key]
            delivered += 1
        checks.update(alert.new_state)
    if held_run is not None:
        context.log.info(f"waiting for run {held_run} to finish before alerting on its checks")
    for name, executions in pending.items():
        read[name] = _read_up_to(read.get(name, 0), executions, checks.get(name), runs)
    summary = (
        f"read {len(evaluations)} evaluations, sent {delivered} alerts"
        + (f", {failed} undelivered (retried next tick): {error}" if failed else "")
        + (f", waiting for run {held_run}" if held_run else "")
    )
    return dg.SensorResult(
        skip_reason=dg.SkipReason(summary), cursor=dump_cursor(read, checks, sent)
    )


def check_id(key: dg.AssetCheckKey) -> str:
    """The check's name in the cursor and in alerts: `asset/path:check`."""
    return f"{'/'.join(key.asset_key.path)}:{key.name}"


def check_key(name: str) -> dg.AssetCheckKey:
    asset, _, check = name.rpartition(":")
    return dg.AssetCheckKey(dg.AssetKey(asset.split("/")), check)


def position(execution: event_store.CheckExecution) -> int:
    """Where an evaluation sits in the alerting order: its time, in microseconds.

    Executions are numbered when planned, so ids do not follow evaluation order; an evaluation's
    time does, and a late evaluation (of a run no longer awaited) comes after everything applied.
    """
    assert execution.evaluated_at is not None
    return round(execution.evaluated_at * 1e6)


def _new_executions(
    instance: dg.DagsterInstance,
    keys: Mapping[str, dg.AssetCheckKey],
    read: Mapping[str, int],
    batch_size: int,
) -> dict[str, list[event_store.CheckExecution]]:
    """Per check, its executions after its read position, oldest first (at most a batch)."""
    latest = event_store.latest_check_execution_ids(instance, keys.values())
    out: dict[str, list[event_store.CheckExecution]] = {}
    for name, key in keys.items():
        after = read.get(name, 0)
        if latest.get(key, 0) > after:
            out[name] = event_store.check_executions_after(
                instance, key, after, newest_id=latest[key], limit=batch_size
            )
    return out


def _unapplied(
    pending: Mapping[str, Sequence[event_store.CheckExecution]],
    checks: Mapping[str, CheckState],
    batch_size: int,
) -> tuple[list[Evaluation], int | None]:
    """Evaluations not applied yet, in alerting order, and the position after which a check with
    more executions than one batch may still have unread ones (those wait for the next tick)."""
    evaluations: list[Evaluation] = []
    horizon: int | None = None
    for name, executions in pending.items():
        applied = checks[name].storage_id if name in checks else 0
        for execution in executions:
            if execution.is_evaluated and position(execution) > applied:
                evaluation = to_evaluation(execution)
                if evaluation is not None:
                    evaluations.append(evaluation)
        if len(executions) >= batch_size:
            # Unread executions were planned after the last one read, so evaluated after it too.
            last = round(executions[-1].created_at * 1e6)
            horizon = last if horizon is None else min(horizon, last)
    evaluations.sort(key=lambda e: e.storage_id)
    return evaluations, horizon


class _RunStatus:
    """Whether a run is still going, read once per run and tick."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance
        self.finished: dict[str, bool] = {}

    def is_going(self, run_id: str) -> bool:
        if run_id not in self.finished:
            run = self.instance.get_run_by_id(run_id) if run_id else None
            self.finished[run_id] = run is None or run.is_finished
        return not self.finished[run_id]


def _ready(
    runs: _RunStatus,
    evaluations: Sequence[Evaluation],
    max_hold_seconds: float,
    horizon: int | None = None,
) -> tuple[list[Evaluation], str | None]:
    """The evaluations before the first one whose run is still going (and not too old)."""
    now = time.time()
    for index, evaluation in enumerate(evaluations):
        if horizon is not None and evaluation.storage_id > horizon:
            return list(evaluations[:index]), None
        if runs.is_going(evaluation.run_id) and now - evaluation.timestamp < max_hold_seconds:
            return list(evaluations[:index]), evaluation.run_id
    return list(evaluations), None


def _read_up_to(
    after: int,
    executions: Sequence[event_store.CheckExecution],
    state: CheckState | None,
    runs: _RunStatus,
) -> int:
    """The check's new read position: past every execution that is applied or will never be
    evaluated. A planned execution of a run still going stops it (its evaluation will update
    that same execution), for at most `PLANNED_WAIT_SECONDS`."""
    applied = state.storage_id if state is not None else 0
    now = time.time()
    for execution in executions:
        if execution.is_evaluated:
            if position(execution) > applied:
                break
        elif runs.is_going(execution.run_id) and now - execution.created_at < PLANNED_WAIT_SECONDS:
            break
        after = execution.id
    return after


def _migrate(
    context: dg.SensorEvaluationContext,
    defined: Sequence[dg.AssetCheckKey],
    checks: dict[str, CheckState],
    max_hold_seconds: float,
) -> dict[str, int]:
    """Read positions for a cursor of the first version (one storage id for the whole log).

    It continues from the old sensor's last tick: evaluations written after it are new, earlier
    ones count as applied (one the old sensor still held or had not delivered everywhere then is
    not sent again). The per-check alert state carries over.
    """
    since_time = context.last_tick_completion_time or time.time()
    since = round(since_time * 1e6)
    keys = {check_id(k): k for k in defined}
    keys.update((c, check_key(c)) for c in checks if c not in keys)
    read: dict[str, int] = {}
    for name, key in keys.items():
        state = checks.setdefault(name, CheckState())
        state.storage_id = max(state.storage_id, since)
        # Executions planned before the old sensor's hold window cannot be news any more.
        read[name] = 0
        before = None
        while True:
            page = event_store.check_history_page(context.instance, key, limit=_BATCH, before_id=before)
            old = [e for e in page if e.created_at < since_time - max_hold_seconds]
            if old:
                read[name] = old[0].id
                break
            if len(page) < _BATCH:
                break
            before = page[-1].id
    context.log.info(f"alert cursor of version 1 migrated: continuing after {since_time:.0f}")
    return read


def _send(context: dg.SensorEvaluationContext, sink: str, alert: Alert, base_url: str) -> None:
    if sink == "log":
        context.log.warning(render_text(alert, base_url))
        return
    resource = getattr(context.resources, SINK_RESOURCE_KEYS[sink])
    resource.deliver(alert, base_url, on_retry=lambda m: context.log.warning(f"{sink}: {m}"))


def to_evaluation(execution: event_store.CheckExecution) -> Evaluation | None:
    """The pure view of one evaluated check execution (None for one still planned)."""
    data = execution.evaluation
    if data is None or execution.evaluated_at is None:
        return None
    metadata = data.metadata or {}
    explanation = _value(metadata.get("explanation"))
    plot = _value(metadata.get(PLOT_KEY))
    metric = _value(metadata.get("metric"))
    return Evaluation(
        storage_id=position(execution),
        timestamp=execution.evaluated_at,
        run_id=execution.run_id,
        asset_path=tuple(data.asset_key.path),
        check_name=data.check_name,
        passed=bool(data.passed),
        severity=data.severity.value if data.severity is not None else "ERROR",
        partition=data.partition or judged_partition(metadata),
        description=data.description or "",
        metric=metric if isinstance(metric, str) else None,
        observed=_number(metadata.get("observed")),
        expected=_number(metadata.get("expected")),
        lower=_number(metadata.get("lower")),
        upper=_number(metadata.get("upper")),
        score=_number(metadata.get("score")),
        explanation=explanation if isinstance(explanation, str) else "",
        plot=plot if isinstance(plot, str) else "",
    )


def _value(value: Any) -> Any:
    return getattr(value, "value", value)


def _number(value: Any) -> float | None:
    raw = _value(value)
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    return float(raw) if math.isfinite(float(raw)) else None


def load_cursor(text: str | None) -> dict[str, Any]:
    """The cursor's parts: read position per check (None in a first-version cursor, which kept
    one position for the whole log), per-check alert state, partial deliveries."""
    if not text:
        return {"read": {}, "checks": {}, "sent": {}}
    try:
        data = json.loads(text)
        if data.get("v", 1) == 1:
            int(data["after"])  # a first-version cursor must still be one
            read = None
        else:
            read = {str(k): int(v) for k, v in data["read"].items()}
        return {
            "read": read,
            "checks": {k: CheckState.from_json(v) for k, v in data.get("checks", {}).items()},
            "sent": {k: list(v) for k, v in data.get("sent", {}).items()},
        }
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"cannot read the alert sensor cursor: {error}") from None


def dump_cursor(
    read: Mapping[str, int], checks: Mapping[str, CheckState], sent: Mapping[str, list[str]]
) -> str:
    return json.dumps(
        {
            "v": CURSOR_VERSION,
            "read": dict(sorted(read.items())),
            "checks": {k: v.to_json() for k, v in sorted(checks.items())},
            "sent": dict(sent),
        },
        separators=(",", ":"),
    )
