"""The online service: recommendations over HTTP from a Redis cache, with the warehouse behind it.

- ``layout``: the cache's keys in Redis and the payload encoding shared with the warehouse path.
- ``publish``: writes a new cache version and switches to it atomically (used by the cache asset).
- ``cache``: the service's reader of that cache, with short timeouts and a circuit breaker;
  ``resp``: the small pipelined Redis client it reads through.
- ``config``: the service's settings from the environment.
- ``warehouse``: the ``recommendations`` table held in memory (no Redis, or Redis unusable).
- ``service``: where each answer comes from; ``app``: the HTTP API; ``server``: uvicorn.

No Dagster here: the Dagster layer (assets/serving.py, resources/redis.py) wires it.
"""
