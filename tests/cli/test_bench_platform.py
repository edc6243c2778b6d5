"""`data-platform bench platform`: the long-window replay's table, on a short window."""

from __future__ import annotations

from data_platform.bench.platform import JUDGED_ASSETS
from data_platform.cli import main


def test_bench_platform_prints_a_row_per_seed_calendar_and_asset(capsys):
    code = main(["bench", "platform", "--days", "9", "--seeds", "0,1", "--end-date", "2026-03-10",
                 "--no-incidents-too"])
    out = capsys.readouterr().out
    assert code == 0
    assert "9 days ending 2026-03-10, seeds 0,1, incident calendar on and off" in out
    for seed in (0, 1):
        for calendar in ("on", "off"):
            rows = [line for line in out.splitlines() if line.startswith(f"| {seed} | {calendar} | ")]
            # One row per judged asset, plus the window's totals row.
            assert len(rows) == len(JUDGED_ASSETS) + 1, (seed, calendar, rows)
    assert "#### Misses and false alerts" in out


def test_bench_platform_refuses_a_bad_end_date(capsys):
    assert main(["bench", "platform", "--end-date", "2026-13-01"]) == 2
    assert "--end-date" in capsys.readouterr().err
