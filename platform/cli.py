"""`data-platform` console script: demo, dev (ui), bench."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path

DEFAULT_DAGSTER_HOME = ".dagster_home"
# The instance that `demo` and `dev` create: Dagster's SQLite storage with the kept-open event
# log (the repository's dagster.yaml shows it commented out, as an opt-in for other instances).
DEFAULT_INSTANCE_YAML = """\
# Created by data-platform: runs, event logs and schedules in SQLite under $DAGSTER_HOME, with
# event-log connections kept open (data_platform.resources.instance_storage). Delete the storage
# block for Dagster's stock SQLite storage (same files).
telemetry:
  enabled: false
run_monitoring:
  enabled: false
storage:
  custom:
    module: data_platform.resources.instance_storage
    class: KeepOpenSqliteStorage
    config:
      base_dir:
        env: DAGSTER_HOME
"""


# The code location that `dev` serves: pyproject's [tool.dagster], as `dagster dev` names it in
# the repository root. The demo's runs name it in their origin, so the UI shows them as its runs.
CODE_LOCATION = "data_platform"
DEFINITIONS_MODULE = "data_platform.definitions"
WORKSPACE_YAML = f"""\
load_from:
  - python_module:
      module_name: {DEFINITIONS_MODULE}
      location_name: {CODE_LOCATION}
"""


def project_root(start: Path | None = None) -> Path | None:
    """The clone this command runs in: the nearest folder up from `start` whose pyproject.toml
    declares this project's code location. None outside a clone (an installed package)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and f'module_name = "{DEFINITIONS_MODULE}"' in pyproject.read_text():
            return folder
    return None


