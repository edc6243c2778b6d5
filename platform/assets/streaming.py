"""The stream consumer's output in Dagster: the `stream_metrics` asset and its alert check.

The consumer (`data-platform stream`) writes the scores and alerts to the warehouse as events
arrive; materializing `stream_metrics` reads the last day of them for the stream named by
DATA_PLATFORM_STREAM (default `events`) and records its health as numeric metadata (keys in
data_platform.streaming.report). The check fails while the window holds alerts nobody has
acknowledged (`data-platform stream --ack-alerts`), so stream incidents show in the UI.
"""

import time

import dagster as dg

from data_platform.catalog import STREAMING
from data_platform.resources.warehouse import WarehouseResource
from data_platform.sources.db import make_engine
from data_platform.streaming import report
from data_platform.streaming.events import stream_from_env

WINDOW_SECONDS = 24 * 3600.0


def _last_day(warehouse: WarehouseResource, read):
    """The configured stream's name and ``read(engine, stream, since)`` over the last 24 hours."""
    stream = stream_from_env()
    engine = make_engine(warehouse.url)
    try:
        return stream, read(engine, stream, time.time() - WINDOW_SECONDS)
    finally:
        engine.dispose()


@dg.asset(group_name=STREAMING, kinds={"redis", "sql"})
def stream_metrics(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Scored metrics of the event stream (count, mean, null fraction per key and interval) over
    the last 24 hours, as the stream consumer stored them in `stream_scores`."""
    stream, summary = _last_day(warehouse, report.summarize)
    if not summary["rows"]:
        context.log.warning(f"no scores of stream {stream!r} in the last 24 hours: is `data-platform stream` running?")
    latest = "\n".join(f"| {r['key']} | {r['metric']} | {r['value']} | {r['score']:.2f} | {r['kind']} |"
                       for r in summary["latest"])
    metadata = {key: summary[key] for key in report.KEYS if summary[key] is not None}
    metadata.update({
        "stream": stream,
        "dagster/table_name": "stream_scores",
        "dagster/row_count": summary["rows"],
        "latest_interval": dg.MetadataValue.md(
            "| key | metric | value | score | kind |\n| --- | --- | ---: | ---: | --- |\n" + latest),
    })
    return dg.MaterializeResult(metadata=metadata)


@dg.asset_check(asset=stream_metrics, name="no_unacknowledged_alerts")
def no_unacknowledged_stream_alerts(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Fails while the last 24 hours hold stream alerts that nobody acknowledged."""
    stream, alerts = _last_day(warehouse, report.unacknowledged_alerts)
    lines = "\n".join(f"- {a['title']}" for a in alerts[-20:])
    return dg.AssetCheckResult(
        passed=not alerts,
        severity=dg.AssetCheckSeverity.WARN,
        description=(f"{len(alerts)} unacknowledged alerts of stream {stream!r} in the last 24 hours"
                     if alerts else f"no unacknowledged alerts of stream {stream!r}"),
        metadata={"unacknowledged_alerts": len(alerts),
                  "alerts": dg.MetadataValue.md(lines or "none"),
                  "acknowledge_with": "data-platform stream --ack-alerts"},
    )


STREAM_ASSETS = [stream_metrics]
STREAM_CHECKS = [no_unacknowledged_stream_alerts]
