import numpy as np
import pandas as pd
import pytest

from data_platform.ml import experiments as ex


def make_events(n=20000, p_a=0.10, p_b=0.12, share_b=0.5, seed=0, exp_id="exp1"):
    rng = np.random.default_rng(seed)
    variant = np.where(rng.random(n) < share_b, "B", "A")
    p = np.where(variant == "B", p_b, p_a)
    converted = rng.random(n) < p
    return pd.DataFrame(
        {
            "experiment_id": exp_id,
            "user_id": [f"u{i}" for i in range(n)],
            "variant": variant,
            "exposed_at": pd.Timestamp("2024-01-01"),
            "converted": converted,
            "revenue": np.where(converted, 20.0, 0.0),
        }
    )


def test_assign_variant_is_deterministic_and_follows_weights():
    first = [ex.assign_variant("e1", f"user{i}") for i in range(4000)]
    again = [ex.assign_variant("e1", f"user{i}") for i in range(4000)]
    assert first == again
    assert abs(first.count("A") / 4000 - 0.5) < 0.03
    weighted = [
        ex.assign_variant("e2", f"user{i}", ("A", "B", "C"), (0.8, 0.1, 0.1)) for i in range(4000)
    ]
    assert abs(weighted.count("A") / 4000 - 0.8) < 0.03
    # Another experiment reshuffles users independently of the first.
    other = [ex.assign_variant("e3", f"user{i}") for i in range(4000)]
    assert 0.4 < np.mean([x == y for x, y in zip(first, other, strict=False)]) < 0.6
    with pytest.raises(ValueError):
        ex.assign_variant("e1", "u", ("A", "B"), (1.0,))


def test_true_lift_is_inside_the_confidence_interval_over_seeds():
    covered = 0
    for seed in range(20):
        _, m = ex.train_and_evaluate(make_events(seed=seed))
        covered += m["lift_ci_low"] <= 0.02 <= m["lift_ci_high"]
        assert m["lift_ci_low"] < m["lift"] < m["lift_ci_high"]
        assert m["relative_lift_ci_low"] < m["relative_lift"] < m["relative_lift_ci_high"]
    # A 95% interval misses about one time in twenty.
    assert covered >= 17


def test_metrics_detect_a_real_effect_and_its_power():
    _, m = ex.train_and_evaluate(make_events(n=40000, seed=1))
    assert m["p_value"] < 0.001
    assert m["conversion_b"] > m["conversion_a"]
    assert m["srm_pvalue"] > 0.001
    assert 0 < m["mde"] < 0.02
    assert 0.5 < m["power"] <= 1.0
    assert set(m) >= {
        "conversion_a",
        "conversion_b",
        "lift",
        "lift_ci_low",
        "lift_ci_high",
        "p_value",
        "power",
        "mde",
        "srm_pvalue",
        "n_a",
        "n_b",
    }
    assert all(isinstance(v, float) for v in m.values())


def test_no_effect_gives_no_significance_and_sample_ratio_mismatch_is_detected():
    _, m = ex.train_and_evaluate(make_events(p_b=0.10, seed=3))
    assert m["p_value"] > 0.01
    _, skewed = ex.train_and_evaluate(make_events(share_b=0.55, seed=4))
    assert skewed["srm_pvalue"] < 1e-6
    assert ex.srm_pvalue([5000, 5000]) == pytest.approx(1.0)


def test_results_table_per_experiment_and_user_conflicts():
    events = pd.concat([make_events(n=3000, exp_id="e1"), make_events(n=5000, seed=7, exp_id="e2")])
    # The same user logged in both variants of e1 cannot be attributed to either.
    events = pd.concat(
        [events, events.iloc[[0]].assign(variant=lambda d: np.where(d["variant"] == "A", "B", "A"))]
    )
    model, m = ex.train_and_evaluate(events)
    table = model.results
    assert set(table["experiment_id"]) == {"e1", "e2"}
    assert len(model.experiment("e1")) == 2
    assert m["n_a"] + m["n_b"] == 5000  # the largest experiment is the one reported
    assert int(model.experiment("e1")["n_conflicting_users"].iloc[0]) == 1
    assert model.experiment("e1")["n_users"].sum() == 2999
    with pytest.raises(ValueError, match="missing column"):
        ex.train_and_evaluate(events.drop(columns=["variant"]))
