"""Ingestion: one `<entity>_raw` asset per entity, plus `<entity>_rejected` for unparseable rows.

Raw keeps what the source delivered. When a source drifts (a column renamed, a column added),
the canonical columns it lacks are stored as all-missing and the extra columns are kept, so the
drift is visible in the raw table, its schema metadata and the checks, and cleaning decides.
"""


import time

import dagster as dg

from data_platform import catalog
from data_platform.assets.health import health_metadata, previous_metadata, rule_result, table_out
from data_platform.assets.partitions import WAREHOUSE_RETRY, partition_day
from data_platform.checks import rules
from data_platform.checks.specs import check_spec
from data_platform.quality import health
from data_platform.resources.source import SourceResource
from data_platform.sources.schemas import SCHEMAS, align_to_schema

# align_to_schema lives in the pure layer (the benchmarks replay ingestion without Dagster).
__all__ = ["align_to_schema", "build_ingestion_asset"]


def build_ingestion_asset(entity: str, partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    schema = SCHEMAS[entity]
    raw_name = catalog.table(entity, catalog.RAW)
    rejected_name = catalog.table(entity, catalog.REJECTED)
    partitions = partitions_def if schema.partitioned else None

    @dg.multi_asset(
        name=f"ingest_{entity}",
        outs={
            raw_name: table_out(
                catalog.INGESTION,
                f"{entity.capitalize()} as delivered by the configured source, in the canonical schema.",
            ),
            rejected_name: table_out(
                catalog.INGESTION,
                f"Source rows of {entity} that could not be parsed: file, line, column, value, reason, raw text.",
            ),
        },
        partitions_def=partitions,
        retry_policy=WAREHOUSE_RETRY,
        # Partitioned like the asset: the UI shows each rule's status per partition.
        check_specs=[
            check_spec("source_rows_accounted", raw_name, partitions),
            check_spec("schema_drift", raw_name, partitions),
            *([check_spec("has_rows", raw_name, partitions)] if schema.partitioned else []),
        ],
    )
    def _ingest(context: dg.AssetExecutionContext, source: SourceResource):
        started = time.perf_counter()
        day = partition_day(context) if schema.partitioned else None
        result = source.fetch(entity, day)
        raw = align_to_schema(entity, result.data)
        rejected = result.rejected.reset_index(drop=True)
        previous = previous_metadata(context, raw_name)
        reasons = rejected["reason"].value_counts().to_dict() if len(rejected) else {}
        raw_metadata = health_metadata(
            raw,
            schema,
            day=day,
            rejected=len(rejected),
            source_rows=result.source_rows,
            started=started,
        )
        yield dg.Output(raw, raw_name, metadata=raw_metadata)
        yield dg.Output(
            rejected,
            rejected_name,
            metadata={
                health.ROW_COUNT: len(rejected),
                **{health.rejected_reason_key(reason): int(n) for reason, n in sorted(reasons.items())},
            },
        )
        # File sources count physical lines too (whole files read): a record that swallowed lines
        # shows as rejected lines beyond rejected rows, and a line lost by the reader unbalances.
        lines = result.lines
        accounted = len(raw) + len(rejected) == result.source_rows and (lines is None or lines.balanced)
        line_metadata = (
            {
                "file_lines": lines.total,
                "file_lines_accepted": lines.accepted,
                "file_lines_rejected": lines.rejected,
                "file_lines_header_or_blank": lines.header + lines.blank,
                # Lines not valid in the file's encoding, read with the declared encoding_fallback.
                "file_lines_decoded_with_fallback": lines.decoded_with_fallback,
            }
            if lines is not None
            else {}
        )
        yield dg.AssetCheckResult(
            check_name="source_rows_accounted",
            asset_key=raw_name,
            passed=bool(accounted),
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "source_rows": result.source_rows,
                "accepted_rows": len(raw),
                "rejected_rows": len(rejected),
                **line_metadata,
            },
            description="Every source row is either accepted into raw or rejected with a reason; "
            "every physical line of a file source is in an accepted record, a rejected record, "
            "a header or blank.",
        )
        yield rule_result(raw_name, "schema_drift", rules.schema_drift(previous, raw_metadata))
        if schema.partitioned:
            closed = rules.closed_day_lookup(context.instance, dg.AssetKey(raw_name), context.partition_key)
            yield rule_result(raw_name, "has_rows", rules.has_rows(raw_metadata, closed))

    return _ingest
