"""The check-failure sensor against a real instance, a real HTTP server and a real SMTP server."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationPlanned,  # Dagster does not export the planned event: the test writes it
)

from data_platform.checks import PLOT_KEY, event_store
from data_platform.jobs.alerts import (
    build_check_failure_sensor,
    check_key,
    load_cursor,
    to_evaluation,
)
from data_platform.resources.alerts import alert_resources_from_env

FAIL_TAG = "test/fail"
# Write the anomaly result as releases before the chart's own metadata key did: the chart inside
# the explanation. Stored check history in that format must still alert with its plot.
LEGACY_PLOT_TAG = "test/legacy_plot"
TOKEN = "T000/B000/sekrit-token-4242"
PASSWORD = "pa55-w0rd-never-shown"
# A real 1x1 PNG, as the anomaly check embeds its history plot.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@dg.asset
def orders_clean() -> int:
    return 1


@dg.asset
def customers_clean() -> int:
    return 1


def _failing(context, name: str) -> bool:
    return name in context.run.tags.get(FAIL_TAG, "").split(",")


@dg.asset_check(asset=orders_clean, name="anomaly")
def orders_anomaly(context) -> dg.AssetCheckResult:
    explanation = (
        "**Anomaly** in this materialization: `dagster/row_count` outside the expected range.\n\n"
        "- row count fell to a third of its usual level"
    )
    image = f"![plot](data:image/png;base64,{base64.b64encode(PNG).decode()})"
    charts: dict[str, dg.MetadataValue] = {}
    if context.run.tags.get(LEGACY_PLOT_TAG):
        explanation += f"\n\n{image}"
    else:
        charts[PLOT_KEY] = dg.MetadataValue.md(image)
    return dg.AssetCheckResult(
        passed=not _failing(context, "anomaly"),
        severity=dg.AssetCheckSeverity.ERROR,
        description="Anomaly in this materialization",
        metadata={
            "metric": "dagster/row_count",
            "observed": 120.0,
            "expected": 400.0,
            "lower": 350.0,
            "upper": 450.0,
            "score": -9.5,
            "explanation": dg.MetadataValue.md(explanation),
            **charts,
        },
    )


@dg.asset_check(asset=orders_clean, name="rules")
def orders_rules(context) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=not _failing(context, "rules"), description="3 order ids are duplicated"
    )


@dg.asset_check(asset=customers_clean, name="rules")
def customers_rules(context) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=not _failing(context, "customers"))


@dg.asset_check(asset=orders_clean, name="freshness")
def orders_freshness(context) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=not _failing(context, "freshness"))


ASSETS = [orders_clean, customers_clean]
CHECKS = [orders_anomaly, orders_rules, customers_rules, orders_freshness]


def _run(instance: dg.DagsterInstance, *failing: str, legacy_plot: bool = False) -> str:
    tags = {FAIL_TAG: ",".join(failing)}
    if legacy_plot:
        tags[LEGACY_PLOT_TAG] = "1"
    result = dg.materialize([*ASSETS, *CHECKS], instance=instance, tags=tags)
    return result.run_id


class Receiver:
    """A loopback HTTP server recording JSON POSTs; answers 500 to the first `fail_first`."""

    def __init__(self, fail_first: int = 0) -> None:
        self.posts: list[tuple[str, dict]] = []
        self.fail_first = fail_first
        self.requests = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests += 1
                if receiver.requests <= receiver.fail_first:
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.posts.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def flaky_receiver():
    server = Receiver(fail_first=3)
    yield server
    server.close()


class MailBox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's naming
        self.messages.append(
            email.message_from_bytes(envelope.content, policy=email.policy.default)
        )
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        assert isinstance(auth_data, LoginPassword)
        self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=auth_data.password.decode() == PASSWORD)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mailbox():
    box = MailBox()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=_free_port(),
        authenticator=box.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    box.port = controller.port
    yield box
    controller.stop()


class Sensor:
    """Ticks one sensor definition the way the daemon does: cursor in, cursor out."""

    def __init__(self, instance: dg.DagsterInstance, resources: dict, **options) -> None:
        self.instance = instance
        self.sensor = build_check_failure_sensor(minimum_interval_seconds=1, **options)
        self.defs = dg.Definitions(
            assets=ASSETS, asset_checks=CHECKS, sensors=[self.sensor], resources=resources
        )
        # Resolving the repository checks that the sensor's required resources are bound.
        self.defs.get_repository_def()
        self.resources = resources
        self.cursor: str | None = None
        self.skip_reasons: list[str] = []

    def tick(self) -> str:
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            definitions=self.defs,
            # Direct invocation takes resources from here; the daemon takes them from defs.
            resources=self.resources,
        )
        result = self.sensor(context)
        assert not result.run_requests
        self.cursor = result.cursor
        self.skip_reasons.append(result.skip_reason.skip_message if result.skip_reason else "")
        return self.cursor


def _http_env(monkeypatch, receiver: Receiver) -> dict:
    monkeypatch.setenv("DATA_PLATFORM_ALERT_WEBHOOK_URL", receiver.url(f"hook/{TOKEN}"))
    monkeypatch.setenv("DATA_PLATFORM_SLACK_WEBHOOK_URL", receiver.url(f"services/{TOKEN}"))
    return alert_resources_from_env()


def _output(capfd) -> str:
    """Everything written to stdout/stderr so far (Dagster's loggers write there)."""
    captured = capfd.readouterr()
    return captured.out + captured.err


def _by_path(receiver: Receiver, prefix: str) -> list[dict]:
    return [body for path, body in receiver.posts if path.startswith(f"/{prefix}/")]


def test_one_grouped_alert_per_failing_run_throttled_then_recovered(monkeypatch, receiver, capfd):
    with dg.instance_for_test() as instance:
        sensor = Sensor(
            instance,
            _http_env(monkeypatch, receiver),
            sinks=("log", "webhook", "slack"),
            base_url="http://dagster.example:3000",
        )
        sensor.tick()  # a new sensor starts at the end of the log
        _run(instance)  # all pass: nothing to say
        sensor.tick()
        assert receiver.posts == []

        failing_run = _run(instance, "anomaly", "rules")
        sensor.tick()
        [hook] = _by_path(receiver, "hook")
        assert hook["kind"] == "new"
        assert hook["asset"] == "orders_clean"
        assert hook["run_id"] == failing_run
        assert hook["severity"] == "ERROR"
        assert hook["checks_url"] == "http://dagster.example:3000/assets/orders_clean?view=checks"
        by_check = {c["check"]: c for c in hook["checks"]}
        assert set(by_check) == {"anomaly", "rules"}  # both failures of the run, one alert
        anomaly = by_check["anomaly"]
        assert (anomaly["observed"], anomaly["expected"]) == (120.0, 400.0)
        assert (anomaly["lower"], anomaly["upper"]) == (350.0, 450.0)
        assert "row count fell" in anomaly["reasons"]
        assert "data:image" not in json.dumps(hook)
        assert by_check["rules"]["reasons"] == "3 order ids are duplicated"

        [slack] = _by_path(receiver, "services")
        assert "orders_clean" in slack["text"] and "anomaly, rules" in slack["text"]
        blocks = json.dumps(slack["blocks"])
        assert "observed 120, expected 400 [350, 450]" in blocks
        assert "?view=checks|" in blocks
        assert "data:image" not in blocks
        logged = _output(capfd)
        assert "WARNING - ERROR orders_clean: anomaly, rules failed" in logged
        assert "observed 120, expected 400 [350, 450]" in logged

        # The same checks fail again on the next run: throttled, nothing new is sent.
        _run(instance, "anomaly", "rules")
        sensor.tick()
        assert len(receiver.posts) == 2

        # A restart with the saved cursor sends nothing twice.
        saved = sensor.cursor
        restarted = Sensor(instance, alert_resources_from_env(), sinks=("webhook", "slack"))
        restarted.cursor = saved
        restarted.tick()
        assert len(receiver.posts) == 2
        assert restarted.cursor == saved

        # Recovery: one message per asset, naming what passes again.
        _run(instance)
        sensor.tick()
        recovered = _by_path(receiver, "hook")[-1]
        assert recovered["kind"] == "recovered"
        assert {c["check"] for c in recovered["checks"]} == {"anomaly", "rules"}
        assert all(c["status"] == "recovered" for c in recovered["checks"])
        assert len(receiver.posts) == 4

        # The cursor advanced past the last evaluation of each check and nothing is re-read.
        state = load_cursor(sensor.cursor)
        before = load_cursor(saved)["read"]
        assert all(state["read"][c] > before[c] for c in ("orders_clean:anomaly", "orders_clean:rules"))
        assert state["sent"] == {}
        sensor.tick()
        assert len(receiver.posts) == 4
        assert "read 0 evaluations" in sensor.skip_reasons[-1]

        # Secrets never leave the resources.
        logs = logged + _output(capfd)
        assert TOKEN not in logs and TOKEN not in sensor.cursor


def test_a_failure_on_another_asset_is_its_own_alert_and_reminders_follow_the_interval(
    monkeypatch, receiver
):
    with dg.instance_for_test() as instance:
        sensor = Sensor(
            instance,
            _http_env(monkeypatch, receiver),
            sinks=("webhook",),
            reminder_interval=timedelta(0),
        )
        sensor.tick()
        _run(instance, "rules", "customers")
        sensor.tick()
        hooks = _by_path(receiver, "hook")
        assert sorted(h["asset"] for h in hooks) == ["customers_clean", "orders_clean"]
        assert {h["kind"] for h in hooks} == {"new"}
        # With no interval, a check still failing on the next run reminds at once.
        _run(instance, "rules")
        sensor.tick()
        later = {h["asset"]: h for h in _by_path(receiver, "hook")[2:]}
        assert len(later) == 2
        reminder = later["orders_clean"]
        assert reminder["kind"] == "reminder"
        assert reminder["severity"] == "ERROR"  # Dagster's default severity
        assert [c["check"] for c in reminder["checks"]] == ["rules"]
        # customers_clean passes again in that run: its recovery is a separate alert.
        assert later["customers_clean"]["kind"] == "recovered"
        assert later["customers_clean"]["severity"] == "INFO"


@pytest.mark.parametrize("legacy_plot", [False, True], ids=["plot-key", "plot-in-explanation"])
def test_email_with_login_and_inline_plot(monkeypatch, mailbox, capfd, legacy_plot):
    for key, value in {
        "HOST": "127.0.0.1",
        "PORT": str(mailbox.port),
        "USER": "alerts",
        "PASSWORD": PASSWORD,
        "FROM": "platform@example.org",
        "TO": "oncall@example.org, data@example.org",
    }.items():
        monkeypatch.setenv(f"DATA_PLATFORM_SMTP_{key}", value)
    with dg.instance_for_test() as instance:
        sensor = Sensor(instance, alert_resources_from_env(), sinks=("email",))
        sensor.tick()
        run_id = _run(instance, "anomaly", legacy_plot=legacy_plot)
        sensor.tick()
    assert mailbox.logins == [("alerts", PASSWORD)]
    [message] = mailbox.messages
    assert message["Subject"] == "[data_platform] ERROR orders_clean: anomaly failed"
    assert message["To"] == "oncall@example.org, data@example.org"
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "observed 120, expected 400 [350, 450]" in text
    assert run_id in text
    assert "data:image" not in text and "row count fell to a third" in text
    html_body = message.get_body(preferencelist=("html",)).get_content()
    assert "data:image" not in html_body
    [image] = [p for p in message.walk() if p.get_content_type() == "image/png"]
    assert image.get_payload(decode=True) == PNG
    assert f"cid:{image['Content-ID'].strip('<>')}" in html_body
    logs = _output(capfd)
    assert PASSWORD not in logs and PASSWORD not in sensor.cursor


def test_a_sink_that_is_down_is_retried_and_nothing_is_lost_or_sent_twice(
    monkeypatch, flaky_receiver, receiver, capfd
):
    # Slack works; the webhook answers 500 three times: two attempts per tick fail once.
    monkeypatch.setenv("DATA_PLATFORM_SLACK_WEBHOOK_URL", receiver.url(f"services/{TOKEN}"))
    monkeypatch.setenv("DATA_PLATFORM_ALERT_WEBHOOK_URL", flaky_receiver.url(f"hook/{TOKEN}"))
    resources = alert_resources_from_env(attempts=2, backoff_seconds=0.01)
    with dg.instance_for_test() as instance:
        sensor = Sensor(instance, resources, sinks=("slack", "webhook"))
        start = load_cursor(sensor.tick())["read"]["orders_clean:anomaly"]
        run_id = _run(instance, "anomaly")
        sensor.tick()
        assert flaky_receiver.requests == 2 and flaky_receiver.posts == []
        state = load_cursor(sensor.cursor)
        # Not past the undelivered alert: the next tick reads its evaluation again.
        read = state["read"]["orders_clean:anomaly"]
        assert read == start
        again = event_store.check_executions_after(instance, check_key("orders_clean:anomaly"), read)
        assert [(e.run_id, e.evaluation.passed) for e in again] == [(run_id, False)]
        assert to_evaluation(again[0]).check_id == "orders_clean:anomaly"
        assert state["sent"] == {f"{run_id}:orders_clean": ["slack"]}
        assert "undelivered" in sensor.skip_reasons[-1] and "HTTP 500" in sensor.skip_reasons[-1]

        sensor.tick()  # third 500, then delivered
        [(_, hook)] = flaky_receiver.posts
        assert hook["run_id"] == run_id
        assert len(receiver.posts) == 1  # slack had it already: not sent again
        assert load_cursor(sensor.cursor)["sent"] == {}
        sensor.tick()
        assert len(flaky_receiver.posts) == 1 and len(receiver.posts) == 1

    logs = _output(capfd)
    assert "ERROR - alert for orders_clean" in logs and "not delivered: webhook" in logs
    assert TOKEN not in logs and TOKEN not in sensor.cursor


def test_closed_port_keeps_the_alert_until_the_endpoint_is_fixed(monkeypatch, receiver, capfd):
    closed = _free_port()
    monkeypatch.setenv("DATA_PLATFORM_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{closed}/hook/{TOKEN}")
    down = alert_resources_from_env(attempts=2, backoff_seconds=0.01)["alert_webhook"]
    with dg.instance_for_test() as instance:
        sensor = Sensor(instance, {"alert_webhook": down}, sinks=("webhook",))
        sensor.tick()
        run_id = _run(instance, "rules")
        sensor.tick()
        sensor.tick()
        assert "cannot reach http://127.0.0.1" in sensor.skip_reasons[-1]
        # The endpoint is fixed (a redeploy): the same cursor delivers the kept alert once.
        fixed = Sensor(instance, _http_env(monkeypatch, receiver), sinks=("webhook",))
        fixed.cursor = sensor.cursor
        fixed.tick()
        fixed.tick()
    [hook] = _by_path(receiver, "hook")
    assert (hook["run_id"], hook["kind"]) == (run_id, "new")
    logs = _output(capfd)
    assert "cannot reach http://127.0.0.1" in logs
    assert TOKEN not in logs and TOKEN not in fixed.cursor


def test_unknown_sink_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown alert sinks \\['pager'\\]"):
        build_check_failure_sensor(sinks=("log", "pager"))


def _report_failure(instance: dg.DagsterInstance, run_id: str, check: str) -> None:
    evaluation = dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("orders_clean"), check_name=check, passed=False, metadata={}
    )
    instance.report_dagster_event(
        dg.DagsterEvent(
            event_type_value=dg.DagsterEventType.ASSET_CHECK_EVALUATION.value,
            job_name="daily_job",
            event_specific_data=evaluation,
        ),
        run_id=run_id,
    )


