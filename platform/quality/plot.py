"""Small PNG charts of one metric's history, its expected band and the judged point.

They are stored in check results as data URIs (markdown images under their own metadata keys),
so they stay small (about 15-35 KB):
wide enough to read in the check panel, low dpi, few colours, no fonts beyond the defaults.
Pure: matplotlib with the Agg backend only.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# An 8 x 3 inch figure at 90 dpi is 720 x 270 px: at 576 px with 6-point labels the panel
# showed an unreadable strip. Size is set by pixels and colours, not dpi alone; see
# docs/checks.md for the measured PNG sizes.
FIGSIZE = (8.0, 3.0)
DPI = 90
FONT_SIZE = 9


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
    # Imported here: matplotlib costs about a second, and only a failing or explained check draws.
    # Figure() rather than pyplot: no global figure registry to leak in a long-running process.
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    ax = fig.add_subplot()
    xs = list(range(n))
    if n:
        ax.plot(xs, values, color="#4a6fa5", linewidth=1.2, marker=".", markersize=4)
    skip = [i for i in excluded if 0 <= i < n and not math.isnan(values[i])]
    if skip:
        ax.scatter(skip, [values[i] for i in skip], facecolors="white", edgecolors="#555555", s=30,
                   zorder=3, label="excluded from the baseline")
    if lower is not None and upper is not None and math.isfinite(lower) and math.isfinite(upper):
        ax.axhspan(lower, upper, color="#8fd19e", alpha=0.35, linewidth=0)
    if expected is not None and math.isfinite(expected):
        ax.axhline(expected, color="#2e8b57", linewidth=0.8, linestyle="--")
    if observed is not None and math.isfinite(observed):
        ax.scatter([n], [observed], color="#d62728" if flagged else "#2e8b57", s=60, zorder=4,
                   label="this run")
    ax.set_xlim(-0.5, n + 0.5)
    ax.tick_params(labelsize=FONT_SIZE, length=3)
    ax.locator_params(axis="y", nbins=5)
    ax.yaxis.set_major_formatter(FuncFormatter(_tick))
    ax.set_xticks([])
    ax.set_xlabel(f"last {n} runs, oldest first; band = normal range", fontsize=FONT_SIZE - 1,
                  color="#555555", labelpad=2)
    ax.grid(axis="y", color="#e5e5e5", linewidth=0.6)
    if skip or (observed is not None and math.isfinite(observed)):
        ax.legend(loc="upper left", fontsize=FONT_SIZE - 1, frameon=False, handletextpad=0.2)
    if title:
        ax.set_title(title, fontsize=FONT_SIZE + 1)
    # Fixed margins: tight_layout would measure every label and double the drawing time.
    fig.subplots_adjust(left=0.1, right=0.985, top=0.89 if title else 0.97, bottom=0.1)
    return _png(fig)


def plot_residuals_png(residuals: dict[str, float], moved: Sequence[str] = (), title: str = "") -> bytes:
    """PNG bars: each metric's forecast residual this run, in robust sigmas (the joint tests'
    input). The metrics the joint test names are red; the +/-2 sigma lines show that none of
    them is far out alone."""
    from matplotlib.figure import Figure

    items = list(residuals.items())[:12]
    fig = Figure(figsize=(FIGSIZE[0], max(1.6, 0.32 * len(items) + 0.8)), dpi=DPI)
    ax = fig.add_subplot()
    names = [n for n, _ in items][::-1]
    values = [v for _, v in items][::-1]
    colours = ["#d62728" if n in moved else "#7f7f7f" for n in names]
    ax.barh(range(len(names)), values, color=colours, height=0.6)
    ax.set_yticks(range(len(names)), names, fontsize=FONT_SIZE - 1)
    for edge in (-2, 2):
        ax.axvline(edge, color="#999999", linewidth=0.7, linestyle=":")
    ax.axvline(0, color="#333333", linewidth=0.6)
    limit = max(3.0, *(abs(v) for v in values)) * 1.1 if values else 3.0
    ax.set_xlim(-limit, limit)
    ax.tick_params(labelsize=FONT_SIZE, length=3)
    ax.set_xlabel("this run's residual after each metric's forecast (robust σ)", fontsize=FONT_SIZE - 1,
                  color="#555555", labelpad=2)
    if title:
        ax.set_title(title, fontsize=FONT_SIZE + 1)
    fig.subplots_adjust(left=0.3, right=0.985, top=0.85 if title else 0.95, bottom=0.22)
    return _png(fig)


def _png(fig: Figure) -> bytes:
    """PNG with a 64-colour palette: a chart has few colours, and a data URI pays for every byte
    (about a third of the full-colour size; the lines stay anti-aliased)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    image = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).convert("RGB")
    buffer = io.BytesIO()
    image.quantize(colors=64, method=Image.Quantize.MAXCOVERAGE).save(buffer, format="png")
    return buffer.getvalue()


def _tick(value: float, _position: float) -> str:
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
        return f"{value:.2g}"
    return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
