"""build_anomaly_checks on real Dagster runs in a temporary instance.

The assets' metadata is driven by module-level tables keyed by partition (or run number), so
the incidents are known exactly and the check must fail on those runs and no others.
"""

from __future__ import annotations

import base64
import contextlib
import re
import struct
import warnings

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from dagster._core.instance.utils import RUNLESS_RUN_ID

from data_platform.checks import (
    EXPECTED_TAG,
    PLOT_KEY,
    STATE_KEY,
    build_anomaly_checks,
    evaluate_anomaly,
)
from data_platform.quality.alerting import Evaluation
from data_platform.quality.anomaly import AnomalyConfig, detect
from data_platform.quality.history import build_history
from data_platform.quality.verdict import MetricResult, Verdict

warnings.filterwarnings("ignore", category=dg.BetaWarning)


@contextlib.contextmanager
def ephemeral():
    # In-memory storage keeps ~80 runs fast; the SQLite file path is covered by the benchmark.
    instance = dg.DagsterInstance.ephemeral()
    try:
        yield instance
    finally:
        instance.dispose()


DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01")
DAYS = [f"2024-01-{d:02d}" for d in range(1, 31)]
INCIDENTS = {14: 5000, 24: 40}  # partition index -> row count (a spike and a collapse)
ROW_COUNT = "dagster/row_count"

# partition key (or run number) -> metadata the asset records on its next materialization
DAILY_METADATA: dict[str, dict[str, float]] = {}


def normal_metadata(i: int) -> dict[str, float]:
    rng = np.random.default_rng(i)
    return {
        ROW_COUNT: int(1000 + rng.integers(-25, 26)),
        "mean/amount": float(50 + rng.normal(0, 0.5)),
        "null_fraction/email": float(0.02 + rng.uniform(-0.002, 0.002)),
    }


@dg.asset(partitions_def=DAILY)
def orders_daily(context) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata=DAILY_METADATA[context.partition_key])


ANOMALY_CHECKS = build_anomaly_checks([orders_daily])
# Four weeks give each weekday only ~4 points: a weekly profile fitted from them is at the mercy of
# one incident, and these tests are about exclusion, not seasonality.
FLAT = AnomalyConfig(seasonality=False)
FLAT_CHECKS = build_anomaly_checks([orders_daily], config=FLAT)


def materialize_day(instance, day: str, metadata: dict[str, float], checks=ANOMALY_CHECKS):
    DAILY_METADATA[day] = metadata
    result = dg.materialize([orders_daily, *checks], instance=instance, partition_key=day)
    assert result.success
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def incident_metadata(i: int) -> dict[str, float]:
    return {**normal_metadata(i), ROW_COUNT: INCIDENTS[i]}


@pytest.fixture(scope="module")
def daily_history():
    """30 daily partitions with two incidents, each checked in its own run."""
    with ephemeral() as instance:
        evaluations = {}
        for i, day in enumerate(DAYS):
            metadata = incident_metadata(i) if i in INCIDENTS else normal_metadata(i)
            evaluations[day] = materialize_day(instance, day, metadata, FLAT_CHECKS)
        yield instance, evaluations


class Spy:
    """Wraps the real detector to see exactly what history and exclusions it was given."""

    def __init__(self):
        self.calls = []
        self.verdicts = []

    def __call__(self, history, current, config=None, **kwargs):
        self.calls.append((history.copy(), current.copy(), list(kwargs.get("excluded") or [])))
        self.verdicts.append(detect(history, current, config, **kwargs))
        return self.verdicts[-1]


def test_check_fails_on_exactly_the_incident_partitions(daily_history):
    _, evaluations = daily_history
    failed = [day for day, ev in evaluations.items() if not ev.passed]
    assert failed == [DAYS[i] for i in sorted(INCIDENTS)]
    assert evaluations[DAYS[14]].metadata["partition"].text == DAYS[14]
    state = evaluations[DAYS[14]].metadata[STATE_KEY].data
    assert [p["is_anomaly"] for p in state["points"]] == [True]
    assert evaluations[DAYS[14]].severity == dg.AssetCheckSeverity.WARN
    # Each evaluation records its own cost (the demo adds it to the compute it reports).
    assert all(0 < ev.metadata["duration_seconds"].value < 60 for ev in evaluations.values())


