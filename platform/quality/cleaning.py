"""Entity cleaning: typed, validated, deduplicated rows, and a quarantine for every row removed.

`clean(entity, raw)` splits a raw frame into `clean` and `quarantine` so that
len(clean) + len(quarantine) == len(raw) always holds. Each quarantined row keeps its values as
delivered (as strings), the first rule it broke (`reason`), the column at fault and its value.
The rules per entity and column are listed in docs/cleaning.md.

Outliers are flagged in boolean columns, never dropped and never capped: the anomaly checks
learn from the clean table's own distribution, and capping would hide exactly the shifts they
are meant to see.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from data_platform.sources.schemas import BOOL, FLOAT, INT, SCHEMAS, STRING, TIMESTAMP, EntitySchema

REASON, COLUMN, VALUE = "reason", "column", "value"
RETURN_FLAG = "is_return"
REPEAT_REASONS = ("duplicate", "duplicate_key", "superseded")

# Columns whose outliers get a `<column>_outlier` flag; their spread is multiplicative
# (prices and quantities), hence fences on the log scale.
OUTLIER_COLUMNS: dict[str, tuple[str, ...]] = {
    "orders": ("quantity", "unit_price"),
    "products": ("price",),
    "experiments": ("revenue",),
}

QUARANTINE_COLUMNS: dict[str, tuple[str, ...]] = {
    name: (*schema.columns, REASON, COLUMN, VALUE) for name, schema in SCHEMAS.items()
}

_TRUE = ("true", "t", "yes", "y", "1", "1.0")
_FALSE = ("false", "f", "no", "n", "0", "0.0")
_COUNTRY_COLUMNS = ("country",)
# Bounds of datetime64[ns]: a later or earlier date cannot be stored in the canonical dtype.
_TS_MIN, _TS_MAX = pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC")


@dataclass(frozen=True)
class CleaningPolicy:
    """The tunable parts of the rules (the defaults are the documented policy)."""

    # Tukey fence multiplier on the log scale: 3 marks "far out", not merely unusual.
    outlier_k: float = 3.0
    # A column where almost every value is the same (quantity 1) has an IQR of zero, which
    # would flag every other value; the IQR is widened to at least a factor of 2.
    min_log_iqr: float = math.log(2.0)
    # Fewer positive values than this and no fence is trusted: nothing is flagged.
    min_outlier_rows: int = 20
    rating_range: tuple[float, float] = (0.5, 5.0)
    # Online Retail marks cancellations (returns) with invoice numbers starting with "C".
    return_prefix: str = "C"
    outlier_columns: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: dict(OUTLIER_COLUMNS)
    )


@dataclass
class CleanResult:
    clean: pd.DataFrame
    quarantine: pd.DataFrame
    counts: dict[str, int]  # reason -> quarantined rows


def clean_columns(entity: str, policy: CleaningPolicy | None = None) -> dict[str, str]:
    """Column -> dtype of the clean table: the canonical columns, then the flag columns."""
    schema = _schema(entity)
    policy = policy or CleaningPolicy()
    columns = dict(schema.columns)
    for col in policy.outlier_columns.get(entity, ()):
        columns[f"{col}_outlier"] = BOOL
    if entity == "orders":
        columns[RETURN_FLAG] = BOOL
    return columns


def empty_quarantine(entity: str) -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype=STRING) for c in QUARANTINE_COLUMNS[_schema(entity).name]}
    )


def clean(entity: str, raw: pd.DataFrame, *, policy: CleaningPolicy | None = None) -> CleanResult:
    schema = _schema(entity)
    policy = policy or CleaningPolicy()
    raw = raw.reset_index(drop=True)
    rows = _Verdicts(len(raw))

    typed_columns: dict[str, pd.Series] = {}
    delivered: dict[str, np.ndarray] = {}
    for col, dtype in schema.columns.items():
        typed_columns[col], delivered[col] = _coerce(_column(raw, col), dtype, col)
    typed = schema.conform(pd.DataFrame(typed_columns, index=raw.index))
    for col in schema.columns:
        absent = typed[col].isna().to_numpy()
        # Something was delivered but cannot be read as the column's type.
        rows.assign(delivered[col] & absent, f"invalid_{col}", col)
        if col in schema.required or col in schema.key:
            rows.assign(absent, f"missing_{col}", col)
    for col in _COUNTRY_COLUMNS:
        if col in typed.columns:
            typed[col] = _normalize_country(typed[col])

    _apply_domain_rules(schema.name, typed, rows, policy)
    _apply_duplicate_rules(schema, typed, rows)

    keep = rows.open
    clean_frame = typed.loc[keep].reset_index(drop=True)
    for col in policy.outlier_columns.get(schema.name, ()):
        clean_frame[f"{col}_outlier"] = _outlier_flags(clean_frame[col], policy)
    if schema.name == "orders":
        clean_frame[RETURN_FLAG] = (clean_frame["quantity"] < 0).astype(BOOL)
    quarantine = _quarantine_frame(schema, raw, typed, rows)
    counts = {str(r): int(n) for r, n in sorted(quarantine[REASON].value_counts().items())}
    return CleanResult(clean=clean_frame, quarantine=quarantine, counts=counts)


class _Verdicts:
    """The first rule each row breaks; rows that break none stay open (clean)."""

    def __init__(self, n: int):
        self.open = np.ones(n, dtype=bool)
        self.reason = np.full(n, None, dtype=object)
        self.column = np.full(n, None, dtype=object)

    def assign(self, mask, reason: str, column: str) -> None:
        hit = _as_mask(mask) & self.open
        if hit.any():
            self.reason[hit] = reason
            self.column[hit] = column
            self.open[hit] = False


def _apply_domain_rules(
    entity: str, df: pd.DataFrame, rows: _Verdicts, policy: CleaningPolicy
) -> None:
    low, high = policy.rating_range
    if entity == "orders":
        rows.assign(df["unit_price"] < 0, "negative_price", "unit_price")
        rows.assign(df["quantity"] == 0, "zero_quantity", "quantity")
        is_cancellation = df["order_id"].str.startswith(policy.return_prefix)
        rows.assign(
            (df["quantity"] < 0) & ~is_cancellation.fillna(False), "negative_quantity", "quantity"
        )
    elif entity == "products":
        rows.assign(df["price"] < 0, "negative_price", "price")
    elif entity == "ratings":
        rows.assign((df["rating"] < low) | (df["rating"] > high), "rating_out_of_range", "rating")
    elif entity == "reviews":
        rows.assign(df["label"].notna() & ~df["label"].isin([0, 1]), "invalid_label", "label")
        rows.assign((df["rating"] < low) | (df["rating"] > high), "rating_out_of_range", "rating")
    elif entity == "experiments":
        rows.assign(df["revenue"] < 0, "negative_revenue", "revenue")


def _apply_duplicate_rules(schema: EntitySchema, df: pd.DataFrame, rows: _Verdicts) -> None:
    key = list(schema.key)
    key_label = ",".join(key)
    dedup = list(schema.dedup_columns) or list(schema.columns)
    candidates = np.flatnonzero(rows.open)
    if not len(candidates):
        return
    exact = _duplicated(_rows_at(df, candidates), dedup)
    rows.assign(_scatter(len(df), candidates[exact]), "duplicate", key_label)

    candidates = candidates[~exact]
    subset = _rows_at(df, candidates)
    if schema.name == "ratings":
        # A user re-rating an item replaces the old rating: keep the latest, and of equal
        # timestamps the one delivered last.
        # Sort positions, not the frame, and compare one integer per row instead of the key's
        # strings. NaT sorts last in numpy as in pandas.
        order = np.argsort(subset["rated_at"].to_numpy(), kind="stable")
        older = pd.Series(_key_codes(subset, key)[order]).duplicated(keep="last").to_numpy()
        rows.assign(_scatter(len(df), candidates[order[older]]), "superseded", key_label)
    else:
        collided = _duplicated(subset, key)
        rows.assign(_scatter(len(df), candidates[collided]), "duplicate_key", key_label)


def _rows_at(df: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    # Usually every row is still open: skip copying the whole frame then.
    return df if len(positions) == len(df) else df.iloc[positions]


def _key_codes(df: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """One int64 per row, equal exactly when the rows' values in `columns` are equal."""
    combined = np.zeros(len(df), dtype=np.int64)
    for col in columns:
        codes, uniques = pd.factorize(df[col], use_na_sentinel=False)
        combined = combined * (len(uniques) + 1) + codes
        if len(columns) > 1:
            # Re-number so that the product of the cardinalities never overflows.
            combined = pd.factorize(combined)[0].astype(np.int64)
    return combined


