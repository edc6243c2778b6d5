"""The door to Dagster's storage (`data_platform.checks.event_store`) on every storage the platform
runs on: Dagster's default SQLite, the kept-open SQLite of dagster.yaml, PostgreSQL and the
in-memory instance. A Dagster release that changes what these reads return fails here."""

from __future__ import annotations

import ast
import warnings
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from data_platform.checks import event_store
from data_platform.jobs.alerts import build_check_failure_sensor, load_cursor, to_evaluation

REPO = Path(__file__).resolve().parents[2]
# The only modules of the Dagster layer allowed to import Dagster's internals (`dagster._...`).
INTERNALS_ALLOWED = {"platform/checks/event_store.py", "platform/resources/instance_storage.py"}

daily = dg.DailyPartitionsDefinition(start_date="2024-01-01")
SALES = dg.AssetKey("sales")
CHECK = dg.AssetCheckKey(SALES, "sales_positive")


@dg.asset(partitions_def=daily)
def sales(context) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"dagster/row_count": len(context.run.run_id)})


@dg.asset_check(asset=sales, name="sales_positive")
def sales_positive(context) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=context.partition_key != "2024-01-02")


with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)  # partitioned checks are a preview in 1.13

    @dg.asset_check(asset=sales, name="sales_recorded", partitions_def=daily)
    def sales_recorded(context) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=context.partition_key != "2024-01-02")


@pytest.fixture(params=["sqlite", "kept_open", "postgres", "ephemeral"])
def instance(request, tmp_path: Path):
    if request.param == "sqlite":
        opened = dg.DagsterInstance.local_temp(tempdir=str(tmp_path))
    elif request.param == "kept_open":
        opened = dg.DagsterInstance.from_config(str(request.getfixturevalue("platform_home")))
    elif request.param == "postgres":
        # SQLAlchemy 2.1 maps a bare postgresql:// URL to psycopg 3; the platform installs psycopg2.
        url = sa.make_url(request.getfixturevalue("new_postgres_database")()).set(
            drivername="postgresql+psycopg2"
        ).render_as_string(hide_password=False)
        (tmp_path / "dagster.yaml").write_text(f"storage:\n  postgres:\n    postgres_url: {url}\n")
        opened = dg.DagsterInstance.from_config(str(tmp_path))
    else:
        opened = dg.DagsterInstance.ephemeral()
    with opened:
        yield opened


def _materialize(instance: dg.DagsterInstance, partition: str) -> str:
    result = dg.materialize([sales, sales_positive], instance=instance, partition_key=partition)
    return result.run_id


def test_every_read_on_every_storage(instance):
    runs = [_materialize(instance, p) for p in ("2024-01-01", "2024-01-02", "2024-01-03", "2024-01-02")]
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=SALES, check_name=CHECK.name, passed=False, partition="2024-01-03"
        )
    )

    newest_first = event_store.materializations(instance, SALES, limit=10)
    ids = [r.storage_id for r in newest_first.records]
    assert len(ids) == 4 and ids == sorted(ids, reverse=True)
    assert [r.run_id for r in newest_first.records] == runs[::-1]
    oldest_first = event_store.materializations(instance, SALES, limit=10, ascending=True)
    assert [r.storage_id for r in oldest_first.records] == ids[::-1]
    paged, cursor, has_more = [], None, True
    while has_more:
        page = event_store.materializations(instance, SALES, limit=3, cursor=cursor)
        paged += [r.storage_id for r in page.records]
        cursor, has_more = page.cursor, page.has_more
    assert paged == ids
    second = event_store.materializations(instance, SALES, limit=10, partitions=["2024-01-02"])
    assert [r.storage_id for r in second.records] == [ids[0], ids[2]]
    assert [r.storage_id for r in event_store.materializations(
        instance, SALES, limit=10, before_storage_id=ids[1]
    ).records] == ids[2:]

    assert event_store.latest_materialization(instance, SALES).storage_id == ids[0]
    assert event_store.latest_materialization(instance, SALES, before_storage_id=ids[0]).storage_id == ids[1]
    assert event_store.latest_materialization(instance, dg.AssetKey("nothing")) is None
    event = event_store.latest_materialization_event(instance, SALES)
    assert event.run_id == runs[-1] and event.asset_materialization.partition == "2024-01-02"

    by_id = event_store.materializations_by_storage_id(instance, SALES, [ids[0], ids[3], 10**9])
    assert [r.storage_id for r in by_id] == [ids[3], ids[0]]
    assert event_store.latest_storage_id_by_partition(instance, SALES) == {
        "2024-01-01": ids[3],
        "2024-01-02": ids[0],
        "2024-01-03": ids[1],
    }
    assert event_store.latest_storage_id_by_partition(instance, SALES, ["2024-01-02", "2024-02-01"]) == {
        "2024-01-02": ids[0]
    }
    assert event_store.latest_storage_id_by_partition(instance, SALES, []) == {}
    assert event_store.materialized_partitions(instance, SALES) == {
        "2024-01-01",
        "2024-01-02",
        "2024-01-03",
    }

    history = event_store.check_history_page(instance, CHECK, limit=20)
    assert [e.id for e in history] == sorted((e.id for e in history), reverse=True)
    runless, *in_runs = history
    assert (runless.run_id, runless.partition, runless.evaluation.passed) == ("", "2024-01-03", False)
    # Each run plans the check for its partition; the evaluation (without a partition: the check
    # does not name one) is stored beside the plan, which stays planned.
    planned = [e for e in in_runs if not e.is_evaluated]
    evaluated = [e for e in in_runs if e.is_evaluated]
    assert [(e.run_id, e.partition) for e in planned] == list(
        zip(runs[::-1], ["2024-01-02", "2024-01-03", "2024-01-02", "2024-01-01"], strict=True)
    )
    assert [e.run_id for e in evaluated] == runs[::-1]
    assert [e.evaluation.passed for e in evaluated] == [False, True, False, True]
    # created_at comes from the database's clock, to the second on SQLite.
    assert all(e.evaluated_at >= e.created_at - 1.0 for e in evaluated + [runless])
    older = event_store.check_history_page(instance, CHECK, limit=2, before_id=history[1].id)
    assert [e.id for e in older] == [history[2].id, history[3].id]

    assert event_store.latest_check_execution_ids(instance, [CHECK, dg.AssetCheckKey(SALES, "none")]) == {
        CHECK: runless.id
    }
    every = event_store.check_executions_after(instance, CHECK, 0)
    assert [e.id for e in every] == [e.id for e in reversed(history)]
    assert [e.id for e in event_store.check_executions_after(instance, CHECK, history[2].id)] == [
        history[1].id,
        runless.id,
    ]
    # A page of one at a time walks the same executions in the same order.
    walked, after = [], 0
    while batch := event_store.check_executions_after(instance, CHECK, after, limit=1):
        walked.append(batch[0].id)
        after = batch[0].id
    assert walked == [e.id for e in every]
    assert event_store.check_executions_after(instance, CHECK, runless.id) == []


