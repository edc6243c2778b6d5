"""File adapters: MovieLens, Online Retail, generic order CSVs, labelled sentences, polarity.

Every adapter returns a `LoadResult` whose `.data` is in the canonical schema and whose
`.rejected` holds one row per source row that could not be parsed (file, line, column, value,
reason, raw). Every data row of the input ends up in exactly one of the two, and `.lines` counts
every physical line of the files read (accepted, rejected, header or blank). Structural problems
(missing file, empty file, missing column, wrong delimiter, a file in another encoding) raise one
`SourceError` naming the file. One bad line costs only that line: a line with bytes that are not
valid in the file's encoding, or with a quote that opens a field and never closes on a record
boundary, is rejected alone and reading resumes on the next line (see
`data_platform.sources.records`).

Reading rules:

- files may be plain or gzip'd (``.gz``); a folder means every matching file in name order;
- CSV and labelled text are UTF-8 unless a byte-order mark says otherwise (UTF-8 or UTF-16 BOM);
  polarity files and MovieLens' ``u.item`` are Latin-1; line endings may be LF, CRLF or CR;
- the option ``encoding_fallback=<encoding>`` (e.g. ``orders_csv:data/orders?encoding_fallback=latin-1``)
  decodes a line that is not valid in the file's encoding with that encoding instead of
  rejecting it; such lines are counted in ``LoadResult.lines.decoded_with_fallback``;
- line numbers are physical line numbers (1 = the header of a CSV), of the first line of a record;
- blank lines carry no data and are not rows;
- labelled text is split on the LAST tab with quoting disabled: quotes are part of the text.

Windows: ``start``/``end`` (end exclusive) keep the event rows whose event time is in the
window. A rejected row belongs to the day of its event time when that could be parsed, else to
the date in its file's name (``YYYY-MM-DD.csv``), else to the first day of its file's valid
rows, so that a set of daily loads reports each reject exactly once. Online Retail folders of
``YYYY-MM-DD.csv`` files read only the files of the window. Parsed files are cached in-process,
keyed by (path, size, mtime).

Undated sources (labelled text, polarity) get a deterministic ``reviewed_at`` that does not
depend on the window asked for: the rows of the source, in file-name then line order, are
spread evenly over ``UNDATED_DAYS`` (28) days starting at the ``start=`` option of the spec,
else ``DATA_PLATFORM_START_DATE``, else ``UNDATED_START`` (2025-01-01); row ``i`` of ``n`` gets
``anchor + i * 28 days / n``. A window then selects a slice of them, so daily partitions
partition the source. ``review_id`` is a stable hash of (file name, line).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from data_platform.sources.records import (
    Records,
    check_columns,
    check_fallback_encoding,
    decode_lines,
    read_records,
)
from data_platform.sources.result import (
    REJECT_COLUMNS,
    LineTally,
    LoadResult,
    SourceError,
    empty_rejects,
)
from data_platform.sources.schemas import SCHEMAS

UNDATED_START = date(2025, 1, 1)
# Source option (``kind:path?encoding_fallback=latin-1``): lines not valid in the file's encoding
# are decoded with this one instead of rejected, and counted.
ENCODING_FALLBACK = "encoding_fallback"
UNDATED_DAYS = 28
DATED_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})\.csv(\.gz)?$")
# Online Retail stock codes of products are 5 digits with an optional variant suffix; the rest
# (POST, M, DOT, C2, BANK CHARGES, AMAZONFEE, gift vouchers...) are fees and adjustments.
RETAIL_PRODUCT_CODE = re.compile(r"^\d{5}[A-Za-z]{0,3}$")
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip

# SQL text (PostgreSQL) cannot hold NUL: a row with one is rejected, and in reject columns the
# character is shown as U+FFFD so that the reject itself can still be stored.
NUL = "\x00"
NUL_REASON = "NUL character (SQL text cannot hold it)"
NUL_SHOWN = "\ufffd"

# ---------------------------------------------------------------- typed parsing with rejects

# Parsers take an object array of stripped strings ("" = empty) and return
# (values as a pandas extension array, ok mask that is only meaningful for non-empty cells).
Parser = Callable[[np.ndarray], tuple[pd.api.extensions.ExtensionArray, np.ndarray]]


def nonempty(cells: np.ndarray) -> pd.Series:
    return pd.Series(np.where(cells == "", None, cells), dtype=object)


def parse_str(cells: np.ndarray):
    return pd.array(np.where(cells == "", None, cells), dtype="string"), np.ones(
        len(cells), dtype=bool
    )


def integral_id(value: str) -> str:
    head, _, tail = value.partition(".")
    return head if head.isdigit() and tail and not tail.strip("0") else value


def parse_id(cells: np.ndarray):
    """Identifiers as strings; "17850.0" (an id stored as a float) becomes "17850"."""
    fixed = np.array([integral_id(v) if "." in v else v for v in cells], dtype=object)
    return parse_str(fixed.reshape(len(cells)))


def parse_float(cells: np.ndarray):
    num = pd.to_numeric(nonempty(cells), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    ok = np.isfinite(num)
    return pd.arrays.FloatingArray(np.where(ok, num, 0.0), ~ok), ok


def parse_int(cells: np.ndarray):
    num = pd.to_numeric(nonempty(cells), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    # Beyond 2**53 a float no longer holds every integer: such a count is not a quantity.
    ok = np.isfinite(num) & (np.abs(np.nan_to_num(num)) < 2**53)
    ok &= np.where(ok, num, 0.0) == np.round(np.where(ok, num, 0.0))
    return pd.arrays.IntegerArray(np.where(ok, num, 0).astype(np.int64), ~ok), ok


def parse_label(cells: np.ndarray):
    ok = (cells == "0") | (cells == "1")
    return pd.arrays.IntegerArray((cells == "1").astype(np.int64), ~ok), ok


def to_timestamps(values: pd.Series, fmt: str | None = "ISO8601") -> pd.Series:
    """Naive UTC timestamps; what cannot be parsed (or lies outside 1677-2262) becomes NaT."""
    try:
        out = pd.to_datetime(values, errors="coerce", format=fmt, utc=True)
    except (ValueError, OverflowError, TypeError):
        # errors="coerce" still raises on some out-of-range values: parse those one by one.
        out = pd.Series(
            [one_timestamp(v, fmt) for v in values], index=values.index, dtype="datetime64[ns, UTC]"
        )
    out = out.dt.tz_convert(None)
    # pandas may parse to a coarser unit that holds years the canonical nanoseconds cannot.
    inside = (out >= pd.Timestamp.min) & (out <= pd.Timestamp.max)
    return out.where(inside).astype("datetime64[ns]")


def one_timestamp(value, fmt: str | None):
    try:
        return pd.to_datetime(value, errors="coerce", format=fmt, utc=True)
    except (ValueError, OverflowError, TypeError):
        return pd.NaT


def parse_datetime(cells: np.ndarray):
    series = nonempty(cells)
    out = to_timestamps(series)
    retry = out.isna() & series.notna()
    if retry.any():
        # Spreadsheet exports of the same data write month/day/year.
        out = out.fillna(to_timestamps(series.where(retry), "%m/%d/%Y %H:%M"))
    return out.array, out.notna().to_numpy()


def parse_epoch(cells: np.ndarray):
    num, ok = parse_int(cells)
    seconds = np.where(ok, num.to_numpy(dtype=float, na_value=0.0), np.nan)
    out = pd.Series(pd.to_datetime(seconds, unit="s", errors="coerce")).astype("datetime64[ns]")
    return out.array, ok & out.notna().to_numpy()


UNPARSEABLE = {
    parse_float: "unparseable number",
    parse_int: "unparseable integer",
    parse_label: "unparseable label (expected 0 or 1)",
    parse_datetime: "unparseable date",
    parse_epoch: "unparseable timestamp",
}


@dataclass(frozen=True)
class Field:
    source: str  # column in the file
    parse: Parser
    required: bool = False


def parse_records(
    path: Path, records: Records, fields: dict[str, Field]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, LineTally]:
    """Typed valid rows (with `_line`), rejects (first problem of each row), rejected raw cells,
    and the file's physical lines counted by where they went."""
    width = len(records.header)
    counts = np.fromiter((len(r) for r in records.rows), dtype=np.int64, count=len(records.rows))
    shaped = counts == width
    good = [r for r, keep in zip(records.rows, shaped, strict=True) if keep]
    columns = list(zip(*good, strict=True)) if good else [() for _ in records.header]
    cells = pd.DataFrame(
        {
            name: np.array(col, dtype=object).reshape(len(good))
            for name, col in zip(records.header, columns, strict=True)
        },
        dtype=object,
    )
    lines = np.asarray(records.lines, dtype=np.int64)[shaped]
    raws = np.asarray(records.raws, dtype=object)[shaped]
    reason = np.full(len(cells), None, dtype=object)
    column = np.full(len(cells), None, dtype=object)
    value = np.full(len(cells), None, dtype=object)
    out = {}
    for name, spec in fields.items():
        text = np.array([v.strip() for v in cells[spec.source].to_numpy()], dtype=object).reshape(
            len(cells)
        )
        parsed, ok = spec.parse(text)
        empty = text == ""
        problem = np.where(~empty & ~ok, UNPARSEABLE.get(spec.parse, "unparseable value"), None)
        if spec.required:
            problem = np.where(empty, "missing required value", problem)
        has_nul = np.fromiter((NUL in v for v in text), dtype=bool, count=len(text))
        problem = np.where(has_nul, NUL_REASON, problem)
        first = (reason == None) & (problem != None)  # noqa: E711 - elementwise on object arrays
        reason[first], column[first], value[first] = problem[first], spec.source, text[first]
        out[name] = parsed
    out = pd.DataFrame(out, index=range(len(cells)))
    out["_line"] = lines
    keep = reason == None  # noqa: E711
    rejected = pd.DataFrame(
        {
            "file": str(path),
            "line": lines[~keep],
            "column": column[~keep],
            "value": value[~keep],
            "reason": reason[~keep],
            "raw": [r.rstrip("\r\n") for r in raws[~keep]],
        }
    )
    extra = [
        (
            line,
            None,
            None,
            f"wrong column count: {n} fields, header has {width}",
            raw.rstrip("\r\n"),
        )
        for line, raw, n, ok in zip(records.lines, records.raws, counts, shaped, strict=True)
        if not ok
    ] + [(line, None, None, reason_, raw) for line, reason_, raw, _ in records.bad]
    if extra:
        rejected = pd.concat(
            [
                rejected,
                pd.DataFrame(extra, columns=["line", "column", "value", "reason", "raw"]).assign(
                    file=str(path)
                ),
            ]
        )
    rejected = conform_rejects(rejected)
    # The raw cells of rejected rows let windows attribute each reject to its event day.
    bad_cells = cells[~keep].reset_index(drop=True).assign(_line=lines[~keep])
    spans = np.asarray(records.spans, dtype=np.int64)
    accepted = int(spans[shaped][keep].sum())
    tally = records.tally(
        accepted=accepted,
        rejected=int(spans.sum()) - accepted + sum(span for *_, span in records.bad),
    )
    return out[keep].reset_index(drop=True), rejected, bad_cells, tally


