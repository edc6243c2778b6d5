"""Online Retail (UCI): invoice lines as orders; products and customers derived from them.

A folder of ``YYYY-MM-DD.csv`` files reads only the files of the window asked for."""

from __future__ import annotations

import dataclasses
import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from data_platform.sources.files.assembly import result
from data_platform.sources.files.cache import cached
from data_platform.sources.files.cells import (
    parse_datetime,
    parse_float,
    parse_id,
    parse_int,
    parse_str,
)
from data_platform.sources.files.listing import file_date, list_files
from data_platform.sources.files.registry import register_kind
from data_platform.sources.files.rows import Field, line_numbers_in_orders
from data_platform.sources.files.windows import Parsed, line_tally, parse_with_rejects, select
from data_platform.sources.records import check_columns, read_records
from data_platform.sources.result import LoadResult, empty_rejects
from data_platform.sources.schemas import SCHEMAS

# Online Retail stock codes of products are 5 digits with an optional variant suffix; the rest
# (POST, M, DOT, C2, BANK CHARGES, AMAZONFEE, gift vouchers...) are fees and adjustments.
RETAIL_PRODUCT_CODE = re.compile(r"^\d{5}[A-Za-z]{0,3}$")

RETAIL_COLUMNS = [
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
]
RETAIL_FIELDS = {
    "order_id": Field("InvoiceNo", parse_id, required=True),
    "product_id": Field("StockCode", parse_id, required=True),
    "description": Field("Description", parse_str),
    "quantity": Field("Quantity", parse_int, required=True),
    "ordered_at": Field("InvoiceDate", parse_datetime, required=True),
    "unit_price": Field("UnitPrice", parse_float, required=True),
    "customer_id": Field("CustomerID", parse_id),
    "country": Field("Country", parse_str),
}


@cached
def parse_retail_file(path: Path, fallback: str | None = None) -> Parsed:
    records = read_records(path, fallback=fallback)
    check_columns(path, records, RETAIL_COLUMNS)
    parsed = parse_with_rejects(path, records, RETAIL_FIELDS, "ordered_at")
    positions = line_numbers_in_orders(records, "InvoiceNo")
    data = parsed.data.assign(line_no=pd.array(parsed.data["_line"].map(positions), dtype="Int64"))
    return dataclasses.replace(parsed, data=data)


def retail_files(path: Path, start: date | None, end: date | None) -> list[Path]:
    files = list_files(path, suffixes=(".csv",))
    dates = [file_date(f) for f in files]
    if path.is_dir() and all(d is not None for d in dates) and (start or end):
        files = [
            f
            for f, d in zip(files, dates, strict=True)
            if (start is None or d >= start) and (end is None or d < end)
        ]
    return files


@register_kind("online_retail", ("orders", "products", "customers"))
def load_online_retail(
    path: Path, entity: str, start, end, options=None, fallback=None
) -> LoadResult:
    if entity == "orders":
        files = retail_files(path, start, end)
        parsed = [parse_retail_file(f, fallback) for f in files]
        data, rejected = select(parsed, "ordered_at", start, end)
        return result("orders", data, rejected, files, line_tally(parsed))
    files = retail_files(path, None, None)
    data, _ = select([parse_retail_file(f, fallback) for f in files], None, None, None)
    if entity == "products":
        return result("products", retail_products(data), empty_rejects(), files)
    return result("customers", retail_customers(data), empty_rejects(), files)


def retail_products(orders: pd.DataFrame) -> pd.DataFrame:
    if not len(orders):
        return SCHEMAS["products"].empty()
    positive = orders["unit_price"].where(orders["unit_price"] > 0)
    grouped = orders.assign(_positive=positive).groupby("product_id", sort=True)
    price = grouped["_positive"].median().fillna(grouped["unit_price"].median())
    description = grouped["description"].first()
    codes = price.index.to_series()
    category = np.where(codes.str.fullmatch(RETAIL_PRODUCT_CODE.pattern), "product", "non_product")
    return SCHEMAS["products"].conform(
        pd.DataFrame(
            {
                "product_id": codes.values,
                "category": category,
                "price": price.values,
                "description": description.values,
            }
        )
    )


def retail_customers(orders: pd.DataFrame) -> pd.DataFrame:
    known = orders[orders["customer_id"].notna()].sort_values(
        ["ordered_at", "_line"], kind="stable"
    )
    first = known.drop_duplicates("customer_id")
    return (
        SCHEMAS["customers"]
        .conform(
            pd.DataFrame(
                {
                    "customer_id": first["customer_id"].values,
                    "signup_date": first["ordered_at"].values,
                    "country": first["country"].values,
                    "true_segment": pd.NA,
                }
            )
        )
        .sort_values("customer_id")
        .reset_index(drop=True)
    )