def test_a_run_in_progress_is_awaited_so_its_failures_make_one_alert(monkeypatch, receiver):
    with dg.instance_for_test() as instance:
        sensor = Sensor(instance, _http_env(monkeypatch, receiver), sinks=("webhook",))
        sensor.tick()
        run = instance.add_run(
            dg.DagsterRun(job_name="daily_job", status=dg.DagsterRunStatus.STARTED)
        )
        _report_failure(instance, run.run_id, "anomaly")
        sensor.tick()
        assert receiver.posts == []
        assert f"waiting for run {run.run_id}" in sensor.skip_reasons[-1]
        _report_failure(instance, run.run_id, "rules")
        instance.report_run_failed(run)
        sensor.tick()
        [hook] = _by_path(receiver, "hook")
        assert [c["check"] for c in hook["checks"]] == ["anomaly", "rules"]

        # A run left "started" by a crashed worker is not awaited forever.
        impatient = Sensor(
            instance, _http_env(monkeypatch, receiver), sinks=("webhook",), max_hold_seconds=0
        )
        impatient.cursor = sensor.cursor
        stuck = instance.add_run(
            dg.DagsterRun(job_name="daily_job", status=dg.DagsterRunStatus.STARTED)
        )
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey("customers_clean"), check_name="rules", passed=False
            )
        )
        _report_failure(instance, stuck.run_id, "freshness")
        impatient.tick()
        later = {h["asset"]: h for h in _by_path(receiver, "hook")[1:]}
        assert later["customers_clean"]["run_id"] == ""  # reported outside any run
        assert [c["check"] for c in later["orders_clean"]["checks"]] == ["freshness"]


