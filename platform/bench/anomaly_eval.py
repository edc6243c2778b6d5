"""`bench anomaly`: development and evaluation splits that cannot be tuned to, plus real series.

- Development: the platform's multi-metric generator (`generate_asset`) at seed 0, the only
  data on which thresholds may be chosen.
- Evaluation: the same generator at other seeds, and single-metric families nobody tuned on
  (`families`), at the evaluation seeds. The headline is evaluation only.
- Real series: NAB's labelled series (`nab`) aggregated to hourly and to daily points.

Every series is judged by our detector walk-forward like the asset check (`walk_forward`) and
by the baselines (Elementary-style z-score, 3-sigma of the previous 14, the 1-sigma rule), in
the same run. Scores per family and per source; `render_markdown` says where we are not ahead.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from data_platform.bench.anomaly import BASELINES, score_flags, walk_forward
from data_platform.bench.families import (
    CLEAN_EVERY,
    FAMILIES,
    HOURLY_FIRST_INCIDENT,
    Case,
    generate_case,
    platform_cases,
)
from data_platform.bench.nab import QUICK_NAB_FILES, STEPS, load_nab, nab_cases

DEV_SEED = 0
EVAL_SEEDS = (1, 2, 3)
OURS = "ours: detect, default config"
METHODS = (OURS, *BASELINES)
SHORT = {
    OURS: "ours",
    "baseline: Elementary-style (14 incl. current, |z|>3)": "Elementary z (14 incl. current)",
    "baseline: 3-sigma of previous 14": "3σ of previous 14",
    "baseline: glossary 1-sigma": "1σ rule",
}
SYNTHETIC_POOLED = "synthetic families together"
NAB_POOLED = "all NAB series"
COUNTS = ("incidents", "caught", "false_alerts", "clean_runs", "flagged_clean_runs")


@dataclass(frozen=True)
class Size:
    """How much a run generates (chosen so that the full run takes about ten minutes on two
    cores at the detector's speed when it was written; `--quick` well under a minute)."""

    platform_dev_series: int
    platform_eval_series: int  # per evaluation seed
    platform_days: int
    cases_per_family: int  # per seed, times the family's weight; every 4th is clean
    daily_points: int
    hourly_cases: int
    hourly_points: int
    nab_files: dict[str, tuple[str, ...]] | None  # per resolution; None: every series


FULL = Size(30, 8, 150, 16, 150, 4, 5 * 168, None)
QUICK = Size(2, 1, 70, 2, 100, 1, HOURLY_FIRST_INCIDENT + 96, QUICK_NAB_FILES)


@dataclass(frozen=True)
class Task:
    section: str  # "dev", "eval", "nab hourly", "nab daily"
    kind: str  # "platform", "family", "nab"
    seed: int
    group: str = ""
    indices: tuple[int, ...] = ()
    points: int = 0
    nab_dir: str = ""
    nab_files: tuple[str, ...] | None = None
    cost: float = field(default=0.0, compare=False)


def _cases(task: Task) -> list[Case]:
    if task.kind == "platform":
        cases = platform_cases(task.seed, max(task.indices) + 1, task.points)
        return [cases[i] for i in task.indices]
    if task.kind == "family":
        return [generate_case(task.group, task.seed, i, points=task.points) for i in task.indices]
    return nab_cases(task.nab_dir, task.section.split()[-1], task.nab_files)


def run_task(task: Task) -> list[dict]:
    """Every method on every case of one task: per case, per method, the score counts."""
    out = []
    for case in _cases(task):
        scores, seconds = {}, {}
        for method in METHODS:
            # CPU time of this process: unaffected by other work sharing the cores.
            started = time.process_time()
            flags = walk_forward(case.data, None) if method == OURS else BASELINES[method](case.data)
            seconds[method] = time.process_time() - started
            scores[method] = score_flags(flags, case.incidents, case.start)
        out.append({"section": task.section, "group": case.family, "seed": task.seed,
                    "case": case.name, "points": len(case.data), "scores": scores, "seconds": seconds})
    return out


def plan(split: str = "all", seeds: tuple[int, ...] = EVAL_SEEDS, quick: bool = False,
         nab_dir: str | Path | None = None) -> list[Task]:
    """The tasks of a run, most expensive first (so two workers finish together)."""
    if split not in ("dev", "eval", "all"):
        raise ValueError(f"split must be dev, eval or all, not {split!r}")
    if DEV_SEED in seeds:
        raise ValueError(f"evaluation seeds must not include the development seed {DEV_SEED}")
    size = QUICK if quick else FULL
    seeds = seeds[:1] if quick else seeds
    tasks: list[Task] = []

    def platform(section: str, seed: int, n: int) -> None:
        # Two assets per task: a multi-metric asset costs about ten single-metric series.
        for first in range(0, n, 2):
            indices = tuple(range(first, min(first + 2, n)))
            tasks.append(Task(section, "platform", seed, "platform_metrics", indices,
                              size.platform_days, cost=14.0 * len(indices) * size.platform_days))

    if split in ("dev", "all"):
        platform("dev", DEV_SEED, size.platform_dev_series)
        # The joint families' thresholds are chosen on the development seed too.
        for family, spec in FAMILIES.items():
            if spec.joint:
                for first in range(0, size.cases_per_family, 4):
                    indices = tuple(range(first, min(first + 4, size.cases_per_family)))
                    tasks.append(Task("dev", "family", DEV_SEED, family, indices, size.daily_points,
                                      cost=len(indices) * size.daily_points * 5.0))
    if split in ("eval", "all"):
        for seed in seeds:
            platform("eval", seed, size.platform_eval_series)
            for family, spec in FAMILIES.items():
                if spec.generate is None:
                    continue
                hourly = spec.hourly
                n = (size.hourly_cases if hourly else size.cases_per_family) * spec.weight
                points = size.hourly_points if hourly else size.daily_points
                chunk = 1 if hourly else 4
                for first in range(0, n, chunk):
                    indices = tuple(range(first, min(first + chunk, n)))
                    tasks.append(Task("eval", "family", seed, family, indices, points,
                                      cost=len(indices) * points * (4.0 if hourly else 1.0)))
        if nab_dir is not None:
            for resolution in ("hourly", "daily"):
                files = size.nab_files[resolution] if size.nab_files is not None else None
                for series in load_nab(nab_dir, files):
                    name = f"{series.category}/{series.file}"
                    # Points after aggregation (some series are hourly already).
                    points = (series.values.index[-1] - series.values.index[0]) / STEPS[resolution]
                    tasks.append(Task(f"nab {resolution}", "nab", 0, series.category, (), 0,
                                      str(nab_dir), (name,), cost=4.0 * points))
    return sorted(tasks, key=lambda t: -t.cost)


def _limit_threads() -> None:
    # Two worker processes on two cores: no extra BLAS/OpenMP threads inside each.
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass


def execute(tasks: list[Task], jobs: int = 1, progress=None) -> list[dict]:
    """Run the tasks (in `jobs` processes when > 1); per-case rows in task order."""
    rows: list[list[dict]] = [[] for _ in tasks]
    started = time.perf_counter()

    def report(done: int, task: Task) -> None:
        if progress is not None:
            what = f"{task.group} seed {task.seed}" if task.kind != "nab" else task.nab_files[0]
            print(f"  [{done}/{len(tasks)}] {task.section:<10} {what} "
                  f"({time.perf_counter() - started:.0f}s)", file=progress, flush=True)

    if jobs <= 1:
        for i, task in enumerate(tasks):
            rows[i] = run_task(task)
            report(i + 1, task)
    else:
        with ProcessPoolExecutor(max_workers=jobs, initializer=_limit_threads) as pool:
            futures = {pool.submit(run_task, task): i for i, task in enumerate(tasks)}
            for done, future in enumerate(as_completed(futures), 1):
                rows[futures[future]] = future.result()
                report(done, tasks[futures[future]])
    return [row for chunk in rows for row in chunk]


def summarise(counts: dict) -> dict:
    caught, incidents, false_alerts = counts["caught"], counts["incidents"], counts["false_alerts"]
    precision = caught / (caught + false_alerts) if caught + false_alerts else None
    recall = caught / incidents if incidents else None
    f1 = (2 * precision * recall / (precision + recall) if precision and recall else 0.0) if incidents else None
    per_1000 = 1000 * false_alerts / counts["clean_runs"] if counts["clean_runs"] else 0.0
    return {**counts, "precision": precision, "recall": recall, "f1": f1,
            "false_alerts_per_1000": per_1000}


def aggregate(rows: list[dict]) -> dict:
    """{section: {group: {method: summary}}} plus pooled groups and, for eval, pooled per seed."""
    totals: dict = {}

    def add(section: str, group: str, row: dict) -> None:
        for method in METHODS:
            slot = totals.setdefault(section, {}).setdefault(group, {}).setdefault(
                method, dict.fromkeys((*COUNTS, "seconds", "cases", "points"), 0))
            for key in COUNTS:
                slot[key] += row["scores"][method][key]
            slot["seconds"] += row["seconds"][method]
            slot["cases"] += 1
            slot["points"] += row["points"]

    for row in rows:
        add(row["section"], row["group"], row)
        if row["section"] in ("dev", "eval"):
            add(row["section"], SYNTHETIC_POOLED, row)
            if row["section"] == "eval":
                add("eval by seed", f"seed {row['seed']}", row)
        else:
            add(row["section"], NAB_POOLED, row)
    return {section: {group: {m: {**summarise(c), **{k: c[k] for k in ("seconds", "cases", "points")}}
                              for m, c in methods.items()}
                      for group, methods in groups.items()}
            for section, groups in totals.items()}


def not_ahead(summary: dict) -> list[str]:
    """Per family and source: each baseline whose F1 is at least ours (with no incidents:
    fewer false alerts than ours)."""
    lines = []
    for section in ("eval", "nab hourly", "nab daily"):
        for group, methods in summary.get(section, {}).items():
            ours = methods[OURS]
            for method in BASELINES:
                other = methods[method]
                if ours["f1"] is None:
                    if other["false_alerts"] < ours["false_alerts"]:
                        lines.append(f"{section} / {_title(group)} (no incidents): {SHORT[method]} "
                                     f"{other['false_alerts']} false alerts < ours {ours['false_alerts']}")
                elif other["f1"] >= ours["f1"]:
                    lines.append(f"{section} / {_title(group)}: {SHORT[method]} F1 {other['f1']:.3f} "
                                 f"≥ ours {ours['f1']:.3f}")
    return lines


def run_evaluation(split: str = "all", seeds: tuple[int, ...] = EVAL_SEEDS, quick: bool = False,
                   nab_dir: str | Path | None = None, jobs: int = 1, progress=None) -> dict:
    started = time.perf_counter()
    tasks = plan(split, seeds, quick, nab_dir)
    rows = execute(tasks, jobs, progress)
    return {
        "split": split,
        "dev_seed": DEV_SEED,
        "eval_seeds": list(seeds[:1] if quick else seeds),
        "quick": quick,
        "nab_dir": str(nab_dir) if nab_dir is not None else None,
        "jobs": jobs,
        "size": asdict(QUICK if quick else FULL),
        "clean_every": CLEAN_EVERY,
        "seconds": time.perf_counter() - started,
        "cpu_count": os.cpu_count(),
        "summary": aggregate(rows),
        "cases": rows,
    }


def _title(group: str) -> str:
    return FAMILIES[group].title if group in FAMILIES else group


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _table(groups: dict, order: list[str], label: str) -> list[str]:
    lines = [f"| {label} | method | incidents | caught | precision | recall | F1 | false alerts | "
             "clean points | false alerts / 1,000 clean |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for group in order:
        for method in METHODS:
            r = groups[group][method]
            name = f"**{SHORT[method]}**" if method == OURS else SHORT[method]
            lines.append(
                f"| {_title(group)} | {name} | {r['incidents']} | {r['caught']} | {_fmt(r['precision'])} | "
                f"{_fmt(r['recall'])} | {_fmt(r['f1'])} | {r['false_alerts']} | {r['clean_runs']:,} | "
                f"{r['false_alerts_per_1000']:.2f} |")
    return lines


def _ordered(groups: dict, pooled: str) -> list[str]:
    known = [g for g in FAMILIES if g in groups]
    rest = sorted(g for g in groups if g not in FAMILIES and g != pooled)
    return known + rest + ([pooled] if pooled in groups else [])


def command(results: dict) -> str:
    parts = ["data-platform bench anomaly"]
    if results["quick"]:
        parts.append("--quick")
    parts.append(f"--split {results['split']}")
    if results["split"] != "dev":
        parts.append("--seeds " + ",".join(str(s) for s in results["eval_seeds"]))
    if results["nab_dir"]:
        parts.append(f"--nab-dir {results['nab_dir']}")
    return " ".join(parts)


def render_markdown(results: dict) -> str:
    summary, size = results["summary"], results["size"]
    seeds = ", ".join(str(s) for s in results["eval_seeds"])
    lines = [
        f"### bench anomaly ({results['cpu_count']} cores, {results['jobs']} process(es), "
        f"{results['seconds']:.0f} s{', quick' if results['quick'] else ''})",
        "",
        f"Reproduce: `{command(results)}`",
        "",
        "Ours: `detect(history, current)` with the default config, walk-forward like the asset "
        "check (each point judged against the points before it, at most `lookback`, its own past "
        "flags fed back as `excluded`). Baselines on the same series in the same run. An incident "
        "is caught by a flag in its window; each run of consecutive flags on clean points is one "
        "false alert; precision = caught / (caught + false alerts). A change that stays is caught "
        "on its day or the next; the 7 points after the change are for adaptation (no catch, no "
        f"false alert). Every {results['clean_every']}th single-metric series is a clean variant.",
        "",
        f"Sizes: development {size['platform_dev_series']} platform assets x {size['platform_days']} days; "
        f"per evaluation seed {size['platform_eval_series']} platform assets x {size['platform_days']} days, "
        f"{size['cases_per_family']} series x {size['daily_points']} days per single-metric family "
        f"(level changes: twice as many, one change each) and {size['hourly_cases']} hourly series x "
        f"{size['hourly_points']} hours; daily series scored from point 21, hourly from point 168.",
        "",
    ]
    if "eval" in summary:
        pooled = summary["eval"][SYNTHETIC_POOLED]
        lines += [f"#### Headline: {SYNTHETIC_POOLED}, evaluation (seeds {seeds}; families never tuned on)", "",
                  *_table({SYNTHETIC_POOLED: pooled}, [SYNTHETIC_POOLED], "set"), ""]
        behind = not_ahead(summary)
        lines += ["#### Where we are not ahead (a baseline's F1 ≥ ours)", ""]
        lines += [f"- {line}" for line in behind] or ["- nowhere: ours has the best F1 on every family and source"]
        lines += ["", f"#### Evaluation per family (seeds {seeds})", "",
                  *_table(summary["eval"], _ordered(summary["eval"], SYNTHETIC_POOLED), "family"), ""]
        by_seed = summary.get("eval by seed", {})
        lines += ["#### Evaluation, synthetic families together, per seed (F1 / false alerts per 1,000)", "",
                  "| seed | " + " | ".join(SHORT[m] for m in METHODS) + " |",
                  "| --- |" + " ---: |" * len(METHODS)]
        for group in sorted(by_seed):
            cells = [f"{_fmt(by_seed[group][m]['f1'])} / {by_seed[group][m]['false_alerts_per_1000']:.2f}"
                     for m in METHODS]
            lines.append(f"| {group} | " + " | ".join(cells) + " |")
        lines.append("")
    if "dev" in summary:
        lines += [f"#### Development set (platform metrics, seed {results['dev_seed']}: the only data "
                  "thresholds may be chosen on; not a result)", "",
                  *_table(summary["dev"], ["platform_metrics"], "family"), ""]
    for resolution in ("hourly", "daily"):
        section = f"nab {resolution}"
        if section in summary:
            groups = summary[section]
            n = groups[NAB_POOLED][OURS]["cases"]
            lines += [f"#### Real series: NAB dev, {resolution} points ({n} series with points after "
                      "probation; mean of each bucket, NAB windows as incidents, first 15 % (≥ 21 "
                      "points) not scored)", "",
                      *_table(groups, _ordered(groups, NAB_POOLED), "source"), ""]
    if results["split"] != "dev" and not results["nab_dir"]:
        lines += ["Real series (NAB) skipped: no NAB folder (`--nab-dir`, "
                  "$DATA_PLATFORM_REAL_DATA/nab_dev or ../shared/data/nab_dev).", ""]
    parts = [(g[OURS]["seconds"], g[OURS]["points"]) for s, gs in summary.items() if s != "eval by seed"
             for name, g in gs.items() if name not in (SYNTHETIC_POOLED, NAB_POOLED)]
    seconds, points = sum(p[0] for p in parts), sum(p[1] for p in parts)
    lines.append(f"Our detector's CPU time: {seconds:.0f} s for {points:,} walk-forward verdicts "
                 f"({1000 * seconds / max(points, 1):.1f} ms each); the baselines' is negligible.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    quick = "--quick" in (sys.argv[1:] if argv is None else argv)
    print(render_markdown(run_evaluation(quick=quick, progress=sys.stderr)))
