"""The check-failure alert sinks as plain callables, for the stream consumer (no sensor there).

`log` always; `webhook`, `slack` and `email` when their environment variables are set, built from
the same resources as the sensor's (`alert_resources_from_env`), with the same retries. Dagster
is imported only when one of those sinks is configured: a consumer that only logs starts fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import ExitStack
from functools import partial

from data_platform.quality.alerting import Alert, render_text

# The names data_platform.resources.alerts and data_platform.jobs.alerts read (a test keeps
# them equal), restated so that deciding whether Dagster is needed does not import it.
SINK_ENV = ("DATA_PLATFORM_ALERT_WEBHOOK_URL", "DATA_PLATFORM_SLACK_WEBHOOK_URL", "DATA_PLATFORM_SMTP_HOST")
BASE_URL_ENV = "DATA_PLATFORM_UI_BASE_URL"
DEFAULT_BASE_URL = "http://127.0.0.1:3000"


def alert_senders(stack: ExitStack, log: Callable[[str], None]) -> list[tuple[str, Callable[[Alert], None]]]:
    """(sink name, send) pairs; resources opened on `stack` are closed with it."""
    base_url = os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    senders: list[tuple[str, Callable[[Alert], None]]] = [("log", lambda alert: log(render_text(alert, base_url)))]
    if not any(os.environ.get(name) for name in SINK_ENV):
        return senders
    import dagster as dg

    from data_platform.resources.alerts import SINK_RESOURCE_KEYS, alert_resources_from_env

    resources = alert_resources_from_env()
    if not resources:
        return senders
    built = stack.enter_context(dg.build_resources(resources))
    for sink, key in SINK_RESOURCE_KEYS.items():
        if key in resources:
            senders.append((sink, partial(getattr(built, key).deliver, base_url=base_url)))
    return senders
