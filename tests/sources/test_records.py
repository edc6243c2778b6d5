"""One bad line costs one line: broken quotes and undecodable bytes are rejected alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_platform.sources import SourceError, load
from data_platform.sources.files import clear_cache
from data_platform.sources.records import MAX_UNDECODABLE_SHARE, open_quote_column

ORDERS_HEADER = "order_id,customer_id,order_date,product_id,quantity,unit_price"
RETAIL_HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"


def order_rows(n: int) -> list[str]:
    return [f"CD{i:06d},{i % 2357:05d},1997-01-01,CD,1,14.96" for i in range(1, n + 1)]


def write_lines(path: Path, lines: list[str], end: str = "\n") -> Path:
    path.write_text(end.join(lines) + end, encoding="utf-8", newline="")
    clear_cache()
    return path


def test_an_unbalanced_quote_costs_only_its_line(tmp_path):
    # The reproduction: before, 901 rows and one reject holding the other 1,099 lines.
    rows = order_rows(2000)
    rows[901] = 'CD000901,"00999,1997-01-01,CD,1,14.96'
    result = load("orders_csv", write_lines(tmp_path / "orders.csv", [ORDERS_HEADER, *rows]))
    assert len(result.data) == 1999 and len(result.rejected) == 1
    reject = result.rejected.iloc[0]
    assert reject["line"] == 903 and reject["raw"] == rows[901]
    assert "unbalanced quote" in reject["reason"] and "line 903, column 10" in reject["reason"]
    assert result.lines.total == 2001 and result.lines.balanced
    assert (result.lines.accepted, result.lines.rejected, result.lines.header) == (1999, 1, 1)
    kept = set(result.data["order_id"])
    assert all(row.split(",")[0] in kept for i, row in enumerate(rows) if i != 901)


def test_a_quote_closed_by_a_later_broken_line_does_not_swallow_the_valid_lines_between(tmp_path):
    lines = [
        RETAIL_HEADER,
        '1,A1,"BROKEN,1,2011-01-03 08:00:00,1.0,1,UK',  # 2: opens a quote that never closes here
        "2,A1,FINE,1,2011-01-03 08:00:00,1.0,1,UK",  # 3
        "3,A1,FINE,1,2011-01-03 08:00:00,1.0,1,UK",  # 4
        'X",1,2011-01-03 08:00:00,1.0,1,UK',  # 5: a quote that would close line 2's field
        "4,A1,FINE,1,2011-01-03 08:00:00,1.0,1,UK",  # 6
    ]
    result = load("online_retail", write_lines(tmp_path / "r.csv", lines, "\r\n"))
    assert sorted(result.data["order_id"]) == ["2", "3", "4"]
    rejected = result.rejected.set_index("line")
    assert list(rejected.index) == [2, 5]
    assert rejected.loc[2, "reason"].startswith("unbalanced quote: the quoted field opened at line 2, column 6")
    assert rejected.loc[2, "raw"] == lines[1]
    assert result.lines.balanced and result.lines.rejected == 2 and result.lines.accepted == 3


def test_quoted_fields_that_span_lines_still_load(tmp_path):
    lines = [
        RETAIL_HEADER,
        '"6001",A1,"TWO',
        'LINES, ONE COMMA",1,2011-01-03 08:00:00,1.0,1,UK',  # 2-3: one record
        '"6002',
        '",A1,FIRST COLUMN SPANS,1,2011-01-03 08:00:00,1.0,1,UK',  # 4-5: one record
        '6003,A3,"THREE',
        "",
        'LINES",1,2011-01-03 08:00:00,1.0,1,UK',  # 6-8: one record holding a blank line
        '6004,A1,"BROKEN,1,2011-01-03 08:00:00,1.0,1,UK',  # 9: broken, followed by a valid line
        "6005,A1,AFTER,1,2011-01-03 08:00:00,1.0,1,UK",
    ]
    path = write_lines(tmp_path / "m.csv", lines)
    result = load("online_retail", path)
    assert list(result.data["order_id"]) == ["6001", "6002", "6003", "6005"]  # cells are stripped
    assert list(result.rejected["line"]) == [9]
    descriptions = set(load("online_retail", path, entity="products").data["description"])
    assert {"TWO\nLINES, ONE COMMA", "THREE\n\nLINES"} <= descriptions
    assert result.lines.total == 10 and result.lines.accepted == 8 and result.lines.balanced


def test_a_stray_latin1_byte_costs_only_its_line(tmp_path):
    # The reproduction: before, SourceError for the whole file and 100 valid rows lost.
    text = "\n".join([ORDERS_HEADER, *order_rows(100)]) + "\n"
    path = tmp_path / "latin.csv"
    path.write_bytes(text.encode() + "A101,caf\xe9,2024-05-01,p,1,1.5\n".encode("latin-1"))
    clear_cache()
    result = load("orders_csv", path)
    assert len(result.data) == 100 and list(result.rejected["line"]) == [102]
    assert result.rejected["reason"].iloc[0] == "bytes not valid utf-8 at line 102, column 9: b'\\xe9'"
    assert result.rejected["raw"].iloc[0] == "A101,caf\\xe9,2024-05-01,p,1,1.5"
    assert result.lines.balanced and result.lines.rejected == 1


def test_undecodable_lines_of_labelled_text_are_rejected_alone(tmp_path):
    path = tmp_path / "s.txt"
    path.write_bytes(b"good one\t1\n" * 9 + b"caf\xe9 bad\t0\r\nlast\t0")
    clear_cache()
    result = load("labelled_text", path)
    assert len(result.data) == 10 and list(result.rejected["line"]) == [10]
    assert result.rejected["reason"].iloc[0].startswith("bytes not valid utf-8 at line 10")
    assert result.lines.total == 11 and result.lines.balanced


@pytest.mark.parametrize(("rows", "bad", "raises"), [(9, 1, False), (8, 1, True), (90, 11, True)])
def test_more_than_one_undecodable_line_in_ten_means_another_encoding(tmp_path, rows, bad, raises):
    # Non-blank lines = header + rows; more than 10% of them undecodable raises.
    assert MAX_UNDECODABLE_SHARE == 0.10
    good = [f"{line}\n".encode() for line in [ORDERS_HEADER, *order_rows(rows - bad)]]
    broken = [f"B{i},caf\xe9,2024-05-01,p,1,1.5\n".encode("latin-1") for i in range(bad)]
    path = tmp_path / "mixed.csv"
    path.write_bytes(b"".join(good + broken) + b"\n\n")  # blank lines do not count
    clear_cache()
    if raises:
        with pytest.raises(SourceError, match=r"not valid utf-8 .* lines are not valid utf-8") as caught:
            load("orders_csv", path)
        assert caught.value.where == str(path) and "another encoding" in caught.value.problem
    else:
        result = load("orders_csv", path)
        assert len(result.data) == rows - bad and len(result.rejected) == bad


def test_a_file_in_another_encoding_raises_one_error_naming_file_and_encoding(tmp_path):
    clear_cache()
    latin = tmp_path / "latin.csv"
    latin.write_bytes(
        "\n".join(["order_id,customer_id,order_date,product_id,quantity,unit_price,country"]
                  + [f"A{i},c,2024-05-01,p,1,1.5,Sch\xf6neck" for i in range(50)]).encode("latin-1")
    )
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes("\n".join([ORDERS_HEADER, *order_rows(20)]).encode("utf-16-le"))  # no BOM
    texts = tmp_path / "utf16.txt"
    texts.write_bytes("a sentence\t1\nanother\t0\n".encode("utf-16-be"))
    for kind, path, message in (
        ("orders_csv", latin, "50 of 51 lines are not valid utf-8"),
        ("orders_csv", utf16, "not utf-8: every other byte is NUL"),
        ("labelled_text", texts, "not utf-8: every other byte is NUL"),
    ):
        with pytest.raises(SourceError, match=message) as caught:
            load(kind, path)
        assert caught.value.where == str(path)


def test_an_undecodable_header_raises(tmp_path):
    path = tmp_path / "h.csv"
    path.write_bytes(b"order_id,caf\xe9\n" + "\n".join(order_rows(20)).encode())
    clear_cache()
    with pytest.raises(SourceError, match="unreadable header: bytes not valid utf-8 at line 1"):
        load("orders_csv", path)


@pytest.mark.parametrize(
    ("line", "column"),
    [('a,"b', 3), ('"a', 1), ('a,"b""', 3), ('a,"b"', None), ('a,b"c', None), ('"a",b,"c\r\n', 7), ("", None)],
)
def test_open_quote_column(line, column):
    assert open_quote_column(line) == column
