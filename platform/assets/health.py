"""Turns the pure health metrics into Dagster metadata (standard keys + our numeric keys)."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pandas as pd

from data_platform.checks import event_store
from data_platform.quality import health
from data_platform.sources.schemas import EntitySchema


def table_schema(df: pd.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(name=str(name), type=str(dtype)) for name, dtype in health.column_schema(df)]
    )


def health_metadata(
    df: pd.DataFrame,
    schema: EntitySchema | None = None,
    *,
    day: date | None = None,
    quarantined: int = 0,
    rejected: int | None = None,
    source_rows: int | None = None,
    started: float | None = None,
    key: tuple[str, ...] | None = None,
    extra: dict[str, object] | None = None,
) -> dict[str, object]:
    """Metadata for one materialization: what the checks learn from and the UI plots."""
    import time

    metrics = health.asset_health(
        df,
        schema,
        day=day,
        quarantined=quarantined,
        rejected=rejected,
        source_rows=source_rows,
        duration_seconds=(time.perf_counter() - started) if started is not None else None,
        key=key,
    )
    metadata: dict[str, object] = dict(metrics)
    metadata[health.COLUMN_SCHEMA] = table_schema(df)
    metadata[health.ROW_COUNT] = int(len(df))
    if extra:
        metadata.update(extra)
    return metadata


def rule_result(asset_key: str, check_name: str, result: dg.AssetCheckResult, **fields) -> dg.AssetCheckResult:
    """A rule from `checks.rules` evaluated inside the asset's own step, named for its spec."""
    values = {
        "passed": result.passed,
        "severity": result.severity,
        "description": result.description,
        "metadata": result.metadata,
        **fields,
    }
    return dg.AssetCheckResult(asset_key=dg.AssetKey(asset_key), check_name=check_name, **values)


def previous_metadata(context: dg.AssetExecutionContext, asset_key: str) -> dict | None:
    """Metadata of the asset's latest materialization before this run (any partition)."""
    record = event_store.latest_materialization(context.instance, dg.AssetKey(asset_key))
    if record is None:
        return None
    return dict(record.asset_materialization.metadata)


def table_out(group: str, description: str) -> dg.AssetOut:
    """An output stored as a warehouse table (the shape every ingestion/cleaning output shares)."""
    return dg.AssetOut(
        group_name=group,
        io_manager_key="warehouse_io_manager",
        description=description,
        kinds={"pandas", "sql"},
    )
