"""Deterministic metadata rules, as plain functions and as checks on real runs."""

from __future__ import annotations

import dagster as dg
import pytest

from data_platform.checks import (
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


def test_empty_partition_passes_only_with_a_reason():
    empty = {"dagster/row_count": 0}
    closed = has_rows(empty, "no rows on each of the last 3 Saturdays")
    assert closed.passed and "as expected" in closed.description
    assert closed.metadata["expected_empty"].text == "no rows on each of the last 3 Saturdays"
    assert not has_rows(empty, lambda: None).passed
    # The lookup runs only for an empty partition.
    assert has_rows({"dagster/row_count": 5}, lambda: pytest.fail("looked up")).passed
    assert fresh(empty, 24, "expected event Christmas").passed
    assert not fresh(empty, 24).passed  # no freshness lag recorded and no reason
    assert not fresh({"dagster/row_count": 3, "freshness_lag_hours": 30.0}, 24, "closed").passed


DAILY = dg.DailyPartitionsDefinition(start_date="2026-10-01")
ROWS_BY_DAY: dict[str, int] = {}


@dg.asset(partitions_def=DAILY)
def shop_orders(context) -> dg.MaterializeResult:  # annotation would be a string: Dagster rejects it
    rows = ROWS_BY_DAY[context.partition_key]
    metadata: dict = {"dagster/row_count": rows}
    if rows:
        metadata["freshness_lag_hours"] = 2.0
    return dg.MaterializeResult(metadata=metadata)


def test_has_rows_and_fresh_learn_a_weekly_closed_day_from_the_assets_own_history():
    from datetime import date, timedelta

    checks = [*build_row_count_checks([shop_orders]), *build_freshness_checks([shop_orders])]
    first = date(2026, 10, 5)  # a Monday; the shop never trades on Saturdays
    days = [first + timedelta(days=i) for i in range(29)]
    for day in days:
        ROWS_BY_DAY[day.isoformat()] = 0 if day.weekday() == 5 else 100
    ROWS_BY_DAY["2026-11-02"] = 0  # a Monday with no rows: an outage
    instance = dg.DagsterInstance.ephemeral()
    outcomes = {}
    for day in days:
        result = dg.materialize([shop_orders, *checks], instance=instance, partition_key=day.isoformat())
        outcomes[day.isoformat()] = {e.check_name: e for e in result.get_asset_check_evaluations()}
    saturdays = [d.isoformat() for d in days if d.weekday() == 5]
    assert saturdays == ["2026-10-10", "2026-10-17", "2026-10-24", "2026-10-31"]
    # The first three Saturdays are evidence, not yet a pattern; the fourth is a closed day.
    for key in saturdays[:3]:
        assert not outcomes[key]["has_rows"].passed, key
    fourth = outcomes["2026-10-31"]
    assert fourth["has_rows"].passed and fourth["fresh"].passed
    reason = fourth["has_rows"].metadata["expected_empty"].text
    assert "last 3 Saturdays (2026-10-10, 2026-10-17, 2026-10-24)" in reason
    assert "weekly closed day" in fourth["fresh"].description
    monday = outcomes["2026-11-02"]
    assert not monday["has_rows"].passed and not monday["fresh"].passed
    assert all(o["has_rows"].passed for k, o in outcomes.items() if k not in saturdays + ["2026-11-02"])


def test_calendar_can_declare_a_recurring_closed_weekday():
    checks = build_row_count_checks([shop_orders], expected_events=[{"weekday": "Saturday", "name": "closed"}])
    ROWS_BY_DAY["2026-10-03"] = 0  # the first Saturday: no history needed
    result = dg.materialize([shop_orders, *checks], instance=dg.DagsterInstance.ephemeral(),
                            partition_key="2026-10-03")
    evaluation = result.get_asset_check_evaluations()[0]
    assert evaluation.passed and evaluation.metadata["expected_empty"].text == "expected event closed"
    off = build_row_count_checks([shop_orders], closed_days=False)
    result = dg.materialize([shop_orders, *off], instance=dg.DagsterInstance.ephemeral(),
                            partition_key="2026-10-03")
    assert not result.get_asset_check_evaluations()[0].passed
