"""The feature API of the online service (real uvicorn on loopback) through the Python client."""

from __future__ import annotations

import importlib.util
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from data_platform.features import Feature, FeatureView, OfflineStore
from data_platform.features.client import FeatureClient, FeatureClientError
from data_platform.features.online import RedisOnlineStore, SqlOnlineStore, materialize
from data_platform.serving.config import ServingConfig

_spec = importlib.util.spec_from_file_location(
    "serving_helpers", Path(__file__).parents[1] / "serving" / "helpers.py")
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)

NOW = pd.Timestamp.now(tz="UTC").tz_localize(None).floor("s")
VIEW = FeatureView(name="spend", entity="customer_id", features=(Feature("amount"), Feature("orders", "Int64")),
                   ttl=timedelta(days=3), owner="team:ml")


@pytest.mark.parametrize("backend", ["sql", "redis"])
def test_single_and_batch_lookup_over_http(backend, tmp_path, request):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    offline = OfflineStore(url)
    offline.write(VIEW, pd.DataFrame({
        "customer_id": ["c1", "c2", "c1"], "amount": [1.0, 2.5, 3.25],
        "orders": pd.array([1, 2, 3], dtype="Int64"),
        "event_timestamp": [NOW - pd.Timedelta(hours=3), NOW - pd.Timedelta(hours=2), NOW - pd.Timedelta(hours=1)],
    }), created_at=NOW - pd.Timedelta(minutes=30))
    if backend == "redis":
        prefix = request.getfixturevalue("redis_prefix")
        online = RedisOnlineStore(request.getfixturevalue("redis_client"), prefix=prefix)
        config = ServingConfig(redis_url=request.getfixturevalue("redis_url"), redis_prefix=prefix,
                               warehouse_url=url)
    else:
        online = SqlOnlineStore(offline)
        config = ServingConfig(warehouse_url=url)
    result = materialize(VIEW, offline, online)
    with helpers.Service(config) as service, FeatureClient(f"http://127.0.0.1:{service.port}") as api:
        c1 = api.get("spend", "c1")
        assert c1["amount"] == 3.25 and c1["orders"] == 3
        assert pd.Timestamp(c1["event_timestamp"]) == NOW - pd.Timedelta(hours=1)
        assert api.get("spend", "nobody") is None
        assert [r and r["amount"] for r in api.get_many("spend", ["c2", "nobody", "c1"])] == [2.5, None, 3.25]
        status, _, body = service.request("GET", "/v1/features/spend/c2")
        assert status == 200 and body["version"] == result.version
        with pytest.raises(FeatureClientError, match="404"):
            api.get("unknown_view", "c1")
        with pytest.raises(FeatureClientError, match="400"):
            api.get_many("spend", [])
    offline.dispose()
