"""Ablation of the joint detectors on the joint-incident families (evaluation seeds only).

Each configuration runs walk-forward over the same cases (`families`: broken
correlations, mix shifts, stuck upstream, and one single-metric-incident family as a control of
false alerts), so every method alone and each combination is compared on identical data, with
its CPU time per check. `data-platform bench joint [--seeds 1,2] [--cases 4]`.
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor

from data_platform.bench.anomaly import elementary_flags, score_flags, walk_forward
from data_platform.bench.anomaly_eval import DEV_SEED, summarise
from data_platform.bench.families import generate_case
from data_platform.quality.anomaly import AnomalyConfig

FAMILIES = ("correlation_breaks", "mix_shifts", "stuck_upstream")
CONFIGS: dict[str, AnomalyConfig | None] = {
    "univariate only": AnomalyConfig(joint_tests=(), multivariate=False),
    "univariate + IForest/LOF on values (the old default)": AnomalyConfig(joint_tests=(), multivariate=True),
    "IForest alone (values)": AnomalyConfig(univariate=False, joint_tests=(), multivariate=True,
                                            multivariate_alerts="iforest"),
    "LOF alone (values)": AnomalyConfig(univariate=False, joint_tests=(), multivariate=True,
                                        multivariate_alerts="lof"),
    "pairs alone": AnomalyConfig(multivariate=False, joint_tests=("pairs",)),
    "shift alone": AnomalyConfig(multivariate=False, joint_tests=("shift",)),
    "stuck alone": AnomalyConfig(multivariate=False, joint_tests=("stuck",)),
    "default: univariate + joint tests": AnomalyConfig(),
    "univariate + joint + IForest/LOF": AnomalyConfig(multivariate=True),
    "baseline: Elementary-style z": None,
}
COUNTS = ("incidents", "caught", "false_alerts", "clean_runs")


def joint_only_flags(data, config: AnomalyConfig):
    """Walk-forward flags of the joint tests alone (the univariate bands still deseason and
    prepare each metric, but their own flags are ignored, also for exclusions)."""
    import numpy as np

    from data_platform.quality.anomaly import detect

    flags = np.zeros(len(data), dtype=bool)
    for t in range(1, len(data)):
        first = max(0, t - config.lookback)
        verdict = detect(data.iloc[first:t], data.iloc[t], config, excluded=flags[first:t])
        flags[t] = verdict.joint is not None and verdict.joint.flagged
    return flags


def _run(args: tuple[str, int, int]) -> list[dict]:
    family, seed, index = args
    case = generate_case(family, seed, index)
    rows = []
    for name, cfg in CONFIGS.items():
        started = time.process_time()
        if cfg is None:
            flags = elementary_flags(case.data)
        elif name.endswith("alone") and cfg.joint_tests:
            flags = joint_only_flags(case.data, cfg)
        else:
            flags = walk_forward(case.data, cfg)
        seconds = time.process_time() - started
        score = score_flags(flags, case.incidents, case.start)
        rows.append({"family": family, "config": name, "seconds": seconds, "checks": len(case.data),
                     **{k: score[k] for k in COUNTS}})
    return rows


def run(seeds: tuple[int, ...] = (1, 2), cases: int = 4, jobs: int = 1) -> dict:
    if DEV_SEED in seeds:
        raise ValueError(f"the ablation reports evaluation seeds only, not the development seed {DEV_SEED}")
    work = [(f, s, i) for f in FAMILIES for s in seeds for i in range(cases)]
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            results = [r for rows in pool.map(_run, work) for r in rows]
    else:
        results = [r for args in work for r in _run(args)]
    table: dict = {}
    for row in results:
        for group in (row["family"], "joint families together"):
            slot = table.setdefault(group, {}).setdefault(
                row["config"], dict.fromkeys((*COUNTS, "seconds", "checks"), 0))
            for key in (*COUNTS, "seconds", "checks"):
                slot[key] += row[key]
    return {"seeds": list(seeds), "cases": cases, "table": table}


def render(result: dict) -> str:
    lines = [f"Seeds {', '.join(map(str, result['seeds']))}; {result['cases']} cases per family and seed "
             f"(every 4th clean).", "",
             "| family | method | recall | false alerts / 1,000 clean | F1 | ms per check |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for family, configs in result["table"].items():
        for name, c in configs.items():
            s = summarise({**c})
            recall = "–" if s["recall"] is None else f"{s['recall']:.2f}"
            f1 = "–" if s["f1"] is None else f"{s['f1']:.2f}"
            ms = 1000 * c["seconds"] / max(c["checks"], 1)
            lines.append(f"| {family} | {name} | {recall} | {s['false_alerts_per_1000']:.2f} | {f1} | {ms:.1f} |")
    return "\n".join(lines)


def main(seeds: tuple[int, ...] | None, cases: int | None, quick: bool, jobs: int | None) -> int:
    seeds = tuple(seeds or ((1,) if quick else (1, 2)))
    result = run(seeds, cases or (1 if quick else 4), max(1, jobs or 1))
    print(f"### bench joint: the joint detectors' ablation\n\n{render(result)}")
    return 0
