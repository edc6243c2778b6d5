"""The point-in-time join, on SQLite and on PostgreSQL (the same expectations)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from data_platform.features import Feature, FeatureView, get_training_set, training_set_hash

T = pd.Timestamp("2026-03-10 12:00:00")
VIEW = FeatureView(name="spend", entity="customer_id", features=(Feature("amount"), Feature("orders", "Int64")),
                   ttl=timedelta(days=2), owner="team:ml")
OTHER = FeatureView(name="item_stats", entity="item_id", features=(Feature("rating"),),
                    ttl=timedelta(days=30), owner="team:ml")


def rows(*values: tuple) -> pd.DataFrame:
    """(entity, event time, created time, amount) rows."""
    frame = pd.DataFrame(values, columns=["customer_id", "event_timestamp", "created_timestamp", "amount"])
    frame["orders"] = pd.array(range(len(frame)), dtype="Int64")
    return frame


def labels(*values: tuple) -> pd.DataFrame:
    return pd.DataFrame(values, columns=["customer_id", "event_timestamp"])


def test_value_at_t_is_used_never_the_one_after(offline):
    h = pd.Timedelta(hours=1)
    offline.write(VIEW, rows(("c1", T - h, T - h, 1.0), ("c1", T, T, 2.0), ("c1", T + h, T + h, 3.0)),
                  computation="all")
    got = get_training_set(labels(("c1", T), ("c1", T - h), ("c1", T + 2 * h)), [VIEW], offline)
    assert got["amount"].tolist() == [2.0, 1.0, 3.0]
    assert got["customer_id"].tolist() == ["c1", "c1", "c1"]  # label rows keep their order


def test_older_than_ttl_is_null_and_unknown_entity_is_null(offline):
    offline.write(VIEW, rows(("c1", T - pd.Timedelta(days=3), T - pd.Timedelta(days=3), 5.0),
                             ("c2", T - pd.Timedelta(days=1), T - pd.Timedelta(days=1), 6.0)))
    got = get_training_set(labels(("c1", T), ("c2", T), ("c9", T)), [VIEW], offline)
    assert got["amount"].isna().tolist() == [True, False, True]
    assert got["amount"][1] == 6.0


def test_late_correction_created_after_the_label_is_not_used(offline):
    day = pd.Timedelta(days=1)
    offline.write(VIEW, rows(("c1", T - day, T - day, 10.0)), computation="first")
    # The same event time corrected a day after the label time.
    offline.write(VIEW, rows(("c1", T - day, T + day, 99.0)), computation="correction")
    got = get_training_set(labels(("c1", T), ("c1", T + day)), [VIEW], offline)
    assert got["amount"].tolist() == [10.0, 99.0]


def test_equal_event_times_latest_created_wins(offline):
    e = T - pd.Timedelta(hours=5)
    offline.write(VIEW, rows(("c1", e, e + pd.Timedelta(hours=2), 2.0)), computation="b")
    offline.write(VIEW, rows(("c1", e, e + pd.Timedelta(hours=1), 1.0)), computation="a")
    offline.write(VIEW, rows(("c1", e, e + pd.Timedelta(hours=3), 3.0)), computation="c")
    got = get_training_set(labels(("c1", T)), [VIEW], offline)
    assert got["amount"].tolist() == [3.0]
    assert got["orders"].dtype == "Int64"


def test_two_views_and_rebuilding_gives_the_same_hash(offline):
    rng = np.random.default_rng(7)
    n = 400
    stamps = T - pd.to_timedelta(rng.integers(0, 4 * 24 * 60, n), unit="min")
    spend = pd.DataFrame({"customer_id": [f"c{i}" for i in rng.integers(0, 20, n)],
                          "event_timestamp": stamps, "amount": rng.random(n).round(3),
                          "orders": pd.array(rng.integers(0, 9, n), dtype="Int64")})
    spend["created_timestamp"] = spend["event_timestamp"] + pd.Timedelta(minutes=5)
    items = pd.DataFrame({"item_id": [f"p{i}" for i in rng.integers(0, 10, 100)],
                          "event_timestamp": T - pd.to_timedelta(rng.integers(0, 40, 100), unit="D"),
                          "rating": rng.random(100)})
    offline.write(VIEW, spend)
    offline.write(OTHER, items, created_at=T)
    wanted = pd.DataFrame({"customer_id": [f"c{i}" for i in rng.integers(0, 25, 300)],
                           "item_id": [f"p{i}" for i in rng.integers(0, 12, 300)],
                           "event_timestamp": T - pd.to_timedelta(rng.integers(0, 3 * 24 * 60, 300), unit="min"),
                           "label": rng.integers(0, 2, 300)})
    first = get_training_set(wanted, [VIEW, OTHER], offline)
    again = get_training_set(wanted, [VIEW, OTHER], offline)
    assert training_set_hash(first) == training_set_hash(again)
    # The same answer as a plain-pandas reading of the rule, row by row.
    for i in range(0, 300, 7):
        label = wanted.iloc[i]
        ok = spend[(spend.customer_id == label.customer_id) & (spend.event_timestamp <= label.event_timestamp)
                   & (spend.event_timestamp >= label.event_timestamp - VIEW.ttl)
                   & (spend.created_timestamp <= label.event_timestamp)]
        expected = ok.sort_values(["event_timestamp", "created_timestamp"]).amount.iloc[-1] if len(ok) else None
        assert (pd.isna(first.amount[i]) if expected is None else first.amount[i] == expected), i
    changed = wanted.assign(event_timestamp=wanted.event_timestamp + pd.Timedelta(hours=12))
    assert training_set_hash(get_training_set(changed, [VIEW, OTHER], offline)) != training_set_hash(first)


def test_latest_is_the_join_as_of_now(offline):
    offline.write(VIEW, rows(("c1", T - pd.Timedelta(hours=2), T - pd.Timedelta(hours=2), 1.0),
                             ("c1", T - pd.Timedelta(hours=1), T - pd.Timedelta(hours=1), 2.0),
                             ("c2", T - pd.Timedelta(days=5), T - pd.Timedelta(days=5), 3.0)))
    latest = offline.latest(VIEW, as_of=T)
    assert latest["customer_id"].tolist() == ["c1"] and latest["amount"].tolist() == [2.0]


def test_missing_history_or_columns_is_a_clear_error(offline):
    with pytest.raises(ValueError, match="no history"):
        get_training_set(labels(("c1", T)), [VIEW], offline)
    with pytest.raises(ValueError, match="lack"):
        offline.write(VIEW, pd.DataFrame({"customer_id": ["c1"]}))
