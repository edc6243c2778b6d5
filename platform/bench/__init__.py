"""Every benchmark of the platform, one module per benchmark; `data-platform bench ...` runs them.

- ``runner``: the ``data-platform bench`` entry point (``main``) and the handlers of the options.
- ``pipeline``: the pipeline's stages at growing sizes; ``warehouse``: table-store I/O against
  raw COPY; ``checks``: the cost of one anomaly check evaluation (``run_check_benchmark``).
- ``anomaly``: the detector against baselines on generated histories (development set, scoring,
  walk-forward); ``families``: the single-metric and joint families; ``nab`` and ``nab_score``:
  NAB's labelled series and NAB's scoring; ``anomaly_eval``: the splits of ``bench anomaly``.
- ``joint``: the joint detectors' ablation; ``platform``: the daily job's checks replayed
  without Dagster over long windows; ``streaming``: the stream detector on NAB's series.
- ``models``: model quality on public datasets and training cost at scale.
- ``serving`` (with ``loadgen``, open-loop load from another process), ``features`` and
  ``streaming_consumer``: the online service, the feature store and the stream consumer.

Nothing outside this package (but the CLI) imports it: the runtime carries no benchmark code.
Benchmarks may import any layer, Dagster included. Importing the package loads none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from data_platform.bench.checks import run_check_benchmark
    from data_platform.bench.runner import machine, main

__all__ = ["machine", "main", "run_check_benchmark"]

_FROM = {"machine": "runner", "main": "runner", "run_check_benchmark": "checks"}


def __getattr__(name: str) -> Any:
    if name in _FROM:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_FROM[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
