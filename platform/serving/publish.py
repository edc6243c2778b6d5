"""Write a new version of the recommendation cache into Redis and switch to it in one step.

1. Every user's payload goes into a new version's users hash, pipelined in chunks, with a
   staging TTL: a writer that dies half-way leaves keys that expire by themselves.
2. ``HLEN`` of that hash must equal the number of users written, or nothing is switched.
3. One ``MULTI``/``EXEC`` (watching the pointer) writes the manifest, makes the new keys
   permanent, points ``current`` at the new version and gives the previous version a TTL: it
   stays readable for a rollback (and for readers that read the old pointer a moment ago).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
import redis

from data_platform.serving import layout

ROLLBACK_TTL_S = 7 * 24 * 3600
STAGING_TTL_S = 3600
CHUNK_USERS = 1000
# A user id no model has seen: its list is the model's cold-start (popular) list.
COLD_USER = "\x00cold-start"


class CachePublishError(RuntimeError):
    """The new version could not be written completely; the served version is unchanged."""


@dataclass(frozen=True)
class PublishResult:
    cache_version: str
    model_version: str
    users: int
    popular_items: int
    previous: str
    seconds: float


def popular_from_model(model, n: int) -> pd.DataFrame:
    """The model's list for a user it has never seen (``user_id, item_id, score, rank``)."""
    return model.recommend([COLD_USER], n=n)


def publish(
    client: redis.Redis,
    recommendations: pd.DataFrame,
    popular: pd.DataFrame,
    *,
    model_version: str,
    model_created_at: str = "",
    prefix: str = layout.DEFAULT_PREFIX,
    rollback_ttl_s: int = ROLLBACK_TTL_S,
    chunk_users: int = CHUNK_USERS,
) -> PublishResult:
    started = time.perf_counter()
    payloads = layout.encode_lists(recommendations)
    ordered = popular.sort_values("rank", kind="stable")
    popular_payload = layout.encode_items(
        list(zip(ordered["item_id"].astype(str), ordered["score"].astype(float), strict=True))
    )
    items_per_user = int(recommendations.groupby("user_id").size().max()) if len(recommendations) else 0
    version = layout.new_cache_version()
    users_key = layout.users_key(prefix, version)
    meta_key = layout.meta_key(prefix, version)

    previous = publish_version(
        client,
        payloads,
        version=version,
        current_key=layout.current_key(prefix),
        data_key=users_key,
        meta_key=meta_key,
        retired_keys=lambda old: [layout.users_key(prefix, old), layout.meta_key(prefix, old)],
        manifest=lambda old: layout.CacheVersion(
            cache_version=version,
            model_version=model_version,
            model_created_at=model_created_at,
            published_at=datetime.now(UTC).isoformat(),
            users=len(payloads),
            items_per_user=items_per_user,
            popular=popular_payload,
            previous=old,
        ).to_meta(),
        label=f"cache version {version}",
        rollback_ttl_s=rollback_ttl_s,
        chunk=chunk_users,
    )
    return PublishResult(
        cache_version=version,
        model_version=model_version,
        users=len(payloads),
        popular_items=len(ordered),
        previous=previous,
        seconds=time.perf_counter() - started,
    )