def test_bookkeeping_is_one_json_entry_and_the_rest_reads_as_a_verdict(daily_history):
    _, evaluations = daily_history
    for evaluation in (evaluations[DAYS[3]], evaluations[DAYS[14]], evaluations[DAYS[20]]):
        metadata = evaluation.metadata
        # The UI lists every entry and plots every number: only the verdict's own are there,
        # the bookkeeping in one entry and the chart (markdown, never plotted) in another.
        assert [k for k in metadata if k.startswith("anomaly/")] in ([STATE_KEY], [STATE_KEY, PLOT_KEY])
        assert PLOT_KEY not in metadata or isinstance(metadata[PLOT_KEY], dg.MarkdownMetadataValue)
        assert isinstance(metadata[STATE_KEY], dg.JsonMetadataValue)
        assert not any(isinstance(v, dg.TextMetadataValue) and len(v.text) > 200 for v in metadata.values())
        numbers = {k for k, v in metadata.items() if isinstance(v, dg.IntMetadataValue | dg.FloatMetadataValue)}
        assert numbers <= {"history_points", "flagged_metrics", "observed", "expected", "lower",
                           "upper", "score", "duration_seconds"}


def test_evaluations_stored_with_the_legacy_keys_still_exclude_their_anomalies():
    with ephemeral() as instance:
        for i, day in enumerate(DAYS[:9]):
            metadata = {**normal_metadata(i), ROW_COUNT: 6000} if i == 4 else normal_metadata(i)
            instance.report_runless_asset_event(
                dg.AssetMaterialization(orders_daily.key, partition=day, metadata=metadata)
            )
            record = instance.fetch_materializations(orders_daily.key, limit=1).records[0]
            # What releases before `anomaly/state` wrote (no snapshot: read from the events).
            instance.report_runless_asset_event(
                dg.AssetCheckEvaluation(
                    asset_key=orders_daily.key,
                    check_name="anomaly",
                    passed=i != 4,
                    metadata={
                        "anomaly/partition": day,
                        "anomaly/points": dg.MetadataValue.json(
                            [{"storage_id": record.storage_id, "partition": day, "is_anomaly": i == 4}]
                        ),
                    },
                )
            )
        instance.report_runless_asset_event(
            dg.AssetMaterialization(orders_daily.key, partition=DAYS[9], metadata=normal_metadata(9))
        )
        spy = Spy()
        evaluate_anomaly(
            instance,
            orders_daily.key,
            run_tags={"dagster/partition": DAYS[9]},
            partitions_def=DAILY,
            detector=spy,
        )
        history, _, excluded = spy.calls[-1]
        assert len(history) == 9
        assert excluded == [i == 4 for i in range(9)]


def test_cold_start_passes_and_says_it_is_learning(daily_history):
    _, evaluations = daily_history
    first = evaluations[DAYS[0]]
    assert first.passed
    assert first.metadata["history_points"].value == 0
    assert first.metadata["learning"].text.startswith("learning: 0 of ")
    assert "no history yet" in first.metadata["explanation"].value
    assert evaluations[DAYS[3]].metadata["learning"].text.startswith("learning: 3 of ")


