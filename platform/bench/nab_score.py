"""The Numenta Anomaly Benchmark's scoring, ported (pure; NAB's own package pins pandas 0.23).

Semantics, as NAB defines them (Lavin & Ahmad 2015, and the NAB scorer):

- A series has labelled anomaly windows (inclusive point ranges). Its first
  `min(floor(0.15 n), 750)` points are probationary: detections there are not scored, and a
  window counts only if some of its points lie after the probation.
- A detection inside a window is weighted by a scaled sigmoid of its relative position,
  `2 / (1 + exp(5 p)) - 1`, where `p = -(right - i + 1) / width`: about +1 at the window's start,
  falling towards 0 at its end, divided by its value at `p = -1` so that the earliest detection
  is worth exactly `tp` (the profile's true-positive weight). Only the best (earliest) detection of
  a window counts; a window without one costs `-fn`.
- A detection outside every window is a false positive worth `sigmoid(p) * fp`, where `p` is its
  distance past the end of the previous window in units of that window's width minus one
  (so a late detection just after a window costs little), and `-fp` before any window or from
  three widths on.
- The normalised score is `100 (raw - null) / (perfect - null)` over the whole set: the null
  detector (no detection) scores `-fn` per window, the perfect one `tp` per window.

The standard application profile weighs tp 1.0, fp 0.11 and fn 1.0.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

PROBATION_SHARE = 0.15
PROBATION_CAP_POINTS = 5000  # probation is 15 % of the series, at most 15 % of 5,000 points


@dataclass(frozen=True)
class Profile:
    tp: float = 1.0
    fp: float = 0.11
    fn: float = 1.0


STANDARD = Profile()
REWARD_LOW_FP = Profile(tp=1.0, fp=0.22, fn=1.0)
REWARD_LOW_FN = Profile(tp=1.0, fp=0.11, fn=2.0)


@dataclass
class SeriesScore:
    raw: float
    windows: int  # windows that count (not entirely probationary)
    detected: int  # windows with at least one scored detection
    false_positives: int  # scored detections outside every window
    window_scores: list[float] = field(default_factory=list)

    def null(self, profile: Profile = STANDARD) -> float:
        return -profile.fn * self.windows

    def perfect(self, profile: Profile = STANDARD) -> float:
        return profile.tp * self.windows


def probation_length(points: int) -> int:
    return int(min(math.floor(PROBATION_SHARE * points), PROBATION_SHARE * PROBATION_CAP_POINTS))


def scaled_sigmoid(position: float) -> float:
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def score_series(points: int, windows: list[tuple[int, int]], detections,
                 profile: Profile = STANDARD) -> SeriesScore:
    """Raw NAB score of one series. `windows`: sorted, disjoint, inclusive (first, last) indices;
    `detections`: indices of the points where the detector fired."""
    for (a, b), (c, _) in zip(windows, windows[1:], strict=False):
        if not a <= b < c:
            raise ValueError(f"windows must be sorted, disjoint and non-empty: {windows}")
    if windows and not (0 <= windows[0][0] and windows[-1][1] < points):
        raise ValueError(f"windows {windows} fall outside the series' {points} points")
    start = probation_length(points)
    max_tp = scaled_sigmoid(-1.0)
    lefts = [a for a, _ in windows]
    counted = [b >= start for _, b in windows]
    best: list[float | None] = [None] * len(windows)
    fp_total, fp_count = 0.0, 0
    for i in sorted(set(int(d) for d in detections)):
        if i < start or i >= points:
            continue
        k = bisect.bisect_right(lefts, i) - 1  # the last window starting at or before i
        if k >= 0 and i <= windows[k][1]:
            left, right = windows[k]
            width = right - left + 1
            weight = scaled_sigmoid(-(right - i + 1) / width) * profile.tp / max_tp
            best[k] = weight if best[k] is None else max(best[k], weight)
            continue
        if k < 0:
            position = 3.0
        else:
            left, right = windows[k]
            width = right - left + 1
            position = abs(right - i) / (width - 1) if width > 1 else 3.0
        fp_total += scaled_sigmoid(position) * profile.fp
        fp_count += 1
    window_scores = [(-profile.fn if s is None else s) for s, c in zip(best, counted, strict=False) if c]
    detected = sum(1 for s, c in zip(best, counted, strict=False) if c and s is not None)
    return SeriesScore(sum(window_scores) + fp_total, len(window_scores), detected, fp_count, window_scores)


def normalized_score(scores: list[SeriesScore], profile: Profile = STANDARD) -> float:
    """NAB's 0-100 scale over a set of series (the null detector 0, the perfect one 100)."""
    raw = sum(s.raw for s in scores)
    null = sum(s.null(profile) for s in scores)
    perfect = sum(s.perfect(profile) for s in scores)
    if perfect == null:
        return math.nan
    return 100.0 * (raw - null) / (perfect - null)


def window_indices(timestamps, windows) -> list[tuple[int, int]]:
    """Labelled (start, end) times as inclusive index ranges of sorted `timestamps`; a window that
    holds no point is dropped."""
    out = []
    for start, end in windows:
        first = bisect.bisect_left(timestamps, start)
        last = bisect.bisect_right(timestamps, end) - 1
        if first <= last:
            out.append((first, last))
    return out


def event_counts(points: int, windows: list[tuple[int, int]], alerts) -> tuple[int, int, int]:
    """(detected windows, missed windows, false alert events) after NAB's probation. An alert
    event is a run of consecutive alerting points; it detects every window it touches, and is
    false when it touches none."""
    start = probation_length(points)
    flagged = sorted(set(int(a) for a in alerts if start <= a < points))
    events: list[tuple[int, int]] = []
    for i in flagged:
        if events and i == events[-1][1] + 1:
            events[-1] = (events[-1][0], i)
        else:
            events.append((i, i))
    counted = [(a, b) for a, b in windows if b >= start]
    hit = [False] * len(counted)
    false_events = 0
    for a, b in events:
        touched = False
        for k, (wa, wb) in enumerate(counted):
            if a <= wb and b >= wa:
                hit[k] = touched = True
        false_events += not touched
    return sum(hit), len(hit) - sum(hit), false_events
