from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_platform.quality.cleaning import (
    QUARANTINE_COLUMNS,
    CleaningPolicy,
    clean,
    clean_columns,
)
from data_platform.sources.schemas import SCHEMAS


def order_rows(*rows: dict) -> pd.DataFrame:
    base = {
        "order_id": "A1",
        "line_no": 1,
        "customer_id": "c1",
        "product_id": "p1",
        "ordered_at": "2025-01-01 10:00",
        "quantity": 1,
        "unit_price": 2.5,
        "country": "UK",
    }
    return SCHEMAS["orders"].conform(pd.DataFrame([{**base, **row} for row in rows]))


def assert_reconciled(result, raw: pd.DataFrame) -> None:
    assert len(result.clean) + len(result.quarantine) == len(raw)
    assert sum(result.counts.values()) == len(result.quarantine)


def only_reason(result) -> tuple[str, str, object]:
    assert len(result.quarantine) == 1, result.quarantine
    row = result.quarantine.iloc[0]
    return row["reason"], row["column"], row["value"]


def test_valid_orders_pass_unchanged_with_flags():
    raw = order_rows({"line_no": 1}, {"line_no": 2, "product_id": "p2", "quantity": 3})
    result = clean("orders", raw)
    assert_reconciled(result, raw)
    assert result.quarantine.empty
    assert list(result.clean.columns) == list(clean_columns("orders"))
    pd.testing.assert_frame_equal(result.clean[list(raw.columns)], raw)
    assert not result.clean["is_return"].any()
    assert list(result.quarantine.columns) == list(QUARANTINE_COLUMNS["orders"])


@pytest.mark.parametrize(
    ("row", "reason", "column", "value"),
    [
        ({"product_id": None}, "missing_product_id", "product_id", None),
        ({"product_id": "   "}, "missing_product_id", "product_id", "   "),
        ({"ordered_at": "not a date"}, "invalid_ordered_at", "ordered_at", "not a date"),
        ({"quantity": "2.5"}, "invalid_quantity", "quantity", "2.5"),
        ({"unit_price": -0.01}, "negative_price", "unit_price", "-0.01"),
        ({"quantity": 0}, "zero_quantity", "quantity", "0"),
        ({"quantity": -2}, "negative_quantity", "quantity", "-2"),
        ({"line_no": None}, "missing_line_no", "line_no", None),
    ],
)
def test_order_rules_quarantine_with_reason_column_and_value(row, reason, column, value):
    good = {"order_id": "A0", "quantity": 1}
    raw = pd.DataFrame(
        [
            {**order_rows(good).iloc[0].to_dict()},
            {
                **order_rows(good).iloc[0].to_dict(),
                "order_id": "A9",
                "ordered_at": "2025-01-01",
                **row,
            },
        ]
    ).astype(object)
    result = clean("orders", raw)
    assert_reconciled(result, raw)
    got_reason, got_column, got_value = only_reason(result)
    assert (got_reason, got_column) == (reason, column)
    assert (pd.isna(got_value) and value is None) or got_value == value
    assert result.counts == {reason: 1}
    assert result.clean["order_id"].tolist() == ["A0"]


def test_guest_checkout_and_returns_are_valid():
    raw = order_rows(
        {"order_id": "A1", "customer_id": None},
        {"order_id": "C7", "quantity": -3},
    )
    result = clean("orders", raw)
    assert result.quarantine.empty
    assert result.clean["customer_id"].isna().tolist() == [True, False]
    assert result.clean["is_return"].tolist() == [False, True]
    assert result.clean["quantity"].tolist() == [1, -3]


def test_exact_duplicate_line_under_another_line_number_is_a_duplicate():
    raw = order_rows({"line_no": 1}, {"line_no": 2}, {"line_no": 3, "product_id": "p2"})
    result = clean("orders", raw)
    assert_reconciled(result, raw)
    assert only_reason(result) == ("duplicate", "order_id,line_no", "A1|2")
    assert result.clean["line_no"].tolist() == [1, 3]


def test_key_collision_with_other_content_keeps_the_first():
    raw = order_rows({"quantity": 1}, {"quantity": 5})
    result = clean("orders", raw)
    assert only_reason(result) == ("duplicate_key", "order_id,line_no", "A1|1")
    assert result.clean["quantity"].tolist() == [1]
    assert result.quarantine["quantity"].tolist() == ["5"]


