"""The checks this platform applies to its own assets (the library in anomaly.py/rules.py is generic).

- Every data asset gets a history-aware `anomaly` check. `<entity>_rejected` and
  `<entity>_quarantine` are judged through their parent's metadata (`rejected_row_count`,
  `quarantined_row_count`, `quarantine_share`), so they carry no check of their own.
- Critical assets (`catalog.BLOCKING_ASSETS`) get blocking ERROR checks: a bad day of orders,
  ratings or reviews stops the assets downstream of it in the same run.
- The deterministic rules (`checks/rules.py`) run inside the ingestion and cleaning steps on the
  metadata those steps record: no extra step per rule, the same verdict.
"""

from __future__ import annotations

import dagster as dg

from data_platform.catalog import BLOCKING_ASSETS, SET_ASIDE_TABLES
from data_platform.checks.anomaly import build_anomaly_checks


def _watched(key: dg.AssetKey) -> bool:
    return key.path[-1] not in SET_ASIDE_TABLES


def build_platform_checks(assets: list[dg.AssetsDefinition]) -> list[dg.AssetChecksDefinition]:
    # Specs, not bare keys: each carries its asset's partitions definition, so the checks of the
    # daily assets are partitioned like them (the UI shows check status per partition).
    specs = [spec for a in assets for spec in a.specs if _watched(spec.key)]
    by_name = {spec.key.path[-1]: spec for spec in specs}
    critical = [by_name[n] for n in BLOCKING_ASSETS if n in by_name]
    ordinary = [s for s in specs if s not in critical]
    checks = build_anomaly_checks(ordinary)
    checks += build_anomaly_checks(critical, severity=dg.AssetCheckSeverity.ERROR, blocking=True)
    return checks
