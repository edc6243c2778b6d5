"""File adapters on small files written here: every row accepted or rejected with its line and reason."""

from __future__ import annotations

import csv
import gzip
import io
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_platform.sources import SCHEMAS, SourceError, fetch, load, partition_range
from data_platform.sources.files import UNDATED_DAYS, UNDATED_START

RETAIL_HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"


def write(path: Path, text: str, *, encoding: str = "utf-8", gz: bool = False) -> Path:
    data = text.encode(encoding)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def retail_rows(day: str) -> list[str]:
    return [
        f"5001,85123A,WHITE HEART,6,{day} 08:26:00,2.55,17850.0,United Kingdom",
        f"5001,71053,LANTERN,6,{day} 08:26:00,3.39,17850.0,United Kingdom",
        f"C5002,POST,POSTAGE,-1,{day} 09:00:00,18.00,,France",
        f'5003,22111,"MUG, ""BIG""",2,{day} 10:00:00,1.25,12583,France',
    ]


@pytest.fixture
def retail_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "retail"
    folder.mkdir()
    for day in ("2011-01-03", "2011-01-04", "2011-01-05"):
        write(folder / f"{day}.csv", "\n".join([RETAIL_HEADER, *retail_rows(day)]) + "\n")
    return folder


def test_online_retail_parses_cancellations_missing_customers_and_line_numbers(retail_folder):
    result = load("online_retail", retail_folder / "2011-01-03.csv")
    data = result.data
    assert list(data.columns) == list(SCHEMAS["orders"].columns)
    assert len(data) == 4 and len(result.rejected) == 0
    assert list(data["line_no"]) == [1, 2, 1, 1]
    assert data.loc[2, "order_id"] == "C5002" and data.loc[2, "quantity"] == -1
    assert pd.isna(data.loc[2, "customer_id"])
    assert data.loc[0, "customer_id"] == "17850"
    assert data.loc[0, "ordered_at"] == pd.Timestamp("2011-01-03 08:26:00")


def test_online_retail_dimensions(retail_folder):
    products = load("online_retail", retail_folder, entity="products").data
    assert list(products.columns) == list(SCHEMAS["products"].columns)
    by_id = products.set_index("product_id")
    assert by_id.loc["POST", "category"] == "non_product"
    assert by_id.loc["85123A", "category"] == "product"
    assert by_id.loc["22111", "description"] == 'MUG, "BIG"'
    assert by_id.loc["71053", "price"] == pytest.approx(3.39)
    customers = load("online_retail", retail_folder, entity="customers").data.set_index(
        "customer_id"
    )
    assert sorted(customers.index) == ["12583", "17850"]
    assert customers.loc["17850", "signup_date"] == pd.Timestamp("2011-01-03 08:26:00")
    assert customers.loc["12583", "country"] == "France"
    with pytest.raises(SourceError, match="not 'ratings'"):
        load("online_retail", retail_folder, entity="ratings")


def test_window_reads_only_the_files_of_its_days(retail_folder):
    result = load("online_retail", retail_folder, start=date(2011, 1, 4), end=date(2011, 1, 5))
    assert result.files == (str(retail_folder / "2011-01-04.csv"),)
    assert (result.data["ordered_at"].dt.date == date(2011, 1, 4)).all() and len(result.data) == 4
    assert fetch(f"online_retail:{retail_folder}", "orders", date(2011, 1, 5)).source_rows == 4
    assert len(fetch(f"online_retail:{retail_folder}", "customers").data) == 2
    assert partition_range(
        {"orders": f"online_retail:{retail_folder}", "ratings": "synthetic"}
    ) == (
        date(2011, 1, 3),
        date(2011, 1, 5),
    )
    assert partition_range({e: "synthetic" for e in SCHEMAS}) is None


