"""Generic order CSVs: one order line per row (`order_id`, `customer_id`, `order_date`,
`product_id`, `quantity`, `unit_price`; `country` and `line_no` optional)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

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
from data_platform.sources.files.listing import list_files
from data_platform.sources.files.registry import register_kind
from data_platform.sources.files.rows import Field, line_numbers_in_orders
from data_platform.sources.files.windows import Parsed, line_tally, parse_with_rejects, select
from data_platform.sources.records import check_columns, read_records
from data_platform.sources.result import LoadResult

ORDERS_CSV_COLUMNS = [
    "order_id",
    "customer_id",
    "order_date",
    "product_id",
    "quantity",
    "unit_price",
]
ORDERS_CSV_FIELDS = {
    "order_id": Field("order_id", parse_id, required=True),
    "customer_id": Field("customer_id", parse_id),
    "product_id": Field("product_id", parse_id, required=True),
    "ordered_at": Field("order_date", parse_datetime, required=True),
    "quantity": Field("quantity", parse_int, required=True),
    "unit_price": Field("unit_price", parse_float, required=True),
}


@cached
def parse_orders_csv_file(path: Path, fallback: str | None = None) -> Parsed:
    records = read_records(path, fallback=fallback)
    check_columns(path, records, ORDERS_CSV_COLUMNS)
    fields = dict(ORDERS_CSV_FIELDS)
    # Country is optional in this format: without the column it is unknown for every row.
    if "country" in records.header:
        fields["country"] = Field("country", parse_str)
    if "line_no" in records.header:
        fields["line_no"] = Field("line_no", parse_int, required=True)
    parsed = parse_with_rejects(path, records, fields, "ordered_at")
    data = parsed.data
    if "country" not in fields:
        data = data.assign(country=pd.array([pd.NA] * len(data), dtype="string"))
    if "line_no" not in fields:
        positions = line_numbers_in_orders(records, "order_id")
        data = data.assign(line_no=pd.array(data["_line"].map(positions), dtype="Int64"))
    return dataclasses.replace(parsed, data=data)


@register_kind("orders_csv", ("orders",))
def load_orders_csv(path: Path, entity: str, start, end, options=None, fallback=None) -> LoadResult:
    files = list_files(path, suffixes=(".csv",))
    parsed = [parse_orders_csv_file(f, fallback) for f in files]
    data, rejected = select(parsed, "ordered_at", start, end)
    return result("orders", data, rejected, files, line_tally(parsed))
