"""What every report figure shares: a distinct look per series (colour, marker and line style,
so no two series look alike in colour or in grey), titles wrapped to the figure, a mark on figures
of synthetic data, and saving as PNG with a PDF beside it (vector, for papers). Figures use
matplotlib's object API (no pyplot state, no display) and its constrained layout, which keeps
every label inside the figure."""

from __future__ import annotations

import textwrap
from pathlib import Path

from matplotlib.figure import Figure

from ..atomic import write_whole

DPI = 120
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")  # matplotlib's tab10
MARKERS = ("o", "s", "^", "D", "v", "P", "X")  # 7: coprime with the 10 colours
LINESTYLES = ("-", "--", "-.", ":")
SYNTHETIC_MARK = "synthetic data: these numbers say nothing about a real dataset or model"


def series_style(k: int) -> dict:
    """The ``k``-th series' colour, marker and line style: each changes from one series to the
    next, and no two of the first 140 series (10 x 7 x 4, whose least common multiple is 140)
    share all three."""
    return {"color": COLOURS[k % len(COLOURS)], "marker": MARKERS[k % len(MARKERS)],
            "linestyle": LINESTYLES[k % len(LINESTYLES)]}


def wrap(text: str, width_inches: float, fontsize: float) -> str:
    """``text`` broken into lines that fit ``width_inches`` at ``fontsize`` points (an average
    character is about 0.55 em wide in DejaVu Sans; 0.6 keeps a margin)."""
    chars = max(12, int(width_inches * 72 / (0.6 * fontsize)))
    return "\n".join(textwrap.wrap(text, chars, break_on_hyphens=False)) or text


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def finish(fig: Figure, title: str, synthetic: bool = False, fontsize: float = 12) -> Figure:
    """Give ``fig`` its title, wrapped to its width, and below it, for synthetic data,
    :data:`SYNTHETIC_MARK`."""
    width = fig.get_size_inches()[0] * 0.95
    text = wrap(title, width, fontsize)
    if synthetic:
        text += "\n" + wrap(f"[{SYNTHETIC_MARK}]", width, fontsize)
    fig.suptitle(text, fontsize=fontsize)
    return fig


def save(fig: Figure, path: Path) -> list[Path]:
    """Write ``fig`` as ``path`` (PNG) and the same figure as PDF beside it, each whole."""
    png = write_whole(path, lambda tmp: fig.savefig(tmp, format="png"))
    pdf = write_whole(path.with_suffix(".pdf"), lambda tmp: fig.savefig(tmp, format="pdf"))
    return [png, pdf]
