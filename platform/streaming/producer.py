"""Synthetic events for the demo, the tests and the benchmark, with injected incidents.

Events arrive as a Poisson process at `rate` per second, spread over a few keys by weight; each
key's values are normal around its own mean, and about 2 % of them are null. Incidents change one
key for a while: a *count drop* (90 % of its events vanish), a *mean shift* (values move up by
1.5 standard deviations) and a *null spike* (half of its values are null).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import redis

from data_platform.streaming.events import encode

# key: (share of the events, mean, standard deviation)
KEYS = {"checkout": (0.3, 120.0, 15.0), "search": (0.4, 40.0, 6.0),
        "signup": (0.1, 900.0, 80.0), "payment": (0.2, 60.0, 5.0)}
NULL_RATE = 0.02
COUNT_DROP, MEAN_SHIFT, NULL_SPIKE = "count drop", "mean shift", "null spike"


@dataclass(frozen=True)
class Incident:
    kind: str
    key: str
    start: float
    end: float


def default_incidents(start: float, seconds: float) -> list[Incident]:
    """One incident of each kind, on three different keys, spread over the span."""
    length = max(20.0, 0.12 * seconds)
    return [
        Incident(COUNT_DROP, "checkout", start + 0.25 * seconds, start + 0.25 * seconds + length),
        Incident(MEAN_SHIFT, "payment", start + 0.5 * seconds, start + 0.5 * seconds + length),
        Incident(NULL_SPIKE, "search", start + 0.75 * seconds, start + 0.75 * seconds + length),
    ]


def synthetic_events(start: float, seconds: float, rate: float, incidents: Sequence[Incident] = (),
                     seed: int = 0, keys: dict = KEYS) -> Iterator[tuple[str, float, float | None]]:
    """(key, ts, value) in time order, for event times in [start, start + seconds)."""
    rng = random.Random(seed)
    names = list(keys)
    weights = [keys[k][0] for k in names]
    end = start + seconds
    ts = start
    while True:
        ts += rng.expovariate(rate)
        if ts >= end:
            return
        key = rng.choices(names, weights)[0]
        _, mean, sd = keys[key]
        null_rate = NULL_RATE
        for incident in incidents:
            if incident.key == key and incident.start <= ts < incident.end:
                if incident.kind == COUNT_DROP:
                    if rng.random() < 0.9:
                        break
                elif incident.kind == MEAN_SHIFT:
                    mean += 1.5 * sd
                elif incident.kind == NULL_SPIKE:
                    null_rate = 0.5
        else:
            value = None if rng.random() < null_rate else round(rng.gauss(mean, sd), 3)
            yield key, ts, value


def append(client: redis.Redis, stream: str, events, chunk: int = 2000,
           maxlen: int | None = None) -> int:
    """XADD the events in pipelined chunks; returns how many."""
    n = 0
    pipe = client.pipeline(transaction=False)
    for key, ts, value in events:
        pipe.xadd(stream, encode(key, ts, value), maxlen=maxlen, approximate=True)
        n += 1
        if n % chunk == 0:
            pipe.execute()
    pipe.execute()
    return n


def produce_live(client: redis.Redis, stream: str, rate: float, seconds: float, *, incidents: bool,
                 history_seconds: float = 600.0, seed: int = 0, maxlen: int | None = 1_000_000,
                 log=print) -> int:
    """Backfill `history_seconds` of past events (the detectors warm up on them), then append
    events live, stamped with the current time, for `seconds`."""
    now = time.time()
    n = append(client, stream, synthetic_events(now - history_seconds, history_seconds, rate, seed=seed),
               maxlen=maxlen)
    planned = default_incidents(now, seconds) if incidents else []
    log(f"appended {n} events of history ({history_seconds:.0f} s) to {stream!r}; now live at {rate:g}/s "
        f"for {seconds:g} s")
    for incident in planned:
        log(f"  incident: {incident.kind} on {incident.key!r} from +{incident.start - now:.0f} s "
            f"to +{incident.end - now:.0f} s")
    pipe = client.pipeline(transaction=False)
    pending = 0
    for key, ts, value in synthetic_events(now, seconds, rate, planned, seed=seed + 1):
        wait = ts - time.time()
        if wait > 0:
            if pending:
                pipe.execute()
                pending = 0
            time.sleep(wait)
        pipe.xadd(stream, encode(key, ts, value), maxlen=maxlen, approximate=True)
        pending += 1
        n += 1
    pipe.execute()
    return n
