"""Open-loop HTTP load from its own process: ``python -m data_platform.bench.loadgen SPEC``.

Request i is due at ``start + i / rate`` whatever happened to the earlier ones (no waiting for
answers before sending: a stall of the server cannot slow the load down and hide itself).
Latency is measured from that intended send time, so time a request spent waiting to be sent
counts too; the time from the actual send is reported beside it. Every latency is kept (a
60-s run at 500/s is 30,000 numbers), so percentiles are exact rather than bucketed.

Raw HTTP/1.1 over keep-alive sockets on asyncio: a request takes a free connection, or opens
one, so slow answers never queue the following requests behind them.

SPEC (a JSON file named on the command line): host, port, rate, duration, requests (a list of
``[method, path, body]`` templates cycled in order), connections (at most this many open).
The result is printed as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np


def _encode(host: str, port: int, method: str, path: str, body: str | None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    if body is None:
        return (head + "\r\n").encode()
    data = body.encode()
    return (head + f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    source = b""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lowered = name.lower()
        if lowered == b"content-length":
            length = int(value)
        elif lowered == b"x-recommendation-source":
            source = value.strip()
    body = await reader.readexactly(length) if length else b""
    return status, source, body


async def run(spec: dict) -> dict:
    host, port = spec["host"], int(spec["port"])
    rate, duration = float(spec["rate"]), float(spec["duration"])
    templates = [_encode(host, port, m, p, b) for m, p, b in spec["requests"]]
    total = max(1, int(rate * duration))
    max_conns = int(spec.get("connections", 256))
    intended_latency = np.full(total, np.nan)
    service_latency = np.full(total, np.nan)
    statuses: dict[int, int] = {}
    sources: dict[str, int] = {}
    failures: dict[str, int] = {}
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    opened = 0
    stale = 0
    slots = asyncio.Semaphore(max_conns)
    # perf_counter, not loop.time(): uvloop's clock only has millisecond resolution.
    clock = time.perf_counter

    async def one(i: int, due: float) -> None:
        nonlocal opened
        nonlocal stale
        async with slots:
            try:
                while True:
                    reused = bool(idle)
                    if reused:
                        reader, writer = idle.pop()
                    else:
                        reader, writer = await asyncio.open_connection(host, port)
                        opened += 1
                    sent = clock()
                    writer.write(templates[i % len(templates)])
                    try:
                        status, source, _ = await _read_response(reader)
                    except (ConnectionError, asyncio.IncompleteReadError) as error:
                        # The server closed an idle keep-alive connection: like any HTTP
                        # client, send again on a new one (the latency keeps counting).
                        if reused and not getattr(error, "partial", b""):
                            stale += 1
                            writer.close()
                            continue
                        raise
                    break
                done = clock()
                idle.append((reader, writer))
            except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                failures[type(error).__name__] = failures.get(type(error).__name__, 0) + 1
                return
        intended_latency[i] = done - due
        service_latency[i] = done - sent
        statuses[status] = statuses.get(status, 0) + 1
        name = source.decode() or "none"
        sources[name] = sources.get(name, 0) + 1

    tasks = []
    start = clock() + 0.05
    for i in range(total):
        due = start + i / rate
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i, due)))
    sending_ended = clock()
    await asyncio.gather(*tasks)
    for _, writer in idle:
        writer.close()
    if spec.get("dump"):
        # Every request's latency in due order (NaN: no answer), to see when the slow ones came.
        np.save(spec["dump"], intended_latency)
    answered = ~np.isnan(intended_latency)
    lat = intended_latency[answered] * 1000
    svc = service_latency[answered] * 1000

    def pct(values: np.ndarray, q: float) -> float | None:
        return float(np.percentile(values, q)) if len(values) else None

    return {
        "rate": rate,
        "duration_s": duration,
        "requests": total,
        "answered": int(answered.sum()),
        "achieved_rate": total / max(sending_ended - start, 1e-9),
        "connections_opened": opened,
        "stale_connections_resent": stale,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "sources": sources,
        "failures": failures,
        "p50_ms": pct(lat, 50),
        "p90_ms": pct(lat, 90),
        "p99_ms": pct(lat, 99),
        "p999_ms": pct(lat, 99.9),
        "max_ms": float(lat.max()) if len(lat) else None,
        "service_p50_ms": pct(svc, 50),
        "service_p99_ms": pct(svc, 99),
    }


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn's extras here
        runner = asyncio.run
    started = time.perf_counter()
    result = runner(run(spec))
    result["wall_s"] = time.perf_counter() - started
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
