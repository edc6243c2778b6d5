"""A sensor that alerts on failed asset checks: `build_check_failure_sensor`.

Dagster OSS has no sensor that fires on failed asset checks, so this one reads the check
evaluations from the event log after a cursor, groups the failures of one asset in one run into
one alert, throttles repeats (`data_platform.quality.alerting`) and sends to the chosen sinks.

The cursor is JSON: the last storage id applied, each check's alert state, and which sinks
already have an alert whose delivery is unfinished. A sink that stays down after its retries
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
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from data_platform.checks.anomaly import judged_partition
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
CURSOR_VERSION = 1
# Evaluations of a run still in progress wait for the run so its failures make one alert, but
# not forever: a run left "started" by a crashed worker must not silence every later alert.
MAX_HOLD_SECONDS = 3600.0
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
    if not context.cursor:
        # A new sensor starts at the end of the log: past failures were seen (or not) already,
        # and a first deployment must not flood the sinks with history.
        latest = fetch_evaluations(context.instance, 0, 1, ascending=False)
        start = latest[0].storage_id if latest else 0
        cursor_text = dump_cursor(start, {}, {})
        return dg.SensorResult(
            skip_reason=dg.SkipReason(f"started after storage id {start}"), cursor=cursor_text
        )
    cursor = load_cursor(context.cursor)
    after: int = cursor["after"]
    checks: dict[str, CheckState] = cursor["checks"]
    sent: dict[str, list[str]] = cursor["sent"]
    records = fetch_evaluations(context.instance, after, batch_size)
    evaluations = [e for e in (to_evaluation(r) for r in records) if e is not None]
    ready, held_run = _ready(context.instance, evaluations, max_hold_seconds)
    if held_run is None:
        next_after = records[-1].storage_id if records else after
    else:
        next_after = evaluations[len(ready)].storage_id - 1
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
                next_after = min(next_after, group.first_storage_id - 1)
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
    new_cursor = dump_cursor(next_after, checks, sent)
    summary = (
        f"read {len(records)} evaluations, sent {delivered} alerts"
        + (f", {failed} undelivered (retried next tick): {error}" if failed else "")
        + (f", waiting for run {held_run}" if held_run else "")
    )
    return dg.SensorResult(skip_reason=dg.SkipReason(summary), cursor=new_cursor)


def _send(context: dg.SensorEvaluationContext, sink: str, alert: Alert, base_url: str) -> None:
    if sink == "log":
        context.log.warning(render_text(alert, base_url))
        return
    resource = getattr(context.resources, SINK_RESOURCE_KEYS[sink])
    resource.deliver(alert, base_url, on_retry=lambda m: context.log.warning(f"{sink}: {m}"))


def _ready(
    instance: dg.DagsterInstance, evaluations: Sequence[Evaluation], max_hold_seconds: float
) -> tuple[list[Evaluation], str | None]:
    """The evaluations before the first one whose run is still going (and not too old)."""
    finished: dict[str, bool] = {}
    now = time.time()
    for index, evaluation in enumerate(evaluations):
        run_id = evaluation.run_id
        if run_id not in finished:
            run = instance.get_run_by_id(run_id)
            finished[run_id] = run is None or run.is_finished
        if not finished[run_id] and now - evaluation.timestamp < max_hold_seconds:
            return list(evaluations[:index]), run_id
    return list(evaluations), None


def fetch_evaluations(
    instance: dg.DagsterInstance, after: int, limit: int = _BATCH, *, ascending: bool = True
) -> list[dg.EventLogRecord]:
    """Asset-check evaluation records with storage id above `after`, oldest first by default."""
    storage = instance.event_log_storage
    records_filter = dg.EventRecordsFilter(
        event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, after_cursor=after
    )
    if isinstance(storage, SqliteEventLogStorage):
        # The default SQLite storage keeps one file per run and refuses cross-run queries, but
        # mirrors every check evaluation into its index file, which the generic SQL query
        # reads: the ids there are global and increasing, like Postgres's.
        return list(SqlEventLogStorage.get_event_records(storage, records_filter, limit, ascending))
    return list(storage.get_event_records(records_filter, limit=limit, ascending=ascending))


def to_evaluation(record: dg.EventLogRecord) -> Evaluation | None:
    """The pure view of one check-evaluation record (None for anything else)."""
    event = record.event_log_entry.dagster_event
    data = event.event_specific_data if event is not None else None
    if not isinstance(data, dg.AssetCheckEvaluation):
        return None
    metadata = data.metadata or {}
    explanation = _value(metadata.get("explanation"))
    metric = _value(metadata.get("metric"))
    return Evaluation(
        storage_id=record.storage_id,
        timestamp=record.timestamp,
        run_id=record.run_id,
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
    )


def _value(value: Any) -> Any:
    return getattr(value, "value", value)


def _number(value: Any) -> float | None:
    raw = _value(value)
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    return float(raw) if math.isfinite(float(raw)) else None


def load_cursor(text: str | None) -> dict[str, Any]:
    """The cursor's parts: last storage id applied, per-check state, partial deliveries."""
    if not text:
        return {"after": 0, "checks": {}, "sent": {}}
    try:
        data = json.loads(text)
        return {
            "after": int(data["after"]),
            "checks": {k: CheckState.from_json(v) for k, v in data.get("checks", {}).items()},
            "sent": {k: list(v) for k, v in data.get("sent", {}).items()},
        }
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"cannot read the alert sensor cursor: {error}") from None


def dump_cursor(after: int, checks: Mapping[str, CheckState], sent: Mapping[str, list[str]]) -> str:
    return json.dumps(
        {
            "v": CURSOR_VERSION,
            "after": after,
            "checks": {k: v.to_json() for k, v in sorted(checks.items())},
            "sent": dict(sent),
        },
        separators=(",", ":"),
    )
