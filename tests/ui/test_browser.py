"""The Dagster UI in a real headless Chromium, on a real history with a caught incident.

`data-platform demo` runs nine daily partitions of synthetic data into a throwaway DAGSTER_HOME
and SQLite warehouse; the last one carries an injected orders incident (unit_price x3) that the
orders anomaly checks catch after 8 points of history. `data-platform dev` (webserver and daemon)
then serves that instance, and the browser checks that the asset graph renders, that the failing
check's page shows its explanation and its plot (own metadata row; no bookkeeping), that daily_job's page
lists the demo's runs and the Overview timeline shows them, that the daemon page shows the
daemons running, and that a run launched with the Materialize button (confirmed as a user would)
finishes.

Screenshots go to docs/screenshots/ with UPDATE_SCREENSHOTS=1, else to the test's tmp dir.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pytest

from data_platform.checks.anomaly import DEFAULT_CHECK_NAME
from data_platform.jobs import DAILY_JOB, DIMENSIONS_JOB, DOWNSTREAM_JOB, FEATURES_JOB
from data_platform.sources import synthetic

REPO_ROOT = Path(__file__).resolve().parents[2]


def _load_helper(name: str):
    # pytest runs in importlib mode: a test's own folder is not on sys.path.
    spec = importlib.util.spec_from_file_location(f"ui_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


Browser = _load_helper("cdp").Browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# 2026-11-10 is a distribution_shift of orders (unit_price x3) with 8 clean-enough days before it
# (2026-11-01, a volume drop, is left out of the window).
FIRST_DAY = date(2026, 11, 2)
INCIDENT_DAY = date(2026, 11, 10)
DAYS = (INCIDENT_DAY - FIRST_DAY).days + 1

# Settings of the environment that would change the partitions or the checks of the definitions.
OVERRIDES = ("DATA_PLATFORM_START_DATE", "DATA_PLATFORM_EXPECTED_EVENTS")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (apt-get install chromium)"),
]


def run_demo(root: Path, env: dict[str, str]) -> str:
    """`data-platform demo` over the window, ending on the incident day; its output."""
    proc = subprocess.run(
        [sys.executable, "-m", "data_platform.cli", "demo", "--days", str(DAYS), "--end", INCIDENT_DAY.isoformat()],
        cwd=root, env=env, capture_output=True, text=True, timeout=900,
    )
    # A failing blocking check stops the run's downstream steps: expected on the incident day.
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def ui(tmp_path_factory, procs):
    """(base URL, tmp dir) of a webserver on a fresh instance whose last orders partition alerted."""
    root = tmp_path_factory.mktemp("ui")
    [incident] = synthetic.incidents(INCIDENT_DAY, INCIDENT_DAY + timedelta(days=1))
    assert (incident.entity, incident.kind) == ("orders", "distribution_shift")
    assert not [
        i for i in synthetic.incidents(FIRST_DAY, INCIDENT_DAY) if i.entity == "orders"
    ], "the history before the incident must hold no other orders incident"

    env = {
        **{k: v for k, v in os.environ.items() if k not in OVERRIDES},
        "DAGSTER_HOME": str(root / "home"),
        "DATA_PLATFORM_WAREHOUSE_URL": f"sqlite:///{root / 'warehouse.db'}",
        "DATA_PLATFORM_MODEL_DIR": str(root / "models"),
        "DATA_PLATFORM_RECOMMENDER_BUDGET_S": "1",
    }
    out = run_demo(root, env)
    caught = f"  {INCIDENT_DAY.isoformat()}  orders_clean  {DEFAULT_CHECK_NAME}"
    assert caught in out.splitlines(), f"the incident of {INCIDENT_DAY} was not caught: {out[-3000:]}"
    port = procs.free_port()
    with procs.Processes(root / "logs") as group:
        # As the README says: `data-platform dev`, the webserver and the daemon on the instance.
        group.start("dev", [sys.executable, "-m", "data_platform.cli", "dev", "--port", str(port)], env, cwd=root)
        procs.wait_for_webserver(port, group, name="dev", timeout=120)
        # The "join the community" dialog opens on localhost origins and would cover the pages;
        # this is the mutation its own "Skip" button sends.
        assert procs.graphql(port, "mutation { setNuxSeen }")["data"]["setNuxSeen"] is True
        yield f"http://127.0.0.1:{port}", root


@pytest.fixture(scope="module")
def browser(ui, tmp_path_factory):
    with Browser(CHROMIUM, tmp_path_factory.mktemp("chromium-profile")) as opened:
        yield opened


def screenshot_path(name: str, tmp: Path) -> Path:
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        return REPO_ROOT / "docs" / "screenshots" / name
    return tmp / name


def assert_png(png: bytes) -> None:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1600, 1000)


def test_asset_graph_renders(ui, browser):
    base, root = ui
    browser.navigate(f"{base}/asset-groups")
    # The global lineage collapses groups: their names are the nodes.
    browser.wait_for(
        "['ingestion', 'cleaning', 'features', 'models'].every(g => document.body.innerText.includes(g))",
        timeout=60, what="the asset groups of the global lineage",
    )
    browser.navigate(f"{base}/assets/orders_clean?view=lineage&lineageDepth=2")
    names = ("orders_raw", "orders_clean", "customer_rfm")
    browser.wait_for(
        f"{json.dumps(names)}.every(n => document.body.innerText.includes(n))",
        timeout=30, what="the lineage of orders_clean",
    )
    # orders_clean's node summarises its checks, one of them failing (the anomaly check).
    browser.wait_for("document.body.innerText.includes('Passed')", what="the checks summary")
    time.sleep(1)  # edges are drawn after the nodes' text
    assert_png(browser.screenshot(screenshot_path("asset-graph.png", root)))


def test_failing_anomaly_check_shows_explanation_and_plot(ui, browser):
    base, root = ui
    browser.navigate(f"{base}/assets/orders_clean?view=checks")
    summary = f"Anomaly in partition {INCIDENT_DAY.isoformat()}"
    browser.wait_for(
        f"document.body.innerText.includes({json.dumps(summary)})",
        timeout=60, what="the anomaly check's latest execution",
    )
    text = browser.text()
    assert "anomaly" in text and "Failed" in text
    assert "mean/unit_price" in text  # the flagged metric, also a metadata row
    # The check's bookkeeping is one JSON row behind a link, not text among the user's metadata.
    assert "anomaly/state" in text and '"storage_id"' not in text and "anomaly/snapshot" not in text
    # Markdown metadata opens in a dialog.
    clicked = browser.evaluate(
        """(() => {
            const row = [...document.querySelectorAll('tr')]
                .find(tr => tr.innerText.trim().startsWith('explanation'));
            const link = row && [...row.querySelectorAll('a')]
                .find(a => a.innerText.includes('Show Markdown'));
            if (link) link.click();
            return Boolean(link);
        })()"""
    )
    assert clicked, "no [Show Markdown] link on the explanation row"
    dialog = browser.wait_for(
        "(() => { const d = document.querySelector('[role=dialog]');"
        " return d && d.innerText.includes('expected') ? d.innerText : null; })()",
        what="the explanation dialog",
    )
    assert summary in dialog
    assert "unit_price" in dialog and "far above the expected" in dialog
    assert "data:image/png" not in dialog  # the chart has its own row, the explanation is text
    # The history plot is its own Markdown row (anomaly/plot): close the explanation, open it.
    closed = browser.evaluate(
        "(() => { const b = [...document.querySelectorAll('[role=dialog] button')]"
        ".find(b => b.innerText.trim() === 'Close' || b.getAttribute('aria-label') === 'Close');"
        " if (b) b.click(); return Boolean(b); })()"
    )
    if not closed:  # as a user would: Escape closes a Blueprint dialog
        for kind in ("keyDown", "keyUp"):
            browser.call("Input.dispatchKeyEvent", type=kind, key="Escape", code="Escape",
                         windowsVirtualKeyCode=27)
    browser.wait_for("document.querySelector('[role=dialog]') === null", what="the explanation dialog to close")
    clicked = browser.evaluate(
        """(() => {
            const row = [...document.querySelectorAll('tr')]
                .find(tr => tr.innerText.trim().startsWith('anomaly/plot'));
            const link = row && [...row.querySelectorAll('a')]
                .find(a => a.innerText.includes('Show Markdown'));
            if (link) link.click();
            return Boolean(link);
        })()"""
    )
    assert clicked, "no [Show Markdown] link on the anomaly/plot row"
    # The embedded history plot: a PNG data URI that the browser decoded.
    plot = browser.wait_for(
        "(() => { const i = [...document.querySelectorAll('[role=dialog] img')]"
        ".find(i => i.src.startsWith('data:image/png;base64,'));"
        " return i && i.complete && i.naturalWidth > 0 ? [i.naturalWidth, i.naturalHeight] : null; })()",
        what="the plot image under anomaly/plot",
    )
    assert plot[0] > 100 and plot[1] > 50
    time.sleep(1)  # the dialog fades in: a screenshot taken at once shows the page through it
    assert_png(browser.screenshot(screenshot_path("anomaly-check.png", root)))


def test_the_job_page_lists_the_demo_runs(ui, browser):
    base, _ = ui
    browser.navigate(f"{base}/locations/data_platform/jobs/{DAILY_JOB}/runs")
    days = [(FIRST_DAY + timedelta(days=offset)).isoformat() for offset in range(DAYS)]
    text = browser.wait_for(
        f"(() => {{ const t = document.body.innerText;"
        f" return {json.dumps(days)}.every(d => t.includes(d)) ? t : null; }})()",
        timeout=60, what="the daily runs of every partition under daily_job",
    )
    assert "Failure" in text or "Success" in text


def test_the_overview_timeline_shows_the_demo_runs(ui, browser):
    base, root = ui
    browser.navigate(f"{base}/overview/activity/timeline")
    # A job has a row when it has runs in the window (the last hours): the demo ran three jobs.
    jobs = (DIMENSIONS_JOB, DAILY_JOB, DOWNSTREAM_JOB)
    text = browser.wait_for(
        f"(() => {{ const t = document.body.innerText;"
        f" return {json.dumps(jobs)}.every(j => t.includes(j)) ? t : null; }})()",
        timeout=60, what="the demo's jobs on the Overview timeline",
    )
    assert "data_platform" in text and FEATURES_JOB not in text
    assert_png(browser.screenshot(screenshot_path("overview-timeline.png", root)))


def _required_daemons_running(browser) -> list[str] | None:
    """The daemon page's rows (label, status) when the scheduler, sensors and run queue all run."""
    rows = browser.evaluate(
        """[...document.querySelectorAll('tr')].map(tr => [...tr.querySelectorAll('td')]
            .map(td => td.innerText.trim())).filter(cells => cells.length >= 2)"""
    )
    status = {cells[0]: cells[1] for cells in rows or []}
    wanted = ("Scheduler", "Sensors", "Run queue")
    if all(status.get(name, "").startswith("Running") for name in wanted):
        return [f"{name}: {status[name]}" for name in wanted]
    return None


