"""Real Redis servers, real HTTP: the service runs in uvicorn on a loopback port.

`redis_url` is the shared Redis (DATA_PLATFORM_TEST_REDIS_URL; skipped with the reason when
unset), used under a unique key prefix per test and cleaned up. Tests that stop Redis start
their own `redis-server` on a free port (`own_redis`) and never touch the shared one.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import uuid
from pathlib import Path

import pytest

# tests/serving/helpers.py: data makers, the in-thread service, HTTP requests, redis-server.
_spec = importlib.util.spec_from_file_location("serving_helpers", Path(__file__).with_name("helpers.py"))
helpers_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers_module)


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("DATA_PLATFORM_TEST_REDIS_URL")
    if not url:
        pytest.skip("DATA_PLATFORM_TEST_REDIS_URL is not set: no Redis to test against")
    return url


@pytest.fixture
def prefix(redis_url):
    """A key prefix of this test's own on the shared Redis; its keys are deleted afterwards."""
    import redis

    name = f"dptest:{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{name}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def own_redis(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server binary on PATH: the outage tests start their own Redis")
    server = helpers_module.RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()