def test_bad_rows_are_rejected_with_line_and_reason(tmp_path):
    lines = [
        RETAIL_HEADER,
        "6001,85123A,OK,6,2011-01-03 08:26:00,2.55,17850,United Kingdom",  # line 2
        "6001,85123A,BAD QTY,six,2011-01-03 08:26:00,2.55,17850,United Kingdom",  # 3
        "6002,85123A,BAD DATE,1,yesterday,2.55,17850,United Kingdom",  # 4
        "6003,85123A,SHORT ROW,1,2011-01-03 09:00:00",  # 5
        ",85123A,NO INVOICE,1,2011-01-03 09:00:00,1.0,17850,United Kingdom",  # 6
        "6004,85123A,BAD PRICE,1,2011-01-03 09:00:00,1,5,17850,United Kingdom",  # 7 (extra field)
        "6005,85123A,FRACTION,1.5,2011-01-03 09:00:00,1.0,17850,United Kingdom",  # 8
        "6006,85123A,PRICE,1,2011-01-03 09:00:00,abc,17850,United Kingdom",  # 9
        "",
        '6007,85123A,"MULTI',
        'LINE",1,2011-01-03 10:00:00,1.0,17850,United Kingdom',  # 11-12
    ]
    path = write(tmp_path / "orders.csv", "\r\n".join(lines) + "\r\n")
    result = load("online_retail", path)
    rejected = result.rejected.set_index("line")
    assert result.source_rows == 9
    assert len(result.data) == 2
    assert (
        rejected.loc[3, "reason"] == "unparseable integer"
        and rejected.loc[3, "column"] == "Quantity"
    )
    assert rejected.loc[3, "value"] == "six"
    assert rejected.loc[4, "reason"] == "unparseable date"
    assert rejected.loc[5, "reason"].startswith("wrong column count: 5 fields")
    assert (
        rejected.loc[6, "reason"] == "missing required value"
        and rejected.loc[6, "column"] == "InvoiceNo"
    )
    assert rejected.loc[7, "reason"].startswith("wrong column count: 9 fields")
    assert rejected.loc[8, "reason"] == "unparseable integer"
    assert rejected.loc[9, "reason"] == "unparseable number" and rejected.loc[9, "value"] == "abc"
    assert rejected.loc[3, "raw"] == lines[2]
    assert result.data.loc[1, "order_id"] == "6007"
    assert list(rejected.columns) == ["file", "column", "value", "reason", "raw"]


def test_rejects_are_attributed_to_one_day(tmp_path):
    lines = [
        RETAIL_HEADER,
        "1,A1,X,1,2011-01-03 08:00:00,1.0,1,UK",
        "2,A1,X,oops,2011-01-04 08:00:00,1.0,1,UK",  # its own day: Jan 4
        "3,A1,X,1,not a date,1.0,1,UK",  # undatable: first day of the file, Jan 3
        "4,A1,X,1,2011-01-04 09:00:00,1.0,1,UK",
    ]
    path = write(tmp_path / "orders.csv", "\n".join(lines) + "\n")
    day3 = load("online_retail", path, start=date(2011, 1, 3), end=date(2011, 1, 4))
    day4 = load("online_retail", path, start=date(2011, 1, 4), end=date(2011, 1, 5))
    assert list(day3.rejected["line"]) == [4] and list(day4.rejected["line"]) == [3]
    assert day3.source_rows + day4.source_rows == 4


@pytest.mark.parametrize("gz", [False, True])
def test_gzip_bom_and_crlf_are_read_the_same(tmp_path, gz):
    text = "\r\n".join([RETAIL_HEADER, *retail_rows("2011-01-03")]) + "\r\n"
    name = "bom.csv.gz" if gz else "bom.csv"
    path = tmp_path / name
    data = b"\xef\xbb\xbf" + text.encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    result = load("online_retail", path)
    assert len(result.data) == 4 and len(result.rejected) == 0
    assert result.data["country"].iloc[0] == "United Kingdom"


