"""Checks for a daily partition that never arrives.

Checks run when their asset materializes, so a day that never comes has no evaluation of its own.
Two detectors close that hole:

- the newest day late: Dagster's time-partition freshness check (`freshness_check`) expects,
  once the deadline has passed, the partition of the day that ended before it. Nothing
  materializes when the day is missing, so a sensor launches these checks on a clock. Their
  evaluations are ordinary check evaluations in runs, which the check-failure alerts read.
- a gap behind the newest day (`no_missing_partitions`): when day D materializes, every day
  between the asset's first stored day and D should be stored too. It reads the asset's stored
  partitions in one storage query (through `event_store`, the layer's door to Dagster's storage);
  the days missing come from `quality.completeness`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping, Sequence

import dagster as dg

from data_platform.checks.anomaly import PARTITION_KEY
from data_platform.checks.event_store import materialized_partitions
from data_platform.quality.completeness import LISTED_DAYS, missing_days

COMPLETENESS_CHECK = "no_missing_partitions"
FRESHNESS_SENSOR = "partition_freshness_sensor"
DEADLINE_ENV = "DATA_PLATFORM_PARTITION_DEADLINE_HOURS"
# The daily schedule materializes yesterday at 02:00 UTC: six hours after the day ends leaves
# time for retries and a slow source before anyone is told the day is missing.
DEFAULT_DEADLINE_HOURS = 6.0
FRESHNESS_SENSOR_INTERVAL_SECONDS = 300

_RANGE_END_TAG = "dagster/asset_partition_range_end"


def deadline_cron(environ: Mapping[str, str] | None = None) -> str:
    """The daily deadline (UTC) from DATA_PLATFORM_PARTITION_DEADLINE_HOURS, as a cron string.

    The value is hours after midnight UTC, i.e. after the daily partition ends (`6`, `7.5`);
    from 0 up to but not including 24, since the check always expects the day that ended before
    the deadline's latest tick.
    """
    environ = os.environ if environ is None else environ
    raw = environ.get(DEADLINE_ENV, "").strip()
    try:
        minutes = round((float(raw) if raw else DEFAULT_DEADLINE_HOURS) * 60)
    except (ValueError, OverflowError):  # not a number, nan, inf
        minutes = -1
    if not 0 <= minutes < 24 * 60:
        raise ValueError(f"{DEADLINE_ENV}={raw!r}: expected hours after midnight UTC, from 0 to below 24 (e.g. 6)")
    return f"{minutes % 60} {minutes // 60} * * *"


def build_partition_freshness_checks(
    assets: Sequence[str | dg.AssetKey], *, cron: str | None = None
) -> list[dg.AssetChecksDefinition]:
    """`freshness_check` on each daily-partitioned asset: fails once the deadline has passed
    without the partition of the day that ended before it (severity WARN, not blocking)."""
    with warnings.catch_warnings():
        # Superseded by FreshnessPolicy, whose verdict is not a check evaluation in a run: the
        # check-failure alerts could not see it.
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        return list(dg.build_time_partition_freshness_checks(
            assets=[dg.AssetKey.from_coercible(a) for a in assets],
            deadline_cron=cron or deadline_cron(),
            timezone="UTC",
            severity=dg.AssetCheckSeverity.WARN,
        ))


def build_partition_freshness_sensor(checks: Sequence[dg.AssetChecksDefinition]) -> dg.SensorDefinition:
    """Launches the freshness checks when they could have become overdue (Dagster's sensor: a
    failed check is evaluated again only after its asset materializes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        return dg.build_sensor_for_freshness_checks(
            freshness_checks=checks,
            name=FRESHNESS_SENSOR,
            minimum_interval_seconds=FRESHNESS_SENSOR_INTERVAL_SECONDS,
            # A missing day must be noticed without anyone turning the sensor on.
            default_status=dg.DefaultSensorStatus.RUNNING,
        )


def build_completeness_checks(assets: Iterable[str | dg.AssetKey]) -> list[dg.AssetChecksDefinition]:
    """`no_missing_partitions` on each daily-partitioned asset (WARN, not blocking)."""
    return [_completeness_check(dg.AssetKey.from_coercible(a)) for a in assets]


def _completeness_check(key: dg.AssetKey) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=key,
        name=COMPLETENESS_CHECK,
        blocking=False,
        description="Every day between the asset's first stored daily partition and the judged one is stored.",
    )
    def _check(context) -> dg.AssetCheckResult:  # annotation would be a string: Dagster rejects it
        tags = context.run.tags
        return evaluate_completeness(
            context.instance, key, tags.get("dagster/partition") or tags.get(_RANGE_END_TAG)
        )

    return _check


def evaluate_completeness(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None = None
) -> dg.AssetCheckResult:
    """Judge day `partition` (a run over a range: its last day; None: the newest stored day)."""
    stored = materialized_partitions(instance, key)
    through = partition or (max(stored) if stored else None)
    if through is None:
        return dg.AssetCheckResult(
            passed=True, severity=dg.AssetCheckSeverity.WARN, description="No partition stored yet."
        )
    gaps = missing_days(stored, through)
    metadata: dict[str, object] = {PARTITION_KEY: through, "missing_partitions": len(gaps.missing)}
    if gaps.first is not None:
        metadata["first_partition"] = gaps.first
    if gaps.missing:
        metadata["missing"] = dg.MetadataValue.json(list(gaps.missing[:LISTED_DAYS]))
    return dg.AssetCheckResult(
        passed=not gaps.missing,
        severity=dg.AssetCheckSeverity.WARN,
        description=gaps.describe(),
        metadata=metadata,
    )
