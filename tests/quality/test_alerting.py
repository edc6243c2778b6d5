"""Alert grouping, throttling and rendering as plain functions."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

from data_platform.quality.alerting import (
    NEW,
    RECOVERED,
    REMINDER,
    CheckState,
    Evaluation,
    check_page_url,
    group_evaluations,
    plan_alerts,
    render_email,
    render_payload,
    render_slack,
    render_text,
)

HOUR = 3600.0
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
EXPLANATION = (
    "**Anomaly** in partition `2024-03-02`: `dagster/row_count` outside the expected range.\n\n"
    "- row count fell to a third of its usual level\n\n"
    f"![plot](data:image/png;base64,{base64.b64encode(PNG).decode()})"
)


def evaluation(
    sid: int,
    run: str,
    check: str = "anomaly",
    passed: bool = False,
    asset: str = "orders_clean",
    at: float = 0.0,
    **extra,
) -> Evaluation:
    return Evaluation(
        storage_id=sid,
        timestamp=at,
        run_id=run,
        asset_path=(asset,),
        check_name=check,
        passed=passed,
        **extra,
    )


def kinds(alerts) -> list[tuple[str, str, list[tuple[str, str]]]]:
    return [
        (a.asset, a.run_id, [(i.evaluation.check_name, i.kind) for i in a.items]) for a in alerts
    ]


def test_failures_of_one_asset_in_one_run_make_one_alert_in_storage_order():
    evaluations = [
        evaluation(5, "r1", "rules", asset="customers_clean"),
        evaluation(3, "r1", "anomaly"),
        evaluation(7, "r1", "rules"),
        evaluation(9, "r2", "anomaly", asset="ratings_clean"),
    ]
    groups = group_evaluations(evaluations)
    assert [(g.asset_path, g.run_id) for g in groups] == [
        (("orders_clean",), "r1"),
        (("customers_clean",), "r1"),
        (("ratings_clean",), "r2"),
    ]
    alerts, _ = plan_alerts(evaluations, {})
    assert kinds(alerts) == [
        ("orders_clean", "r1", [("anomaly", NEW), ("rules", NEW)]),
        ("customers_clean", "r1", [("rules", NEW)]),
        ("ratings_clean", "r2", [("anomaly", NEW)]),
    ]


def test_passing_checks_say_nothing_and_a_repeat_failure_is_throttled():
    alerts, state = plan_alerts([evaluation(1, "r1", passed=True)], {})
    assert alerts == [] and state["orders_clean:anomaly"].failing is False
    alerts, state = plan_alerts([evaluation(2, "r2", at=0.0)], state)
    assert kinds(alerts) == [("orders_clean", "r2", [("anomaly", NEW)])]
    alerts, state = plan_alerts([evaluation(3, "r3", at=HOUR)], state)
    assert alerts == []
    assert state["orders_clean:anomaly"].failing_since == 0.0
    assert state["orders_clean:anomaly"].storage_id == 3


def test_reminder_only_after_the_interval_counted_from_the_last_alert():
    interval = timedelta(hours=24)
    runs = [
        evaluation(i, f"r{i}", at=h * HOUR) for i, h in enumerate([0, 12, 24, 30, 47, 48], start=1)
    ]
    alerts, state = plan_alerts(runs, {}, interval)
    assert [(a.run_id, a.kind) for a in alerts] == [("r1", NEW), ("r3", REMINDER), ("r6", REMINDER)]
    assert alerts[1].items[0].failing_since == 0.0  # a reminder says since when it fails
    assert state["orders_clean:anomaly"].alerted_at == 48 * HOUR


def test_recovery_is_announced_once_and_a_new_failure_starts_over():
    runs = [
        evaluation(1, "r1", at=0.0),
        evaluation(2, "r2", passed=True, at=HOUR),
        evaluation(3, "r3", passed=True, at=2 * HOUR),
        evaluation(4, "r4", at=3 * HOUR),
    ]
    alerts, state = plan_alerts(runs, {})
    assert [(a.run_id, a.kind, a.severity) for a in alerts] == [
        ("r1", NEW, "WARN"),
        ("r2", RECOVERED, "INFO"),
        ("r4", NEW, "WARN"),
    ]
    assert alerts[1].items[0].failing_since == 0.0
    assert state["orders_clean:anomaly"].failing_since == 3 * HOUR


def test_a_mixed_alert_is_new_and_takes_the_worst_severity():
    state = {"orders_clean:rules": CheckState(failing=True, failing_since=0.0, alerted_at=0.0)}
    alerts, _ = plan_alerts(
        [
            evaluation(10, "r9", "rules", passed=True, severity="ERROR"),
            evaluation(11, "r9", "anomaly", severity="WARN"),
            evaluation(12, "r9", "freshness", severity="ERROR"),
        ],
        state,
    )
    [alert] = alerts
    assert [(i.evaluation.check_name, i.kind) for i in alert.items] == [
        ("rules", RECOVERED),
        ("anomaly", NEW),
        ("freshness", NEW),
    ]
    assert (alert.kind, alert.severity) == (NEW, "ERROR")


def test_evaluations_already_applied_are_skipped_so_rereading_is_harmless():
    evaluations = [evaluation(1, "r1"), evaluation(2, "r2", passed=True)]
    alerts, state = plan_alerts(evaluations, {})
    assert len(alerts) == 2
    again, state_again = plan_alerts(evaluations, state)
    assert again == []
    assert state_again == state


def test_state_round_trips_through_json():
    state = CheckState(failing=True, failing_since=1.5, alerted_at=2.5, storage_id=42)
    text = json.dumps(state.to_json())
    assert CheckState.from_json(json.loads(text)) == state
    assert CheckState.from_json({}) == CheckState()


def test_the_plot_comes_from_its_own_entry_and_the_reasons_from_the_explanation():
    text, image = EXPLANATION.split("\n\n![plot]")
    e = evaluation(1, "r1", explanation=text, plot="![plot]" + image, description="short")
    assert e.plot_png == PNG
    assert e.reasons == text.strip()
    # The entry wins over an image an older release left in the explanation.
    other = PNG[:-1] + b"\x00"
    both = evaluation(
        1, "r1", explanation=EXPLANATION,
        plot=f"![plot](data:image/png;base64,{base64.b64encode(other).decode()})",
    )
    assert both.plot_png == other
    assert evaluation(1, "r1", explanation=text).plot_png is None


def test_results_stored_with_the_plot_in_the_explanation_still_yield_it():
    e = evaluation(1, "r1", explanation=EXPLANATION, description="short")
    assert e.plot_png == PNG
    assert "data:image" not in e.reasons and "row count fell" in e.reasons
    assert evaluation(1, "r1", description="3 ids duplicated").reasons == "3 ids duplicated"
    damaged = evaluation(1, "r1", explanation="![plot](data:image/png;base64,@@@)")
    assert damaged.plot_png is None
    assert evaluation(1, "r1", plot="![plot](data:image/png;base64,@@@)").plot_png is None


def _alert():
    evaluations = [
        evaluation(
            1,
            "run-1",
            severity="ERROR",
            partition="2024-03-02",
            metric="dagster/row_count",
            observed=120.0,
            expected=400.0,
            lower=350.0,
            upper=450.0,
            score=-9.5,
            explanation=EXPLANATION,
        ),
        evaluation(2, "run-1", "rules", description="3 order ids are <duplicated>"),
    ]
    [alert], _ = plan_alerts(evaluations, {})
    return alert


def test_check_page_url_quotes_each_part_of_the_asset_path():
    assert (
        check_page_url("http://ui:3000/", ("warehouse", "orders clean"))
        == "http://ui:3000/assets/warehouse/orders%20clean?view=checks"
    )


def test_text_names_everything_the_on_call_needs():
    text = render_text(_alert(), "http://ui:3000")
    assert text.splitlines()[0] == "ERROR orders_clean [2024-03-02]: anomaly, rules failed"
    for needle in (
        "run: run-1",
        "partition: 2024-03-02",
        "severity: ERROR",
        "dagster/row_count: observed 120, expected 400 [350, 450], score -9.5",
        "row count fell",
        "3 order ids are <duplicated>",
        "http://ui:3000/assets/orders_clean?view=checks",
    ):
        assert needle in text
    assert "data:image" not in text


def test_webhook_payload_is_plain_json_with_numbers():
    payload = render_payload(_alert(), "http://ui:3000")
    assert json.loads(json.dumps(payload)) == payload
    anomaly, rules = payload["checks"]
    assert (anomaly["observed"], anomaly["lower"], anomaly["upper"]) == (120.0, 350.0, 450.0)
    assert rules["observed"] is None and rules["status"] == "new"
    assert payload["kind"] == "new" and payload["partition"] == "2024-03-02"


def test_slack_message_links_the_plot_and_escapes_text():
    message = render_slack(_alert(), "http://ui:3000")
    assert message["text"].startswith("ERROR orders_clean [2024-03-02]")
    blocks = json.dumps(message["blocks"])
    assert "<http://ui:3000/assets/orders_clean?view=checks|History plot" in blocks
    assert "&lt;duplicated&gt;" in blocks and "data:image" not in blocks
    assert message["blocks"][0]["type"] == "header"


def test_email_has_text_html_and_the_plot_inline():
    message = render_email(_alert(), "http://ui:3000", sender="a@x.org", recipients=["b@x.org"])
    assert (
        message["Subject"]
        == "[data_platform] ERROR orders_clean [2024-03-02]: anomaly, rules failed"
    )
    html_part = message.get_body(preferencelist=("html",))
    [image] = [p for p in message.walk() if p.get_content_type() == "image/png"]
    assert image.get_payload(decode=True) == PNG
    assert f"cid:{image['Content-ID'].strip('<>')}" in html_part.get_content()
    assert "&lt;duplicated&gt;" in html_part.get_content()
    assert "observed 120" in message.get_body(preferencelist=("plain",)).get_content()


def test_recovery_message_is_short_and_informational():
    state = {"orders_clean:anomaly": CheckState(failing=True, failing_since=0.0, alerted_at=0.0)}
    [alert], _ = plan_alerts([evaluation(5, "r5", passed=True, explanation=EXPLANATION)], state)
    text = render_text(alert, "http://ui:3000")
    assert text.splitlines()[0] == "RECOVERED orders_clean: anomaly passing again"
    assert "row count fell" not in text
    assert render_payload(alert, "http://ui:3000")["severity"] == "INFO"
