"""A declared fallback encoding: a line that is not valid UTF-8 is decoded with it, accepted and counted.

Without the option the line is rejected (tests/sources/test_records.py); with
``encoding_fallback=latin-1`` in the spec (or `load(..., options=...)`) it is read like any other
line, and `LoadResult.lines.decoded_with_fallback` and the `source_rows_accounted` check say how
many lines needed it.
"""

from datetime import date
from pathlib import Path

import pytest

from data_platform.resources.source import SourceResource
from data_platform.sources import SourceError, fetch, load
from data_platform.sources.files import clear_cache

HEADER = "order_id,customer_id,order_date,product_id,quantity,unit_price,country"
LATIN1 = {"encoding_fallback": "latin-1"}


def utf8_rows(n: int) -> list[bytes]:
    return [f"A{i},c{i},2025-03-03 10:00:00,p{i % 7},1,2.5,Deutschland\n".encode() for i in range(1, n + 1)]


def write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(lines))
    clear_cache()
    return path


def latin1_row(order: str, country: str = "R\xe9union") -> bytes:
    return f"{order},c\xe9line,2025-03-03 11:00:00,p1,2,3.5,{country}\n".encode("latin-1")


def test_a_latin1_line_is_decoded_with_the_declared_fallback_and_counted(tmp_path):
    path = write(tmp_path / "orders.csv", [f"{HEADER}\n".encode(), *utf8_rows(100), latin1_row("L1")])

    rejected_without = load("orders_csv", path)
    assert len(rejected_without.data) == 100 and list(rejected_without.rejected["line"]) == [102]
    assert rejected_without.lines.decoded_with_fallback == 0

    result = load("orders_csv", path, options=LATIN1)
    assert len(result.data) == 101 and len(result.rejected) == 0
    row = result.data.set_index("order_id").loc["L1"]
    assert (row["customer_id"], row["country"], row["quantity"]) == ("c\xe9line", "R\xe9union", 2)
    # The UTF-8 rows are read as UTF-8, not through the fallback.
    assert set(result.data.set_index("order_id").drop(index="L1")["country"]) == {"Deutschland"}
    assert result.lines.decoded_with_fallback == 1
    assert result.lines.balanced and (result.lines.accepted, result.lines.rejected) == (101, 0)


def test_the_fallback_comes_from_the_spec_as_every_source_option_does(tmp_path):
    folder = tmp_path / "orders"
    folder.mkdir()
    write(folder / "a.csv", [f"{HEADER}\n".encode(), *utf8_rows(20), latin1_row("L1"), latin1_row("L2", "Gen\xe8ve")])
    spec = f"orders_csv:{folder}?encoding_fallback=latin-1"
    result = fetch(spec, "orders", date(2025, 3, 3))
    assert sorted(result.data["order_id"])[:2] == ["A1", "A10"] and len(result.data) == 22
    assert set(result.data["country"]) == {"Deutschland", "R\xe9union", "Gen\xe8ve"}
    assert result.lines.decoded_with_fallback == 2
    # The same file through the source resource, as `DATA_PLATFORM_ORDERS=<spec>` configures it.
    via_resource = SourceResource(orders=spec).fetch("orders", date(2025, 3, 3))
    assert len(via_resource.data) == 22 and via_resource.lines.decoded_with_fallback == 2


def test_a_line_neither_encoding_decodes_is_still_rejected_alone(tmp_path):
    # 0x81 is undefined in cp1252: that line is valid in neither; the 0xE9 line is valid cp1252.
    broken = b"B1,c1,2025-03-03 10:00:00,p1,1,2.5,\x81\n"
    path = write(tmp_path / "o.csv", [f"{HEADER}\n".encode(), *utf8_rows(30), latin1_row("L1"), broken])
    result = load("orders_csv", path, options={"encoding_fallback": "cp1252"})
    assert len(result.data) == 31 and list(result.rejected["line"]) == [33]
    assert result.rejected["reason"].iloc[0] == "bytes not valid utf-8 nor cp1252 at line 33, column 36: b'\\x81'"
    assert result.lines.decoded_with_fallback == 1 and result.lines.balanced


def test_a_file_mixing_utf8_and_latin1_exports_loads_whole_with_the_fallback(tmp_path):
    # Half the lines in Latin-1: without a fallback that is "another encoding" and raises.
    lines = [f"{HEADER}\n".encode(), *utf8_rows(20), *(latin1_row(f"L{i}") for i in range(20))]
    path = write(tmp_path / "mixed.csv", lines)
    with pytest.raises(SourceError, match="20 of 41 lines are not valid utf-8"):
        load("orders_csv", path)
    result = load("orders_csv", path, options=LATIN1)
    assert len(result.data) == 40 and len(result.rejected) == 0
    assert result.lines.decoded_with_fallback == 20 and result.lines.balanced


def test_labelled_text_lines_use_the_fallback_too(tmp_path):
    folder = tmp_path / "reviews"
    folder.mkdir()
    write(folder / "s.txt", [b"good one\t1\n" * 9, "caf\xe9 cr\xe8me\t0\r\n".encode("latin-1"), b"last\t0"])
    result = load("labelled_text", folder, options=LATIN1)
    assert len(result.data) == 11 and len(result.rejected) == 0
    assert "caf\xe9 cr\xe8me" in set(result.data["text"])
    assert result.lines.decoded_with_fallback == 1 and result.lines.balanced


@pytest.mark.parametrize(
    ("fallback", "problem"),
    [
        ("no-such-codec", "encoding_fallback 'no-such-codec': unknown encoding"),
        ("utf-16", "encoding_fallback 'utf-16': decodes whole files only, not single lines"),
    ],
)
def test_a_fallback_that_cannot_decode_a_line_is_refused_naming_the_source(tmp_path, fallback, problem):
    path = write(tmp_path / "orders.csv", [f"{HEADER}\n".encode(), *utf8_rows(3)])
    with pytest.raises(SourceError) as raised:
        fetch(f"orders_csv:{path}?encoding_fallback={fallback}", "orders", date(2025, 3, 3))
    assert str(raised.value).startswith(f"orders_csv:{path}: ") and problem in str(raised.value)
