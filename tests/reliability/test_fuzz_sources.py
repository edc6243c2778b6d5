"""Hypothesis fuzzing of every file adapter: hostile files in, only SourceError out, no row lost.

Each structured case plants valid rows with unique identifiers among hostile records (random
cells, unbalanced quotes, huge fields, NUL bytes, unicode, tabs), in UTF-8, UTF-8 with BOM or
UTF-16 (Latin-1 for the Latin-1 formats), with LF, CRLF or CR line ends, plain or gzip'd, and ends
the file with a hostile tail (a truncated row without line end, an unterminated quote, a line of
NULs). The invariants:

- the adapter returns or raises ``SourceError``; any other exception is a bug;
- accepted + rejected = the data records written (blank lines hold no data);
- every planted row arrives in ``.data`` with exactly the values written.

The unstructured cases throw random bytes, and random damage to a valid file, at every file of
every kind: only ``SourceError`` may escape, and no more rows come out than lines went in.

The broken-line cases damage single lines of a valid file (a quote inserted at a random place,
a stray byte that is not UTF-8) under mixed line endings (LF, CRLF and CR in one file): every
undamaged line arrives unchanged, every line with a stray byte is rejected alone with a reason,
damaged lines take no undamaged line with them, and the file's physical lines = accepted lines +
rejected lines + header. More than one undecodable line in ten raises one ``SourceError``.
"""

from __future__ import annotations

import csv
import gzip
import io
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_platform.sources import SCHEMAS, SourceError, fetch, load
from data_platform.sources.files import NUL_REASON, clear_cache
from data_platform.sources.records import MAX_UNDECODABLE_SHARE
from data_platform.tablestore import TableStore

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
FEWER = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
BROKEN_LINES = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))

TERMINATORS = ["\n", "\r\n", "\r"]
TEXT_ENCODINGS = ["utf-8", "utf-8-sig", "utf-16"]  # the last two write a byte-order mark
EPOCH_2000 = datetime(2000, 1, 1)

# Characters that break naive parsers, plus any printable unicode.
NASTY = st.sampled_from(list('",;|\t\x00\\\'\ufeff\u2028\x85é中😀 '))
ANY_CHAR = st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n")
UNICODE_TEXT = st.text(st.one_of(NASTY, ANY_CHAR), max_size=30)
# Valid values may hold anything SQL text can hold, which excludes NUL.
PLAIN_TEXT = UNICODE_TEXT.map(lambda text: text.replace("\x00", ""))
LATIN1_TEXT = st.text(st.characters(max_codepoint=255, blacklist_characters="\r\n"), max_size=30)
PLAIN_LATIN1 = LATIN1_TEXT.map(lambda text: text.replace("\x00", ""))
HUGE_FIELD = st.integers(min_value=1_000, max_value=150_000).map(lambda n: ('ab"c,\t\x00' * n)[:n])
IDENT = st.text("abcdefghijklmnopqrstuvwxyzABCDEFXYZ0123456789_-é中", min_size=1, max_size=10)


def present(text: str) -> bool:
    # What the adapters treat as a value: cells are stripped, blank lines are skipped.
    return bool(text.strip())


def stripped_text(alphabet_text=UNICODE_TEXT):
    return alphabet_text.map(str.strip).filter(present)


def write_file(path: Path, text: str, encoding: str, gz: bool) -> Path:
    data = text.encode(encoding)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def fresh_folder(tmp_path_factory) -> Path:
    # Parsed files are cached by (path, size, mtime): a new folder per example avoids stale hits.
    clear_cache()
    return tmp_path_factory.mktemp("fuzz")


def load_or_source_error(kind: str, path: Path, entity: str | None = None):
    try:
        return load(kind, path, entity=entity)
    except SourceError:
        return None


def assert_storable(result, folder: Path) -> None:
    """What an adapter accepts and what it rejects must both fit the warehouse (no NUL, etc.)."""
    store = TableStore(f"sqlite:///{folder / 'warehouse.db'}")
    try:
        assert store.write("data", result.data, partition="p") == len(result.data)
        assert store.write("rejected", result.rejected, partition="p") == len(result.rejected)
    finally:
        store.dispose()


