"""The synthetic marketplace: canonical, deterministic, with ground truth and a known incident calendar."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from data_platform.sources import SCHEMAS, synthetic
from data_platform.sources.synthetic import generate, generate_range, incidents

DAY = date(2025, 3, 3)


def first_incident(kind: str, entity: str | None = None, seed: int = 0) -> synthetic.Incident:
    for incident in incidents(date(2025, 1, 1), date(2026, 1, 1), seed=seed):
        if incident.kind == kind and (entity is None or incident.entity == entity):
            return incident
    raise AssertionError(f"no {kind} incident in 2025")


@pytest.mark.parametrize("entity", list(SCHEMAS))
def test_every_entity_is_canonical_on_a_clean_day(entity):
    frame = generate(entity, DAY, incidents=False)
    schema = SCHEMAS[entity]
    assert list(frame.columns) == list(schema.columns)
    assert {c: str(frame[c].dtype) for c in frame} == dict(schema.columns)
    assert len(frame) > 0
    for col in schema.required:
        assert frame[col].notna().all(), col
    assert not frame.duplicated(list(schema.key)).any() or entity == "ratings"


@pytest.mark.parametrize("entity", list(SCHEMAS))
def test_a_day_is_a_pure_function_of_seed_and_date(entity):
    first = generate(entity, DAY, seed=3)
    generate(entity, DAY + timedelta(days=1), seed=3)  # other days must not disturb DAY
    pd.testing.assert_frame_equal(first, generate(entity, DAY, seed=3))
    if entity in ("orders", "ratings", "reviews"):
        assert not first.equals(generate(entity, DAY, seed=4))


def test_event_rows_fall_on_their_day():
    for entity in ("orders", "ratings", "reviews", "experiments"):
        times = generate(entity, DAY)[SCHEMAS[entity].event_time]
        assert (times.dt.date == DAY).all()


def test_daily_volumes_follow_the_documented_scale_and_weekly_season():
    start = date(2025, 3, 3)  # a Monday
    orders = generate_range("orders", start, start + timedelta(days=28), incidents=False)
    per_day = orders.groupby(orders["ordered_at"].dt.date).size()
    assert 300 < per_day.mean() < 550
    weekend = per_day[[d.weekday() >= 5 for d in per_day.index]].mean()
    weekday = per_day[[d.weekday() < 5 for d in per_day.index]].mean()
    assert weekend > weekday * 1.1
    big = generate("orders", DAY, scale=10, incidents=False)
    assert (
        8 * len(generate("orders", DAY, incidents=False))
        < len(big)
        < 12 * len(generate("orders", DAY, incidents=False))
    )
    assert 350 < len(generate("ratings", DAY, incidents=False)) < 650
    assert 800 < len(generate("experiments", DAY, incidents=False)) < 1200


def test_segments_really_differ_in_frequency_and_basket_size():
    orders = generate_range("orders", date(2025, 3, 1), date(2025, 4, 1), incidents=False)
    customers = generate("customers")
    assert customers["true_segment"].nunique() == 4 and len(customers) == 2000
    per_customer = orders.groupby("customer_id").agg(
        orders=("order_id", "nunique"), lines=("order_id", "size")
    )
    joined = customers.set_index("customer_id").join(per_customer).fillna({"orders": 0, "lines": 0})
    by_segment = joined.groupby("true_segment")[["orders"]].mean()["orders"]
    assert by_segment["champions"] > 2 * by_segment["loyal"] > 2 * by_segment["lapsing"]
    basket = orders.groupby("order_id").size().rename("lines").to_frame()
    basket["segment"] = (
        orders.drop_duplicates("order_id")
        .set_index("order_id")["customer_id"]
        .map(customers.set_index("customer_id")["true_segment"])
    )
    lines = basket.groupby("segment")["lines"].mean()
    assert lines["champions"] > lines["loyal"] > lines["bargain_hunters"]


def test_ratings_noise_floor_and_bounds():
    ratings = generate_range("ratings", date(2025, 3, 1), date(2025, 3, 15), incidents=False)
    assert ratings["rating"].between(0.5, 5.0).all()
    assert ratings["rating"].round(1).nunique() > 20  # not rounded to stars
    assert synthetic.RATING_NOISE_SD == pytest.approx(0.6)
    assert 0.6 < ratings["rating"].std() < 1.2


def test_experiment_assignment_is_stable_balanced_and_lifted():
    frame = generate_range("experiments", date(2025, 3, 1), date(2025, 6, 1), incidents=False)
    again = synthetic.assign_variant("checkout_v2", frame["user_id"].head(100))
    assert list(again) == list(frame["variant"].head(100))
    share_b = (frame["variant"] == "B").mean()
    assert 0.48 < share_b < 0.52
    rate = frame.groupby("variant")["converted"].mean()
    assert 0.085 < rate["A"] < 0.115
    assert rate["B"] > rate["A"]
    assert (frame.loc[~frame["converted"], "revenue"] == 0).all()
    assert (frame.loc[frame["converted"], "revenue"] > 0).all()


def test_review_labels_follow_text_mostly_but_not_always():
    reviews = generate_range("reviews", date(2025, 3, 1), date(2025, 4, 1), incidents=False)
    positive = reviews["text"].str.contains("great|excellent|love|perfect|amazing")
    agreement = (positive == (reviews["label"] == 1)).mean()
    assert 0.55 < agreement < 0.95
    assert reviews["text"].str.contains("not good|never disappointed|not bad|never again").any()
    assert reviews["label"].isin([0, 1]).all()


def test_incident_calendar_rules():
    found = incidents(date(2024, 1, 1), date(2026, 1, 1))
    days = [i.day for i in found]
    assert days == sorted(set(days))  # at most one per day
    assert all(b - a >= timedelta(days=2) for a, b in zip(days, days[1:], strict=False))
    assert all(d.toordinal() % synthetic.INCIDENT_PERIOD == synthetic.INCIDENT_PHASE for d in days)
    assert 6 <= 731 / len(found) <= 10
    assert {i.kind for i in found} == set(synthetic.INCIDENT_KINDS)
    assert {d.weekday() for d in days} == set(range(7))
    assert found == incidents(date(2024, 1, 1), date(2026, 1, 1))


def test_no_incident_means_clean_days():
    for incident in incidents(date(2025, 1, 1), date(2025, 3, 1)):
        clean = generate(incident.entity, incident.day, incidents=False)
        assert list(clean.columns) == list(SCHEMAS[incident.entity].columns)
        assert len(clean) > 0


def neighbours(entity: str, day: date) -> pd.DataFrame:
    return pd.concat(
        [generate(entity, day + timedelta(days=k), incidents=False) for k in (-2, -1, 1, 2)]
    )


def test_volume_drop_removes_most_orders():
    incident = first_incident("volume_drop")
    rows = len(generate("orders", incident.day))
    normal = len(neighbours("orders", incident.day)) / 4
    assert rows < 0.45 * normal


@pytest.mark.parametrize("entity,column", [("orders", "customer_id"), ("reviews", "text")])
def test_null_spike_moves_the_null_fraction(entity, column):
    incident = first_incident("null_spike", entity)
    assert incident.column == column
    frame = generate(entity, incident.day)
    assert 0.25 < frame[column].isna().mean() < 0.55
    assert neighbours(entity, incident.day)[column].isna().mean() == 0


def test_duplicate_burst_repeats_rows_exactly():
    frame = generate("ratings", first_incident("duplicate_burst").day)
    assert 0.15 < frame.duplicated().mean() < 0.35
    assert neighbours("ratings", first_incident("duplicate_burst").day).duplicated().mean() < 0.01


def test_schema_drift_returns_a_drifted_frame():
    drifts = [i for i in incidents(date(2025, 1, 1), date(2027, 1, 1)) if i.kind == "schema_drift"]
    columns = {i.column: set(generate("reviews", i.day).columns) for i in drifts}
    canonical = set(SCHEMAS["reviews"].columns)
    assert columns["text"] == canonical - {"text"} | {"review_text"}
    assert columns["sentiment_hint"] == canonical | {"sentiment_hint"}


def test_missing_partition_is_empty_and_distribution_shift_triples_prices():
    assert len(generate("experiments", first_incident("missing_partition").day)) == 0
    shifted = first_incident("distribution_shift").day
    ratio = (
        generate("orders", shifted)["unit_price"].median()
        / neighbours("orders", shifted)["unit_price"].median()
    )
    assert 2.0 < ratio < 4.5


def test_incidents_touch_only_their_entity_and_day():
    incident = first_incident("volume_drop")
    for entity in ("ratings", "reviews", "experiments"):
        pd.testing.assert_frame_equal(
            generate(entity, incident.day), generate(entity, incident.day, incidents=False)
        )


def test_unknown_entity_and_missing_day_are_errors():
    with pytest.raises(ValueError, match="unknown entity"):
        generate("invoices", DAY)
    with pytest.raises(ValueError, match="needs a day"):
        generate("orders")


def test_large_scale_is_vectorized():
    frame = generate("orders", DAY, scale=100, incidents=False)
    assert len(frame) > 30_000
    assert np.all(frame.groupby("order_id")["line_no"].min() == 1)


def test_population_grows_the_world_and_defaults_to_the_reference_world():
    day = date(2025, 6, 2)
    assert synthetic.generate("ratings", day, population=1.0).equals(synthetic.generate("ratings", day))
    customers = synthetic.generate("customers", population=4)
    products = synthetic.generate("products", population=4)
    assert len(customers) == 4 * synthetic.N_CUSTOMERS and customers["customer_id"].is_unique
    assert len(products) == 4 * synthetic.N_PRODUCTS and products["product_id"].is_unique
    ratings = synthetic.generate("ratings", day, scale=40, population=4)
    assert set(ratings["user_id"]) <= set(customers["customer_id"])
    assert set(ratings["item_id"]) <= set(products["product_id"])
    # Customers beyond the reference population take part.
    assert ratings["user_id"].str.slice(1).astype(int).max() >= synthetic.N_CUSTOMERS
    # More customers and items: fewer ratings re-rate a pair already rated that day.
    reference = synthetic.generate("ratings", day, scale=40)
    key = ["user_id", "item_id"]
    assert ratings.duplicated(key).mean() < reference.duplicated(key).mean()
    with pytest.raises(ValueError, match="population"):
        synthetic.generate("ratings", day, population=0)
