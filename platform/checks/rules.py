"""Deterministic asset checks that read only materialization metadata, so they are cheap and
work for any asset and any IO manager.

Each rule is a plain function over one materialization's metadata (callable in tests) and a
`build_*_checks(assets, ...)` factory that wires it into Dagster checks judging the
materialization(s) of the check's own run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any

import dagster as dg

from data_platform.checks import event_store
from data_platform.checks.anomaly import _asset_keys, _current_points
from data_platform.quality import health
from data_platform.quality.history import (
    CLOSED_WEEKS,
    coerce_expected_events,
    expected_empty_reason,
    point_date,
)

ROW_COUNT = health.ROW_COUNT
COLUMN_SCHEMA = health.COLUMN_SCHEMA
SCHEMA_HASH = health.SCHEMA_HASH
DUPLICATE_KEY_COUNT = health.DUPLICATE_KEY_COUNT
FRESHNESS_LAG_HOURS = health.FRESHNESS_LAG_HOURS
QUARANTINE_SHARE = health.QUARANTINE_SHARE

Metadata = Mapping[str, Any]
# Why an empty partition is expected (a weekly closed day, a holiday), or a function computing
# it only when the partition turns out empty (it reads the instance and the calendar).
ExpectedEmpty = str | Callable[[], str | None] | None


def _number(metadata: Metadata, key: str) -> float | None:
    value = metadata.get(key)
    if isinstance(value, dg.FloatMetadataValue | dg.IntMetadataValue):
        value = value.value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _missing(key: str) -> dg.AssetCheckResult:
    # A rule that cannot see its metric must not pass silently: the asset stopped recording it.
    return dg.AssetCheckResult(
        passed=False,
        description=f"metadata `{key}` was not recorded by this materialization: cannot verify",
        metadata={"missing_key": key},
    )


def column_types(metadata: Metadata) -> dict[str, str] | None:
    """Column name -> type from `dagster/column_schema` (a TableSchema or its metadata value)."""
    value = metadata.get(COLUMN_SCHEMA)
    if isinstance(value, dg.TableSchemaMetadataValue):
        value = value.schema
    if isinstance(value, dg.TableSchema):
        return {c.name: c.type for c in value.columns}
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return {str(name): str(kind) for name, kind in value}
    return None


def schema_drift(previous: Metadata | None, current: Metadata) -> dg.AssetCheckResult:
    """Fails when columns were added, removed or retyped since the previous materialization."""
    if previous is None:
        return dg.AssetCheckResult(
            passed=True, description="First materialization: no schema to compare with."
        )
    before, after = column_types(previous), column_types(current)
    if before is not None and after is not None:
        added = sorted(set(after) - set(before))
        removed = sorted(set(before) - set(after))
        retyped = sorted(c for c in set(before) & set(after) if before[c] != after[c])
        changes = []
        if added:
            changes.append(f"added {', '.join(added)}")
        if removed:
            changes.append(f"removed {', '.join(removed)}")
        if retyped:
            changes.append(
                "retyped " + ", ".join(f"{c} ({before[c]} -> {after[c]})" for c in retyped)
            )
        return dg.AssetCheckResult(
            passed=not changes,
            description="; ".join(changes) if changes else "Schema unchanged.",
            metadata={
                "added_columns": len(added),
                "removed_columns": len(removed),
                "retyped_columns": len(retyped),
                "changes": dg.MetadataValue.json(
                    {"added": added, "removed": removed, "retyped": retyped}
                ),
            },
        )
    old_hash, new_hash = _number(previous, SCHEMA_HASH), _number(current, SCHEMA_HASH)
    if old_hash is None or new_hash is None:
        return _missing(f"{COLUMN_SCHEMA}` or `{SCHEMA_HASH}")
    same = old_hash == new_hash
    return dg.AssetCheckResult(
        passed=same,
        description="Schema unchanged."
        if same
        else f"schema hash changed ({int(old_hash)} -> {int(new_hash)})",
    )


def keys_valid(metadata: Metadata, keys: Sequence[str]) -> dg.AssetCheckResult:
    """Key columns are never null and never duplicated (from `null_fraction/<key>` and
    `duplicate_key_count`)."""
    duplicates = _number(metadata, DUPLICATE_KEY_COUNT)
    if duplicates is None:
        return _missing(DUPLICATE_KEY_COUNT)
    problems = [f"{int(duplicates)} duplicate keys"] if duplicates > 0 else []
    out: dict[str, Any] = {"duplicate_key_count": int(duplicates)}
    for key in keys:
        fraction = _number(metadata, health.null_fraction_key(key))
        if fraction is None:
            return _missing(health.null_fraction_key(key))
        out[health.null_fraction_key(key)] = fraction
        if fraction > 0:
            problems.append(f"`{key}` null in {fraction:.2%} of rows")
    return dg.AssetCheckResult(
        passed=not problems,
        description="; ".join(problems)
        if problems
        else f"Keys {', '.join(keys)} unique and non-null.",
        metadata=out,
    )


def _reason(expected_empty: ExpectedEmpty) -> str | None:
    return expected_empty() if callable(expected_empty) else expected_empty


def _expected_empty_result(rows: float | None, reason: str, extra: Metadata) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=True,
        description=f"no rows, as expected: {reason}",
        metadata={**extra, "row_count": int(rows or 0), "expected_empty": reason},
    )


def fresh(
    metadata: Metadata, max_lag_hours: float, expected_empty: ExpectedEmpty = None
) -> dg.AssetCheckResult:
    """Newest event at most `max_lag_hours` before the partition end. An empty partition has
    no newest event: it passes only when `expected_empty` says why (a weekly closed day)."""
    lag = _number(metadata, FRESHNESS_LAG_HOURS)
    rows = _number(metadata, ROW_COUNT)
    if (lag is None or lag > max_lag_hours) and rows == 0:
        reason = _reason(expected_empty)
        if reason:
            return _expected_empty_result(rows, reason, {"max_lag_hours": float(max_lag_hours)})
    if lag is None:
        return _missing(FRESHNESS_LAG_HOURS)
    return dg.AssetCheckResult(
        passed=lag <= max_lag_hours,
        description=f"newest event {lag:.1f} h before the partition end (limit {max_lag_hours:g} h)",
        metadata={"freshness_lag_hours": lag, "max_lag_hours": float(max_lag_hours)},
    )


def has_rows(metadata: Metadata, expected_empty: ExpectedEmpty = None) -> dg.AssetCheckResult:
    """At least one row, unless `expected_empty` gives the reason this partition has none."""
    rows = _number(metadata, ROW_COUNT)
    if rows is None:
        return _missing(ROW_COUNT)
    if rows == 0:
        reason = _reason(expected_empty)
        if reason:
            return _expected_empty_result(rows, reason, {})
    return dg.AssetCheckResult(
        passed=rows > 0,
        description=f"{int(rows)} rows" if rows > 0 else "the materialization has no rows",
        metadata={"row_count": int(rows)},
    )


def closed_day_lookup(
    instance: dg.DagsterInstance,
    key: dg.AssetKey,
    partition: str | None,
    *,
    expected_events: Any = None,
    weeks: int = CLOSED_WEEKS,
) -> Callable[[], str | None]:
    """`expected_empty` for `has_rows`/`fresh`: is this empty daily partition a known closed day?

    Yes when the expected-events calendar covers it (`expected_events`, default the
    DATA_PLATFORM_EXPECTED_EVENTS file; `every saturday` declares a weekly closed day) or when
    the asset's own `dagster/row_count` was 0 on the same weekday in each of the last `weeks`
    weeks. Evaluated only for an empty partition, so ordinary runs never read the calendar.
    """

    def lookup() -> str | None:
        if partition is None:
            return None
        events = coerce_expected_events(expected_events)
        day = point_date(partition) if len(partition) == 10 else None
        counts = _past_row_counts(instance, key, day, weeks) if day is not None else {}
        return expected_empty_reason(
            partition, counts, asset=key.to_user_string(), events=events, weeks=weeks
        )

    return lookup


def _past_row_counts(
    instance: dg.DagsterInstance, key: dg.AssetKey, day: date, weeks: int
) -> dict[date, float | None]:
    """Row counts of the latest materialization of the same weekday in each of `weeks` weeks."""
    days = {(day - timedelta(weeks=k)).isoformat(): day - timedelta(weeks=k) for k in range(1, weeks + 1)}
    latest = event_store.latest_storage_id_by_partition(instance, key, days)
    records = event_store.materializations_by_storage_id(instance, key, latest.values())
    out: dict[date, float | None] = {}
    for record in records:
        materialization = record.asset_materialization
        if materialization is not None and materialization.partition in days:
            out[days[materialization.partition]] = _number(materialization.metadata, ROW_COUNT)
    return out


def quarantine_below(metadata: Metadata, max_share: float) -> dg.AssetCheckResult:
    share = _number(metadata, QUARANTINE_SHARE)
    if share is None:
        return _missing(QUARANTINE_SHARE)
    return dg.AssetCheckResult(
        passed=share <= max_share,
        description=f"{share:.2%} of rows quarantined (limit {max_share:.2%})",
        metadata={"quarantine_share": share, "max_share": float(max_share)},
    )


def build_schema_drift_checks(
    assets: Iterable[Any], **options: Any
) -> list[dg.AssetChecksDefinition]:
    """Check `schema_drift`: compares with the materialization just before the judged one."""
    return _build(assets, "schema_drift", None, options, previous=True)


def build_key_checks(
    assets: Iterable[Any], keys: Sequence[str], **options: Any
) -> list[dg.AssetChecksDefinition]:
    """Check `keys_valid`: `keys` unique (duplicate_key_count == 0) and non-null."""
    keys = [keys] if isinstance(keys, str) else list(keys)
    return _build(assets, "keys_valid", lambda md: keys_valid(md, keys), options)


def build_freshness_checks(
    assets: Iterable[Any], max_lag_hours: float = 24.0, **options: Any
) -> list[dg.AssetChecksDefinition]:
    """Check `fresh`: metadata `freshness_lag_hours` at most `max_lag_hours`; an empty daily
    partition on a closed day passes (see `closed_day_lookup`)."""
    return _build(assets, "fresh", lambda md, empty=None: fresh(md, max_lag_hours, empty), options,
                  closed_days=True)


def build_row_count_checks(assets: Iterable[Any], **options: Any) -> list[dg.AssetChecksDefinition]:
    """Check `has_rows`: `dagster/row_count` > 0, except on a closed day (`closed_day_lookup`)."""
    return _build(assets, "has_rows", has_rows, options, closed_days=True)


def build_quarantine_checks(
    assets: Iterable[Any], max_share: float = 0.05, **options: Any
) -> list[dg.AssetChecksDefinition]:
    """Check `quarantine_below`: metadata `quarantine_share` at most `max_share`."""
    if not 0 <= max_share <= 1:
        raise ValueError(f"max_share must be between 0 and 1, got {max_share}")
    return _build(assets, "quarantine_below", lambda md: quarantine_below(md, max_share), options)


def _build(
    assets: Iterable[Any],
    default_name: str,
    rule: Callable[[Metadata], dg.AssetCheckResult] | None,
    options: Mapping[str, Any],
    *,
    previous: bool = False,
    closed_days: bool = False,
) -> list[dg.AssetChecksDefinition]:
    allowed = {"severity", "blocking", "name"} | ({"closed_days", "expected_events"} if closed_days else set())
    unknown = set(options) - allowed
    if unknown:
        raise TypeError(f"unknown options {sorted(unknown)}: use {', '.join(sorted(allowed))}")
    severity = options.get("severity", dg.AssetCheckSeverity.WARN)
    name = options.get("name", default_name)
    learn = closed_days and bool(options.get("closed_days", True))
    events = options.get("expected_events")
    checks = []
    for key, _ in _asset_keys(assets):
        checks.append(
            _rule_check(key, name, rule, severity, bool(options.get("blocking", False)), previous,
                        events if learn else _NO_CLOSED_DAYS)
        )
    return checks


# Sentinel: the rule takes no closed-day lookup.
_NO_CLOSED_DAYS = object()


def _rule_check(
    key: dg.AssetKey,
    name: str,
    rule: Callable[[Metadata], dg.AssetCheckResult] | None,
    severity: dg.AssetCheckSeverity,
    blocking: bool,
    previous: bool,
    expected_events: Any,
) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=key, name=name, blocking=blocking)
    def _check(context) -> dg.AssetCheckResult:  # annotation would be a string: Dagster rejects it
        return evaluate_rule(
            context.instance,
            key,
            rule,
            run_id=context.run.run_id,
            partition=context.run.tags.get("dagster/partition"),
            severity=severity,
            previous=previous,
            closed_days=expected_events is not _NO_CLOSED_DAYS,
            expected_events=None if expected_events is _NO_CLOSED_DAYS else expected_events,
        )

    return _check


def evaluate_rule(
    instance: dg.DagsterInstance,
    key: dg.AssetKey,
    rule: Callable[[Metadata], dg.AssetCheckResult] | None,
    *,
    run_id: str | None = None,
    partition: str | None = None,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.WARN,
    previous: bool = False,
    closed_days: bool = False,
    expected_events: Any = None,
) -> dg.AssetCheckResult:
    """Apply `rule` (or schema drift when `previous`) to each materialization of the run.

    closed_days: the rule also gets `closed_day_lookup` for the point's partition, so an empty
    partition on a weekly closed day or an expected event passes with the reason.
    """
    points = _current_points(instance, key, run_id, partition)
    if not points:
        return dg.AssetCheckResult(
            passed=True, severity=severity, description="No materialization to check yet."
        )
    results = []
    for point in points:
        metadata = point.raw
        if previous:
            before = event_store.latest_materialization(
                instance, key, before_storage_id=point.storage_id
            )
            results.append(
                schema_drift(before.asset_materialization.metadata if before else None, metadata)
            )
        else:
            assert rule is not None
            if closed_days:
                lookup = closed_day_lookup(instance, key, point.partition, expected_events=expected_events)
                results.append(rule(metadata, lookup))
            else:
                results.append(rule(metadata))
    failed = [r for r in results if not r.passed]
    chosen = failed[0] if failed else results[-1]
    description = chosen.description or ""
    if len(points) > 1:
        description = f"{len(failed)} of {len(points)} partitions failed. {description}"
    return dg.AssetCheckResult(
        passed=not failed,
        severity=severity,
        description=description,
        metadata=dict(chosen.metadata),
    )