def csv_text(header: list[str] | None, records: list[list[str]], tail: str, terminator: str) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=terminator)
    if header is not None:
        writer.writerow(header)
    writer.writerows(records)
    return buffer.getvalue() + tail


# ------------------------------------------------------------------ hostile records and tails

junk_cell = st.one_of(
    UNICODE_TEXT,
    st.sampled_from(["", "1", "-3", "2.5", "1e308", "nan", "inf", '"', "\x00", "\r\n", "2011-01-03 08:00:00"]),
    HUGE_FIELD,
)


def junk_records(width: int):
    # Never blank (a blank record holds no data) and never mistaken for a planted row.
    return st.lists(
        st.lists(junk_cell, min_size=max(1, width - 3), max_size=width + 3).filter(
            lambda row: any(present(c) for c in row) and not row[0].strip().startswith("planted")
        ),
        max_size=8,
    )


# A hostile last line, written after the final line end: exactly one record each.
TAILS = st.one_of(
    st.just(""),
    st.sampled_from(['"unterminated, quote', 'tail,"half "quoted', "\x00\x00\x00", "tail\x00,\x00"]),
    st.builds(lambda text, cut: ("tail," + text)[: max(1, cut)], UNICODE_TEXT, st.integers(1, 40)),
)


def tail_records(tail: str) -> int:
    return int(present(tail))


# ------------------------------------------------------------------ order CSVs


planted_order = st.fixed_dictionaries(
    {
        "suffix": IDENT,
        "customer_id": IDENT,
        "product_id": IDENT,
        "ordered_at": st.integers(0, 30 * 365 * 86_400).map(lambda s: EPOCH_2000 + timedelta(seconds=s)),
        "quantity": st.integers(-1_000, 1_000),
        "unit_price": st.integers(-10**6, 10**6).map(lambda cents: cents / 100),
        "country": stripped_text(PLAIN_TEXT),
        "description": stripped_text(PLAIN_TEXT),
    }
)

ORDER_FORMATS = {
    "orders_csv": (
        ["order_id", "customer_id", "order_date", "product_id", "quantity", "unit_price", "country"],
        lambda o: [o["order_id"], o["customer_id"], o["ordered_at"].isoformat(), o["product_id"],
                   str(o["quantity"]), repr(o["unit_price"]), o["country"]],
    ),
    "online_retail": (
        ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"],
        lambda o: [o["order_id"], o["product_id"], o["description"], str(o["quantity"]),
                   o["ordered_at"].strftime("%Y-%m-%d %H:%M:%S"), repr(o["unit_price"]), o["customer_id"],
                   o["country"]],
    ),
}


def interleave(planted: list, junk: list, positions: list[int]) -> list:
    out = list(junk)
    for item, position in zip(planted, positions, strict=False):
        out.insert(position % (len(out) + 1), item)
    return out


@pytest.mark.parametrize("kind", list(ORDER_FORMATS))
@FUZZ
@given(
    planted=st.lists(planted_order, min_size=1, max_size=6),
    junk=junk_records(7),
    positions=st.lists(st.integers(0, 100), min_size=6, max_size=6),
    tail=TAILS,
    terminator=st.sampled_from(TERMINATORS),
    encoding=st.sampled_from(TEXT_ENCODINGS),
    gz=st.booleans(),
)
def test_order_csv_adapters_keep_planted_rows_and_count_every_record(
    tmp_path_factory, kind, planted, junk, positions, tail, terminator, encoding, gz
):
    header, render = ORDER_FORMATS[kind]
    for i, order in enumerate(planted):
        order["order_id"] = f"planted{i}x{order['suffix']}"
    records = interleave([render(o) for o in planted], junk, positions)
    folder = fresh_folder(tmp_path_factory)
    path = write_file(folder / "orders.csv", csv_text(header, records, tail, terminator), encoding, gz)

    result = load(kind, path)  # anything but a clean load is a bug: header and planted rows are valid
    assert_storable(result, folder)

    assert result.source_rows == len(records) + tail_records(tail)
    assert list(result.data.columns) == list(SCHEMAS["orders"].columns)
    assert result.rejected["line"].is_unique and result.rejected["reason"].notna().all()
    arrived = result.data.set_index("order_id")
    for order in planted:
        row = arrived.loc[order["order_id"]]
        assert isinstance(row, pd.Series), "a planted order arrived more than once"
        assert (row["customer_id"], row["product_id"], row["country"]) == (
            order["customer_id"], order["product_id"], order["country"])
        assert row["ordered_at"] == pd.Timestamp(order["ordered_at"])
        assert row["quantity"] == order["quantity"] and row["unit_price"] == order["unit_price"]


