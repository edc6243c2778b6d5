"""A transient failure inside an ingestion step is retried; the partition lands exactly once."""

from pathlib import Path

import dagster as dg

from data_platform.definitions import build_definitions
from data_platform.jobs import DAILY_JOB
from data_platform.resources.source import SourceResource
from data_platform.resources.warehouse import TableStore, WarehouseResource


class FlakyOnceSource(SourceResource):
    """Fails the first orders fetch (as a dropped database connection would), then recovers."""

    marker: str

    def fetch(self, entity, day=None):
        if entity == "orders" and not Path(self.marker).exists():
            Path(self.marker).touch()
            raise ConnectionError("connection to the source was lost")
        return super().fetch(entity, day)


def test_ingestion_step_is_retried_after_a_transient_error(tmp_path):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    defs = build_definitions(
        warehouse=WarehouseResource(url=url),
        source=FlakyOnceSource(marker=str(tmp_path / "failed-once"), synthetic_incidents=False),
    )
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(DAILY_JOB).execute_in_process(
            instance=instance, partition_key="2025-03-03", raise_on_error=False
        )
    assert result.success
    restarts = [e for e in result.all_events if e.event_type_value == "STEP_RESTARTED"]
    assert [e.step_key for e in restarts] == ["ingest_orders"]
    store = TableStore(url)
    try:
        raw = store.read("orders_raw", ["2025-03-03"])
        assert len(raw) > 0 and not raw.duplicated().any()
    finally:
        store.dispose()
