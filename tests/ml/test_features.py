from __future__ import annotations

import math

import pandas as pd
import pytest

from data_platform.ml import features
from data_platform.sources.schemas import SCHEMAS


def orders_frame() -> pd.DataFrame:
    rows = [
        # order, line, customer, product, when, quantity, unit price
        ("A1", 1, "c1", "p1", "2024-01-01 09:00", 2, 10.0),
        ("A1", 2, "c1", "p2", "2024-01-01 09:00", 1, 5.0),
        ("A2", 1, "c1", "p1", "2024-01-05 12:00", 1, 10.0),
        ("C3", 1, "c1", "p1", "2024-01-06 12:00", -1, 10.0),  # a return of one p1
        ("A4", 1, "c2", "p3", "2024-01-03 00:00", 3, 1.0),  # p3 is not in the catalog
        ("A5", 1, None, "p1", "2024-01-09 00:00", 1, 7.0),  # guest checkout
        ("C6", 1, "c3", "p2", "2024-01-08 00:00", -2, 5.0),  # only a return
    ]
    frame = pd.DataFrame(
        rows,
        columns=[
            "order_id",
            "line_no",
            "customer_id",
            "product_id",
            "ordered_at",
            "quantity",
            "unit_price",
        ],
    )
    frame["country"] = "UK"
    return SCHEMAS["orders"].conform(frame)


def products_frame() -> pd.DataFrame:
    return SCHEMAS["products"].conform(
        pd.DataFrame(
            {
                "product_id": ["p1", "p2"],
                "category": ["Home & Garden", "Toys"],
                "price": [10.0, 5.0],
                "description": ["lamp", "ball"],
            }
        )
    )


def test_customer_rfm_by_hand_with_a_return_line():
    rfm = features.customer_rfm(orders_frame()).set_index("customer_id")
    assert list(rfm.index) == ["c1", "c2", "c3"]
    c1 = rfm.loc["c1"]
    # as_of = latest line (guest, 2024-01-09) + 1 day; c1's last line is the return on the 6th.
    assert c1["recency_days"] == pytest.approx(3.5)
    assert c1["frequency"] == 2  # A1 and A2; the return C3 is not an order placed
    assert c1["monetary"] == pytest.approx(20 + 5 + 10 - 10)
    assert c1["avg_basket"] == pytest.approx((20 + 5 + 10) / 2)
    assert c1["lines_per_order"] == pytest.approx(3 / 2)  # A1 has two lines, A2 one
    assert c1["units_per_line"] == pytest.approx((2 + 1 + 1) / 3)  # the return is no purchase
    assert rfm.loc["c2", "units_per_line"] == pytest.approx(3.0)
    assert c1["first_order_at"] == pd.Timestamp("2024-01-01 09:00")
    assert c1["last_order_at"] == pd.Timestamp("2024-01-06 12:00")
    c3 = rfm.loc["c3"]
    assert c3["frequency"] == 0
    assert c3["monetary"] == pytest.approx(-10.0)
    assert pd.isna(c3["avg_basket"])
    assert pd.isna(c3["lines_per_order"]) and pd.isna(c3["units_per_line"])


def test_customer_rfm_counts_and_excludes_guest_lines():
    rfm = features.customer_rfm(orders_frame())
    assert rfm.attrs["excluded_rows"] == 1
    assert rfm["customer_id"].notna().all()
    assert str(rfm["frequency"].dtype) == "Int64"
    assert str(rfm["last_order_at"].dtype) == "datetime64[ns]"


def test_customer_rfm_explicit_as_of():
    rfm = features.customer_rfm(orders_frame(), as_of=pd.Timestamp("2024-01-31"))
    recency = rfm.set_index("customer_id")["recency_days"]
    assert recency["c2"] == pytest.approx(28.0)


def test_customer_rfm_category_shares_of_purchase_value():
    rfm = features.customer_rfm(orders_frame(), products=products_frame()).set_index("customer_id")
    share_columns = [c for c in rfm.columns if c.startswith("share_")]
    assert share_columns == ["share_home_garden", "share_toys", "share_unknown"]
    assert rfm.loc["c1", "share_home_garden"] == pytest.approx(30 / 35)
    assert rfm.loc["c1", "share_toys"] == pytest.approx(5 / 35)
    assert rfm.loc["c2", "share_unknown"] == pytest.approx(1.0)
    # c3 bought nothing: no mix to speak of.
    assert pd.isna(rfm.loc["c3", "share_toys"])
    bought = rfm.loc[["c1", "c2"], share_columns].sum(axis=1)
    assert bought.tolist() == pytest.approx([1.0, 1.0])


def test_customer_rfm_folds_small_categories_into_other():
    rfm = features.customer_rfm(orders_frame(), products=products_frame(), max_categories=1)
    share_columns = [c for c in rfm.columns if c.startswith("share_")]
    assert share_columns == ["share_home_garden", "share_other", "share_unknown"]
    c1 = rfm.set_index("customer_id").loc["c1"]
    assert c1["share_other"] == pytest.approx(5 / 35)


