"""The service's reader of the online feature store: one round trip per request.

With Redis: ``GET <ns>:current`` and ``HMGET`` of the rows under the version this worker last
verified, pipelined on the service's own Redis client (resp.py); a moved pointer is verified
(manifest present, ``HLEN`` equal to its entity count) before anything of it is served. Without
Redis: the view's warehouse table, queried off the event loop.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from data_platform.features import online
from data_platform.serving.resp import RespClient
from data_platform.sources.db import make_engine
from data_platform.tablestore import TableStore


class FeaturesUnavailable(Exception):
    """The online store cannot answer (nothing materialized for the view, or Redis failing)."""


class RedisFeatureReader:
    def __init__(self, client: RespClient, prefix: str):
        self.client = client
        self.prefix = prefix
        self.versions: dict[str, str] = {}

    async def lookup(self, view: str, entity_ids: list[str]) -> tuple[str, list[bytes | None]]:
        current = online.current_key(self.prefix, view)
        try:
            for _ in range(3):
                known = self.versions.get(view)
                commands = [("GET", current)]
                if known is not None:
                    commands.append(("HMGET", online.rows_key(self.prefix, view, known), *entity_ids))
                replies = await self.client.execute(*commands)
                if replies[0] is None:
                    self.versions.pop(view, None)
                    raise FeaturesUnavailable(f"feature view {view!r} has no online version")
                version = replies[0].decode()
                if version == known:
                    return version, replies[1]
                await self._adopt(view, version)
        except OSError as error:
            raise FeaturesUnavailable(f"Redis unusable: {type(error).__name__}") from None
        raise FeaturesUnavailable(f"feature view {view!r}: the version kept changing during one read")

    async def _adopt(self, view: str, version: str) -> None:
        flat, count = await self.client.execute(
            ("HGETALL", online.meta_key(self.prefix, view, version)),
            ("HLEN", online.rows_key(self.prefix, view, version)),
        )
        meta = dict(zip(flat[::2], flat[1::2], strict=True))
        if not meta or int(meta.get(b"entities", -1)) != int(count):
            raise FeaturesUnavailable(f"feature view {view!r}: version {version} is incomplete")
        self.versions[view] = version


class SqlFeatureReader:
    def __init__(self, warehouse_url: str):
        self.engine = make_engine(warehouse_url)
        self.tables = TableStore(warehouse_url)

    def _lookup(self, view: str, entity_ids: list[str]) -> tuple[str, list[bytes | None]]:
        table = f"fv_{view}_online"
        if not self.tables.exists(table):
            raise FeaturesUnavailable(f"feature view {view!r} has no online table")
        sql = sa.text(f'SELECT entity_id, payload, version FROM "{table}" WHERE entity_id IN :ids'
                      ).bindparams(sa.bindparam("ids", expanding=True))
        with self.engine.connect() as conn:
            rows = conn.execute(sql, {"ids": list(entity_ids)}).all()
        found = {e: p.encode() for e, p, _ in rows}
        version = rows[0][2] if rows else ""
        return version, [found.get(e) for e in entity_ids]

    async def lookup(self, view: str, entity_ids: list[str]) -> tuple[str, list[bytes | None]]:
        return await asyncio.to_thread(self._lookup, view, entity_ids)

    def close(self) -> None:
        self.engine.dispose()
        self.tables.dispose()
