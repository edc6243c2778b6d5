"""A warehouse of pandas tables over any SQLAlchemy URL (SQLite file or PostgreSQL), without Dagster.

What it promises:

- Exact dtype round trip. A manifest table (``_dp_columns``) records each column's pandas dtype and
  position, written in the same transaction as the data, and ``read`` restores them: ``str``,
  ``string``, ``object`` (of str), ``int64``/``Int64`` (and the other integer widths), ``float64``/
  ``Float64``, ``bool``/``boolean``, ``datetime64[unit]`` and ``datetime64[unit, tz]`` (stored as
  naive UTC). An empty string comes back empty, a missing value comes back missing. A column that
  is NULL in some partition (schema drift) cannot be held by ``int64``/``bool``; it comes back as
  ``Int64``/``boolean`` instead. The DataFrame index is not stored. Timestamps are stored with
  microsecond precision, so nanosecond parts are refused rather than silently truncated.
- Atomic replacement. ``write(table, df, partition=k)`` deletes partition ``k`` and loads the frame
  in one transaction; ``write(table, df)`` loads a staging table and swaps it in within the same
  transaction. Readers see the old or the new version, never half of one; a failure leaves the
  old version; re-writing never duplicates.
- Partitioned tables carry a text column ``_partition`` (indexed). ``read`` drops it unless it is
  asked for in ``columns``. Row order is the storage order, not guaranteed across partitions.
- Names are validated and always quoted by SQLAlchemy; values are always bound parameters.
- PostgreSQL loads with one ``COPY FROM STDIN`` streaming CSV encoded chunk by chunk by Arrow's CSV
  writer, and reads with ``COPY TO STDOUT`` parsed by Arrow's CSV reader into typed columns;
  DDL and writes of one table are serialized with a transaction-level advisory lock. SQLite
  writes take ``BEGIN IMMEDIATE`` so that concurrent writers wait (busy timeout) instead of
  failing on a lock upgrade.

Modules: ``schema`` (names, column specs, storage kinds), ``codecs`` (frames to CSV and Python
rows, and back to their dtypes), ``copy`` (PostgreSQL ``COPY`` streaming), ``manifest`` (the
``_dp_columns`` table) and ``store`` (``TableStore``).
"""

from data_platform.tablestore.codecs import encode_csv
from data_platform.tablestore.schema import (
    PARTITION_COLUMN,
    STAGING_PREFIX,
    ColumnSpec,
    WarehouseError,
    describe_frame,
)
from data_platform.tablestore.store import TableStore

__all__ = [
    "PARTITION_COLUMN",
    "STAGING_PREFIX",
    "ColumnSpec",
    "TableStore",
    "WarehouseError",
    "describe_frame",
    "encode_csv",
]
