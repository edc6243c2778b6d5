"""Check-failure alerts without Dagster: grouping, throttling, rendering.

An `Evaluation` is one asset-check result as plain data. `plan_alerts` turns evaluations (in
storage order) into `Alert`s: one per asset and run, with the checks that newly failed, still fail
after the reminder interval, or recovered. Per-check state (`CheckState`) makes repeats quiet:
a check failing run after run alerts once, then reminds only after `reminder_interval`, and says
"recovered" when it passes again. The state is plain JSON so it can live in a sensor cursor.
"""

from __future__ import annotations

import base64
import binascii
import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any
from urllib.parse import quote

NEW = "new"
REMINDER = "reminder"
RECOVERED = "recovered"
SEVERITY_RANK = {"WARN": 1, "ERROR": 2}

_DATA_URI = re.compile(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=\s]+)\)")


@dataclass(frozen=True)
class Evaluation:
    """One asset-check evaluation as the alerting sees it."""

    storage_id: int
    timestamp: float
    run_id: str
    asset_path: tuple[str, ...]
    check_name: str
    passed: bool
    severity: str = "WARN"
    partition: str | None = None
    description: str = ""
    metric: str | None = None
    observed: float | None = None
    expected: float | None = None
    lower: float | None = None
    upper: float | None = None
    score: float | None = None
    explanation: str = ""
    # The check's chart entry (markdown holding a data-URI PNG), stored apart from the
    # explanation since the chart got its own metadata key.
    plot: str = ""

    @property
    def check_id(self) -> str:
        return f"{'/'.join(self.asset_path)}:{self.check_name}"

    @property
    def plot_png(self) -> bytes | None:
        """The history plot: from the chart entry, else (results stored by releases that kept
        the chart inside the explanation) the first image embedded in the explanation."""
        for text in (self.plot, self.explanation):
            match = _DATA_URI.search(text)
            if match is not None:
                try:
                    return base64.b64decode("".join(match.group(1).split()), validate=True)
                except (binascii.Error, ValueError):
                    return None  # a damaged image only costs the attachment, never the alert
        return None

    @property
    def reasons(self) -> str:
        """The explanation as text: an image embedded by older releases is left out (data URIs
        are useless in text sinks)."""
        text = _DATA_URI.sub("", self.explanation).strip()
        return text or self.description


@dataclass
class CheckState:
    """What the alerting remembers about one check between evaluations."""

    failing: bool = False
    failing_since: float | None = None
    alerted_at: float | None = None
    storage_id: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "failing": self.failing,
            "failing_since": self.failing_since,
            "alerted_at": self.alerted_at,
            "storage_id": self.storage_id,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CheckState:
        return cls(
            failing=bool(data.get("failing", False)),
            failing_since=_opt_float(data.get("failing_since")),
            alerted_at=_opt_float(data.get("alerted_at")),
            storage_id=int(data.get("storage_id", 0)),
        )


@dataclass(frozen=True)
class AlertItem:
    evaluation: Evaluation
    kind: str  # NEW, REMINDER or RECOVERED
    failing_since: float | None = None


@dataclass
class Alert:
    """One message: the checks of one asset in one run that are worth telling about."""

    asset_path: tuple[str, ...]
    run_id: str
    partition: str | None
    items: list[AlertItem] = field(default_factory=list)
    # State after this alert, per check id: committed only once the alert is delivered.
    new_state: dict[str, CheckState] = field(default_factory=dict)
    first_storage_id: int = 0
    last_storage_id: int = 0

    @property
    def key(self) -> str:
        return f"{self.run_id}:{'/'.join(self.asset_path)}"

    @property
    def asset(self) -> str:
        return "/".join(self.asset_path)

    @property
    def failures(self) -> list[AlertItem]:
        return [i for i in self.items if i.kind != RECOVERED]

    @property
    def recoveries(self) -> list[AlertItem]:
        return [i for i in self.items if i.kind == RECOVERED]

    @property
    def kind(self) -> str:
        """`new` if any check newly fails, else `reminder` if any still fails, else `recovered`."""
        kinds = {i.kind for i in self.items}
        for kind in (NEW, REMINDER):
            if kind in kinds:
                return kind
        return RECOVERED

    @property
    def severity(self) -> str:
        """The worst severity among failing checks; recoveries are informational."""
        failing = [i.evaluation.severity for i in self.failures]
        if not failing:
            return "INFO"
        return max(failing, key=lambda s: SEVERITY_RANK.get(s, 0))


@dataclass
class Group:
    """Evaluations of one asset in one run, before throttling."""

    asset_path: tuple[str, ...]
    run_id: str
    evaluations: list[Evaluation] = field(default_factory=list)

    @property
    def first_storage_id(self) -> int:
        return min(e.storage_id for e in self.evaluations)

    @property
    def last_storage_id(self) -> int:
        return max(e.storage_id for e in self.evaluations)


