"""A/B experiments: deterministic assignment and conversion analysis.

Per experiment, the control is `config.control` if present, else the alphabetically first
variant; every other variant is compared with it:

- lift: absolute difference in conversion rate (treatment - control), Wald CI;
  relative_lift: treatment / control - 1, CI from the log risk ratio;
  p_value: two-sided two-proportion z-test (pooled variance).
- power: the chance of detecting a relative lift of `config.target_relative_lift` at the
  experiment's sample sizes; mde: the smallest absolute lift detectable with `config.power` (both
  from statsmodels' NormalIndPower on Cohen's h). Power of the *observed* lift is not reported:
  it is a restatement of the p-value.
- srm_pvalue: chi-square test of the observed variant counts against the intended weights
  (sample-ratio mismatch: a small value means assignment or logging is broken, and no lift from
  that experiment should be trusted).

A user is counted once per experiment; a user logged in two variants of the same experiment is
excluded from it and counted in `n_conflicting_users`.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_effectsize,
    proportions_ztest,
)

REQUIRED_COLUMNS = ("experiment_id", "user_id", "variant", "converted")


@dataclass(frozen=True)
class ExperimentConfig:
    alpha: float = 0.05
    power: float = 0.8
    target_relative_lift: float = 0.10
    control: str | None = None
    # Intended traffic split per variant (in sorted variant order); None means equal.
    weights: tuple[float, ...] | None = None
    # Experiment reported in the metrics; None means the one with the most users.
    experiment_id: str | None = None


def assign_variant(experiment_id, user_id, variants=("A", "B"), weights=None) -> str:
    """The same user always gets the same variant of an experiment, on every machine."""
    if not variants:
        raise ValueError("variants must not be empty")
    w = np.ones(len(variants)) if weights is None else np.asarray(weights, dtype=float)
    if len(w) != len(variants) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights {weights!r} do not match variants {variants!r}")
    digest = hashlib.sha256(f"{experiment_id}\x1f{user_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    edges = np.cumsum(w) / w.sum()
    return variants[int(min(np.searchsorted(edges, u, side="right"), len(variants) - 1))]


class ExperimentAnalysis:
    """Result table per experiment and variant (`.results`), plus per-experiment lookups."""

    def __init__(self, results: pd.DataFrame):
        self.results = results

    def experiment(self, experiment_id) -> pd.DataFrame:
        return self.results[self.results["experiment_id"] == str(experiment_id)].reset_index(
            drop=True
        )


def analyze(events: pd.DataFrame, config: ExperimentConfig | None = None) -> pd.DataFrame:
    cfg = config or ExperimentConfig()
    df, conflicts = prepare_events(events)
    rows = []
    for exp_id, exp in df.groupby("experiment_id", sort=True):
        rows.extend(analyze_experiment(str(exp_id), exp, conflicts.get(exp_id, 0), cfg))
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


RESULT_COLUMNS = [
    "experiment_id",
    "variant",
    "is_control",
    "n_users",
    "conversions",
    "conversion_rate",
    "revenue_per_user",
    "lift",
    "lift_ci_low",
    "lift_ci_high",
    "relative_lift",
    "relative_lift_ci_low",
    "relative_lift_ci_high",
    "p_value",
    "power",
    "mde",
    "srm_pvalue",
    "n_conflicting_users",
]


def analyze_experiment(exp_id: str, exp: pd.DataFrame, conflicts: int, cfg) -> list[dict]:
    per = exp.groupby("variant", sort=True).agg(
        n_users=("user_id", "size"),
        conversions=("converted", "sum"),
        revenue=("revenue", "sum"),
    )
    variants = list(per.index)
    control = cfg.control if cfg.control in variants else variants[0]
    srm = srm_pvalue(per["n_users"].to_numpy(), cfg.weights)
    n_a, c_a = int(per.loc[control, "n_users"]), int(per.loc[control, "conversions"])
    rows = []
    for v in variants:
        n_b, c_b = int(per.loc[v, "n_users"]), int(per.loc[v, "conversions"])
        row = {
            "experiment_id": exp_id,
            "variant": str(v),
            "is_control": v == control,
            "n_users": n_b,
            "conversions": c_b,
            "conversion_rate": c_b / n_b,
            "revenue_per_user": float(per.loc[v, "revenue"]) / n_b,
            "srm_pvalue": srm,
            "n_conflicting_users": int(conflicts),
        }
        row.update(compare(c_a, n_a, c_b, n_b, cfg) if v != control else {})
        rows.append(row)
    return rows


def compare(c_a: int, n_a: int, c_b: int, n_b: int, cfg: ExperimentConfig) -> dict[str, float]:
    p_a, p_b = c_a / n_a, c_b / n_b
    out = {"lift": p_b - p_a, "relative_lift": p_b / p_a - 1.0 if p_a > 0 else math.nan}
    if 0 < c_a + c_b < n_a + n_b:
        _, p_value = proportions_ztest([c_b, c_a], [n_b, n_a])
        out["p_value"] = float(p_value)
    else:
        # Nobody (or everybody) converted in either arm: there is no evidence of a difference.
        out["p_value"] = 1.0
    low, high = confint_proportions_2indep(
        c_b, n_b, c_a, n_a, compare="diff", method="wald", alpha=cfg.alpha
    )
    out["lift_ci_low"], out["lift_ci_high"] = float(low), float(high)
    if c_a > 0 and c_b > 0:
        low, high = confint_proportions_2indep(
            c_b, n_b, c_a, n_a, compare="ratio", method="log", alpha=cfg.alpha
        )
        out["relative_lift_ci_low"], out["relative_lift_ci_high"] = float(low) - 1, float(high) - 1
    else:
        out["relative_lift_ci_low"] = out["relative_lift_ci_high"] = math.nan
    out["power"], out["mde"] = power_and_mde(p_a, n_a, n_b, cfg)
    return out


def power_and_mde(p_a: float, n_a: int, n_b: int, cfg: ExperimentConfig) -> tuple[float, float]:
    if not 0 < p_a < 1 or n_a < 2 or n_b < 2:
        return math.nan, math.nan
    analysis = NormalIndPower()
    ratio = n_b / n_a
    target = min(p_a * (1 + cfg.target_relative_lift), 1 - 1e-9)
    h = abs(proportion_effectsize(target, p_a))
    power = analysis.solve_power(effect_size=h, nobs1=n_a, alpha=cfg.alpha, ratio=ratio)
    h_min = analysis.solve_power(nobs1=n_a, alpha=cfg.alpha, power=cfg.power, ratio=ratio)
    # Cohen's h = 2 asin(sqrt(p_b)) - 2 asin(sqrt(p_a)), solved for p_b.
    angle = min(math.asin(math.sqrt(p_a)) + float(h_min) / 2, math.pi / 2)
    return float(power), float(math.sin(angle) ** 2 - p_a)


def srm_pvalue(counts, weights=None) -> float:
    """Chi-square p-value of observed variant counts against the intended split."""
    counts = np.asarray(counts, dtype=float)
    if len(counts) < 2 or counts.sum() == 0:
        return math.nan
    w = np.ones(len(counts)) if weights is None else np.asarray(weights, dtype=float)
    if len(w) != len(counts):
        raise ValueError(f"{len(w)} weights for {len(counts)} variants")
    expected = counts.sum() * w / w.sum()
    return float(stats.chisquare(counts, expected).pvalue)


def prepare_events(events: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    missing = [c for c in REQUIRED_COLUMNS if c not in events.columns]
    if missing:
        raise ValueError(f"experiment events: missing column(s) {missing}")
    df = pd.DataFrame(
        {
            "experiment_id": events["experiment_id"].astype("string"),
            "user_id": events["user_id"].astype("string"),
            "variant": events["variant"].astype("string"),
            "converted": events["converted"].astype("boolean"),
            "revenue": pd.to_numeric(events["revenue"], errors="coerce").astype(float)
            if "revenue" in events.columns
            else 0.0,
        }
    ).dropna(subset=list(REQUIRED_COLUMNS))
    df["revenue"] = df["revenue"].fillna(0.0)
    # Repeated exposures of one user in one variant are one user; converted if any converted.
    per_user = df.groupby(["experiment_id", "user_id", "variant"], as_index=False).agg(
        converted=("converted", "max"), revenue=("revenue", "sum")
    )
    n_variants = per_user.groupby(["experiment_id", "user_id"])["variant"].transform("size")
    conflicted = per_user[n_variants > 1]
    conflicts = conflicted.groupby("experiment_id")["user_id"].nunique().to_dict()
    clean = per_user[n_variants == 1].copy()
    clean["converted"] = clean["converted"].astype(bool).astype(int)
    return clean.reset_index(drop=True), conflicts


def train_and_evaluate(
    data: pd.DataFrame, config: ExperimentConfig | None = None
) -> tuple[ExperimentAnalysis, dict[str, float]]:
    """Analyse every experiment; metrics describe one (config.experiment_id or the largest)."""
    cfg = config or ExperimentConfig()
    results = analyze(data, cfg)
    if results.empty:
        raise ValueError("experiment events: no complete event rows to analyse")
    sizes = results.groupby("experiment_id")["n_users"].sum()
    chosen = cfg.experiment_id if cfg.experiment_id is not None else str(sizes.idxmax())
    exp = results[results["experiment_id"] == chosen]
    if exp.empty:
        raise ValueError(f"experiment events: no experiment {chosen!r}")
    a = exp[exp["is_control"]].iloc[0]
    treated = exp[~exp["is_control"]]
    metrics = {
        "conversion_a": float(a["conversion_rate"]),
        "n_a": float(a["n_users"]),
        "srm_pvalue": float(a["srm_pvalue"]),
        "n_experiments": float(results["experiment_id"].nunique()),
        "n_variants": float(len(exp)),
    }
    if not treated.empty:
        b = treated.iloc[0]
        metrics.update(
            {
                "conversion_b": float(b["conversion_rate"]),
                "n_b": float(b["n_users"]),
                **{
                    k: float(b[k])
                    for k in (
                        "lift",
                        "lift_ci_low",
                        "lift_ci_high",
                        "relative_lift",
                        "relative_lift_ci_low",
                        "relative_lift_ci_high",
                        "p_value",
                        "power",
                        "mde",
                    )
                },
            }
        )
    return ExperimentAnalysis(results), metrics
