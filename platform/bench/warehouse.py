"""Throughput of TableStore against the raw driver, for ``data-platform bench`` and docs/benchmarks.md.

On PostgreSQL the baseline is a bare psycopg2 ``COPY FROM STDIN`` of the very CSV text TableStore
would send (built before the clock starts) and a bare ``COPY TO STDOUT`` into memory (no parsing),
so the ratios show what encoding, dtype restoration and the manifest cost on top of the wire.
"""

from __future__ import annotations

import io
import time
import uuid

import numpy as np
import pandas as pd
import sqlalchemy as sa

from data_platform.sources.db import make_engine
from data_platform.tablestore import TableStore, describe_frame, encode_csv

BENCH_COLUMNS = 8


def make_bench_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """Eight columns covering every stored kind, with some missing values."""
    rng = np.random.default_rng(seed)
    ids = np.arange(rows, dtype="int64")
    quantity = pd.array(rng.integers(0, 50, rows), dtype="Int64")
    quantity[rng.random(rows) < 0.05] = pd.NA
    words = np.array(["alpha", "beta", "gamma, delta", 'say "hi"', "", "ünïcode"], dtype=object)
    return pd.DataFrame(
        {
            "id": ids,
            "customer_id": rng.integers(0, 100_000, rows),
            "quantity": quantity,
            "price": rng.gamma(2.0, 10.0, rows),
            "sku": pd.Series([f"SKU-{i}" for i in rng.integers(0, 5000, rows)], dtype="str"),
            "note": pd.Series(words[rng.integers(0, len(words), rows)], dtype="str"),
            "returned": rng.random(rows) < 0.1,
            "ordered_at": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 86_400 * 365, rows), unit="s"),
        }
    )


def _rate(rows: int, seconds: float) -> float:
    return rows / seconds if seconds > 0 else float("inf")


def run_io_benchmark(url: str, rows: int) -> dict:
    """Write and read ``rows`` × 8 columns through TableStore (and raw COPY on PostgreSQL)."""
    frame = make_bench_frame(rows)
    table = f"bench_{uuid.uuid4().hex[:12]}"
    store = TableStore(url)
    result: dict = {"rows": rows, "columns": BENCH_COLUMNS, "backend": store.backend}
    try:
        started = time.perf_counter()
        store.write(table, frame)
        result["store_write_s"] = time.perf_counter() - started
        started = time.perf_counter()
        back = store.read(table)
        result["store_read_s"] = time.perf_counter() - started
        if len(back) != rows:
            raise AssertionError(f"benchmark read {len(back)} rows, wrote {rows}")
        if store.backend == "postgresql":
            result.update(_raw_copy(url, table, frame))
    finally:
        store.drop(table)
        store.dispose()
    result["store_write_rows_per_s"] = _rate(rows, result["store_write_s"])
    result["store_read_rows_per_s"] = _rate(rows, result["store_read_s"])
    if "raw_copy_write_s" in result:
        result["raw_copy_write_rows_per_s"] = _rate(rows, result["raw_copy_write_s"])
        result["raw_copy_read_rows_per_s"] = _rate(rows, result["raw_copy_read_s"])
        result["write_ratio_store_to_raw"] = result["store_write_rows_per_s"] / result["raw_copy_write_rows_per_s"]
        result["read_ratio_store_to_raw"] = result["store_read_rows_per_s"] / result["raw_copy_read_rows_per_s"]
    return result


def _raw_copy(url: str, source_table: str, frame: pd.DataFrame) -> dict:
    started = time.perf_counter()
    text = encode_csv(frame, describe_frame(source_table, frame))
    encode_s = time.perf_counter() - started
    raw_table = f"{source_table}_raw"
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            # An empty copy of the stored table, so both loads hit identical column types.
            conn.exec_driver_sql(f'CREATE TABLE "{raw_table}" AS SELECT * FROM "{source_table}" WITH NO DATA')
        dbapi = engine.raw_connection()
        try:
            cursor = dbapi.cursor()
            started = time.perf_counter()
            cursor.copy_expert(f'COPY "{raw_table}" FROM STDIN WITH (FORMAT csv)', io.BytesIO(text))
            dbapi.commit()
            write_s = time.perf_counter() - started
            buffer = io.StringIO()
            started = time.perf_counter()
            cursor.copy_expert(f'COPY "{raw_table}" TO STDOUT WITH (FORMAT csv)', buffer)
            read_s = time.perf_counter() - started
            cursor.close()
        finally:
            dbapi.close()
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP TABLE "{raw_table}"'))
    finally:
        engine.dispose()
    return {
        "raw_copy_write_s": write_s,
        "raw_copy_read_s": read_s,
        "csv_megabytes": len(text) / 1e6,
        # Part of store_write_s that the raw baseline does not pay: DataFrame -> CSV text.
        "csv_encode_s": encode_s,
    }
