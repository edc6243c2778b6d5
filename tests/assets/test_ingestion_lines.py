"""Ingestion of a damaged file source: the bad lines are rejected alone and every line is counted."""

from pathlib import Path

import dagster as dg

from data_platform.assets.ingestion import build_ingestion_asset
from data_platform.resources.source import SourceResource
from data_platform.resources.warehouse import TableStore, WarehouseIOManager, WarehouseResource
from data_platform.sources.files import clear_cache

HEADER = "order_id,customer_id,order_date,product_id,quantity,unit_price"


def test_source_rows_accounted_counts_the_lines_of_a_damaged_file(tmp_path: Path):
    rows = [f"A{i},c{i},2025-03-03 10:00:00,p{i % 7},1,2.5" for i in range(1, 51)]
    rows[10] = 'A11,"c11,2025-03-03 10:00:00,p4,1,2.5'  # an unbalanced quote (line 12)
    data = ("\n".join([HEADER, *rows]) + "\n").encode() + "A51,caf\xe9,2025-03-03,p,1,2.5\n".encode("latin-1")
    path = tmp_path / "orders.csv"
    path.write_bytes(data)
    clear_cache()
    url = f"sqlite:///{tmp_path / 'w.db'}"
    warehouse = WarehouseResource(url=url)
    asset = build_ingestion_asset("orders", dg.DailyPartitionsDefinition(start_date="2025-03-01"))
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [asset],
            partition_key="2025-03-03",
            instance=instance,
            resources={
                "source": SourceResource(orders=f"orders_csv:{path}"),
                "warehouse": warehouse,
                "warehouse_io_manager": WarehouseIOManager(warehouse=warehouse),
            },
        )
    assert result.success
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "source_rows_accounted"]
    assert check.passed
    metadata = {key: value.value for key, value in check.metadata.items()}
    assert (metadata["accepted_rows"], metadata["rejected_rows"]) == (49, 2)
    assert metadata["file_lines"] == 52 and metadata["file_lines_rejected"] == 2
    assert (metadata["file_lines_accepted"], metadata["file_lines_header_or_blank"]) == (49, 1)
    store = TableStore(url)
    try:
        rejected = store.read("orders_rejected", ["2025-03-03"]).sort_values("line")
        assert list(rejected["line"]) == [12, 52]
        assert rejected["reason"].str.startswith(("unbalanced quote", "bytes not valid utf-8")).all()
    finally:
        store.dispose()
