"""The warehouse resource and the IO manager that stores every asset's DataFrame in it.

All storage logic lives in the Dagster-free :mod:`data_platform.tablestore`; this module
only maps assets to tables (key path joined by ``__``) and partitions to partition keys. The URL
may carry a password, so it is built from ``EnvVar("DATA_PLATFORM_WAREHOUSE_URL")`` and never put
in metadata, logs or messages.
"""

import dagster as dg
import pandas as pd
from pydantic import Field, PrivateAttr

from data_platform.tablestore import PARTITION_COLUMN, TableStore, WarehouseError

WAREHOUSE_URL_ENV = "DATA_PLATFORM_WAREHOUSE_URL"
DEFAULT_WAREHOUSE_URL = "sqlite:///.data/warehouse.db"

__all__ = [
    "DEFAULT_WAREHOUSE_URL",
    "PARTITION_COLUMN",
    "WAREHOUSE_URL_ENV",
    "TableStore",
    "WarehouseError",
    "WarehouseIOManager",
    "WarehouseResource",
    "table_name_for",
]


def table_name_for(asset_key: dg.AssetKey) -> str:
    return "__".join(asset_key.path)


class WarehouseResource(dg.ConfigurableResource):
    """A SQL warehouse (SQLite file by default, PostgreSQL via ``DATA_PLATFORM_WAREHOUSE_URL``)."""

    url: str = Field(
        default=DEFAULT_WAREHOUSE_URL,
        description="SQLAlchemy URL of the warehouse; relative SQLite paths are relative to the working directory.",
    )
    schema_name: str | None = Field(default=None, description="PostgreSQL schema for the tables.")

    _store: TableStore | None = PrivateAttr(default=None)

    def store(self) -> TableStore:
        if self._store is None:
            self._store = TableStore(self.url, schema=self.schema_name)
        return self._store

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._store is not None:
            self._store.dispose()
            self._store = None


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Stores asset outputs as warehouse tables; a partitioned asset replaces one partition per run."""

    warehouse: dg.ResourceDependency[WarehouseResource]

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame | None) -> None:
        if obj is None:
            return
        table = table_name_for(context.asset_key)
        partition = None
        if context.has_asset_partitions:
            keys = context.asset_partition_keys
            if len(keys) != 1:
                raise WarehouseError(
                    f"table {table!r}: one run must write one partition, got {len(keys)}; "
                    "run a backfill with one run per partition"
                )
            partition = keys[0]
        self.warehouse.store().write(table, obj, partition=partition)
        context.add_output_metadata({"dagster/table_name": table})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        table = table_name_for(context.asset_key)
        store = self.warehouse.store()
        if not store.exists(table):
            raise WarehouseError(
                f"table {table!r} is not in the warehouse: materialize asset "
                f"{context.asset_key.to_user_string()!r} first"
            )
        partitions = None
        # A partitioned run reads the upstream partitions mapped to it; an unpartitioned
        # downstream reads every stored partition, not only those the definition knows today.
        if context.has_asset_partitions and context.has_partition_key:
            partitions = list(context.asset_partition_keys)
        return store.read(table, partitions=partitions)
