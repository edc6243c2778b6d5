"""The adapters on the real datasets (skipped when they are not available)."""

from __future__ import annotations

from datetime import date

from data_platform.sources import SCHEMAS, load, partition_range


def test_online_retail_week_and_uci_sentences(real_data_dir):
    week = load(
        "online_retail",
        real_data_dir / "online_retail",
        start=date(2011, 3, 1),
        end=date(2011, 3, 8),
    )
    print(f"online_retail 2011-03-01..07: {len(week.data)} accepted, {len(week.rejected)} rejected")
    print(week.rejected["reason"].value_counts().to_dict())
    assert len(week.files) <= 7
    assert len(week.data) > 1000
    assert list(week.data.columns) == list(SCHEMAS["orders"].columns)
    assert (week.data["order_id"].str.startswith("C") == (week.data["quantity"] < 0)).mean() > 0.99
    assert week.data["customer_id"].isna().any()
    assert week.data[["order_id", "line_no"]].duplicated().sum() == 0
    sentences = load("labelled_text", real_data_dir / "uci_sentiment")
    print(f"uci_sentiment: {len(sentences.data)} accepted, {len(sentences.rejected)} rejected")
    print(sentences.rejected["reason"].value_counts().to_dict())
    assert sentences.source_rows == 3000
    assert sentences.data["label"].isin([0, 1]).all()
    assert sentences.data["text"].str.contains('"').any()  # stray quotes kept as text
    assert partition_range({"orders": f"online_retail:{real_data_dir / 'online_retail'}"}) == (
        date(2010, 12, 1),
        date(2011, 12, 9),
    )
