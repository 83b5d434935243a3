"""The CMS (mplhep) style shared by the plotting modules: colours, figure and label, atomic PNG output.

Figures are fresh :class:`matplotlib.figure.Figure` objects on an Agg canvas (no pyplot global
state, safe in workers), styled locally and written via ``path.tmp-<pid>`` + ``os.replace``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from cms_anomaly.core.atomic import atomic_output

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

#: colour cycle for processes (colour-blind friendly, the CMS "6-colour" palette)
PROCESS_COLORS: tuple[str, ...] = ("#5790fc", "#f89c20", "#e42536", "#964a8b", "#9c9ca1", "#7a21dd")


class PlotError(ValueError):
    """Invalid input to a plotting function (the message names the argument)."""


def cms_style():
    """The mplhep CMS style as a matplotlib style context (applied locally, not globally)."""
    import matplotlib.style
    import mplhep as hep

    return matplotlib.style.context(hep.style.CMS)


def new_figure(*, ratio: bool, share_x: bool = True, figsize: tuple[float, float] = (10.0, 10.0)):
    """A non-pyplot figure with one axis, or a main axis plus a lower panel sharing x."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)  # an Agg canvas (mplhep measures text extents with its renderer)
    if not ratio:
        return fig, fig.add_subplot(1, 1, 1), None
    gs = fig.add_gridspec(2, 1, height_ratios=(3, 1), hspace=0.06)
    ax = fig.add_subplot(gs[0])
    # mplhep.comp blanks the main panel's tick labels with a fixed formatter, which a shared
    # axis would also inherit: plot_data_mc therefore uses share_x=False and copies the limits
    rax = fig.add_subplot(gs[1], sharex=ax if share_x else None)
    ax.tick_params(labelbottom=False)
    return fig, ax, rax


def cms_label(ax, *, data: bool, text: str | None, lumi: float | None, com: float | str | None) -> None:
    """The CMS label on ``ax``: "Open Data" for data, "Private Work" for simulation unless ``text``."""
    import mplhep as hep

    if text is None:
        text = "Open Data" if data else "Private Work"
    if not data and "simulation" in text.lower():
        data = True  # mplhep prepends "Simulation" for data=False: do not say it twice
    hep.cms.label(text=text, data=data, lumi=lumi, com=com, ax=ax, loc=0)


def save_png(fig: Figure, path: str | os.PathLike, *, dpi: int = 100) -> Path:
    """Save a figure as PNG atomically (``<path>.tmp-<pid>`` then ``os.replace``).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : str or path-like
        Destination; parent directories are created.
    dpi : int
        Resolution.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    out = Path(path)
    with atomic_output(out) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    log.info("wrote %s", out)
    return out


def values_edges(h, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Values, edges, variances (the values where unweighted) and axis label of the 1-D histogram ``name``."""
    try:
        if len(h.axes) != 1:
            raise PlotError(f"{name} must be a 1-D histogram, got {len(h.axes)} axes")
        values = np.asarray(h.values(), dtype=np.float64)
        edges = np.asarray(h.axes[0].edges, dtype=np.float64)
        label = str(h.axes[0].label or h.axes[0].name or "")
    except AttributeError as err:
        raise PlotError(f"{name} must be a hist.Hist, got {type(h).__name__}") from err
    var = h.variances()
    return values, edges, values.copy() if var is None else np.asarray(var, dtype=np.float64), label


def line_style(i: int, label: str, styles: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
    """Colour and line style of the i-th curve: colours cycle, the line style changes every cycle;
    ``styles[label]`` (matplotlib keywords) overrides."""
    style = {
        "color": PROCESS_COLORS[i % len(PROCESS_COLORS)],
        "ls": ("-", "--", "-.", ":")[(i // len(PROCESS_COLORS)) % 4],
        "lw": 2,
    }
    return {**style, **(styles or {}).get(label, {})}
