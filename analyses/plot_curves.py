"""Curves: ROC (Cerri Fig. 10, Knapp Fig. 4), SIC (Mikuni Fig. 1) and y-against-x series (Mikuni Figs. 2, 3)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from cms_anomaly.analyses.plot_style import (
    PlotError,
    cms_label,
    cms_style,
    line_style,
    new_figure,
    save_png,
)

if TYPE_CHECKING:  # pragma: no cover
    from cms_anomaly.stats import RocCurve


def plot_roc(
    curves: Mapping[str, RocCurve],
    path: str | os.PathLike,
    *,
    working_points: Sequence[float] = (5.4e-6, 1e-5, 1e-3),
    min_fpr: float | None = None,
    text: str | None = None,
    com: float | str | None = 13,
    title: str | None = None,
    styles: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """ROC curves (TPR vs FPR, log x) with dotted lines at the SM working points.

    Parameters
    ----------
    curves : mapping of str to RocCurve
        Legend label (e.g. ``"ALAD L1, ttbar (AUC 0.91)"``) to curve.
    path : str or path-like
        Output PNG.
    working_points : sequence of float
        FPR values marked by vertical lines (default 5.4e-6 = ~1000 SM events/month, 1e-5, 1e-3).
    min_fpr : float, optional
        Lower x limit; default the smallest non-zero FPR among the curves (at least 1e-7).
    text : str, optional
        CMS label text (default "Private Work").
    com : float or str, optional
        Centre-of-mass energy in TeV for the label.
    title : str, optional
        Extra text in the plot (e.g. the model name).
    styles : mapping of str to dict, optional
        Per-label matplotlib line keywords (``color``, ``ls``) replacing the default cycle.

    Returns
    -------
    pathlib.Path
        The written PNG.
    """
    if not curves:
        raise PlotError("plot_roc: no curves given")
    with cms_style():
        fig, ax, _ = new_figure(ratio=False)
        lowest = 1.0
        for i, (label, c) in enumerate(curves.items()):
            pos = c.fpr > 0
            ax.plot(c.fpr[pos], c.tpr[pos], label=label, **line_style(i, label, styles))
            if pos.any():
                lowest = min(lowest, float(c.fpr[pos].min()))
        xmin = min_fpr if min_fpr is not None else max(1e-7, lowest)
        for wp in working_points:
            if wp >= xmin:
                ax.axvline(wp, color="grey", ls=":", lw=1.5)
                ax.text(wp * 1.12, 0.45, f"{wp:.2g}", rotation=90, va="bottom", fontsize=13, color="grey")
        # TPR = FPR is a curve on the log x axis: sample it densely, not as a two-point line
        diagonal = np.logspace(np.log10(xmin), 0.0, 200)
        ax.plot(diagonal, diagonal, color="black", ls="--", lw=1, label="Random selection")
        ax.set_xscale("log")
        ax.set_xlim(xmin, 1.0)
        ax.set_ylim(0.0, 1.05)
        ax.set_xlabel("False positive rate (SM efficiency)")
        ax.set_ylabel("True positive rate (signal efficiency)")
        ax.legend(loc="upper left", fontsize=15, title=title, title_fontsize=15)
        cms_label(ax, data=False, text=text, lumi=None, com=com)
        return save_png(fig, path)


def plot_sic(
    curves: Mapping[str, RocCurve],
    path: str | os.PathLike,
    *,
    min_bkg_events: float = 10.0,
    text: str | None = None,
    com: float | str | None = 13,
    title: str | None = None,
    styles: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """SIC = TPR / sqrt(FPR) against TPR (Mikuni et al. Fig. 1).

    Points with fewer than ``min_bkg_events`` effective background events passing are dropped
    ("the SIC curves are cut off at lower true positive rates due to low background yields").

    Parameters
    ----------
    curves : mapping of str to RocCurve
        Legend label to curve.
    path : str or path-like
        Output PNG.
    min_bkg_events : float
        Minimum effective number of selected background events for a point to be drawn.
    text, com : optional
        CMS label settings.
    title : str, optional
        Legend title.
    styles : mapping of str to dict, optional
        Per-label matplotlib line keywords, as in :func:`plot_roc`.

    Returns
    -------
    pathlib.Path
        The written PNG.
    """
    if not curves:
        raise PlotError("plot_sic: no curves given")
    with cms_style():
        fig, ax, _ = new_figure(ratio=False)
        for i, (label, c) in enumerate(curves.items()):
            keep = c.fpr * c.n_bkg_eff >= min_bkg_events
            ax.plot(c.tpr[keep], c.sic()[keep], label=label, **line_style(i, label, styles))
        ax.axhline(1.0, color="black", ls="--", lw=1, label="No selection")
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(bottom=0.0)
        ax.set_xlabel("True positive rate (signal efficiency)")
        ax.set_ylabel(r"SIC = TPR / FPR$^{1/2}$")  # mathtext sqrt glyphs are missing in the CMS font
        ax.legend(fontsize=15, loc="upper right", title=title, title_fontsize=15)
        cms_label(ax, data=False, text=text, lumi=None, com=com)
        return save_png(fig, path)


def plot_lines(
    series: Mapping[str, tuple],
    path: str | os.PathLike,
    *,
    xlabel: str,
    ylabel: str,
    logx: bool = False,
    logy: bool = False,
    yscale: str | None = None,
    hline: float | None = None,
    ylim: tuple[float, float] | None = None,
    text: str | None = None,
    com: float | str | None = 13,
    styles: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """y against x for several series, with error bars where given (Mikuni et al. Figs. 2 and 3).

    Parameters
    ----------
    series : mapping of str to tuple
        Legend label to ``(x, y)`` or ``(x, y, yerr)`` arrays.
    path : str or path-like
        Output PNG.
    xlabel, ylabel : str
        Axis labels.
    logx, logy : bool
        Axis scales.
    yscale : str, optional
        ``"symlog"`` (linear below 1, logarithmic above: zeros and large values together) or any
        matplotlib scale; overrides ``logy``.
    hline : float, optional
        A horizontal reference line (e.g. closure = 1).
    ylim : tuple of float, optional
        y range.
    text, com, styles : optional
        CMS label settings and per-label line keywords, as in :func:`plot_roc`.

    Returns
    -------
    pathlib.Path
        The written PNG.
    """
    if not series:
        raise PlotError("plot_lines: no series given")
    with cms_style():
        fig, ax, _ = new_figure(ratio=False)
        for i, (label, data) in enumerate(series.items()):
            x, y = np.asarray(data[0], dtype=np.float64), np.asarray(data[1], dtype=np.float64)
            yerr = np.asarray(data[2], dtype=np.float64) if len(data) > 2 and data[2] is not None else None
            style = line_style(i, label, styles)
            ax.errorbar(x, y, yerr=yerr, label=label, **{"marker": "o", "ms": 5, "capsize": 3, **style})
        if hline is not None:
            ax.axhline(hline, color="black", ls=":", lw=1)
        if logx:
            ax.set_xscale("log")
        if yscale == "symlog":
            ax.set_yscale("symlog", linthresh=1.0)
        elif yscale is not None:
            ax.set_yscale(yscale)
        elif logy:
            ax.set_yscale("log")
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=14, loc="best")
        cms_label(ax, data=False, text=text, lumi=None, com=com)
        return save_png(fig, path)
