"""Turning an asset's past materializations into the history a detector learns from.

A point is one partition (or, for an unpartitioned asset, one materialization). Re-running a
partition replaces its point instead of adding one, so backfills never double-count a day. Only
points before the one being judged are history: a value is never part of its own baseline.

Also here: the calendar of expected events (holidays, releases, recurring closed weekdays)
whose points are neither alerted on nor learned from, and the weekly closed days an asset's own
row counts reveal (`expected_empty_reason`), which the deterministic rules accept.
"""

from __future__ import annotations

import csv
import fnmatch
import math
import os
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd

from data_platform.quality.health import ROW_COUNT

EXPECTED_EVENTS_ENV = "DATA_PLATFORM_EXPECTED_EVENTS"
DEFAULT_LOOKBACK = 180
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# A weekday empty on each of the last this many weeks is a weekly closed day, not an outage.
CLOSED_WEEKS = 3


def is_number(value: object) -> bool:
    """Finite ints and floats; booleans are flags, not magnitudes."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(float(value))


def select_metric_keys(keys: Iterable[str], metrics: Sequence[str] | None = None) -> list[str]:
    """The metric keys to judge, in first-seen order.

    With `metrics=None` every key counts except Dagster's own `dagster/...` keys (timings,
    code versions), of which only the row count is a health metric. Otherwise `metrics` lists
    exact keys or glob patterns (`null_fraction/*`); a listed `dagster/` key is honoured.
    """
    unique = list(dict.fromkeys(keys))
    if metrics is None:
        return [k for k in unique if not k.startswith("dagster/") or k == ROW_COUNT]
    patterns = [metrics] if isinstance(metrics, str) else list(metrics)
    return [k for k in unique if any(fnmatch.fnmatchcase(k, p) for p in patterns)]


def numeric_metrics(
    metadata: Mapping[str, object], metrics: Sequence[str] | None = None
) -> dict[str, float]:
    """The numeric entries of one materialization's metadata (plain values) chosen by `metrics`."""
    keys = select_metric_keys((k for k, v in metadata.items() if is_number(v)), metrics)
    return {k: float(metadata[k]) for k in keys}


def order_points(
    records: Iterable[tuple[Hashable, Mapping[str, object]]],
    *,
    before: Hashable | None = None,
    lookback: int = DEFAULT_LOOKBACK,
    order: Sequence[Hashable] | None = None,
) -> list[tuple[Hashable, Mapping[str, object]]]:
    """One (key, metadata) per point, oldest first, at most `lookback`, only points before `before`.

    `records` come in the order they were written: a later record for the same key wins (a
    re-run replaces its partition). Keys are ordered by `order` when given (a partitions
    definition's own order), else sorted.
    """
    if lookback < 1:
        raise ValueError(f"lookback must be at least 1, got {lookback}")
    latest: dict[Hashable, Mapping[str, object]] = {}
    for key, metadata in records:
        latest.pop(key, None)
        latest[key] = metadata
    if order is not None:
        rank = {k: i for i, k in enumerate(order)}
        unknown = [k for k in latest if k not in rank]
        if unknown:
            raise ValueError(f"points {unknown[:3]} are not in the given partition order")
        keys = sorted(latest, key=rank.__getitem__)
        if before is not None:
            if before not in rank:
                raise ValueError(f"partition {before!r} is not in the given partition order")
            keys = [k for k in keys if rank[k] < rank[before]]
    else:
        keys = sorted(latest)  # type: ignore[type-var]
        if before is not None:
            keys = [k for k in keys if k < before]  # type: ignore[operator]
    return [(k, latest[k]) for k in keys[-lookback:]]


