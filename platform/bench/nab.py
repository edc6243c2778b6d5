"""Numenta Anomaly Benchmark (NAB) series as batch-check histories: hourly or daily points.

A NAB folder holds `data/<category>/<file>.csv` (timestamp,value, one value every 5 minutes)
and `combined_windows.json` ("category/file.csv" -> [[start, end], ...] labelled anomaly
windows). A series is aggregated to the mean of each hour (or day); buckets without a value are
no point. A window is kept in the aggregated time: a point is inside it when its bucket
[t, t + step) overlaps the window; windows that meet the same points merge into one incident.
NAB's probationary period (here the first 15 % of the aggregated points, at least 21) is not
scored. The data is read where it lies: it is never copied into the repository.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from data_platform.bench.anomaly import Incident
from data_platform.bench.families import Case

REAL_DATA_ENV = "DATA_PLATFORM_REAL_DATA"
PROBATION_SHARE = 0.15
PROBATION_MIN = 21
STEPS = {"hourly": pd.Timedelta(hours=1), "daily": pd.Timedelta(days=1)}
# The quick run: the shortest hourly series and one series long enough for daily points.
QUICK_NAB_FILES = {
    "hourly": ("realAWSCloudwatch/iio_us-east-1_i-a2eb1cd9_NetworkIn.csv",),
    "daily": ("realAdExchange/exchange-2_cpm_results.csv",),
}


@dataclass
class NabSeries:
    category: str
    file: str
    values: pd.Series  # 5-minute values on a DatetimeIndex
    windows: list[tuple[pd.Timestamp, pd.Timestamp]]


def default_nab_dir(repo_root: Path | None = None) -> Path | None:
    """$DATA_PLATFORM_REAL_DATA/nab_dev, else ../shared/data/nab_dev beside the repository
    (this checkout's root, or the working directory); None when neither holds NAB."""
    env = os.environ.get(REAL_DATA_ENV)
    candidates = [Path(env) / "nab_dev"] if env else []
    roots = [repo_root] if repo_root else [Path(__file__).resolve().parents[2], Path.cwd()]
    candidates += [root.parent / "shared" / "data" / "nab_dev" for root in roots]
    return next((c for c in candidates if (c / "combined_windows.json").is_file()), None)


def load_nab(root: Path | str, files: tuple[str, ...] | list[str] | None = None) -> list[NabSeries]:
    """Every series listed in `combined_windows.json` (or only `files`), in sorted order."""
    root = Path(root)
    windows_path = root / "combined_windows.json"
    if not windows_path.is_file():
        raise FileNotFoundError(f"{windows_path}: no NAB combined_windows.json in {root}")
    all_windows = json.loads(windows_path.read_text())
    out = []
    for name in sorted(files if files is not None else all_windows):
        path = root / "data" / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: listed in {windows_path.name} but missing")
        frame = pd.read_csv(path)
        if list(frame.columns[:2]) != ["timestamp", "value"]:
            raise ValueError(f"{path}: expected columns timestamp,value, got {list(frame.columns)}")
        values = pd.Series(frame["value"].to_numpy(dtype=float),
                           index=pd.DatetimeIndex(pd.to_datetime(frame["timestamp"])), name="value")
        windows = [(pd.Timestamp(a), pd.Timestamp(b)) for a, b in all_windows.get(name, [])]
        category, _, file = name.partition("/")
        out.append(NabSeries(category, file, values.sort_index(), windows))
    return out


def probation(points: int) -> int:
    """First scored point: NAB's probationary period, 15 % of the points, at least 21."""
    return max(PROBATION_MIN, math.ceil(PROBATION_SHARE * points))


def aggregate(series: NabSeries, resolution: str) -> Case:
    """Mean per hour or day; windows become incidents over the points whose bucket they touch."""
    step = STEPS[resolution]
    means = series.values.resample(step).mean().dropna()
    buckets = means.index
    incidents: list[Incident] = []
    for start, end in series.windows:
        inside = np.flatnonzero((buckets <= end) & (buckets + step > start))
        if not inside.size:
            continue
        first, last = int(inside[0]), int(inside[-1])
        if incidents and first <= incidents[-1].end:
            incidents[-1].end = max(incidents[-1].end, last)
        else:
            incidents.append(Incident("nab_window", "value", first, last))
    data = pd.DataFrame({"value": means.to_numpy()}, index=buckets)
    return Case(series.category, f"{series.category}/{series.file}", data, incidents,
                probation(len(data)))


def nab_cases(root: Path | str, resolution: str, files: tuple[str, ...] | list[str] | None = None) -> list[Case]:
    """Aggregated cases of every series that has points after its probation."""
    cases = [aggregate(s, resolution) for s in load_nab(root, files)]
    return [c for c in cases if c.start < len(c.data)]
