"""TableStore on a real SQLite file and a real PostgreSQL database (via the warehouse_url fixture)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from data_platform import tablestore
from data_platform.sources.db import make_engine
from data_platform.tablestore import PARTITION_COLUMN, ColumnSpec, TableStore, WarehouseError


@pytest.fixture
def store(warehouse_url):
    store = TableStore(warehouse_url, chunk_rows=7)
    yield store
    store.dispose()


def awkward_frame() -> pd.DataFrame:
    stamps = pd.to_datetime(
        ["2024-01-01 00:00:00.123456", None, "1970-01-01", "2262-01-01 23:59:59"], format="ISO8601"
    )
    return pd.DataFrame(
        {
            "text": pd.Series(["\x01plain", "", None, 'q"uo,te\nline\r\\N \\ é 😀'], dtype="str"),
            "nullable_text": pd.Series(["\x01N", "", None, "\t"], dtype="string"),
            "object_text": pd.Series(["a", "", None, "\\N"], dtype=object),
            "ints": pd.Series([1, -2, 0, 2**62], dtype="int64"),
            "nullable_ints": pd.Series([1, None, 3, -(2**62)], dtype="Int64"),
            "floats": [0.1, np.nan, np.inf, -1e-300],
            "nullable_floats": pd.Series([0.1, None, 2.5, 1 / 3], dtype="Float64"),
            "flags": [True, False, True, False],
            "nullable_flags": pd.Series([True, None, False, True], dtype="boolean"),
            "stamps": stamps.astype("datetime64[ns]"),
            "zoned": stamps.tz_localize("Europe/Paris"),
        }
    )


def test_dtypes_values_and_missingness_round_trip_exactly(store):
    frame = awkward_frame()
    assert store.write("awkward", frame) == 4
    back = store.read("awkward")
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    assert back.loc[1, "text"] == "" and pd.isna(back.loc[2, "text"])
    assert back.loc[3, "object_text"] == "\\N" and back.loc[2, "object_text"] is None
    assert back["nullable_ints"].isna().tolist() == [False, True, False, False]


def test_single_column_rows_that_are_all_null_are_kept(store):
    # In a CSV stream such a row is an empty line, which a CSV reader would skip by default.
    for name, values in {"t": ["a", None, "", None], "i": [None, 1, None, None]}.items():
        frame = pd.DataFrame({name: pd.Series(values, dtype="str" if name == "t" else "Int64")})
        store.write(f"single_{name}", frame)
        pd.testing.assert_frame_equal(store.read(f"single_{name}"), frame)


def test_empty_frame_round_trips_columns_and_dtypes(store):
    empty = awkward_frame().iloc[:0]
    store.write("empty", empty)
    store.write("empty_parts", empty, partition="2024-01-01")
    pd.testing.assert_frame_equal(store.read("empty"), empty)
    pd.testing.assert_frame_equal(store.read("empty_parts"), empty)
    assert store.row_count("empty") == 0


def test_columns_subset_and_partition_column_on_request(store):
    store.write("events", pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), partition="p1")
    subset = store.read("events", columns=["b", PARTITION_COLUMN])
    assert subset.columns.tolist() == ["b", PARTITION_COLUMN]
    assert subset[PARTITION_COLUMN].tolist() == ["p1", "p1"]
    assert PARTITION_COLUMN not in store.read("events").columns
    with pytest.raises(WarehouseError, match="'events' has no column"):
        store.read("events", columns=["nope"])


def test_partition_rewrite_replaces_and_never_duplicates(store):
    day1 = pd.DataFrame({"id": range(20), "v": 1.0})
    store.write("orders", day1, partition="2024-01-01")
    store.write("orders", pd.DataFrame({"id": range(5), "v": 2.0}), partition="2024-01-02")
    for _ in range(3):
        store.write("orders", day1, partition="2024-01-01")
    assert store.row_count("orders", "2024-01-01") == 20
    assert store.row_count("orders") == 25
    assert store.partitions("orders") == ["2024-01-01", "2024-01-02"]
    smaller = pd.DataFrame({"id": [7], "v": [9.0]})
    store.write("orders", smaller, partition="2024-01-01")
    pd.testing.assert_frame_equal(store.read("orders", partitions=["2024-01-01"]), smaller)


def test_partitions_are_isolated(store):
    for day, n in [("2024-01-01", 3), ("2024-01-02", 4), ("2024-01-03", 5)]:
        store.write("daily", pd.DataFrame({"day": [day] * n, "n": range(n)}), partition=day)
    picked = store.read("daily", partitions=["2024-01-01", "2024-01-03"])
    assert sorted(picked["day"].unique()) == ["2024-01-01", "2024-01-03"]
    assert len(picked) == 8
    assert store.read("daily", partitions=["1999-01-01"]).empty
    assert len(store.read("daily")) == 12


def test_unpartitioned_write_replaces_whole_table_and_schema(store):
    store.write("summary", pd.DataFrame({"a": [1, 2, 3]}))
    replacement = pd.DataFrame({"b": ["x"], "c": [1.5]})
    store.write("summary", replacement)
    pd.testing.assert_frame_equal(store.read("summary"), replacement)


def _fail_on_second_chunk(monkeypatch):
    """Make the bulk loader raise after the DELETE and the first chunk have run."""
    calls = {"n": 0}

    def wrap(original):
        def failing(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 2:
                raise RuntimeError("injected failure in the second chunk")
            return original(*args, **kwargs)

        return failing

    monkeypatch.setattr(tablestore.copy, "encode_csv", wrap(tablestore.copy.encode_csv))
    monkeypatch.setattr(tablestore.store, "python_rows", wrap(tablestore.store.python_rows))
    return calls


def test_failure_mid_partition_write_keeps_previous_partition(store, monkeypatch):
    before = pd.DataFrame({"id": range(10), "label": "old"})
    store.write("facts", before, partition="p")
    store.write("facts", before, partition="other")
    calls = _fail_on_second_chunk(monkeypatch)
    with pytest.raises(RuntimeError, match="injected"):
        store.write("facts", pd.DataFrame({"id": range(30), "label": "new", "extra": 1}), partition="p")
    assert calls["n"] == 2
    pd.testing.assert_frame_equal(store.read("facts", partitions=["p"]), before)
    assert store.read("facts").columns.tolist() == ["id", "label"]  # the added column rolled back too
    assert store.row_count("facts") == 20


def test_failure_mid_table_write_keeps_previous_table(store, monkeypatch):
    before = pd.DataFrame({"id": range(10)})
    store.write("snapshot", before)
    _fail_on_second_chunk(monkeypatch)
    with pytest.raises(RuntimeError, match="injected"):
        store.write("snapshot", pd.DataFrame({"other": range(30)}))
    pd.testing.assert_frame_equal(store.read("snapshot"), before)


def test_schema_drift_adds_columns_and_nulls_missing_ones(store):
    store.write("drift", pd.DataFrame({"id": [1, 2], "old": [10, 20]}), partition="a")
    store.write("drift", pd.DataFrame({"id": [3], "new": ["n"]}), partition="b")
    both = store.read("drift").sort_values("id", ignore_index=True)
    assert both.columns.tolist() == ["id", "old", "new"]
    # int64 cannot hold the NULLs of partition b, so it comes back as nullable Int64.
    assert str(both["old"].dtype) == "Int64"
    assert both["old"].isna().tolist() == [False, False, True]
    assert both["new"].isna().tolist() == [True, True, False]
    # Partition a alone holds no NULL there, so it reads back exactly as written.
    assert str(store.read("drift", partitions=["a"])["old"].dtype) == "int64"
    with pytest.raises(WarehouseError, match="column 'old' is stored as"):
        store.write("drift", pd.DataFrame({"id": [4], "old": ["text"]}), partition="c")


HOSTILE_TABLE_NAMES = ['x"; DROP TABLE y; --', "", "1abc", "a" * 64, "a-b", "a b", "ä", None, "_dp_columns", "_dp_stage_x"]


def test_hostile_table_names_are_rejected(store):
    store.write("y", pd.DataFrame({"a": [1]}))
    for name in HOSTILE_TABLE_NAMES:
        with pytest.raises(WarehouseError, match="invalid table name"):
            store.write(name, pd.DataFrame({"a": [1]}))
        with pytest.raises(WarehouseError, match="invalid table name"):
            store.read(name)
    assert store.read("y")["a"].tolist() == [1]


def test_hostile_column_names_are_quoted_or_rejected(store):
    store.write("victim", pd.DataFrame({"a": [1]}))
    hostile = 'x"; DROP TABLE victim; --'
    frame = pd.DataFrame({hostile: ["kept"], "select": [1], "é" * 31: [2.0], "small": pd.Series([3], dtype="uint8")})
    store.write("quoted", frame, partition="p")
    pd.testing.assert_frame_equal(store.read("quoted"), frame)
    assert store.exists("victim")
    for bad in ["", "a\x00b", "c" * 64, "é" * 32, 5]:
        with pytest.raises(WarehouseError, match="invalid column name"):
            store.write("quoted", pd.DataFrame({bad: [1]}))
    with pytest.raises(WarehouseError, match="reserved"):
        store.write("quoted", pd.DataFrame({PARTITION_COLUMN: [1]}))


def test_unstorable_input_gets_a_clear_error(store):
    with pytest.raises(WarehouseError, match="'mixed'.*column 'v'"):
        store.write("mixed", pd.DataFrame({"v": ["a", 1]}))
    with pytest.raises(WarehouseError, match="sub-microsecond"):
        store.write("nanos", pd.DataFrame({"t": pd.to_datetime(["2024-01-01 00:00:00.000000001"])}))
    with pytest.raises(WarehouseError, match="64-bit"):
        store.write("big", pd.DataFrame({"u": np.array([2**64 - 1], dtype="uint64")}))
    with pytest.raises(WarehouseError, match="NUL"):
        store.write("nul", pd.DataFrame({"t": ["a\x00b"]}))
    with pytest.raises(WarehouseError, match="does not exist"):
        store.read("never_written")
    store.write("flat", pd.DataFrame({"a": [1]}))
    with pytest.raises(WarehouseError, match="stored unpartitioned"):
        store.write("flat", pd.DataFrame({"a": [1]}), partition="p")
    store.write("parted", pd.DataFrame({"a": [1]}), partition="p")
    with pytest.raises(WarehouseError, match="stored partitioned"):
        store.write("parted", pd.DataFrame({"a": [1]}))
    assert store.read("flat")["a"].tolist() == [1]


def test_drop_and_exists(store):
    store.write("temp", pd.DataFrame({"a": [1]}), partition="p")
    assert store.exists("temp")
    store.drop("temp")
    assert not store.exists("temp")
    store.drop("temp")  # dropping what is not there is not an error
    store.write("temp", pd.DataFrame({"b": ["fresh"]}))
    assert store.read("temp")["b"].tolist() == ["fresh"]


def test_tables_not_written_by_the_store_are_not_overwritten(warehouse_url, store):
    engine = make_engine(warehouse_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE foreign_table (a integer)"))
        conn.execute(sa.text("INSERT INTO foreign_table VALUES (1)"))
    with pytest.raises(WarehouseError, match="not written by the warehouse"):
        store.write("foreign_table", pd.DataFrame({"a": [2]}))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT a FROM foreign_table")).scalar_one() == 1
    engine.dispose()


def test_connection_failures_are_retried_then_reported_without_password(monkeypatch):
    monkeypatch.setattr(tablestore.store, "CONNECT_FIRST_DELAY_S", 0.01)
    store = TableStore("postgresql://reader:s3cret@127.0.0.1:1/nowhere")
    with pytest.raises(WarehouseError) as caught:
        store.exists("anything")
    message = str(caught.value)
    assert f"after {tablestore.store.CONNECT_ATTEMPTS} attempts" in message
    assert "s3cret" not in message and "***" in message


WRITER = textwrap.dedent(
    """
    import sys
    import pandas as pd
    from data_platform.tablestore import TableStore

    url, label, rounds, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    store = TableStore(url, chunk_rows=500)
    for _ in range(rounds):
        for partition in partitions:
            store.write("shared", pd.DataFrame({"id": range(2000), "label": label}), partition=partition)
    store.dispose()
    """
)


def _run_writers(url: str, jobs: list[tuple[str, list[str]]], rounds: int, watch=None) -> None:
    processes = [
        subprocess.Popen([sys.executable, "-c", WRITER, url, label, str(rounds), *partitions], stderr=subprocess.PIPE)
        for label, partitions in jobs
    ]
    while watch is not None and any(p.poll() is None for p in processes):
        watch()
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err.decode()


def test_concurrent_writers_in_two_processes(warehouse_url):
    """Different partitions both land; one partition ends as one complete copy (last writer wins)."""
    store = TableStore(warehouse_url)
    observed = []

    def read_while_writing():
        # Both writers start on an empty database, so they also race to create the tables.
        if store.exists("shared") and "p" in store.partitions("shared"):
            current = store.read("shared", partitions=["p"])
            observed.append((len(current), frozenset(current["label"])))
        time.sleep(0.05)

    jobs = [("one", ["p", "own_one"]), ("two", ["own_two", "p"])]
    _run_writers(warehouse_url, jobs, rounds=2, watch=read_while_writing)
    assert store.partitions("shared") == ["own_one", "own_two", "p"]
    for label in ["one", "two"]:
        assert store.row_count("shared", f"own_{label}") == 2000
        assert set(store.read("shared", partitions=[f"own_{label}"])["label"]) == {label}
    final = store.read("shared", partitions=["p"])
    assert len(final) == 2000
    assert final["label"].nunique() == 1 and final["label"].iloc[0] in {"one", "two"}
    assert sorted(final["id"]) == list(range(2000))
    # Readers never see half a partition nor a mix of two writers.
    assert observed and all(n == 2000 and len(labels) == 1 for n, labels in observed)
    store.dispose()


def test_postgres_schema_keeps_tables_apart(postgres_url):
    analytics = TableStore(postgres_url, schema="analytics")
    default = TableStore(postgres_url)
    analytics.write("orders", pd.DataFrame({"a": [1, 2]}), partition="p")
    default.write("orders", pd.DataFrame({"b": ["x"]}))
    assert analytics.read("orders")["a"].tolist() == [1, 2]
    assert default.read("orders")["b"].tolist() == ["x"]
    with pytest.raises(WarehouseError, match="invalid schema name"):
        TableStore(postgres_url, schema='s"; --')
    analytics.dispose()
    default.dispose()


def test_sqlite_rejects_schemas(sqlite_url):
    with pytest.raises(WarehouseError, match="PostgreSQL only"):
        TableStore(sqlite_url, schema="analytics")


def _copy_threads() -> list:
    import threading

    return [t for t in threading.enumerate() if t.name == "dp-copy-out"]


def test_postgres_read_reports_a_failing_copy_and_leaves_no_thread(postgres_url):
    import psycopg2

    store = TableStore(postgres_url)
    try:
        store.write("facts", pd.DataFrame({"id": range(10), "label": "x"}))
        engine = make_engine(postgres_url)
        with engine.begin() as conn:  # the table changes behind the manifest's back
            conn.exec_driver_sql('ALTER TABLE "facts" DROP COLUMN "label"')
        engine.dispose()
        with pytest.raises(psycopg2.Error, match="label"):
            store.read("facts")
        assert _copy_threads() == []
        assert store.read("facts", columns=["id"])["id"].tolist() == list(range(10))
    finally:
        store.dispose()


def test_postgres_parse_error_mid_stream_stops_the_copy_without_hanging(postgres_url):
    # Far more output than a pipe holds, unparseable as the declared type from the first row:
    # the parser fails while the COPY is still producing, and the read must end, not wait.
    spec = ColumnSpec("n", "int", "int64")
    engine = make_engine(postgres_url)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        statement = "COPY (SELECT 'not a number' FROM generate_series(1, 2000000)) TO STDOUT WITH (FORMAT csv)"
        with pytest.raises(Exception, match="int64"):
            tablestore.copy.copy_to_frame(cursor, statement, [spec], "utf_8")
        assert _copy_threads() == []
    finally:
        raw.invalidate()
        engine.dispose()


def test_postgres_non_utf8_client_encoding_round_trips_text(postgres_url):
    url = sa.make_url(postgres_url).update_query_dict({"client_encoding": "latin1"})
    store = TableStore(url.render_as_string(hide_password=False))
    try:
        # One column whose NULL row is an empty line in the CSV stream.
        frame = pd.DataFrame({"text": pd.Series(["café", "", None, 'naïve "q", ß', None], dtype="str")})
        store.write("latin", frame, partition="é")
        pd.testing.assert_frame_equal(store.read("latin", partitions=["é"]), frame)
        assert store.partitions("latin") == ["é"]
    finally:
        store.dispose()