def test_explanation_names_the_metric_and_the_chart_is_its_own_small_png(daily_history):
    _, evaluations = daily_history
    evaluation = evaluations[DAYS[14]]
    text = evaluation.metadata["explanation"].value
    assert ROW_COUNT in text
    assert "5,000" in text or "5000" in text
    # The chart is its own entry: neither the explanation nor the description carries base64.
    assert "base64" not in text and "base64" not in (evaluation.description or "")
    chart = evaluation.metadata[PLOT_KEY]
    assert isinstance(chart, dg.MarkdownMetadataValue)
    match = re.fullmatch(r"!\[plot\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", chart.value)
    assert match, chart.value[:300]
    png = base64.b64decode(match.group(1))
    # The alerts read it from there.
    alert_view = Evaluation(
        storage_id=1, timestamp=0.0, run_id="r", asset_path=("orders_daily",),
        check_name="anomaly", passed=False, explanation=text, plot=chart.value,
    )
    assert alert_view.plot_png == png and alert_view.reasons == text.strip()
    assert png[:4] == b"\x89PNG" and len(png) < 40_000
    width, height = struct.unpack(">II", png[16:24])  # IHDR: legible in the check panel
    assert 640 <= width <= 800 and height >= 240
    assert evaluation.metadata["metric"].text == ROW_COUNT
    assert evaluation.metadata["observed"].value == 5000.0
    assert evaluation.metadata["upper"].value < 5000.0
    assert evaluation.metadata["flagged_metrics"].value >= 1


def test_past_incidents_are_excluded_and_do_not_widen_the_band(daily_history):
    instance, _ = daily_history
    spy = Spy()
    evaluate_anomaly(
        instance,
        orders_daily.key,
        run_tags={"dagster/partition": DAYS[29]},
        partitions_def=DAILY,
        config=FLAT,
        detector=spy,
    )
    history, current, excluded = spy.calls[-1]
    assert len(history) == 29 and current.name == DAYS[29]
    flagged_rows = [str(ts.date()) for ts, ex in zip(history.index, excluded, strict=True) if ex]
    assert flagged_rows == [DAYS[i] for i in sorted(INCIDENTS)]
    # The band learnt with the incidents left out is the band of the clean days only.
    clean = history.drop(history.index[[i for i, ex in enumerate(excluded) if ex]])
    band_clean = detect(clean, current, FLAT).metrics[ROW_COUNT]
    band = spy.verdicts[-1].metrics[ROW_COUNT]
    assert band.upper == pytest.approx(band_clean.upper, rel=0.02)
    assert band.lower == pytest.approx(band_clean.lower, rel=0.02)
    # Clean days lie within 1000 ± 25: the band stays a few tens of percent wide, nowhere near
    # the incidents' 5000 and 40.
    assert band.upper < 1200 and band.lower > 800


def test_expected_event_is_neither_alerted_on_nor_learned_from(daily_history):
    instance, _ = daily_history
    spy = Spy()
    result = evaluate_anomaly(
        instance,
        orders_daily.key,
        run_tags={"dagster/partition": DAYS[24]},
        detector=spy,
        expected_events=[DAYS[24], DAYS[5]],
    )
    assert result.passed
    assert "Expected event" in result.metadata["explanation"].value
    _, _, excluded = spy.calls[-1]
    assert excluded[5] is True  # a calendar day in the history is left out too


def test_rematerializing_a_partition_replaces_its_point():
    with ephemeral() as instance:
        for i, day in enumerate(DAYS[:12]):
            metadata = {**normal_metadata(i), ROW_COUNT: 9000} if i == 8 else normal_metadata(i)
            materialize_day(instance, day, metadata)
        for _ in range(2):  # a backfill re-runs day 3 twice and fixes day 8
            materialize_day(instance, DAYS[3], normal_metadata(3))
        fixed = materialize_day(instance, DAYS[8], normal_metadata(8))
        assert fixed.passed
        spy = Spy()
        evaluate_anomaly(
            instance, orders_daily.key, run_tags={"dagster/partition": DAYS[11]}, detector=spy
        )
        history, _, excluded = spy.calls[-1]
        assert len(history) == 11 and history.index.is_unique
        # Day 8 was anomalous, then re-materialized with good data: the new point is learnt from.
        assert not any(excluded)
        assert history[ROW_COUNT].max() < 1100