# ------------------------------------------------------------------ MovieLens ratings, both formats


planted_rating = st.fixed_dictionaries(
    {
        "item_id": IDENT,
        "rating": st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0, 3.5, 4.0, 4.5, 5.0]),
        "epoch": st.integers(0, 2_000_000_000),
    }
)
# u.data is tab separated without quoting: hostile lines are arbitrary text.
tab_junk_lines = st.lists(
    st.one_of(UNICODE_TEXT, HUGE_FIELD, st.lists(junk_cell, max_size=6).map("\t".join))
    .map(lambda line: line.replace("\r", " ").replace("\n", " "))
    .filter(
        lambda line: ("\t" in line or present(line)) and not line.startswith("planted")
    ),
    max_size=8,
)


@pytest.mark.parametrize("layout", ["ml-100k", "ml-latest"])
@FUZZ
@given(
    planted=st.lists(planted_rating, min_size=1, max_size=6),
    csv_junk=junk_records(4),
    tab_junk=tab_junk_lines,
    positions=st.lists(st.integers(0, 100), min_size=6, max_size=6),
    tail=TAILS,
    terminator=st.sampled_from(TERMINATORS),
    encoding=st.sampled_from(TEXT_ENCODINGS),
    gz=st.booleans(),
)
def test_movielens_ratings_keep_planted_rows_and_count_every_record(
    tmp_path_factory, layout, planted, csv_junk, tab_junk, positions, tail, terminator, encoding, gz
):
    for i, rating in enumerate(planted):
        rating["user_id"] = f"planted{i}"
    folder = fresh_folder(tmp_path_factory)
    rows = [[r["user_id"], r["item_id"], repr(r["rating"]), str(r["epoch"])] for r in planted]
    if layout == "ml-100k":
        lines = interleave(["\t".join(r) for r in rows], tab_junk, positions)
        text = terminator.join(lines) + terminator + tail
        written = len(lines) + int("\t" in tail or present(tail))
        write_file(folder / "u.data", text, encoding, gz)
    else:
        records = interleave(rows, csv_junk, positions)
        text = csv_text(["userId", "movieId", "rating", "timestamp"], records, tail, terminator)
        written = len(records) + tail_records(tail)
        write_file(folder / "ratings.csv", text, encoding, gz)

    result = load("movielens", folder)
    assert_storable(result, folder)

    assert result.source_rows == written
    assert list(result.data.columns) == list(SCHEMAS["ratings"].columns)
    arrived = result.data.set_index("user_id")
    for rating in planted:
        row = arrived.loc[rating["user_id"]]
        assert isinstance(row, pd.Series), "a planted rating arrived more than once"
        assert row["item_id"] == rating["item_id"] and row["rating"] == rating["rating"]
        assert row["rated_at"] == pd.Timestamp(rating["epoch"], unit="s")


# ------------------------------------------------------------------ sentences


text_junk_lines = st.lists(
    st.one_of(UNICODE_TEXT, HUGE_FIELD, st.sampled_from(["\t", "x\t", "\t1", "text\t2", "\x00\t0", '"\t1'])),
    max_size=8,
).map(lambda lines: [line for line in lines if not line.startswith("planted")])