def test_structural_problems_raise_one_source_error_naming_the_file(tmp_path):
    cases = {
        "missing.csv": (None, "file not found|no such file"),
        "empty.csv": (b"", "empty file"),
        "blank.csv": (b"\n\n", "empty file"),
        "nocol.csv": (
            b"InvoiceNo,StockCode\n1,2\n",
            r"missing required column\(s\) \['Description'",
        ),
        "semicolon.csv": (RETAIL_HEADER.replace(",", ";").encode() + b"\n", "wrong delimiter"),
        "tabs.csv": (RETAIL_HEADER.replace(",", "\t").encode() + b"\n", "wrong delimiter"),
        "latin1.csv": (
            (RETAIL_HEADER + "\n1,A,caf\xe9,1,2011-01-03,1.0,1,UK\n").encode("latin-1"),
            "not valid utf-8 at line 2",
        ),
        "broken.csv.gz": (b"not gzip at all", "cannot read file"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(SourceError, match=message) as caught:
            load("online_retail", path)
        assert caught.value.where == str(path)


def test_orders_csv_generic(tmp_path):
    text = (
        "order_id,customer_id,order_date,product_id,quantity,unit_price,country\n"
        "A1,c1,2024-05-01T10:00:00Z,p1,2,9.99,DE\n"
        "A1,c1,2024-05-01T10:00:00Z,p2,1,-5,DE\n"
        "A2,,2024-05-02 11:00:00+02:00,p1,1,9.99,\n"
        "A3,c2,2024-05-02,,1,9.99,FR\n"
    )
    result = load("orders_csv", write(tmp_path / "o.csv.gz", text, gz=True))
    assert result.source_rows == 4 and len(result.rejected) == 1
    assert result.rejected["reason"].iloc[0] == "missing required value"
    assert result.rejected["line"].iloc[0] == 5
    data = result.data
    assert list(data["line_no"]) == [1, 2, 1]
    assert data.loc[1, "unit_price"] == -5  # domain rules belong to cleaning
    assert data.loc[2, "ordered_at"] == pd.Timestamp("2024-05-02 09:00:00")  # UTC, naive
    with pytest.raises(SourceError, match="unit_price"):
        load(
            "orders_csv",
            write(
                tmp_path / "x.csv",
                "order_id,customer_id,order_date,product_id,quantity\n1,2,3,4,5\n",
            ),
        )


def test_labelled_text_keeps_quotes_and_rejects_bad_lines(tmp_path):
    folder = tmp_path / "sentences"
    folder.mkdir()
    write(
        folder / "a_labelled.txt",
        'He said "great\t1\nno label here\n\t0\nBad label\t2\nTabs\tinside\t0\n',
    )
    write(folder / "b_labelled.txt.gz", "Crlf line\t1\r\nlast\t0", gz=True)
    result = load("labelled_text", folder)
    data, rejected = result.data, result.rejected
    assert result.source_rows == 7
    assert list(data["text"]) == ['He said "great', "Tabs\tinside", "Crlf line", "last"]
    assert list(data["label"]) == [1, 0, 1, 0]
    assert list(zip(rejected["line"], rejected["reason"], strict=True)) == [
        (2, "wrong column count: no tab between text and label"),
        (3, "missing required value"),
        (4, "unparseable label (expected 0 or 1)"),
    ]
    assert data["review_id"].is_unique
    assert list(data["review_id"]) == list(load("labelled_text", folder).data["review_id"])
    assert data["reviewed_at"].min() == pd.Timestamp(UNDATED_START)
    assert data["reviewed_at"].max() < pd.Timestamp(UNDATED_START) + pd.Timedelta(days=UNDATED_DAYS)
    with pytest.raises(SourceError, match="not valid utf-8"):
        load("labelled_text", write(tmp_path / "bad.txt", "caf\xe9\t1\n", encoding="latin-1"))


def test_undated_rows_partition_into_days(tmp_path):
    lines = "".join(f"sentence {i}\t{i % 2}\n" for i in range(56))
    path = write(tmp_path / "s.txt", lines)
    spec = f"labelled_text:{path}?start=2024-02-01"
    daily = [fetch(spec, "reviews", date(2024, 2, d)) for d in range(1, 29)]
    assert all(len(r.data) == 2 for r in daily)
    assert sum(r.source_rows for r in daily) == 56
    assert partition_range({"reviews": spec}) == (date(2024, 2, 1), date(2024, 2, 28))


def test_polarity_is_latin1(tmp_path):
    folder = tmp_path / "rt"
    folder.mkdir()
    write(
        folder / "rt-polarity.pos", 'a charming caf\xe9 film\nsecond "quoted\n', encoding="latin-1"
    )
    write(folder / "rt-polarity.neg", "dull\n\n", encoding="latin-1")
    data = load("polarity", folder).data
    assert list(data["text"]) == ["dull", "a charming caf\xe9 film", 'second "quoted']
    assert list(data["label"]) == [0, 1, 1]
    with pytest.raises(SourceError, match="rt-polarity"):
        load("polarity", tmp_path)


def test_movielens_100k_and_latest(tmp_path):
    small = tmp_path / "ml-100k"
    small.mkdir()
    write(small / "u.data", "196\t242\t3\t881250949\n186\t302\tx\t891717742\n22\t377\t1\n")
    flags = "|".join(["0", "0", "1"] + ["0"] * 16)
    write(
        small / "u.item",
        f"242|Kolya (1996)|24-Jan-1997||http://x|{flags}\n302|Caf\xe9|||u|{'|'.join(['0'] * 19)}\n",
        encoding="latin-1",
    )
    write(small / "u.user", "196|49|M|writer|55105\n186|39|F|executive|00000\n")
    ratings = load("movielens", small)
    assert ratings.source_rows == 3 and len(ratings.data) == 1
    assert ratings.data.loc[0, "rated_at"] == pd.Timestamp(881250949, unit="s")
    assert set(ratings.rejected["line"]) == {2, 3}
    products = load("movielens", small, entity="products").data.set_index("product_id")
    assert products.loc["242", "category"] == "Adventure" and pd.isna(
        products.loc["302", "category"]
    )
    assert products["price"].isna().all()
    assert list(load("movielens", small, entity="customers").data["customer_id"]) == ["196", "186"]
    latest = tmp_path / "ml-latest"
    latest.mkdir()
    write(
        latest / "ratings.csv",
        "userId,movieId,rating,timestamp\n1,10,4.5,964982703\n2,10,3,964981247\n",
    )
    write(latest / "movies.csv", 'movieId,title,genres\n10,"GoldenEye, (1995)",Action|Adventure\n')
    assert list(load("movielens", latest).data["rating"]) == [4.5, 3.0]
    assert load("movielens", latest, entity="products").data.loc[0, "category"] == "Action"
    assert len(load("movielens", latest, entity="customers").data) == 2


def test_unknown_kind_and_entity(tmp_path):
    with pytest.raises(SourceError, match="unknown kind"):
        load("parquet", tmp_path)
    with pytest.raises(SourceError, match="provides"):
        load("labelled_text", tmp_path, entity="orders")


def test_a_rewritten_file_is_parsed_again(tmp_path):
    path = write(
        tmp_path / "o.csv", "\n".join([RETAIL_HEADER, *retail_rows("2011-01-03")[:1]]) + "\n"
    )
    assert len(load("online_retail", path).data) == 1
    write(path, "\n".join([RETAIL_HEADER, *retail_rows("2011-01-03")]) + "\n")
    assert len(load("online_retail", path).data) == 4


cell = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ["", "1", "-3", "2.5", "1e3", "nan", "inf", '"', "\x00", "\r\n", "2011-01-03 08:00:00"]
    ),
    # Huge fields, beyond the csv module's default field size limit.
    st.integers(min_value=1_000, max_value=200_000).map(lambda n: ('ab"c,\n' * n)[:n]),
)