def conform_rejects(frame: pd.DataFrame) -> pd.DataFrame:
    out = empty_rejects()
    if frame is None or not len(frame):
        return out
    frame = frame.reset_index(drop=True)
    frame = frame.assign(
        **{c: frame[c].astype(object).map(lambda v: v.replace(NUL, NUL_SHOWN) if isinstance(v, str) else v)
           for c in ("value", "raw")}
    )
    return (
        pd.DataFrame({c: frame[c].astype(out[c].dtype) for c in REJECT_COLUMNS})
        .sort_values("line", kind="stable")
        .reset_index(drop=True)
    )


# ---------------------------------------------------------------- discovery and caching


def list_files(path: Path, *, suffixes: tuple[str, ...], names: tuple[str, ...] = ()) -> list[Path]:
    if not path.exists():
        raise SourceError(path, "no such file or folder")
    if path.is_file():
        return [path]
    found = sorted(
        p
        for p in path.iterdir()
        if p.is_file()
        and (p.name.removesuffix(".gz").endswith(suffixes) or p.name.removesuffix(".gz") in names)
    )
    if not found:
        raise SourceError(path, f"folder holds no {' or '.join(suffixes + names)} files")
    return found


def find_member(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def file_date(path: Path) -> date | None:
    match = DATED_NAME.match(path.name)
    if not match:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


def cached(parse: Callable[..., object]) -> Callable[..., object]:
    """Memoize a per-file parser on (path, size, mtime, fallback encoding): a re-written file is
    parsed again."""

    @lru_cache(maxsize=1024)
    def by_stat(path: str, size: int, mtime_ns: int, fallback: str | None):
        return parse(Path(path), fallback)

    def wrapper(path: Path, fallback: str | None = None):
        try:
            stat = path.stat()
        except OSError:
            raise SourceError(path, "file not found") from None
        return by_stat(str(path.resolve()), stat.st_size, stat.st_mtime_ns, fallback)

    wrapper.cache_clear = by_stat.cache_clear  # type: ignore[attr-defined]
    wrapper.cache_info = by_stat.cache_info  # type: ignore[attr-defined]
    return wrapper


@dataclass(frozen=True)
class Parsed:
    """One file's rows: `data` typed (plus helper columns), `rejected` with an attribution day."""

    data: pd.DataFrame
    rejected: pd.DataFrame
    reject_day: pd.Series  # datetime64 day per reject, NaT when it cannot be placed
    lines: LineTally = LineTally()


def line_tally(parsed: list[Parsed]) -> LineTally:
    return sum((p.lines for p in parsed), LineTally())


def attribute_rejects(
    path: Path, rejected: pd.DataFrame, bad_cells: pd.DataFrame, time_col: str | None, first_day
) -> pd.Series:
    days = pd.Series(pd.NaT, index=range(len(rejected)), dtype="datetime64[ns]")
    if not len(rejected):
        return days
    fallback = file_date(path)
    fallback = pd.Timestamp(fallback) if fallback else first_day
    if time_col is not None and len(bad_cells) and time_col in bad_cells:
        cells = np.array([str(v).strip() for v in bad_cells[time_col]], dtype=object)
        parsed = pd.Series(parse_datetime(cells.reshape(len(cells)))[0])
        by_line = dict(zip(bad_cells["_line"], parsed.dt.normalize(), strict=True))
        days = rejected["line"].map(lambda n: by_line.get(n, pd.NaT)).astype("datetime64[ns]")
    return days.fillna(fallback) if fallback is not None and not pd.isna(fallback) else days


def in_window(times: pd.Series, start: date | None, end: date | None) -> np.ndarray:
    keep = np.ones(len(times), dtype=bool)
    if start is not None:
        keep &= (times >= pd.Timestamp(start)).fillna(False).to_numpy()
    if end is not None:
        keep &= (times < pd.Timestamp(end)).fillna(False).to_numpy()
    return keep


def select(
    parsed: list[Parsed], time_col: str | None, start, end
) -> tuple[pd.DataFrame, pd.DataFrame]:
    data = [p.data for p in parsed]
    rejects = []
    for p in parsed:
        if time_col is not None and (start is not None or end is not None):
            keep = in_window(p.reject_day, start, end) | p.reject_day.isna().to_numpy()
            rejects.append(p.rejected[keep])
        else:
            rejects.append(p.rejected)
    frame = pd.concat(data, ignore_index=True) if data else pd.DataFrame()
    if time_col is not None and len(frame):
        frame = frame[in_window(frame[time_col], start, end)]
    rejected = pd.concat(rejects, ignore_index=True) if rejects else empty_rejects()
    return frame.reset_index(drop=True), conform_rejects(rejected) if len(
        rejected
    ) else empty_rejects()


def parse_with_rejects(
    path: Path, records: Records, fields: dict[str, Field], time_col: str | None
) -> Parsed:
    data, rejected, bad_cells, lines = parse_records(path, records, fields)
    source_time = fields[time_col].source if time_col else None
    first_day = (
        data[time_col].min().normalize()
        if time_col and len(data) and data[time_col].notna().any()
        else None
    )
    return Parsed(
        data, rejected, attribute_rejects(path, rejected, bad_cells, source_time, first_day), lines
    )


# ---------------------------------------------------------------- Online Retail

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


def line_numbers_in_orders(records: Records, order_column: str) -> dict[int, int]:
    """Position of each record within its order, in file order, counting every record."""
    if order_column not in records.header:
        return {}
    idx = records.header.index(order_column)
    seen: dict[str, int] = {}
    positions = {}
    for line, row in zip(records.lines, records.rows, strict=True):
        key = row[idx].strip() if idx < len(row) else ""
        seen[key] = seen.get(key, 0) + 1
        positions[line] = seen[key]
    return positions


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


def load_online_retail(path: Path, entity: str, start, end, fallback=None) -> LoadResult:
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


# ---------------------------------------------------------------- generic order CSVs

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


def load_orders_csv(path: Path, entity: str, start, end, fallback=None) -> LoadResult:
    files = list_files(path, suffixes=(".csv",))
    parsed = [parse_orders_csv_file(f, fallback) for f in files]
    data, rejected = select(parsed, "ordered_at", start, end)
    return result("orders", data, rejected, files, line_tally(parsed))


# ---------------------------------------------------------------- MovieLens

ML_RATING_FIELDS = {
    "user_id": Field("userId", parse_id, required=True),
    "item_id": Field("movieId", parse_id, required=True),
    "rating": Field("rating", parse_float, required=True),
    "rated_at": Field("timestamp", parse_epoch, required=True),
}


@cached
def parse_ml_ratings(path: Path, fallback: str | None = None) -> Parsed:
    if path.name.removesuffix(".gz") == "u.data":
        records = read_records(
            path,
            delimiter="\t",
            header=["userId", "movieId", "rating", "timestamp"],
            quoting=csv.QUOTE_NONE,
            fallback=fallback,
        )
    else:
        records = read_records(path, fallback=fallback)
        check_columns(path, records, ["userId", "movieId", "rating", "timestamp"])
    return parse_with_rejects(path, records, ML_RATING_FIELDS, "rated_at")


@cached
def parse_ml_movies(path: Path, fallback: str | None = None) -> Parsed:
    if path.name.removesuffix(".gz") == "u.item":
        header = ["movieId", "title", "release", "video", "url", *ML100K_GENRES]
        records = read_records(
            path, encoding="latin-1", delimiter="|", header=header, quoting=csv.QUOTE_NONE
        )
        parsed = parse_with_rejects(
            path,
            records,
            {
                "product_id": Field("movieId", parse_id, True),
                "description": Field("title", parse_str),
            },
            None,
        )
        flags = pd.DataFrame([r for r in records.rows if len(r) == len(header)], columns=header)
        flags = flags.set_index(flags["movieId"].str.strip())[list(ML100K_GENRES)].eq("1")
        first_genre = flags.idxmax(axis=1).where(flags.any(axis=1))
        category = parsed.data["product_id"].map(first_genre.groupby(level=0).first())
    else:
        records = read_records(path, fallback=fallback)
        check_columns(path, records, ["movieId", "title", "genres"])
        fields = {
            "product_id": Field("movieId", parse_id, True),
            "description": Field("title", parse_str),
            "genres": Field("genres", parse_str),
        }
        parsed = parse_with_rejects(path, records, fields, None)
        category = parsed.data["genres"].str.split("|").str[0]
        category = category.where(category != "(no genres listed)")
    data = parsed.data.assign(category=category.astype("string"), price=pd.NA)
    return dataclasses.replace(parsed, data=data)


@cached
def parse_ml_users(path: Path, fallback: str | None = None) -> Parsed:
    header = ["userId", "age", "gender", "occupation", "zip"]
    records = read_records(path, delimiter="|", header=header, quoting=csv.QUOTE_NONE, fallback=fallback)
    parsed = parse_with_rejects(
        path, records, {"customer_id": Field("userId", parse_id, True)}, None
    )
    data = parsed.data.assign(signup_date=pd.NaT, country=pd.NA, true_segment=pd.NA)
    return dataclasses.replace(parsed, data=data)


def movielens_file(folder: Path, *names: str) -> Path | None:
    if not folder.is_dir():
        raise SourceError(folder, "MovieLens source must be a folder (ml-100k or ml-latest)")
    for name in names:
        found = find_member(folder, name)
        if found is not None:
            return found
    return None


def load_movielens(path: Path, entity: str, start, end, fallback=None) -> LoadResult:
    ratings = movielens_file(path, "u.data", "ratings.csv")
    if ratings is None:
        raise SourceError(path, "no u.data or ratings.csv: not a MovieLens folder")
    if entity == "ratings":
        parsed = [parse_ml_ratings(ratings, fallback)]
        data, rejected = select(parsed, "rated_at", start, end)
        return result("ratings", data, rejected, [ratings], line_tally(parsed))
    if entity == "products":
        movies = movielens_file(path, "u.item", "movies.csv")
        if movies is None:
            raise SourceError(path, "no u.item or movies.csv: MovieLens folder without movies")
        parsed = [parse_ml_movies(movies, fallback)]
        data, rejected = select(parsed, None, None, None)
        return result("products", data, rejected, [movies], line_tally(parsed))
    users = movielens_file(path, "u.user")
    if users is not None:
        parsed = [parse_ml_users(users, fallback)]
        data, rejected = select(parsed, None, None, None)
        return result("customers", data, rejected, [users], line_tally(parsed))
    # ml-latest has no user file: users are known by their ratings, signed up at the first one.
    data, _ = select([parse_ml_ratings(ratings, fallback)], None, None, None)
    first = data.sort_values("rated_at", kind="stable").drop_duplicates("user_id")
    customers = pd.DataFrame(
        {
            "customer_id": first["user_id"],
            "signup_date": first["rated_at"],
            "country": pd.NA,
            "true_segment": pd.NA,
        }
    )
    return result("customers", customers.sort_values("customer_id"), empty_rejects(), [ratings])


# ---------------------------------------------------------------- sentences


def review_ids(file_name: str, lines: np.ndarray) -> list[str]:
    return [hashlib.sha1(f"{file_name}:{n}".encode()).hexdigest()[:16] for n in lines]


@cached
def parse_labelled_text(path: Path, fallback: str | None = None) -> Parsed:
    decoded = decode_lines(path, "utf-8", fallback)
    rows, rejects, blank = [], [], 0
    for number, line in enumerate(decoded.lines, start=1):
        content = line.rstrip("\r\n")
        if number - 1 in decoded.undecodable:
            rejects.append((number, None, None, decoded.undecodable[number - 1], content))
            continue
        if not content.strip():
            blank += 1
            continue
        sentence, tab, label = content.rpartition("\t")
        if not tab:
            rejects.append(
                (number, None, None, "wrong column count: no tab between text and label", content)
            )
        elif label.strip() not in ("0", "1"):
            rejects.append((number, "label", label, "unparseable label (expected 0 or 1)", content))
        elif not sentence.strip():
            rejects.append((number, "text", "", "missing required value", content))
        elif NUL in sentence:
            rejects.append((number, "text", sentence, NUL_REASON, content))
        else:
            rows.append((number, sentence, int(label.strip())))
    counted = LineTally(len(decoded.lines), blank=blank, decoded_with_fallback=len(decoded.fallback))
    return sentence_frame(path, rows, rejects, counted)


@cached
def parse_polarity(path: Path, fallback: str | None = None) -> Parsed:
    label = 1 if path.name.removesuffix(".gz").endswith(".pos") else 0
    # Every byte is a Latin-1 character: nothing is left for a fallback to decode.
    lines = decode_lines(path, "latin-1").lines
    rows, rejects, blank = [], [], 0
    for number, line in enumerate(lines, start=1):
        content = line.rstrip("\r\n")
        if not line.strip():
            blank += 1
            continue
        if NUL in content:
            rejects.append((number, "text", content, NUL_REASON, content))
        else:
            rows.append((number, content, label))
    return sentence_frame(path, rows, rejects, LineTally(len(lines), blank=blank))


def sentence_frame(path: Path, rows: list, rejects: list, counted: LineTally) -> Parsed:
    """`counted` holds the file's total and blank lines; a sentence or a reject is one line."""
    lines = np.asarray([r[0] for r in rows], dtype=np.int64)
    data = pd.DataFrame(
        {
            "review_id": pd.array(review_ids(path.name, lines), dtype="string"),
            "text": pd.array([r[1] for r in rows], dtype="string"),
            "label": pd.array([r[2] for r in rows], dtype="Int64"),
            "_line": lines,
        }
    )
    rejected = conform_rejects(
        pd.DataFrame(rejects, columns=["line", "column", "value", "reason", "raw"]).assign(
            file=str(path)
        )
    )
    tally = dataclasses.replace(counted, accepted=len(rows), rejected=len(rejects))
    return Parsed(
        data,
        rejected,
        pd.Series(pd.NaT, index=range(len(rejected)), dtype="datetime64[ns]"),
        tally,
    )


def undated_anchor(options: dict | None) -> date:
    raw = (options or {}).get("start") or os.environ.get("DATA_PLATFORM_START_DATE")
    if not raw:
        return UNDATED_START
    try:
        return date.fromisoformat(str(raw))
    except ValueError:
        raise SourceError(str(raw), "start date of undated rows must be YYYY-MM-DD") from None


def load_sentences(path: Path, parse, files: list[Path], start, end, options, fallback=None) -> LoadResult:
    parsed = [parse(f, fallback) for f in files]
    data = pd.concat([p.data for p in parsed], ignore_index=True)
    anchor = pd.Timestamp(undated_anchor(options))
    offsets = (np.arange(len(data), dtype=np.int64) * (UNDATED_DAYS * 86_400)) // max(len(data), 1)
    data["reviewed_at"] = (anchor + pd.to_timedelta(offsets, unit="s")).astype("datetime64[ns]")
    data = data.assign(product_id=pd.NA, customer_id=pd.NA, rating=pd.NA)
    data = data[in_window(data["reviewed_at"], start, end)]
    # Rejects of an undated source belong to the day of the rows around them: the same spread.
    rejected = pd.concat([p.rejected for p in parsed], ignore_index=True)
    if len(rejected) and (start is not None or end is not None):
        rejected = rejected[reject_window(parsed, anchor, start, end)]
    return result("reviews", data, rejected, files, line_tally(parsed))


def reject_window(parsed: list[Parsed], anchor: pd.Timestamp, start, end) -> np.ndarray:
    """A reject takes the time its line would have had among the valid rows of its file."""
    total = sum(len(p.data) for p in parsed)
    keep, offset = [], 0
    for p in parsed:
        lines = p.data["_line"].to_numpy()
        position = offset + np.searchsorted(lines, p.rejected["line"].astype("int64").to_numpy())
        seconds = (position * (UNDATED_DAYS * 86_400)) // max(total, 1)
        keep.append(in_window(pd.Series(anchor + pd.to_timedelta(seconds, unit="s")), start, end))
        offset += len(p.data)
    return np.concatenate(keep) if keep else np.zeros(0, dtype=bool)


def load_labelled_text(path: Path, entity: str, start, end, options=None, fallback=None) -> LoadResult:
    files = list_files(path, suffixes=(".txt", ".tsv"))
    return load_sentences(path, parse_labelled_text, files, start, end, options, fallback)


def load_polarity(path: Path, entity: str, start, end, options=None, fallback=None) -> LoadResult:
    if path.is_file():
        raise SourceError(
            path, "polarity source must be a folder with rt-polarity.pos and rt-polarity.neg"
        )
    files = [find_member(path, name) for name in ("rt-polarity.neg", "rt-polarity.pos")]
    if not path.is_dir() or None in files:
        raise SourceError(path, "folder must hold rt-polarity.pos and rt-polarity.neg")
    return load_sentences(path, parse_polarity, files, start, end, options, fallback)


# ---------------------------------------------------------------- entry point


def result(
    entity: str, data: pd.DataFrame, rejected: pd.DataFrame, files, lines: LineTally | None = None
) -> LoadResult:
    schema = SCHEMAS[entity]
    if not len(data):
        data = schema.empty()
    return LoadResult(
        data=schema.conform(data),
        rejected=rejected if len(rejected) else empty_rejects(),
        entity=entity,
        files=tuple(str(f) for f in files),
        lines=lines,
    )


FILE_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    # kind: (primary entity, every entity it provides)
    "movielens": ("ratings", ("ratings", "products", "customers")),
    "online_retail": ("orders", ("orders", "products", "customers")),
    "orders_csv": ("orders", ("orders",)),
    "labelled_text": ("reviews", ("reviews",)),
    "polarity": ("reviews", ("reviews",)),
}
LOADERS = {
    "movielens": load_movielens,
    "online_retail": load_online_retail,
    "orders_csv": load_orders_csv,
    "labelled_text": load_labelled_text,
    "polarity": load_polarity,
}


