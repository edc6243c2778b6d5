"""Events into per-key, per-interval metrics; the event format (pure, no Redis)."""

import math

import pytest

from data_platform.streaming.aggregate import IntervalAggregator
from data_platform.streaming.events import BadEvent, Event, decode, encode


def test_metrics_per_key_and_interval_close_after_the_lateness():
    agg = IntervalAggregator(10.0, 2.0)
    events = [("a", 100.5, 1.0), ("a", 101.0, None), ("b", 103.0, 4.0), ("a", 109.9, 5.0),
              ("b", 110.0, 2.0), ("a", 111.0, 7.0)]
    for i, (key, ts, value) in enumerate(events):
        assert agg.add(Event(key, ts, value), f"{i}-0") == "ok"
    # The watermark (111 - 2 = 109) has not passed the end of [100, 110) yet.
    assert agg.close_ready() == []
    assert agg.add(Event("b", 112.5, 3.0), "6-0") == "ok"
    [closed] = agg.close_ready()
    assert (closed.start, closed.end) == (100.0, 110.0)
    assert sorted(closed.ids) == ["0-0", "1-0", "2-0", "3-0"]
    a, b = closed.metrics
    assert (a.key, a.count, a.value("count"), a.value("mean"), a.value("null_fraction")) == ("a", 3, 3.0, 3.0, 1 / 3)
    assert (b.key, b.count, b.value("mean"), b.value("null_fraction")) == ("b", 1, 4.0, 0.0)
    assert agg.closed_through == 110.0
    # An event of the closed interval is late: not folded into metrics already final.
    assert agg.add(Event("a", 108.0, 1.0), "7-0") == "late"
    assert agg.open_entries() == 3


def test_silent_keys_and_empty_intervals_report_zero_counts():
    agg = IntervalAggregator(1.0, 0.0, closed_through=10.0, keys={"a"})
    agg.add(Event("b", 10.5, 2.0), "1-0")
    agg.add(Event("b", 13.2, None), "2-0")
    agg.add(Event("b", 14.1, 1.0), "3-0")
    closed = agg.close_ready()
    assert [c.start for c in closed] == [10.0, 11.0, 12.0, 13.0]
    counts = {(c.start, m.key): m.count for c in closed for m in c.metrics}
    assert counts[(10.0, "a")] == 0 and counts[(10.0, "b")] == 1
    assert counts[(11.0, "b")] == 0 and counts[(13.0, "b")] == 1
    silent = closed[1].metrics[0]
    assert silent.value("mean") is None and silent.value("null_fraction") is None
    assert closed[3].metrics[1].value("null_fraction") == 1.0 and closed[3].metrics[1].value("mean") is None


def test_a_jump_in_event_time_emits_at_most_max_gap_empty_intervals():
    agg = IntervalAggregator(1.0, 0.0, closed_through=0.0, keys={"a"}, max_gap=5)
    agg.add(Event("a", 100.5, 1.0), "1-0")
    agg.add(Event("a", 102.0, 1.0), "2-0")
    closed = agg.close_ready()
    # Intervals 0..94 are skipped; 95..99 are emitted empty, then 100 (one event) and 101 (empty).
    assert [c.start for c in closed] == [95.0, 96.0, 97.0, 98.0, 99.0, 100.0, 101.0]
    assert agg.skipped_intervals == 95 and closed[5].metrics[0].count == 1


def test_events_decode_from_fields_or_json_and_bad_entries_say_why():
    fields = {k.encode(): v.encode() for k, v in encode("checkout", 1700000000.25, None).items()}
    assert decode(fields) == Event("checkout", 1700000000.25, None)
    assert decode({b"event": b'{"key": "k", "ts": "2024-01-01T00:00:00Z", "value": 3}'}) == Event("k", 1704067200.0, 3.0)
    assert decode({"key": "k", "ts": "1", "value": "nan"}).value is None
    for fields, reason in (({"ts": "1"}, "no 'key'"), ({"key": "k", "ts": "yesterday"}, "neither epoch"),
                           ({"key": "k", "ts": "1", "value": "abc"}, "not a number"),
                           ({"key": "k", "ts": "2024-01-01T00:00:00"}, "no time zone"),
                           (None, "deleted")):
        with pytest.raises(BadEvent, match=reason):
            decode(fields)
    assert math.isclose(decode({"key": "k", "ts": 5, "value": 1}).ts, 5.0)
