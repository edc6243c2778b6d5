"""The platform's clock: the wall clock, shifted by DATA_PLATFORM_CLOCK_OFFSET_SECONDS, which the
demo sets when it replays a past window so that the feature store and the models read the
window's end as "now" (freshness, online snapshots, training cutoffs)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from data_platform import cli
from data_platform.features.offline import CLOCK_OFFSET_ENV, now_utc


def wall() -> pd.Timestamp:
    return pd.Timestamp(datetime.now(UTC)).tz_localize(None)


def test_the_clock_is_the_wall_clock_unless_shifted(monkeypatch):
    monkeypatch.setenv(CLOCK_OFFSET_ENV, "")  # unset, and restored after the test
    assert abs((now_utc() - wall()).total_seconds()) < 5
    monkeypatch.setenv(CLOCK_OFFSET_ENV, "-86400")
    assert abs((now_utc() - wall()).total_seconds() + 86400) < 5


@pytest.mark.parametrize("value", ["yesterday", "nan", "inf"])
def test_a_bad_offset_names_the_setting(monkeypatch, value):
    monkeypatch.setenv(CLOCK_OFFSET_ENV, value)
    with pytest.raises(ValueError, match=CLOCK_OFFSET_ENV):
        now_utc()


def test_a_replay_of_a_past_window_reads_the_morning_after_its_last_day(monkeypatch):
    monkeypatch.setenv(CLOCK_OFFSET_ENV, "")  # unset, and restored after the test
    last = date.today() - timedelta(days=40)
    shown = cli._replay_clock(last)
    morning = pd.Timestamp(last + timedelta(days=1)) + pd.Timedelta(hours=cli.REPLAY_CLOCK_HOUR)
    assert shown == morning.strftime("%Y-%m-%d %H:%M")
    assert abs((now_utc() - morning).total_seconds()) < 5


def test_the_latest_window_and_a_chosen_offset_keep_their_clock(monkeypatch):
    monkeypatch.setenv(CLOCK_OFFSET_ENV, "")  # unset, and restored after the test
    assert cli._replay_clock(cli.last_daily_partition()) is None
    assert abs((now_utc() - wall()).total_seconds()) < 5
    monkeypatch.setenv(CLOCK_OFFSET_ENV, "-3600")
    assert cli._replay_clock(date.today() - timedelta(days=40)) is None
    assert abs((now_utc() - wall()).total_seconds() + 3600) < 5


def test_freshness_and_the_latest_values_are_judged_on_the_shifted_clock(offline, monkeypatch):
    from data_platform.features import Feature, FeatureView

    view = FeatureView(name="spend", entity="customer_id", features=(Feature("amount"),),
                       ttl=timedelta(days=2), owner="team:ml")
    event = wall().floor("s") - pd.Timedelta(days=40)
    offline.write(view, pd.DataFrame({"customer_id": ["c1"], "event_timestamp": [event],
                                      "created_timestamp": [event], "amount": [5.0]}))
    monkeypatch.setenv(CLOCK_OFFSET_ENV, "")
    assert not offline.freshness(view)["fresh"]  # 40 days old today
    assert offline.latest(view).empty  # past its TTL: nothing to serve
    # A replay whose clock reads one day after the event: fresh, and its value is the latest.
    monkeypatch.setenv(CLOCK_OFFSET_ENV, str(-39 * 86400))
    state = offline.freshness(view)
    assert state["fresh"] and 0.9 * 86400 < state["age_seconds"] < 1.1 * 86400
    assert offline.latest(view)["amount"].tolist() == [5.0]
