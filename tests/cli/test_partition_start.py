"""`demo` and `dev` start the daily partitions where the instance's synthetic data starts."""

from datetime import date

import dagster as dg
import pytest

from data_platform.assets.partitions import DEFAULT_START_DATE, daily_partitions
from data_platform.cli import pin_partition_start
from data_platform.resources.source import specs_from_env


@pytest.fixture
def instance(monkeypatch):
    # Set-then-empty records the variable, so pytest removes what pin_partition_start sets.
    monkeypatch.setenv("DATA_PLATFORM_START_DATE", "")
    for entity in ("orders", "ratings", "reviews", "experiments"):
        monkeypatch.delenv(f"DATA_PLATFORM_{entity.upper()}", raising=False)
    with dg.DagsterInstance.ephemeral() as opened:
        yield opened


def _materialize(instance, asset: str, partition: str) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=partition))


def test_a_fresh_instance_starts_at_the_demo_s_first_day(instance):
    assert pin_partition_start(instance, date(2026, 11, 5)) == "2026-11-05"
    keys = daily_partitions(specs_from_env()).get_partition_keys()
    assert keys[0] == "2026-11-05"


def test_the_start_never_moves_past_stored_history(instance, monkeypatch):
    _materialize(instance, "ratings_raw", "2026-10-20")
    _materialize(instance, "orders_raw", "2026-10-25")
    assert pin_partition_start(instance, date(2026, 11, 5)) == "2026-10-20"
    # ...and moves back for a demo that starts earlier (a later command, a fresh process).
    monkeypatch.setenv("DATA_PLATFORM_START_DATE", "")
    assert pin_partition_start(instance, date(2026, 9, 1)) == "2026-09-01"


def test_the_start_is_never_before_the_default_start(instance):
    assert pin_partition_start(instance, date(1999, 1, 1)) == DEFAULT_START_DATE.isoformat()


def test_an_explicit_start_or_a_file_source_is_left_alone(instance, monkeypatch):
    assert pin_partition_start(instance) is None  # no data, no demo window: the default stays
    monkeypatch.setenv("DATA_PLATFORM_ORDERS", "orders_csv:/data/orders.csv")
    assert pin_partition_start(instance, date(2026, 11, 5)) is None
    monkeypatch.delenv("DATA_PLATFORM_ORDERS")
    monkeypatch.setenv("DATA_PLATFORM_START_DATE", "2025-06-01")
    assert pin_partition_start(instance, date(2026, 11, 5)) is None
    assert daily_partitions(specs_from_env()).get_partition_keys()[0] == "2025-06-01"
