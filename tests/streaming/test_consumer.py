"""The consumer on a real Redis Stream and a SQLite warehouse: stored metrics, alerts, crashes.

Events carry synthetic event times (1-second intervals), so a stream of several minutes of event
time is produced and consumed in about a second.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict

import pytest
import sqlalchemy as sa

from data_platform.quality.alerting import title
from data_platform.streaming import producer, store
from data_platform.streaming.consumer import ConsumerConfig, StreamConsumer
from data_platform.streaming.producer import Incident

START = 1_700_000_000.0


def config(stream: str, name: str = "c1", **overrides) -> ConsumerConfig:
    settings = dict(stream=stream, name=name, interval=1.0, lateness=0.5, block_ms=50, lease_ms=1500)
    settings.update(overrides)
    return ConsumerConfig(**settings)


def query(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).all()


def stored_events(engine, stream: str) -> int:
    [(total,)] = query(engine, "select coalesce(sum(value), 0) from stream_scores "
                       "where stream = :s and metric = 'count'", s=stream)
    return int(total)


def pending(redis_client, stream: str, group: str = "metrics") -> dict[str, int]:
    summary = redis_client.xpending(stream, group)
    return {c["name"].decode(): int(c["pending"]) for c in summary["consumers"]}


@pytest.fixture
def engine(tmp_path):
    engine = store.engine_for(f"sqlite:///{tmp_path / 'warehouse.db'}")
    yield engine
    engine.dispose()


def test_stored_metrics_are_the_events_aggregated(redis_client, stream, engine):
    events = list(producer.synthetic_events(START, 20, 200, seed=3))
    producer.append(redis_client, stream, events)
    redis_client.xadd(stream, {"key": "checkout", "ts": "not a time"})
    producer.append(redis_client, stream, [("checkout", START + 25.2, 1.0)])  # closes every interval before 24
    StreamConsumer(redis_client, engine, config(stream), log=lambda _: None).run(seconds=20, until_idle=True)

    expected = defaultdict(lambda: [0, 0, 0.0])
    for key, ts, value in events:
        cell = expected[(key, math.floor(ts - START))]
        cell[0] += 1
        if value is None:
            cell[1] += 1
        else:
            cell[2] += value
    rows = query(engine, "select key, interval_start, metric, value, events from stream_scores where stream = :s",
                 s=stream)
    keys = {key for key, _ in expected}
    assert len(rows) == len(keys) * 24 * 3  # intervals 0..23 for every key, zeros included
    for key, interval_start, metric, value, count in rows:
        n, nulls, total = expected.get((key, round(interval_start - START)), (0, 0, 0.0))
        assert count == n
        want = {"count": n, "mean": total / (n - nulls) if n > nulls else None,
                "null_fraction": nulls / n if n else None}[metric]
        assert (value is None and want is None) or math.isclose(value, want, rel_tol=1e-9), (key, metric)
    assert stored_events(engine, stream) == len(events)
    [(reason,)] = query(engine, "select reason from stream_rejects where stream = :s", s=stream)
    assert "neither epoch seconds nor ISO 8601" in reason
    # Acknowledged: everything but the event of the still-open interval.
    assert pending(redis_client, stream) == {"c1": 1}

    # A late event (its interval is stored) is counted apart, never folded into final metrics.
    producer.append(redis_client, stream, [("search", START + 3.5, 2.0), ("search", START + 27.0, 2.0)])
    StreamConsumer(redis_client, engine, config(stream), log=lambda _: None).run(seconds=20, until_idle=True)
    assert stored_events(engine, stream) == len(events) + 1  # the flush event's interval closed
    [(late, rejected)] = query(engine, "select late_events, rejected_events from stream_consumers "
                               "where stream = :s", s=stream)
    assert (late, rejected) == (1, 1)


def test_entries_of_open_intervals_claimed_again_are_folded_in_once(redis_client, stream, engine):
    # XAUTOCLAIM hands back every entry idle past the claim time, the consumer's own included:
    # with a long lateness the entries of open intervals sit in its pending list for seconds,
    # and a short lease makes it claim every 200 ms, so each is handed back many times.
    events = list(producer.synthetic_events(START, 10, 100, seed=4))
    produced = producer.append(redis_client, stream, events)
    consumer = StreamConsumer(redis_client, engine, config(stream, lateness=30.0, lease_ms=400),
                              log=lambda _: None)
    consumer.run(seconds=1.5)
    assert consumer.stats.read == produced
    producer.append(redis_client, stream, [("search", START + 45.0, 1.0)])  # closes intervals 0..13
    consumer.run(seconds=20, until_idle=True)
    assert stored_events(engine, stream) == produced
    assert pending(redis_client, stream) == {"c1": 1}


def incident_stream(redis_client, stream: str, seconds: float = 150, rate: float = 150, seed: int = 5) -> int:
    """A mean shift on one key after the detectors' warm-up; returns the events produced."""
    shift = [Incident(producer.MEAN_SHIFT, "payment", START + 100, START + 120)]
    n = producer.append(redis_client, stream, producer.synthetic_events(START, seconds, rate, shift, seed=seed))
    producer.append(redis_client, stream, [("checkout", START + seconds + 1.6, 1.0)])
    return n


