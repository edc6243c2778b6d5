"""The names ARCHITECTURE.md promises users exist and behave as documented."""

import pandas as pd

import data_platform.quality as quality
from data_platform.checks import build_anomaly_checks
from data_platform.definitions import defs
from data_platform.ml import experiments, recommender, segmentation, sentiment
from data_platform.sources import LoadResult, load


def test_detect_is_public_and_judges_a_spike():
    history = pd.DataFrame({"row_count": [100.0, 102, 98, 101, 99, 100, 103, 97, 100, 101]})
    verdict = quality.detect(history, pd.Series({"row_count": 400.0}))
    assert isinstance(verdict, quality.Verdict)
    assert verdict.is_anomaly and verdict.metrics["row_count"].flagged
    calm = quality.detect(history, pd.Series({"row_count": 100.0}))
    assert not calm.is_anomaly


def test_every_model_exposes_train_and_evaluate():
    for module in (recommender, segmentation, sentiment, experiments):
        assert callable(module.train_and_evaluate)


def test_load_returns_a_load_result(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_id,customer_id,order_date,product_id,quantity,unit_price\n"
        "o1,c1,2025-01-02,p1,2,3.5\n"
        "o2,c2,not-a-date,p2,1,1.0\n"
    )
    result = load("orders_csv", path)
    assert isinstance(result, LoadResult)
    assert list(result.data["order_id"]) == ["o1"]
    assert len(result.rejected) == 1 and result.rejected["line"].iloc[0] == 3


def test_definitions_and_factory_are_public():
    assert defs.resolve_job_def("daily_job").partitions_def is not None
    checks = build_anomaly_checks(["some_users_asset"])
    assert [c.check_keys for c in checks]