def test_expected_tag_clears_a_past_alert_and_the_point_joins_the_baseline():
    with ephemeral() as instance:
        for i, day in enumerate(DAYS[:10]):
            materialize_day(instance, day, normal_metadata(i))
        new_normal = {**normal_metadata(10), ROW_COUNT: 3000}
        assert not materialize_day(instance, DAYS[10], new_normal).passed
        # Re-execute only the check for that partition, tagged as expected.
        result = dg.materialize(
            [orders_daily, *ANOMALY_CHECKS],
            instance=instance,
            selection=dg.AssetSelection.checks(*ANOMALY_CHECKS),
            tags={EXPECTED_TAG: "true", "dagster/partition": DAYS[10]},
        )
        (evaluation,) = result.get_asset_check_evaluations()
        assert evaluation.passed and EXPECTED_TAG in evaluation.metadata["explanation"].value
        spy = Spy()
        DAILY_METADATA[DAYS[11]] = normal_metadata(11)
        dg.materialize([orders_daily], instance=instance, partition_key=DAYS[11])
        evaluate_anomaly(
            instance, orders_daily.key, run_tags={"dagster/partition": DAYS[11]}, detector=spy
        )
        _, _, excluded = spy.calls[-1]
        assert excluded == [False] * 11


# --- unpartitioned asset ---------------------------------------------------------------

RUNS: list[dict[str, float]] = []


@dg.asset
def customers_snapshot() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata=RUNS[-1])


def test_unpartitioned_asset_fails_on_exactly_the_incident_runs():
    checks = build_anomaly_checks(["customers_snapshot"], metrics=[ROW_COUNT, "mean/*"])
    incidents = {12: 1, 20: 40_000}
    outcomes = []
    with ephemeral() as instance:
        for i in range(28):
            metadata = normal_metadata(i)
            if i in incidents:
                metadata[ROW_COUNT] = incidents[i]
            RUNS.append(metadata)
            result = dg.materialize([customers_snapshot, *checks], instance=instance)
            (evaluation,) = result.get_asset_check_evaluations()
            outcomes.append(evaluation.passed)
        assert [i for i, ok in enumerate(outcomes) if not ok] == sorted(incidents)
        spy = Spy()
        evaluate_anomaly(instance, "customers_snapshot", metrics=[ROW_COUNT], detector=spy)
        history, current, excluded = spy.calls[-1]
        assert list(history.columns) == [ROW_COUNT]
        assert len(history) == 27 and history.index.is_monotonic_increasing
        assert [i for i, ex in enumerate(excluded) if ex] == sorted(incidents)


# --- blocking ----------------------------------------------------------------------------


def zero_rows_detector(history, current, config=None, **kwargs) -> Verdict:
    """A stand-in detector: anomalous exactly when the row count is zero."""
    observed = float(current[ROW_COUNT])
    metric = MetricResult(ROW_COUNT, observed, 100.0, 1.0, 1e9, -9.0, observed == 0, "zero")
    return Verdict(observed == 0, {ROW_COUNT: metric}, history_points=len(history))


UPSTREAM_ROWS: list[int] = []


@dg.asset
def events_raw() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={ROW_COUNT: UPSTREAM_ROWS[-1]})


@dg.asset(deps=[events_raw])
def events_summary() -> None:
    return None


def latest_storage_id(instance, key):
    records = instance.fetch_materializations(key, limit=1).records
    return records[0].storage_id if records else None


def test_blocking_error_check_stops_the_downstream_asset():
    checks = build_anomaly_checks(
        [events_raw],
        severity=dg.AssetCheckSeverity.ERROR,
        blocking=True,
        detector=zero_rows_detector,
    )
    with ephemeral() as instance:
        UPSTREAM_ROWS.append(100)
        good = dg.materialize([events_raw, events_summary, *checks], instance=instance)
        assert good.success
        first = latest_storage_id(instance, events_summary.key)
        assert first is not None

        UPSTREAM_ROWS.append(0)
        bad = dg.materialize(
            [events_raw, events_summary, *checks], instance=instance, raise_on_error=False
        )
        assert not bad.success
        (evaluation,) = bad.get_asset_check_evaluations()
        assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
        assert latest_storage_id(instance, events_summary.key) == first


