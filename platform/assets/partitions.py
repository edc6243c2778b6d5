"""The daily partitions shared by every event asset.

Synthetic data exists for any day, so the range starts at a fixed date and runs up to today.
File sources define the range from the data they hold; `DATA_PLATFORM_START_DATE` overrides the
start either way.
"""

from __future__ import annotations

import os
from datetime import date, timedelta

import dagster as dg

from data_platform.sources import partition_range

DEFAULT_START_DATE = date(2025, 1, 1)

# A warehouse write that loses its connection fails atomically (the partition keeps its previous
# version); the step is then retried whole, so a database blip costs a retry, not a run.
WAREHOUSE_RETRY = dg.RetryPolicy(max_retries=2, delay=2.0, backoff=dg.Backoff.EXPONENTIAL)


def partition_bounds(specs: dict[str, str], environ: dict[str, str] | None = None) -> tuple[date, date | None]:
    """(first day, day after the last) of the daily partitions; end None means "up to today"."""
    environ = dict(os.environ if environ is None else environ)
    start, end = DEFAULT_START_DATE, None
    covered = partition_range(specs)
    if covered is not None:
        start, end = covered[0], covered[1] + timedelta(days=1)
    if environ.get("DATA_PLATFORM_START_DATE"):
        start = date.fromisoformat(environ["DATA_PLATFORM_START_DATE"])
    if end is not None and end <= start:
        raise ValueError(
            f"DATA_PLATFORM_START_DATE {start} is after the last day of data ({end - timedelta(days=1)})"
        )
    return start, end


def daily_partitions(specs: dict[str, str]) -> dg.DailyPartitionsDefinition:
    start, end = partition_bounds(specs)
    return dg.DailyPartitionsDefinition(
        start_date=start.isoformat(),
        end_date=end.isoformat() if end else None,
    )


def partition_day(context: dg.AssetExecutionContext) -> date:
    return date.fromisoformat(context.partition_key)