def test_a_partitioned_check_is_one_execution_per_run_and_partition(instance):
    recorded = dg.AssetCheckKey(SALES, "sales_recorded")
    runs = [
        dg.materialize([sales, sales_recorded], instance=instance, partition_key=p).run_id
        for p in ("2024-01-01", "2024-01-02", "2024-01-01")
    ]
    history = event_store.check_history_page(instance, recorded, limit=20)
    # The evaluation completes the run's plan of its partition: nothing is left planned.
    assert [(e.run_id, e.partition, e.is_evaluated) for e in history] == list(
        zip(runs[::-1], ["2024-01-01", "2024-01-02", "2024-01-01"], [True] * 3, strict=True)
    )
    assert [e.evaluation.partition for e in history] == ["2024-01-01", "2024-01-02", "2024-01-01"]
    assert [e.evaluation.passed for e in history] == [True, False, True]
    assert [e.id for e in event_store.check_executions_after(instance, recorded, 0)] == [
        e.id for e in reversed(history)
    ]
    # The alerts read the partition from the execution, with no metadata naming it.
    assert [to_evaluation(e).partition for e in history] == ["2024-01-01", "2024-01-02", "2024-01-01"]
    sensor = build_check_failure_sensor(minimum_interval_seconds=1, reminder_interval=timedelta(0))
    defs = dg.Definitions(assets=[sales], asset_checks=[sales_recorded], sensors=[sensor])
    context = dg.build_sensor_context(instance=instance, cursor=None, definitions=defs)
    cursor = sensor(context).cursor
    dg.materialize([sales, sales_recorded], instance=instance, partition_key="2024-01-02")
    result = sensor(dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs))
    assert result.skip_reason.skip_message.startswith("read 1 evaluations, sent 1 alerts")
    assert load_cursor(result.cursor)["checks"]["sales:sales_recorded"].failing


def test_the_alert_sensor_sees_evaluations_reported_outside_a_run(instance):
    sensor = build_check_failure_sensor(minimum_interval_seconds=1, reminder_interval=timedelta(0))
    defs = dg.Definitions(assets=[sales], asset_checks=[sales_positive], sensors=[sensor])
    assert event_store.checks_of(defs.get_repository_def()) == [CHECK]

    def tick(cursor):
        result = sensor(dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs))
        return result.cursor, result.skip_reason.skip_message

    cursor, _ = tick(None)
    assert load_cursor(cursor)["read"] == {"sales:sales_positive": 0}
    _materialize(instance, "2024-01-01")
    cursor, message = tick(cursor)
    assert message.startswith("read 1 evaluations, sent 0 alerts")
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(asset_key=SALES, check_name=CHECK.name, passed=False)
    )
    cursor, message = tick(cursor)
    assert message.startswith("read 1 evaluations, sent 1 alerts")
    [newest] = event_store.check_history_page(instance, CHECK, limit=1)
    assert load_cursor(cursor)["read"] == {"sales:sales_positive": newest.id}
    cursor, message = tick(cursor)
    assert message.startswith("read 0 evaluations, sent 0 alerts")


def _dagster_internal_imports(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        if any(name == "dagster._" or name.startswith("dagster._") for name in names):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "dagster":
            if any(alias.name.startswith("_") for alias in node.names):
                lines.append(node.lineno)
    return lines


def test_only_the_door_and_the_instance_storage_import_dagster_internals():
    offenders = []
    for path in sorted((REPO / "platform").rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        if relative in INTERNALS_ALLOWED:
            continue
        offenders += [f"{relative}:{line}" for line in _dagster_internal_imports(path)]
    assert offenders == [], (
        "Dagster internals imported outside data_platform.checks.event_store and "
        f"data_platform.resources.instance_storage: {', '.join(offenders)}"
    )


def test_the_guard_sees_every_form_of_internal_import(tmp_path: Path):
    module = tmp_path / "module.py"
    module.write_text(
        "import dagster as dg\n"
        "import dagster._core.events\n"
        "from dagster._core.storage import sql\n"
        "from dagster import _check\n"
        "from dagster import AssetKey\n"
        "def f():\n"
        "    from dagster._serdes import serialize_value\n"
    )
    assert _dagster_internal_imports(module) == [2, 3, 4, 7]