def test_the_daemon_page_shows_the_daemons_running(ui, browser):
    base, _ = ui
    deadline = time.monotonic() + 120
    running = None
    # The first heartbeats come a few seconds after the daemon starts: reload until they show.
    while running is None and time.monotonic() < deadline:
        browser.navigate(f"{base}/deployment/daemons")
        browser.wait_for("document.body.innerText.includes('Run queue')", timeout=60, what="the daemon list")
        running = browser.wait_for(
            "(() => { const t = document.body.innerText; return t.includes('Running') || null; })()",
            timeout=10, what="a running daemon",
        ) and _required_daemons_running(browser)
    assert running, f"daemons not all running: {browser.text()[:2000]}"
    assert "Not running" not in browser.text()


def _run_ids(procs, port: int) -> set[str]:
    runs = procs.graphql(port, "{ runsOrError(limit: 100) { ... on Runs { results { runId } } } }")
    return {r["runId"] for r in runs["data"]["runsOrError"]["results"]}


def test_a_run_launched_with_the_materialize_button_finishes(ui, browser, procs):
    base, _ = ui
    port = int(base.rsplit(":", 1)[1])
    before = _run_ids(procs, port)
    browser.navigate(f"{base}/assets/customers_raw")
    button = """(() => [...document.querySelectorAll('button')]
        .find(b => /^Materialize$/.test(b.innerText.trim()) && !b.disabled) || null)()"""
    browser.wait_for(f"Boolean({button})", timeout=60, what="the Materialize button")
    browser.evaluate(f"{button}.click()")
    # customers_raw comes with customers_rejected (one multi-asset): the UI asks to confirm that,
    # as it would ask a user.
    confirm = """(() => { const b = [...document.querySelectorAll('[role=dialog] button')]
        .find(b => b.innerText.trim() === 'Confirm'); if (b) b.click(); return Boolean(b); })()"""

    def launched_runs():
        browser.evaluate(confirm)
        return _run_ids(procs, port) - before

    try:
        launched = browser_wait(launched_runs, 60, "the launched run")
    except AssertionError:
        raise AssertionError(f"no run launched; the page shows: {browser.text()[:3000]}") from None
    [run_id] = launched
    # The run page shows the run's status; the daemon's run queue starts it, a worker runs it.
    browser.navigate(f"{base}/runs/{run_id}")
    status = browser.wait_for(
        "(() => { const t = document.body.innerText;"
        " return ['Success', 'Failure', 'Canceled'].find(s => t.includes(s)) || null; })()",
        timeout=300, what="the launched run to finish",
    )
    assert status == "Success", browser.text()[:2000]
    state = procs.graphql(port, "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }",
                          {"id": run_id})
    assert state["data"]["runOrError"]["status"] == "SUCCESS"


def browser_wait(probe, timeout: float, what: str):
    """Poll `probe` (outside the page) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
