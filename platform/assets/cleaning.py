"""Cleaning: `<entity>_clean` and `<entity>_quarantine` (rows removed, each with its reason).

The rules per column live in `data_platform.quality.cleaning` (see docs/cleaning.md).
"""


import time

import dagster as dg

from data_platform import catalog
from data_platform.assets.health import health_metadata, rule_result, table_out
from data_platform.assets.partitions import WAREHOUSE_RETRY, partition_day
from data_platform.checks import rules
from data_platform.checks.specs import check_spec
from data_platform.quality import health
from data_platform.quality.cleaning import clean
from data_platform.sources.schemas import SCHEMAS

# Above this share of quarantined rows a day is suspect even before its history says so.
MAX_QUARANTINE_SHARE = 0.05
# A day whose newest event is older than this before the partition end is stale.
MAX_FRESHNESS_LAG_HOURS = 24.0


def build_cleaning_asset(entity: str, partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    schema = SCHEMAS[entity]
    clean_name = catalog.table(entity, catalog.CLEAN)
    quarantine_name = catalog.table(entity, catalog.QUARANTINE)
    partitions = partitions_def if schema.partitioned else None

    @dg.multi_asset(
        name=f"clean_{entity}",
        ins={"raw": dg.AssetIn(key=catalog.table(entity, catalog.RAW))},
        outs={
            clean_name: table_out(
                catalog.CLEANING,
                f"{entity.capitalize()} typed, deduplicated and validated; outliers flagged.",
            ),
            quarantine_name: table_out(
                catalog.CLEANING,
                f"Rows of {entity}_raw that failed a cleaning rule, with reason, column and value.",
            ),
        },
        partitions_def=partitions,
        retry_policy=WAREHOUSE_RETRY,
        # Partitioned like the asset: the UI shows each rule's status per partition.
        check_specs=[
            check_spec("rows_reconciled", clean_name, partitions),
            check_spec("keys_valid", clean_name, partitions),
            check_spec("quarantine_share", clean_name, partitions),
            *([check_spec("fresh", clean_name, partitions)] if schema.partitioned else []),
        ],
    )
    def _clean(context: dg.AssetExecutionContext, raw):
        started = time.perf_counter()
        day = partition_day(context) if schema.partitioned else None
        result = clean(entity, raw)
        clean_metadata = health_metadata(
            result.clean,
            schema,
            day=day,
            quarantined=len(result.quarantine),
            source_rows=len(raw),
            started=started,
        )
        yield dg.Output(result.clean, clean_name, metadata=clean_metadata)
        yield dg.Output(
            result.quarantine,
            quarantine_name,
            metadata={
                health.ROW_COUNT: len(result.quarantine),
                **{health.quarantined_reason_key(reason): int(n) for reason, n in sorted(result.counts.items())},
            },
        )
        reconciled = len(result.clean) + len(result.quarantine) == len(raw)
        yield dg.AssetCheckResult(
            check_name="rows_reconciled",
            asset_key=clean_name,
            passed=bool(reconciled),
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "raw_rows": len(raw),
                "clean_rows": len(result.clean),
                "quarantined_rows": len(result.quarantine),
                "unaccounted_rows": len(raw) - len(result.clean) - len(result.quarantine),
            },
            description="raw rows = clean rows + quarantined rows: no row is lost or invented.",
        )
        yield rule_result(clean_name, "keys_valid", rules.keys_valid(clean_metadata, list(schema.key)))
        yield rule_result(
            clean_name, "quarantine_share", rules.quarantine_below(clean_metadata, MAX_QUARANTINE_SHARE)
        )
        if schema.partitioned:
            closed = rules.closed_day_lookup(context.instance, dg.AssetKey(clean_name), context.partition_key)
            yield rule_result(clean_name, "fresh", rules.fresh(clean_metadata, MAX_FRESHNESS_LAG_HOURS, closed))

    return _clean
