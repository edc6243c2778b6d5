"""The demo's summary: every injected incident is reported as caught, not judged (learning),
missed or not checked, from the check evaluations of its entity's assets on its day."""

from datetime import date

from data_platform.cli import RunLog, incident_outcomes, injected_incidents, print_summary
from data_platform.sources import synthetic


def _incident(day: str, entity: str, kind: str = "volume_drop") -> synthetic.Incident:
    return synthetic.Incident(date.fromisoformat(day), entity, kind, "about 70% of orders missing")


EVALUATIONS = [
    # day 1: orders caught by a failing anomaly check
    ("2026-01-01", "orders_raw", "anomaly", False, ""),
    ("2026-01-01", "orders_clean", "anomaly", True, ""),
    # day 2: orders' anomaly checks still learning, rules pass
    ("2026-01-02", "orders_raw", "anomaly", True, "learning: 3 of 7 points"),
    ("2026-01-02", "orders_clean", "anomaly", True, "learning: 3 of 7 points"),
    ("2026-01-02", "orders_clean", "keys_valid", True, ""),
    # another entity failing on day 2 does not make the orders incident caught
    ("2026-01-02", "ratings_clean", "anomaly", False, ""),
    # day 3: judged, passed
    ("2026-01-03", "orders_raw", "anomaly", True, ""),
    ("2026-01-03", "orders_clean", "anomaly", True, "learning: 3 of 7 points"),
]


def test_each_incident_gets_the_outcome_its_checks_show():
    incidents = [
        _incident("2026-01-01", "orders"),
        _incident("2026-01-02", "orders"),
        _incident("2026-01-03", "orders"),
        _incident("2026-01-04", "orders"),
        _incident("2026-01-02", "reviews", "schema_drift"),
    ]
    outcomes = incident_outcomes(incidents, EVALUATIONS)
    assert [o for _, o, _ in outcomes] == ["caught", "learning", "missed", "unchecked", "unchecked"]
    assert outcomes[0][2] == "caught by orders_raw anomaly"
    # A rule may catch an incident while the anomaly checks still learn: the line says both.
    [(_, outcome, text)] = incident_outcomes(
        [_incident("2026-01-02", "orders")],
        [*EVALUATIONS, ("2026-01-02", "orders_clean", "keys_valid", False, "")],
    )
    assert outcome == "caught"
    assert text == "caught by orders_clean keys_valid (the anomaly checks were still learning: 3 of 7 points)"
    assert outcomes[1][2].startswith("not judged (learning: 3 of 7 points")


def test_the_summary_lists_incidents_in_the_learning_window(capsys):
    log = RunLog()
    log.evaluations = EVALUATIONS[:6]
    print_summary(log, 1.0, [_incident("2026-01-01", "orders"), _incident("2026-01-02", "orders")])
    out = capsys.readouterr().out
    assert "Injected incidents (synthetic calendar, DATA_PLATFORM_SYNTHETIC_INCIDENTS): 2: " \
           "1 caught, 1 not judged (learning)" in out
    assert "2026-01-02  orders      volume_drop (about 70% of orders missing): not judged (learning: 3 of 7" in out


def test_the_demo_knows_the_calendar_and_honours_its_settings(monkeypatch):
    days = [f"2026-01-{d:02d}" for d in range(1, 29)]
    monkeypatch.delenv("DATA_PLATFORM_SYNTHETIC_INCIDENTS", raising=False)
    monkeypatch.delenv("DATA_PLATFORM_ORDERS", raising=False)
    monkeypatch.delenv("DATA_PLATFORM_SEED", raising=False)
    expected = synthetic.incidents(date(2026, 1, 1), date(2026, 1, 29))
    assert expected and injected_incidents(days) == expected
    monkeypatch.setenv("DATA_PLATFORM_ORDERS", "orders_csv:/somewhere/orders.csv")
    assert injected_incidents(days) == [i for i in expected if i.entity != "orders"]
    monkeypatch.setenv("DATA_PLATFORM_SYNTHETIC_INCIDENTS", "0")
    assert injected_incidents(days) == []