@FUZZ
@given(
    planted=st.lists(st.tuples(PLAIN_TEXT, st.sampled_from([0, 1])), min_size=1, max_size=6),
    junk=text_junk_lines,
    positions=st.lists(st.integers(0, 100), min_size=6, max_size=6),
    tail=TAILS,
    terminator=st.sampled_from(TERMINATORS),
    encoding=st.sampled_from(TEXT_ENCODINGS),
    gz=st.booleans(),
)
def test_labelled_text_keeps_planted_sentences_and_counts_every_line(
    tmp_path_factory, planted, junk, positions, tail, terminator, encoding, gz
):
    # Quotes, tabs and NULs inside a sentence are text: only the last tab separates the label.
    sentences = [(f"planted{i} {text}", label) for i, (text, label) in enumerate(planted)]
    lines = interleave([f"{text}\t{label}" for text, label in sentences], junk, positions)
    folder = fresh_folder(tmp_path_factory)
    write_file(folder / "s_labelled.txt", terminator.join(lines) + terminator + tail, encoding, gz)

    result = load("labelled_text", folder)
    assert_storable(result, folder)

    assert result.source_rows == sum(present(line) for line in lines) + tail_records(tail)
    assert result.data["label"].isin([0, 1]).all() and result.data["review_id"].is_unique
    arrived = list(zip(result.data["text"], result.data["label"], strict=True))
    for sentence in sentences:
        assert arrived.count(sentence) == 1


@FUZZ
@given(
    positive=st.lists(PLAIN_LATIN1, min_size=1, max_size=6),
    negative=st.lists(PLAIN_LATIN1, min_size=1, max_size=6),
    junk=st.lists(st.one_of(LATIN1_TEXT, HUGE_FIELD), max_size=6),
    tail=st.one_of(st.just(""), LATIN1_TEXT, st.just("\x00\x00")),
    terminator=st.sampled_from(TERMINATORS),
    gz=st.booleans(),
)
def test_polarity_keeps_every_nonblank_line_with_its_label_or_rejects_it(
    tmp_path_factory, positive, negative, junk, tail, terminator, gz
):
    folder = fresh_folder(tmp_path_factory)
    files = {}
    for name, label, texts in (("rt-polarity.pos", 1, positive), ("rt-polarity.neg", 0, negative)):
        # Sentences start with a marker so that no file starts with bytes that read as a BOM.
        planted = [(f"planted{label}.{i} {text}", label) for i, text in enumerate(texts)]
        lines = [text for text, _ in planted] + junk
        write_file(folder / name, terminator.join(lines) + terminator + tail, "latin-1", gz)
        files[name] = (planted, sum(present(line) for line in lines) + int(present(tail)))

    result = load("polarity", folder)
    assert_storable(result, folder)

    assert result.source_rows == sum(count for _, count in files.values())
    assert set(result.rejected["reason"]) <= {NUL_REASON}
    arrived = list(zip(result.data["text"], result.data["label"], strict=True))
    for planted, _ in files.values():
        for sentence in planted:
            assert arrived.count(sentence) >= 1


# ------------------------------------------------------------------ random bytes and damage

VALID_FILES = {
    # kind, entity, file name, a small valid content (as bytes)
    "orders_csv": ("orders", "o.csv",
                   b"order_id,customer_id,order_date,product_id,quantity,unit_price\n"
                   b"A1,c1,2024-05-01T10:00:00Z,p1,2,9.99\nA2,,2024-05-02,p2,1,1.5\n"),
    "online_retail": ("orders", "r.csv",
                      b"InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
                      b'5001,85123A,"MUG, ""BIG""",6,2011-01-03 08:26:00,2.55,17850.0,United Kingdom\n'),
    "movielens/u.data": ("ratings", "u.data", b"196\t242\t3\t881250949\n186\t302\t4\t891717742\n"),
    "movielens/u.item": ("products", "u.item", b"242|Kolya (1996)|24-Jan-1997||http://x|" + b"|".join([b"0"] * 18 + [b"1"]) + b"\n"),
    "movielens/u.user": ("customers", "u.user", b"196|49|M|writer|55105\n186|39|F|executive|00000\n"),
    "movielens/ratings.csv": ("ratings", "ratings.csv", b"userId,movieId,rating,timestamp\n1,10,4.5,964982703\n"),
    "movielens/movies.csv": ("products", "movies.csv", b'movieId,title,genres\n10,"GoldenEye, (1995)",Action|Adventure\n'),
    "labelled_text": ("reviews", "a_labelled.txt", b'He said "great\t1\nplain\t0\n'),
    "polarity": ("reviews", "rt-polarity.pos", b"a charming caf\xe9 film\n"),
}
# What every MovieLens folder also needs, so that the fuzzed file is the one that gets read.
COMPANIONS = {
    "u.item": {"u.data": VALID_FILES["movielens/u.data"][2]},
    "u.user": {"u.data": VALID_FILES["movielens/u.data"][2]},
    "movies.csv": {"ratings.csv": VALID_FILES["movielens/ratings.csv"][2]},
    "rt-polarity.pos": {"rt-polarity.neg": b"dull\n"},
}

