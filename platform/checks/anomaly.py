"""History-aware anomaly checks for any asset: `build_anomaly_checks(assets)`.

Each check judges the numeric metadata of the materialization(s) made in its run against the
asset's own past materializations (one point per partition, latest wins, only partitions before
the judged one), with the pure detector `data_platform.quality.anomaly.detect`. Points this
check judged anomalous before are left out of the baseline, so an incident never widens the
band; points on the expected-events calendar are neither alerted on nor learned from.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import dagster as dg

from data_platform.checks import event_store
from data_platform.checks.specs import partitioned_checks
from data_platform.quality.health import DURATION_SECONDS
from data_platform.quality.history import DEFAULT_LOOKBACK, coerce_expected_events
from data_platform.quality.judging import (
    BELOW_BLOCKING_BAR,
    PLOT_KEY,
    RESIDUALS_PLOT_KEY,
    Detector,
    Point,
    PointVerdict,
    charts,
    encode_state,
    explain,
    image_markdown,
    judge_walk_forward,
    judged_points,
    snapshot_points,
)

DEFAULT_CHECK_NAME = "anomaly"
# Run tag: the judged point is a known, legitimate change. The check passes and the point
# joins the baseline (a new normal). Re-executing the check with this tag clears a past alert.
EXPECTED_TAG = "data_platform/anomaly_expected"
# The check's bookkeeping, in ONE JSON entry that the UI shows as a single "[Show JSON]" row and
# never plots: per judged materialization its storage id, partition, timestamp, run id, verdict
# and numeric metadata. Later evaluations read it back to leave past anomalies out of the
# baseline, and read history from it instead of deserializing every stored materialization
# (the dominant cost at wide assets). Everything else in the metadata is for the user.
STATE_KEY = "anomaly/state"
# The judged partition as the user reads it (the explanation names it too). A partitioned check's
# evaluation carries it as its own partition, which the alerts read first; for a check built
# from a bare key (unpartitioned) and for a run over a range this key is the only record of it.
PARTITION_KEY = "partition"
# Written before STATE_KEY (releases up to issue 18): still read, so stored verdicts keep counting.
_LEGACY_POINTS_KEY = "anomaly/points"
_LEGACY_SNAPSHOT_KEY = "anomaly/snapshot"
_LEGACY_PARTITION_KEY = "anomaly/partition"
_PAGE = 500
# Safety net for unusual layouts (old partitions backfilled after newer ones): never scan more.
_MAX_SCAN_FACTOR = 10

def build_anomaly_checks(
    assets: Iterable[dg.AssetsDefinition | dg.AssetKey | str | Sequence[str]],
    *,
    metrics: Sequence[str] | None = None,
    config: Any = None,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.WARN,
    blocking: bool = False,
    lookback: int = DEFAULT_LOOKBACK,
    detector: Detector | None = None,
    expected_events: Any = None,
    name: str = DEFAULT_CHECK_NAME,
) -> list[dg.AssetChecksDefinition]:
    """One check named `name` (default `anomaly`) per asset key of `assets`.

    assets: asset definitions or specs, or bare keys. The check of a partitioned asset given as
    its definition or spec is partitioned like it (the UI shows its status per partition); a
    check built from a bare key is unpartitioned and learns the partitioning from the job it
    runs in. metrics: None judges every numeric metadata key (Dagster's own `dagster/` keys
    only for the row count); else exact keys or glob patterns. config: an `AnomalyConfig` for the detector.
    expected_events: calendar of partition keys / dates (list, file path or ExpectedEvents);
    None reads the file named by DATA_PLATFORM_EXPECTED_EVENTS at run time.
    """
    if lookback < 1:
        raise ValueError(f"lookback must be at least 1, got {lookback}")
    checks = []
    for key, partitions_def in _asset_keys(assets):
        checks.append(
            _anomaly_check(
                key,
                partitions_def,
                name=name,
                metrics=metrics,
                config=config,
                severity=severity,
                blocking=blocking,
                lookback=lookback,
                detector=detector,
                expected_events=expected_events,
            )
        )
    return checks


def _asset_keys(assets: Iterable[Any]) -> list[tuple[dg.AssetKey, dg.PartitionsDefinition | None]]:
    if isinstance(assets, dg.AssetsDefinition | dg.AssetSpec | dg.AssetKey | str):
        assets = [assets]
    out: list[tuple[dg.AssetKey, dg.PartitionsDefinition | None]] = []
    for item in assets:
        if isinstance(item, dg.AssetsDefinition):
            out.extend((key, item.partitions_def) for key in item.keys)
        elif isinstance(item, dg.AssetSpec):
            out.append((item.key, item.partitions_def))
        elif isinstance(item, dg.AssetKey):
            out.append((item, None))
        elif isinstance(item, str):
            out.append((dg.AssetKey.from_user_string(item), None))
        elif isinstance(item, Sequence):
            out.append((dg.AssetKey(list(item)), None))
        else:
            raise TypeError(f"cannot make an anomaly check for {item!r}: expected an asset or key")
    return out


def _anomaly_check(
    key: dg.AssetKey, partitions_def: dg.PartitionsDefinition | None, *, name: str, **options: Any
) -> dg.AssetChecksDefinition:
    description = (
        f"Judges each materialization's numeric metadata against this asset's own history "
        f"(last {options['lookback']} points, past anomalies excluded)."
    )

    def _check(context) -> dg.AssetCheckResult:  # annotation would be a string: Dagster rejects it
        started = time.perf_counter()
        known_def = partitions_def or _partitions_def_from_context(context)
        result = evaluate_anomaly(
            context.instance,
            key,
            run_id=context.run.run_id,
            run_tags=context.run.tags,
            partitions_def=known_def,
            check_name=name,
            **options,
        )
        # The check's own cost (history fetch included), beside the verdict it explains.
        seconds = dg.MetadataValue.float(time.perf_counter() - started)
        return dg.AssetCheckResult(
            passed=result.passed,
            severity=result.severity,
            description=result.description,
            metadata={**result.metadata, DURATION_SECONDS: seconds},
        )

    with partitioned_checks():
        return dg.asset_check(
            asset=key,
            name=name,
            blocking=options["blocking"],
            description=description,
            partitions_def=partitions_def,
        )(_check)


def _partitions_def_from_context(
    context: dg.AssetCheckExecutionContext,
) -> dg.PartitionsDefinition | None:
    # A check built from a bare key learns the partitioning from the job it runs in (a job has
    # one partitioning; an unpartitioned asset in it has no partition to place in a window).
    try:
        return context.job_def.partitions_def
    except Exception:  # noqa: BLE001 - unknown in this job: fall back to key order
        return None


def evaluate_anomaly(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey | str,
    *,
    run_id: str | None = None,
    run_tags: Mapping[str, str] | None = None,
    partitions_def: dg.PartitionsDefinition | None = None,
    check_name: str = DEFAULT_CHECK_NAME,
    metrics: Sequence[str] | None = None,
    config: Any = None,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.WARN,
    blocking: bool = False,
    lookback: int = DEFAULT_LOOKBACK,
    detector: Detector | None = None,
    expected_events: Any = None,
) -> dg.AssetCheckResult:
    """The check body as a plain function: judge the materializations of `run_id`.

    Without materializations in `run_id` (a check-only run) it judges the latest materialization
    of the run's partition (run tag `dagster/partition`) or, failing that, the latest overall.
    """
    del blocking  # the check definition enforces blocking; the result only carries severity
    asset_key = dg.AssetKey.from_user_string(asset_key) if isinstance(asset_key, str) else asset_key
    run_tags = dict(run_tags or {})
    detect = detector or _default_detector()
    calendar = coerce_expected_events(expected_events)
    current = _current_points(instance, asset_key, run_id, run_tags.get("dagster/partition"))
    if not current:
        return dg.AssetCheckResult(
            passed=True,
            severity=severity,
            description="No materialization to judge yet.",
            metadata={
                "history_points": 0,
                "explanation": dg.MetadataValue.md("No materialization to judge yet."),
            },
        )
    check_key = dg.AssetCheckKey(asset_key, check_name)
    window = _partition_window(instance, current, partitions_def, lookback)
    if window is not None:
        past, flags = _window_points(instance, asset_key, check_key, current, window)
        order: list[str] | None = window
    else:
        past, order = _history_points(instance, asset_key, current, lookback)
        flags = _past_flags(instance, check_key, past)
    marked_expected = run_tags.get(EXPECTED_TAG, "").lower() in {"1", "true", "yes"}
    judged = judge_walk_forward(
        asset_key.to_user_string(),
        current,
        past,
        order,
        flags,
        calendar,
        marked_expected,
        metrics=metrics,
        config=config,
        lookback=lookback,
        detect=detect,
        expected_tag=EXPECTED_TAG,
    )
    return _result(judged, severity, metrics)


def _default_detector() -> Detector:
    from data_platform.quality.anomaly import detect

    return detect


def _point(record: dg.EventLogRecord) -> Point:
    materialization = record.asset_materialization
    assert materialization is not None
    return Point(
        storage_id=record.storage_id,
        timestamp=record.timestamp,
        run_id=record.run_id,
        partition=materialization.partition,
        metadata=plain_metadata(materialization.metadata),
        raw=materialization.metadata,
    )


def plain_metadata(metadata: Mapping[str, Any]) -> dict[str, object]:
    """Dagster metadata values as plain numbers (ints, floats); other kinds are left out."""
    out: dict[str, object] = {}
    for key, value in metadata.items():
        if isinstance(value, dg.FloatMetadataValue | dg.IntMetadataValue):
            out[key] = value.value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = value
    return out


def _current_points(
    instance: dg.DagsterInstance, key: dg.AssetKey, run_id: str | None, partition: str | None
) -> list[Point]:
    points: list[Point] = []
    if run_id is not None:
        cursor = None
        while True:
            page = event_store.materializations(instance, key, limit=_PAGE, cursor=cursor)
            mine = [r for r in page.records if r.run_id == run_id]
            points.extend(_point(r) for r in mine)
            # The run's own materializations are the newest; stop at the first page with others.
            if len(mine) < len(page.records) or not page.has_more:
                break
            cursor = page.cursor
    if points:
        return sorted(points, key=lambda p: p.storage_id)
    latest = event_store.materializations(
        instance, key, limit=1, partitions=[partition] if partition else None
    ).records
    return [_point(r) for r in latest]


def _partition_window(
    instance: dg.DagsterInstance,
    current: list[Point],
    partitions_def: dg.PartitionsDefinition | None,
    lookback: int,
) -> list[str] | None:
    """The partition keys from `lookback` before the first judged one to the last, in order."""
    if partitions_def is None or current[0].partition is None:
        return None
    try:
        all_keys = list(partitions_def.get_partition_keys(dynamic_partitions_store=instance))
        rank = {k: i for i, k in enumerate(all_keys)}
        positions = [rank[p.partition] for p in current]
    except (KeyError, dg.DagsterInvariantViolationError, TypeError):
        return None
    return all_keys[max(0, min(positions) - lookback) : max(positions) + 1]


def _window_points(
    instance: dg.DagsterInstance,
    key: dg.AssetKey,
    check_key: dg.AssetCheckKey,
    current: list[Point],
    window: list[str],
) -> tuple[list[Point], dict[int, bool]]:
    """The latest materialization of each window partition, and this check's verdicts on them.

    Points this check already judged come from its own snapshots; only the others are read
    from the stored materializations.
    """
    current_ids = {p.storage_id for p in current}
    latest = event_store.latest_storage_id_by_partition(instance, key, window)
    wanted = {sid for sid in latest.values() if sid not in current_ids}
    # Older materializations of the judged partitions are not history but may be re-judged.
    flags, snapshots = _read_verdicts(instance, check_key, wanted, since=None)
    missing = wanted - snapshots.keys()
    fetched = [_point(r) for r in event_store.materializations_by_storage_id(instance, key, missing)]
    unflagged = [p for p in fetched if p.storage_id not in flags]
    if unflagged:
        since = min(p.timestamp for p in unflagged) - 1.0
        more, _ = _read_verdicts(instance, check_key, {p.storage_id for p in unflagged}, since)
        flags.update(more)
    past = [snapshots[sid] for sid in wanted if sid in snapshots] + fetched
    return sorted(past, key=lambda p: p.storage_id), flags


def _read_verdicts(
    instance: dg.DagsterInstance,
    check_key: dg.AssetCheckKey,
    wanted: set[int],
    since: float | None,
) -> tuple[dict[int, bool], dict[int, Point]]:
    """This check's latest verdict and snapshot per wanted materialization, newest first.

    With `since=None` reads one page sized for one evaluation per point (the usual case);
    otherwise pages back to evaluations written before `since`, capped.
    """
    flags: dict[int, bool] = {}
    snapshots: dict[int, Point] = {}
    if not wanted:
        return flags, snapshots
    page_size = min(_PAGE, len(wanted) + 16)
    cursor = None
    scanned = 0
    while scanned < len(wanted) * _MAX_SCAN_FACTOR:
        records = event_store.check_history_page(
            instance, check_key, limit=page_size, before_id=cursor
        )
        for record in records:
            evaluation = record.evaluation
            if evaluation is None:
                continue
            judged, points = read_state(evaluation.metadata)
            for storage_id, is_anomaly in judged:
                if storage_id in wanted and storage_id not in flags:
                    flags[storage_id] = is_anomaly
            for point in points:
                if point.storage_id in wanted and point.storage_id not in snapshots:
                    snapshots[point.storage_id] = point
        scanned += len(records)
        if since is None or len(records) < page_size or len(flags) == len(wanted):
            break
        if records[-1].created_at < since:
            break
        cursor = records[-1].id
        page_size = _PAGE
    return flags, snapshots


def state_value(judged: Sequence[PointVerdict]) -> dg.JsonMetadataValue:
    """The bookkeeping entry (STATE_KEY) for the judged points, in the order judged."""
    return dg.MetadataValue.json(encode_state(judged))


def read_state(metadata: Mapping[str, Any]) -> tuple[list[tuple[int, bool]], list[Point]]:
    """From one evaluation's metadata: (storage id, was anomalous) per judged materialization,
    and the judged points with their numeric metadata. Reads STATE_KEY, else the legacy keys;
    a damaged entry only costs a read of the materializations."""
    state = metadata.get(STATE_KEY)
    if isinstance(state, dg.JsonMetadataValue) and isinstance(state.data, dict):
        items = state.data.get("points")
        items = items if isinstance(items, list) else []
        return judged_points(items), snapshot_points(items)
    legacy = metadata.get(_LEGACY_POINTS_KEY)
    judged = judged_points(legacy.data if isinstance(legacy, dg.JsonMetadataValue) else None)
    snapshot = metadata.get(_LEGACY_SNAPSHOT_KEY)
    items = None
    if isinstance(snapshot, dg.TextMetadataValue):
        try:
            items = json.loads(snapshot.text)
        except ValueError:
            items = None
    return judged, snapshot_points(items)


def judged_partition(metadata: Mapping[str, Any]) -> str | None:
    """The partition an evaluation's verdict is about (None when unpartitioned)."""
    for key in (PARTITION_KEY, _LEGACY_PARTITION_KEY):
        value = metadata.get(key)
        text = getattr(value, "text", value)
        if isinstance(text, str) and text:
            return text
    return None


