"""A Dagster run whose warehouse connection drops mid-run still succeeds, with no duplicate rows.

The warehouse is reached through a loopback proxy in front of the real PostgreSQL. The first
time the run fetches orders, the proxy drops every connection and refuses new ones for longer
than the store's connect retries: the `ingest_orders` step fails atomically, its RetryPolicy runs
it again after the backoff, and the partition lands exactly once.
"""

import importlib.util
from datetime import date
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from data_platform.definitions import build_definitions
from data_platform.jobs import DAILY_JOB
from data_platform.resources.source import SourceResource
from data_platform.resources.warehouse import TableStore, WarehouseResource
from data_platform.sources import synthetic

_spec = importlib.util.spec_from_file_location("crash_helpers", Path(__file__).with_name("test_crash.py"))
crash_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(crash_helpers)

PROXIES: dict[int, object] = {}
OUTAGE_S = 3.0  # longer than the store's connect retries (about 1.75 s of waiting)


class OutageOnFirstOrdersFetch(SourceResource):
    proxy_port: int
    marker: str

    def fetch(self, entity, day=None):
        if entity == "orders" and not Path(self.marker).exists():
            Path(self.marker).touch()
            PROXIES[self.proxy_port].cut(OUTAGE_S)
        return super().fetch(entity, day)


def test_daily_run_survives_a_warehouse_outage(postgres_url, tmp_path):
    parsed = sa.make_url(postgres_url)
    proxy = crash_helpers.FlakyProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
    PROXIES[proxy.port] = proxy
    url = proxy.url(postgres_url)
    try:
        defs = build_definitions(
            warehouse=WarehouseResource(url=url),
            source=OutageOnFirstOrdersFetch(
                proxy_port=proxy.port, marker=str(tmp_path / "cut"), synthetic_incidents=False
            ),
        )
        with dg.instance_for_test() as instance:
            result = defs.resolve_job_def(DAILY_JOB).execute_in_process(
                instance=instance, partition_key="2025-03-03", raise_on_error=False
            )
        assert proxy.refused >= 1, "the outage never happened"
        assert result.success
        restarted = {e.step_key for e in result.all_events if e.event_type_value == "STEP_RESTARTED"}
        assert "ingest_orders" in restarted
        store = TableStore(postgres_url)
        try:
            raw = store.read("orders_raw", ["2025-03-03"])
            expected = synthetic.generate("orders", date(2025, 3, 3), incidents=False)
            assert len(raw) == len(expected)
            assert not raw.duplicated(["order_id", "line_no"]).any()
            assert store.row_count("orders_clean", "2025-03-03") == len(raw)
        finally:
            store.dispose()
    finally:
        PROXIES.pop(proxy.port, None)
        proxy.close()
