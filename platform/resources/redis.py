"""Redis for the platform: the recommendation cache today; the online feature store and the
stream consumer can take the same resource (each under its own key namespace below ``key_prefix``).

``DATA_PLATFORM_REDIS_URL`` unset means no Redis: ``client()`` returns None and each user of the
resource falls back to its embedded path (the recommendation service reads the warehouse).
The URL may carry a password: it is bound with ``EnvVar`` and never put in metadata or messages.
"""

from __future__ import annotations

import os

import dagster as dg
import redis
from pydantic import Field, PrivateAttr
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

REDIS_URL_ENV = "DATA_PLATFORM_REDIS_URL"
REDIS_PREFIX_ENV = "DATA_PLATFORM_REDIS_PREFIX"
DEFAULT_PREFIX = "dp"


class RedisResource(dg.ConfigurableResource):
    """A Redis server (``DATA_PLATFORM_REDIS_URL``); unset URL = no Redis configured."""

    url: str | None = Field(default=None, description="redis://[:password@]host:port/db, or unset for none.")
    key_prefix: str = Field(default=DEFAULT_PREFIX, description="First part of every key the platform writes.")
    socket_timeout_s: float = Field(default=5.0, description="Per-command timeout of batch writers.")

    _client: redis.Redis | None = PrivateAttr(default=None)

    @property
    def configured(self) -> bool:
        return bool(self.url)

    def client(self) -> redis.Redis | None:
        if not self.url:
            return None
        if self._client is None:
            # Writers (assets) may retry a little; the online service uses its own short-timeout client.
            self._client = redis.Redis.from_url(
                self.url,
                socket_timeout=self.socket_timeout_s,
                socket_connect_timeout=self.socket_timeout_s,
                retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), 3),
            )
        return self._client

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def redis_from_env() -> RedisResource:
    """The resource bound to the environment: an EnvVar keeps the URL out of the UI and run config."""
    prefix = os.environ.get(REDIS_PREFIX_ENV) or DEFAULT_PREFIX
    if os.environ.get(REDIS_URL_ENV):
        return RedisResource(url=dg.EnvVar(REDIS_URL_ENV), key_prefix=prefix)
    return RedisResource(key_prefix=prefix)
