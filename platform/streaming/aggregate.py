"""Events into metrics per key and interval: count, mean, null fraction (pure, no I/O).

Intervals are aligned on event time (``[k * interval, (k + 1) * interval)``) and close when the
stream's watermark, the latest event time seen minus ``lateness``, passes their end. Closing an
interval emits a row for every key seen so far, so a key that falls silent reports a count of 0
(how a drop to nothing is caught). An event of an interval that already closed is *late*: it is
not folded into stored metrics (they are final), the consumer counts it apart.

The aggregator remembers which stream entry ids made each open interval, so the consumer can
acknowledge exactly the entries of the intervals it has stored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from data_platform.streaming.events import Event

METRICS = ("count", "mean", "null_fraction")


@dataclass(frozen=True, slots=True)
class KeyMetrics:
    """One key's events in one closed interval."""

    key: str
    start: float
    end: float
    count: int = 0
    nulls: int = 0
    total: float = 0.0  # sum of the non-null values

    def value(self, metric: str) -> float | None:
        """The metric's value; None where it is undefined (the mean of no values)."""
        if metric == "count":
            return float(self.count)
        if metric == "mean":
            present = self.count - self.nulls
            return self.total / present if present else None
        if metric == "null_fraction":
            return self.nulls / self.count if self.count else None
        raise KeyError(metric)


@dataclass
class ClosedInterval:
    start: float
    end: float
    metrics: list[KeyMetrics]
    ids: list = field(default_factory=list)  # the entries folded into this interval


class _Bucket:
    __slots__ = ("count", "nulls", "total")

    def __init__(self) -> None:
        self.count = 0
        self.nulls = 0
        self.total = 0.0


class IntervalAggregator:
    """Open intervals of one stream; see the module docstring."""

    def __init__(self, interval: float, lateness: float, *, closed_through: float | None = None,
                 keys=(), max_keys: int = 1000, max_gap: int = 10_000) -> None:
        if interval <= 0 or lateness < 0:
            raise ValueError("interval must be positive and lateness not negative")
        self.interval = float(interval)
        self.lateness = float(lateness)
        # Intervals are counted by index (start = index * interval): no drift from float sums.
        self.next_index = None if closed_through is None else round(closed_through / self.interval)
        self.keys: set[str] = set(keys)
        self.max_keys = max_keys
        self.max_gap = max_gap
        self.watermark_ts = -math.inf  # latest event time seen
        self.open: dict[int, dict[str, _Bucket]] = {}
        self.ids: dict[int, list] = {}
        self.skipped_intervals = 0  # empty intervals beyond max_gap that were not emitted

    @property
    def closed_through(self) -> float | None:
        """End of the last closed interval (None before the first)."""
        return None if self.next_index is None else self.next_index * self.interval

    def add(self, event: Event, entry_id) -> str:
        """Fold one event in: "ok", "late" (its interval is closed) or "too many keys"."""
        index = math.floor(event.ts / self.interval)
        if event.ts > self.watermark_ts:
            self.watermark_ts = event.ts
        if self.next_index is not None and index < self.next_index:
            return "late"
        if event.key not in self.keys:
            if len(self.keys) >= self.max_keys:
                return "too many keys"
            self.keys.add(event.key)
        buckets = self.open.get(index)
        if buckets is None:
            buckets = self.open[index] = {}
            self.ids[index] = []
        bucket = buckets.get(event.key)
        if bucket is None:
            bucket = buckets[event.key] = _Bucket()
        bucket.count += 1
        if event.value is None:
            bucket.nulls += 1
        else:
            bucket.total += event.value
        self.ids[index].append(entry_id)
        return "ok"

    def close_ready(self) -> list[ClosedInterval]:
        """The intervals whose end the watermark has passed, oldest first, gaps filled with zeros."""
        if self.watermark_ts == -math.inf:
            return []
        last = math.floor((self.watermark_ts - self.lateness) / self.interval) - 1
        index = self.next_index
        if index is None:
            if not self.open:
                return []
            index = min(self.open)
        if last < index:
            return []
        closed: list[ClosedInterval] = []
        for target in sorted(i for i in self.open if i <= last) + [last]:
            if target - index > self.max_gap:
                # A long silence (or a jump in event time): emit at most max_gap empty intervals.
                self.skipped_intervals += target - index - self.max_gap
                index = target - self.max_gap
            while index <= target:
                closed.append(self._close(index))
                index += 1
        self.next_index = index
        return closed

    def _close(self, index: int) -> ClosedInterval:
        # A whole interval without events still reports every known key, with a count of zero.
        buckets = self.open.pop(index, {})
        ids = self.ids.pop(index, [])
        start, end = index * self.interval, (index + 1) * self.interval
        rows = []
        for key in sorted(self.keys):
            b = buckets.get(key)
            rows.append(KeyMetrics(key, start, end, b.count, b.nulls, b.total) if b
                        else KeyMetrics(key, start, end))
        return ClosedInterval(start, end, rows, ids)

    def open_entries(self) -> int:
        return sum(len(ids) for ids in self.ids.values())