def test_an_incident_sends_one_alert_once_even_across_restarts(redis_client, stream, engine):
    produced = incident_stream(redis_client, stream)
    sent = []
    senders = [("log", sent.append)]
    StreamConsumer(redis_client, engine, config(stream), senders, log=lambda _: None).run(seconds=30, until_idle=True)
    alerts = query(engine, "select kind, title, sent_at, interval_start from stream_alerts where stream = :s "
                   "order by interval_start", s=stream)
    failures = [a for a in alerts if a.kind != "recovered"]
    assert len(failures) == 1, [a.title for a in alerts]
    assert "payment/mean failed" in failures[0].title
    assert START + 100 <= failures[0].interval_start < START + 106  # within a few intervals of the shift
    assert all(a.sent_at is not None for a in alerts)
    assert [title(a) for a in sent] == [a.title for a in alerts]  # each sent once, in order
    assert stored_events(engine, stream) == produced
    # A restart re-reads nothing already stored and sends nothing again.
    StreamConsumer(redis_client, engine, config(stream), senders, log=lambda _: None).run(seconds=10, until_idle=True)
    assert len(sent) == len(alerts)
    assert stored_events(engine, stream) == produced


def test_a_crash_between_commit_and_acknowledgement_loses_and_duplicates_nothing(redis_client, stream, engine):
    produced = incident_stream(redis_client, stream)
    sent = []
    crashing = StreamConsumer(redis_client, engine, config(stream), [("log", sent.append)], log=lambda _: None)
    calls = []

    def ack_then_crash(ids):
        calls.append(len(ids))
        if len(calls) == 10:  # the 10th acknowledgement never happens: the process "dies" here
            raise KeyboardInterrupt
        StreamConsumer._ack(crashing, ids)

    crashing._ack = ack_then_crash
    with pytest.raises(KeyboardInterrupt):
        crashing.run(seconds=30, until_idle=True)
    assert 0 < stored_events(engine, stream) < produced
    restarted = StreamConsumer(redis_client, engine, config(stream), [("log", sent.append)], log=lambda _: None)
    restarted.run(seconds=30, until_idle=True)
    assert stored_events(engine, stream) == produced
    [(dupes,)] = query(engine, "select count(*) - count(distinct key || metric || interval_start) "
                       "from stream_scores where stream = :s", s=stream)
    assert dupes == 0
    titles = [title(a) for a in sent]
    assert len(titles) == len(set(titles)) and len(titles) >= 1
    assert pending(redis_client, stream) == {"c1": 1}


def consumer_process(stream: str, name: str, warehouse: str, redis_url: str, log_path, *extra: str):
    env = {**os.environ, "DATA_PLATFORM_REDIS_URL": redis_url, "DATA_PLATFORM_WAREHOUSE_URL": warehouse,
           "PYTHONUNBUFFERED": "1"}
    for name_ in ("DATA_PLATFORM_ALERT_WEBHOOK_URL", "DATA_PLATFORM_SLACK_WEBHOOK_URL", "DATA_PLATFORM_SMTP_HOST"):
        env.pop(name_, None)
    command = [sys.executable, "-m", "data_platform.cli", "stream", "--stream", stream, "--name", name,
               "--interval", "1", "--lateness", "0.5", "--lease-seconds", "1.5", *extra]
    return subprocess.Popen(command, env=env, stdout=open(log_path, "w"), stderr=subprocess.STDOUT)


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_sigkilled_consumer_restarts_without_losing_an_event_or_repeating_an_alert(
        redis_client, stream, tmp_path, redis_url):
    produced = incident_stream(redis_client, stream, seconds=160, rate=250)
    warehouse = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = store.engine_for(warehouse)
    first = consumer_process(stream, "k", warehouse, redis_url, tmp_path / "first.log")
    try:
        # Kill it in the middle of the stream, while it reads and commits batch after batch.
        wait_for(lambda: stored_events(engine, stream) > 0.2 * produced, 60, "the first commits")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = stored_events(engine, stream)
        assert killed_at < produced
        second = consumer_process(stream, "k", warehouse, redis_url, tmp_path / "second.log")
        wait_for(lambda: stored_events(engine, stream) >= produced, 60, "every event stored")
        wait_for(lambda: not query(engine, "select 1 from stream_alerts where sent_at is null"), 20, "alerts sent")
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0
    finally:
        for process in (first, locals().get("second")):
            if process is not None and process.poll() is None:
                process.kill()
    assert stored_events(engine, stream) == produced
    alerts = query(engine, "select kind, title from stream_alerts where stream = :s", s=stream)
    assert [a.kind for a in alerts].count("new") == 1
    logged = [line for path in ("first.log", "second.log")
              for line in (tmp_path / path).read_text().splitlines()
              if line.startswith(("WARN stream_metrics", "RECOVERED stream_metrics"))]
    assert sorted(logged) == sorted(a.title for a in alerts)  # each alert logged exactly once
    engine.dispose()


def test_a_standby_claims_the_pending_entries_of_a_dead_consumer(redis_client, stream, tmp_path, redis_url):
    produced = producer.append(redis_client, stream, producer.synthetic_events(START, 40, 200, seed=8))
    warehouse = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = store.engine_for(warehouse)
    # A long lateness keeps the last 20 intervals open: their entries stay pending for "a".
    dead = consumer_process(stream, "a", warehouse, redis_url, tmp_path / "a.log", "--lateness", "20")
    try:
        wait_for(lambda: stored_events(engine, stream) > 0 and pending(redis_client, stream).get("a", 0) > 2000
                 and redis_client.xinfo_groups(stream)[0]["lag"] == 0, 60, "consumer a to read everything")
    finally:
        dead.send_signal(signal.SIGKILL)
        dead.wait(10)
    orphaned = pending(redis_client, stream)["a"]
    producer.append(redis_client, stream, [("search", START + 62.0, 1.0)])
    standby = StreamConsumer(redis_client, engine, config(stream, name="b", lateness=20.0), log=lambda _: None)
    standby.run(seconds=30, until_idle=True)
    assert standby.stats.claimed >= orphaned
    assert stored_events(engine, stream) == produced
    assert pending(redis_client, stream) == {"b": 1}  # only the event of the open interval
    engine.dispose()
