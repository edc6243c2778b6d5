"""``data-platform features list``: every view with its freshness and its served online version."""

from __future__ import annotations

import os

from data_platform.features.offline import OfflineStore
from data_platform.features.online import RedisOnlineStore, SqlOnlineStore
from data_platform.features.view import FeatureView
from data_platform.features.views import VIEWS
from data_platform.serving.layout import DEFAULT_PREFIX


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 2 * 86400 else f"{seconds / 86400:.1f} d"


def freshness_rows(offline: OfflineStore, online, views: tuple[FeatureView, ...] = VIEWS) -> list[dict]:
    rows = []
    for view in views:
        state = offline.freshness(view)
        manifest = online.manifest(view.name) if online is not None else None
        rows.append({**view.summary(), **state, "online_version": (manifest or {}).get("version", ""),
                     "online_entities": int((manifest or {}).get("entities", 0) or 0)})
    return rows


def render(rows: list[dict], online_kind: str) -> str:
    lines = [f"| view | entity | version | owner | TTL | entities | rows | newest event age | fresh "
             f"| online ({online_kind}) |", "|---|---|---|---|---|---:|---:|---:|---|---|"]
    for r in rows:
        served = f"{r['online_version']} ({r['online_entities']})" if r["online_version"] else "not materialized"
        lines.append(f"| {r['name']} | {r['entity']} | {r['version']} | {r['owner']} | "
                     f"{_age(r['ttl_seconds'])} | {r['entities']} | {r['rows']} | {_age(r['age_seconds'])} | "
                     f"{'yes' if r['fresh'] else 'NO'} | {served} |")
    return "\n".join(lines)


def main(warehouse_url: str) -> int:
    offline = OfflineStore(warehouse_url)
    redis_url = os.environ.get("DATA_PLATFORM_REDIS_URL")
    client = None
    try:
        if redis_url:
            import redis

            client = redis.Redis.from_url(redis_url, socket_timeout=5)
            online = RedisOnlineStore(client, os.environ.get("DATA_PLATFORM_REDIS_PREFIX") or DEFAULT_PREFIX)
        else:
            online = SqlOnlineStore(offline)
        print(render(freshness_rows(offline, online), online.kind))
    finally:
        offline.dispose()
        if client is not None:
            client.close()
    return 0