def _history_points(
    instance: dg.DagsterInstance,
    key: dg.AssetKey,
    current: list[Point],
    lookback: int,
) -> tuple[list[Point], list[str] | None]:
    """Materializations that may be history for the judged points, without a partition window.

    Unpartitioned: the `lookback` materializations before the judged one. Partitioned with an
    unknown definition: page back until `lookback` distinct earlier partitions are seen.
    """
    oldest_current = min(p.storage_id for p in current)
    if current[0].partition is None:
        page = event_store.materializations(
            instance, key, limit=lookback, before_storage_id=oldest_current
        )
        return [_point(r) for r in reversed(page.records)], None

    # Unknown partitioning: partition keys sort as strings (true for date and time keys).
    newest_current = max(p.partition for p in current)  # type: ignore[type-var]
    oldest_partition = min(p.partition for p in current)  # type: ignore[type-var]
    seen_before: set[str] = set()
    past: list[Point] = []
    cursor = None
    scanned = 0
    while scanned < lookback * _MAX_SCAN_FACTOR:
        page = event_store.materializations(
            instance, key, limit=min(_PAGE, lookback * 2), cursor=cursor
        )
        scanned += len(page.records)
        current_ids = {p.storage_id for p in current}
        for record in page.records:
            point = _point(record)
            if point.storage_id in current_ids or point.partition is None:
                continue
            if point.partition <= newest_current:
                past.append(point)
                if point.partition < oldest_partition:
                    seen_before.add(point.partition)
        if len(seen_before) >= lookback or not page.has_more:
            break
        cursor = page.cursor
    return sorted(past, key=lambda p: p.storage_id), None


