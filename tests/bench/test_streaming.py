"""bench streaming on a NAB-shaped folder made here: splits, scores and the CLI's JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from data_platform.bench import streaming as streaming_bench
from data_platform.cli import main


def make_nab_folder(root, names):
    windows = {}
    rng = np.random.default_rng(0)
    for k, name in enumerate(names):
        stamps = pd.date_range("2024-01-01", periods=2016, freq="5min")
        values = 50 + 10 * np.sin(2 * np.pi * np.asarray(stamps.hour) / 24) + rng.normal(0, 1, len(stamps))
        values[1500:1600] += 25 + 5 * k
        path = root / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"), "value": values}).to_csv(path, index=False)
        windows[name] = [[str(stamps[1450]), str(stamps[1650])]]
    (root / "combined_windows.json").write_text(json.dumps(windows))


def test_split_alternates_by_sorted_name():
    split = streaming_bench.split_names(["b/x.csv", "a/y.csv", "c/z.csv", "a/a.csv"])
    assert split == {"a/a.csv": "dev", "a/y.csv": "eval", "b/x.csv": "dev", "c/z.csv": "eval"}


def test_rolling_z_flags_a_jump():
    values = np.r_[np.random.default_rng(1).normal(0, 1, 400), [30.0], np.zeros(10)]
    assert 400 in streaming_bench.rolling_z_alerts(values, window=100).tolist()


def test_bench_streaming_cli_scores_both_halves(tmp_path, capsys):
    names = ["catA/one.csv", "catA/two.csv", "catB/three.csv", "catB/four.csv"]
    make_nab_folder(tmp_path / "nab", names)
    out = tmp_path / "result.json"
    assert main(["bench", "streaming", "--nab-dir", str(tmp_path / "nab"), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "#### dev (2 series)" in printed and "#### eval (2 series)" in printed
    results = json.loads(out.read_text())
    ours = next(v for k, v in results["splits"]["all"].items() if k.startswith("stream detector, default"))
    assert ours["windows"] == 4 and ours["detected"] == 4
    assert ours["nab standard"] > 50
    assert results["throughput"]["points"] == 4 * 2016


def test_bench_streaming_refuses_a_folder_without_windows(tmp_path):
    assert main(["bench", "streaming", "--nab-dir", str(tmp_path)]) == 2
