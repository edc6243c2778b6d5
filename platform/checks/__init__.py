"""Asset checks for any asset: history-aware anomaly checks and deterministic rules."""

from data_platform.checks.anomaly import (
    EXPECTED_TAG,
    PLOT_KEY,
    STATE_KEY,
    build_anomaly_checks,
    evaluate_anomaly,
)
from data_platform.checks.rules import (
    build_freshness_checks,
    build_key_checks,
    build_quarantine_checks,
    build_row_count_checks,
    build_schema_drift_checks,
    fresh,
    has_rows,
    keys_valid,
    quarantine_below,
    schema_drift,
)

__all__ = [
    "EXPECTED_TAG",
    "PLOT_KEY",
    "STATE_KEY",
    "build_anomaly_checks",
    "build_freshness_checks",
    "build_key_checks",
    "build_quarantine_checks",
    "build_row_count_checks",
    "build_schema_drift_checks",
    "evaluate_anomaly",
    "fresh",
    "has_rows",
    "keys_valid",
    "quarantine_below",
    "schema_drift",
]
