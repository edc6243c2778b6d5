"""Warehouses for the feature-store tests: a SQLite file always; PostgreSQL in a schema of its
own (dropped afterwards) when DATA_PLATFORM_TEST_POSTGRES_URL is set. Redis is tests/conftest.py's
`redis_client`, under the test's own `redis_prefix`."""

from __future__ import annotations

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
    url = request.getfixturevalue("postgres_admin_url")
    schema = f"fs_{uuid.uuid4().hex[:10]}"
    store = OfflineStore(url, schema=schema)
    yield store
    store.dispose()
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    engine.dispose()
