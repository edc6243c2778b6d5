"""NAB scoring port: hand-computed scores on hand-made windows."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from data_platform.bench import nab_score
from data_platform.bench.nab_score import STANDARD, Profile, normalized_score, score_series

# Values of NAB's scaled sigmoid 2 / (1 + exp(5 p)) - 1, worked out by hand.
S_MINUS_1 = 2 / (1 + math.exp(-5)) - 1  # 0.986614
S_MINUS_HALF = 2 / (1 + math.exp(-2.5)) - 1  # 0.848284


def test_probation_is_fifteen_percent_capped_at_750_points():
    assert nab_score.probation_length(100) == 15
    assert nab_score.probation_length(4032) == 604
    assert nab_score.probation_length(22_695) == 750


def test_detection_at_the_window_start_is_worth_exactly_tp():
    score = score_series(100, [(40, 49)], [40])
    assert score.raw == pytest.approx(1.0)
    assert (score.windows, score.detected, score.false_positives) == (1, 1, 0)
    assert normalized_score([score]) == pytest.approx(100.0)


def test_only_the_earliest_detection_of_a_window_counts():
    # Position of point 45 in window 40..49: -(49 - 45 + 1) / 10 = -0.5.
    late = score_series(100, [(40, 49)], [45, 47])
    assert late.raw == pytest.approx(S_MINUS_HALF / S_MINUS_1)  # 0.8598
    both = score_series(100, [(40, 49)], [45, 40])
    assert both.raw == pytest.approx(1.0)


def test_false_positives_before_and_after_a_window():
    # Point 20 is before any window: -fp. Point 59 is 10 points past the window's end 49, in units
    # of width - 1 = 9: position 10/9, worth (2 / (1 + exp(50/9)) - 1) * 0.11 = -0.10915.
    score = score_series(100, [(40, 49)], [20, 59])
    after = (2 / (1 + math.exp(5 * 10 / 9)) - 1) * 0.11
    assert after == pytest.approx(-0.10915, abs=1e-5)
    assert score.raw == pytest.approx(-1.0 - 0.11 + after)
    assert score.false_positives == 2 and score.detected == 0


def test_detections_during_probation_are_not_scored_and_windows_there_do_not_count():
    score = score_series(100, [(2, 8), (40, 49)], [5, 10])
    assert score.windows == 1
    assert score.raw == pytest.approx(-1.0)


def test_normalisation_between_the_null_and_the_perfect_detector():
    a = score_series(100, [(40, 49)], [40])  # +1
    b = score_series(200, [(100, 119), (150, 169)], [60])  # -1 - 1 - 0.11
    raw = 1.0 - 2.0 - 0.11
    null, perfect = -3.0, 3.0
    assert normalized_score([a, b]) == pytest.approx(100 * (raw - null) / (perfect - null))
    assert normalized_score([score_series(100, [(40, 49)], [])]) == pytest.approx(0.0)


def test_profiles_weigh_false_positives_and_misses():
    low_fn = Profile(tp=1.0, fp=0.11, fn=2.0)
    missed = score_series(100, [(40, 49)], [20], low_fn)
    assert missed.raw == pytest.approx(-2.0 - 0.11)
    assert normalized_score([missed], low_fn) == pytest.approx(100 * (-0.11) / 3.0)
    assert score_series(100, [(40, 49)], [20], Profile(fp=0.22)).raw == pytest.approx(-1.22)


def test_windows_must_be_sorted_and_inside():
    with pytest.raises(ValueError):
        score_series(100, [(50, 60), (40, 45)], [])
    with pytest.raises(ValueError):
        score_series(100, [(90, 120)], [])


def test_window_indices_from_timestamps():
    stamps = list(pd.date_range("2024-01-01", periods=10, freq="5min"))
    windows = [(pd.Timestamp("2024-01-01 00:10"), pd.Timestamp("2024-01-01 00:20")),
               (pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-03"))]
    assert nab_score.window_indices(stamps, windows) == [(2, 4)]


def test_event_counts_group_consecutive_alerts():
    # Probation of 100 points is 15; alerts 41-43 are one event in the window, 70 one false event.
    assert nab_score.event_counts(100, [(40, 49), (80, 90)], [3, 41, 42, 43, 70]) == (1, 1, 1)
    assert STANDARD.fp == 0.11