def group_evaluations(evaluations: Iterable[Evaluation]) -> list[Group]:
    """One group per (run, asset), ordered by the first evaluation's storage id."""
    groups: dict[tuple[str, tuple[str, ...]], Group] = {}
    for evaluation in sorted(evaluations, key=lambda e: e.storage_id):
        key = (evaluation.run_id, evaluation.asset_path)
        if key not in groups:
            groups[key] = Group(evaluation.asset_path, evaluation.run_id)
        groups[key].evaluations.append(evaluation)
    return sorted(groups.values(), key=lambda g: g.first_storage_id)


def judge_group(
    group: Group, state: Mapping[str, CheckState], reminder_interval: timedelta
) -> Alert:
    """The alert this group deserves given the state (empty `items` means stay quiet).

    Evaluations at or before a check's remembered storage id were already applied and are
    skipped, which makes re-reading the same events after a failed delivery harmless.
    """
    interval = reminder_interval.total_seconds()
    alert = Alert(
        group.asset_path,
        group.run_id,
        partition=None,
        first_storage_id=group.first_storage_id,
        last_storage_id=group.last_storage_id,
    )
    partitions: list[str] = []
    for evaluation in group.evaluations:
        check_id = evaluation.check_id
        before = alert.new_state.get(check_id) or state.get(check_id) or CheckState()
        if evaluation.storage_id <= before.storage_id:
            continue
        after = replace(before, storage_id=evaluation.storage_id)
        if evaluation.passed:
            if before.failing:
                alert.items.append(AlertItem(evaluation, RECOVERED, before.failing_since))
            after.failing, after.failing_since, after.alerted_at = False, None, None
        elif not before.failing:
            alert.items.append(AlertItem(evaluation, NEW, evaluation.timestamp))
            after.failing = True
            after.failing_since = evaluation.timestamp
            after.alerted_at = evaluation.timestamp
        elif before.alerted_at is None or evaluation.timestamp - before.alerted_at >= interval:
            alert.items.append(AlertItem(evaluation, REMINDER, before.failing_since))
            after.alerted_at = evaluation.timestamp
        alert.new_state[check_id] = after
        if evaluation.partition is not None and evaluation.partition not in partitions:
            partitions.append(evaluation.partition)
    alert.partition = ", ".join(partitions) if partitions else None
    return alert


def plan_alerts(
    evaluations: Iterable[Evaluation],
    state: Mapping[str, CheckState],
    reminder_interval: timedelta = timedelta(hours=24),
) -> tuple[list[Alert], dict[str, CheckState]]:
    """All alerts for these evaluations, assuming every one is delivered, and the final state."""
    current = dict(state)
    alerts = []
    for group in group_evaluations(evaluations):
        alert = judge_group(group, current, reminder_interval)
        current.update(alert.new_state)
        if alert.items:
            alerts.append(alert)
    return alerts, current


# ---------------------------------------------------------------------------------- rendering


def check_page_url(base_url: str, asset_path: Sequence[str]) -> str:
    """The asset's checks tab in the Dagster UI."""
    path = "/".join(quote(part, safe="") for part in asset_path)
    return f"{base_url.rstrip('/')}/assets/{path}?view=checks"


def title(alert: Alert) -> str:
    where = f" [{alert.partition}]" if alert.partition else ""
    if alert.kind == RECOVERED:
        names = ", ".join(i.evaluation.check_name for i in alert.recoveries)
        return f"RECOVERED {alert.asset}{where}: {names} passing again"
    names = ", ".join(i.evaluation.check_name for i in alert.failures)
    label = "REMINDER" if alert.kind == REMINDER else alert.severity
    return f"{label} {alert.asset}{where}: {names} failed"


def _fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
        return f"{value:.3g}"
    return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"


def numbers_line(evaluation: Evaluation) -> str | None:
    """`metric: observed X, expected Y [lower, upper], score S` when the check measured one."""
    if evaluation.observed is None and evaluation.expected is None:
        return None
    metric = f"{evaluation.metric}: " if evaluation.metric else ""
    line = (
        f"{metric}observed {_fmt(evaluation.observed)}, expected {_fmt(evaluation.expected)} "
        f"[{_fmt(evaluation.lower)}, {_fmt(evaluation.upper)}]"
    )
    if evaluation.score is not None and math.isfinite(evaluation.score):
        line += f", score {evaluation.score:+.1f}"
    return line


def item_label(item: AlertItem) -> str:
    e = item.evaluation
    # A run over several partitions can judge one check several times: say which one.
    where = f" ({e.partition})" if e.partition else ""
    if item.kind == RECOVERED:
        return f"{e.check_name}{where}: recovered (passing again)"
    label = "still failing (reminder)" if item.kind == REMINDER else "failed"
    return f"{e.check_name}{where} [{e.severity}]: {label}"


