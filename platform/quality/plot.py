"""Small PNG charts of one metric's history, its expected band and the judged point.

They are embedded in check descriptions as data URIs, so they stay tiny (a few KB): small
figure, low dpi, no fonts beyond the defaults. Pure: matplotlib with the Agg backend only.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg", force=False)
from matplotlib.figure import Figure  # noqa: E402

# A 6.4 x 2.4 inch figure at 90 dpi is ~580 x 220 px: labels legible in the check panel and in
# alert emails, still ~20-30 KB.
FIGSIZE = (6.4, 2.4)
DPI = 90


def plot_metric_png(
    history: Sequence[float],
    *,
    observed: float | None,
    expected: float | None = None,
    lower: float | None = None,
    upper: float | None = None,
    flagged: bool = False,
    title: str = "",
    excluded: Sequence[int] = (),
) -> bytes:
    """PNG bytes: history as a line, the expected band as a shaded strip, the point as a dot.

    `excluded` are positions in `history` left out of the baseline (past anomalies, expected
    events); they are drawn hollow so the reader sees why the band ignores them.
    """
    values = [float(v) if v is not None and math.isfinite(float(v)) else math.nan for v in history]
    n = len(values)
    # Figure() rather than pyplot: no global figure registry to leak in a long-running process.
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    ax = fig.add_subplot()
    xs = list(range(n))
    if n:
        ax.plot(xs, values, color="#4a6fa5", linewidth=1.0, marker=".", markersize=3)
    skip = [i for i in excluded if 0 <= i < n and not math.isnan(values[i])]
    if skip:
        ax.scatter(skip, [values[i] for i in skip], facecolors="none", edgecolors="#888888", s=18)
    if lower is not None and upper is not None and math.isfinite(lower) and math.isfinite(upper):
        ax.axhspan(lower, upper, color="#8fd19e", alpha=0.35, linewidth=0)
    if expected is not None and math.isfinite(expected):
        ax.axhline(expected, color="#2e8b57", linewidth=0.8, linestyle="--")
    if observed is not None and math.isfinite(observed):
        ax.scatter([n], [observed], color="#d62728" if flagged else "#2e8b57", s=30, zorder=3)
    ax.set_xlim(-0.5, n + 0.5)
    ax.tick_params(labelsize=6, length=2)
    ax.locator_params(axis="y", nbins=4)
    ax.set_xticks([])
    if title:
        ax.set_title(title, fontsize=7)
    # Fixed margins: tight_layout would measure every label and double the drawing time.
    fig.subplots_adjust(left=0.13, right=0.98, top=0.86 if title else 0.96, bottom=0.06)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