def ensure_dagster_home() -> Path:
    """Honour DAGSTER_HOME; else use .dagster_home at the clone's root (or the current folder
    outside a clone). A new instance gets DEFAULT_INSTANCE_YAML; an existing dagster.yaml stays."""
    root = project_root()
    default = (root or Path.cwd()) / DEFAULT_DAGSTER_HOME
    home = Path(os.environ.get("DAGSTER_HOME") or default).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists():
        target.write_text(DEFAULT_INSTANCE_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def ensure_warehouse_url() -> str:
    """Honour DATA_PLATFORM_WAREHOUSE_URL; else pin the embedded SQLite warehouse to the clone's
    root, so that every command (and every process they start) uses the same file from any folder."""
    from sqlalchemy.engine import make_url

    url = os.environ.get("DATA_PLATFORM_WAREHOUSE_URL")
    if not url:
        path = (project_root() or Path.cwd()) / ".data" / "warehouse.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{path}"
        os.environ["DATA_PLATFORM_WAREHOUSE_URL"] = url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparseable URL is reported where it is used
        return "<unparseable DATA_PLATFORM_WAREHOUSE_URL>"


# Exit codes of `demo` (README): 0 every run completed (failing checks included: incidents are
# injected), 1 a step raised an error, 2 a setting or argument is wrong, 130 interrupted (Ctrl-C).
EXIT_OK, EXIT_BROKEN, EXIT_CONFIG, EXIT_INTERRUPTED = 0, 1, 2, 130


def _quiet_run_config() -> dict:
    # The demo prints its own progress and summary; failures stay in the instance for the UI.
    return {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


class RunLog:
    """Collects what the demo prints in its summary."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, float, bool]] = []
        # Runs that failed for another reason than a failing blocking check.
        self.broken_runs: list[str] = []
        self.compute_seconds = 0.0
        self.rows: dict[str, Counter] = defaultdict(Counter)
        self.reasons: dict[str, Counter] = defaultdict(Counter)
        self.failed_checks: list[tuple[str, str, str]] = []
        # Every check evaluation: (partition, asset, check, passed, learning text or "").
        self.evaluations: list[tuple[str, str, str, bool, str]] = []
        self.checks_run = 0
        self.materializations = 0

    def record(self, label: str, result, seconds: float, partition: str | None) -> None:
        self.steps.append((label, seconds, result.success))
        if not result.success:
            failures = [
                e.step_failure_data.error
                for e in result.all_events
                if e.event_type_value == "STEP_FAILURE"
            ]
            if not failures or any(
                err is None or err.cls_name != "DagsterAssetCheckFailedError" for err in failures
            ):
                self.broken_runs.append(label)
        for event in result.get_asset_materialization_events():
            mat = event.materialization
            name = mat.asset_key.to_user_string()
            self.materializations += 1
            duration = mat.metadata.get("duration_seconds")
            if duration is not None:
                self.compute_seconds += float(duration.value)
            rows = mat.metadata.get("dagster/row_count")
            if rows is not None:
                self.rows[name]["rows"] += int(rows.value)
            for key, value in mat.metadata.items():
                if key.startswith(("rejected/", "quarantined/")):
                    self.reasons[name][key.split("/", 1)[1]] += int(value.value)
        for evaluation in result.get_asset_check_evaluations():
            self.checks_run += 1
            duration = evaluation.metadata.get("duration_seconds")
            if duration is not None:
                self.compute_seconds += float(duration.value)
            asset = evaluation.asset_key.to_user_string()
            # A partitioned check names its partition; an unpartitioned one judged the run's.
            where = evaluation.partition or partition or "-"
            if not evaluation.passed:
                self.failed_checks.append((where, asset, evaluation.check_name))
            learning = evaluation.metadata.get("learning")
            learning_text = getattr(learning, "text", "")
            self.evaluations.append((
                where, asset, evaluation.check_name, evaluation.passed,
                learning_text if learning_text.startswith("learning") else "",
            ))


def injected_incidents(partition_keys: list[str]) -> list:
    """The synthetic calendar's incidents on the demo's days, for the entities that are synthetic
    (none with DATA_PLATFORM_SYNTHETIC_INCIDENTS=0)."""
    from datetime import date, timedelta

    from data_platform.resources.source import SYNTHETIC, source_resource_from_env, specs_from_env
    from data_platform.sources import synthetic

    source = source_resource_from_env()
    if not source.synthetic_incidents or not partition_keys:
        return []
    synthetic_entities = {e for e, spec in specs_from_env().items() if spec == SYNTHETIC}
    start = date.fromisoformat(partition_keys[0])
    end = date.fromisoformat(partition_keys[-1]) + timedelta(days=1)
    return [i for i in synthetic.incidents(start, end, seed=source.seed) if i.entity in synthetic_entities]


INCIDENT_OUTCOMES = {"caught": "caught", "learning": "not judged (learning)", "missed": "missed",
                     "unchecked": "not checked"}


def incident_outcomes(incidents: list, evaluations: list[tuple[str, str, str, bool, str]]) -> list[tuple]:
    """(incident, outcome, text) per incident, from the checks of its entity's assets that day:
    caught (a check failed), learning (none failed and every anomaly check was still learning:
    not judged), missed (judged normal) or unchecked (no check ran)."""
    from data_platform.catalog import ASSET_ENTITY

    out = []
    for incident in incidents:
        day = incident.day.isoformat()
        mine = [e for e in evaluations if e[0] == day and ASSET_ENTITY.get(e[1]) == incident.entity]
        failed = [f"{asset} {check}" for _, asset, check, passed, _ in mine if not passed]
        anomaly = [learning for _, _, check, _, learning in mine if check == "anomaly"]
        if failed:
            learning = f" (the anomaly checks were still {anomaly[0]})" if anomaly and all(anomaly) else ""
            out.append((incident, "caught", "caught by " + ", ".join(failed) + learning))
        elif anomaly and all(anomaly):
            out.append((incident, "learning", f"not judged ({anomaly[0]} of history; "
                                              f"the checks pass while they learn)"))
        elif mine:
            out.append((incident, "missed", "missed (judged normal)"))
        else:
            out.append((incident, "unchecked", "not checked (no check ran on its assets that day)"))
    return out


DEFAULT_DEMO_DAYS = 28


def pin_partition_start(instance, first_day=None) -> str | None:
    """Start the daily partitions where this instance's data starts, not at DEFAULT_START_DATE.

    Synthetic sources have data for any day, so the partitions would otherwise start on
    2025-01-01 and the catalog count every day since as missing. The start is the instance's
    earliest materialized daily partition, or `first_day` (the demo's first) if earlier: it only
    ever moves back, so nothing stored falls outside. Set as DATA_PLATFORM_START_DATE for the
    definitions (and every process `dev` starts). None, and no change, when that variable is
    set or an event source is a file or a database (its data sets the range)."""
    import dagster as dg

    from data_platform.assets.partitions import DEFAULT_START_DATE
    from data_platform.catalog import RAW, table
    from data_platform.checks.event_store import materialized_partitions
    from data_platform.resources.source import SYNTHETIC, specs_from_env
    from data_platform.sources.schemas import EVENT_ENTITIES

    if os.environ.get("DATA_PLATFORM_START_DATE"):
        return None
    specs = specs_from_env()
    if any(specs[entity] != SYNTHETIC for entity in EVENT_ENTITIES):
        return None
    candidates = [max(first_day, DEFAULT_START_DATE)] if first_day is not None else []
    for entity in EVENT_ENTITIES:
        for key in materialized_partitions(instance, dg.AssetKey(table(entity, RAW))):
            try:
                candidates.append(date.fromisoformat(key))
            except ValueError:
                continue
    if not candidates:
        return None
    start = min(candidates).isoformat()
    os.environ["DATA_PLATFORM_START_DATE"] = start
    return start


# When the morning jobs run after a day closes (the features schedule, jobs.FEATURES_CRON).
REPLAY_CLOCK_HOUR = 4


def _replay_clock(last: date) -> str | None:
    """For a window that ends before yesterday, set the platform's clock (feature timestamps,
    freshness, online snapshots, training cutoffs) to the morning after its last day, as a run
    of that morning would read it; otherwise, or when the offset is set already, leave it."""
    from datetime import UTC, datetime

    from data_platform.features.offline import CLOCK_OFFSET_ENV

    if last >= last_daily_partition() or os.environ.get(CLOCK_OFFSET_ENV, "").strip():
        return None
    morning = datetime(last.year, last.month, last.day, REPLAY_CLOCK_HOUR, tzinfo=UTC) + timedelta(days=1)
    os.environ[CLOCK_OFFSET_ENV] = f"{(morning - datetime.now(UTC)).total_seconds():.3f}"
    return morning.strftime("%Y-%m-%d %H:%M")


def last_daily_partition() -> date:
    """The latest complete day, as Dagster's daily partitions count it (UTC)."""
    from datetime import UTC, datetime

    return datetime.now(UTC).date() - timedelta(days=1)


def preflight_problems() -> list[str]:
    """Settings that would fail the first run, each as one line naming the setting and its fix."""
    from data_platform import preflight

    problems = preflight.source_problems()
    problem = preflight.warehouse_problem(os.environ["DATA_PLATFORM_WAREHOUSE_URL"])
    return [*problems, problem] if problem else problems


def load_definitions():
    """The Definitions, or None after one line naming what is wrong (sources are read at import
    time for the partition bounds)."""
    from data_platform.sources.result import SourceError

    try:
        from data_platform.definitions import defs
    except SourceError as error:
        print(f"data-platform: cannot load the sources: {error} "
              f"(check the DATA_PLATFORM_<ENTITY> settings)", file=sys.stderr)
        return None
    return defs


def run_demo(days: int, end: str | None = None) -> int:
    home = ensure_dagster_home()
    warehouse = ensure_warehouse_url()
    problems = preflight_problems()
    for problem in problems:
        print(f"data-platform: {problem}", file=sys.stderr)
    if problems:
        return EXIT_CONFIG
    import dagster as dg

    from data_platform.checks.event_store import execute_code_location_run
    from data_platform.jobs import DAILY_JOB, DIMENSIONS_JOB, DOWNSTREAM_JOB

    instance = dg.DagsterInstance.get()
    try:
        last = date.fromisoformat(end) if end is not None else last_daily_partition()
    except ValueError:
        print(f"--end {end} is not a date (YYYY-MM-DD)")
        return EXIT_CONFIG
    start = pin_partition_start(instance, last - timedelta(days=days - 1))
    defs = load_definitions()
    if defs is None:
        return EXIT_CONFIG

    daily = defs.resolve_job_def(DAILY_JOB)
    all_keys = daily.partitions_def.get_partition_keys()
    if end is not None:
        if end not in all_keys:
            print(f"--end {end} is not a daily partition ({all_keys[0]} .. {all_keys[-1]})")
            return EXIT_CONFIG
        all_keys = all_keys[: all_keys.index(end) + 1]
    partition_keys = all_keys[-days:]
    if not partition_keys:
        print("no daily partitions to run: check DATA_PLATFORM_START_DATE and the sources")
        return EXIT_CONFIG
    print(f"data-platform demo: {len(partition_keys)} daily partitions "
          f"{partition_keys[0]} .. {partition_keys[-1]}\n  instance:  {home}\n  warehouse: {warehouse}")
    if start is not None:
        print(f"  partitions start {start}, where this instance's data starts "
              f"(DATA_PLATFORM_START_DATE overrides)")
    clock = _replay_clock(date.fromisoformat(partition_keys[-1]))
    if clock is not None:
        print(f"  clock:     {clock} UTC, the morning after the window's last day, for the feature "
              f"store and the models (DATA_PLATFORM_CLOCK_OFFSET_SECONDS overrides)")
    log = RunLog()
    incidents = injected_incidents(partition_keys)
    started = time.perf_counter()

    def run(label: str, job_name: str, partition_key: str | None = None) -> None:
        t0 = time.perf_counter()
        # A run of the code location that `dev` serves, executed here: the UI shows it as the
        # runs it launches (Overview timeline, the job's runs).
        result = _in_worker_thread(lambda: execute_code_location_run(
            instance, job_name, location_name=CODE_LOCATION, module_name=DEFINITIONS_MODULE,
            partition_key=partition_key, run_config=_quiet_run_config(),
        ))
        seconds = time.perf_counter() - t0
        compute_before = log.compute_seconds
        log.record(label, result, seconds, partition_key)
        compute = log.compute_seconds - compute_before
        failed = [c for p, _, c in log.failed_checks if p == (partition_key or "-")]
        if result.success:
            status = "ok"
        elif label in log.broken_runs:
            status = "FAILED: a step raised an error (see the run in the UI)"
        else:
            status = "stopped by a blocking check (downstream skipped)"
        extra = f", {len(failed)} failing check(s)" if failed else ""
        print(f"  {label:<28} {seconds:6.1f}s  (compute {compute:5.1f}s)  {status}{extra}", flush=True)

    try:
        print("[1/3] dimensions (customers, products)")
        run("dimensions", DIMENSIONS_JOB)
        print(f"[2/3] daily job over {len(partition_keys)} partitions")
        for key in partition_keys:
            run(f"daily {key}", DAILY_JOB, key)
        print("[3/3] downstream features and models")
        run("downstream", DOWNSTREAM_JOB)
    except KeyboardInterrupt:
        print(f"\ninterrupted: stopped after {len(log.steps)} completed run(s); a run cut short "
              f"stays 'started' in the instance (terminate it in the UI)", file=sys.stderr, flush=True)
        _exit_now_if_a_run_is_left(EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
    total = time.perf_counter() - started
    print_summary(log, total, incidents)
    # Failing checks are the demo working (incidents are injected); a broken step is not.
    return EXIT_BROKEN if log.broken_runs else EXIT_OK


INTERRUPT_GRACE_S = 5.0
_runs_in_flight: set = set()  # the `finished` events of run threads that have not ended


def _in_worker_thread(execute):
    """Run `execute` in a daemon thread and wait for it on the main thread. In the main thread
    Dagster takes Ctrl-C over during a run (and may finish the run anyway); off it, Dagster
    leaves signals alone, so Ctrl-C reaches the demo: it gives the run INTERRUPT_GRACE_S to end,
    then raises KeyboardInterrupt (see `_exit_now_if_a_run_is_left`).

    The wait is on an Event, not `Thread.join`: on Python 3.11 a join cut short by Ctrl-C can
    leave the thread marked as stopped while it still runs."""
    import threading

    outcome: dict = {}
    finished = threading.Event()

    def target() -> None:
        try:
            outcome["result"] = execute()
        except BaseException as error:  # noqa: BLE001 - re-raised on the main thread
            outcome["error"] = error
        finally:
            finished.set()
            _runs_in_flight.discard(finished)

    _runs_in_flight.add(finished)
    threading.Thread(target=target, name="demo-run", daemon=True).start()
    try:
        while not finished.wait(0.2):
            pass
    except KeyboardInterrupt:
        finished.wait(INTERRUPT_GRACE_S)
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _exit_now_if_a_run_is_left(code: int) -> None:
    """End the process at once when a run outlived the grace period. A normal exit would wait
    for the thread pools that run started (interpreter shutdown joins them), as long as the run
    itself; the instance's SQLite and PostgreSQL writes are transactions, so an exit mid-run
    leaves the run 'started', nothing half-written."""
    if any(not finished.is_set() for finished in list(_runs_in_flight)):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def print_summary(log: RunLog, total: float, incidents: list | None = None) -> None:
    from data_platform.catalog import ENTITY_TABLES

    print()
    print(f"Summary: {len(log.steps)} runs in {total:.1f}s, {log.materializations} materializations, "
          f"{log.checks_run} check evaluations, {len(log.failed_checks)} failed")
    if total > 0:
        print(f"Compute inside asset and check bodies: {log.compute_seconds:.1f}s of {total:.1f}s wall "
              f"(Dagster orchestration, instance storage and warehouse I/O: "
              f"{100 * (1 - log.compute_seconds / total):.0f}%)")
    if log.broken_runs:
        print(f"Runs with a failing step: {', '.join(log.broken_runs)}")
    print(f"{'asset':<26}{'rows':>10}")
    for name in sorted(log.rows):
        if name in ENTITY_TABLES:
            print(f"{name:<26}{log.rows[name]['rows']:>10}")
    for name in sorted(log.reasons):
        reasons = ", ".join(f"{r}: {n}" for r, n in log.reasons[name].most_common())
        if reasons:
            print(f"  {name} reasons: {reasons}")
    if log.failed_checks:
        print("Failing checks (partition, asset, check):")
        for partition, asset, check in log.failed_checks:
            print(f"  {partition}  {asset}  {check}")
    if incidents:
        outcomes = incident_outcomes(incidents, log.evaluations)
        counts = Counter(outcome for _, outcome, _ in outcomes)
        tally = ", ".join(f"{counts[k]} {label}" for k, label in INCIDENT_OUTCOMES.items() if counts[k])
        print(f"Injected incidents (synthetic calendar, DATA_PLATFORM_SYNTHETIC_INCIDENTS): "
              f"{len(outcomes)}: {tally}")
        for incident, _, text in outcomes:
            print(f"  {incident.day}  {incident.entity:<11} {incident.kind} ({incident.description}): {text}")
    print("See the history in the Dagster UI: data-platform dev  (then open http://127.0.0.1:3000)")


def run_dev(host: str, port: int) -> int:
    """The local deployment: `dagster dev` (webserver and daemon) on the project's instance, so
    that runs launched from the UI start, schedules fire and the alert sensor ticks."""
    home = ensure_dagster_home()
    warehouse = ensure_warehouse_url()
    # The Dagster of this interpreter's environment, whether or not it is activated.
    workspace = home / "workspace.yaml"
    workspace.write_text(WORKSPACE_YAML)
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        # Where the instance's data starts; without data yet, where the demo would (its default window).
        start = pin_partition_start(instance) or pin_partition_start(
            instance, last_daily_partition() - timedelta(days=DEFAULT_DEMO_DAYS - 1))
    cmd = [sys.executable, "-m", "dagster", "dev", "-w", str(workspace),
           "--host", host, "--port", str(port)]
    print(f"Dagster UI on http://{host}:{port}  (webserver and daemon)\n"
          f"  instance:  {home}\n  warehouse: {warehouse}", flush=True)
    if start is not None:
        print(f"  partitions start {start}, where this instance's data starts "
              f"(DATA_PLATFORM_START_DATE overrides)", flush=True)
    # From the instance folder, dagster dev reads the instance's own dagster.yaml and nothing
    # else; becoming it lets Ctrl-C (or a supervisor's stop) reach it and its children.
    os.chdir(home)
    os.execv(sys.executable, cmd)


def run_serve(args: argparse.Namespace) -> int:
    # The same embedded warehouse as `demo` and `dev`, from any folder of the clone.
    warehouse = ensure_warehouse_url()
    from data_platform.serving.server import serve

    print(f"warehouse (fallback): {warehouse}", flush=True)
    return serve(args.host, args.port, args.workers)


def run_features(args: argparse.Namespace) -> int:
    ensure_warehouse_url()
    from data_platform.features import report

    return report.main(os.environ["DATA_PLATFORM_WAREHOUSE_URL"])


def run_stream(args: argparse.Namespace) -> int:
    """The stream consumer; --produce: the synthetic producer; --ack-alerts: mark alerts seen."""
    import signal
    from contextlib import ExitStack

    import redis

    from data_platform.streaming import store
    from data_platform.streaming.events import stream_from_env

    url = os.environ.get("DATA_PLATFORM_REDIS_URL")
    if not url:
        print("data-platform stream needs Redis: set DATA_PLATFORM_REDIS_URL (e.g. redis://127.0.0.1:6379/0)")
        return 2
    client = redis.Redis.from_url(url)
    stream = args.stream or stream_from_env()
    if args.produce:
        from data_platform.streaming.producer import produce_live

        n = produce_live(client, stream, args.rate, args.seconds or 120.0, incidents=args.incidents,
                         history_seconds=args.history)
        print(f"appended {n} events to {stream!r}")
        return 0
    warehouse = ensure_warehouse_url()
    engine = store.engine_for(os.environ["DATA_PLATFORM_WAREHOUSE_URL"])
    if args.ack_alerts:
        print(f"{store.acknowledge_alerts(engine, stream)} alerts of stream {stream!r} acknowledged")
        return 0
    from data_platform.resources.stream_alerts import alert_senders
    from data_platform.streaming.consumer import ConsumerConfig, StreamConsumer

    def log(message: str) -> None:
        print(message, flush=True)

    config = ConsumerConfig(stream=stream, interval=args.interval, lateness=args.lateness,
                            lease_ms=int(args.lease_seconds * 1000), **({"name": args.name} if args.name else {}))
    log(f"consuming {stream!r} as {config.name!r} (group {config.group!r}); warehouse: {warehouse}")
    with ExitStack() as stack:
        consumer = StreamConsumer(client, engine, config, alert_senders(stack, log), log=log)
        signal.signal(signal.SIGTERM, lambda *_: consumer.stop())
        try:
            stats = consumer.run(args.seconds)
        except KeyboardInterrupt:
            stats = consumer.stats
    log(f"read {stats.read} entries, stored {stats.intervals} intervals, {stats.alerts} alerts "
        f"({stats.sent} sent), {stats.late} late, {stats.rejected} rejected")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    from data_platform import bench

    return bench.main(args)


def _seeds(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds are integers separated by commas, not {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="data-platform", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the daily job over the last N partitions, then downstream")
    demo.add_argument("--days", type=int, default=DEFAULT_DEMO_DAYS,
                      help=f"number of daily partitions (default {DEFAULT_DEMO_DAYS})")
    demo.add_argument("--end", help="last partition to run, YYYY-MM-DD (default: the latest)")
    for name, help_text in (("dev", "the Dagster UI and daemon on the demo's instance (runs, schedules, sensors)"),
                            ("ui", "the same as dev")):
        ui = sub.add_parser(name, help=help_text)
        ui.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: no auth in OSS)")
        ui.add_argument("--port", type=int, default=3000)
    serve = sub.add_parser("serve", help="the recommendation service (HTTP; Redis cache, warehouse fallback)")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    stream = sub.add_parser("stream", help="the stream consumer (Redis Streams); --produce: synthetic events")
    stream.add_argument("--produce", action="store_true", help="append synthetic events instead of consuming")
    stream.add_argument("--rate", type=float, default=1000.0, help="produce: events per second (default 1000)")
    stream.add_argument("--seconds", type=float, help="stop after this long (produce: default 120; consume: never)")
    stream.add_argument("--incidents", action="store_true", help="produce: a count drop, a mean shift, a null spike")
    stream.add_argument("--history", type=float, default=600.0,
                        help="produce: seconds of past events appended first, to warm the detectors (default 600)")
    stream.add_argument("--stream", help="stream name (default $DATA_PLATFORM_STREAM or 'events')")
    stream.add_argument("--name", help="consumer name in the group (default: the host name)")
    stream.add_argument("--interval", type=float, default=5.0, help="seconds of event time per metric point (default 5)")
    stream.add_argument("--lateness", type=float, default=1.0, help="seconds an interval waits for late events (default 1)")
    stream.add_argument("--lease-seconds", type=float, default=10.0,
                        help="a dead consumer's standby takes over after this long (default 10)")
    stream.add_argument("--ack-alerts", action="store_true", help="mark the stream's alerts as acknowledged, then exit")
    features = sub.add_parser("features", help="the feature store: `features list` shows every view's freshness")
    features.add_argument("action", choices=["list"])
    bench = sub.add_parser("bench", help="benchmarks (results in docs/benchmarks.md)")
    bench.add_argument("which", choices=["io", "pipeline", "checks", "anomaly", "models", "platform", "serving",
                                          "streaming", "streaming-consumer", "features", "joint"])
    bench.add_argument(
        "target", nargs="*",
        help="models only: movielens PATH | scale [N] | retail DIR | sentiment DIR | polarity DIR",
    )
    bench.add_argument("--quick", action="store_true", help="small smoke version (CI)")
    bench.add_argument("--rows", type=int, nargs="*", help="row counts (io, pipeline)")
    bench.add_argument("--postgres-url", default=os.environ.get("DATA_PLATFORM_BENCH_POSTGRES_URL"))
    bench.add_argument("--days", type=int, help="platform only: consecutive days per window (default 180, quick 42)")
    bench.add_argument("--end-date", help="platform only: last day, YYYY-MM-DD (default yesterday); "
                       "platform also takes --seeds (default 0,1,2; quick 0) and --jobs (at most 2)")
    bench.add_argument("--no-incidents-too", action="store_true",
                       help="platform only: also run every window with the incident calendar off")
    bench.add_argument("--cases", type=int, help="joint only: cases per family and seed (default 4, quick 1)")
    bench.add_argument("--split", choices=["dev", "eval", "all"], default="all",
                       help="anomaly only: development set (seed 0), evaluation sets, or both (default)")
    bench.add_argument("--seeds", type=_seeds,
                       help="comma-separated seeds; anomaly: evaluation seeds (default 1,2,3; never 0, the dev seed)")
    bench.add_argument("--nab-dir", help="anomaly, streaming: NAB folder (default $DATA_PLATFORM_REAL_DATA/nab_dev "
                       "or ../shared/data/nab_dev; skipped when absent)")
    bench.add_argument("--json", help="anomaly, streaming: also write the full results as JSON here")
    bench.add_argument("--jobs", type=int, help="worker processes; anomaly: default 2 (1 on one core)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.days < 1:
            parser.error("--days must be at least 1")
        try:
            return run_demo(args.days, args.end)
        except KeyboardInterrupt:
            # Ctrl-C while the demo prepares (before its runs; those have their own handler).
            print("\ninterrupted: stopped after 0 completed run(s)", file=sys.stderr, flush=True)
            return EXIT_INTERRUPTED
    if args.command in ("dev", "ui"):
        return run_dev(args.host, args.port)
    if args.command == "serve":
        if args.workers < 1:
            parser.error("--workers must be at least 1")
        return run_serve(args)
    if args.command == "stream":
        return run_stream(args)
    if args.command == "features":
        return run_features(args)
    return run_bench(args)


if __name__ == "__main__":
    sys.exit(main())
