"""A DAGSTER_HOME configured like the deployment: deploy/ files, instance on a fresh PostgreSQL DB."""

import os
import shutil
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Settings of the environment that would change the partitions, sources or executor of the jobs.
OVERRIDES = ("DATA_PLATFORM_START_DATE", "DATA_PLATFORM_EXPECTED_EVENTS", "DATA_PLATFORM_EXECUTOR")


def instance_env(instance_url: str) -> dict[str, str]:
    """DAGSTER_PG_* for deploy/dagster.postgres.yaml, from a database URL."""
    url = sa.make_url(instance_url)
    return {
        "DAGSTER_PG_HOST": url.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_USER": url.username or "postgres",
        # The test server trusts loopback; the instance configuration still requires a value.
        "DAGSTER_PG_PASSWORD": url.password or "unused",
        "DAGSTER_PG_DB": url.database,
    }


@pytest.fixture
def deploy_home(tmp_path, new_postgres_database, monkeypatch):
    """(DAGSTER_HOME, env for the deployment's processes) with the instance on a fresh database.

    DAGSTER_HOME holds deploy/dagster.postgres.yaml as dagster.yaml and workspace.yaml, as the
    image does; this test process gets DAGSTER_HOME and DAGSTER_PG_* too, to
    open the same instance.
    """
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO_ROOT / "deploy" / "dagster.postgres.yaml", home / "dagster.yaml")
    shutil.copyfile(REPO_ROOT / "deploy" / "workspace.yaml", home / "workspace.yaml")
    pg = instance_env(new_postgres_database())
    for name, value in {**pg, "DAGSTER_HOME": str(home)}.items():
        monkeypatch.setenv(name, value)
    env = {
        **{k: v for k, v in os.environ.items() if k not in OVERRIDES},
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DATA_PLATFORM_WAREHOUSE_URL": new_postgres_database(),
        "DATA_PLATFORM_MODEL_DIR": str(tmp_path / "models"),
    }
    return home, env