damage = st.lists(
    st.tuples(
        st.sampled_from(["insert", "delete", "overwrite", "truncate"]),
        st.integers(0, 10_000),
        st.binary(min_size=1, max_size=8) | st.sampled_from([b'"', b"\x00", b"\xef\xbb\xbf", b"\r", b"\t", b"\xff\xfe"]),
    ),
    min_size=1,
    max_size=6,
)


def damaged(data: bytes, edits) -> bytes:
    for action, at, piece in edits:
        at = at % (len(data) + 1)
        if action == "insert":
            data = data[:at] + piece + data[at:]
        elif action == "delete":
            data = data[:at] + data[at + len(piece):]
        elif action == "overwrite":
            data = data[:at] + piece + data[at + len(piece):]
        else:
            data = data[:at]
    return data


def load_bytes(tmp_path_factory, target: str, data: bytes, gz: bool):
    kind = target.split("/")[0]
    entity, name, _ = VALID_FILES[target]
    folder = fresh_folder(tmp_path_factory)
    for companion, content in COMPANIONS.get(name, {}).items():
        (folder / companion).write_bytes(content)
    path = folder / (name + ".gz" if gz else name)
    path.write_bytes(gzip.compress(data) if gz else data)
    result = load_or_source_error(kind, folder if kind in ("movielens", "polarity") else path, entity)
    if result is not None:
        lines = max(1, data.count(b"\n") + data.count(b"\r") + 1)
        assert result.source_rows <= lines * (2 if kind == "polarity" else 1) + 2
        assert list(result.data.columns) == list(SCHEMAS[entity].columns)
        assert_storable(result, folder)
    return result


@pytest.mark.parametrize("target", list(VALID_FILES))
@FEWER
@given(data=st.binary(max_size=400), gz=st.booleans())
def test_random_bytes_raise_only_source_error(tmp_path_factory, target, data, gz):
    load_bytes(tmp_path_factory, target, data, gz)


@pytest.mark.parametrize("target", list(VALID_FILES))
@FEWER
@given(edits=damage, gz=st.booleans())
def test_damaged_valid_files_raise_only_source_error(tmp_path_factory, target, edits, gz):
    load_bytes(tmp_path_factory, target, damaged(VALID_FILES[target][2], edits), gz)


@pytest.mark.parametrize("target", list(VALID_FILES))
def test_the_undamaged_files_load(tmp_path_factory, target):
    # The damage tests start from these files; they must be valid for the damage to mean anything.
    result = load_bytes(tmp_path_factory, target, VALID_FILES[target][2], gz=False)
    assert result is not None and len(result.data) >= 1 and result.rejected.empty


