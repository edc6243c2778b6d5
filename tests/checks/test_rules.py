"""Deterministic metadata rules, as plain functions and as checks on real runs."""

from __future__ import annotations

import dagster as dg
import pytest
from data_platform.checks import (
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


def schema(**columns: str) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in columns.items()])


def test_schema_drift_reports_added_removed_and_retyped_columns():
    before = {"dagster/column_schema": schema(id="int64", price="float64", note="str")}
    after = {"dagster/column_schema": schema(id="str", price="float64", channel="str")}
    result = schema_drift(before, after)
    assert not result.passed
    assert "added channel" in result.description
    assert "removed note" in result.description
    assert "retyped id (int64 -> str)" in result.description
    assert result.metadata["retyped_columns"].value == 1
    assert schema_drift(before, before).passed
    assert schema_drift(None, after).passed


def test_schema_drift_falls_back_to_the_schema_hash():
    assert not schema_drift({"schema_hash": 1}, {"schema_hash": 2}).passed
    assert schema_drift({"schema_hash": 7}, {"schema_hash": 7}).passed
    missing = schema_drift({"x": 1}, {"y": 2})
    assert not missing.passed and "not recorded" in missing.description


def test_keys_valid_catches_duplicates_and_nulls():
    good = {"duplicate_key_count": 0, "null_fraction/order_id": 0.0}
    assert keys_valid(good, ["order_id"]).passed
    dup = keys_valid({**good, "duplicate_key_count": 3}, ["order_id"])
    assert not dup.passed and "3 duplicate keys" in dup.description
    null = keys_valid({**good, "null_fraction/order_id": 0.1}, ["order_id"])
    assert not null.passed and "order_id" in null.description
    assert not keys_valid({"duplicate_key_count": 0}, ["order_id"]).passed  # fraction not recorded


def test_row_count_freshness_and_quarantine_rules():
    assert has_rows({"dagster/row_count": 3}).passed
    empty = has_rows({"dagster/row_count": dg.IntMetadataValue(0)})
    assert not empty.passed and "no rows" in empty.description
    assert not has_rows({}).passed
    assert fresh({"freshness_lag_hours": 2.0}, 6).passed
    assert not fresh({"freshness_lag_hours": 30.0}, 24).passed
    assert quarantine_below({"quarantine_share": 0.01}, 0.05).passed
    assert not quarantine_below({"quarantine_share": 0.2}, 0.05).passed
    with pytest.raises(ValueError, match="max_share"):
        build_quarantine_checks(["x"], max_share=2)
    with pytest.raises(TypeError, match="unknown options"):
        build_row_count_checks(["x"], severity_level="ERROR")


RUN_METADATA: list[dict] = []


@dg.asset
def customers() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata=RUN_METADATA[-1])


def test_rule_checks_on_real_runs_catch_drift_zero_rows_and_duplicates():
    checks = [
        *build_schema_drift_checks([customers]),
        *build_row_count_checks([customers]),
        *build_key_checks([customers], keys=["customer_id"], severity=dg.AssetCheckSeverity.ERROR),
    ]
    good = {
        "dagster/row_count": 10,
        "duplicate_key_count": 0,
        "null_fraction/customer_id": 0.0,
        "dagster/column_schema": schema(customer_id="int64", city="str"),
    }
    bad = {
        "dagster/row_count": 0,
        "duplicate_key_count": 2,
        "null_fraction/customer_id": 0.0,
        "dagster/column_schema": schema(customer_id="int64", city="str", segment="str"),
    }
    instance = dg.DagsterInstance.ephemeral()
    outcomes = []
    for metadata in (good, good, bad):
        RUN_METADATA.append(metadata)
        result = dg.materialize([customers, *checks], instance=instance)
        outcomes.append({e.check_name: e for e in result.get_asset_check_evaluations()})
    assert all(e.passed for run in outcomes[:2] for e in run.values())
    last = outcomes[2]
    assert not last["schema_drift"].passed and "added segment" in last["schema_drift"].description
    assert not last["has_rows"].passed
    assert not last["keys_valid"].passed
    assert last["keys_valid"].severity == dg.AssetCheckSeverity.ERROR