def publish_version(
    client: redis.Redis,
    payloads: dict[str, bytes],
    *,
    version: str,
    current_key: str,
    data_key: str,
    meta_key: str,
    retired_keys: Callable[[str], list[str]],
    manifest: Callable[[str], dict],
    label: str,
    rollback_ttl_s: int = ROLLBACK_TTL_S,
    chunk: int = CHUNK_USERS,
) -> str:
    """Steps 1-3 of the module doc for any namespace (the recommendation cache, each online
    feature view): write ``payloads`` into the hash
    ``data_key`` in pipelined chunks, count, then in one transaction write the manifest
    (``manifest(previous)``), point ``current_key`` at the new version and give the previous
    version's keys (``retired_keys(previous)``) a TTL. Returns the previous version ("" if none)."""
    entries = list(payloads.items())
    pipe = client.pipeline(transaction=False)
    for start in range(0, len(entries), chunk):
        pipe.hset(data_key, mapping=dict(entries[start : start + chunk]))
        pipe.expire(data_key, STAGING_TTL_S)
    pipe.execute()
    stored = int(client.hlen(data_key))
    if stored != len(payloads):
        client.delete(data_key)
        raise CachePublishError(
            f"{label}: {stored} keys in Redis after writing {len(payloads)}; "
            "the served version is unchanged"
        )
    with client.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(current_key)
                previous = pipe.get(current_key)
                previous = previous.decode() if previous else ""
                meta = manifest(previous)
                pipe.multi()
                pipe.hset(meta_key, mapping=meta)
                pipe.persist(data_key)
                pipe.set(current_key, version)
                if previous:
                    for key in retired_keys(previous):
                        pipe.expire(key, rollback_ttl_s)
                pipe.execute()
                return previous
            except redis.WatchError:
                continue  # another writer switched meanwhile: ours becomes the newer version


def served_version(client: redis.Redis, prefix: str = layout.DEFAULT_PREFIX) -> layout.CacheVersion | None:
    """The manifest of the version being served, or None when none is (or its count is off)."""
    pointer = client.get(layout.current_key(prefix))
    if pointer is None:
        return None
    version = pointer.decode()
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(layout.meta_key(prefix, version))
    pipe.hlen(layout.users_key(prefix, version))
    meta, count = pipe.execute()
    if not meta:
        return None
    manifest = layout.CacheVersion.from_meta(meta)
    return manifest if manifest.users == int(count) else None


def rollback(
    client: redis.Redis, prefix: str = layout.DEFAULT_PREFIX, rollback_ttl_s: int = ROLLBACK_TTL_S
) -> str:
    """Point ``current`` back at the previous version while it is still complete; its new id."""
    manifest = served_version(client, prefix)
    if manifest is None or not manifest.previous:
        raise CachePublishError("no served version with a previous one to roll back to")
    previous = manifest.previous
    pipe = client.pipeline(transaction=False)
    pipe.hlen(layout.users_key(prefix, previous))
    pipe.hget(layout.meta_key(prefix, previous), "users")
    count, users = pipe.execute()
    if users is None or int(users) != int(count):
        raise CachePublishError(f"previous version {previous} has expired or is incomplete")
    pipe = client.pipeline(transaction=True)
    pipe.persist(layout.users_key(prefix, previous))
    pipe.persist(layout.meta_key(prefix, previous))
    pipe.set(layout.current_key(prefix), previous)
    pipe.expire(layout.users_key(prefix, manifest.cache_version), rollback_ttl_s)
    pipe.expire(layout.meta_key(prefix, manifest.cache_version), rollback_ttl_s)
    pipe.execute()
    return previous


def verify_served(
    client: redis.Redis, prefix: str, model_version: str | None, expected_users: int
) -> tuple[bool, str, dict[str, object]]:
    """Does Redis serve the given model version to every user of the table? (passed, why, metadata)"""
    manifest = served_version(client, prefix)
    if manifest is None:
        return False, "Redis holds no complete current version: the service answers from the warehouse", {
            "served_users": 0, "coverage": 0.0, "expected_users": expected_users}
    coverage = manifest.users / expected_users if expected_users else 1.0
    metadata: dict[str, object] = {
        "served_model_version": manifest.model_version,
        "model_version": model_version or "",
        "cache_version": manifest.cache_version,
        "served_users": manifest.users,
        "expected_users": expected_users,
        "coverage": float(coverage),
    }
    if model_version and manifest.model_version != model_version:
        return False, (f"Redis serves model {manifest.model_version}, the latest model is "
                       f"{model_version}: the cache is stale"), metadata
    if manifest.users < expected_users:
        return False, (f"Redis serves {manifest.users} of {expected_users} users "
                       f"({coverage:.1%}); the rest get the popular list"), metadata
    return True, f"Redis serves model {manifest.model_version} to all {manifest.users} users", metadata