def history_frame(
    points: Sequence[tuple[Hashable, Mapping[str, object]]],
    *,
    metrics: Sequence[str] | None = None,
    index: Sequence[Hashable] | None = None,
) -> pd.DataFrame:
    """The numeric metrics of ordered points as a float frame, one row per point.

    The index is `index` when given, else the point keys; date-like keys become a
    DatetimeIndex so a detector can see weekdays.
    """
    rows = [numeric_metrics(metadata, metrics) for _, metadata in points]
    keys = list(index) if index is not None else [k for k, _ in points]
    if len(keys) != len(rows):
        raise ValueError(f"index has {len(keys)} labels for {len(rows)} points")
    frame = pd.DataFrame(rows, index=point_index(keys), dtype=float)
    return frame[select_metric_keys(frame.columns, metrics)] if len(frame.columns) else frame


def build_history(
    records: Iterable[tuple[Hashable, Mapping[str, object]]],
    *,
    before: Hashable | None = None,
    lookback: int = DEFAULT_LOOKBACK,
    metrics: Sequence[str] | None = None,
    order: Sequence[Hashable] | None = None,
) -> pd.DataFrame:
    """`order_points` then `history_frame`: the detector's history from raw records."""
    points = order_points(records, before=before, lookback=lookback, order=order)
    return history_frame(points, metrics=metrics)


def point_index(keys: Sequence[Hashable]) -> pd.Index:
    """Date-like partition keys and epoch timestamps become a DatetimeIndex; others stay as-is."""
    if not keys:
        return pd.Index([], dtype=object)
    if all(is_number(k) for k in keys):
        return pd.DatetimeIndex(pd.to_datetime([float(k) for k in keys], unit="s", utc=True))
    if all(isinstance(k, str) for k in keys):
        try:
            parsed = pd.to_datetime(list(keys), format="ISO8601")
        except (ValueError, TypeError):
            return pd.Index(list(keys), dtype=object)
        if parsed.is_unique:
            return pd.DatetimeIndex(parsed)
    return pd.Index(list(keys), dtype=object)


def point_date(key: Hashable) -> date | None:
    """The calendar day a point belongs to, if its key says (partition key or epoch seconds)."""
    if is_number(key):
        return datetime.fromtimestamp(float(key), tz=UTC).date()
    if isinstance(key, str) and len(key) >= 10:
        try:
            return date.fromisoformat(key[:10])
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class ExpectedEvent:
    """A day or partition known in advance to look unusual (holiday, release, migration)."""

    key: str
    name: str = ""
    # Asset keys (`a/b` form) the event applies to; empty means every asset.
    assets: tuple[str, ...] = ()

    def applies_to(self, asset: str) -> bool:
        return not self.assets or asset in self.assets

    @property
    def weekday(self) -> int | None:
        """0-6 for a recurring event (`every saturday`), else None."""
        words = self.key.lower().split()
        if len(words) == 2 and words[0] == "every" and words[1] in WEEKDAYS:
            return WEEKDAYS.index(words[1])
        return None


@dataclass(frozen=True)
class ExpectedEvents:
    events: tuple[ExpectedEvent, ...] = field(default_factory=tuple)

    def match(self, asset: str, key: Hashable) -> ExpectedEvent | None:
        """The event covering this point: same partition key, or same day as a date event."""
        day = point_date(key)
        for event in self.events:
            if not event.applies_to(asset):
                continue
            if isinstance(key, str) and event.key == key:
                return event
            if day is not None and len(event.key) == 10 and event.key == day.isoformat():
                return event
            if day is not None and event.weekday is not None and event.weekday == day.weekday():
                return event
        return None

    def __len__(self) -> int:
        return len(self.events)


def coerce_expected_events(value: object) -> ExpectedEvents:
    """Accept an ExpectedEvents, a list of keys/dates/mappings, or None (env var or nothing)."""
    if isinstance(value, ExpectedEvents):
        return value
    if value is None:
        return expected_events_from_env()
    if isinstance(value, str | Path):
        return load_expected_events(value)
    return ExpectedEvents(tuple(_event_from(item) for item in value))  # type: ignore[union-attr]


