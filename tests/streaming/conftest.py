"""A real Redis (DATA_PLATFORM_TEST_REDIS_URL; skipped with the reason when unset): every test
gets a stream of its own, deleted afterwards with its consumer lease."""

from __future__ import annotations

import os
import uuid

import pytest


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("DATA_PLATFORM_TEST_REDIS_URL")
    if not url:
        pytest.skip("DATA_PLATFORM_TEST_REDIS_URL is not set: no Redis to test the stream consumer against")
    return url


@pytest.fixture
def client(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def stream(client) -> str:
    name = f"dptest:stream:{uuid.uuid4().hex[:10]}"
    yield name
    keys = [name, *client.scan_iter(f"{name}:*")]
    client.delete(*keys)
