"""A password in a warehouse or source URL never shows in events, logs, errors or instance files.

The pipeline runs for real (dimensions, then one daily partition) with the URL coming from the
environment, as in production; then everything the run left behind is searched for the password:
every event record of the instance (materialization and check metadata, logs, failures), the
stored runs (config and tags), the process's stdout/stderr, raised exceptions with their
tracebacks, and every byte of every file in the instance folder.
"""

from __future__ import annotations

import traceback
import uuid
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._serdes import serialize_value

from data_platform.definitions import build_definitions
from data_platform.jobs import DAILY_JOB, DIMENSIONS_JOB
from data_platform.resources.model_store import ModelStoreResource
from data_platform.resources.source import SourceResource, source_resource_from_env
from data_platform.resources.warehouse import WAREHOUSE_URL_ENV, TableStore
from data_platform.sources import SourceError, fetch, parse_spec
from data_platform.sources.db import make_engine

# Logged at DEBUG so that the search covers every line Dagster and the platform would print.
VERBOSE = {"loggers": {"console": {"config": {"log_level": "DEBUG"}}}}
CLOSED_PORT_HOST = "127.0.0.1:1"


def make_canary() -> str:
    return f"S3cr3t-Canary-{uuid.uuid4().hex}"


def run_daily(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    daily = defs.resolve_job_def(DAILY_JOB)
    key = daily.partitions_def.get_partition_keys()[-1]
    return daily.execute_in_process(
        instance=instance, partition_key=key, run_config=VERBOSE, raise_on_error=False
    )


def instance_texts(instance: dg.DagsterInstance) -> list[str]:
    """Serialized runs (config, tags) and every event record of every run."""
    texts = []
    for run in instance.get_runs():
        texts.append(serialize_value(run))
        texts.extend(serialize_value(entry) for entry in instance.all_logs(run.run_id))
    return texts


def make_home(tmp_path: Path) -> Path:
    home = tmp_path / "instance"
    home.mkdir()
    return home


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def assert_nowhere(canary: str, texts: list[str], files: dict[str, bytes]) -> None:
    assert texts, "nothing was searched"
    leaks = [text[max(0, text.find(canary) - 200):text.find(canary) + 50] for text in texts if canary in text]
    assert not leaks, f"password found in: {leaks[:3]}"
    for needle in {canary.encode("utf-8"), canary.encode("utf-16-le")}:
        leaking_files = [name for name, data in files.items() if needle in data]
        assert not leaking_files, f"password found in files {leaking_files}"


@pytest.fixture
def secret_warehouse_url(postgres_url):
    """The test database, reached as its owner: a role with a known password in the URL."""
    canary = make_canary()
    role = f"dp_secret_{uuid.uuid4().hex[:10]}"
    url = sa.make_url(postgres_url)
    admin = make_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN PASSWORD '{canary}'"))
        conn.execute(sa.text(f'ALTER DATABASE "{url.database}" OWNER TO {role}'))
    yield url.set(username=role, password=canary).render_as_string(hide_password=False), canary
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
        conn.execute(sa.text(f"DROP ROLE IF EXISTS {role}"))
    admin.dispose()


def test_warehouse_password_never_leaks_from_a_real_run(secret_warehouse_url, monkeypatch, capfd, tmp_path):
    url, canary = secret_warehouse_url
    assert canary in url
    monkeypatch.setenv(WAREHOUSE_URL_ENV, url)
    monkeypatch.delenv("DATA_PLATFORM_START_DATE", raising=False)
    defs = build_definitions(
        source=SourceResource(synthetic_incidents=False),
        model_store=ModelStoreResource(root=str(tmp_path / "models")),
    )
    home = make_home(tmp_path)
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        dimensions = defs.resolve_job_def(DIMENSIONS_JOB).execute_in_process(
            instance=instance, run_config=VERBOSE
        )
        assert dimensions.success
        assert run_daily(defs, instance).success
        texts = instance_texts(instance)
    # The run really went through the password-carrying URL into that database.
    store = TableStore(url)
    try:
        assert store.row_count("orders_clean") > 0 and store.row_count("customers_clean") > 0
    finally:
        store.dispose()
    materializations = [t for t in texts if "ASSET_MATERIALIZATION" in t]
    checks = [t for t in texts if "ASSET_CHECK_EVALUATION" in t]
    assert materializations and checks
    captured = capfd.readouterr()
    assert "orders_clean" in captured.out + captured.err  # the DEBUG logs were captured
    assert_nowhere(canary, [*texts, captured.out, captured.err], folder_bytes(home))


def test_unreachable_warehouse_fails_without_showing_its_password(monkeypatch, capfd, tmp_path):
    canary = make_canary()
    monkeypatch.setenv(WAREHOUSE_URL_ENV, f"postgresql://owner:{canary}@{CLOSED_PORT_HOST}/warehouse")
    monkeypatch.setattr("data_platform.tablestore.store.CONNECT_FIRST_DELAY_S", 0.01)
    defs = build_definitions(source=SourceResource(synthetic_incidents=False))
    home = make_home(tmp_path)
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        job = defs.resolve_job_def(DIMENSIONS_JOB)
        failed = job.execute_in_process(instance=instance, run_config=VERBOSE, raise_on_error=False)
        assert not failed.success
        with pytest.raises(Exception) as raised:
            job.execute_in_process(instance=instance, run_config=VERBOSE)
        texts = instance_texts(instance)
    rendered = "".join(traceback.format_exception(raised.value))
    # The failure names the warehouse (masked) so that the operator can still act on it.
    assert "cannot connect to the warehouse" in rendered and "***" in rendered
    failures = [t for t in texts if "STEP_FAILURE" in t]
    assert failures and any("cannot connect to the warehouse" in t for t in failures)
    captured = capfd.readouterr()
    assert_nowhere(canary, [*texts, rendered, captured.out, captured.err], folder_bytes(home))


def test_unreachable_sql_source_fails_without_showing_its_password(monkeypatch, capfd, tmp_path):
    canary = make_canary()
    monkeypatch.setenv("DATA_PLATFORM_ORDERS", f"sql:postgresql://user:{canary}@{CLOSED_PORT_HOST}/db::orders")
    monkeypatch.delenv("DATA_PLATFORM_START_DATE", raising=False)
    warehouse = tmp_path / "warehouse.db"
    monkeypatch.setenv(WAREHOUSE_URL_ENV, f"sqlite:///{warehouse}")
    source = source_resource_from_env().model_copy(update={"synthetic_incidents": False})
    defs = build_definitions(source=source)
    home = make_home(tmp_path)
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        assert defs.resolve_job_def(DIMENSIONS_JOB).execute_in_process(
            instance=instance, run_config=VERBOSE
        ).success
        daily = run_daily(defs, instance)
        assert not daily.success
        failed_steps = {e.step_key for e in daily.all_events if e.is_step_failure}
        assert any("orders" in step for step in failed_steps)
        texts = instance_texts(instance)
    assert any("query failed" in t and "***" in t for t in texts if "STEP_FAILURE" in t)
    captured = capfd.readouterr()
    files = folder_bytes(home) | {"warehouse": warehouse.read_bytes()}
    assert_nowhere(canary, [*texts, captured.out, captured.err], files)


def test_source_specs_are_shown_without_their_password(tmp_path):
    canary = make_canary()
    url = f"postgresql://user:{canary}@{CLOSED_PORT_HOST}/db"
    messages = [str(parse_spec(f"sql:{url}::orders"))]
    for spec, entity, day in [
        (f"sql:{url}", "orders", None),  # no target: a malformed spec
        (f"sql:{url}::orders", "orders", None),  # an event entity without its day
        (f"sql:{url}::orders", "no_such_entity", None),
        (f"sql:{url}::orders", "customers", None),  # the closed port
        (f"sql:{url}::x; DROP TABLE orders", "customers", None),
    ]:
        with pytest.raises(SourceError) as raised:
            fetch(spec, entity, day)
        messages.append("".join(traceback.format_exception(raised.value)))
    assert all("***" in m for m in messages)
    assert not [m for m in messages if canary in m]


def test_the_search_finds_a_planted_password(tmp_path):
    canary = make_canary()
    with pytest.raises(AssertionError, match="password found in"):
        assert_nowhere(canary, ["clean", f"user:{canary}@host"], {})
    (tmp_path / "events.db").write_bytes(b"\x00prefix" + canary.encode() + b"\x00")
    with pytest.raises(AssertionError, match="password found in files"):
        assert_nowhere(canary, ["clean"], folder_bytes(tmp_path))


def test_the_unauthenticated_webserver_binds_loopback_by_default(monkeypatch):
    from data_platform import cli

    bound = []
    monkeypatch.setattr(cli, "run_dev", lambda host, port: bound.append((host, port)) or 0)
    assert cli.main(["dev"]) == 0 and cli.main(["ui"]) == 0
    assert bound == [("127.0.0.1", 3000)] * 2


def test_compose_publishes_ports_on_loopback_only():
    import yaml

    compose = yaml.safe_load((Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text())
    published = [
        (name, str(port)) for name, service in compose["services"].items() for port in service.get("ports", [])
    ]
    assert ("webserver", "127.0.0.1:3000:3000") in published
    assert all(port.startswith("127.0.0.1:") for _, port in published), published