def expected_events_from_env(environ: Mapping[str, str] | None = None) -> ExpectedEvents:
    path = (os.environ if environ is None else environ).get(EXPECTED_EVENTS_ENV)
    return load_expected_events(path) if path else ExpectedEvents()


def load_expected_events(path: str | Path) -> ExpectedEvents:
    """Read a calendar from YAML (a list of dates/keys or of {key|date, name, assets}) or CSV.

    A CSV has a header with `date` (or `key`) and optional `name` and `assets` (separated by
    `;`). A missing or malformed file raises naming the file: a silently empty calendar
    would alert on every holiday.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected-events calendar {path} does not exist")
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"date", "key"} & set(reader.fieldnames):
                raise ValueError(f"{path}: the CSV header needs a `date` or `key` column")
            items: list[object] = [dict(row) for row in reader]
    else:
        import yaml

        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(loaded, Mapping):
            loaded = loaded.get("events", [])
        if loaded is None:
            loaded = []
        if not isinstance(loaded, list):
            raise ValueError(f"{path}: expected a list of events, got {type(loaded).__name__}")
        items = loaded
    try:
        return ExpectedEvents(tuple(_event_from(item) for item in items))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _event_from(item: object) -> ExpectedEvent:
    if isinstance(item, ExpectedEvent):
        return item
    if isinstance(item, date | datetime):
        return ExpectedEvent(_date_key(item))
    if isinstance(item, str):
        return _checked(ExpectedEvent(item.strip()))
    if isinstance(item, Mapping):
        raw = item.get("key") or item.get("date")
        if not raw and item.get("weekday"):
            raw = f"every {str(item['weekday']).strip()}"
        if not raw:
            raise ValueError(f"event {dict(item)!r} has no `key`, `date` or `weekday`")
        assets = item.get("assets") or ()
        if isinstance(assets, str):
            assets = [a for a in assets.split(";") if a.strip()]
        key = _date_key(raw) if isinstance(raw, date | datetime) else str(raw).strip()
        return _checked(ExpectedEvent(
            key, str(item.get("name") or ""), tuple(str(a).strip() for a in assets)
        ))
    raise ValueError(f"cannot read an expected event from {item!r}")


def _checked(event: ExpectedEvent) -> ExpectedEvent:
    # "every satday" would otherwise be a partition key that never matches: say so.
    if event.key.lower().startswith("every ") and event.weekday is None:
        raise ValueError(f"`{event.key}`: a recurring event is `every <weekday>` (e.g. every saturday)")
    return event


def expected_empty_reason(
    key: Hashable,
    past_row_counts: Mapping[date, float | None],
    *,
    asset: str = "",
    events: ExpectedEvents | None = None,
    weeks: int = CLOSED_WEEKS,
) -> str | None:
    """Why a point with no rows is expected, or None when an empty point is a problem.

    Expected when the calendar covers the point (a holiday, or a recurring `every saturday`),
    or when the asset's own history shows the point's weekday with 0 rows on each of the last
    `weeks` weeks (a shop closed on Saturdays). `past_row_counts` maps earlier days to their
    row count (None or absent: not materialized, which is no evidence either way).
    """
    if events is not None:
        event = events.match(asset, key)
        if event is not None:
            return f"expected event {event.name or event.key}"
    day = point_date(key)
    if day is None or weeks < 1:
        return None
    same_weekdays = [day - timedelta(weeks=k) for k in range(1, weeks + 1)]
    if all(past_row_counts.get(d) == 0 for d in same_weekdays):
        return (
            f"no rows on each of the last {weeks} {WEEKDAYS[day.weekday()].capitalize()}s "
            f"({', '.join(d.isoformat() for d in reversed(same_weekdays))}): a weekly closed day"
        )
    return None


def _date_key(value: date | datetime) -> str:
    return (value.date() if isinstance(value, datetime) else value).isoformat()
