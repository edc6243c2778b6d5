"""The ``_dp_columns`` manifest: the pandas dtype and position of every stored column, per table.

A write replaces a table's rows here in the same transaction as its data, so what ``read``
restores always matches the version it reads. A table without rows here was not written by the
warehouse.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from data_platform.tablestore.schema import MANIFEST_TABLE, ColumnSpec, kind_of_dtype


class Manifest:
    """The manifest table of one schema (``None``: the database's default one)."""

    def __init__(self, schema: str | None):
        self.table = sa.Table(
            MANIFEST_TABLE,
            sa.MetaData(schema=schema),
            sa.Column("table_name", sa.Text, primary_key=True),
            sa.Column("column_name", sa.Text, primary_key=True),
            sa.Column("dtype", sa.Text, nullable=False),
            sa.Column("position", sa.Integer, nullable=False),
        )

    def create(self, conn: sa.Connection) -> None:
        self.table.create(conn, checkfirst=True)

    def read(self, conn: sa.Connection, table: str) -> list[ColumnSpec]:
        m = self.table.c
        rows = conn.execute(
            sa.select(m.column_name, m.dtype).where(m.table_name == table).order_by(m.position)
        ).all()
        return [ColumnSpec(name, kind_of_dtype(dtype), dtype) for name, dtype in rows]

    def write(self, conn: sa.Connection, table: str, specs: Sequence[ColumnSpec]) -> None:
        self.delete(conn, table)
        rows = [
            {"table_name": table, "column_name": s.name, "dtype": s.dtype, "position": i}
            for i, s in enumerate(specs)
        ]
        conn.execute(sa.insert(self.table), rows)

    def delete(self, conn: sa.Connection, table: str) -> None:
        conn.execute(sa.delete(self.table).where(self.table.c.table_name == table))
