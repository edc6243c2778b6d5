"""Which daily partitions never arrived: the pure gap function."""

from __future__ import annotations

import pytest

from data_platform.quality.completeness import missing_days


def test_the_first_partition_has_nothing_behind_it():
    gaps = missing_days(["2026-11-01"], "2026-11-01")
    assert (gaps.first, gaps.missing) == ("2026-11-01", ())
    assert gaps.describe() == "Every day from 2026-11-01 to 2026-11-01 is stored."
    # Nothing stored yet, or only later days: no first day to count from.
    assert missing_days([], "2026-11-01").first is None
    assert missing_days(["2026-11-05"], "2026-11-01").missing == ()


def test_consecutive_days_have_no_gap_in_any_order():
    stored = ["2026-11-03", "2026-11-01", "2026-11-02", "2026-11-04"]
    assert missing_days(stored, "2026-11-04").missing == ()
    assert missing_days(set(stored), "2026-11-04").first == "2026-11-01"


def test_several_gaps_are_listed_oldest_first_and_counted():
    stored = ["2026-10-30", "2026-11-02", "2026-11-03", "2026-11-06"]
    gaps = missing_days(stored, "2026-11-06")
    assert gaps.missing == ("2026-10-31", "2026-11-01", "2026-11-04", "2026-11-05")
    assert gaps.describe() == (
        "4 days between 2026-10-30 and 2026-11-06 never stored: "
        "2026-10-31, 2026-11-01, 2026-11-04, 2026-11-05"
    )
    # Many missing days: the first few are named, the rest counted.
    long = missing_days(["2026-01-01", "2026-01-20"], "2026-01-20")
    assert len(long.missing) == 18
    assert long.describe(limit=3).endswith("2026-01-02, 2026-01-03, 2026-01-04 and 15 more")


def test_the_judged_day_itself_counts_and_later_days_do_not():
    # A check run for a day that was never stored names that day too.
    assert missing_days(["2026-11-01"], "2026-11-03").missing == ("2026-11-02", "2026-11-03")
    # Re-judging an old day ignores what came after it.
    stored = ["2026-11-01", "2026-11-02", "2026-11-05"]
    assert missing_days(stored, "2026-11-02").missing == ()


def test_a_backfilled_day_closes_its_gap():
    stored = ["2026-11-01", "2026-11-02", "2026-11-04", "2026-11-06"]
    assert missing_days(stored, "2026-11-06").missing == ("2026-11-03", "2026-11-05")
    stored.append("2026-11-03")
    assert missing_days(stored, "2026-11-03").missing == ()
    assert missing_days(stored, "2026-11-06").missing == ("2026-11-05",)
    stored.append("2026-11-05")
    assert missing_days(stored, "2026-11-06").missing == ()


def test_a_key_that_is_not_a_day_is_named():
    with pytest.raises(ValueError, match="'2026-W45' is not a day"):
        missing_days(["2026-W45"], "2026-11-06")
