"""Ingestion of a damaged file source: the bad lines are rejected alone and every line is counted."""

from pathlib import Path

import dagster as dg

from data_platform.assets.ingestion import build_ingestion_asset
from data_platform.resources.source import SourceResource
from data_platform.resources.warehouse import TableStore, WarehouseIOManager, WarehouseResource
from data_platform.sources.files import clear_cache

HEADER = "order_id,customer_id,order_date,product_id,quantity,unit_price"


def ingest_orders(tmp_path: Path, orders: str):
    """Materialize the orders ingestion asset for 2025-03-03 from `orders` (a source spec) into
    a SQLite warehouse under tmp_path; the source_rows_accounted check evaluation."""
    clear_cache()
    warehouse = WarehouseResource(url=f"sqlite:///{tmp_path / 'w.db'}")
    asset = build_ingestion_asset("orders", dg.DailyPartitionsDefinition(start_date="2025-03-01"))
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [asset],
            partition_key="2025-03-03",
            instance=instance,
            resources={
                "source": SourceResource(orders=orders),
                "warehouse": warehouse,
                "warehouse_io_manager": WarehouseIOManager(warehouse=warehouse),
            },
        )
    assert result.success
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "source_rows_accounted"]
    return check


def test_source_rows_accounted_counts_the_lines_of_a_damaged_file(tmp_path: Path):
    rows = [f"A{i},c{i},2025-03-03 10:00:00,p{i % 7},1,2.5" for i in range(1, 51)]
    rows[10] = 'A11,"c11,2025-03-03 10:00:00,p4,1,2.5'  # an unbalanced quote (line 12)
    data = ("\n".join([HEADER, *rows]) + "\n").encode() + "A51,caf\xe9,2025-03-03,p,1,2.5\n".encode("latin-1")
    path = tmp_path / "orders.csv"
    path.write_bytes(data)
    check = ingest_orders(tmp_path, f"orders_csv:{path}")
    assert check.passed
    metadata = {key: value.value for key, value in check.metadata.items()}
    assert (metadata["accepted_rows"], metadata["rejected_rows"]) == (49, 2)
    assert metadata["file_lines"] == 52 and metadata["file_lines_rejected"] == 2
    assert (metadata["file_lines_accepted"], metadata["file_lines_header_or_blank"]) == (49, 1)
    store = TableStore(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        rejected = store.read("orders_rejected", ["2025-03-03"]).sort_values("line")
        assert list(rejected["line"]) == [12, 52]
        assert rejected["reason"].str.startswith(("unbalanced quote", "bytes not valid utf-8")).all()
    finally:
        store.dispose()


def test_ingestion_reports_the_lines_decoded_with_the_fallback(tmp_path: Path):
    rows = [f"A{i},c{i},2025-03-03 10:00:00,p{i % 7},1,2.5\n".encode() for i in range(1, 41)]
    latin1 = [f"L{i},caf\xe9,2025-03-03 10:00:00,p1,1,2.5\n".encode("latin-1") for i in (1, 2)]
    path = tmp_path / "orders.csv"
    path.write_bytes(f"{HEADER}\n".encode() + b"".join(rows + latin1))
    check = ingest_orders(tmp_path, f"orders_csv:{path}?encoding_fallback=latin-1")
    metadata = {key: value.value for key, value in check.metadata.items()}
    assert check.passed and metadata["file_lines_decoded_with_fallback"] == 2
    assert (metadata["accepted_rows"], metadata["rejected_rows"], metadata["file_lines"]) == (42, 0, 43)
    store = TableStore(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        raw = store.read("orders_raw", ["2025-03-03"])
        assert set(raw.loc[raw["order_id"].isin(["L1", "L2"]), "customer_id"]) == {"caf\xe9"}
    finally:
        store.dispose()
