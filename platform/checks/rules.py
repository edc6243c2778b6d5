"""Deterministic asset checks that read only materialization metadata, so they are cheap and
work for any asset and any IO manager.

Each rule is a plain function over one materialization's metadata (callable in tests) and a
`build_*_checks(assets, ...)` factory that wires it into Dagster checks judging the
materialization(s) of the check's own run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import dagster as dg
from data_platform.checks.anomaly import _asset_keys, _current_points
from data_platform.quality import health

ROW_COUNT = health.ROW_COUNT
COLUMN_SCHEMA = health.COLUMN_SCHEMA
SCHEMA_HASH = health.SCHEMA_HASH
DUPLICATE_KEY_COUNT = health.DUPLICATE_KEY_COUNT
FRESHNESS_LAG_HOURS = health.FRESHNESS_LAG_HOURS
QUARANTINE_SHARE = health.QUARANTINE_SHARE

Metadata = Mapping[str, Any]


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


def fresh(metadata: Metadata, max_lag_hours: float) -> dg.AssetCheckResult:
    lag = _number(metadata, FRESHNESS_LAG_HOURS)
    if lag is None:
        return _missing(FRESHNESS_LAG_HOURS)
    return dg.AssetCheckResult(
        passed=lag <= max_lag_hours,
        description=f"newest event {lag:.1f} h before the partition end (limit {max_lag_hours:g} h)",
        metadata={"freshness_lag_hours": lag, "max_lag_hours": float(max_lag_hours)},
    )


def has_rows(metadata: Metadata) -> dg.AssetCheckResult:
    rows = _number(metadata, ROW_COUNT)
    if rows is None:
        return _missing(ROW_COUNT)
    return dg.AssetCheckResult(
        passed=rows > 0,
        description=f"{int(rows)} rows" if rows > 0 else "the materialization has no rows",
        metadata={"row_count": int(rows)},
    )


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
    """Check `fresh`: metadata `freshness_lag_hours` at most `max_lag_hours`."""
    return _build(assets, "fresh", lambda md: fresh(md, max_lag_hours), options)


def build_row_count_checks(assets: Iterable[Any], **options: Any) -> list[dg.AssetChecksDefinition]:
    """Check `has_rows`: `dagster/row_count` > 0."""
    return _build(assets, "has_rows", has_rows, options)


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
) -> list[dg.AssetChecksDefinition]:
    unknown = set(options) - {"severity", "blocking", "name"}
    if unknown:
        raise TypeError(f"unknown options {sorted(unknown)}: use severity, blocking or name")
    severity = options.get("severity", dg.AssetCheckSeverity.WARN)
    name = options.get("name", default_name)
    checks = []
    for key, _ in _asset_keys(assets):
        checks.append(
            _rule_check(key, name, rule, severity, bool(options.get("blocking", False)), previous)
        )
    return checks


def _rule_check(
    key: dg.AssetKey,
    name: str,
    rule: Callable[[Metadata], dg.AssetCheckResult] | None,
    severity: dg.AssetCheckSeverity,
    blocking: bool,
    previous: bool,
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
) -> dg.AssetCheckResult:
    """Apply `rule` (or schema drift when `previous`) to each materialization of the run."""
    points = _current_points(instance, key, run_id, partition)
    if not points:
        return dg.AssetCheckResult(
            passed=True, severity=severity, description="No materialization to check yet."
        )
    results = []
    for point in points:
        metadata = point.raw
        if previous:
            before = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, before_storage_id=point.storage_id), limit=1
            ).records
            results.append(
                schema_drift(before[0].asset_materialization.metadata if before else None, metadata)
            )
        else:
            assert rule is not None
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
