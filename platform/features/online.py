"""The online store: each view's latest value per entity, for lookups by entity at serving time.

In Redis (``DATA_PLATFORM_REDIS_URL`` set), under the namespace ``<prefix>:feat:<view>``, laid
out and published like the recommendation cache (serving/publish.py ``publish_version``):

- ``<ns>:current``: the version being served, switched only after a complete, counted write;
- ``<ns>:v:<version>:rows``: a hash, entity id -> the entity's features as a JSON object
  (with its ``event_timestamp``);
- ``<ns>:v:<version>:meta``: the manifest: version, view and view version, entity count (``HLEN``
  of the rows hash must equal it), the ``as_of`` time the values were taken at, the previous
  version (kept for a week, then expired).

Without Redis, a warehouse table ``fv_<view>_online`` (entity_id, payload, version, as_of),
replaced in one transaction per materialization.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa

from data_platform.features.offline import OfflineStore, get_training_set, now_utc
from data_platform.features.view import FeatureView
from data_platform.serving import layout
from data_platform.serving.publish import CHUNK_USERS, publish_version

NAMESPACE = "feat"
ENTITY_ID, PAYLOAD, VERSION, AS_OF = "entity_id", "payload", "version", "as_of"


def namespace(prefix: str, view: str) -> str:
    return f"{prefix}:{NAMESPACE}:{view}"


def current_key(prefix: str, view: str) -> str:
    return f"{namespace(prefix, view)}:current"


def rows_key(prefix: str, view: str, version: str) -> str:
    return f"{namespace(prefix, view)}:v:{version}:rows"


def meta_key(prefix: str, view: str, version: str) -> str:
    return f"{namespace(prefix, view)}:v:{version}:meta"


def _plain(value):
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def _json_values(values: pd.Series, dtype: str) -> list[str]:
    """One column as JSON literals, column-wise (the per-row cost is one string format)."""
    missing = values.isna().to_numpy()
    if dtype in ("float64", "Float64"):
        numbers = values.to_numpy(dtype="float64", na_value=np.nan)
        if np.isinf(numbers).any():
            raise ValueError(f"column {values.name!r}: infinite values cannot be served as JSON")
        out = list(map(repr, numbers.tolist()))  # the shortest text that reads back the same float
    elif dtype in ("int64", "Int64"):
        out = list(map(str, values.to_numpy(dtype="int64", na_value=0).tolist()))
    elif dtype == "boolean":
        out = ["true" if v else "false" for v in values.to_numpy(dtype=bool, na_value=False).tolist()]
    else:
        out = [json.dumps(v) for v in values.astype(object).where(~missing, "").tolist()]
    for position in np.flatnonzero(missing).tolist():
        out[position] = "null"
    return out


def encode_payloads(view: FeatureView, latest: pd.DataFrame) -> dict[str, bytes]:
    """Entity id -> ``{"<feature>": value, ..., "event_timestamp": "<iso>"}`` (JSON bytes)."""
    template = "{" + ",".join(f"{json.dumps(name)}:%s" for name in view.feature_names)
    template += ',"event_timestamp":"%s"}'
    columns = [_json_values(latest[f.name], f.dtype) for f in view.features]
    stamps = np.datetime_as_string(
        latest[view.event_timestamp].to_numpy(dtype="datetime64[us]"), unit="us").tolist()
    return {
        entity: (template % values).encode()
        for entity, values in zip(latest[view.entity].astype(str).tolist(), zip(*columns, stamps, strict=True), strict=True)
    }


def decode_payload(payload: bytes | str | None) -> dict | None:
    return None if payload is None else json.loads(payload)


@dataclass(frozen=True)
class Materialization:
    view: str
    store: str  # "redis" or "sql"
    version: str
    entities: int
    as_of: str
    previous: str
    seconds: float


class RedisOnlineStore:
    kind = "redis"

    def __init__(self, client, prefix: str = layout.DEFAULT_PREFIX, chunk: int = CHUNK_USERS):
        self.client = client
        self.prefix = prefix
        self.chunk = chunk

    def write(self, view: FeatureView, payloads: dict[str, bytes], as_of: str) -> tuple[str, str]:
        version = layout.new_cache_version()
        p, name = self.prefix, view.name
        previous = publish_version(
            self.client, payloads, version=version,
            current_key=current_key(p, name), data_key=rows_key(p, name, version),
            meta_key=meta_key(p, name, version),
            retired_keys=lambda old: [rows_key(p, name, old), meta_key(p, name, old)],
            manifest=lambda old: {"version": version, "view": name, "view_version": view.version,
                                  "entities": len(payloads), "as_of": as_of,
                                  "materialized_at": datetime.now(UTC).isoformat(), "previous": old},
            label=f"feature view {name} version {version}", chunk=self.chunk,
        )
        return version, previous

    def manifest(self, view: str) -> dict[str, str] | None:
        """The served version's manifest, or None when none is complete."""
        pointer = self.client.get(current_key(self.prefix, view))
        if pointer is None:
            return None
        version = pointer.decode()
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(meta_key(self.prefix, view, version))
        pipe.hlen(rows_key(self.prefix, view, version))
        meta, count = pipe.execute()
        meta = {k.decode(): v.decode() for k, v in meta.items()}
        return meta if meta and int(meta["entities"]) == int(count) else None

    def lookup(self, view: str, entity_ids: list[str]) -> list[dict | None]:
        manifest = self.manifest(view)
        if manifest is None or not entity_ids:
            return [None] * len(entity_ids)
        values = self.client.hmget(rows_key(self.prefix, view, manifest["version"]), entity_ids)
        return [decode_payload(v) for v in values]

    def read_all(self, view: str) -> dict[str, dict]:
        manifest = self.manifest(view)
        if manifest is None:
            return {}
        key = rows_key(self.prefix, view, manifest["version"])
        return {k.decode(): json.loads(v) for k, v in self.client.hscan_iter(key, count=5000)}