def test_ratings_keep_the_latest_rating_and_supersede_older_ones():
    raw = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u1", "u2"],
            "item_id": ["i1", "i1", "i1", "i1"],
            "rating": [3.0, 4.5, 1.0, 5.0],
            "rated_at": ["2025-01-02", "2025-01-03", "2025-01-01", "2025-01-01"],
        }
    )
    result = clean("ratings", raw)
    assert_reconciled(result, raw)
    assert result.counts == {"superseded": 2}
    kept = result.clean.set_index("user_id")["rating"].to_dict()
    assert kept == {"u1": 4.5, "u2": 5.0}
    assert sorted(result.quarantine["rating"]) == ["1", "3"]


def test_superseded_ratings_match_a_sort_of_the_whole_frame_on_many_repeats_and_ties():
    # Reference: the plain pandas formulation (stable sort by time, keep the last of each key).
    rng = np.random.default_rng(7)
    n = 5_000
    raw = pd.DataFrame(
        {
            "user_id": pd.Series([f"u{i}" for i in rng.integers(0, 40, n)], dtype="str"),
            "item_id": pd.Series([f"i{i}" for i in rng.integers(0, 25, n)], dtype="str"),
            "rating": rng.uniform(0.5, 5.0, n),  # no two rows exactly equal: no "duplicate"
            # Few distinct timestamps: many ties, where the row delivered last must win.
            "rated_at": pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 30, n), unit="D"),
        }
    )
    result = clean("ratings", raw)
    assert_reconciled(result, raw)
    ordered = raw.assign(_pos=np.arange(n)).sort_values("rated_at", kind="stable")
    kept = np.sort(ordered.loc[~ordered.duplicated(["user_id", "item_id"], keep="last"), "_pos"].to_numpy())
    expected = raw.iloc[kept].reset_index(drop=True)
    assert result.counts == {"superseded": n - len(kept)}
    pd.testing.assert_frame_equal(
        result.clean[["user_id", "item_id", "rating", "rated_at"]].astype({"user_id": object, "item_id": object}),
        SCHEMAS["ratings"].conform(expected).astype({"user_id": object, "item_id": object}),
        check_dtype=False,
    )


def test_rating_range_is_inclusive():
    raw = pd.DataFrame(
        {
            "user_id": ["a", "b", "c", "d"],
            "item_id": "i",
            "rating": [0.5, 5.0, 0.4, 5.5],
            "rated_at": "2025-01-01",
        }
    )
    result = clean("ratings", raw)
    assert result.counts == {"rating_out_of_range": 2}
    assert result.clean["user_id"].tolist() == ["a", "b"]


def test_reviews_need_text_and_a_binary_label_when_labelled():
    raw = pd.DataFrame(
        {
            "review_id": ["r1", "r2", "r3", "r4", "r5"],
            "product_id": "p1",
            "customer_id": None,
            "text": [" fine ", "   ", "good", "bad", None],
            "label": [1, 1, 2, None, 0],
            "rating": [4.0, 4.0, 4.0, 7.0, 1.0],
            "reviewed_at": "2025-01-01",
        }
    )
    result = clean("reviews", raw)
    assert_reconciled(result, raw)
    reasons = dict(zip(result.quarantine["review_id"], result.quarantine["reason"], strict=True))
    assert reasons == {
        "r2": "missing_text",
        "r3": "invalid_label",
        "r4": "rating_out_of_range",
        "r5": "missing_text",
    }
    assert result.clean["text"].tolist() == ["fine"]


def test_experiments_read_sloppy_booleans_and_need_a_variant():
    raw = pd.DataFrame(
        {
            "experiment_id": "e1",
            "user_id": ["u1", "u2", "u3", "u4", "u5"],
            "variant": ["A", "B", " ", "A", "B"],
            "exposed_at": "2025-01-01T00:00:00Z",
            "converted": ["yes", "0", "true", "maybe", "FALSE"],
            "revenue": [10.0, None, None, None, -1.0],
        }
    )
    result = clean("experiments", raw)
    assert_reconciled(result, raw)
    reasons = dict(zip(result.quarantine["user_id"], result.quarantine["reason"], strict=True))
    assert reasons == {
        "u3": "missing_variant",
        "u4": "invalid_converted",
        "u5": "negative_revenue",
    }
    assert result.clean["converted"].tolist() == [True, False]


