"""`data-platform bench streaming-consumer`: the consumer's throughput and event-to-alert latency.

- Throughput: synthetic events (four keys, event times 1,000 per second, 5-second intervals) are
  appended to a fresh stream first; the consumer then drains it in this process, one thread,
  from Redis Stream to stored scores in a SQLite warehouse, acknowledging as it commits.
  Events per second of wall time, and of this process's CPU time.
- Latency: a producer process appends events live at 1,000 per second (with history for the
  warm-up and the three incidents) while the consumer runs with 1-second intervals. For every
  interval: from its start (its earliest possible event) to its stored scores; for every alert:
  from the start of the interval that raised it to the moment it was handed to the sink.

Needs Redis: DATA_PLATFORM_REDIS_URL (or DATA_PLATFORM_TEST_REDIS_URL). The streams it writes
are deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis
import sqlalchemy as sa

from data_platform.streaming import producer, store
from data_platform.streaming.consumer import ConsumerConfig, StreamConsumer

START = 1_700_000_000.0
# The producer starts, appends its history (75 s of events: the 60-interval warm-up) and catches
# up with the clock before it is live: intervals before this are not measured.
SETTLE_S = 12.0


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))] if ordered else float("nan")


def throughput(client: redis.Redis, folder: Path, events: int) -> dict:
    stream = f"bench:stream:{uuid.uuid4().hex[:8]}"
    try:
        seconds = events / 1000.0
        produced = producer.append(client, stream, producer.synthetic_events(START, seconds, 1000.0, seed=1))
        producer.append(client, stream, [("checkout", START + seconds + 12.0, 1.0)])
        engine = store.engine_for(f"sqlite:///{folder / (stream.replace(':', '_') + '.db')}")
        consumer = StreamConsumer(client, engine, ConsumerConfig(stream=stream, name="bench", block_ms=100),
                                  log=lambda _: None)
        wall, cpu = time.perf_counter(), time.process_time()
        consumer.run(until_idle=True)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        with engine.connect() as conn:
            stored = conn.execute(sa.text("select sum(value) from stream_scores where metric = 'count'")).scalar()
        engine.dispose()
        if int(stored) != produced:
            raise RuntimeError(f"stored {stored} events of {produced}")
        return {"events": produced, "intervals": consumer.stats.intervals, "wall": wall, "cpu": cpu}
    finally:
        client.delete(stream, *client.scan_iter(f"{stream}:*"))


def latency(client: redis.Redis, url: str, folder: Path, seconds: float, rate: float) -> dict:
    stream = f"bench:stream:{uuid.uuid4().hex[:8]}"
    engine = store.engine_for(f"sqlite:///{folder / 'latency.db'}")
    env = {**os.environ, "DATA_PLATFORM_REDIS_URL": url}
    command = [sys.executable, "-m", "data_platform.cli", "stream", "--produce", "--stream", stream,
               "--rate", str(rate), "--seconds", str(seconds), "--history", "75", "--incidents"]
    live_from = time.time()
    try:
        feeder = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        config = ConsumerConfig(stream=stream, name="bench", interval=1.0, lateness=1.0, block_ms=100)
        consumer = StreamConsumer(client, engine, config, [("log", lambda _: None)], log=lambda _: None)
        consumer.run(seconds=seconds + 8.0)
        feeder.wait(30)
        with engine.connect() as conn:
            intervals = conn.execute(sa.text(
                "select interval_start, min(stored_at) from stream_scores where interval_start >= :t "
                "group by interval_start"), {"t": live_from + SETTLE_S}).all()
            alerts = conn.execute(sa.text(
                "select interval_start, sent_at, title from stream_alerts where kind = 'new' and interval_start >= :t"),
                {"t": live_from}).all()
    finally:
        client.delete(stream, *client.scan_iter(f"{stream}:*"))
        engine.dispose()
    stored = [t - start for start, t in intervals]
    sent = [t - start for start, t, _ in alerts]
    return {"rate": rate, "seconds": seconds, "intervals": len(stored), "stored_p50": statistics.median(stored),
            "stored_p95": _p95(stored), "alerts": [(title, round(s, 2)) for (_, _, title), s in zip(alerts, sent, strict=True)],
            "alert_p95": _p95(sent), "alert_max": max(sent, default=float("nan"))}


def main(args: argparse.Namespace) -> int:
    url = os.environ.get("DATA_PLATFORM_REDIS_URL") or os.environ.get("DATA_PLATFORM_TEST_REDIS_URL")
    if not url:
        print("bench streaming-consumer needs Redis: set DATA_PLATFORM_REDIS_URL")
        return 2
    client = redis.Redis.from_url(url)
    quick = getattr(args, "quick", False)
    events, repeats, seconds = (20_000, 1, 30.0) if quick else (200_000, 3, 60.0)
    with tempfile.TemporaryDirectory() as folder:
        runs = [throughput(client, Path(folder), events) for _ in range(repeats)]
        rates = [r["events"] / r["wall"] for r in runs]
        cpu_rates = [r["events"] / r["cpu"] for r in runs]
        print(f"## Stream consumer ({os.cpu_count()} cores, Python {sys.version.split()[0]})\n")
        print("| measure | value |\n| --- | ---: |")
        print(f"| events through the consumer (Redis Stream to stored scores), median of {repeats} | "
              f"{runs[0]['events']:,} events, {runs[0]['intervals']} intervals of 5 s |")
        print(f"| throughput, wall time (median; range) | {statistics.median(rates):,.0f} events/s "
              f"({min(rates):,.0f} to {max(rates):,.0f}) |")
        print(f"| throughput, consumer CPU time (median) | {statistics.median(cpu_rates):,.0f} events/s |")
        lat = latency(client, url, Path(folder), seconds, 1000.0)
        print(f"| live at {lat['rate']:,.0f} events/s for {lat['seconds']:.0f} s, 1-s intervals: interval start "
              f"to stored scores, p50 / p95 over {lat['intervals']} intervals | "
              f"{lat['stored_p50']:.2f} s / {lat['stored_p95']:.2f} s |")
        print(f"| event to alert (interval start to sink), p95 / max over {len(lat['alerts'])} alerts | "
              f"{lat['alert_p95']:.2f} s / {lat['alert_max']:.2f} s |")
        for title, seconds_ in lat["alerts"]:
            print(f"|   {title} | {seconds_:.2f} s |")
    return 0
