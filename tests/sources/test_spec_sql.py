"""Specs, fetch and the SQL adapter against a real SQLite file and the local PostgreSQL."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from data_platform.sources import SCHEMAS, SourceError, SourceSpec, fetch, parse_spec
from data_platform.sources.db import make_engine
from data_platform.sources.synthetic import generate


def test_parse_spec_forms():
    assert parse_spec("synthetic") == SourceSpec("synthetic", "", {})
    assert parse_spec(" online_retail:data/retail ") == SourceSpec(
        "online_retail", "data/retail", {}
    )
    assert parse_spec("labelled_text:x.txt?start=2024-01-01").options == {"start": "2024-01-01"}
    sql = parse_spec("sql:postgresql://u@h/db::SELECT * FROM t WHERE a = 'x::y'")
    assert sql.kind == "sql" and sql.path == "postgresql://u@h/db"
    assert sql.options["target"] == "SELECT * FROM t WHERE a = 'x::y'"
    for bad in ("", "csv:/x", "orders.csv", "sql:sqlite:///x.db", "online_retail:"):
        with pytest.raises(SourceError, match="expected|needs a path") as caught:
            parse_spec(bad)
        if bad.startswith("csv"):
            assert "online_retail" in str(caught.value)


def test_fetch_synthetic_matches_the_generator():
    day = date(2025, 2, 9)  # a volume_drop day: fetch serves what the generator injects
    pd.testing.assert_frame_equal(fetch("synthetic", "orders", day).data, generate("orders", day))
    assert len(fetch("synthetic", "customers").data) == 2000
    with pytest.raises(SourceError, match="needs a day"):
        fetch("synthetic", "orders")
    with pytest.raises(SourceError, match="unknown entity"):
        fetch("synthetic", "invoices", day)


def write_orders(url: str) -> pd.DataFrame:
    frame = pd.concat(
        [generate("orders", date(2025, 3, d), incidents=False) for d in (3, 4)], ignore_index=True
    )
    raw = frame.astype(
        {"ordered_at": "string", "unit_price": "string", "quantity": "string"}
    ).astype(object)
    raw.loc[0, "quantity"] = "many"
    raw.loc[1, "order_id"] = None
    raw.loc[2, "ordered_at"] = "garbage"
    engine = make_engine(url)
    with engine.begin() as conn:
        raw.to_sql("orders_src", conn, index=False)
    engine.dispose()
    return frame


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request):
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")


def test_sql_table_by_day_with_rejects(database_url):
    frame = write_orders(database_url)
    day3 = fetch(f"sql:{database_url}::orders_src", "orders", date(2025, 3, 3))
    day4 = fetch(f"sql:{database_url}::orders_src", "orders", date(2025, 3, 4))
    assert list(day3.data.columns) == list(SCHEMAS["orders"].columns)
    assert day3.source_rows + day4.source_rows == len(frame)
    reasons = dict(zip(day3.rejected["line"], day3.rejected["reason"], strict=True))
    assert reasons == {
        1: "unparseable integer",
        2: "missing required value",
        3: "unparseable timestamp",
    }
    assert len(day4.rejected) == 0
    expected = frame.iloc[3:][frame["ordered_at"].iloc[3:].dt.date == date(2025, 3, 3)].reset_index(
        drop=True
    )
    pd.testing.assert_frame_equal(day3.data, expected)
    assert "password" not in day3.rejected["file"].iloc[0]


def test_sql_query_and_dimension(database_url):
    write_orders(database_url)
    query = "SELECT * FROM orders_src WHERE country = 'France'"
    result = fetch(f"sql:{database_url}::{query}", "orders", date(2025, 3, 4))
    assert len(result.data) > 0 and (result.data["country"] == "France").all()
    engine = make_engine(database_url)
    with engine.begin() as conn:
        generate("products").to_sql("products_src", conn, index=False)
    engine.dispose()
    products = fetch(f"sql:{database_url}::products_src", "products")
    pd.testing.assert_frame_equal(products.data, generate("products"))


def test_sql_structural_errors(sqlite_url):
    missing = sqlite_url.replace("warehouse.db", "nowhere/none.db")
    with pytest.raises(SourceError, match="SQLite database file not found"):
        fetch(f"sql:{missing}::orders_src", "orders", date(2025, 3, 3))
    assert not (Path(missing.removeprefix("sqlite:///")).parent).exists()
    write_orders(sqlite_url)
    with pytest.raises(SourceError, match="query failed"):
        fetch(f"sql:{sqlite_url}::no_such_table", "orders", date(2025, 3, 3))
    with pytest.raises(SourceError, match="table name"):
        fetch(f"sql:{sqlite_url}::orders_src; DROP TABLE orders_src", "orders", date(2025, 3, 3))
    with pytest.raises(SourceError, match=r"missing required column\(s\) \['user_id'"):
        fetch(f"sql:{sqlite_url}::orders_src", "ratings", date(2025, 3, 3))
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM orders_src")).scalar() > 0
    engine.dispose()


def test_sql_booleans_from_sqlite_integers_and_words(sqlite_url):
    day = date(2025, 3, 3)
    exposures = generate("experiments", day, incidents=False)
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        exposures.to_sql("exposures", conn, index=False)
        words = (
            exposures.head(3).assign(converted=["yes", "maybe", None]).astype({"converted": object})
        )
        words.to_sql("exposure_words", conn, index=False)
    engine.dispose()
    result = fetch(f"sql:{sqlite_url}::exposures", "experiments", day)
    pd.testing.assert_frame_equal(result.data, exposures)
    worded = fetch(f"sql:{sqlite_url}::exposure_words", "experiments", day)
    assert list(worded.data["converted"]) == [True]
    assert list(worded.rejected["reason"]) == ["unparseable boolean", "missing required value"]
