"""The feature views as Dagster assets: metadata of the registry, history, online, checks."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from data_platform.assets.feature_store import build_feature_store
from data_platform.definitions import defs
from data_platform.features import OfflineStore
from data_platform.features.views import CUSTOMER_FEATURES
from data_platform.resources.redis import RedisResource
from data_platform.resources.warehouse import WarehouseIOManager, WarehouseResource
from data_platform.tablestore import TableStore


def rfm(now: pd.Timestamp, n: int = 30) -> pd.DataFrame:
    last = [now - pd.Timedelta(days=i % 5, hours=2) for i in range(n)]
    as_of = now.floor("D")
    return pd.DataFrame({
        "customer_id": pd.array([f"C{i:04d}" for i in range(n)], dtype="string"),
        "recency_days": [(as_of - t) / pd.Timedelta(days=1) for t in last],
        "frequency": pd.array([i % 4 + 1 for i in range(n)], dtype="Int64"),
        "monetary": [10.0 * i for i in range(n)],
        "avg_basket": [float(i) if i % 7 else None for i in range(n)],
        "lines_per_order": [1.0 + i % 3 for i in range(n)],
        "units_per_line": [2.0 - i % 2 for i in range(n)],
        "last_order_at": pd.to_datetime(last),
    })


def test_views_are_assets_with_registry_metadata_and_anomaly_checks():
    spec = defs.get_assets_def("customer_features").specs_by_key[dg.AssetKey("customer_features")]
    assert spec.code_version == CUSTOMER_FEATURES.version
    assert spec.owners == [CUSTOMER_FEATURES.owner]
    assert spec.metadata["ttl_seconds"] == 7 * 24 * 3600 and spec.metadata["entity"] == "customer_id"
    checks = {(k.asset_key.to_user_string(), k.name) for k in defs.resolve_asset_graph().asset_check_keys}
    for view in ("customer_features", "product_features"):
        assert {(view, "anomaly"), (view, "freshness"), (f"{view}_online", "parity")} <= checks


def test_materialize_view_then_online_and_the_checks_pass(tmp_path):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    TableStore(url).write("customer_rfm", rfm(now))
    assets, checks = build_feature_store()
    chosen = [a for a in assets if a.key.path[-1].startswith("customer_features")]
    chosen_checks = [c for c in checks if next(iter(c.check_keys)).asset_key.path[-1].startswith("customer")]
    warehouse = WarehouseResource(url=url)
    resources = {"warehouse": warehouse, "warehouse_io_manager": WarehouseIOManager(warehouse=warehouse),
                 "redis": RedisResource()}
    for _ in range(2):  # two computations: the history keeps both
        result = dg.materialize([dg.SourceAsset("customer_rfm"), *chosen, *chosen_checks], resources=resources)
        assert result.success
        evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert evaluations == {"freshness": True, "parity": True}, evaluations
    offline = OfflineStore(url)
    assert len(offline.history(CUSTOMER_FEATURES)) == 60
    assert offline.freshness(CUSTOMER_FEATURES)["entities"] == 30
    offline.dispose()