@pytest.mark.parametrize(
    ("kind", "name", "content"),
    [
        ("orders_csv", "o.csv", "order_id,customer_id,order_date,product_id,quantity,unit_price,country\n"
                                "A1,c1,2024-05-01,p1,2,9.99,D\x00E\nA2,c1,2024-05-01,p1,1,1.5,DE\n"),
        ("labelled_text", "s.txt", "nul\x00inside\t1\nclean\t0\n"),
        ("polarity", "rt-polarity.pos", "nul\x00inside\nclean\n"),
    ],
)
def test_nul_characters_are_rejected_and_the_reject_can_be_stored(tmp_path, kind, name, content):
    # PostgreSQL text cannot hold NUL: accepting such a row would fail the whole partition's write.
    (tmp_path / name).write_bytes(content.encode("latin-1"))
    if kind == "polarity":
        (tmp_path / "rt-polarity.neg").write_bytes(b"dull\n")
    clear_cache()
    result = load(kind, tmp_path if kind == "polarity" else tmp_path / name)
    assert len(result.rejected) == 1 and result.rejected["reason"].iloc[0] == NUL_REASON
    assert result.rejected["line"].iloc[0] == (2 if kind == "orders_csv" else 1)
    assert "\ufffd" in result.rejected["raw"].iloc[0] and "\x00" not in result.rejected["raw"].iloc[0]
    assert not result.data.astype("string").apply(lambda c: c.str.contains("\x00").any()).any()
    assert_storable(result, tmp_path)


def test_nul_characters_from_a_sql_source_are_rejected_and_storable(tmp_path):
    database = tmp_path / "source.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE customers (customer_id TEXT, country TEXT)")
        conn.executemany("INSERT INTO customers VALUES (?, ?)", [("a", "D\x00E"), ("b", "FR")])
    conn.close()
    result = fetch(f"sql:sqlite:///{database}::customers", "customers")
    assert result.data["customer_id"].tolist() == ["b"]
    assert result.rejected["reason"].tolist() == [NUL_REASON]
    assert result.rejected["value"].tolist() == ["D\ufffdE"]
    assert_storable(result, tmp_path)


# ------------------------------------------------------------------ broken lines, mixed line ends

# Any byte from 0x80 up, put between two characters, is invalid UTF-8 (0xE9 is Latin-1's é).
STRAY_BYTE = st.integers(0x80, 0xFF).map(lambda b: bytes([b]))
# "open": a quote at the start of a field, which opens a quoted field that never closes;
# "quote": a quote anywhere; "byte": a stray byte anywhere.
line_damage = st.tuples(st.sampled_from(["open", "quote", "byte"]), st.integers(0, 10_000), STRAY_BYTE)


def damage_line(line: str, damage, delimiter: str = ",") -> bytes:
    what, at, stray = damage
    if what == "open":
        starts = [0] + [i + 1 for i, char in enumerate(line) if char == delimiter]
        at = starts[at % len(starts)]
    at %= len(line) + 1
    piece = stray if what == "byte" else b'"'
    return line[:at].encode() + piece + line[at:].encode()


def too_many_undecodable(undecodable: int, nonblank: int) -> bool:
    return undecodable > MAX_UNDECODABLE_SHARE * nonblank


