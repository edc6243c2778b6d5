"""Canonical entity schemas: the one shape every source adapter produces.

Every adapter (synthetic, files, SQL) returns, per entity, a DataFrame with exactly these
columns in this order and these dtypes. Timestamps are naive and in UTC. Identifiers are
strings even when a source stores them as numbers, so that joins never depend on a source's
integer width.

`event_time` names the column that decides an event row's daily partition; entities without
one (dimensions) are unpartitioned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

# Nullable dtypes so that a missing value stays missing instead of becoming 0 or "nan".
STRING = "string"
FLOAT = "Float64"
INT = "Int64"
BOOL = "boolean"
TIMESTAMP = "datetime64[ns]"


@dataclass(frozen=True)
class EntitySchema:
    name: str
    columns: dict[str, str]
    key: tuple[str, ...]
    required: tuple[str, ...]
    event_time: str | None = None
    # Columns compared to find duplicate rows; defaults to every column.
    dedup_columns: tuple[str, ...] = field(default=())

    @property
    def partitioned(self) -> bool:
        return self.event_time is not None

    def empty(self) -> pd.DataFrame:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in self.columns.items()})

    def conform(self, df: pd.DataFrame) -> pd.DataFrame:
        """Return `df` with the canonical columns, order and dtypes (extra columns dropped)."""
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise SchemaError(f"{self.name}: missing required column(s) {missing}")
        out = pd.DataFrame(index=df.index)
        for col, dtype in self.columns.items():
            out[col] = coerce(df[col], dtype)
        return out.reset_index(drop=True)


class SchemaError(ValueError):
    """A DataFrame does not have the shape its entity requires."""


def coerce(series: pd.Series, dtype: str) -> pd.Series:
    """Cast to a canonical dtype; values that cannot be cast become missing."""
    if dtype == TIMESTAMP:
        out = pd.to_datetime(series, errors="coerce", utc=True)
        return out.dt.tz_convert(None).astype(TIMESTAMP)
    if dtype in (FLOAT, INT):
        num = pd.to_numeric(series, errors="coerce")
        if dtype == INT:
            num = num.where(num.isna() | (num == num.round()))
        return num.astype(dtype)
    if dtype == BOOL:
        return series.astype(BOOL)
    return series.astype(STRING)


CUSTOMERS = EntitySchema(
    name="customers",
    columns={
        "customer_id": STRING,
        "signup_date": TIMESTAMP,
        "country": STRING,
        # Known only for synthetic data: the segment the generator drew the customer from.
        "true_segment": STRING,
    },
    key=("customer_id",),
    required=("customer_id",),
)

PRODUCTS = EntitySchema(
    name="products",
    columns={
        "product_id": STRING,
        "category": STRING,
        "price": FLOAT,
        "description": STRING,
    },
    key=("product_id",),
    required=("product_id",),
)

ORDERS = EntitySchema(
    name="orders",
    columns={
        "order_id": STRING,
        "line_no": INT,
        "customer_id": STRING,
        "product_id": STRING,
        "ordered_at": TIMESTAMP,
        "quantity": INT,
        "unit_price": FLOAT,
        "country": STRING,
    },
    key=("order_id", "line_no"),
    required=("order_id", "product_id", "ordered_at", "quantity", "unit_price"),
    event_time="ordered_at",
    # A repeated order line is the same content under another line number.
    dedup_columns=(
        "order_id",
        "customer_id",
        "product_id",
        "ordered_at",
        "quantity",
        "unit_price",
        "country",
    ),
)

RATINGS = EntitySchema(
    name="ratings",
    columns={
        "user_id": STRING,
        "item_id": STRING,
        "rating": FLOAT,
        "rated_at": TIMESTAMP,
    },
    key=("user_id", "item_id"),
    required=("user_id", "item_id", "rating", "rated_at"),
    event_time="rated_at",
)

REVIEWS = EntitySchema(
    name="reviews",
    columns={
        "review_id": STRING,
        "product_id": STRING,
        "customer_id": STRING,
        "text": STRING,
        "label": INT,
        "rating": FLOAT,
        "reviewed_at": TIMESTAMP,
    },
    key=("review_id",),
    required=("review_id", "text", "reviewed_at"),
    event_time="reviewed_at",
)

EXPERIMENTS = EntitySchema(
    name="experiments",
    columns={
        "experiment_id": STRING,
        "user_id": STRING,
        "variant": STRING,
        "exposed_at": TIMESTAMP,
        "converted": BOOL,
        "revenue": FLOAT,
    },
    key=("experiment_id", "user_id"),
    required=("experiment_id", "user_id", "variant", "exposed_at", "converted"),
    event_time="exposed_at",
)

SCHEMAS: dict[str, EntitySchema] = {
    s.name: s for s in (CUSTOMERS, PRODUCTS, ORDERS, RATINGS, REVIEWS, EXPERIMENTS)
}
ENTITIES: tuple[str, ...] = tuple(SCHEMAS)
EVENT_ENTITIES: tuple[str, ...] = tuple(n for n, s in SCHEMAS.items() if s.partitioned)
DIMENSION_ENTITIES: tuple[str, ...] = tuple(n for n, s in SCHEMAS.items() if not s.partitioned)


def align_to_schema(entity: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Canonical columns first (missing ones all-missing), then any extra columns the source sent.

    What ingestion stores as `<entity>_raw`: unlike `conform`, a drifted source stays visible.
    """
    schema = SCHEMAS[entity]
    out = pd.DataFrame(index=frame.index)
    for col, dtype in schema.columns.items():
        if col in frame.columns:
            out[col] = frame[col] if str(frame[col].dtype) == dtype else coerce(frame[col], dtype)
        else:
            out[col] = pd.Series(pd.NA, index=frame.index).pipe(coerce, dtype)
    for col in frame.columns:
        if col not in schema.columns:
            out[col] = frame[col]
    return out.reset_index(drop=True)
