"""The embedded instance storage that keeps event-log connections open, on real SQLite files."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from data_platform.resources.instance_storage import (
    KeepOpenSqliteEventLogStorage,
    KeepOpenSqliteStorage,
)

REPO_YAML = Path(__file__).resolve().parents[2] / "dagster.yaml"


@dg.asset
def numbers() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"dagster/row_count": 3})


@dg.asset_check(asset=numbers)
def numbers_have_rows(context) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@pytest.fixture
def home(platform_home: Path) -> Path:
    return platform_home


class ConnectCounter:
    """Counts the SQLite connections opened to event-log files (history/runs/*.db) while in use."""

    def __init__(self) -> None:
        self.count = 0

    def _on_connect(self, dbapi_conn, _record) -> None:
        if isinstance(dbapi_conn, sqlite3.Connection):
            path = dbapi_conn.execute("PRAGMA database_list").fetchone()[2]
            if Path(path).parent.name == "runs":
                self.count += 1

    def __enter__(self) -> ConnectCounter:
        sa.event.listen(sa.engine.Engine, "connect", self._on_connect)
        return self

    def __exit__(self, *exc) -> None:
        sa.event.remove(sa.engine.Engine, "connect", self._on_connect)


def _more(i: int) -> dg.AssetsDefinition:
    @dg.asset(name=f"more_{i}", deps=[numbers])
    def _asset() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"dagster/row_count": i})

    return _asset


MORE = [_more(i) for i in range(6)]


def _materialize(instance: dg.DagsterInstance, *extra) -> dg.ExecuteInProcessResult:
    result = dg.materialize([numbers, numbers_have_rows, *extra], instance=instance)
    assert result.success
    return result


def test_the_repository_instance_uses_it_and_records_runs_checks_and_history(home):
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.event_log_storage, KeepOpenSqliteEventLogStorage)
        runs = [_materialize(instance).run_id for _ in range(3)]
        records = instance.fetch_materializations(numbers.key, limit=10).records
        assert [r.run_id for r in records] == runs[::-1]
        assert records[0].asset_materialization.metadata["dagster/row_count"].value == 3
        evaluations = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(numbers.key, "numbers_have_rows"), limit=10
        )
        assert len(evaluations) == 3
        assert all(instance.get_run_by_id(r).status == dg.DagsterRunStatus.SUCCESS for r in runs)
    # Files are where Dagster's own SQLite storage puts them.
    assert (home / "history" / "runs" / "index.db").exists()
    assert (home / "history" / "runs.db").exists()


def test_a_run_opens_a_few_connections_instead_of_one_per_event(home, tmp_path):
    with dg.DagsterInstance.from_config(str(home)) as instance:
        _materialize(instance)  # schema set-up of the index shard is not what is measured
        with ConnectCounter() as kept_open:
            result = _materialize(instance, *MORE)
    events = len(result.all_events)

    plain = tmp_path / "plain_home"
    plain.mkdir()
    with dg.DagsterInstance.from_config(str(plain)) as instance:
        assert not isinstance(instance.event_log_storage, KeepOpenSqliteEventLogStorage)
        _materialize(instance)
        with ConnectCounter() as dagster_default:
            _materialize(instance, *MORE)

    assert events >= 30
    assert dagster_default.count > events  # at least one connection per stored event
    # Only the new run shard's schema set-up and its one kept connection: not one per event.
    assert kept_open.count < events / 2


def test_another_instance_on_the_same_home_sees_committed_events(home):
    # The webserver and the daemon read the files this process keeps open.
    with dg.DagsterInstance.from_config(str(home)) as writer:
        run_id = _materialize(writer).run_id
        assert writer.event_log_storage.open_shards  # still open
        with dg.DagsterInstance.from_config(str(home)) as reader:
            record = reader.fetch_materializations(numbers.key, limit=1).records[0]
            assert record.run_id == run_id
            assert len(reader.all_logs(run_id)) == len(writer.all_logs(run_id))


def test_only_the_most_recent_run_shards_stay_open(home):
    with (home / "dagster.yaml").open("a") as config:
        config.write("      max_open_shards: 2\n")  # under storage.custom.config
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = [_materialize(instance).run_id for _ in range(4)]
        assert set(instance.event_log_storage.open_shards) == {*runs[-2:], "index"}
        # A closed shard reopens on demand with its events intact.
        assert len(instance.all_logs(runs[0])) == len(instance.all_logs(runs[-1]))
        assert runs[0] in instance.event_log_storage.open_shards


def test_closing_at_exit_leaves_no_wal_files(home):
    with dg.DagsterInstance.from_config(str(home)) as instance:
        _materialize(instance)
        assert list((home / "history" / "runs").glob("*.db-wal"))
    assert not list((home / "history" / "runs").glob("*.db-wal"))


def test_wipe_and_a_deleted_run_file_are_survived(home):
    with dg.DagsterInstance.from_config(str(home)) as instance:
        first = _materialize(instance).run_id
        # Another process deletes the run's file while this one holds it open.
        runs_dir = home / "history" / "runs"
        for path in runs_dir.glob(f"{first}.db*"):
            path.unlink()
        instance.event_log_storage.store_event(
            dg.EventLogEntry(
                error_info=None, level="INFO", user_message="after delete", run_id=first,
                timestamp=1.0, step_key=None, job_name=None, dagster_event=None,
            )
        )
        assert [e.user_message for e in instance.all_logs(first)] == ["after delete"]

        instance.wipe()
        assert instance.fetch_materializations(numbers.key, limit=10).records == []
        after = _materialize(instance).run_id
        assert instance.fetch_materializations(numbers.key, limit=10).records[0].run_id == after


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_forked_child_opens_its_own_connections_and_leaves_the_parents_alone(home):
    with dg.DagsterInstance.from_config(str(home)) as instance:
        parent_run = _materialize(instance).run_id
        storage = instance.event_log_storage
        open_before = storage.open_shards
        assert open_before
        pid = os.fork()
        if pid == 0:  # child: write a run of its own and read the parent's, then exit hard
            code = 1
            try:
                assert storage.open_shards == []
                child_run = _materialize(instance).run_id
                records = instance.fetch_materializations(numbers.key, limit=10).records
                if {r.run_id for r in records} == {parent_run, child_run}:
                    code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # The parent's kept connections still work and see the child's run.
        assert storage.open_shards == open_before
        third = _materialize(instance).run_id
        records = instance.fetch_materializations(numbers.key, limit=10).records
        assert len(records) == 3 and records[0].run_id == third


def test_config_is_checked():
    with pytest.raises(ValueError, match="max_open_shards"):
        KeepOpenSqliteEventLogStorage("unused", max_open_shards=0)
    assert set(KeepOpenSqliteStorage.config_type()) == {"base_dir", "max_open_shards"}


def test_the_cli_instance_opts_in_and_the_repository_yaml_works_on_stock_dagster(tmp_path, monkeypatch):
    # `data-platform demo` writes its own dagster.yaml: the repository's settings plus the storage.
    from data_platform.cli import ensure_dagster_home

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    home = ensure_dagster_home()
    written = yaml.safe_load((home / "dagster.yaml").read_text())
    repo = yaml.safe_load(REPO_YAML.read_text())
    assert "storage" not in repo and {k: v for k, v in written.items() if k != "storage"} == repo
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.event_log_storage, KeepOpenSqliteEventLogStorage)
    # `dagster dev` in the repository root, with no DAGSTER_HOME, configures its temporary
    # instance with the repository's dagster.yaml: it needs no environment, on Dagster's storage.
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    temp = tmp_path / "temporary_instance"
    temp.mkdir()
    shutil.copyfile(REPO_YAML, temp / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(temp)) as instance:
        assert not isinstance(instance.event_log_storage, KeepOpenSqliteEventLogStorage)
        assert instance.get_runs() == []
