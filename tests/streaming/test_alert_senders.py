"""The consumer's alert sinks are the check-failure sensor's, configured by the same variables."""

from contextlib import ExitStack

from data_platform.quality.alerting import Alert, AlertItem, Evaluation
from data_platform.resources import alerts, stream_alerts
from data_platform.streaming.scoring import STREAM_ASSET_PATH


def test_the_consumer_reads_the_same_variables_as_the_sinks():
    assert stream_alerts.SINK_ENV == (alerts.WEBHOOK_URL_ENV, alerts.SLACK_URL_ENV, alerts.SMTP_ENV_PREFIX + "HOST")


def test_log_always_and_a_webhook_when_configured(monkeypatch):
    for name in stream_alerts.SINK_ENV:
        monkeypatch.delenv(name, raising=False)
    lines = []
    evaluation = Evaluation(1, 0.0, "", STREAM_ASSET_PATH, "payment/mean", False, "WARN",
                            partition="events 00:00:00–00:00:05 UTC", metric="mean", observed=90.0)
    alert = Alert(STREAM_ASSET_PATH, "", "events 00:00:00–00:00:05 UTC", [AlertItem(evaluation, "new", 0.0)])
    with ExitStack() as stack:
        senders = stream_alerts.alert_senders(stack, lines.append)
        assert [name for name, _ in senders] == ["log"]
        senders[0][1](alert)
    assert lines[0].startswith("WARN stream_metrics [events 00:00:00–00:00:05 UTC]: payment/mean failed")
    assert "/assets/stream_metrics?view=checks" in lines[0]
    monkeypatch.setenv(alerts.WEBHOOK_URL_ENV, "http://127.0.0.1:9/hook")
    with ExitStack() as stack:
        senders = stream_alerts.alert_senders(stack, lines.append)
        assert [name for name, _ in senders] == ["log", "webhook"]
