"""`data-platform features list`: every view, its freshness and its online version."""

from __future__ import annotations

import pandas as pd

from data_platform.cli import main
from data_platform.features import OfflineStore
from data_platform.features.online import SqlOnlineStore, materialize
from data_platform.features.views import CUSTOMER_FEATURES, PRODUCT_FEATURES


def test_features_list_shows_every_view_with_freshness(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    monkeypatch.setenv("DATA_PLATFORM_WAREHOUSE_URL", url)
    monkeypatch.delenv("DATA_PLATFORM_REDIS_URL", raising=False)
    offline = OfflineStore(url)
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    offline.write(CUSTOMER_FEATURES, pd.DataFrame({
        "customer_id": ["a", "b", "c"], "event_timestamp": [now - pd.Timedelta(hours=1)] * 3,
        "recency_days": [1.0, 2.0, 3.0], "frequency": [1.0, 2.0, 3.0], "monetary": [5.0, 6.0, 7.0],
        "avg_basket": [5.0, 3.0, None], "lines_per_order": [2.0, 1.0, None],
        "units_per_line": [1.5, 3.0, None]}))
    result = materialize(CUSTOMER_FEATURES, offline, SqlOnlineStore(offline))
    offline.dispose()
    assert main(["features", "list"]) == 0
    lines = {line.split(" | ")[0].strip("| "): line for line in capsys.readouterr().out.splitlines()}
    customer, product = lines[CUSTOMER_FEATURES.name], lines[PRODUCT_FEATURES.name]
    assert "| 3 | 3 | 1.0 h | yes |" in customer and f"{result.version} (3)" in customer
    assert "| never | NO | not materialized |" in product
