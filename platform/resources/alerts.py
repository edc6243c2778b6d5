"""Where check-failure alerts go: JSON webhook, Slack incoming webhook, SMTP email.

URLs and passwords are secrets: bind them with `dg.EnvVar` (see `alert_resources_from_env`) so
they never show in the UI or run config, and no error message or log line of these sinks
contains them (URLs are shown as `scheme://host/…`).
"""

from __future__ import annotations

import json
import os
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import dagster as dg

from data_platform.quality.alerting import Alert, render_email, render_payload, render_slack

# Sink name (as given to the sensor) -> resource key in the Definitions.
SINK_RESOURCE_KEYS = {"webhook": "alert_webhook", "slack": "alert_slack", "email": "alert_email"}
SINK_NAMES = ("log", *SINK_RESOURCE_KEYS)

WEBHOOK_URL_ENV = "DATA_PLATFORM_ALERT_WEBHOOK_URL"
SLACK_URL_ENV = "DATA_PLATFORM_SLACK_WEBHOOK_URL"
SMTP_ENV_PREFIX = "DATA_PLATFORM_SMTP_"


class AlertDeliveryError(Exception):
    """A sink could not deliver an alert; the message never contains a secret."""


def safe_url(url: str) -> str:
    """`scheme://host/…`: enough to tell which endpoint, nothing of the token in its path."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable url>"
    return f"{parts.scheme or '?'}://{host}{port}/…"


def redact(text: str, secrets: Sequence[str | None]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class _RetryingSink(dg.ConfigurableResource):
    """Delivery with a few attempts and exponential backoff inside one sensor tick."""

    attempts: int = 3
    backoff_seconds: float = 0.5
    timeout_seconds: float = 10.0

    def send(self, alert: Alert, base_url: str) -> None:
        raise NotImplementedError

    def _secrets(self) -> list[str | None]:
        return []

    def deliver(
        self, alert: Alert, base_url: str, on_retry: Callable[[str], None] | None = None
    ) -> int:
        """Send with retries; returns the number of attempts. Raises AlertDeliveryError."""
        last = ""
        for attempt in range(1, max(1, self.attempts) + 1):
            try:
                self.send(alert, base_url)
                return attempt
            except Exception as error:  # noqa: BLE001 - any failure of the transport is retried
                last = redact(_describe(error), self._secrets())
                if attempt < self.attempts:
                    if on_retry is not None:
                        on_retry(f"attempt {attempt} failed ({last}); retrying")
                    time.sleep(self.backoff_seconds * 2 ** (attempt - 1))
        raise AlertDeliveryError(f"{self.describe()}: {last} after {self.attempts} attempts")

    def describe(self) -> str:
        return type(self).__name__


class WebhookAlertSink(_RetryingSink):
    """POSTs the alert as JSON (`render_payload`) to `url`."""

    url: str

    def send(self, alert: Alert, base_url: str) -> None:
        _post_json(self.url, render_payload(alert, base_url), self.timeout_seconds)

    def _secrets(self) -> list[str | None]:
        return [self.url, urlsplit(self.url).path]

    def describe(self) -> str:
        return f"webhook {safe_url(self.url)}"


class SlackAlertSink(_RetryingSink):
    """POSTs `{"text", "blocks"}` to a Slack incoming webhook."""

    webhook_url: str

    def send(self, alert: Alert, base_url: str) -> None:
        _post_json(self.webhook_url, render_slack(alert, base_url), self.timeout_seconds)

    def _secrets(self) -> list[str | None]:
        return [self.webhook_url, urlsplit(self.webhook_url).path]

    def describe(self) -> str:
        return f"slack {safe_url(self.webhook_url)}"


class EmailAlertSink(_RetryingSink):
    """Sends a multipart email (text, HTML, inline history plots) over SMTP."""

    host: str
    port: int = 25
    user: str | None = None
    password: str | None = None
    sender: str = "data-platform@localhost"
    recipients: str  # comma-separated
    starttls: bool = False

    def send(self, alert: Alert, base_url: str) -> None:
        to = [r.strip() for r in self.recipients.split(",") if r.strip()]
        if not to:
            raise AlertDeliveryError("no recipients configured")
        message = render_email(alert, base_url, sender=self.sender, recipients=to)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_seconds) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.user:
                smtp.login(self.user, self.password or "")
            smtp.send_message(message)

    def _secrets(self) -> list[str | None]:
        return [self.password]

    def describe(self) -> str:
        return f"email via {self.host}:{self.port}"


def _post_json(url: str, payload: object, timeout: float) -> None:
    if urlsplit(url).scheme not in {"http", "https"}:
        raise AlertDeliveryError(f"not an http(s) URL: {safe_url(url)}")
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            response.read()
    except urllib.error.HTTPError as error:
        # The exception's own text and attributes carry the URL: keep only the status.
        raise AlertDeliveryError(f"HTTP {error.code}") from None
    except urllib.error.URLError as error:
        raise AlertDeliveryError(f"cannot reach {safe_url(url)}: {error.reason}") from None


def _describe(error: Exception) -> str:
    text = str(error) or type(error).__name__
    return text if isinstance(error, AlertDeliveryError) else f"{type(error).__name__}: {text}"


def sinks_from_env() -> tuple[str, ...]:
    """`log` plus every sink whose environment variables are set."""
    sinks = ["log"]
    if os.environ.get(WEBHOOK_URL_ENV):
        sinks.append("webhook")
    if os.environ.get(SLACK_URL_ENV):
        sinks.append("slack")
    if os.environ.get(SMTP_ENV_PREFIX + "HOST") and os.environ.get(SMTP_ENV_PREFIX + "TO"):
        sinks.append("email")
    return tuple(sinks)


def alert_resources_from_env(
    *, attempts: int = 3, backoff_seconds: float = 0.5
) -> dict[str, dg.ConfigurableResource]:
    """The sink resources configured by environment, secrets bound as `dg.EnvVar`."""
    retry = {"attempts": attempts, "backoff_seconds": backoff_seconds}
    resources: dict[str, dg.ConfigurableResource] = {}
    if os.environ.get(WEBHOOK_URL_ENV):
        resources["alert_webhook"] = WebhookAlertSink(url=dg.EnvVar(WEBHOOK_URL_ENV), **retry)
    if os.environ.get(SLACK_URL_ENV):
        resources["alert_slack"] = SlackAlertSink(webhook_url=dg.EnvVar(SLACK_URL_ENV), **retry)
    env = SMTP_ENV_PREFIX
    if os.environ.get(env + "HOST") and os.environ.get(env + "TO"):
        optional = {}
        if os.environ.get(env + "USER"):
            optional["user"] = dg.EnvVar(env + "USER")
        if os.environ.get(env + "PASSWORD"):
            optional["password"] = dg.EnvVar(env + "PASSWORD")
        if os.environ.get(env + "FROM"):
            optional["sender"] = dg.EnvVar(env + "FROM")
        resources["alert_email"] = EmailAlertSink(
            host=dg.EnvVar(env + "HOST"),
            port=int(os.environ.get(env + "PORT") or 25),
            recipients=dg.EnvVar(env + "TO"),
            starttls=os.environ.get(env + "STARTTLS", "").lower() in {"1", "true", "yes"},
            **optional,
            **retry,
        )
    return resources