def marginal_detector(history, current, config=None, **kwargs) -> Verdict:
    """Zero rows: an anomaly past both bars; one row: an anomaly below the blocking bar."""
    verdict = zero_rows_detector(history, current, config)
    observed = float(current[ROW_COUNT])
    if observed == 1:
        metric = MetricResult(ROW_COUNT, observed, 100.0, 1.0, 1e9, -4.0, True, "few")
        verdict = Verdict(True, {ROW_COUNT: metric}, history_points=len(history),
                          below_blocking_bar=True)
    return verdict


def test_a_blocking_check_warns_without_blocking_below_the_blocking_bar():
    checks = build_anomaly_checks(
        [events_raw], severity=dg.AssetCheckSeverity.ERROR, blocking=True,
        detector=marginal_detector,
    )
    with ephemeral() as instance:
        UPSTREAM_ROWS.append(100)
        assert dg.materialize([events_raw, events_summary, *checks], instance=instance).success
        before = latest_storage_id(instance, events_summary.key)

        UPSTREAM_ROWS.append(1)
        marginal = dg.materialize([events_raw, events_summary, *checks], instance=instance)
        (evaluation,) = marginal.get_asset_check_evaluations()
        # Failed and alerted, but as WARN: the downstream asset still ran.
        assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
        assert "Below the blocking bar" in evaluation.metadata["explanation"].value
        assert latest_storage_id(instance, events_summary.key) != before

        UPSTREAM_ROWS.append(0)
        stopped = latest_storage_id(instance, events_summary.key)
        bad = dg.materialize(
            [events_raw, events_summary, *checks], instance=instance, raise_on_error=False
        )
        (evaluation,) = bad.get_asset_check_evaluations()
        assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
        assert "blocking bar" not in evaluation.metadata["explanation"].value
        assert latest_storage_id(instance, events_summary.key) == stopped


def test_check_without_any_materialization_passes():
    with ephemeral() as instance:
        result = evaluate_anomaly(instance, "never_materialized")
        assert result.passed and "No materialization" in result.description


def test_factory_accepts_keys_strings_and_definitions():
    spec = dg.AssetSpec("e", partitions_def=DAILY)
    checks = build_anomaly_checks(
        [orders_daily, dg.AssetKey(["a", "b"]), "c/d", spec], name="health"
    )
    keys = [next(iter(c.check_keys)) for c in checks]
    assert [k.asset_key.to_user_string() for k in keys] == ["orders_daily", "a/b", "c/d", "e"]
    assert {k.name for k in keys} == {"health"}
    # A definition or spec of a partitioned asset gives a partitioned check; a bare key does not.
    partitioning = [c.get_spec_for_check_key(k).partitions_def for c, k in zip(checks, keys, strict=True)]
    assert partitioning == [DAILY, None, None, DAILY]
    with pytest.raises(ValueError, match="lookback"):
        build_anomaly_checks([orders_daily], lookback=0)


def test_partitioned_check_records_its_partition_and_builds_quietly(daily_history):
    instance, evaluations = daily_history
    # The daily_history checks were built from the asset definition: partitioned checks.
    assert [ev.partition for ev in evaluations.values()] == DAYS
    check_key = next(iter(FLAT_CHECKS[0].check_keys))
    from data_platform.checks import event_store

    history = event_store.check_history_page(instance, check_key, limit=100)
    # One execution per run and partition: the evaluation completed the run's plan.
    assert len(history) == len(DAYS) and all(e.is_evaluated for e in history)
    assert [e.partition for e in reversed(history)] == DAYS
    with warnings.catch_warnings():
        warnings.simplefilter("error", dg.PreviewWarning)
        build_anomaly_checks([orders_daily])  # the preview warning is silenced where it arises