def _report_planned(instance: dg.DagsterInstance, run_id: str, check: str) -> None:
    instance.report_dagster_event(
        dg.DagsterEvent(
            event_type_value=dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED.value,
            job_name="daily_job",
            event_specific_data=AssetCheckEvaluationPlanned(
                asset_key=dg.AssetKey("orders_clean"), check_name=check
            ),
        ),
        run_id=run_id,
    )


def test_a_check_planned_early_and_evaluated_late_still_alerts(monkeypatch, receiver):
    # Dagster numbers a check's execution when a run plans it and fills it in when the check is
    # evaluated: the evaluation lands below executions that later runs stored meanwhile.
    with dg.instance_for_test() as instance:
        sensor = Sensor(instance, _http_env(monkeypatch, receiver), sinks=("webhook",))
        sensor.tick()
        slow = instance.add_run(dg.DagsterRun(job_name="daily_job", status=dg.DagsterRunStatus.STARTED))
        _report_planned(instance, slow.run_id, "rules")
        quick = _run(instance, "anomaly")
        sensor.tick()
        [first] = _by_path(receiver, "hook")
        assert (first["run_id"], [c["check"] for c in first["checks"]]) == (quick, ["anomaly"])
        # The slow run's plan keeps the check's read position below it.
        read = load_cursor(sensor.cursor)["read"]["orders_clean:rules"]
        [planned] = event_store.check_executions_after(
            instance, check_key("orders_clean:rules"), read, limit=1
        )
        assert planned.run_id == slow.run_id and not planned.is_evaluated

        _report_failure(instance, slow.run_id, "rules")
        sensor.tick()
        assert len(receiver.posts) == 1  # its run is still going: awaited
        instance.report_run_failed(slow)
        sensor.tick()
        late = _by_path(receiver, "hook")[1]
        assert (late["run_id"], late["kind"]) == (slow.run_id, "new")
        assert [c["check"] for c in late["checks"]] == ["rules"]
        sensor.tick()
        assert len(receiver.posts) == 2
        state = load_cursor(sensor.cursor)
        [newest] = event_store.check_history_page(instance, check_key("orders_clean:rules"), limit=1)
        assert state["read"]["orders_clean:rules"] == newest.id


