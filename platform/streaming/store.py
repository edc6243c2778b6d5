"""The consumer's warehouse tables, and the one transaction that makes a batch of intervals final.

- ``stream_scores``: one row per (stream, key, metric, interval start): the value and its verdict.
- ``stream_detectors``: per (stream, key, metric) the detector's state and its alert state.
- ``stream_alerts``: one row per alert message (unique key), with which sinks have it and when
  it was acknowledged by a person.
- ``stream_consumers``: per (stream, group) the owner's epoch (a fencing token), the end of the
  last closed interval, the entry ids the last commit made final, late and rejected counts.
- ``stream_rejects``: entries that are not events, with the reason.

Everything a closed batch changes is written in ``commit`` under the owner's epoch: a consumer
that lost its lease to another cannot commit any more (its update matches no row).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from data_platform.sources.db import make_engine

metadata = sa.MetaData()
_name = sa.String(200)

scores = sa.Table(
    "stream_scores", metadata,
    sa.Column("stream", _name, primary_key=True),
    sa.Column("key", _name, primary_key=True),
    sa.Column("metric", sa.String(40), primary_key=True),
    sa.Column("interval_start", sa.Float, primary_key=True),
    sa.Column("interval_end", sa.Float, nullable=False),
    sa.Column("value", sa.Float),  # null: undefined (the mean of an interval without values)
    sa.Column("events", sa.Integer, nullable=False),  # the key's events in the interval
    sa.Column("score", sa.Float, nullable=False),  # 1.0 is the alert line
    sa.Column("failing", sa.Boolean, nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),  # spike, shift, normal
    sa.Column("expected", sa.Float),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("stored_at", sa.Float, nullable=False),
)
detectors = sa.Table(
    "stream_detectors", metadata,
    sa.Column("stream", _name, primary_key=True),
    sa.Column("key", _name, primary_key=True),
    sa.Column("metric", sa.String(40), primary_key=True),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("check_state", sa.Text, nullable=False),
    sa.Column("passes", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)
alerts = sa.Table(
    "stream_alerts", metadata,
    sa.Column("alert_key", sa.String(300), primary_key=True),
    sa.Column("stream", _name, nullable=False, index=True),
    sa.Column("interval_start", sa.Float, nullable=False),
    sa.Column("interval_end", sa.Float, nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),  # new, reminder, recovered
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("alert", sa.Text, nullable=False),  # the Alert as JSON (scoring.alert_to_json)
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("sinks_done", sa.Text, nullable=False, default=""),
    sa.Column("sent_at", sa.Float),
    sa.Column("acknowledged_at", sa.Float),
)
consumers = sa.Table(
    "stream_consumers", metadata,
    sa.Column("stream", _name, primary_key=True),
    sa.Column("group_name", _name, primary_key=True),
    sa.Column("owner", _name, nullable=False),
    sa.Column("epoch", sa.Integer, nullable=False),
    sa.Column("closed_through", sa.Float),
    sa.Column("last_commit_ids", sa.Text, nullable=False, default=""),
    sa.Column("late_events", sa.BigInteger, nullable=False, default=0),
    sa.Column("rejected_events", sa.BigInteger, nullable=False, default=0),
    sa.Column("updated_at", sa.Float, nullable=False),
)
rejects = sa.Table(
    "stream_rejects", metadata,
    sa.Column("stream", _name, primary_key=True),
    sa.Column("entry_id", sa.String(40), primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("raw", sa.Text, nullable=False),
    sa.Column("stored_at", sa.Float, nullable=False),
)


class LostOwnership(RuntimeError):
    """Another consumer took the stream over (a newer epoch): this one must stop."""


@dataclass
class Position:
    epoch: int
    closed_through: float | None
    last_commit_ids: list[str]
    late_events: int
    rejected_events: int


@dataclass
class Batch:
    """What one commit makes final."""

    closed_through: float | None
    ids: list[str]  # entries acknowledged once the commit is done
    scores: list[dict]
    detectors: list[dict]
    alerts: list[dict]
    rejects: list[dict]
    late: int = 0


def engine_for(url: str) -> sa.Engine:
    engine = make_engine(url)
    metadata.create_all(engine)
    return engine


def _insert(conn: sa.Connection, table: sa.Table):
    return (postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table))


def _insert_ignore(conn: sa.Connection, table: sa.Table, rows: Sequence[dict]) -> None:
    if rows:
        conn.execute(_insert(conn, table).on_conflict_do_nothing(), list(rows))


def take_ownership(engine: sa.Engine, stream: str, group: str, owner: str) -> Position:
    """A new epoch for `owner`: from now on only its commits count."""
    c = consumers.c
    where = (c.stream == stream) & (c.group_name == group)
    with engine.begin() as conn:
        row = conn.execute(sa.select(consumers).where(where)).mappings().first()
        now = time.time()
        if row is None:
            conn.execute(consumers.insert().values(
                stream=stream, group_name=group, owner=owner, epoch=1, closed_through=None,
                last_commit_ids="", late_events=0, rejected_events=0, updated_at=now))
            return Position(1, None, [], 0, 0)
        epoch = row["epoch"] + 1
        conn.execute(consumers.update().where(where).values(owner=owner, epoch=epoch, updated_at=now))
        ids = [i for i in row["last_commit_ids"].split(",") if i]
        return Position(epoch, row["closed_through"], ids, row["late_events"], row["rejected_events"])


def load_detectors(engine: sa.Engine, stream: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(detectors).where(detectors.c.stream == stream)).mappings()
        return [dict(r) for r in rows]


def commit(engine: sa.Engine, stream: str, group: str, epoch: int, batch: Batch) -> None:
    """Make the batch final under `epoch`, or raise LostOwnership and change nothing."""
    c = consumers.c
    now = time.time()
    with engine.begin() as conn:
        result = conn.execute(
            consumers.update()
            .where((c.stream == stream) & (c.group_name == group) & (c.epoch == epoch))
            .values(closed_through=batch.closed_through, last_commit_ids=",".join(batch.ids),
                    late_events=c.late_events + batch.late,
                    rejected_events=c.rejected_events + len(batch.rejects), updated_at=now)
        )
        if result.rowcount != 1:
            raise LostOwnership(f"stream {stream!r} group {group!r}: epoch {epoch} is no longer current")
        _insert_ignore(conn, scores, batch.scores)
        _insert_ignore(conn, alerts, batch.alerts)
        _insert_ignore(conn, rejects, batch.rejects)
        if batch.detectors:
            d = detectors.c
            stmt = _insert(conn, detectors)
            stmt = stmt.on_conflict_do_update(
                index_elements=[d.stream, d.key, d.metric],
                set_={"state": stmt.excluded.state, "check_state": stmt.excluded.check_state,
                      "passes": stmt.excluded.passes, "updated_at": stmt.excluded.updated_at},
            )
            conn.execute(stmt, batch.detectors)


def unsent_alerts(engine: sa.Engine, stream: str) -> list[dict]:
    a = alerts.c
    with engine.connect() as conn:
        query = sa.select(alerts).where((a.stream == stream) & a.sent_at.is_(None)).order_by(a.created_at)
        return [dict(r) for r in conn.execute(query).mappings()]


def mark_sinks(engine: sa.Engine, alert_key: str, sinks_done: Iterable[str], sent: bool) -> None:
    values = {"sinks_done": ",".join(sinks_done)}
    if sent:
        values["sent_at"] = time.time()
    with engine.begin() as conn:
        conn.execute(alerts.update().where(alerts.c.alert_key == alert_key).values(**values))


def acknowledge_alerts(engine: sa.Engine, stream: str) -> int:
    """Mark every unacknowledged alert of the stream as seen; returns how many."""
    a = alerts.c
    with engine.begin() as conn:
        result = conn.execute(alerts.update()
                              .where((a.stream == stream) & a.acknowledged_at.is_(None))
                              .values(acknowledged_at=time.time()))
        return result.rowcount


def dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"))
