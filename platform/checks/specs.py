"""Asset checks partitioned like their asset: check status per partition in the Dagster UI.

Dagster 1.13 accepts a `partitions_def` on `AssetCheckSpec` and `@asset_check` (the asset's own
definition; a partitioned check's evaluation is stored for the run's partition) and warns on
each such spec that the feature is a preview. The platform builds every partitioned check
inside `partitioned_checks()`, the one place that warning is silenced.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg


@contextmanager
def partitioned_checks() -> Iterator[None]:
    """Build check specs with a `partitions_def` without Dagster's preview warning."""
    with warnings.catch_warnings():
        # PreviewWarning "Specifying a partitions_def on an AssetCheckSpec" (Dagster 1.13): the
        # API is public and what the UI's per-partition check status needs.
        warnings.simplefilter("ignore", dg.PreviewWarning)
        yield


def check_spec(
    name: str, asset: str | dg.AssetKey, partitions_def: dg.PartitionsDefinition | None
) -> dg.AssetCheckSpec:
    """A check spec of `asset`, partitioned by `partitions_def` (the asset's; None: unpartitioned)."""
    with partitioned_checks():
        return dg.AssetCheckSpec(name, asset=asset, partitions_def=partitions_def)
