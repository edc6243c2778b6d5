"""The offline store: every computation of a view kept in the warehouse, and point-in-time joins.

History table ``fv_<view>``: one row per entity per computation, with the view's event and
created timestamps; each computation is one partition of the table (re-running a computation
replaces its own rows, nothing else). Nothing is overwritten, so any past state can be rebuilt.

Point-in-time rule (the same as Feast's): a label row (entity, t) gets, from each view, the row
of that entity with the latest ``event_timestamp <= t``, within ``t - ttl``, among the rows with
``created_timestamp <= t`` (a correction computed after t was not known at t; ``known_at``
moves this knowledge time, see ``get_training_set``); equal event timestamps go to the latest
created. No row qualifies: the features are null.
"""

from __future__ import annotations

import hashlib
import math
import os
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa

from data_platform.features.view import FeatureView
from data_platform.sources.db import make_engine
from data_platform.tablestore import PARTITION_COLUMN, TableStore

ROW = "_row"
LABEL_TS = "_label_ts"
KNOWN_TS = "_known_ts"
SQLITE_STAMP = "%Y-%m-%d %H:%M:%S.%f"  # how the warehouse stores a timestamp in SQLite


def _naive_utc(values) -> pd.Series:
    stamps = pd.to_datetime(pd.Series(values), format="ISO8601") if not isinstance(
        values, pd.Series) or not pd.api.types.is_datetime64_any_dtype(values) else values
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return stamps.astype("datetime64[us]")


def naive_utc_stamp(stamp) -> pd.Timestamp:
    """One time as the store compares times: naive UTC (an aware time is converted)."""
    stamp = pd.Timestamp(stamp)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp


CLOCK_OFFSET_ENV = "DATA_PLATFORM_CLOCK_OFFSET_SECONDS"


def clock_offset_seconds() -> float:
    """Seconds the platform's clock runs ahead of the wall clock (negative: behind); 0 unless
    DATA_PLATFORM_CLOCK_OFFSET_SECONDS is set. A replay of a past window (`data-platform demo
    --end`) sets it so that the window's end is "now" for the feature store and the models."""
    raw = os.environ.get(CLOCK_OFFSET_ENV, "").strip()
    if not raw:
        return 0.0
    try:
        offset = float(raw)
    except ValueError:
        raise ValueError(f"{CLOCK_OFFSET_ENV}={raw!r} is not a number of seconds (e.g. -86400 for a day back)") from None
    if not math.isfinite(offset):
        raise ValueError(f"{CLOCK_OFFSET_ENV}={raw!r} must be a finite number of seconds")
    return offset


def now_utc() -> pd.Timestamp:
    """The platform's clock: feature timestamps, freshness, online snapshots, training cutoffs."""
    now = pd.Timestamp(datetime.now(UTC)).tz_localize(None)
    offset = clock_offset_seconds()
    if offset:
        now = now + pd.Timedelta(seconds=offset)
    return now.floor("us")


