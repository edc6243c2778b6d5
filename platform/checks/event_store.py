"""The one door of the Dagster layer to Dagster's storage: materializations and check history,
and the runs that `data-platform demo` stores as runs of the code location.

The checks learn from each asset's own past and the alert sensor reads every check evaluation, so
both depend on how Dagster stores events. Every such read goes through the functions here, each
named for what its callers need, so that a Dagster release that changes storage breaks this
module (and its contract test on SQLite, the kept-open SQLite, PostgreSQL and the in-memory
storage: tests/checks/test_event_store.py) rather than the checks or the alerts.

Dagster APIs used, and how public each is (Dagster 1.13):
- `DagsterInstance.fetch_materializations`, `get_latest_materialization_event`: documented
  (`@public`).
- `DagsterInstance.get_latest_storage_id_by_partition`, `get_materialized_partitions`: plain
  instance methods, not underscored nor deprecated, but not documented. The documented route
  (`fetch_materializations` by partition) deserializes every stored materialization of the
  window, which is the cost the checks' history reads exist to avoid.
- `EventLogStorage.get_asset_check_execution_history`, `get_latest_asset_check_execution_by_key`
  on `DagsterInstance.event_log_storage`: methods of the documented storage interface that every
  storage implements (SQL storages in one index table). Dagster has no instance-level read of
  check evaluations; the cross-run event query (`DagsterInstance.get_event_records`) is
  deprecated and refused by the default SQLite storage. The records they return are read by
  field (`id`, `key`, `run_id`, `partition`, `create_timestamp`, `event`) into `CheckExecution`
  here, so that no caller depends on their type.
- `RepositoryDefinition.asset_checks_defs_by_key`, `assets_defs_by_key` and
  `AssetsDefinition.check_keys` (documented) to list a code location's checks.

Runs of the code location (`execute_code_location_run`): the demo executes its runs in its own
process, yet the UI places a run on the Overview timeline and under its code location by the
run's remote job origin (location and repository names), which only runs launched through a
workspace carry; `execute_in_process` stores none. Dagster exports no way to create a run with
an origin and execute it in process, so this is the one place that imports `dagster._`, lazily
(only the demo pays for it): `ReconstructableRepository` (the job as the code location loads it:
same job snapshot, and the run's code origin), `location_origin_from_module_name` (the origin the
workspace gives a `python_module` entry), `RemoteJobOrigin`/`RemoteRepositoryOrigin`,
`merge_run_tags` (the partition tags `execute_in_process` sets) and `execute_run` (the
execution of a stored run, as a run worker does it), with the documented
`DagsterInstance.create_run_for_job`. Its contract test (tests/cli/test_code_location_runs.py)
creates and executes runs of a small code location on Dagster's default SQLite storage and the
kept-open one and reads them back; tests/cli/test_demo_and_ui.py reads the demo's runs through
Dagster's GraphQL layer, as the UI does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import dagster as dg

# Fetch this many records per query when a caller wants them all.
_PAGE = 500


def materializations(
    instance: dg.DagsterInstance,
    key: dg.AssetKey,
    *,
    limit: int,
    partitions: Sequence[str] | None = None,
    before_storage_id: int | None = None,
    cursor: str | None = None,
    ascending: bool = False,
) -> dg.EventRecordsResult:
    """One page of the asset's materializations (of `partitions` if given), newest first by
    default; `result.cursor` continues after the page, `result.has_more` says whether to."""
    records_filter = dg.AssetRecordsFilter(
        asset_key=key,
        asset_partitions=list(partitions) if partitions else None,
        before_storage_id=before_storage_id,
    )
    return instance.fetch_materializations(
        records_filter, limit=limit, cursor=cursor, ascending=ascending
    )


def latest_materialization(
    instance: dg.DagsterInstance, key: dg.AssetKey, *, before_storage_id: int | None = None
) -> dg.EventLogRecord | None:
    """The asset's newest materialization (before `before_storage_id` if given), any partition."""
    records = materializations(instance, key, limit=1, before_storage_id=before_storage_id).records
    return records[0] if records else None