def _past_flags(
    instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, past: list[Point]
) -> dict[int, bool]:
    """storage id -> whether this check's latest verdict on that materialization was anomalous.

    A verdict is written after its materialization, so reading executions back to the oldest
    history point is enough.
    """
    if not past:
        return {}
    since = min(p.timestamp for p in past) - 1.0
    flags, _ = _read_verdicts(instance, check_key, {p.storage_id for p in past}, since)
    return flags


def _result(
    judged: list[PointVerdict], severity: dg.AssetCheckSeverity, metrics: Sequence[str] | None
) -> dg.AssetCheckResult:
    anomalous = [j for j in judged if j.is_anomaly]
    headline = anomalous[-1] if anomalous else judged[-1]
    verdict = headline.verdict
    point = headline.point
    metadata: dict[str, Any] = {
        "history_points": verdict.history_points if verdict else 0,
        "flagged_metrics": len(verdict.flagged_metrics) if verdict else 0,
    }
    if point.partition is not None:
        metadata[PARTITION_KEY] = point.partition
    metadata[STATE_KEY] = state_value(judged)
    worst = verdict.worst_metric() if verdict else None
    if worst is not None:
        metadata["metric"] = worst.name
        for name in ("observed", "expected", "lower", "upper", "score"):
            value = getattr(worst, name)
            if value is not None and math.isfinite(float(value)):
                metadata[name] = float(value)
    if verdict is not None and verdict.learning:
        metadata["learning"] = f"learning: {verdict.history_points} of {verdict.min_history} points"
    else:
        metadata["learning"] = "no"
    text = explain(headline, len(judged), len(anomalous))
    metadata["explanation"] = dg.MetadataValue.md(text)
    pictures = charts(headline)
    if pictures.history is not None:
        metadata[PLOT_KEY] = dg.MetadataValue.md(image_markdown(pictures.history, "plot"))
    if pictures.residuals is not None:
        metadata[RESIDUALS_PLOT_KEY] = dg.MetadataValue.md(
            image_markdown(pictures.residuals, "residuals")
        )
    if anomalous and severity == dg.AssetCheckSeverity.ERROR and all(
        j.verdict is not None and j.verdict.below_blocking_bar for j in anomalous
    ):
        # Alerted at the ordinary budget, not confirmed at the blocking one: a WARN failure,
        # which Dagster does not block on.
        severity = dg.AssetCheckSeverity.WARN
        text += f"\n\n{BELOW_BLOCKING_BAR}"
        metadata["explanation"] = dg.MetadataValue.md(text)
    summary = text.splitlines()[0].replace("**", "")
    return dg.AssetCheckResult(
        passed=not anomalous, severity=severity, metadata=metadata, description=summary[:300]
    )
