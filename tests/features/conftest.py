"""Warehouses for the feature-store tests: a SQLite file always; PostgreSQL in a schema of its
own (dropped afterwards) when DATA_PLATFORM_TEST_POSTGRES_URL is set; Redis under a key prefix of
its own (deleted afterwards) when DATA_PLATFORM_TEST_REDIS_URL is set."""

from __future__ import annotations

import os
import uuid

import pytest

from data_platform.features import OfflineStore
from data_platform.sources.db import make_engine


@pytest.fixture(params=["sqlite", "postgres"])
def offline(request, tmp_path):
    if request.param == "sqlite":
        store = OfflineStore(f"sqlite:///{tmp_path / 'warehouse.db'}")
        yield store
        store.dispose()
        return
    url = os.environ.get("DATA_PLATFORM_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("DATA_PLATFORM_TEST_POSTGRES_URL is not set: no PostgreSQL to run the join on")
    schema = f"fs_{uuid.uuid4().hex[:10]}"
    store = OfflineStore(url, schema=schema)
    yield store
    store.dispose()
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    engine.dispose()


@pytest.fixture
def redis_client():
    url = os.environ.get("DATA_PLATFORM_TEST_REDIS_URL")
    if not url:
        pytest.skip("DATA_PLATFORM_TEST_REDIS_URL is not set: no Redis for the online store")
    import redis

    client = redis.Redis.from_url(url)
    client.test_prefix = f"dptest:{uuid.uuid4().hex[:10]}"
    yield client
    keys = list(client.scan_iter(f"{client.test_prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