def test_products_negative_price_and_missing_id():
    raw = pd.DataFrame(
        {
            "product_id": ["p1", "p2", None],
            "category": "toys",
            "price": [1.0, -5.0, 2.0],
            "description": "x",
        }
    )
    result = clean("products", raw)
    assert result.counts == {"missing_product_id": 1, "negative_price": 1}
    assert result.clean["product_id"].tolist() == ["p1"]


def test_normalizations_trim_ids_and_fix_country_case():
    raw = pd.DataFrame(
        {
            "customer_id": [17850.0, 12.0, 3.0, 4.0],
            "signup_date": ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"],
            "country": [" united  kingdom ", "uk", "EIRE", "France"],
            "true_segment": None,
        }
    )
    result = clean("customers", raw)
    assert result.quarantine.empty
    assert result.clean["customer_id"].tolist() == ["17850", "12", "3", "4"]
    assert result.clean["country"].tolist() == ["United Kingdom", "UK", "EIRE", "France"]


def test_a_column_the_source_did_not_deliver_is_missing_not_an_error():
    raw = pd.DataFrame({"user_id": ["u1"], "item_id": ["i1"], "rating": [4.0]})
    result = clean("ratings", raw)
    reason, column, value = only_reason(result)
    assert (reason, column) == ("missing_rated_at", "rated_at") and pd.isna(value)
    assert result.clean.empty


def test_unknown_entity_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown entity 'invoices'"):
        clean("invoices", pd.DataFrame())


def test_empty_input_gives_empty_typed_outputs():
    result = clean("orders", SCHEMAS["orders"].empty())
    assert result.clean.empty and result.quarantine.empty and result.counts == {}
    assert list(result.clean.columns) == list(clean_columns("orders"))
    assert str(result.clean["quantity"].dtype) == "Int64"


def test_outliers_are_flagged_not_dropped_nor_capped():
    rng = np.random.default_rng(0)
    n = 200
    quantity = rng.integers(1, 6, n).astype(int)
    quantity[7] = 50_000
    raw = pd.DataFrame(
        {
            "order_id": [f"A{i}" for i in range(n)],
            "line_no": 1,
            "customer_id": "c1",
            "product_id": "p1",
            "ordered_at": "2025-01-01",
            "quantity": quantity,
            "unit_price": rng.gamma(3.0, 2.0, n) + 0.5,
            "country": "UK",
        }
    )
    result = clean("orders", raw)
    assert len(result.clean) == n
    assert result.clean["quantity_outlier"].tolist() == [i == 7 for i in range(n)]
    assert result.clean.loc[7, "quantity"] == 50_000
    assert not result.clean["unit_price_outlier"].any()


def test_few_rows_never_flag_outliers():
    raw = order_rows({"line_no": 1, "quantity": 1}, {"line_no": 2, "quantity": 10_000})
    result = clean("orders", raw)
    assert not result.clean["quantity_outlier"].any()
    assert result.clean["quantity"].tolist() == [1, 10_000]


def test_policy_tightens_the_fence():
    raw = order_rows(
        *({"line_no": i, "product_id": f"p{i}", "quantity": 1 + i % 3} for i in range(30))
    )
    raw.loc[0, "quantity"] = 40
    assert not clean("orders", raw).clean["quantity_outlier"].any()
    tight = clean("orders", raw, policy=CleaningPolicy(outlier_k=1.5)).clean
    assert tight["quantity_outlier"].tolist() == [True] + [False] * 29


# --- property: whatever arrives, every row is accounted for and clean rows obey every rule ---

# Per dtype: mostly readable values (so that clean rows occur) mixed with sloppy ones.
MESSY_BY_DTYPE = {
    "string": st.one_of(
        st.sampled_from(["a", "b", "C1", "C2"]),
        st.sampled_from([" a ", "", "  ", None, 1, 1.0, float("nan")]),
    ),
    "Int64": st.one_of(
        st.integers(-2, 3),
        st.sampled_from(["1", " 2 ", "2.5", "x", None, 1.0, float("nan"), True]),
    ),
    "Float64": st.one_of(
        st.sampled_from([0.0, 0.4, 0.5, 1.0, 5.0, 5.5, -1.0, 1e6]),
        st.sampled_from(["2.5", " 3 ", "x", None, float("nan"), float("inf")]),
    ),
    "datetime64[ns]": st.one_of(
        st.sampled_from(["2025-01-01", "2025-01-02T10:00:00", pd.Timestamp("2025-01-03")]),
        st.sampled_from(["01/02/2025", "3000-01-01", "x", None, "", 7]),
    ),
    "boolean": st.sampled_from([True, False, "yes", "no", "0", "1", "maybe", None]),
}


