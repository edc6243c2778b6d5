"""Sources: canonical entity schemas, the synthetic marketplace, file and SQL adapters.

`load` reads a file source, `fetch` serves one entity (one day of an event entity) from any
spec, `partition_range` tells which days file sources cover.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

from data_platform.sources.files import FILE_KINDS, dated_range, load_file_source
from data_platform.sources.result import REJECT_COLUMNS, LoadResult, SourceError
from data_platform.sources.schemas import (
    DIMENSION_ENTITIES,
    ENTITIES,
    EVENT_ENTITIES,
    SCHEMAS,
    EntitySchema,
    SchemaError,
)
from data_platform.sources.spec import KINDS, SQL, SYNTHETIC, SourceSpec, parse_spec

__all__ = [
    "DIMENSION_ENTITIES",
    "ENTITIES",
    "EVENT_ENTITIES",
    "KINDS",
    "REJECT_COLUMNS",
    "SCHEMAS",
    "EntitySchema",
    "LoadResult",
    "SchemaError",
    "SourceError",
    "SourceSpec",
    "fetch",
    "load",
    "parse_spec",
    "partition_range",
]


def _as_date(value: date | datetime | None) -> date | None:
    return value.date() if isinstance(value, datetime) else value


def load(
    kind: str,
    path: str | Path = "",
    *,
    entity: str | None = None,
    start: date | None = None,
    end: date | None = None,
    options: dict | None = None,
    seed: int = 0,
) -> LoadResult:
    """One entity of a source; `start`/`end` (end exclusive) restrict event rows to a window.

    `entity=None` is the kind's primary entity. For `synthetic` the path is ignored and the
    window defaults to the single day `start` (clean days, no incidents unless asked by fetch).
    """
    start, end = _as_date(start), _as_date(end)
    if entity is not None and entity not in SCHEMAS:
        raise SourceError(
            f"{kind}:{path}", f"unknown entity {entity!r}; expected one of {list(SCHEMAS)}"
        )
    if kind == SYNTHETIC:
        from data_platform.sources import synthetic

        entity = entity or "orders"
        if entity in DIMENSION_ENTITIES:
            return LoadResult(data=synthetic.generate(entity, seed=seed), entity=entity)
        if start is None:
            raise SourceError(SYNTHETIC, f"{entity} is an event entity: give start (and end)")
        end = end or start + timedelta(days=1)
        frame = synthetic.generate_range(entity, start, end, seed=seed, incidents=False)
        return LoadResult(data=frame, entity=entity)
    if kind not in FILE_KINDS:
        raise SourceError(f"{kind}:{path}", f"unknown kind {kind!r}; expected one of {list(KINDS)}")
    return load_file_source(kind, path, entity, start, end, options)


def fetch(
    spec: str | SourceSpec,
    entity: str,
    day: date | None = None,
    *,
    seed: int = 0,
    scale: float = 1.0,
    incidents: bool = True,
) -> LoadResult:
    """What an asset run needs: one day of an event entity, or a whole dimension table.

    `scale` and `incidents` apply to the synthetic source only (see `synthetic.generate`).
    """
    parsed = parse_spec(spec)
    if entity not in SCHEMAS:
        raise SourceError(
            str(parsed), f"unknown entity {entity!r}; expected one of {list(SCHEMAS)}"
        )
    day = _as_date(day)
    partitioned = SCHEMAS[entity].partitioned
    if partitioned and day is None:
        raise SourceError(str(parsed), f"{entity} is partitioned by day: fetch needs a day")
    if parsed.kind == SYNTHETIC:
        from data_platform.sources import synthetic

        frame = synthetic.generate(entity, day, seed=seed, scale=scale, incidents=incidents)
        return LoadResult(data=frame, entity=entity)
    if parsed.kind == SQL:
        from data_platform.sources.sql import read_sql

        return read_sql(parsed.path, parsed.options["target"], entity, day if partitioned else None)
    start, end = (day, day + timedelta(days=1)) if partitioned else (None, None)
    return load_file_source(parsed.kind, parsed.path, entity, start, end, parsed.options)


def partition_range(specs: dict[str, str]) -> tuple[date, date] | None:
    """(first day, last day) covered by the file sources of event entities; None if there are none.

    Folders of ``YYYY-MM-DD.csv`` files are dated by their names; other sources are read (and
    stay cached for the runs that follow). SQL and synthetic sources do not bound the range.
    """
    covered: list[tuple[date, date]] = []
    for entity, spec in specs.items():
        if entity not in EVENT_ENTITIES:
            continue
        parsed = parse_spec(spec)
        if parsed.kind not in FILE_KINDS or entity not in FILE_KINDS[parsed.kind][1]:
            continue
        named = dated_range(Path(parsed.path)) if parsed.kind == "online_retail" else None
        if named is not None:
            covered.append(named)
            continue
        times = load_file_source(parsed.kind, parsed.path, entity, None, None, parsed.options).data[
            SCHEMAS[entity].event_time
        ]
        if times.notna().any():
            covered.append((times.min().date(), times.max().date()))
    if not covered:
        return None
    return min(c[0] for c in covered), max(c[1] for c in covered)
