"""The README's example of `build_anomaly_checks` on a user's own asset works as written."""

import dagster as dg
import pandas as pd

from data_platform.checks import build_anomaly_checks

VOLUMES = {f"2025-01-{day:02d}": 1000 + (day % 3) * 10 for day in range(1, 16)}
VOLUMES["2025-01-16"] = 120  # the incident


def load_signups(partition_key: str) -> pd.DataFrame:
    n = VOLUMES[partition_key]
    return pd.DataFrame({"email": ["a@example.org"] * (n - n // 50) + [None] * (n // 50)})


@dg.asset(partitions_def=dg.DailyPartitionsDefinition(start_date="2025-01-01", end_date="2025-01-17"))
def signups(context) -> dg.MaterializeResult:
    frame = load_signups(context.partition_key)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(frame),
            "null_fraction/email": float(frame.email.isna().mean()),
        }
    )


def test_readme_example_flags_the_drop_and_only_the_drop():
    checks = build_anomaly_checks([signups])
    verdicts = {}
    with dg.instance_for_test() as instance:
        for key in VOLUMES:
            result = dg.materialize(
                [signups, *checks], partition_key=key, instance=instance, raise_on_error=False
            )
            (evaluation,) = result.get_asset_check_evaluations()
            verdicts[key] = evaluation.passed
    assert verdicts["2025-01-16"] is False
    assert all(passed for key, passed in verdicts.items() if key != "2025-01-16")
