"""The stream detector: spikes and shifts flagged, clean seasonal streams quiet, state round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from data_platform.quality.streaming import StreamConfig, StreamDetector, alerts_from_scores

STEP = 300  # 5-minute points
START = 1_700_006_400  # a Wednesday 00:00 UTC


def seasonal_series(days: int, seed: int, noise: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    stamps = START + STEP * np.arange(days * 288)
    hours = (stamps % 86400) / 3600
    values = 100 + 20 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, noise, len(stamps))
    return stamps.astype(float), values


def run(stamps, values, config=None):
    detector = StreamDetector(config)
    return [detector.update(t, x) for t, x in zip(stamps.tolist(), values.tolist(), strict=True)]


def test_clean_seasonal_stream_is_mostly_quiet():
    stamps, values = seasonal_series(days=10, seed=1)
    verdicts = run(stamps, values)
    alerts = [i for i, v in enumerate(verdicts) if v.is_anomaly]
    assert len(alerts) <= 2, [verdicts[i].reason for i in alerts]


def test_spike_is_flagged_as_a_spike_with_a_readable_reason():
    stamps, values = seasonal_series(days=6, seed=2)
    at = 5 * 288 + 100
    values[at] += 60
    verdicts = run(stamps, values)
    assert verdicts[at].is_anomaly
    assert verdicts[at].kind == "spike"
    reason = verdicts[at].reason
    assert "ANOMALY" in reason and f"{values[at]:.4g}" in reason and "expected" in reason
    assert not any(v.is_anomaly for v in verdicts[4 * 288:at])


def test_sustained_shift_is_flagged_within_a_window():
    stamps, values = seasonal_series(days=8, seed=3)
    at = 5 * 288
    # Eight noise sigmas: no single point reaches the point threshold; the window detector sees it.
    values[at:] += 8.0
    verdicts = run(stamps, values)
    window = StreamConfig().window
    flagged = [i for i in range(at, at + 3 * window) if verdicts[i].is_anomaly]
    assert flagged, max(v.score for v in verdicts[at:at + 3 * window])
    assert verdicts[flagged[0]].kind == "shift"
    assert "sustained shift" in verdicts[flagged[0]].reason
    assert max(v.point_z for v in verdicts[at:at + window]) < StreamConfig().point_threshold


def test_one_alert_per_incident_thanks_to_the_cooldown():
    stamps, values = seasonal_series(days=6, seed=4)
    at = 4 * 288
    values[at:at + 36] += 15  # a three-hour incident
    verdicts = run(stamps, values)
    alerts = [i for i, v in enumerate(verdicts) if v.is_anomaly and i >= at]
    assert alerts and alerts[0] < at + 12
    assert len([i for i in alerts if i < at + 36]) == 1
    assert any(v.score >= 1.0 and not v.is_anomaly for v in verdicts[at:at + 36])


def test_state_round_trip_mid_stream_gives_identical_verdicts():
    stamps, values = seasonal_series(days=5, seed=5, noise=3.0)
    values[3 * 288 + 7] += 80
    values[4 * 288:] -= 10
    whole = run(stamps, values)
    cut = 3 * 288 - 5
    first = StreamDetector()
    head = [first.update(t, x) for t, x in zip(stamps[:cut].tolist(), values[:cut].tolist(), strict=True)]
    saved = json.loads(json.dumps(first.to_state()))
    second = StreamDetector.from_state(saved)
    tail = [second.update(t, x) for t, x in zip(stamps[cut:].tolist(), values[cut:].tolist(), strict=True)]
    assert head + tail == whole
    assert any(v.is_anomaly for v in tail)


def test_state_has_constant_size():
    stamps, values = seasonal_series(days=9, seed=6)
    detector = StreamDetector()
    sizes = []
    for i, (t, x) in enumerate(zip(stamps.tolist(), values.tolist(), strict=True)):
        detector.update(t, x)
        if i in (2 * 288, 8 * 288):
            state = detector.to_state()
            sizes.append(sum(len(v) for v in state.values() if isinstance(v, list)))
    assert sizes[0] == sizes[1]


def test_missing_values_are_skipped_without_learning():
    stamps, values = seasonal_series(days=2, seed=7)
    detector = StreamDetector()
    for t, x in zip(stamps[:300].tolist(), values[:300].tolist(), strict=True):
        detector.update(t, x)
    before = detector.to_state()
    verdict = detector.update(stamps[300], math.nan)
    assert not verdict.is_anomaly and "no value" in verdict.reason
    assert detector.update(stamps[300], None).model == "missing"
    assert detector.to_state() == before


def test_datetime_and_epoch_timestamps_agree():
    import pandas as pd

    stamps, values = seasonal_series(days=2, seed=8)
    as_epoch = run(stamps, values)
    times = pd.to_datetime(stamps, unit="s")
    detector = StreamDetector()
    as_datetime = [detector.update(t, x) for t, x in zip(times, values.tolist(), strict=True)]
    assert as_datetime == as_epoch


def test_replayed_alerts_match_the_detector():
    stamps, values = seasonal_series(days=6, seed=9, noise=2.0)
    values[3 * 288] += 50
    values[4 * 288:4 * 288 + 50] += 8
    config = StreamConfig()
    verdicts = run(stamps, values, config)
    replay = alerts_from_scores([v.score for v in verdicts], 1.0, config.warmup, config.cooldown)
    assert replay == [i for i, v in enumerate(verdicts) if v.is_anomaly]
    assert replay


@pytest.mark.parametrize("bad", [{"window": 1}, {"fast_alpha": 0.0}, {"point_threshold": -1.0}])
def test_config_rejects_nonsense(bad):
    with pytest.raises(ValueError):
        StreamConfig(**bad)


def test_state_of_another_version_is_refused():
    state = StreamDetector().to_state()
    state["version"] = 0
    with pytest.raises(ValueError, match="version"):
        StreamDetector.from_state(state)
