"""PostgreSQL bulk I/O: one ``COPY FROM STDIN`` per load and one ``COPY TO STDOUT`` per read.

Both directions stream: a load encodes the next chunk while the server parses the previous one,
and a read parses the output while the server is still producing it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence

import pandas as pd
import sqlalchemy as sa

from data_platform.tablestore.codecs import decode_csv, encode_csv
from data_platform.tablestore.schema import PARTITION_COLUMN, ColumnSpec

COPY_READ_SIZE = 1 << 20


def copy_in(conn: sa.Connection, sql_table: sa.Table, df: pd.DataFrame, specs: Sequence[ColumnSpec],
            partition: str | None, chunk_rows: int) -> None:
    """Load ``df`` (and the ``partition`` key, if any) into ``sql_table``, ``chunk_rows`` at a time."""
    preparer = conn.dialect.identifier_preparer
    names = [s.name for s in specs] + ([PARTITION_COLUMN] if partition is not None else [])
    statement = (
        f"COPY {preparer.format_table(sql_table)} ({', '.join(preparer.quote(n) for n in names)}) "
        "FROM STDIN WITH (FORMAT csv)"
    )
    dbapi = conn.connection.dbapi_connection
    encoding = _python_encoding(dbapi)
    chunks = (
        encode_csv(df.iloc[start:start + chunk_rows], specs, partition)
        for start in range(0, len(df), chunk_rows)
    )
    if encoding != "utf_8":
        chunks = (chunk.decode("utf-8").encode(encoding) for chunk in chunks)
    stream = _ChunkStream(chunks)
    cursor = dbapi.cursor()
    try:
        cursor.copy_expert(statement, stream, size=COPY_READ_SIZE)
    except Exception as copy_error:
        if stream.error is not None:
            raise stream.error from copy_error
        raise
    finally:
        cursor.close()


def copy_out(conn: sa.Connection, sql_table: sa.Table, chosen: Sequence[ColumnSpec],
             where) -> pd.DataFrame:
    """The ``chosen`` columns of the rows of ``sql_table`` that match ``where`` (all if None)."""
    query = sa.select(*[sql_table.c[spec.name] for spec in chosen])
    if where is not None:
        query = query.where(where)
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    dbapi = conn.connection.dbapi_connection
    cursor = dbapi.cursor()
    try:
        cursor.execute("SET LOCAL datestyle TO 'ISO, YMD'")
        cursor.execute("SET LOCAL extra_float_digits TO 1")
        # mogrify is the driver's own parameter binding (what execute does), applied to the
        # SELECT that COPY wraps, because COPY itself takes no parameters.
        encoding = _python_encoding(dbapi)
        select_sql = cursor.mogrify(compiled.string, compiled.params).decode(encoding)
        return copy_to_frame(cursor, f"COPY ({select_sql}) TO STDOUT WITH (FORMAT csv)", chosen, encoding)
    finally:
        cursor.close()


def copy_to_frame(cursor, statement: str, specs: Sequence[ColumnSpec], encoding: str) -> pd.DataFrame:
    """Run ``COPY ... TO STDOUT`` in a thread that feeds a pipe, and parse what arrives meanwhile:
    the server, the driver and the (GIL-free) parser work at the same time."""
    read_fd, write_fd = os.pipe()
    source = os.fdopen(read_fd, "rb", buffering=COPY_READ_SIZE)
    sink = os.fdopen(write_fd, "wb", buffering=COPY_READ_SIZE)
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            cursor.copy_expert(statement, sink)
        except BaseException as error:  # re-raised in the calling thread
            failure.append(error)
        finally:
            try:
                sink.close()
            except OSError:
                pass  # the reader is gone; its own error is the one to report

    producer = threading.Thread(target=produce, name="dp-copy-out", daemon=True)
    producer.start()
    try:
        frame = decode_csv(source, specs, encoding)
    except BaseException:
        source.close()  # unblocks a producer waiting on a full pipe
        producer.join()
        # A failed COPY ends the stream early, so the parser fails too: report the cause. A
        # broken pipe is only the producer noticing that the parser gave up.
        if failure and not isinstance(failure[0], BrokenPipeError):
            raise failure[0] from None
        raise
    source.close()
    producer.join()
    if failure:
        raise failure[0]
    return frame


def _python_encoding(dbapi_connection) -> str:
    import psycopg2.extensions

    return psycopg2.extensions.encodings.get(dbapi_connection.encoding, "utf_8")


class _ChunkStream:
    """A file-like view of lazily encoded CSV chunks: one COPY streams them all, and the server
    parses one chunk while the next is being encoded, with only one chunk in memory."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._current = b""
        self._offset = 0
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        while self._offset >= len(self._current):
            try:
                self._current = next(self._chunks, None)
            except BaseException as error:
                # The driver reports only the message; keep the exception to re-raise it.
                self.error = error
                raise
            self._offset = 0
            if self._current is None:
                self._current = b""
                return b""
        end = len(self._current) if size is None or size < 0 else self._offset + size
        piece = self._current[self._offset:end]
        self._offset += len(piece)
        return piece

    def readline(self, size: int = -1) -> bytes:
        return self.read(size)
