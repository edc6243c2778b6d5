"""The demo's runs are runs of the code location: `event_store.execute_code_location_run` on a
small code location, on Dagster's default SQLite storage and the demo's kept-open one. A Dagster
release that changes what it relies on (run origins, executing a stored run in process, the
partition tags, the events the demo's summary reads) fails here."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import dagster as dg
import pytest

from data_platform.checks.event_store import execute_code_location_run
from data_platform.cli import RunLog

LOCATION = "tiny_location"
CODE = '''
import os

import dagster as dg

daily = dg.DailyPartitionsDefinition(start_date="2024-01-01")


@dg.asset(partitions_def=daily)
def sales(context) -> dg.MaterializeResult:
    if context.partition_key == "2024-01-03":
        raise ValueError("the source is down")
    return dg.MaterializeResult(metadata={"dagster/row_count": 3, "pid": os.getpid()})


@dg.asset_check(asset=sales, blocking=True)
def sales_positive(context) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=context.partition_key != "2024-01-02")


@dg.asset(deps=[sales], partitions_def=daily)
def report() -> None:
    pass


defs = dg.Definitions(
    assets=[sales, report],
    asset_checks=[sales_positive],
    jobs=[dg.define_asset_job("sales_job", partitions_def=daily)],
)
'''


@pytest.fixture
def code_location(tmp_path: Path, monkeypatch) -> tuple[str, dg.Definitions]:
    """(module name, its Definitions) of a code location importable by module name."""
    module = f"code_location_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(CODE)
    monkeypatch.syspath_prepend(str(tmp_path))
    defs = __import__(module).defs
    return module, defs


@pytest.fixture(params=["sqlite", "kept_open"])
def instance(request, tmp_path: Path):
    if request.param == "sqlite":
        (tmp_path / "sqlite_home").mkdir()
        opened = dg.DagsterInstance.local_temp(tempdir=str(tmp_path / "sqlite_home"))
    else:
        opened = dg.DagsterInstance.from_config(str(request.getfixturevalue("platform_home")))
    with opened:
        yield opened


def test_a_run_is_stored_as_a_run_of_the_code_location_and_executed_here(instance, code_location):
    module, defs = code_location
    log = RunLog()
    outcomes = {}
    for partition in ("2024-01-01", "2024-01-02", "2024-01-03"):
        result = execute_code_location_run(
            instance, "sales_job", location_name=LOCATION, module_name=module,
            partition_key=partition, run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
        )
        log.record(partition, result, 0.0, partition)
        outcomes[partition] = result

    ok = outcomes["2024-01-01"]
    assert ok.success
    # The steps ran in this process, not in one subprocess each (Dagster's default executor).
    [materialization, _] = ok.get_asset_materialization_events()
    assert materialization.materialization.metadata["pid"].value == os.getpid()

    # The summary reads these runs as it read `execute_in_process`'s: a failing blocking check
    # stops the run without breaking it; an error raised in a step breaks it.
    assert not outcomes["2024-01-02"].success and not outcomes["2024-01-03"].success
    assert log.failed_checks == [("2024-01-02", "sales", "sales_positive")]
    assert log.broken_runs == ["2024-01-03"]
    assert log.materializations == 3 and log.rows["sales"]["rows"] == 6

    job = defs.resolve_job_def("sales_job")
    for partition, result in outcomes.items():
        run = instance.get_run_by_id(result.run_id)
        origin = run.remote_job_origin
        assert origin is not None
        assert origin.location_name == LOCATION
        assert origin.repository_origin.repository_name == defs.get_repository_def().name
        assert origin.job_name == run.job_name == "sales_job"
        # The snapshot the code location serves (a run launched in the UI stores the same one).
        assert run.job_snapshot_id == job.get_job_snapshot_id()
        assert run.job_code_origin.repository_origin.code_pointer.module == module
        assert run.tags["dagster/partition"] == partition
        assert run.tags["dagster/code_location"] == LOCATION
        assert run.status == (dg.DagsterRunStatus.SUCCESS if result.success else dg.DagsterRunStatus.FAILURE)
    # The label by which the UI lists a location's runs under their job.
    label = {".dagster/repository": f"{defs.get_repository_def().name}@{LOCATION}"}
    listed = instance.get_runs(filters=dg.RunsFilter(job_name="sales_job", tags=label))
    assert {r.run_id for r in listed} == {r.run_id for r in outcomes.values()}
