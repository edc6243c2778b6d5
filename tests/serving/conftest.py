"""Real Redis servers, real HTTP: the service runs in uvicorn on a loopback port.

The shared Redis is tests/conftest.py's `redis_url` (skipped with the reason when unset), used
under a key prefix of each test's own (`redis_prefix`, cleaned up). Tests that stop Redis start
their own `redis-server` on a free port (`own_redis`) and never touch the shared one.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

# tests/serving/helpers.py: data makers, the in-thread service, HTTP requests, redis-server.
_spec = importlib.util.spec_from_file_location("serving_helpers", Path(__file__).with_name("helpers.py"))
helpers_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers_module)


@pytest.fixture
def own_redis(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server binary on PATH: the outage tests start their own Redis")
    server = helpers_module.RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()