def load_file_source(
    kind: str, path: str | Path, entity: str | None, start, end, options=None
) -> LoadResult:
    primary, provided = FILE_KINDS[kind]
    entity = entity or primary
    if entity not in provided:
        raise SourceError(
            f"{kind}:{path}", f"a {kind} source provides {list(provided)}, not {entity!r}"
        )
    loader = LOADERS[kind]
    fallback = check_fallback_encoding(f"{kind}:{path}", (options or {}).get(ENCODING_FALLBACK))
    if kind in ("labelled_text", "polarity"):
        return loader(Path(path), entity, start, end, options, fallback=fallback)
    return loader(Path(path), entity, start, end, fallback=fallback)


def clear_cache() -> None:
    for parse in (
        parse_retail_file,
        parse_orders_csv_file,
        parse_ml_ratings,
        parse_ml_movies,
        parse_ml_users,
        parse_labelled_text,
        parse_polarity,
    ):
        parse.cache_clear()


def dated_range(path: Path) -> tuple[date, date] | None:
    """(first, last) day from the names of a folder of YYYY-MM-DD.csv files, None if not all dated."""
    if not path.is_dir():
        return None
    files = list_files(path, suffixes=(".csv",))
    dates = [file_date(f) for f in files]
    if any(d is None for d in dates):
        return None
    return min(dates), max(dates)


def days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days)]
