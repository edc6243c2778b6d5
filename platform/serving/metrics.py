"""The service's Prometheus metrics, in a registry of its own (several apps may live in one process).

With several workers, ``PROMETHEUS_MULTIPROC_DIR`` (set by ``data-platform serve --workers N``)
makes every worker write its samples to files there and ``/metrics`` add them up.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.latency = Histogram(
            "dp_recommendation_request_seconds",
            "Time to answer a recommendation request, by endpoint and source of the answer.",
            ["endpoint", "source"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.cache_lookups = Counter(
            "dp_recommendation_cache_lookups",
            "Users looked up: hit (list in the cache), miss (not in the cache: popular list), "
            "bypass (cache unavailable or not ready: warehouse). Hit ratio = hit / all.",
            ["result"], registry=r,
        )
        self.fallbacks = Counter(
            "dp_recommendation_fallbacks",
            "Users answered by a fallback, by reason: cold_user, cache_unavailable, "
            "cache_not_ready, no_cache.",
            ["reason"], registry=r,
        )
        self.errors = Counter(
            "dp_serving_errors",
            "Requests answered with an error, by kind: bad_request, not_found, "
            "method_not_allowed, unavailable, internal.",
            ["kind"], registry=r,
        )
        self.ready = Gauge(
            "dp_serving_ready", "1 when the cache holds a complete current version.",
            registry=r, multiprocess_mode="min",
        )
        self.model_age = Gauge(
            "dp_serving_model_age_seconds", "Age of the model whose recommendations are served.",
            registry=r, multiprocess_mode="max",
        )

    def render(self) -> tuple[bytes, str]:
        if os.environ.get(MULTIPROC_ENV):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