def test_a_bare_key_check_stays_unpartitioned_and_still_judges_per_partition():
    bare = build_anomaly_checks([orders_daily.key], config=FLAT)
    with ephemeral() as instance:
        for i, day in enumerate(DAYS[:16]):
            metadata = incident_metadata(i) if i in INCIDENTS else normal_metadata(i)
            evaluation = materialize_day(instance, day, metadata, bare)
            # Unpartitioned: the judged partition travels in the metadata only.
            assert evaluation.partition is None
            assert evaluation.metadata["partition"].text == day
            assert evaluation.passed == (i not in INCIDENTS)


def test_excluded_incident_does_not_move_the_weekly_expectation():
    history = build_history(
        [(DAYS[i], incident_metadata(i) if i == 14 else normal_metadata(i)) for i in range(21)]
    )
    excluded = [i == 14 for i in range(21)]
    current = pd.Series(normal_metadata(21), name=DAYS[21])
    band = detect(history, current, excluded=excluded).metrics[ROW_COUNT]
    assert band.lower < 1000 < band.upper


def test_a_run_over_several_partitions_judges_each_walking_forward():
    with ephemeral() as instance:
        for i, day in enumerate(DAYS[:10]):
            materialize_day(instance, day, normal_metadata(i), FLAT_CHECKS)
        # Events reported outside any run share one run id: they stand for one run over a range.
        for i in (10, 11, 12):
            metadata = {**normal_metadata(i), ROW_COUNT: 7000} if i == 11 else normal_metadata(i)
            instance.report_runless_asset_event(
                dg.AssetMaterialization(orders_daily.key, partition=DAYS[i], metadata=metadata)
            )
        spy = Spy()
        result = evaluate_anomaly(
            instance,
            orders_daily.key,
            run_id=RUNLESS_RUN_ID,
            partitions_def=DAILY,
            config=FLAT,
            detector=spy,
        )
        assert not result.passed
        points = result.metadata[STATE_KEY].data["points"]
        assert [p["partition"] for p in points] == DAYS[10:13]
        assert [p["is_anomaly"] for p in points] == [False, True, False]
        assert result.metadata["partition"].text == DAYS[11]
        # Day 12 learnt from day 10 (judged normal in this run) but not from day 11.
        history, _, excluded = spy.calls[-1]
        assert len(history) == 12 and excluded[-1] is True and not any(excluded[:-1])
        assert "judged 3 partitions; 1 anomalous" in result.metadata["explanation"].value


def test_history_from_snapshots_equals_history_from_materializations(daily_history):
    instance, _ = daily_history
    tags = {"dagster/partition": DAYS[27]}
    from_snapshots, from_events = Spy(), Spy()
    evaluate_anomaly(
        instance, orders_daily.key, run_tags=tags, partitions_def=DAILY, detector=from_snapshots
    )
    # Without the partitions definition every point is read from the stored materializations.
    evaluate_anomaly(instance, orders_daily.key, run_tags=tags, detector=from_events)
    (h1, c1, e1), (h2, c2, e2) = from_snapshots.calls[-1], from_events.calls[-1]
    pd.testing.assert_frame_equal(h1, h2)
    pd.testing.assert_series_equal(c1, c2)
    assert e1 == e2 and sum(e1) == len(INCIDENTS)


def test_points_never_checked_are_read_from_the_materializations():
    with ephemeral() as instance:
        for i, day in enumerate(DAYS[:8]):
            DAILY_METADATA[day] = normal_metadata(i)
            dg.materialize([orders_daily], instance=instance, partition_key=day)
        spy = Spy()
        DAILY_METADATA[DAYS[8]] = {**normal_metadata(8), ROW_COUNT: 9000}
        dg.materialize([orders_daily], instance=instance, partition_key=DAYS[8])
        result = evaluate_anomaly(
            instance,
            orders_daily.key,
            run_tags={"dagster/partition": DAYS[8]},
            partitions_def=DAILY,
            detector=spy,
        )
        history, _, excluded = spy.calls[-1]
        assert len(history) == 8 and not any(excluded)
        assert history[ROW_COUNT].tolist() == [normal_metadata(i)[ROW_COUNT] for i in range(8)]
        assert not result.passed