class SqlOnlineStore:
    kind = "sql"

    def __init__(self, offline: OfflineStore):
        self.offline = offline

    def write(self, view: FeatureView, payloads: dict[str, bytes], as_of: str) -> tuple[str, str]:
        previous = (self.manifest(view.name) or {}).get("version", "")
        version = layout.new_cache_version()
        frame = pd.DataFrame({
            ENTITY_ID: pd.array(list(payloads), dtype="string"),
            PAYLOAD: pd.array([p.decode() for p in payloads.values()], dtype="string"),
        })
        frame[VERSION] = pd.array([version] * len(frame), dtype="string")
        frame[AS_OF] = pd.array([as_of] * len(frame), dtype="string")
        self.offline.tables.write(view.online_table, frame)
        table, q = self.offline.qualified(view.online_table), self.offline.quote
        with self.offline.engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {q('ix_' + view.online_table)} "
                                 f"ON {table} ({q(ENTITY_ID)})")
        return version, previous

    def manifest(self, view: str) -> dict[str, str] | None:
        table = f"fv_{view}_online"
        if not self.offline.tables.exists(table):
            return None
        sql = (f"SELECT {self.offline.quote(VERSION)}, {self.offline.quote(AS_OF)}, COUNT(*) "
               f"FROM {self.offline.qualified(table)} GROUP BY 1, 2")
        with self.offline.engine.connect() as conn:
            rows = conn.execute(sa.text(sql)).all()
        if len(rows) != 1:
            return None
        version, as_of, count = rows[0]
        return {"version": version, "as_of": as_of, "entities": str(count)}

    def lookup(self, view: str, entity_ids: list[str]) -> list[dict | None]:
        table = f"fv_{view}_online"
        if not entity_ids or not self.offline.tables.exists(table):
            return [None] * len(entity_ids)
        q = self.offline.quote
        sql = sa.text(f"SELECT {q(ENTITY_ID)}, {q(PAYLOAD)} FROM {self.offline.qualified(table)} "
                      f"WHERE {q(ENTITY_ID)} IN :ids").bindparams(sa.bindparam("ids", expanding=True))
        with self.offline.engine.connect() as conn:
            found = dict(conn.execute(sql, {"ids": list(entity_ids)}).all())
        return [decode_payload(found.get(e)) for e in entity_ids]

    def read_all(self, view: str) -> dict[str, dict]:
        table = f"fv_{view}_online"
        if not self.offline.tables.exists(table):
            return {}
        frame = self.offline.tables.read(table, columns=[ENTITY_ID, PAYLOAD])
        return {e: json.loads(p) for e, p in zip(frame[ENTITY_ID], frame[PAYLOAD], strict=True)}


OnlineStore = RedisOnlineStore | SqlOnlineStore


def materialize(view: FeatureView, offline: OfflineStore, online: OnlineStore,
                as_of: pd.Timestamp | None = None) -> Materialization:
    """Each entity's latest value as of ``as_of`` (default now) into the online store, as a new
    version switched to atomically."""
    started = time.perf_counter()
    as_of = pd.Timestamp(as_of) if as_of is not None else now_utc()
    latest = offline.latest(view, as_of=as_of)
    payloads = encode_payloads(view, latest)
    version, previous = online.write(view, payloads, as_of.isoformat())
    return Materialization(view.name, online.kind, version, len(payloads), as_of.isoformat(),
                           previous, time.perf_counter() - started)


@dataclass(frozen=True)
class Parity:
    passed: bool
    checked: int
    mismatched: list[str]
    missing_online: list[str]
    unexpected_online: list[str]
    as_of: str

    def describe(self) -> str:
        if self.passed:
            return f"online equals offline as of {self.as_of} for all {self.checked} entities"
        return (f"online differs from offline as of {self.as_of}: {len(self.mismatched)} different, "
                f"{len(self.missing_online)} missing online, {len(self.unexpected_online)} online only "
                f"(e.g. {(self.mismatched + self.missing_online + self.unexpected_online)[:5]})")


def parity(view: FeatureView, offline: OfflineStore, online: OnlineStore) -> Parity:
    """Online against the offline point-in-time join, for every entity of the view's history, as
    of the time the served version was taken at (the join is the independent reading)."""
    manifest = online.manifest(view.name)
    if manifest is None:
        return Parity(False, 0, [], ["<no complete online version>"], [], "")
    as_of = pd.Timestamp(manifest["as_of"])
    entities = offline.history(view)[view.entity].astype("string").drop_duplicates().sort_values()
    labels = pd.DataFrame({view.entity: entities.to_numpy(), "_as_of": as_of})
    expected = get_training_set(labels, [view], offline, timestamp_column="_as_of")
    served = online.read_all(view.name)
    mismatched, missing = [], []
    present = expected[view.feature_names].notna().any(axis=1).to_numpy()
    values = expected[view.feature_names].astype(object).to_numpy().tolist()
    wanted = set()
    for entity, has, row in zip(expected[view.entity], present, values, strict=True):
        if not has:
            continue
        wanted.add(entity)
        got = served.get(entity)
        if got is None:
            missing.append(entity)
        elif any(_plain(v) != got.get(n) for n, v in zip(view.feature_names, row, strict=True)):
            mismatched.append(entity)
    unexpected = sorted(set(served) - wanted)
    return Parity(not (mismatched or missing or unexpected), len(expected), mismatched, missing,
                  unexpected, as_of.isoformat())
