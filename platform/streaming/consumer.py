"""The consumer-group process: lease, recover, read in batches, commit, then acknowledge and send.

Delivery (docs/streaming.md): an entry is acknowledged (XACK) only after the transaction that
makes its interval final has committed, so entries of open intervals stay pending in the group.
That pending list is the durable copy of the open aggregates: a restarted consumer (or another
that took over) re-reads it and rebuilds them, and nothing is persisted twice. The ids a commit
made final are written in that same commit: a crash between commit and XACK is repaired on
restart by acknowledging them before anything is re-read.

One consumer per stream and group aggregates at a time (a lease in Redis, fenced by an epoch in
the warehouse): the metrics of an interval need all of its events in one place. Others wait as
standbys; when the lease of a dead consumer expires, one takes over and claims its pending
entries with XAUTOCLAIM (min idle time). Alerts are stored in the commit and sent after it; a
sink that fails is retried, and sinks that have an alert already never get it again.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import redis
import sqlalchemy as sa

from data_platform.quality.alerting import Alert
from data_platform.quality.streaming import StreamConfig
from data_platform.streaming import store
from data_platform.streaming.aggregate import IntervalAggregator
from data_platform.streaming.events import DEFAULT_GROUP, DEFAULT_STREAM, BadEvent, decode, raw_text
from data_platform.streaming.scoring import CONSUMER_DETECTOR, Scorer, alert_from_json

Sender = tuple[str, Callable[[Alert], None]]
_RENEW = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
          "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end")
_RELEASE = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
            "return redis.call('del', KEYS[1]) else return 0 end")
_ACK_CHUNK = 10_000


@dataclass(frozen=True)
class ConsumerConfig:
    stream: str = DEFAULT_STREAM
    group: str = DEFAULT_GROUP
    name: str = field(default_factory=socket.gethostname)
    interval: float = 5.0  # seconds of event time per metric point
    lateness: float = 1.0  # an interval closes this long (event time) after its end
    batch: int = 1000  # entries per XREADGROUP
    block_ms: int = 500
    lease_ms: int = 10_000  # a dead consumer's entries are claimed this long after its last renewal
    max_future_s: float = 3600.0  # events further ahead of this machine's clock are rejected
    max_keys: int = 1000
    detector: StreamConfig = CONSUMER_DETECTOR
    reminder_interval: timedelta = timedelta(hours=1)
    recovery_intervals: int = 3
    min_events: int = 10  # fewer events in an interval: its mean and null fraction are not judged
    retry_send_s: float = 10.0  # a failed sink is tried again after this long

    @property
    def lease_key(self) -> str:
        return f"{self.stream}:consumer-lease:{self.group}"

    @property
    def claim_min_idle_ms(self) -> int:
        # Renewals and reads happen every quarter lease at most: entries the dead consumer read
        # last have been idle for at least half a lease once its lease has expired.
        return self.lease_ms // 2


@dataclass
class Stats:
    read: int = 0
    late: int = 0
    rejected: int = 0
    intervals: int = 0
    commits: int = 0
    alerts: int = 0
    sent: int = 0
    claimed: int = 0
    replayed: int = 0


class StreamConsumer:
    def __init__(self, client: redis.Redis, engine: sa.Engine, config: ConsumerConfig,
                 senders: Sequence[Sender] = (), log: Callable[[str], None] = print) -> None:
        self.client = client
        self.engine = engine
        self.config = config
        self.senders = list(senders)
        self.log = log
        self.stats = Stats()
        self.stopping = False
        self.epoch = 0
        self._renewed = 0.0
        self._claimed_at = 0.0
        self._committed = 0.0
        self._send_after = 0.0
        self._hold: list[str] = []  # late and rejected entries, acknowledged with the next commit
        self._rejects: list[dict] = []
        self._late = 0
        # Ids of the entries read and not yet acknowledged. XAUTOCLAIM hands back entries of any
        # consumer idle past the claim time, this one's own too (the events of intervals still
        # open): an id held here is already folded in and is never folded in twice.
        self._held: set[str] = set()

    # -- lifecycle -----------------------------------------------------------------------------
    def run(self, seconds: float | None = None, until_idle: bool = False) -> Stats:
        """Consume until `stop()`, until `seconds` have passed, or (`until_idle`) until a read
        finds no new entry; the entries of open intervals stay pending for the next run."""
        deadline = None if seconds is None else time.monotonic() + seconds
        self._ensure_group()
        if not self._acquire(deadline):
            return self.stats
        try:
            self._start()
            while not self.stopping and (deadline is None or time.monotonic() < deadline):
                if not self._tick() and until_idle:
                    break
        finally:
            self.client.eval(_RELEASE, 1, self.config.lease_key, self.config.name)
        return self.stats

    def stop(self) -> None:
        self.stopping = True

    def _ensure_group(self) -> None:
        try:
            self.client.xgroup_create(self.config.stream, self.config.group, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def _acquire(self, deadline: float | None) -> bool:
        c = self.config
        waiting = False
        while not self.stopping and (deadline is None or time.monotonic() < deadline):
            if self.client.set(c.lease_key, c.name, nx=True, px=c.lease_ms):
                break
            if self.client.eval(_RENEW, 1, c.lease_key, c.name, c.lease_ms):
                break  # our own lease: this consumer restarted under the same name
            if not waiting:
                holder = self.client.get(c.lease_key)
                self.log(f"standby: {holder!r} holds stream {c.stream!r}; taking over when its lease lapses")
                waiting = True
            time.sleep(c.lease_ms / 4000)
        else:
            return False
        self._renewed = time.monotonic()
        return True

    def _start(self) -> None:
        c = self.config
        position = store.take_ownership(self.engine, c.stream, c.group, c.name)
        self.epoch = position.epoch
        # Entries a commit made final before a crash cut its XACK short.
        self._ack(position.last_commit_ids)
        self.scorer = Scorer(c.stream, c.interval, detector_config=c.detector,
                             reminder_interval=c.reminder_interval,
                             recovery_intervals=c.recovery_intervals, min_events=c.min_events,
                             rows=store.load_detectors(self.engine, c.stream))
        self.aggregator = IntervalAggregator(c.interval, c.lateness, closed_through=position.closed_through,
                                             keys=self.scorer.keys(), max_keys=c.max_keys)
        # Rebuild the open intervals: our own pending entries and those of a dead consumer,
        # all folded in id order before any interval closes.
        self._held = set()
        entries = self._own_pending() + self._claim()
        entries.sort(key=lambda e: _id_key(e[0]))
        self.stats.replayed += len(entries)
        self._process(entries)
        self.log(f"consumer {c.name!r} owns stream {c.stream!r} (group {c.group!r}, epoch {self.epoch}); "
                 f"replayed {len(entries)} pending entries")
        self._send_alerts(force=True)

    def _tick(self) -> int:
        """One read (after a lease renewal and a claim when due); returns the entries read."""
        c = self.config
        now = time.monotonic()
        if now - self._renewed > c.lease_ms / 4000:
            if not self.client.eval(_RENEW, 1, c.lease_key, c.name, c.lease_ms):
                raise store.LostOwnership(f"lease of stream {c.stream!r} lost by {c.name!r}")
            self._renewed = now
        if now - self._claimed_at > c.lease_ms / 2000:
            self._claimed_at = now
            claimed = self._claim()
            if claimed:
                self._process(claimed)
        reply = self.client.xreadgroup(c.group, c.name, {c.stream: ">"}, count=c.batch, block=c.block_ms)
        entries = reply[0][1] if reply else []
        self._process(entries)
        self._send_alerts()
        return len(entries)

    # -- reading -------------------------------------------------------------------------------
    def _own_pending(self) -> list:
        c = self.config
        entries, last = [], "0"
        while True:
            reply = self.client.xreadgroup(c.group, c.name, {c.stream: last}, count=c.batch)
            page = reply[0][1] if reply else []
            if not page:
                return entries
            entries.extend(page)
            last = page[-1][0]

    def _claim(self) -> list:
        """Entries idle in other consumers' pending lists (a dead consumer's), now ours."""
        c = self.config
        entries, start = [], "0-0"
        while True:
            reply = self.client.xautoclaim(c.stream, c.group, c.name, c.claim_min_idle_ms,
                                           start_id=start, count=c.batch)
            start, page = reply[0], reply[1]
            # Entries trimmed from the stream meanwhile come back as ids in the third element.
            entries.extend((entry_id, fields) for entry_id, fields in page)
            entries.extend((entry_id, None) for entry_id in (reply[2] if len(reply) > 2 else []))
            if start in (b"0-0", "0-0"):
                break
        entries = [entry for entry in entries if _text(entry[0]) not in self._held]
        self.stats.claimed += len(entries)
        return entries

    # -- processing ----------------------------------------------------------------------------
    def _process(self, entries: list) -> None:
        c = self.config
        agg = self.aggregator
        horizon = time.time() + c.max_future_s
        held, read = self._held, 0
        for entry_id, fields in entries:
            text = _text(entry_id)
            if text in held:
                continue  # already folded in (read as our own pending entry and claimed again)
            held.add(text)
            read += 1
            try:
                event = decode(fields)
                if event.ts > horizon:
                    raise BadEvent(f"ts {event.ts:.0f} is more than {c.max_future_s:.0f} s ahead of the clock")
                outcome = agg.add(event, text)
                if outcome == "late":
                    self._late += 1
                    self._hold.append(text)
                elif outcome != "ok":
                    raise BadEvent(outcome)
            except BadEvent as error:
                self._rejects.append({"stream": c.stream, "entry_id": _text(entry_id), "reason": str(error),
                                      "raw": raw_text(fields), "stored_at": time.time()})
                self._hold.append(text)
        self.stats.read += read
        closed = agg.close_ready()
        if closed or (self._hold and time.monotonic() - self._committed > 1.0):
            self._commit(closed)

    def _commit(self, closed) -> None:
        c = self.config
        score_rows, detector_rows, planned = self.scorer.score(closed)
        ids = [_text(i) for interval in closed for i in interval.ids] + [_text(i) for i in self._hold]
        batch = store.Batch(
            closed_through=self.aggregator.closed_through, ids=ids, scores=score_rows,
            detectors=detector_rows, alerts=[self.scorer.alert_row(a, i) for a, i in planned],
            rejects=self._rejects, late=self._late,
        )
        store.commit(self.engine, c.stream, c.group, self.epoch, batch)
        self._committed = time.monotonic()
        self._ack(ids)
        self.stats.intervals += len(closed)
        self.stats.commits += 1
        self.stats.late += self._late
        self.stats.rejected += len(self._rejects)
        self.stats.alerts += len(planned)
        for reject in self._rejects:
            self.log(f"rejected entry {reject['entry_id']}: {reject['reason']}")
        if self._late:
            self.log(f"{self._late} late events (their interval was stored already): counted, not folded in")
        self._hold, self._rejects, self._late = [], [], 0
        if planned:
            self._send_after = 0.0

    def _ack(self, ids: Sequence[str]) -> None:
        for i in range(0, len(ids), _ACK_CHUNK):
            self.client.xack(self.config.stream, self.config.group, *ids[i:i + _ACK_CHUNK])
        self._held.difference_update(ids)

    # -- alerts --------------------------------------------------------------------------------
    def _send_alerts(self, force: bool = False) -> None:
        if not force and time.monotonic() < self._send_after:
            return
        self._send_after = time.monotonic() + self.config.retry_send_s
        for row in store.unsent_alerts(self.engine, self.config.stream):
            alert = alert_from_json(row["alert"])
            done = [s for s in row["sinks_done"].split(",") if s]
            failed = False
            for name, send in self.senders:
                if name in done:
                    continue
                try:
                    send(alert)
                except Exception as error:  # noqa: BLE001 - a sink's failure is retried, never fatal
                    self.log(f"alert {row['alert_key']} not delivered to {name}: {error}; retried later")
                    failed = True
                    break
                done.append(name)
            store.mark_sinks(self.engine, row["alert_key"], done, sent=not failed)
            if failed:
                return
            self.stats.sent += 1


def _text(entry_id) -> str:
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def _id_key(entry_id) -> tuple[int, int]:
    ms, _, seq = _text(entry_id).partition("-")
    return int(ms), int(seq or 0)