def render_text(alert: Alert, base_url: str) -> str:
    """Plain text for logs and the text part of emails."""
    lines = [
        title(alert),
        f"asset: {alert.asset}",
        f"partition: {alert.partition or '–'}",
        f"run: {alert.run_id or '– (reported outside a run)'}",
        f"severity: {alert.severity}",
        f"checks: {check_page_url(base_url, alert.asset_path)}",
        "",
    ]
    for item in alert.items:
        lines.append(f"* {item_label(item)}")
        numbers = numbers_line(item.evaluation)
        if numbers and item.kind != RECOVERED:
            lines.append(f"  {numbers}")
        if item.kind != RECOVERED:
            for reason in item.evaluation.reasons.splitlines():
                if reason.strip():
                    lines.append(f"  {reason}")
    return "\n".join(lines)


def render_payload(alert: Alert, base_url: str) -> dict[str, Any]:
    """JSON for generic webhooks: every field a receiver may route or display on."""
    return {
        "kind": alert.kind,
        "title": title(alert),
        "asset": alert.asset,
        "asset_path": list(alert.asset_path),
        "partition": alert.partition,
        "run_id": alert.run_id,
        "severity": alert.severity,
        "checks_url": check_page_url(base_url, alert.asset_path),
        "checks": [
            {
                "check": item.evaluation.check_name,
                "status": item.kind,
                "passed": item.evaluation.passed,
                "severity": item.evaluation.severity,
                "partition": item.evaluation.partition,
                "metric": item.evaluation.metric,
                "observed": _json_number(item.evaluation.observed),
                "expected": _json_number(item.evaluation.expected),
                "lower": _json_number(item.evaluation.lower),
                "upper": _json_number(item.evaluation.upper),
                "score": _json_number(item.evaluation.score),
                "description": item.evaluation.description,
                "reasons": item.evaluation.reasons,
                "failing_since": item.failing_since,
                "evaluated_at": item.evaluation.timestamp,
            }
            for item in alert.items
        ],
    }


def render_slack(alert: Alert, base_url: str) -> dict[str, Any]:
    """Slack incoming-webhook JSON: `text` for notifications, `blocks` for the message.

    Slack cannot show data-URI images, so the plot is a link to the asset's checks page.
    """
    url = check_page_url(base_url, alert.asset_path)
    head = title(alert)
    context = f"*Run* `{alert.run_id}`  *Partition* `{alert.partition or '–'}`  *Severity* {alert.severity}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": head[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": context}},
    ]
    for item in alert.items:
        text = f"*{_slack_escape(item_label(item))}*"
        numbers = numbers_line(item.evaluation)
        if numbers and item.kind != RECOVERED:
            text += f"\n{_slack_escape(numbers)}"
        if item.kind != RECOVERED and item.evaluation.reasons:
            text += "\n" + _slack_escape(_first_lines(item.evaluation.reasons, 6))
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}})
    blocks.append(
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"<{url}|History plot and check details>"},
        }
    )
    return {"text": f"{head} ({url})", "blocks": blocks}


def render_email(
    alert: Alert, base_url: str, *, sender: str, recipients: Sequence[str]
) -> EmailMessage:
    """A multipart email: plain text, HTML, and each check's history plot as an inline PNG."""
    message = EmailMessage()
    message["Subject"] = f"[data_platform] {title(alert)}"
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message.set_content(render_text(alert, base_url))
    url = check_page_url(base_url, alert.asset_path)
    parts = [
        f"<h2>{html.escape(title(alert))}</h2>",
        "<p>"
        f"<b>Asset</b> {html.escape(alert.asset)}<br>"
        f"<b>Partition</b> {html.escape(alert.partition or '–')}<br>"
        f"<b>Run</b> <code>{html.escape(alert.run_id)}</code><br>"
        f"<b>Severity</b> {html.escape(alert.severity)}<br>"
        f'<a href="{html.escape(url)}">Open the checks in the UI</a></p>',
    ]
    images: list[tuple[str, bytes]] = []
    for item in alert.items:
        parts.append(f"<h3>{html.escape(item_label(item))}</h3>")
        if item.kind == RECOVERED:
            continue
        numbers = numbers_line(item.evaluation)
        if numbers:
            parts.append(f"<p>{html.escape(numbers)}</p>")
        if item.evaluation.reasons:
            parts.append(f"<pre>{html.escape(item.evaluation.reasons)}</pre>")
        png = item.evaluation.plot_png
        if png is not None:
            cid = make_msgid(domain="data-platform.local")
            images.append((cid, png))
            parts.append(
                f'<img src="cid:{cid[1:-1]}" alt="history of {html.escape(item.evaluation.check_name)}">'
            )
    message.add_alternative("\n".join(parts), subtype="html")
    html_part = message.get_payload()[-1]
    for cid, png in images:
        html_part.add_related(png, maintype="image", subtype="png", cid=cid)
    return message


def _first_lines(text: str, n: int) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    more = len(lines) - n
    return "\n".join(lines[:n]) + (f"\n… {more} more lines" if more > 0 else "")


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _json_number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
