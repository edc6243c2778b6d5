"""The anomaly check's engine without Dagster: walk-forward judging over points, the state
codec and the explanation (data_platform.quality.judging)."""

from __future__ import annotations

import base64
from datetime import date, timedelta

import numpy as np

from data_platform.quality.anomaly import detect
from data_platform.quality.history import coerce_expected_events
from data_platform.quality.judging import (
    Charts,
    Point,
    PointVerdict,
    charts,
    encode_state,
    explain,
    image_markdown,
    judge_walk_forward,
    judged_points,
    snapshot_points,
)

DAYS = [(date(2026, 3, 2) + timedelta(days=i)).isoformat() for i in range(40)]
SPIKE = 20


def points() -> list[Point]:
    rng = np.random.default_rng(3)
    out = []
    for i, day in enumerate(DAYS):
        rows = 5000.0 if i == SPIKE else float(1000 + rng.integers(-20, 21))
        out.append(Point(storage_id=i + 1, timestamp=1.7e9 + 86400 * i, run_id=f"r{i}", partition=day,
                         metadata={"dagster/row_count": rows, "mean/amount": 50 + rng.normal(0, 0.5)}))
    return out


def judge(current, past, flags, events=(), marked=False):
    return judge_walk_forward("orders", current, past, DAYS, flags, coerce_expected_events(list(events)),
                              marked, metrics=None, config=None, lookback=180, detect=detect,
                              expected_tag="data_platform/anomaly_expected")


def test_a_past_anomaly_stays_out_of_the_baseline_and_a_run_learns_in_order():
    pts = points()
    flags: dict[int, bool] = {}
    # One run judging every day in order: the spike alerts, later days judge without it.
    judged = judge(pts[10:], pts[:10], flags)
    spike = judged[SPIKE - 10]
    assert spike.is_anomaly and flags[pts[SPIKE].storage_id]
    after = judged[SPIKE - 10 + 1]
    assert not after.is_anomaly
    days = [str(ts.date()) for ts in after.history.index]
    assert [d for d, ex in zip(days, after.excluded, strict=True) if ex] == [DAYS[SPIKE]]
    assert sum(j.is_anomaly for j in judged) == 1


def test_calendar_events_and_the_expected_tag_turn_an_alert_into_a_note():
    pts = points()
    [on_calendar] = judge([pts[SPIKE]], pts[:SPIKE], {}, events=[DAYS[SPIKE]])
    assert not on_calendar.is_anomaly and on_calendar.note.startswith("Expected event")
    [marked] = judge([pts[SPIKE]], pts[:SPIKE], {}, marked=True)
    assert not marked.is_anomaly and "data_platform/anomaly_expected" in marked.note


def test_the_state_round_trips_and_skips_damaged_items():
    pts = points()
    judged = judge(pts[15:22], pts[:15], {})
    state = encode_state(judged)
    assert judged_points(state["points"]) == [(p.storage_id, j.is_anomaly) for p, j in zip(pts[15:22], judged, strict=True)]
    back = snapshot_points(state["points"] + [{"storage_id": "x"}, "junk"])
    assert [(p.storage_id, p.partition, p.metadata) for p in back] == [
        (p.storage_id, p.partition, p.metadata) for p in pts[15:22]]
    assert judged_points(None) == [] and snapshot_points({"not": "a list"}) == []


def test_the_explanation_names_the_metric_its_range_and_the_chart_is_apart():
    pts = points()
    [spike] = judge([pts[SPIKE]], pts[:SPIKE], {})
    text = explain(spike)
    assert text.startswith(f"**Anomaly** in partition `{DAYS[SPIKE]}`: `dagster/row_count`")
    assert "| `dagster/row_count` ⚠ | 5,000" in text or "| `dagster/row_count` ⚠ | 5000" in text
    assert "base64" not in text and "![" not in text
    pictures = charts(spike)
    assert pictures.history is not None and pictures.history[:4] == b"\x89PNG"
    assert pictures.residuals is None  # no joint test fired on a one-metric spike
    image = image_markdown(pictures.history)
    assert image.startswith("![plot](data:image/png;base64,") and image.endswith(")")
    assert base64.b64decode(image[len("![plot](data:image/png;base64,"):-1]) == pictures.history
    quiet = explain(PointVerdict(pts[0], None, False))
    assert "no numeric metadata" in quiet
    assert charts(PointVerdict(pts[0], None, False)) == Charts()