class OfflineStore:
    """Feature history in the warehouse (SQLite file or PostgreSQL; ``schema``: PostgreSQL only)."""

    def __init__(self, url: str, schema: str | None = None):
        self.tables = TableStore(url, schema=schema)
        self.engine = make_engine(url)
        self.schema = schema
        self.backend = self.engine.dialect.name

    def dispose(self) -> None:
        self.tables.dispose()
        self.engine.dispose()

    def qualified(self, table: str) -> str:
        quote = self.engine.dialect.identifier_preparer.quote
        return f"{quote(self.schema)}.{quote(table)}" if self.schema else quote(table)

    def quote(self, name: str) -> str:
        return self.engine.dialect.identifier_preparer.quote(name)

    def bind_stamp(self, stamp: pd.Timestamp):
        stamp = pd.Timestamp(stamp)
        return stamp.strftime(SQLITE_STAMP) if self.backend == "sqlite" else stamp.to_pydatetime()

    # -- writing ----------------------------------------------------------------------------

    def write(self, view: FeatureView, frame: pd.DataFrame, *, created_at: pd.Timestamp | None = None,
              computation: str | None = None) -> int:
        """Append one computation of ``view`` (rows: entity, event timestamp, features).

        ``created_at`` (default now) fills the created timestamp when the frame has none;
        ``computation`` names the partition (default: the created time), so writing the same
        computation again replaces it instead of duplicating it."""
        missing = {view.entity, view.event_timestamp, *view.feature_names} - set(frame.columns)
        if missing:
            raise ValueError(f"feature view {view.name!r}: frame lacks column(s) {sorted(missing)}")
        created_at = pd.Timestamp(created_at) if created_at is not None else now_utc()
        rows = pd.DataFrame({
            view.entity: frame[view.entity].astype("string"),
            view.event_timestamp: _naive_utc(frame[view.event_timestamp]),
        })
        rows[view.created_timestamp] = (_naive_utc(frame[view.created_timestamp])
                                        if view.created_timestamp in frame else
                                        _naive_utc(pd.Series([created_at] * len(frame))).to_numpy())
        for feature in view.features:
            rows[feature.name] = frame[feature.name].astype(feature.dtype)
        if rows[view.entity].isna().any() or rows[view.event_timestamp].isna().any():
            raise ValueError(f"feature view {view.name!r}: entity and event timestamp must not be missing")
        # One row per (entity, event time, created time) within a computation: the last one wins.
        rows = rows.drop_duplicates([view.entity, view.event_timestamp, view.created_timestamp], keep="last")
        key = computation or pd.Timestamp(created_at).isoformat()
        written = self.tables.write(view.history_table, rows.reset_index(drop=True), partition=key)
        self._index(view)
        return written

    def _index(self, view: FeatureView) -> None:
        digest = hashlib.sha1(view.history_table.encode()).hexdigest()[:12]
        index = self.quote(f"ix_fv_{digest}_entity_ts")
        columns = f"{self.quote(view.entity)}, {self.quote(view.event_timestamp)}"
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {index} ON {self.qualified(view.history_table)} ({columns})")

    def history(self, view: FeatureView) -> pd.DataFrame:
        return self.tables.read(view.history_table)

    def has_history(self, view: FeatureView) -> bool:
        return self.tables.exists(view.history_table)

    # -- reading ----------------------------------------------------------------------------

    def latest(self, view: FeatureView, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
        """Each entity's value as of ``as_of`` (default now) under the point-in-time rule, sorted
        by entity: what the online store holds after materializing at that time."""
        as_of = pd.Timestamp(as_of) if as_of is not None else now_utc()
        q = self.quote
        ev, cr, ent = q(view.event_timestamp), q(view.created_timestamp), q(view.entity)
        columns = ", ".join(q(c) for c in [view.entity, view.event_timestamp, view.created_timestamp,
                                            *view.feature_names])
        sql = (
            f"SELECT {columns} FROM (SELECT h.*, ROW_NUMBER() OVER (PARTITION BY {ent} "
            f"ORDER BY {ev} DESC, {cr} DESC, {q(PARTITION_COLUMN)} DESC) AS _rank "
            f"FROM {self.qualified(view.history_table)} h "
            f"WHERE {ev} <= :as_of AND {ev} >= :oldest AND {cr} <= :as_of) latest "
            f"WHERE _rank = 1 ORDER BY {ent}"
        )
        params = {"as_of": self.bind_stamp(as_of), "oldest": self.bind_stamp(as_of - view.ttl)}
        with self.engine.connect() as conn:
            frame = pd.read_sql(sa.text(sql), conn, params=params)
        out = pd.DataFrame({view.entity: frame[view.entity].astype("string"),
                            view.event_timestamp: _naive_utc(frame[view.event_timestamp]),
                            view.created_timestamp: _naive_utc(frame[view.created_timestamp])})
        for feature in view.features:
            out[feature.name] = _typed(frame[feature.name], feature.dtype)
        return out

    def newest_event(self, view: FeatureView, known_at: pd.Timestamp) -> pd.Timestamp | None:
        """The newest event time among the rows created at or before ``known_at`` with an event
        at or before it: the end of the data the view had at that time (None: nothing yet)."""
        q = self.quote
        if not self.has_history(view):
            return None
        sql = (f"SELECT MAX({q(view.event_timestamp)}) FROM {self.qualified(view.history_table)} "
               f"WHERE {q(view.event_timestamp)} <= :known AND {q(view.created_timestamp)} <= :known")
        with self.engine.connect() as conn:
            newest = conn.execute(sa.text(sql), {"known": self.bind_stamp(naive_utc_stamp(known_at))}).scalar()
        return naive_utc_stamp(newest) if newest is not None else None

    def freshness(self, view: FeatureView, now: pd.Timestamp | None = None) -> dict[str, object]:
        """Rows, entities, the newest event and created times, and the newest event's age."""
        q = self.quote
        if not self.has_history(view):
            return {"rows": 0, "entities": 0, "latest_event": None, "latest_created": None,
                    "age_seconds": None, "fresh": False}
        sql = (f"SELECT COUNT(*), COUNT(DISTINCT {q(view.entity)}), MAX({q(view.event_timestamp)}), "
               f"MAX({q(view.created_timestamp)}) FROM {self.qualified(view.history_table)}")
        with self.engine.connect() as conn:
            rows, entities, event, created = conn.execute(sa.text(sql)).one()
        event = pd.Timestamp(event) if event is not None else None
        now = pd.Timestamp(now) if now is not None else now_utc()
        age = (now - event).total_seconds() if event is not None else None
        return {"rows": int(rows), "entities": int(entities), "latest_event": event,
                "latest_created": pd.Timestamp(created) if created is not None else None,
                "age_seconds": age, "fresh": age is not None and age <= view.ttl.total_seconds()}


def _typed(values: pd.Series, dtype: str) -> pd.Series:
    if dtype == "string":
        return values.astype("string")
    if dtype == "boolean":
        return values.astype("boolean")
    if dtype in ("Int64", "int64"):
        return pd.to_numeric(values).astype("Int64")
    return pd.to_numeric(values).astype("Float64" if dtype == "Float64" else "float64")


def _feature_column(view: FeatureView, feature: str, full_names: bool) -> str:
    return f"{view.name}__{feature}" if full_names else feature


def training_set_sql(store: OfflineStore, labels_table: str, views: Sequence[FeatureView],
                     full_feature_names: bool) -> str:
    """One statement: per view, the label rows joined to their entity's qualifying history rows,
    ranked newest first by (event, created, computation); rank 1 joined back to every label."""
    q = store.quote
    ctes, selects, joins = [], [f"l.{q(ROW)}"], []
    for i, view in enumerate(views):
        ev, cr = q(view.event_timestamp), q(view.created_timestamp)
        picked = ", ".join(f"h.{q(f)} AS {q(_feature_column(view, f, full_feature_names))}"
                           for f in view.feature_names)
        ctes.append(
            f"v{i} AS (SELECT l.{q(ROW)} AS {q(ROW)}, {picked}, ROW_NUMBER() OVER ("
            f"PARTITION BY l.{q(ROW)} ORDER BY h.{ev} DESC, h.{cr} DESC, h.{q(PARTITION_COLUMN)} DESC) AS _rank "
            f"FROM {store.qualified(labels_table)} l JOIN {store.qualified(view.history_table)} h "
            f"ON h.{q(view.entity)} = l.{q(view.entity)} AND h.{ev} <= l.{q(LABEL_TS)} "
            f"AND h.{ev} >= l.{q(f'_oldest_{i}')} AND h.{cr} <= l.{q(KNOWN_TS)})"
        )
        selects += [f"v{i}.{q(_feature_column(view, f, full_feature_names))}" for f in view.feature_names]
        joins.append(f"LEFT JOIN v{i} ON v{i}.{q(ROW)} = l.{q(ROW)} AND v{i}._rank = 1")
    return (f"WITH {', '.join(ctes)} SELECT {', '.join(selects)} FROM {store.qualified(labels_table)} l "
            f"{' '.join(joins)} ORDER BY l.{q(ROW)}")


def get_training_set(labels: pd.DataFrame, views: Sequence[FeatureView], store: OfflineStore | str, *,
                     timestamp_column: str = "event_timestamp",
                     full_feature_names: bool = False,
                     known_at: pd.Timestamp | None = None) -> pd.DataFrame:
    """The label rows (in their order, all columns kept) with each view's features as of each
    row's timestamp, computed in the warehouse in one SQL statement. ``labels`` holds
    ``timestamp_column`` and every view's entity column.

    ``known_at``: only history rows created at or before it count (default: each label's own
    time, so a label sees only what was known at it). A model trained now on data that ends
    earlier (a replay, a backfill computed today) labels at the data's end and knows what is
    known now; event times after the label are never used either way."""
    own = isinstance(store, str)
    store = OfflineStore(store) if own else store
    try:
        return _training_set(labels, list(views), store, timestamp_column, full_feature_names, known_at)
    finally:
        if own:
            store.dispose()


def _training_set(labels, views, store, timestamp_column, full_feature_names, known_at) -> pd.DataFrame:
    needed = {timestamp_column, *(v.entity for v in views)}
    if not views:
        raise ValueError("get_training_set needs at least one feature view")
    missing = needed - set(labels.columns)
    if missing:
        raise ValueError(f"labels lack column(s) {sorted(missing)}")
    names = [_feature_column(v, f, full_feature_names) for v in views for f in v.feature_names]
    clash = {n for n in names if names.count(n) > 1} | (set(names) & set(labels.columns))
    if clash:
        raise ValueError(f"feature names {sorted(clash)} clash; use full_feature_names=True")
    for view in views:
        if not store.has_history(view):
            raise ValueError(f"feature view {view.name!r} has no history in the offline store yet")
    stamps = _naive_utc(labels[timestamp_column].reset_index(drop=True))
    if stamps.isna().any():
        raise ValueError(f"labels: {timestamp_column!r} must not be missing")
    keyed = pd.DataFrame({ROW: pd.RangeIndex(len(labels)).to_numpy(dtype="int64"), LABEL_TS: stamps})
    keyed[KNOWN_TS] = stamps if known_at is None else naive_utc_stamp(known_at).as_unit("us")
    for entity in dict.fromkeys(v.entity for v in views):
        keyed[entity] = labels[entity].reset_index(drop=True).astype("string")
    for i, view in enumerate(views):
        keyed[f"_oldest_{i}"] = stamps - view.ttl
    table = f"fl_{uuid.uuid4().hex[:16]}"
    store.tables.write(table, keyed)
    try:
        sql = training_set_sql(store, table, views, full_feature_names)
        with store.engine.connect() as conn:
            joined = pd.read_sql(sa.text(sql), conn)
    finally:
        store.tables.drop(table)
    out = labels.reset_index(drop=True).copy()
    for view in views:
        for feature in view.features:
            column = _feature_column(view, feature.name, full_feature_names)
            out[column] = _typed(joined[column], feature.dtype).array
    return out


def training_set_hash(frame: pd.DataFrame) -> str:
    """A digest of the rows, columns and values: rebuilding the same set gives the same hash."""
    digest = hashlib.sha256("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()