def _duplicated(df: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """`df.duplicated(columns, keep="first")`, faster on wide subsets of mostly distinct rows.

    Equal rows hash equally, so only rows sharing a hash can be duplicates; those few are then
    compared exactly, which keeps a hash collision from ever removing a valid row.
    """
    hashes = pd.util.hash_pandas_object(df[columns], index=False).to_numpy()
    # Hashes seen more than once, by a sort (sequential, unlike a hash table of millions of rows).
    ordered = np.sort(hashes)
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    result = np.zeros(len(df), dtype=bool)
    if not len(repeated):
        return result
    candidates = repeated[np.searchsorted(repeated, hashes).clip(max=len(repeated) - 1)] == hashes
    if candidates.any():
        result[candidates] = df.loc[candidates, columns].duplicated(keep="first").to_numpy()
    return result


def _quarantine_frame(
    schema: EntitySchema, raw: pd.DataFrame, typed: pd.DataFrame, rows: _Verdicts
) -> pd.DataFrame:
    removed = np.flatnonzero(~rows.open)
    if not len(removed):
        return empty_quarantine(schema.name)
    out = pd.DataFrame(index=pd.RangeIndex(len(removed)))
    for col in schema.columns:
        out[col] = _as_string(_column(raw, col).iloc[removed]).reset_index(drop=True)
    reasons = rows.reason[removed]
    columns = rows.column[removed]
    out[REASON] = pd.array(reasons, dtype=STRING)
    out[COLUMN] = pd.array(columns, dtype=STRING)
    value = pd.Series(pd.NA, index=out.index, dtype=STRING)
    repeats = np.isin(reasons, REPEAT_REASONS)
    for col in pd.unique(columns[~repeats]):
        at = (columns == col) & ~repeats
        value[at] = out.loc[at, col]
    if repeats.any():
        # A repeat is pointed at by its key as the clean table stores it, where the kept row is.
        parts = [_as_string(typed[k].iloc[removed[repeats]]).to_numpy() for k in schema.key]
        joined = pd.Series(parts[0], dtype=STRING)
        for part in parts[1:]:
            joined = joined + "|" + pd.Series(part, dtype=STRING)
        value[repeats] = joined.to_numpy()
    out[VALUE] = value
    return out


def _coerce(series: pd.Series, dtype: str, col: str) -> tuple[pd.Series, np.ndarray]:
    """(typed column, mask of values that were delivered at all) for one canonical column.

    Blank strings count as not delivered. The canonical `coerce` is applied afterwards by
    `schema.conform`; this step makes sloppy input (padded strings, "yes"/"no", "1.0" ids,
    mixed date formats) readable first.
    """
    if str(series.dtype) == dtype and dtype != STRING:
        if dtype == FLOAT:
            finite = np.isfinite(series.to_numpy(dtype=float, na_value=np.nan))
            return series.where(finite), series.notna().to_numpy()
        return series, series.notna().to_numpy()
    numeric_source = pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(
        series.dtype
    )
    text = _strip_blank(_as_string(series))
    present = text.notna().to_numpy()
    if dtype == STRING:
        if col.endswith("_id") and (numeric_source or series.dtype == object):
            # Numeric sources (Online Retail's CustomerID is a float) write ids as "17850.0".
            text = text.str.replace(r"^(-?\d+)\.0+$", r"\1", regex=True)
        return text, present
    if dtype in (FLOAT, INT):
        values = series if numeric_source else pd.to_numeric(text, errors="coerce")
        values = pd.to_numeric(values, errors="coerce").astype("float64")
        values = values.where(np.isfinite(values))
        if dtype == INT:
            values = values.where(values == values.round())
            # Beyond 2**53 a float no longer holds an exact integer.
            values = values.where(values.abs() < 2**53)
        return values.astype(dtype), present
    if dtype == BOOL:
        if pd.api.types.is_bool_dtype(series.dtype):
            return series.astype(BOOL), present
        lowered = text.str.lower()
        out = pd.Series(pd.NA, index=series.index, dtype=BOOL)
        out[lowered.isin(_TRUE).fillna(False).to_numpy(bool)] = True
        out[lowered.isin(_FALSE).fillna(False).to_numpy(bool)] = False
        return out, present
    if dtype == TIMESTAMP:
        return _to_timestamp(series, text), present
    raise ValueError(f"{col}: no cleaning conversion for dtype {dtype!r}")


def _to_timestamp(series: pd.Series, text: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        stamps = pd.to_datetime(series, utc=True)
    else:
        stamps = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
        retry = stamps.isna() & text.notna()
        if retry.any():
            # Other formats are rare; parsing them one by one only for those rows stays fast.
            stamps[retry] = pd.to_datetime(text[retry], errors="coerce", utc=True, format="mixed")
    stamps = stamps.where((stamps >= _TS_MIN) & (stamps <= _TS_MAX))
    return stamps.dt.tz_convert(None).astype(TIMESTAMP)


def _strip_blank(text: pd.Series) -> pd.Series:
    """Trim whitespace; blank becomes missing.

    Arrow-backed strings are trimmed in one sequential pass; Python strings work on the distinct
    values (ids repeat a lot), because a per-value Python call costs more than hashing.
    """
    if isinstance(text.array, pd.arrays.ArrowStringArray):
        fixed = text.str.strip()
        fixed = fixed.mask(fixed == "")
        return text if fixed.equals(text) else fixed.astype(STRING)
    codes, uniques = pd.factorize(text)
    uniques = pd.Series(uniques, dtype=STRING)
    fixed = uniques.str.strip()
    fixed = fixed.mask(fixed == "")
    if fixed.equals(uniques):
        return text
    taken = fixed.array.take(codes, allow_fill=True)
    return pd.Series(taken, index=text.index, dtype=STRING)


def _normalize_country(series: pd.Series) -> pd.Series:
    """Country codes upper case, all-lower-case names title case, inner spaces collapsed."""
    mapping = {}
    for value in series.dropna().unique():
        fixed = " ".join(str(value).split())
        if len(fixed) <= 3:
            fixed = fixed.upper()
        elif fixed.islower():
            fixed = fixed.title()
        if fixed != value:
            mapping[value] = fixed
    return series.replace(mapping) if mapping else series


def _outlier_flags(series: pd.Series, policy: CleaningPolicy) -> pd.Series:
    """Tukey fences on log(|value|); zero, negative-zero and missing values are never outliers."""
    magnitude = np.abs(series.to_numpy(dtype=float, na_value=np.nan))
    positive = np.isfinite(magnitude) & (magnitude > 0)
    flags = np.zeros(len(series), dtype=bool)
    if positive.sum() >= policy.min_outlier_rows:
        logs = np.log(magnitude[positive])
        q1, q3 = np.quantile(logs, [0.25, 0.75])
        spread = max(q3 - q1, policy.min_log_iqr)
        low, high = q1 - policy.outlier_k * spread, q3 + policy.outlier_k * spread
        flags[positive] = (logs < low) | (logs > high)
    return pd.Series(pd.array(flags, dtype=BOOL), index=series.index)


def _schema(entity: str) -> EntitySchema:
    try:
        return SCHEMAS[entity]
    except KeyError:
        raise ValueError(f"unknown entity {entity!r}; expected one of {sorted(SCHEMAS)}") from None


def _column(raw: pd.DataFrame, col: str) -> pd.Series:
    """The raw column, or all-missing when a drifted source did not deliver it."""
    if col in raw.columns:
        found = raw[col]
        return found.iloc[:, 0] if isinstance(found, pd.DataFrame) else found
    return pd.Series(pd.NA, index=raw.index, dtype=object)


def _as_string(series: pd.Series) -> pd.Series:
    if str(series.dtype) == STRING:
        return series
    if pd.api.types.is_float_dtype(series.dtype):
        # 3 rather than "3.0": a float column holding whole numbers is usually an integer or id.
        values = series.to_numpy(dtype=float, na_value=np.nan)
        whole = np.isfinite(values) & (values == np.round(values)) & (np.abs(values) < 2**53)
        if not (~whole & ~np.isnan(values)).any():
            out = pd.Series(pd.NA, index=series.index, dtype=STRING)
            out[whole] = values[whole].astype(np.int64).astype(str)
            return out
    if series.dtype == object:
        return series.map(lambda v: v if v is None or isinstance(v, str) else _text(v)).astype(
            STRING
        )
    return series.astype(STRING)


def _text(value) -> object:
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer() and abs(value) < 2**53:
            return str(int(value))
    return str(value)


def _as_mask(mask) -> np.ndarray:
    if isinstance(mask, pd.Series):
        if mask.dtype == bool:
            return mask.to_numpy()
        return mask.fillna(False).to_numpy(dtype=bool)
    return np.asarray(mask, dtype=bool)


def _scatter(n: int, positions: np.ndarray) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[positions] = True
    return mask
