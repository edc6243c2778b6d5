"""A real Redis (tests/conftest.py's `redis_client`; skipped with the reason when
DATA_PLATFORM_TEST_REDIS_URL is unset): every test gets a stream of its own, deleted afterwards
with its consumer lease."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def stream(redis_client) -> str:
    name = f"dptest:stream:{uuid.uuid4().hex[:10]}"
    yield name
    keys = [name, *redis_client.scan_iter(f"{name}:*")]
    redis_client.delete(*keys)
