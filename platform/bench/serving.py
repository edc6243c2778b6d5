"""``data-platform bench serving``: the recommendation service under open-loop load.

The world: a Redis server of its own (``redis-server`` on a free port, nothing saved), a
temporary SQLite warehouse, 100,000 users with 10 items each published through the real
writer, and ``data-platform serve`` with one worker in its own process. The load comes from
another process (loadgen.py): fixed-rate schedules, latency from the intended send time.

Phases: warm-up; single users at 500/s for 60 s with 10% cold (unknown) users; batches of 100
users; a ramp of rates to find the highest at which p99 stays within 10 ms; and Redis stopped a
third into a phase at 500/s (the answers move to the warehouse).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

USERS, USERS_QUICK = 100_000, 5_000
ITEMS, ITEMS_PER_USER = 10_000, 10
COLD_SHARE = 0.10
PREFIX = "bench"
TARGET_P99_MS = 10.0
RAMP_RATES = (1000, 1500, 2000, 2500, 3000, 4000)


def cpu_pressure() -> str:
    """Linux PSI: the share of the last 60 s in which some runnable task waited for a CPU (other
    work on the machine shows up here and in the tail latencies)."""
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return first.split("avg60=")[1].split()[0] + "%"
    except (OSError, IndexError):
        return "n/a"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def synthetic_recommendations(users: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    items = rng.integers(0, ITEMS, size=(users, ITEMS_PER_USER))
    scores = np.sort(rng.random((users, ITEMS_PER_USER)), axis=1)[:, ::-1]
    return pd.DataFrame({
        "user_id": np.repeat([f"C{u:07d}" for u in range(users)], ITEMS_PER_USER),
        "item_id": [f"P{i:05d}" for i in items.ravel()],
        "score": scores.ravel(),
        "rank": np.tile(np.arange(1, ITEMS_PER_USER + 1), users),
    })


def popular_list(n: int = 100) -> pd.DataFrame:
    return pd.DataFrame({"item_id": [f"P{i:05d}" for i in range(n)],
                         "score": np.linspace(1.0, 0.01, n), "rank": np.arange(1, n + 1)})


def start_redis(port: int, folder: Path) -> subprocess.Popen:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("bench serving needs redis-server on PATH (apt-get install redis-server)")
    proc = subprocess.Popen([binary, "--port", str(port), "--save", "", "--appendonly", "no",
                             "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"redis-server did not start on port {port}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_ready(port: int, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise SystemExit(f"the service on port {port} was not ready within {timeout:.0f} s")


@contextmanager
def bench_world(users: int):
    import redis

    from data_platform.serving import publish
    from data_platform.serving.warehouse import cache_table
    from data_platform.tablestore import TableStore

    folder = Path(tempfile.mkdtemp(prefix="dp-bench-serving-"))
    redis_port = free_port()
    redis_proc = start_redis(redis_port, folder)
    try:
        recs = synthetic_recommendations(users)
        popular = popular_list()
        client = redis.Redis(port=redis_port)
        result = publish.publish(client, recs, popular, model_version="bench-model",
                                 model_created_at="", prefix=PREFIX)
        client.close()
        warehouse_url = f"sqlite:///{folder / 'warehouse.db'}"
        store = TableStore(warehouse_url)
        store.write("recommendations", recs)
        store.write("recommendation_cache", cache_table(
            popular, cache_version=result.cache_version, model_version="bench-model", model_created_at=""))
        store.dispose()
        yield {"folder": folder, "redis_port": redis_port, "redis": redis_proc,
               "warehouse_url": warehouse_url, "users": users, "publish_seconds": result.seconds}
    finally:
        stop(redis_proc)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def running_service(world: dict, workers: int = 1):
    port = free_port()
    env = dict(os.environ,
               DATA_PLATFORM_REDIS_URL=f"redis://127.0.0.1:{world['redis_port']}",
               DATA_PLATFORM_REDIS_PREFIX=PREFIX,
               DATA_PLATFORM_WAREHOUSE_URL=world["warehouse_url"])
    proc = subprocess.Popen([sys.executable, "-m", "data_platform.cli", "serve", "--port", str(port),
                             "--workers", str(workers)], env=env, stdout=subprocess.DEVNULL)
    try:
        wait_ready(port)
        yield port
    finally:
        stop(proc)


def request_mix(users: int, count: int, seed: int = 1) -> list[list]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        if rng.random() < COLD_SHARE:
            out.append(["GET", f"/v1/recommendations/N{rng.integers(0, 10**7):07d}?n=10", None])
        else:
            out.append(["GET", f"/v1/recommendations/C{rng.integers(0, users):07d}?n=10", None])
    return out


def batch_mix(users: int, count: int, size: int = 100, seed: int = 2) -> list[list]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        ids = [f"C{u:07d}" if rng.random() >= COLD_SHARE else f"N{u:07d}"
               for u in rng.integers(0, users, size)]
        out.append(["POST", "/v1/recommendations", json.dumps({"user_ids": ids, "n": 10})])
    return out


def load(port: int, rate: float, duration: float, requests: list, folder: Path,
         during: tuple[float, Callable[[], None]] | None = None) -> dict:
    """One open-loop phase from a loader process; ``during`` = (after seconds, action) runs the
    action while the load goes on (e.g. stopping Redis)."""
    spec = folder / "spec.json"
    spec.write_text(json.dumps({"host": "127.0.0.1", "port": port, "rate": rate,
                                "duration": duration, "requests": requests}))
    loader = subprocess.Popen([sys.executable, "-m", "data_platform.bench.loadgen", str(spec)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if during is not None:
        time.sleep(during[0])
        during[1]()
    out, err = loader.communicate(timeout=duration + 120)
    if loader.returncode != 0:
        raise SystemExit(f"load generator failed: {err[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def errors(result: dict) -> int:
    # Non-2xx answers, plus requests that got no answer at all (connection errors).
    bad = sum(v for k, v in result["statuses"].items() if not k.startswith("2"))
    return bad + result["requests"] - result["answered"]


def row(name: str, r: dict) -> str:
    sources = ", ".join(f"{k} {v}" for k, v in sorted(r["sources"].items()))
    return (f"| {name} | {r['rate']:.0f} | {r['achieved_rate']:.0f} | {r['requests']} | {errors(r)} | "
            f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['p999_ms']:.2f} | {r['max_ms']:.1f} | "
            f"{r['service_p50_ms']:.2f} / {r['service_p99_ms']:.2f} | {sources} |")


def main(args: argparse.Namespace) -> int:
    from data_platform.bench.runner import machine

    quick = bool(getattr(args, "quick", False))
    users = USERS_QUICK if quick else USERS
    main_s, batch_s, step_s, fallback_s = (4, 4, 3, 3) if quick else (60, 30, 10, 10)
    rates = RAMP_RATES[:1] if quick else RAMP_RATES
    rows: list[tuple[str, dict]] = []
    pressure_before = cpu_pressure()
    with bench_world(users) as world, running_service(world) as port:
        singles = request_mix(users, 20_000)
        folder = world["folder"]
        load(port, 500, 2 if quick else 5, singles, folder)  # warm-up, not reported
        rows.append(("single users, 10% cold", load(port, 500, main_s, singles, folder)))
        rows.append(("batch of 100 users", load(port, 20, batch_s, batch_mix(users, 2000), folder)))
        best = None
        for rate in rates:
            r = load(port, rate, step_s, singles, folder)
            rows.append((f"ramp {rate}/s", r))
            if errors(r) or r["p99_ms"] > TARGET_P99_MS or r["achieved_rate"] < 0.98 * rate:
                break
            best = rate
        rows.append((f"Redis stopped about {fallback_s / 3:.0f} s into the phase", load(
            port, 500, fallback_s, singles, folder, during=(fallback_s / 3, lambda: stop(world["redis"])))))
    print(f"### Recommendation serving ({machine()}; one worker; {users:,} users x "
          f"{ITEMS_PER_USER} items; cache published in {world['publish_seconds']:.1f} s)\n")
    print(f"CPU pressure from other work (PSI some avg60): {pressure_before} before, "
          f"{cpu_pressure()} after.\n")
    print("| phase | offered /s | achieved /s | requests | errors | p50 ms | p99 ms | p99.9 ms | max ms "
          "| from send p50 / p99 ms | answered from |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, r in rows:
        print(row(name, r))
    print(f"\nHighest ramp rate with p99 <= {TARGET_P99_MS:.0f} ms and no errors: "
          f"{best if best is not None else 'below ' + str(rates[0])}/s (steps of {step_s} s).")
    print(json.dumps({name: r for name, r in rows}), file=sys.stderr)
    return 0
