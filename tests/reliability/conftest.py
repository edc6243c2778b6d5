"""A throwaway PostgreSQL cluster that a test may crash: `initdb` in a temporary folder, a free
port on loopback, trust authentication, its unix socket in the same folder.

The shared server of `DATA_PLATFORM_TEST_POSTGRES_URL` must never be crashed, so tests that stop
a server with ``pg_ctl stop -m immediate`` start their own. Skips with the reason when `initdb` or
`pg_ctl` are not on PATH. PostgreSQL refuses to run as root: as root, the cluster runs as the
`postgres` user (or `nobody`), which owns the folder.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from data_platform.sources.db import make_engine


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _unprivileged_user() -> pwd.struct_passwd | None:
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    return None


class PostgresCluster:
    """One PostgreSQL server on 127.0.0.1:<port> over a data folder of its own."""

    def __init__(self, root: Path, initdb: str, pg_ctl: str, user: pwd.struct_passwd | None):
        self.root = root
        self.data = root / "data"
        self.log_file = root / "server.log"
        self.port = _free_port()
        self._pg_ctl = pg_ctl
        self._as = {"user": user.pw_uid, "group": user.pw_gid} if user else {}
        self._run([initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                   "--locale=C", "--no-sync"])

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, **self._as)
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed ({done.returncode}): {done.stderr or done.stdout}\n{self.log()}")

    def start(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} "
                   f"-c unix_socket_directories={self.root} -c max_connections=40")
        self._run([self._pg_ctl, "-D", str(self.data), "-l", str(self.log_file), "-w", "-t", "30",
                   "-o", options, "start"])

    def crash(self) -> None:
        """``pg_ctl stop -m immediate``: every server process quits at once, no checkpoint, no
        goodbye to the clients; the next start runs crash recovery from the WAL."""
        self._run([self._pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"])

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run([self._pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        engine = make_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url(name)


@pytest.fixture
def throwaway_postgres():
    """A started PostgreSQL cluster of this test's own, stopped and deleted afterwards."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("initdb and pg_ctl are not on PATH: cannot start a throwaway PostgreSQL cluster to crash")
    user = None
    if os.geteuid() == 0:
        user = _unprivileged_user()
        if user is None:
            pytest.skip("running as root without a 'postgres' or 'nobody' user: PostgreSQL refuses to run as root")
    # Not under pytest's tmp_path: as root that folder is closed to the server's user.
    root = Path(tempfile.mkdtemp(prefix="dp-pg-"))
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
    cluster = None
    try:
        cluster = PostgresCluster(root, initdb, pg_ctl, user)
        cluster.start()
        yield cluster
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