@pytest.mark.parametrize("kind", list(ORDER_FORMATS))
@BROKEN_LINES
@given(
    planted=st.lists(planted_order, min_size=2, max_size=14),
    damages=st.dictionaries(st.integers(0, 13), line_damage, max_size=5),
    terminators=st.lists(st.sampled_from(TERMINATORS), min_size=16, max_size=16),
    bom=st.booleans(),
)
def test_broken_lines_cost_only_their_line(tmp_path_factory, kind, planted, damages, terminators, bom):
    header, render = ORDER_FORMATS[kind]
    for i, order in enumerate(planted):
        order["order_id"] = f"planted{i}x{order['suffix']}"
    damages = {i: d for i, d in damages.items() if i < len(planted)}
    lines = [csv_text(None, [render(o)], "", "").rstrip("\r\n") for o in planted]
    encoded = [damage_line(line, damages[i]) if i in damages else line.encode() for i, line in enumerate(lines)]
    # Mixed line ends; no line is empty, so a CR never meets the LF of a blank line.
    body = b"".join(
        line + terminators[i].encode() for i, line in enumerate([csv_text(None, [header], "", "").strip().encode(), *encoded])
    )
    folder = fresh_folder(tmp_path_factory)
    path = folder / "orders.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + body)
    bad_bytes = {i + 2 for i, (what, _, _) in damages.items() if what == "byte"}  # physical lines
    quoted = {i + 2 for i, (what, _, _) in damages.items() if what != "byte"}

    if too_many_undecodable(len(bad_bytes), len(lines) + 1):
        with pytest.raises(SourceError, match="lines are not valid utf-8") as caught:
            load(kind, path)
        assert caught.value.where == str(path)
        return
    result = load(kind, path)
    assert_storable(result, folder)

    # Every undamaged line arrives unchanged, once.
    arrived = result.data.set_index("order_id")
    for i, order in enumerate(planted):
        if i in damages:
            continue
        row = arrived.loc[order["order_id"]]
        assert isinstance(row, pd.Series), "an undamaged order arrived more than once"
        assert (row["customer_id"], row["product_id"], row["country"]) == (
            order["customer_id"], order["product_id"], order["country"])
        assert row["ordered_at"] == pd.Timestamp(order["ordered_at"])
        assert row["quantity"] == order["quantity"] and row["unit_price"] == order["unit_price"]
    # A line with a stray byte is rejected alone, with its line number in the reason.
    rejected = result.rejected.set_index("line")
    assert rejected.index.is_unique and result.rejected["reason"].notna().all()
    for number in bad_bytes:
        assert rejected.loc[number, "reason"].startswith(f"bytes not valid utf-8 at line {number}, column")
    # Only damaged lines are rejected; a record spanning lines is made of damaged lines only.
    assert set(rejected.index) <= bad_bytes | quoted
    lines_tally = result.lines
    assert lines_tally.total == len(lines) + 1 and lines_tally.header == 1 and lines_tally.blank == 0
    assert lines_tally.accepted + lines_tally.rejected == len(lines) and lines_tally.balanced
    swallowed = lines_tally.accepted - len(result.data) + lines_tally.rejected - len(result.rejected)
    assert 0 <= swallowed <= max(0, len(quoted) - 1)
    assert len(result.data) >= len(planted) - len(damages)


@BROKEN_LINES
@given(
    planted=st.lists(st.tuples(PLAIN_TEXT, st.sampled_from([0, 1])), min_size=2, max_size=14),
    damages=st.dictionaries(st.integers(0, 13), line_damage, max_size=5),
    terminators=st.lists(st.sampled_from(TERMINATORS), min_size=14, max_size=14),
)
def test_labelled_text_lines_with_stray_bytes_cost_only_their_line(tmp_path_factory, planted, damages, terminators):
    # Quotes are text in this format: a quote-damaged line is a sentence like any other.
    sentences = [(f"planted{i} {text}", label) for i, (text, label) in enumerate(planted)]
    damages = {i: d for i, d in damages.items() if i < len(sentences)}
    lines = [f"{text}\t{label}" for text, label in sentences]
    body = b"".join(
        (damage_line(line, damages[i], "\t") if i in damages else line.encode()) + terminators[i].encode()
        for i, line in enumerate(lines)
    )
    folder = fresh_folder(tmp_path_factory)
    path = folder / "s_labelled.txt"
    path.write_bytes(body)
    bad_bytes = {i + 1 for i, (what, _, _) in damages.items() if what == "byte"}

    if too_many_undecodable(len(bad_bytes), len(lines)):
        with pytest.raises(SourceError, match="lines are not valid utf-8") as caught:
            load("labelled_text", path)
        assert caught.value.where == str(path)
        return
    result = load("labelled_text", path)
    assert_storable(result, folder)

    arrived = list(zip(result.data["text"], result.data["label"], strict=True))
    for i, sentence in enumerate(sentences):
        if i not in damages:
            assert arrived.count(sentence) == 1
    rejected = result.rejected.set_index("line")
    for number in bad_bytes:
        assert rejected.loc[number, "reason"].startswith(f"bytes not valid utf-8 at line {number}, column")
    assert result.lines.total == len(lines) and result.lines.balanced
    assert result.lines.accepted == len(result.data) and result.lines.rejected == len(result.rejected)