def test_a_cursor_of_the_first_version_is_migrated_without_resending(monkeypatch, receiver):
    with dg.instance_for_test() as instance:
        earlier = _run(instance, "rules", "customers")  # seen by the sensor before the upgrade
        old_cursor = json.dumps(
            {
                "v": 1,
                "after": 4321,
                "checks": {
                    "orders_clean:rules": {
                        "failing": True,
                        "failing_since": 1.0,
                        "alerted_at": 9e9,
                        "storage_id": 4300,
                    }
                },
                "sent": {f"{earlier}:customers_clean": ["log"]},
            }
        )
        sensor = Sensor(instance, _http_env(monkeypatch, receiver), sinks=("webhook",))
        sensor.cursor = old_cursor
        sensor.tick()
        assert receiver.posts == []
        state = load_cursor(sensor.cursor)
        assert json.loads(sensor.cursor)["v"] == 2
        assert set(state["read"]) == {
            "orders_clean:anomaly",
            "orders_clean:rules",
            "orders_clean:freshness",
            "customers_clean:rules",
        }
        assert state["sent"] == {}  # the old sensor's evaluations count as applied
        # The throttling state carries over: rules still failing is no news; customers is.
        later = _run(instance, "rules", "customers")
        sensor.tick()
        [hook] = _by_path(receiver, "hook")
        assert (hook["run_id"], hook["asset"], hook["kind"]) == (later, "customers_clean", "new")
        sensor.tick()
        assert len(receiver.posts) == 1


def test_an_unreadable_cursor_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot read the alert sensor cursor"):
        load_cursor('{"v": 2, "checks": {}}')
    with pytest.raises(ValueError, match="cannot read the alert sensor cursor"):
        load_cursor('{"v": 1, "checks": {}}')
