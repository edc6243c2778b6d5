"""The `LoadResult` a loader returns: data conformed to its entity's schema."""

from __future__ import annotations

import pandas as pd

from data_platform.sources.result import LineTally, LoadResult, empty_rejects
from data_platform.sources.schemas import SCHEMAS


def result(
    entity: str, data: pd.DataFrame, rejected: pd.DataFrame, files, lines: LineTally | None = None
) -> LoadResult:
    schema = SCHEMAS[entity]
    if not len(data):
        data = schema.empty()
    return LoadResult(
        data=schema.conform(data),
        rejected=rejected if len(rejected) else empty_rejects(),
        entity=entity,
        files=tuple(str(f) for f in files),
        lines=lines,
    )
