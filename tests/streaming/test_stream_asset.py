"""The Dagster view of the stream: the asset's health metadata and the alert check."""

import time

import dagster as dg

from data_platform.assets.streaming import no_unacknowledged_stream_alerts, stream_metrics
from data_platform.resources.warehouse import WarehouseResource
from data_platform.streaming import store
from data_platform.streaming.aggregate import ClosedInterval, KeyMetrics
from data_platform.streaming.scoring import Scorer


def test_the_asset_reports_the_stored_scores_and_the_check_fails_until_alerts_are_acknowledged(
        tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_PLATFORM_STREAM", "orders")
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = store.engine_for(url)
    warehouse = WarehouseResource(url=url)
    # Nothing stored yet: the asset says so and the check passes.
    empty = stream_metrics(context=dg.build_asset_context(), warehouse=warehouse)
    assert empty.metadata["dagster/row_count"] == 0 and empty.metadata["stream"] == "orders"
    assert no_unacknowledged_stream_alerts(warehouse=warehouse).passed

    scorer = Scorer("orders", 60.0)
    start = (time.time() // 60 - 30) * 60
    closed = [ClosedInterval(start + 60 * i, start + 60 * (i + 1),
                             [KeyMetrics("web", start + 60 * i, start + 60 * (i + 1), 10, 1, 90.0)], [])
              for i in range(3)]
    scores, detectors, _ = scorer.score(closed)
    store.take_ownership(engine, "orders", "metrics", "test")
    alert_row = {"alert_key": "orders@1", "stream": "orders", "interval_start": start, "interval_end": start + 60,
                 "kind": "new", "title": "WARN stream_metrics: web/count failed", "alert": "{}",
                 "created_at": time.time(), "sinks_done": "log", "sent_at": time.time(), "acknowledged_at": None}
    store.commit(engine, "orders", "metrics", 1,
                 store.Batch(start + 180, [], scores, detectors, [alert_row], [], late=2))

    metadata = stream_metrics(context=dg.build_asset_context(), warehouse=warehouse).metadata
    assert metadata["dagster/row_count"] == 9  # 3 intervals x 3 metrics
    assert metadata["stream/events"] == 30 and metadata["stream/keys"] == 1
    assert metadata["stream/late_events"] == 2 and metadata["stream/unacknowledged_alerts"] == 1
    assert "| web | count | 10.0 |" in metadata["latest_interval"].value
    check = no_unacknowledged_stream_alerts(warehouse=warehouse)
    assert not check.passed and "web/count failed" in check.metadata["alerts"].value
    assert store.acknowledge_alerts(engine, "orders") == 1
    assert no_unacknowledged_stream_alerts(warehouse=warehouse).passed
    engine.dispose()
