"""Materialization into the online store (Redis and the warehouse table) and parity with offline."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from data_platform.features import Feature, FeatureView, OfflineStore
from data_platform.features.online import (
    RedisOnlineStore,
    SqlOnlineStore,
    materialize,
    parity,
    rows_key,
)

NOW = pd.Timestamp("2026-03-10 12:00:00")
VIEW = FeatureView(name="spend", entity="customer_id",
                   features=(Feature("amount"), Feature("orders", "Int64"), Feature("segment", "string")),
                   ttl=timedelta(days=3), owner="team:ml")


@pytest.fixture
def offline(tmp_path):
    store = OfflineStore(f"sqlite:///{tmp_path / 'warehouse.db'}")
    rng = np.random.default_rng(3)
    for k, day in enumerate([5, 2, 1]):
        n = 300
        frame = pd.DataFrame({
            "customer_id": [f"c{i:04d}" for i in rng.permutation(400)[:n]],
            "event_timestamp": NOW - pd.Timedelta(days=day) + pd.to_timedelta(rng.integers(0, 3600, n), unit="s"),
            "amount": rng.random(n) * 100,
            "orders": pd.array(rng.integers(0, 20, n), dtype="Int64"),
            "segment": pd.array(rng.choice(["a", "b", None], n), dtype="string"),
        })
        frame.loc[frame.index[:5], "amount"] = np.nan
        store.write(VIEW, frame, created_at=NOW - pd.Timedelta(days=day) + pd.Timedelta(hours=2),
                    computation=f"run{k}")
    yield store
    store.dispose()


@pytest.fixture(params=["sql", "redis"])
def online(request, offline):
    if request.param == "sql":
        return SqlOnlineStore(offline)
    return RedisOnlineStore(request.getfixturevalue("redis_client"), prefix=request.getfixturevalue("redis_prefix"),
                            chunk=100)


def test_online_equals_offline_as_of_the_materialization(offline, online):
    result = materialize(VIEW, offline, online, as_of=NOW)
    latest = offline.latest(VIEW, as_of=NOW)
    assert result.entities == len(latest) > 0
    check = parity(VIEW, offline, online)
    assert check.passed, check.describe()
    assert check.checked == offline.history(VIEW)["customer_id"].nunique()
    # Lookups, single and batch, give the latest values; unknown entities give None.
    row = latest.iloc[7]
    [got] = online.lookup(VIEW.name, [row.customer_id])
    assert got["amount"] == (None if pd.isna(row.amount) else row.amount)
    assert got["orders"] == int(row.orders)
    assert pd.Timestamp(got["event_timestamp"]) == row.event_timestamp
    many = online.lookup(VIEW.name, [*latest.customer_id[:50], "nobody"])
    assert many[-1] is None and [m["orders"] for m in many[:50]] == latest.orders[:50].tolist()


def test_a_tampered_or_stale_online_value_fails_parity(offline, online):
    materialize(VIEW, offline, online, as_of=NOW)
    late = pd.DataFrame({"customer_id": ["c0001"], "event_timestamp": [NOW - pd.Timedelta(minutes=1)],
                         "amount": [1.5], "orders": pd.array([1], dtype="Int64"),
                         "segment": pd.array(["z"], dtype="string")})
    offline.write(VIEW, late, created_at=NOW - pd.Timedelta(seconds=30), computation="late")
    check = parity(VIEW, offline, online)
    assert not check.passed and check.mismatched + check.missing_online == ["c0001"]
    second = materialize(VIEW, offline, online, as_of=NOW)
    assert parity(VIEW, offline, online).passed
    assert second.previous and second.version != second.previous


def test_redis_version_switch_keeps_the_previous_version_for_rollback(offline, redis_client, redis_prefix):
    online = RedisOnlineStore(redis_client, prefix=redis_prefix)
    first = materialize(VIEW, offline, online, as_of=NOW - pd.Timedelta(days=1))
    second = materialize(VIEW, offline, online, as_of=NOW)
    assert online.manifest(VIEW.name)["version"] == second.version
    assert second.previous == first.version
    old = rows_key(online.prefix, VIEW.name, first.version)
    assert redis_client.hlen(old) == first.entities and 0 < redis_client.ttl(old)
    assert redis_client.ttl(rows_key(online.prefix, VIEW.name, second.version)) == -1