def latest_materialization_event(
    instance: dg.DagsterInstance, key: dg.AssetKey
) -> dg.EventLogEntry | None:
    """The newest materialization event of the asset, from the asset's own record."""
    return instance.get_latest_materialization_event(key)


def materializations_by_storage_id(
    instance: dg.DagsterInstance, key: dg.AssetKey, storage_ids: Iterable[int]
) -> list[dg.EventLogRecord]:
    """The asset's materializations with these storage ids, oldest first (unknown ids are left out)."""
    wanted = sorted(set(storage_ids))
    records: list[dg.EventLogRecord] = []
    for start in range(0, len(wanted), _PAGE):
        chunk = wanted[start : start + _PAGE]
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, storage_ids=chunk), limit=len(chunk), ascending=True
        )
        records.extend(page.records)
    return sorted(records, key=lambda r: r.storage_id)


def latest_storage_id_by_partition(
    instance: dg.DagsterInstance, key: dg.AssetKey, partitions: Iterable[str] | None = None
) -> dict[str, int]:
    """Partition key -> storage id of its latest materialization (only materialized partitions)."""
    wanted = set(partitions) if partitions is not None else None
    if wanted is not None and not wanted:
        return {}
    # Not documented, but one indexed query without reading any event (see the module docstring).
    latest = instance.get_latest_storage_id_by_partition(
        key, dg.DagsterEventType.ASSET_MATERIALIZATION, partitions=wanted
    )
    return dict(latest)


def materialized_partitions(instance: dg.DagsterInstance, key: dg.AssetKey) -> set[str]:
    """Every partition key of the asset with at least one materialization."""
    # Not documented; the documented alternative reads every materialization ever stored.
    return set(instance.get_materialized_partitions(key))


@dataclass(frozen=True)
class CheckExecution:
    """One execution of an asset check as stored: planned by a run, then evaluated.

    `id` orders the executions of every check (one index table, one sequence) by when they were
    planned or, for an evaluation without a plan (reported outside a run), written. A planned
    execution is updated in place when its evaluation arrives: same id, `evaluation` set.
    """

    id: int
    check_key: dg.AssetCheckKey
    run_id: str
    partition: str | None
    created_at: float
    evaluation: dg.AssetCheckEvaluation | None = None
    evaluated_at: float | None = None

    @property
    def is_evaluated(self) -> bool:
        return self.evaluation is not None


def _execution(record) -> CheckExecution:
    event = record.event
    dagster_event = event.dagster_event if event is not None else None
    data = dagster_event.event_specific_data if dagster_event is not None else None
    evaluated = isinstance(data, dg.AssetCheckEvaluation)
    return CheckExecution(
        id=int(record.id),
        check_key=record.key,
        run_id=record.run_id or "",
        partition=record.partition,
        created_at=float(record.create_timestamp),
        evaluation=data if evaluated else None,
        evaluated_at=float(event.timestamp) if evaluated else None,
    )


def check_history_page(
    instance: dg.DagsterInstance,
    check_key: dg.AssetCheckKey,
    *,
    limit: int,
    before_id: int | None = None,
) -> list[CheckExecution]:
    """One page of the check's executions, newest first, with ids below `before_id` if given.
    Continue with `before_id=page[-1].id`."""
    records = instance.event_log_storage.get_asset_check_execution_history(
        check_key, limit=limit, cursor=before_id
    )
    return [_execution(r) for r in records]


def latest_check_execution_ids(
    instance: dg.DagsterInstance, check_keys: Iterable[dg.AssetCheckKey]
) -> dict[dg.AssetCheckKey, int]:
    """The id of each check's newest execution (checks never executed are left out)."""
    keys = list(dict.fromkeys(check_keys))
    if not keys:
        return {}
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    wanted = set(keys)
    return {key: int(record.id) for key, record in latest.items() if key in wanted}


