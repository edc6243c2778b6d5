"""Helpers of the serving tests (loaded by conftest.py; pytest runs in importlib mode)."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import threading
import time

import numpy as np
import pandas as pd


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server of the test's own (nothing saved to disk), which the test may stop."""

    def __init__(self, folder, *extra: str) -> None:
        self.extra = list(extra)
        self.binary = shutil.which("redis-server")
        self.port = free_port()
        self.folder = folder
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.folder), *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


def make_recommendations(users: int, tag: str, items_per_user: int = 10) -> pd.DataFrame:
    """`users` users (u0..) with `items_per_user` items each; item ids carry `tag` so that a
    response shows which published version its items came from."""
    return pd.DataFrame({
        "user_id": np.repeat([f"u{u}" for u in range(users)], items_per_user),
        "item_id": [f"{tag}-i{u}-{k}" for u in range(users) for k in range(items_per_user)],
        "score": np.tile(np.linspace(1.0, 0.1, items_per_user), users),
        "rank": np.tile(np.arange(1, items_per_user + 1), users),
    })


def make_popular(tag: str, n: int = 20) -> pd.DataFrame:
    return pd.DataFrame({"item_id": [f"{tag}-p{k}" for k in range(n)],
                         "score": np.linspace(1.0, 0.05, n), "rank": np.arange(1, n + 1)})


def write_warehouse(url: str, recs: pd.DataFrame, popular: pd.DataFrame, model_version: str) -> None:
    from data_platform.serving.warehouse import cache_table
    from data_platform.tablestore import TableStore

    store = TableStore(url)
    store.write("recommendations", recs)
    store.write("recommendation_cache", cache_table(
        popular, cache_version=f"wh-{model_version}", model_version=model_version,
        model_created_at="2025-01-01T00:00:00+00:00"))
    store.dispose()


class Service:
    """The ASGI app in uvicorn on a thread of the test process, on a free loopback port."""

    def __init__(self, config) -> None:
        import uvicorn

        from data_platform.serving.app import create_app

        self.app = create_app(config)
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning",
            loop="uvloop", http="httptools", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Service:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the service did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @property
    def service(self):
        return self.app.state.service

    def request(self, method: str, path: str, body: object = None, raw: bytes | None = None):
        return request(self.port, method, path, body, raw)


def request(port: int, method: str, path: str, body: object = None, raw: bytes | None = None,
            conn: http.client.HTTPConnection | None = None):
    """(status, headers, decoded JSON body or text) of one request."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"Content-Type": "application/json"} if data is not None else {}
    try:
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        kind = response.getheader("Content-Type", "")
        decoded = json.loads(payload) if kind.startswith("application/json") else payload.decode()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, decoded
    finally:
        if own:
            conn.close()
