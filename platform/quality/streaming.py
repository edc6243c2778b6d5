"""Streaming anomaly detection, one metric stream point by point (pure, no Dagster).

`StreamDetector(config).update(timestamp, value) -> StreamVerdict` in constant memory and time.
Two detectors share one pass:

- Point: a robust online z-score. Three forecasts of the next value compete: a fast level
  (recent values), a slow level plus a time-of-day profile (piecewise linear between hourly
  bins), and the slow level plus a time-of-week profile (both learned online from the timestamps). The forecast with the
  smallest recent absolute error is the expected value; that error, scaled to a standard
  deviation, is the typical deviation. Everything learns from residuals clipped at `clip_z`
  typical deviations, so a spike barely moves what it is judged against.
- Window: the mean of the latest `window` points (after the seasonal profile is removed) against
  the means of the `baseline_windows` completed windows before it, as Luminaire's streaming mode
  compares a window with its baseline windows. It catches sustained shifts whose single points
  look ordinary. Windows judged anomalous stay out of the baseline until a shift has lasted a
  quarter of the baseline span: then it is the new normal.

`score` is the larger of the two z-scores, each divided by its threshold: 1.0 is the alert line.
An alert fires when the score reaches 1.0 after the warm-up, at most once every `cooldown` points,
so one incident is one alert. The scores never depend on the thresholds (learning uses its own
constants), which keeps a threshold choice a cheap replay (`alerts_from_scores`).

`to_state()` / `from_state()` give and take a JSON-able dict: a restarted consumer continues with
identical verdicts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime

STATE_VERSION = 1
# A normal distribution's standard deviation is 1.2533 times its mean absolute deviation.
MEAN_ABS_TO_SIGMA = 1.2533
MODELS = ("recent level", "time-of-day profile", "time-of-week profile")


@dataclass(frozen=True)
class StreamConfig:
    """Detector settings; the defaults were chosen on NAB's development half (docs/streaming.md).

    Alphas are per point (a memory of about 1/alpha points); windows and counts are in points.
    """

    point_threshold: float = 80.0  # robust z of one point that alerts (at least; see tail_sigmas)
    window_threshold: float = 5.0  # z of the latest window's mean against the baseline windows
    window: int = 12  # points in the latest window (one hour at 5-minute points)
    baseline_windows: int = 24  # completed windows it is compared with
    fast_alpha: float = 0.2  # the recent level's learning rate
    slow_alpha: float = 0.01  # the slow level under the seasonal profiles
    season_alpha: float = 0.05  # a profile bin's learning rate per visit
    error_alpha: float = 0.02  # the forecast errors (typical deviations)
    clip_z: float = 4.0  # residuals are clipped here before anything learns from them
    min_relative_scale: float = 1e-3  # typical deviation floor, relative to the mean magnitude
    min_season_visits: int = 3  # a profile bin forecasts once it has seen this many points
    day_bins: int = 24  # bins of the time-of-day profile (24: an hour each)
    week_bins: int = 168  # bins of the time-of-week profile (168: an hour each)
    tail_alpha: float = 0.002  # learning rate of the stream's own distribution of point scores
    tail_sigmas: float = 6.0  # point threshold raised to this many sigmas of that distribution (0: off)
    warmup: int = 144  # points learned before the first alert
    cooldown: int = 144  # points after an alert during which no new alert fires (12 h of 5-minute points)

    def __post_init__(self) -> None:
        if self.window < 2 or self.baseline_windows < 2:
            raise ValueError("window and baseline_windows must be at least 2")
        for name in ("fast_alpha", "slow_alpha", "season_alpha", "error_alpha"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if self.point_threshold <= 0 or self.window_threshold <= 0:
            raise ValueError("thresholds must be positive")


@dataclass(frozen=True, slots=True)
class StreamVerdict:
    """One point's judgement. `score` >= 1.0 means over a threshold (alerting, or in cooldown)."""

    is_anomaly: bool
    score: float
    timestamp: float
    value: float
    expected: float = math.nan
    deviation: float = math.nan  # typical deviation around the expected value
    point_z: float = 0.0
    window_z: float = 0.0
    window_mean: float = math.nan
    baseline_mean: float = math.nan
    model: str = ""  # the forecast used, or "warm-up" / "missing"
    kind: str = "normal"  # spike (the point detector led), shift (the window detector led), normal

    @property
    def reason(self) -> str:
        when = (datetime.fromtimestamp(self.timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")
                if math.isfinite(self.timestamp) else "?")
        if self.model == "missing":
            return f"{when}: no value (missing or not a number); nothing judged"
        if self.model == "warm-up":
            return f"{when}: value {self.value:.4g} learned during warm-up; no verdict yet"
        head = (f"{when}: value {self.value:.4g}, expected {self.expected:.4g} ± {self.deviation:.3g} "
                f"({self.model})")
        side = "above" if self.value >= self.expected else "below"
        point = f"{self.point_z:.1f} typical deviations {side}"
        window = (f"the latest window's mean {self.window_mean:.4g} is {self.window_z:.1f} sigmas "
                  f"from its baseline windows' {self.baseline_mean:.4g}")
        if self.kind == "normal":
            return f"{head}: normal, {point}; {window}"
        status = "ANOMALY" if self.is_anomaly else "still over the threshold (alerted already, in cooldown)"
        if self.kind == "spike":
            return f"{head}: {status}, a spike: {point}; {window}"
        return f"{head}: {status}, a sustained shift: {window}; the point is {point}"


def _epoch(timestamp) -> float:
    if isinstance(timestamp, (int, float)):
        return float(timestamp)
    if isinstance(timestamp, datetime):  # pandas.Timestamp is a datetime too
        if timestamp.tzinfo is None:
            timestamp = timestamp.replace(tzinfo=UTC)
        return timestamp.timestamp()
    raise TypeError(f"timestamp must be epoch seconds or a datetime, got {type(timestamp).__name__}")


class StreamDetector:
    """One metric stream's detector; see the module docstring."""

    def __init__(self, config: StreamConfig | None = None) -> None:
        self.config = config or StreamConfig()
        c = self.config
        self.n = 0  # points with a value
        self.last_alert = -(10**12)  # index of the last alert
        self.fast = 0.0
        self.slow = 0.0
        self.magnitude = 0.0  # mean |value|, for the scale floor
        self.errors = [0.0, 0.0, 0.0]  # mean absolute error of each forecast in MODELS
        self.day = [0.0] * c.day_bins
        self.day_visits = [0] * c.day_bins
        self.week = [0.0] * c.week_bins
        self.week_visits = [0] * c.week_bins
        # Mean and variance of log(1 + point z): how spiky this stream usually is.
        self.tail_mean = 0.0
        self.tail_var = 0.0
        # The latest window (a ring of deseasonalized values) and its running sum.
        self.ring = [0.0] * c.window
        self.ring_sum = 0.0
        self.ring_fill = 0
        # Completed windows: the newest waits one window before it joins the baseline, so the
        # latest (sliding) window never overlaps what it is compared with.
        self.pending: float | None = None
        self.baseline = [0.0] * c.baseline_windows
        self.baseline_count = 0
        self.baseline_pos = 0
        self.baseline_sum = 0.0
        self.baseline_sq = 0.0
        self.excluded_in_row = 0

    # -- state ---------------------------------------------------------------------------------
    def to_state(self) -> dict:
        """Everything needed to continue: JSON-able (numbers and lists only)."""
        state = {k: (list(v) if isinstance(v, list) else v) for k, v in vars(self).items() if k != "config"}
        state["config"] = asdict(self.config)
        state["version"] = STATE_VERSION
        return state

    @classmethod
    def from_state(cls, state: dict) -> StreamDetector:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"detector state version {state.get('version')!r}, expected {STATE_VERSION}")
        known = {f.name for f in fields(StreamConfig)}
        detector = cls(StreamConfig(**{k: v for k, v in state["config"].items() if k in known}))
        for key, value in state.items():
            if key not in ("config", "version"):
                if not hasattr(detector, key):
                    raise ValueError(f"detector state has an unknown field {key!r}")
                setattr(detector, key, list(value) if isinstance(value, list) else value)
        return detector

    # -- scoring -------------------------------------------------------------------------------
    def update(self, timestamp, value) -> StreamVerdict:
        """Judge one point, then learn from it."""
        t = _epoch(timestamp)
        x = float(value) if value is not None else math.nan
        if not math.isfinite(x):
            return StreamVerdict(False, 0.0, t, math.nan, model="missing")
        c = self.config
        # The time-of-day profile is piecewise linear between bin centres (smooth seasons leave
        # no steps in the residuals); h and h2 are the two bins around t, f the weight of h2.
        u = (t % 86400.0) * c.day_bins / 86400.0 - 0.5
        h = int(u // 1) % c.day_bins
        f = u - math.floor(u)
        h2 = (h + 1) % c.day_bins
        # 1970-01-01 was a Thursday: the week's bin 0 starts on Monday 00:00 UTC.
        w = int(((t + 3 * 86400.0) % 604800.0) * c.week_bins / 604800.0)
        if self.n == 0:
            self.fast = self.slow = x
            self.magnitude = abs(x)
        # Forecasts (a profile bin forecasts once it has seen enough points).
        day_ready = min(self.day_visits[h], self.day_visits[h2]) >= c.min_season_visits
        season_d = self.day[h] + f * (self.day[h2] - self.day[h]) if day_ready else 0.0
        season_w = self.week[w] if self.week_visits[w] >= c.min_season_visits else season_d
        forecasts = (self.fast, self.slow + season_d, self.slow + season_w)
        errors = self.errors
        best = 0
        if errors[1] < errors[best]:
            best = 1
        if errors[2] < errors[best]:
            best = 2
        expected = forecasts[best]
        floor = c.min_relative_scale * self.magnitude + 1e-12
        sigma = max(MEAN_ABS_TO_SIGMA * errors[best], floor)
        point_z = abs(x - expected) / sigma

        # Window: values without their seasonal part (the better of the two profiles), so that
        # the baseline windows differ by their level, not by their time of day.
        d = x - (season_w if errors[2] < errors[1] else season_d)
        pos = self.n % c.window
        self.ring_sum += d - self.ring[pos]
        self.ring[pos] = d
        if self.ring_fill < c.window:
            self.ring_fill += 1
        window_mean = self.ring_sum / self.ring_fill
        window_z = 0.0
        baseline_mean = math.nan
        k = self.baseline_count
        if k >= 2 and self.ring_fill == c.window:
            baseline_mean = self.baseline_sum / k
            var = max(self.baseline_sq / k - baseline_mean * baseline_mean, 0.0)
            spread = max(math.sqrt(var), sigma / math.sqrt(c.window), floor)
            window_z = abs(window_mean - baseline_mean) / spread

        warm = self.n >= c.warmup
        point_threshold = c.point_threshold
        if c.tail_sigmas > 0:
            lz = math.log1p(point_z)
            if warm:
                tail = math.expm1(self.tail_mean + c.tail_sigmas * math.sqrt(self.tail_var))
                if tail > point_threshold:
                    point_threshold = tail
            dz = lz - self.tail_mean
            self.tail_mean += c.tail_alpha * dz
            self.tail_var += c.tail_alpha * (dz * dz - self.tail_var)
        score = max(point_z / point_threshold, window_z / c.window_threshold)
        is_anomaly = warm and score >= 1.0 and self.n - self.last_alert >= c.cooldown
        if is_anomaly:
            self.last_alert = self.n

        # Learning, from residuals clipped at clip_z typical deviations (not during warm-up:
        # the deviations are still growing from nothing).
        cap = c.clip_z * sigma if warm else math.inf
        for i in range(3):
            e = x - forecasts[i]
            a = abs(e)
            errors[i] += c.error_alpha * ((a if a < cap else cap) - errors[i])
        r = x - self.fast
        self.fast += c.fast_alpha * (r if -cap <= r <= cap else math.copysign(cap, r))
        r = x - season_d - self.slow
        self.slow += c.slow_alpha * (r if -cap <= r <= cap else math.copysign(cap, r))
        level = x - self.slow
        if level > cap + season_d:
            level = cap + season_d
        elif level < season_d - cap:
            level = season_d - cap
        step = level - season_d
        for b, share in ((h, 1.0 - f), (h2, f)):
            if self.day_visits[b] == 0:
                self.day[b] = level
            else:
                self.day[b] += c.season_alpha * share * (step if day_ready else level - self.day[b])
            self.day_visits[b] += 1
        level = x - self.slow
        if level > cap + season_w:
            level = cap + season_w
        elif level < season_w - cap:
            level = season_w - cap
        if self.week_visits[w] == 0:
            self.week[w] = level
        else:
            self.week[w] += c.season_alpha * (level - self.week[w])
        self.week_visits[w] += 1
        self.magnitude += c.error_alpha * (abs(x) - self.magnitude)
        if pos == c.window - 1:
            self._complete_window(window_mean, window_z)
        self.n += 1

        if not warm:
            return StreamVerdict(False, score, t, x, expected, sigma, point_z, window_z, window_mean,
                                 baseline_mean, "warm-up", "normal")
        kind = "normal"
        if score >= 1.0:
            # A spike: the point detector led, or this one point makes most of the window's shift.
            share = abs(d - baseline_mean) / c.window if k >= 2 else 0.0
            led = point_z / point_threshold >= window_z / c.window_threshold
            kind = "spike" if led or share >= 0.5 * abs(window_mean - baseline_mean) else "shift"
        return StreamVerdict(is_anomaly, score, t, x, expected, sigma, point_z, window_z, window_mean,
                             baseline_mean, MODELS[best], kind)

    def _complete_window(self, mean: float, z: float) -> None:
        c = self.config
        previous, self.pending = self.pending, mean
        if previous is None:
            return
        # An anomalous window stays out until the shift has lasted a quarter of the baseline span.
        if z >= c.clip_z * 1.5 and self.excluded_in_row < c.baseline_windows // 4:
            self.excluded_in_row += 1
            return
        self.excluded_in_row = 0
        if self.baseline_count == c.baseline_windows:
            old = self.baseline[self.baseline_pos]
            self.baseline_sum -= old
            self.baseline_sq -= old * old
        else:
            self.baseline_count += 1
        self.baseline[self.baseline_pos] = previous
        self.baseline_sum += previous
        self.baseline_sq += previous * previous
        self.baseline_pos = (self.baseline_pos + 1) % c.baseline_windows


def alerts_from_scores(scores, threshold: float = 1.0, warmup: int = 0, cooldown: int = 1) -> list[int]:
    """Indices that alert at `threshold` (replays the detector's alert rule over its scores)."""
    alerts: list[int] = []
    last = -(10**12)
    for i, s in enumerate(scores):
        if i >= warmup and s >= threshold and i - last >= cooldown:
            alerts.append(i)
            last = i
    return alerts
