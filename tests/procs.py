"""Real server processes for tests: start them, wait until they answer, always stop them.

Loaded through the `procs` fixture (tests/conftest.py): pytest runs in importlib mode, so the
tests folder is not an importable package.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def graphql(port: int, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
    """POST one query to a Dagster webserver on loopback; the decoded JSON answer."""
    body = {"query": query, "variables": variables or {}}
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def bin_env(env: dict[str, str]) -> dict[str, str]:
    """env with this interpreter's scripts first on PATH, whether or not its venv is activated."""
    return {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}


class Processes:
    """A group of servers; each runs in its own session so that stopping it also ends its children
    (a gRPC server's run workers, a celery worker's pool). Output goes to a log file per process:
    a pipe that nobody reads would block a chatty server."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()

    def start(self, name: str, cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            cmd, env=bin_env(env), cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.procs[name] = proc
        return proc

    def log(self, name: str, tail: int = 4000) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{self.log(name)}" for name in self.procs)

    def check_alive(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is not None:
            pytest.fail(f"{name} exited with {proc.returncode}:\n{self.logs()}")

    def wait_until(self, predicate, what: str, timeout: float, interval: float = 1.0):
        """Poll predicate() until it returns a truthy value; fail with every log if a server died."""
        deadline = time.monotonic() + timeout
        while True:
            for name in self.procs:
                self.check_alive(name)
            try:
                value = predicate()
            except (OSError, urllib.error.URLError):
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}:\n{self.logs()}")
            time.sleep(interval)

    def wait_http(self, name: str, url: str, timeout: float = 180) -> None:
        def answers() -> bool:
            with urllib.request.urlopen(url, timeout=5):
                return True

        self.wait_until(answers, f"{name} at {url}", timeout, interval=0.5)

    def stop(self, name: str, timeout: float = 30) -> None:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        # Children that outlive their leader (run workers, pool processes) go too.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if proc.poll() is None:
            proc.wait(timeout=timeout)

    def stop_all(self) -> None:
        # Clients before servers: the webserver and daemon before the code server they call.
        for name in reversed(list(self.procs)):
            self.stop(name)


def wait_for_webserver(port: int, group: Processes, name: str = "webserver", timeout: float = 180) -> None:
    group.wait_http(name, f"http://127.0.0.1:{port}/server_info", timeout)