def ratings_frame() -> pd.DataFrame:
    return SCHEMAS["ratings"].conform(
        pd.DataFrame(
            {
                "user_id": ["u1", "u1", "u2", "u3"],
                "item_id": ["p1", "p2", "p1", "p1"],
                "rating": [4.0, 2.0, 5.0, 3.0],
                "rated_at": ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"],
            }
        )
    )


def test_user_features_by_hand():
    users = features.user_features(ratings_frame()).set_index("user_id")
    assert users.loc["u1", "n_ratings"] == 2
    assert users.loc["u1", "mean_rating"] == pytest.approx(3.0)
    assert users.loc["u1", "std_rating"] == pytest.approx(math.sqrt(2.0))
    assert pd.isna(users.loc["u2", "std_rating"])
    assert users.loc["u1", "first_rated_at"] == pd.Timestamp("2024-01-01")
    assert users.loc["u1", "last_rated_at"] == pd.Timestamp("2024-01-02")


def test_item_features_shrink_toward_the_global_mean():
    items = features.item_features(ratings_frame(), products_frame()).set_index("item_id")
    global_mean = 14 / 4
    weight = 2.0  # median ratings per item of (3, 1)
    assert items.loc["p1", "n_ratings"] == 3
    assert items.loc["p1", "mean_rating"] == pytest.approx(4.0)
    assert items.loc["p1", "bayesian_mean"] == pytest.approx((weight * global_mean + 12) / 5)
    assert items.loc["p2", "bayesian_mean"] == pytest.approx((weight * global_mean + 2) / 3)
    assert items.loc["p1", "popularity_rank"] == 1
    assert items.loc["p2", "popularity_rank"] == 2
    assert items.loc["p1", "category"] == "Home & Garden"


def test_item_features_explicit_prior_weight_and_no_products():
    items = features.item_features(ratings_frame(), prior_weight=0.0).set_index("item_id")
    assert items.loc["p2", "bayesian_mean"] == pytest.approx(2.0)
    assert items["category"].isna().all()


def test_review_text_features_by_hand():
    reviews = SCHEMAS["reviews"].conform(
        pd.DataFrame(
            {
                "review_id": ["r1", "r2", "r3"],
                "product_id": ["p1", None, "p2"],
                "customer_id": None,
                "text": ["I don't like it. NOT good!!", "Great?", "123"],
                "label": [0, 1, None],
                "rating": [1.0, None, None],
                "reviewed_at": ["2024-01-01", "2024-01-02", "2024-01-03"],
            }
        )
    )
    out = features.review_text_features(reviews).set_index("review_id")
    r1 = out.loc["r1"]
    assert r1["n_chars"] == 27
    assert r1["n_words"] == 6
    assert r1["n_exclaims"] == 2
    assert r1["n_negations"] == 2  # don't, NOT
    assert r1["n_upper_words"] == 1  # NOT ("I" is one letter)
    assert r1["share_upper"] == pytest.approx(4 / 18)
    assert r1["mean_word_length"] == pytest.approx(22 / 6)
    assert out.loc["r2", "n_questions"] == 1
    assert out.loc["r2", "share_upper"] == pytest.approx(1 / 5)
    assert pd.isna(out.loc["r3", "share_upper"])
    assert out["label"].tolist()[:2] == [0, 1]


def test_features_of_empty_frames_are_empty_with_columns():
    rfm = features.customer_rfm(SCHEMAS["orders"].empty(), products=SCHEMAS["products"].empty())
    assert rfm.empty and "recency_days" in rfm.columns
    assert features.user_features(SCHEMAS["ratings"].empty()).empty
    assert features.item_features(SCHEMAS["ratings"].empty()).empty
    assert features.review_text_features(SCHEMAS["reviews"].empty()).empty


def test_rfm_frequency_and_sums_match_a_grouped_reference_on_random_orders():
    import numpy as np

    rng = np.random.default_rng(3)
    n = 4_000
    # Few orders, so that orders repeat lines, span customers and mix purchases with returns.
    frame = pd.DataFrame(
        {
            "order_id": [f"A{i}" for i in rng.integers(0, 700, n)],
            "line_no": rng.integers(1, 5, n),
            "customer_id": [None if k == 0 else f"c{k}" for k in rng.integers(0, 90, n)],
            "product_id": "p1",
            "ordered_at": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**6, n), unit="s"),
            "quantity": rng.integers(-2, 5, n),
            "unit_price": np.where(rng.random(n) < 0.05, np.nan, rng.uniform(0, 20, n)),
            "country": "UK",
        }
    )
    frame = SCHEMAS["orders"].conform(frame)
    rfm = features.customer_rfm(frame).set_index("customer_id")
    known = frame[frame["customer_id"].notna()]
    value = (known["quantity"].astype(float) * known["unit_price"].astype(float))
    purchases = known[value > 0]
    expected_frequency = purchases.groupby("customer_id")["order_id"].nunique()
    expected_frequency = expected_frequency.reindex(rfm.index, fill_value=0)
    assert rfm["frequency"].astype(int).tolist() == expected_frequency.astype(int).tolist()
    expected_monetary = value.groupby(known["customer_id"]).sum().reindex(rfm.index)
    np.testing.assert_allclose(rfm["monetary"].astype(float), expected_monetary.astype(float), rtol=1e-12)
    assert (rfm["frequency"] > 0).sum() > 50