@st.composite
def messy_frames(draw, entity: str):
    n = draw(st.integers(0, 12))
    data = {
        col: draw(st.lists(MESSY_BY_DTYPE[dtype], min_size=n, max_size=n))
        for col, dtype in SCHEMAS[entity].columns.items()
    }
    frame = pd.DataFrame(data, dtype=object)
    if n and draw(st.booleans()):
        # Whole repeated rows: the duplicate rules must see some.
        frame = pd.concat([frame, frame.iloc[: draw(st.integers(1, n))]], ignore_index=True)
    return frame


def assert_clean_obeys_rules(entity: str, result) -> None:
    schema = SCHEMAS[entity]
    df = result.clean
    for col in set(schema.required) | set(schema.key):
        assert df[col].notna().all(), col
    for col, dtype in schema.columns.items():
        assert str(df[col].dtype) == dtype
        if dtype == "string":
            values = df[col].dropna()
            assert (values == values.str.strip()).all() and (values != "").all()
    assert not df.duplicated(subset=list(schema.key)).any()
    if entity == "orders":
        assert (df["unit_price"].dropna() >= 0).all()
        assert (df["quantity"] != 0).all()
        negative = df["quantity"] < 0
        assert df.loc[negative, "order_id"].str.startswith("C").all()
        assert df["is_return"].tolist() == negative.tolist()
    if entity in ("ratings", "reviews"):
        rating = df["rating"].dropna()
        assert ((rating >= 0.5) & (rating <= 5)).all()
    if entity == "reviews":
        assert df["label"].dropna().isin([0, 1]).all()
    if entity == "products":
        assert (df["price"].dropna() >= 0).all()
    # A row removed as a repeat must leave its original behind.
    repeats = result.quarantine["reason"].isin(["duplicate", "duplicate_key", "superseded"])
    kept_keys = (
        set(df[list(schema.key)].astype("string").agg("|".join, axis=1)) if len(df) else set()
    )
    assert set(result.quarantine.loc[repeats, "value"]) <= kept_keys


@pytest.mark.parametrize("entity", sorted(SCHEMAS))
def test_property_every_row_accounted_for_and_clean_rows_obey_rules(entity):
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(raw=messy_frames(entity))
    def check(raw):
        result = clean(entity, raw)
        assert_reconciled(result, raw)
        assert result.quarantine["reason"].notna().all()
        assert list(result.quarantine.columns) == list(QUARANTINE_COLUMNS[entity])
        assert_clean_obeys_rules(entity, result)

    check()


def test_extra_columns_from_a_drifted_source_are_not_carried_into_clean():
    raw = order_rows({"line_no": 1}).assign(coupon="X")
    result = clean("orders", raw)
    assert len(result.clean) == 1 and "coupon" not in result.clean.columns


def test_real_online_retail_day(real_data_dir):
    from datetime import date

    from data_platform.sources import load

    day = date(2010, 12, 1)
    raw = load(
        "online_retail", real_data_dir / "online_retail", start=day, end=date(2010, 12, 2)
    ).data
    result = clean("orders", raw)
    assert_reconciled(result, raw)
    df = result.clean
    assert df["is_return"].any()
    assert df.loc[df["is_return"], "order_id"].str.startswith("C").all()
    assert df["customer_id"].isna().any()  # guest lines kept
    assert not df["customer_id"].dropna().str.endswith(".0").any()
    assert result.counts.get("duplicate", 0) > 0  # the source repeats lines


def test_duplicated_helper_matches_pandas_on_many_repeats():
    from data_platform.quality.cleaning import _duplicated

    rng = np.random.default_rng(11)
    frame = pd.DataFrame(
        {
            "a": pd.Series([f"k{i}" for i in rng.integers(0, 60, 3_000)], dtype="str"),
            "b": rng.integers(0, 20, 3_000),
            "c": rng.random(3_000),  # distinct: duplicates only on the subset ["a", "b"]
        }
    )
    expected = frame.duplicated(["a", "b"], keep="first").to_numpy()
    assert expected.sum() > 1_000
    np.testing.assert_array_equal(_duplicated(frame, ["a", "b"]), expected)
    assert not _duplicated(frame, ["a", "b", "c"]).any()
    assert not _duplicated(frame.iloc[:0], ["a", "b"]).any()
