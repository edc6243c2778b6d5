"""What the warehouse says about a stream over a window: for the Dagster asset and its check.

Metadata keys of the `stream_metrics` asset (numbers, so the UI plots them run after run):
`stream/intervals`, `stream/keys`, `stream/events`, `stream/failing_scores`, `stream/alerts`,
`stream/unacknowledged_alerts`, `stream/late_events`, `stream/rejected_events`,
`stream/seconds_since_last_interval` (wall time since the end of the newest stored interval).
"""

from __future__ import annotations

import time

import sqlalchemy as sa

from data_platform.streaming import store

KEYS = ("stream/intervals", "stream/keys", "stream/events", "stream/failing_scores", "stream/alerts",
        "stream/unacknowledged_alerts", "stream/late_events", "stream/rejected_events",
        "stream/seconds_since_last_interval")


def _ready(engine: sa.Engine) -> bool:
    return sa.inspect(engine).has_table(store.scores.name)


def summarize(engine: sa.Engine, stream: str, since: float) -> dict:
    """The KEYS above plus `rows` (score rows in the window) and `latest` (the newest interval's
    rows: key, metric, value, score, kind)."""
    summary = dict.fromkeys(KEYS, 0)
    summary.update(rows=0, latest=[])
    summary["stream/seconds_since_last_interval"] = None
    if not _ready(engine):
        return summary
    s, a, c = store.scores.c, store.alerts.c, store.consumers.c
    in_window = (s.stream == stream) & (s.interval_start >= since)
    with engine.connect() as conn:
        rows, intervals, keys, failing, last = conn.execute(sa.select(
            sa.func.count(), sa.func.count(sa.distinct(s.interval_start)), sa.func.count(sa.distinct(s.key)),
            sa.func.coalesce(sa.func.sum(sa.case((s.failing, 1), else_=0)), 0), sa.func.max(s.interval_end),
        ).where(in_window)).one()
        events = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(s.value), 0))
                              .where(in_window & (s.metric == "count"))).scalar()
        alerts_in_window = (a.stream == stream) & (a.interval_start >= since) & (a.kind != "recovered")
        alerts = conn.execute(sa.select(sa.func.count()).where(alerts_in_window)).scalar()
        open_ = conn.execute(sa.select(sa.func.count()).where(alerts_in_window & a.acknowledged_at.is_(None))).scalar()
        counts = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(c.late_events), 0),
                                        sa.func.coalesce(sa.func.sum(c.rejected_events), 0))
                              .where(c.stream == stream)).one()
        latest = []
        if last is not None:
            latest = [dict(r) for r in conn.execute(
                sa.select(s.key, s.metric, s.value, s.score, s.kind)
                .where((s.stream == stream) & (s.interval_end == last)).order_by(s.key, s.metric)).mappings()]
    summary.update({
        "rows": rows, "latest": latest, "stream/intervals": intervals, "stream/keys": keys,
        "stream/events": int(events), "stream/failing_scores": int(failing), "stream/alerts": alerts,
        "stream/unacknowledged_alerts": open_, "stream/late_events": int(counts[0]),
        "stream/rejected_events": int(counts[1]),
        "stream/seconds_since_last_interval": None if last is None else max(0.0, time.time() - last),
    })
    return summary


def unacknowledged_alerts(engine: sa.Engine, stream: str, since: float) -> list[dict]:
    """Alerts (not recoveries) of intervals since `since` that nobody has acknowledged."""
    if not _ready(engine):
        return []
    a = store.alerts.c
    query = (sa.select(a.alert_key, a.title, a.interval_start, a.sent_at)
             .where((a.stream == stream) & (a.interval_start >= since) & (a.kind != "recovered")
                    & a.acknowledged_at.is_(None)).order_by(a.interval_start))
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]
