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
    keys = [key for a in assets for key in a.keys if _watched(key)]
    by_name = {key.path[-1]: key for key in keys}
    critical = [by_name[n] for n in BLOCKING_ASSETS if n in by_name]
    ordinary = [k for k in keys if k not in critical]
    # Bare keys: each check learns its asset's partitioning from the job it runs in.
    checks = build_anomaly_checks(ordinary)
    checks += build_anomaly_checks(critical, severity=dg.AssetCheckSeverity.ERROR, blocking=True)
    return checks
