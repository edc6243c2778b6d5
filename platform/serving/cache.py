"""The service's reader of the recommendation cache (asyncio Redis client) and its circuit breaker.

One round trip per request: a pipeline reads the ``current`` pointer and the users' payloads
under the version this worker last verified. When the pointer moved, the new version is verified
(manifest present, ``HLEN`` equal to the manifest's count) before anything of it is served.
A missing pointer (Redis restarted empty, nothing published) or a count that does not match
means "not ready": the caller answers from the warehouse instead of serving an empty cache.
"""

from __future__ import annotations

import time

from data_platform.serving import layout
from data_platform.serving.resp import RespClient

# A version that failed verification is not re-checked on every request, only this often.
REJECTED_RECHECK_S = 1.0


class CacheUnavailable(Exception):
    """Redis cannot be reached (or the circuit is open): answer from the warehouse."""


class CacheNotReady(Exception):
    """Redis answers but holds no complete current version: answer from the warehouse."""


class CircuitBreaker:
    """Closed: use Redis. Open after a failure: skip Redis until ``retry_interval_s`` passed, then
    let one request (or the background check) try; its success closes the circuit again. A trial
    that never reports back (its request was cancelled) counts as failed one interval later."""

    def __init__(self, retry_interval_s: float, clock=time.monotonic):
        self.retry_interval_s = retry_interval_s
        self._clock = clock
        self._open_until: float | None = None
        self.failures = 0

    @property
    def is_open(self) -> bool:
        return self._open_until is not None

    def allow(self) -> bool:
        if self._open_until is None:
            return True
        now = self._clock()
        if now < self._open_until:
            return False
        self._open_until = now + self.retry_interval_s  # this caller is the one trial
        return True

    def success(self) -> None:
        self._open_until = None

    def failure(self) -> None:
        self.failures += 1
        self._open_until = self._clock() + self.retry_interval_s


def connect(url: str, timeout_s: float) -> RespClient:
    # No retries inside the client: the fallback is the retry, and waiting is what we avoid.
    return RespClient(url, timeout_s)


class RecommendationCache:
    def __init__(self, client: RespClient, prefix: str, breaker: CircuitBreaker):
        self.client = client
        self.prefix = prefix
        self.breaker = breaker
        self.current: layout.CacheVersion | None = None
        self.last_error = ""
        self._current_key = layout.current_key(prefix)
        self._rejected: tuple[str, float] | None = None

    async def lookup(self, user_ids: list[str]) -> tuple[layout.CacheVersion, list[bytes | None]]:
        """The verified current version and each user's payload under it (None: not cached)."""
        if not self.breaker.allow():
            raise CacheUnavailable("circuit open: Redis failed recently")
        try:
            for _ in range(3):
                known = self.current
                commands = [("GET", self._current_key)]
                if known is not None:
                    commands.append(("HMGET", layout.users_key(self.prefix, known.cache_version), *user_ids))
                replies = await self.client.execute(*commands)
                pointer = replies[0]
                if pointer is None:
                    self.current = None
                    raise CacheNotReady("no current version in Redis (restarted empty, or never published)")
                version = pointer.decode()
                if known is not None and version == known.cache_version:
                    self.breaker.success()
                    return known, replies[1]
                await self._adopt(version)
            raise CacheNotReady("the current version kept changing during one read")
        except CacheNotReady:
            self.breaker.success()  # Redis answered: the circuit is fine, the data is not
            raise
        except Exception as error:  # unreachable, or an answer we cannot use: the warehouse answers
            self._fail(error)
            raise CacheUnavailable(f"Redis unusable: {type(error).__name__}") from None

    async def _adopt(self, version: str) -> None:
        now = time.monotonic()
        if self._rejected and self._rejected[0] == version and now < self._rejected[1]:
            raise CacheNotReady(f"cache version {version} is incomplete")
        flat, count = await self.client.execute(
            ("HGETALL", layout.meta_key(self.prefix, version)),
            ("HLEN", layout.users_key(self.prefix, version)),
        )
        meta = dict(zip(flat[::2], flat[1::2], strict=True))
        if not meta:
            self._reject(version, now)
            raise CacheNotReady(f"cache version {version} has no manifest")
        manifest = layout.CacheVersion.from_meta(meta)
        if manifest.users != int(count):
            self._reject(version, now)
            raise CacheNotReady(
                f"cache version {version} holds {count} users, its manifest says {manifest.users}"
            )
        self.current = manifest

    def _reject(self, version: str, now: float) -> None:
        self.current = None
        self._rejected = (version, now + REJECTED_RECHECK_S)

    def _fail(self, error: BaseException) -> None:
        self.last_error = f"{type(error).__name__}: {error}"
        self.breaker.failure()

    async def check(self) -> str:
        """Re-verify the served version (even its key count); the state for ``/readyz``:
        ``ready``, ``not_ready`` (reachable, nothing complete to serve) or ``unreachable``."""
        if not self.breaker.allow():
            return "unreachable"
        try:
            [pointer] = await self.client.execute(("GET", self._current_key))
            if pointer is None:
                self.current = None
                self.breaker.success()
                return "not_ready"
            self._rejected = None
            await self._adopt(pointer.decode())
            self.breaker.success()
            return "ready"
        except CacheNotReady as error:
            self.breaker.success()
            self.last_error = str(error)
            return "not_ready"
        except Exception as error:
            self._fail(error)
            return "unreachable"