CSV_HEADERS = {
    "orders_csv": ["order_id", "customer_id", "order_date", "product_id", "quantity", "unit_price"],
    "online_retail": RETAIL_HEADER.split(","),
}
PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.mark.parametrize("kind", list(CSV_HEADERS))
@PROPERTY
@given(rows=st.lists(st.lists(cell, min_size=5, max_size=9), min_size=1, max_size=15))
def test_property_csv_adapters_account_for_every_row(tmp_path_factory, kind, rows):
    header = CSV_HEADERS[kind]
    buffer = io.StringIO()
    # CRLF terminators make the writer quote any cell holding \r or \n.
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        # A row of only empty cells is written as a blank line, which holds no data.
        writer.writerow(row if any(row) else ["x", *row[1:]])
    path = tmp_path_factory.mktemp("prop") / "orders.csv"
    path.write_bytes(buffer.getvalue().encode("utf-8"))
    try:
        result = load(kind, path)
    except SourceError:
        return
    assert result.source_rows == len(rows)
    assert list(result.data.columns) == list(SCHEMAS["orders"].columns)
    assert len(result.data) <= sum(len(r) == len(header) for r in rows)
    assert result.rejected["line"].is_unique


@PROPERTY
@given(
    lines=st.lists(
        st.tuples(st.text(max_size=40), st.sampled_from(["0", "1", "2", "", " 1"])), max_size=20
    )
)
def test_property_labelled_text_accounts_for_every_line(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("prop") / "s.txt"
    text = "\n".join(f"{sentence}\t{label}" for sentence, label in lines)
    # A sentence holding a line break spans several physical lines, each a row of its own.
    physical = [line for line in io.StringIO(text, newline="") if line.strip()]
    path.write_bytes(text.encode("utf-8"))
    try:
        result = load("labelled_text", path)
    except SourceError as exc:
        assert "empty file" in str(exc) and not physical
        return
    assert result.source_rows == len(physical)
    assert result.data["label"].isin([0, 1]).all()
