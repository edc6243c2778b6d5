"""Where an answer comes from: the Redis cache when it holds a complete current version, else the
warehouse snapshot. No HTTP here (see app.py), so the decision logic reads on its own."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from data_platform.serving.cache import (
    CacheNotReady,
    CacheUnavailable,
    CircuitBreaker,
    RecommendationCache,
    connect,
)
from data_platform.serving.config import ServingConfig
from data_platform.serving.features import RedisFeatureReader, SqlFeatureReader
from data_platform.serving.metrics import ServingMetrics
from data_platform.serving.warehouse import WarehouseSnapshot, load_snapshot, signature
from data_platform.tablestore import TableStore

log = logging.getLogger("data_platform.serving")

PERSONALISED, POPULAR, DATABASE = "personalised", "popular", "database"


class ServiceUnavailable(Exception):
    """Neither the cache nor the warehouse has recommendations to serve."""


@dataclass(frozen=True)
class UserAnswer:
    user_id: str
    source: str
    personalised: bool
    payload: bytes


@dataclass(frozen=True)
class Answer:
    model_version: str
    cache_version: str
    store: str  # "cache" or "database"
    users: list[UserAnswer]


class RecommendationService:
    def __init__(self, config: ServingConfig, metrics: ServingMetrics | None = None):
        self.config = config
        self.metrics = metrics or ServingMetrics()
        self.cache: RecommendationCache | None = None
        self.cache_state = "none"
        self.snapshot: WarehouseSnapshot | None = None
        self.warehouse_error = ""
        self._store: TableStore | None = None
        self.features: RedisFeatureReader | SqlFeatureReader | None = None
        self._watcher: asyncio.Task | None = None
        self._stopping: asyncio.Event | None = None

    async def start(self) -> None:
        cfg = self.config
        if cfg.redis_url:
            client = connect(cfg.redis_url, cfg.redis_timeout_s)
            self.cache = RecommendationCache(client, cfg.redis_prefix, CircuitBreaker(cfg.retry_interval_s))
            self.cache_state = await self.cache.check()
            # Online features share the cache's connection: one client per worker.
            self.features = RedisFeatureReader(client, cfg.redis_prefix)
        else:
            self.features = SqlFeatureReader(cfg.warehouse_url)
        self._store = TableStore(cfg.warehouse_url)
        await self.refresh_snapshot()
        self._update_gauges()
        self._stopping = asyncio.Event()
        self._watcher = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._watcher is not None:
            # A flag rather than only cancel(): the Redis client may swallow a cancellation
            # that lands inside one of its reads, and the watcher would then sleep on.
            self._stopping.set()
            done, _ = await asyncio.wait({self._watcher}, timeout=self.config.check_interval_s + 1)
            if not done:
                self._watcher.cancel()
        if self.cache is not None:
            await self.cache.client.aclose()
        if isinstance(self.features, SqlFeatureReader):
            self.features.close()
        if self._store is not None:
            self._store.dispose()

    async def refresh_snapshot(self) -> None:
        """Reload the warehouse tables when their signature changed (off the event loop)."""
        try:
            current = self.snapshot.signature if self.snapshot else ()
            if await asyncio.to_thread(signature, self._store) != current or self.snapshot is None:
                self.snapshot = await asyncio.to_thread(load_snapshot, self._store)
            self.warehouse_error = ""
        except Exception as error:  # the service stays up on the data it has
            self.warehouse_error = f"{type(error).__name__}: {error}"
            log.warning("warehouse snapshot not refreshed: %s", self.warehouse_error)

    async def _watch(self) -> None:
        cfg = self.config
        refreshed = time.monotonic()
        while True:
            try:
                await asyncio.wait_for(self._stopping.wait(), cfg.check_interval_s)
                return
            except TimeoutError:
                pass
            if self.cache is not None:
                self.cache_state = await self.cache.check()
            if time.monotonic() - refreshed >= cfg.warehouse_refresh_s:
                await self.refresh_snapshot()
                refreshed = time.monotonic()
            self._update_gauges()

    def _update_gauges(self) -> None:
        self.metrics.ready.set(1.0 if self.is_ready() else 0.0)
        age = self.model_age_seconds()
        if age is not None:
            self.metrics.model_age.set(age)

    def is_ready(self) -> bool:
        if self.cache is not None:
            return self.cache_state == "ready" and self.cache.current is not None
        return self.snapshot is not None

    def model_age_seconds(self) -> float | None:
        if self.cache is not None and self.cache.current is not None:
            return self.cache.current.model_age_seconds()
        return self.snapshot.model_age_seconds() if self.snapshot else None

    async def answer(self, user_ids: list[str]) -> Answer:
        metrics = self.metrics
        reason = "no_cache"
        if self.cache is not None:
            try:
                version, payloads = await self.cache.lookup(user_ids)
            except CacheUnavailable:
                reason, self.cache_state = "cache_unavailable", "unreachable"
            except CacheNotReady:
                reason, self.cache_state = "cache_not_ready", "not_ready"
            else:
                users = []
                for user_id, payload in zip(user_ids, payloads, strict=True):
                    if payload is None:
                        users.append(UserAnswer(user_id, POPULAR, False, version.popular))
                    else:
                        users.append(UserAnswer(user_id, PERSONALISED, True, payload))
                hits = sum(u.personalised for u in users)
                metrics.cache_lookups.labels("hit").inc(hits)
                if hits < len(users):
                    metrics.cache_lookups.labels("miss").inc(len(users) - hits)
                    metrics.fallbacks.labels("cold_user").inc(len(users) - hits)
                return Answer(version.model_version, version.cache_version, "cache", users)
            metrics.cache_lookups.labels("bypass").inc(len(user_ids))
        metrics.fallbacks.labels(reason).inc(len(user_ids))
        snapshot = self.snapshot
        if snapshot is None:
            raise ServiceUnavailable(
                "no recommendations to serve yet: materialize the `recommendations` asset"
            )
        users = []
        for user_id in user_ids:
            payload = snapshot.users.get(user_id)
            if payload is None:
                users.append(UserAnswer(user_id, DATABASE, False, snapshot.popular))
            else:
                users.append(UserAnswer(user_id, DATABASE, True, payload))
        return Answer(snapshot.model_version, "", "database", users)

    def readiness(self) -> dict:
        snapshot = self.snapshot
        current = self.cache.current if self.cache is not None else None
        body: dict = {
            "ready": self.is_ready(),
            "cache": "redis" if self.cache is not None else "none",
            "cache_state": self.cache_state,
            "model_version": current.model_version if current else (
                snapshot.model_version if snapshot and self.cache is None else None),
            "model_age_seconds": self.model_age_seconds(),
            "warehouse": {
                "loaded": snapshot is not None,
                "users": len(snapshot.users) if snapshot else 0,
                "model_version": snapshot.model_version if snapshot else None,
            },
        }
        if current is not None:
            body.update(cache_version=current.cache_version, users=current.users,
                        published_at=current.published_at)
        if self.cache is not None and not body["ready"] and self.cache.last_error:
            body["detail"] = self.cache.last_error
        if self.warehouse_error:
            body["warehouse"]["error"] = self.warehouse_error
        return body