def check_executions_after(
    instance: dg.DagsterInstance,
    check_key: dg.AssetCheckKey,
    after_id: int,
    *,
    newest_id: int | None = None,
    limit: int = _PAGE,
) -> list[CheckExecution]:
    """The check's executions with ids above `after_id`, oldest first, at most `limit`.

    Dagster pages check history newest first only. Ids are shared by all checks, so the read
    looks at a window of ids just above `after_id`, widened until it holds some of this check's
    executions: a check with a long backlog costs `limit` rows per call, not its whole history.
    """
    if newest_id is None:
        newest = check_history_page(instance, check_key, limit=1)
        newest_id = newest[0].id if newest else None
    if newest_id is None or newest_id <= after_id:
        return []
    span = max(limit, 1)
    while True:
        top = min(after_id + span, newest_id)
        found: list[CheckExecution] = []
        before = top + 1
        while True:
            page = check_history_page(instance, check_key, limit=limit, before_id=before)
            newer = [e for e in page if e.id > after_id]
            found.extend(newer)
            if len(newer) < len(page) or len(page) < limit:
                break
            before = page[-1].id
        if found or top >= newest_id:
            return sorted(found, key=lambda e: e.id)[:limit]
        span *= 4


def checks_of(definitions: dg.RepositoryDefinition | None) -> list[dg.AssetCheckKey]:
    """Every asset check the code location defines (standalone checks and checks of assets)."""
    if definitions is None:
        return []
    keys = set(definitions.asset_checks_defs_by_key)
    for assets_def in definitions.assets_defs_by_key.values():
        keys.update(assets_def.check_keys)
    return sorted(keys, key=lambda k: (k.asset_key.to_user_string(), k.name))


def execute_code_location_run(
    instance: dg.DagsterInstance,
    job_name: str,
    *,
    location_name: str,
    module_name: str,
    attribute: str = "defs",
    partition_key: str | None = None,
    run_config: Mapping[str, object] | None = None,
    tags: Mapping[str, str] | None = None,
) -> dg.JobExecutionResult:
    """Create a run of `job_name` of the code location `location_name` (the Definitions
    `attribute` of `module_name`, as a workspace's `python_module` entry loads it) and execute it
    in this process; the result reads as `execute_in_process`'s (events, success).

    The stored run is what the webserver stores for a run it launches: the location's and
    repository's names in its origin (hence its `dagster/code_location` and `.dagster/repository`
    tags), the job's snapshot as the location serves it, the code origin a run worker loads it
    from, the partition's tags. Steps run in this process when the job's executor offers that
    choice in run config (Dagster's default executor); a job bound to another executor (Celery)
    sends them there, as any run of it does.
    """
    from dagster._core.definitions.reconstruct import ReconstructableRepository
    from dagster._core.execution.api import execute_run
    from dagster._core.execution.execute_in_process import merge_run_tags
    from dagster._core.remote_origin import RemoteJobOrigin, RemoteRepositoryOrigin
    from dagster._core.workspace.load import location_origin_from_module_name

    repository = ReconstructableRepository.for_module(module_name, attribute)
    job = repository.get_reconstructable_job(job_name)
    job_def = job.get_definition()
    config = dict(run_config or {})
    if job_def.executor_def is dg.multi_or_in_process_executor:
        config["execution"] = {"config": {"in_process": {}}}
    location = location_origin_from_module_name(module_name, None, None, location_name)
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(location, repository.get_definition().name), job_name)
    run = instance.create_run_for_job(
        job_def=job_def,
        run_config=config,
        tags=merge_run_tags(job_def, partition_key, tags, None, instance, config),
        remote_job_origin=origin,
        job_code_origin=job.get_python_origin(),
    )
    return execute_run(job, run, instance, raise_on_error=False)
