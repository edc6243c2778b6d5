"""Shared fixtures: service URLs skip with a reason when unset; fresh databases per test."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    """Files holding end-to-end (`slow`) tests first, each file's tests kept together and in
    order: with `-n 2 --dist loadfile` the long files start at once instead of leaving one
    worker alone on them at the end."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


def _service_url(variable: str, service: str) -> str:
    """The URL of a local service for tests; skips with the reason when it is not configured."""
    url = os.environ.get(variable)
    if not url:
        pytest.skip(f"{variable} is not set: no {service} to test against")
    return url


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    return _service_url("DATA_PLATFORM_TEST_POSTGRES_URL", "PostgreSQL")


@pytest.fixture
def postgres_url(new_postgres_database) -> str:
    """A brand-new empty PostgreSQL database for one test, dropped afterwards."""
    return new_postgres_database()


@pytest.fixture
def platform_home(tmp_path: Path, monkeypatch) -> Path:
    """A fresh DAGSTER_HOME holding the dagster.yaml that `data-platform demo` writes (SQLite
    storage with event-log connections kept open), set in the environment as Dagster expects."""
    from data_platform.cli import DEFAULT_INSTANCE_YAML

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DEFAULT_INSTANCE_YAML)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture
def platform_instance(platform_home: Path):
    """A persistent Dagster instance on `platform_home`."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(platform_home)) as instance:
        yield instance


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'warehouse.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def warehouse_url(request) -> str:
    """Runs a test once on SQLite and once on PostgreSQL (skipped only when its URL is unset)."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """Real datasets for validation; never the only proof of anything."""
    raw = os.environ.get("DATA_PLATFORM_REAL_DATA")
    if not raw or not Path(raw).is_dir():
        pytest.skip("DATA_PLATFORM_REAL_DATA is not set to a folder of real datasets")
    return Path(raw)


@pytest.fixture(scope="session")
def procs():
    """The module tests/procs.py: start real servers, wait until they answer, always stop them."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("data_platform_test_procs", REPO_ROOT / "tests" / "procs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def new_postgres_database(postgres_admin_url: str):
    """A factory of brand-new empty PostgreSQL databases (URLs) for one test, all dropped afterwards."""
    import sqlalchemy as sa

    from data_platform.sources.db import make_engine

    admin = make_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    names: list[str] = []

    def create() -> str:
        name = f"dp_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        names.append(name)
        return sa.make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)

    yield create
    with admin.connect() as conn:
        for name in names:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The shared Redis (DATA_PLATFORM_TEST_REDIS_URL); tests keep to keys of their own on it."""
    return _service_url("DATA_PLATFORM_TEST_REDIS_URL", "Redis")


@pytest.fixture
def redis_client(redis_url):
    """A client of the shared Redis, closed afterwards."""
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def redis_prefix(redis_client) -> str:
    """A key prefix of this test's own on the shared Redis; its keys are deleted afterwards."""
    name = f"dptest:{uuid.uuid4().hex[:10]}"
    yield name
    keys = list(redis_client.scan_iter(f"{name}:*", count=1000))
    if keys:
        redis_client.delete(*keys)


@pytest.fixture(scope="session")
def celery_broker_url() -> str:
    return _service_url("DATA_PLATFORM_TEST_CELERY_BROKER_URL", "celery broker (RabbitMQ)")
