"""The service's settings, read from the environment (every one has a working default)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from data_platform.serving.layout import DEFAULT_PREFIX

REDIS_URL_ENV = "DATA_PLATFORM_REDIS_URL"
REDIS_PREFIX_ENV = "DATA_PLATFORM_REDIS_PREFIX"
WAREHOUSE_URL_ENV = "DATA_PLATFORM_WAREHOUSE_URL"
# The warehouse resource's own default (resources/warehouse.py), repeated here because the
# service does not import the Dagster layer.
DEFAULT_WAREHOUSE_URL = "sqlite:///.data/warehouse.db"
RECOMMENDATIONS_TABLE = "recommendations"
CACHE_TABLE = "recommendation_cache"
MAX_N = 100
MAX_BATCH_USERS = 100


@dataclass(frozen=True)
class ServingConfig:
    """``redis_url`` None means no cache: every answer comes from the warehouse snapshot."""

    redis_url: str | None = None
    redis_prefix: str = DEFAULT_PREFIX
    warehouse_url: str = DEFAULT_WAREHOUSE_URL
    # A healthy Redis answers in well under a millisecond; waiting longer only delays the
    # fallback. After a failure the circuit stays open (warehouse only) for retry_interval_s.
    redis_timeout_s: float = 0.1
    retry_interval_s: float = 1.0
    # How often each worker re-verifies the served version (pointer, manifest, key count).
    check_interval_s: float = 1.0
    # How often the warehouse snapshot looks for a newer table (a cheap signature query).
    warehouse_refresh_s: float = 30.0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> ServingConfig:
        env = os.environ if environ is None else environ
        values = {
            "redis_url": env.get(REDIS_URL_ENV) or None,
            "redis_prefix": env.get(REDIS_PREFIX_ENV) or DEFAULT_PREFIX,
            "warehouse_url": env.get(WAREHOUSE_URL_ENV) or DEFAULT_WAREHOUSE_URL,
        }
        values.update(overrides)
        return cls(**values)
