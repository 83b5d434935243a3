"""mplhep-styled (CMS) plots for the statistics outputs, saved atomically as PNG.

Every function takes the objects of :mod:`cms_anomaly.stats` /
:mod:`cms_anomaly.stats.fits` / :mod:`cms_anomaly.stats.bumphunt` (or ``hist.Hist``),
draws on a fresh :class:`matplotlib.figure.Figure` (no pyplot global state, safe in workers),
applies the CMS style locally and writes ``path`` via ``path.tmp-<pid>`` + ``os.replace``.

* :func:`plot_roc` — ROC curves, FPR on a log axis, working points marked (Cerri Fig. 10, Knapp Fig. 4).
* :func:`plot_sic` — significance improvement vs signal efficiency (Mikuni Fig. 1).
* :func:`plot_data_mc` — data vs stacked MC with a data/MC ratio panel (Knapp Fig. 9).
* :func:`plot_astf` — ASTF of data (points) vs MC (band) with binomial errors (Knapp Fig. 8).
* :func:`plot_fit` — spectrum with a dijet-function fit and a pulls panel (Chekanov Fig. 3).
* :func:`plot_bumphunt` — data vs reference with the BumpHunter window and local significance.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from cms_anomaly.core.atomic import atomic_output

if TYPE_CHECKING:  # pragma: no cover
    from cms_anomaly.stats import AstfResult, RocCurve
    from cms_anomaly.stats.bumphunt import BumpHuntResult
    from cms_anomaly.stats.fits import FitResult
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

__all__ = ["PlotError", "plot_astf", "plot_bumphunt", "plot_data_mc", "plot_fit", "plot_roc", "plot_sic", "save_png"]

#: colour cycle for processes (colour-blind friendly, the CMS "6-colour" palette)
PROCESS_COLORS: tuple[str, ...] = ("#5790fc", "#f89c20", "#e42536", "#964a8b", "#9c9ca1", "#7a21dd")


class PlotError(ValueError):
    """Invalid input to a plotting function (the message names the argument)."""


# ----------------------------------------------------------------------------- infrastructure
def _style():
    import matplotlib.style
    import mplhep as hep

    return matplotlib.style.context(hep.style.CMS)


def _figure(*, ratio: bool, share_x: bool = True, figsize: tuple[float, float] = (10.0, 10.0)):
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


def _cms_label(ax, *, data: bool, text: str | None, lumi: float | None, com: float | str | None) -> None:
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


def _values_edges(h, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
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


# ----------------------------------------------------------------------------- ROC
def _line_style(i: int, label: str, styles: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
    """Colour and line style of the i-th curve: colours cycle, the line style changes every cycle;
    ``styles[label]`` (matplotlib keywords) overrides."""
    style = {
        "color": PROCESS_COLORS[i % len(PROCESS_COLORS)],
        "ls": ("-", "--", "-.", ":")[(i // len(PROCESS_COLORS)) % 4],
        "lw": 2,
    }
    return {**style, **(styles or {}).get(label, {})}


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
    with _style():
        fig, ax, _ = _figure(ratio=False)
        lowest = 1.0
        for i, (label, c) in enumerate(curves.items()):
            pos = c.fpr > 0
            ax.plot(c.fpr[pos], c.tpr[pos], label=label, **_line_style(i, label, styles))
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
        _cms_label(ax, data=False, text=text, lumi=None, com=com)
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
    with _style():
        fig, ax, _ = _figure(ratio=False)
        for i, (label, c) in enumerate(curves.items()):
            keep = c.fpr * c.n_bkg_eff >= min_bkg_events
            ax.plot(c.tpr[keep], c.sic()[keep], label=label, **_line_style(i, label, styles))
        ax.axhline(1.0, color="black", ls="--", lw=1, label="No selection")
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(bottom=0.0)
        ax.set_xlabel("True positive rate (signal efficiency)")
        ax.set_ylabel(r"SIC = TPR / FPR$^{1/2}$")  # mathtext sqrt glyphs are missing in the CMS font
        ax.legend(fontsize=15, loc="upper right", title=title, title_fontsize=15)
        _cms_label(ax, data=False, text=text, lumi=None, com=com)
        return save_png(fig, path)


# ----------------------------------------------------------------------------- data vs MC
def plot_data_mc(
    data,
    mc: Mapping[str, object],
    path: str | os.PathLike,
    *,
    xlabel: str | None = None,
    ylabel: str = "Events",
    logy: bool = True,
    signals: Mapping[str, object] | None = None,
    data_label: str = "Data",
    text: str | None = None,
    lumi: float | None = None,
    com: float | str | None = 13,
    is_data: bool = True,
    logx: bool = False,
) -> Path:
    """Data points over stacked MC with MC statistical band and a data/MC ratio panel.

    Uses :func:`mplhep.comp.data_model` (Poisson intervals for data, MC stat. uncertainty).

    Parameters
    ----------
    data : hist.Hist
        Observed (or pseudo-data) histogram.
    mc : mapping of str to hist.Hist
        Background components in stacking order (bottom first); same binning as ``data``.
    path : str or path-like
        Output PNG.
    xlabel : str, optional
        x-axis label with unit; default the histogram axis label.
    ylabel : str
        y-axis label.
    logy : bool
        Logarithmic y axis for the main panel.
    signals : mapping of str to hist.Hist, optional
        Overlaid as lines, not part of the MC sum or the ratio (e.g. ttbar as the "unknown" process).
    data_label : str
        Legend label of the data.
    text, lumi, com : optional
        CMS label: text, integrated luminosity (fb^-1), centre-of-mass energy (TeV).
    is_data : bool
        Whether ``data`` is real data (label without "Simulation").
    logx : bool
        Logarithmic x axis (for log-spaced bins, e.g. anomaly scores spanning decades).

    Returns
    -------
    pathlib.Path
        The written PNG.
    """
    import mplhep as hep

    if not mc:
        raise PlotError("plot_data_mc: no MC components given")
    d_vals, d_edges, _, axis_label = _values_edges(data, "data")
    for name, h in list(mc.items()) + list((signals or {}).items()):
        _, e, _, _ = _values_edges(h, f"mc[{name!r}]")
        if e.shape != d_edges.shape or not np.allclose(e, d_edges):
            raise PlotError(f"plot_data_mc: component {name!r} has a different binning from the data")
    signals = signals or {}
    with _style():
        fig, ax, rax = _figure(ratio=True, share_x=False)
        hep.comp.data_model(
            data,
            stacked_components=list(mc.values()),
            stacked_labels=list(mc.keys()),
            stacked_colors=[PROCESS_COLORS[i % len(PROCESS_COLORS)] for i in range(len(mc))],
            xlabel=xlabel or axis_label,
            ylabel=ylabel,
            data_label=data_label,
            fig=fig,
            ax_main=ax,
            ax_comparison=rax,
            comparison="ratio",
            flow="none",
            h1_label="Data",
            h2_label="MC",
        )
        # signals are overlaid, not part of the model: mplhep's unstacked components would be added
        # to the "Sum" and to the data/MC ratio, hiding exactly the excess a missing process makes
        for i, (name, h) in enumerate(signals.items()):
            _, _, variances, _ = _values_edges(h, name)
            hep.histplot(
                h,
                ax=ax,
                histtype="step",
                lw=2,
                label=name,
                flow="none",
                yerr=np.sqrt(variances),
                color=PROCESS_COLORS[(len(mc) + i) % len(PROCESS_COLORS)],
            )
        mc_total = sum(np.asarray(h.values(), dtype=np.float64) for h in mc.values())
        if logy and (np.any(d_vals > 0) or np.any(mc_total > 0)):  # an empty plot stays linear
            ax.set_yscale("log")
            positive = d_vals[d_vals > 0]
            top = max(1.0, float(d_vals.max()) if d_vals.size else 1.0, float(np.max(mc_total)))
            ax.set_ylim(max(0.1, 0.5 * float(positive.min())) if positive.size else 0.1, top * 100)
        rax.set_ylim(0.0, 2.0)
        if logx:
            if d_edges[0] <= 0:
                raise PlotError(f"plot_data_mc: logx needs positive bin edges, the first is {d_edges[0]}")
            ax.set_xscale("log")
            rax.set_xscale("log")
        _drop_empty_data_bars((ax, rax), d_vals)
        lo, hi = _populated_range(d_edges, d_vals, mc_total, *(np.asarray(h.values()) for h in signals.values()))
        rax.set_xlim(lo, hi)
        ax.set_xlim(lo, hi)
        rax.set_ylabel("Data / MC")
        ax.legend(fontsize=14, ncols=2, loc="upper right")
        _cms_label(ax, data=is_data, text=text, lumi=lumi, com=com)
        return save_png(fig, path)


def _populated_range(edges: np.ndarray, *contents: np.ndarray) -> tuple[float, float]:
    """x range from the first to the last bin with content in any of ``contents`` (one empty bin
    of margin on each side), so a few events do not leave an axis of empty bins to its end."""
    filled = np.flatnonzero(np.any([np.asarray(c) > 0 for c in contents], axis=0)) if contents else np.array([])
    if filled.size == 0:
        return float(edges[0]), float(edges[-1])
    first, last = max(int(filled[0]) - 1, 0), min(int(filled[-1]) + 2, len(edges) - 1)
    return float(edges[first]), float(edges[last])


def _drop_empty_data_bars(axes: Sequence[Any], data: np.ndarray) -> None:
    """Remove the error bars (Poisson upper limits) that mplhep draws on empty data bins."""
    from matplotlib.container import ErrorbarContainer

    keep = np.asarray(data) > 0
    for ax in axes:
        for container in ax.containers:
            if not isinstance(container, ErrorbarContainer):
                continue
            for collection in container.lines[2]:
                segments = collection.get_segments()
                if len(segments) == len(keep):
                    kept = [np.asarray(seg) for seg, k in zip(segments, keep, strict=True) if k]
                    collection.set_segments([seg for seg in kept if seg.ndim == 2 and len(seg)])


# ----------------------------------------------------------------------------- shapes
def plot_shapes(
    hists: Mapping[str, object],
    path: str | os.PathLike,
    *,
    xlabel: str | None = None,
    cuts: Mapping[str, float] | None = None,
    logy: bool = True,
    logx: bool = False,
    text: str | None = None,
    com: float | str | None = 13,
    styles: Mapping[str, Mapping[str, Any]] | None = None,
    normalise: bool = True,
    ylabel: str | None = None,
) -> Path:
    """Unit-area (or absolute) distributions of one quantity for several samples, with vertical cut lines.

    As Cerri et al. Fig. 7 (the VAE loss of the SM cocktail and the BSM benchmarks with the
    threshold) and Chekanov et al. Fig. 3 (ln Loss with the outlier-region cut).

    Parameters
    ----------
    hists : mapping of str to hist.Hist
        Legend label to 1-D histogram (same binning); each is drawn divided by its integral.
    path : str or path-like
        Output PNG.
    xlabel : str, optional
        x-axis label; default the first histogram's axis label.
    cuts : mapping of str to float, optional
        Label to x position of a vertical dashed line (e.g. the threshold at 5.4e-6).
    logy, logx : bool
        Axis scales.
    text, com : optional
        CMS label settings.
    styles : mapping of str to dict, optional
        Per-label matplotlib line keywords.
    normalise : bool
        Divide each histogram by its integral (shapes); False draws yields per bin width.
    ylabel : str, optional
        y-axis label (default from ``normalise``).

    Returns
    -------
    pathlib.Path
        The written PNG.
    """
    import mplhep as hep

    if not hists:
        raise PlotError("plot_shapes: no histograms given")
    with _style():
        fig, ax, _ = _figure(ratio=False)
        first_label, edges = None, None
        top, bottom = 0.0, np.inf
        for i, (label, h) in enumerate(hists.items()):
            values, e, variances, axis_label = _values_edges(h, label)
            first_label = first_label or axis_label
            edges = e if edges is None else edges
            total = float(values.sum()) if normalise else 1.0
            if values.sum() <= 0:
                continue
            widths = np.diff(e)
            density = values / total / widths
            err = np.sqrt(np.maximum(variances, 0.0)) / total / widths
            style = _line_style(i, label, styles)
            hep.histplot(density, e, ax=ax, histtype="step", yerr=err, label=f"{label}", flow="none", **style)
            top = max(top, float(density.max()))
            if np.any(density > 0):
                bottom = min(bottom, float(density[density > 0].min()))
        for j, (label, x) in enumerate((cuts or {}).items()):
            ax.axvline(x, color="black", ls=("--", ":", "-.")[j % 3], lw=1.5, label=label)
        if logx:
            ax.set_xscale("log")
        if logy and top > 0:
            ax.set_yscale("log")
            ax.set_ylim(max(bottom * 0.5, top * 1e-7), top * 30)
        elif top > 0:
            ax.set_ylim(0.0, top * 1.5)
        ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel(xlabel or first_label)
        ax.set_ylabel(ylabel or ("Fraction of events / bin width" if normalise else "Events / bin width"))
        ax.legend(fontsize=14, loc="upper right", ncols=2)
        _cms_label(ax, data=False, text=text, lumi=None, com=com)
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
    with _style():
        fig, ax, _ = _figure(ratio=False)
        for i, (label, data) in enumerate(series.items()):
            x, y = np.asarray(data[0], dtype=np.float64), np.asarray(data[1], dtype=np.float64)
            yerr = np.asarray(data[2], dtype=np.float64) if len(data) > 2 and data[2] is not None else None
            style = _line_style(i, label, styles)
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
        _cms_label(ax, data=False, text=text, lumi=None, com=com)
        return save_png(fig, path)


# ----------------------------------------------------------------------------- ASTF
def plot_astf(
    results: Mapping[str, AstfResult],
    path: str | os.PathLike,
    *,
    reference: str | None = None,
    xlabel: str | None = None,
    logy: bool = True,
    alpha: float | None = None,
    text: str | None = None,
    lumi: float | None = None,
    com: float | str | None = 13,
    is_data: bool = True,
) -> Path:
    """ASTF per bin: the reference (background MC) as a filled band, the others as points.

    As Knapp et al. Fig. 8: "The filled area shows the same ratio computed on simulated
    background; the uncertainty bands represent the statistical uncertainties".

    Parameters
    ----------
    results : mapping of str to AstfResult
        Legend label to ASTF (same binning), e.g. ``{"Data": ..., "W+Z MC": ...}``.
    path : str or path-like
        Output PNG.
    reference : str, optional
        Key drawn as the band (default: the last entry).
    xlabel : str, optional
        x-axis label with unit; default the histogram axis label.
    logy : bool
        Logarithmic y axis.
    alpha : float, optional
        Overall anomaly-selection efficiency, drawn as a horizontal line.
    text, lumi, com, is_data : optional
        CMS label settings.

    Returns
    -------
    pathlib.Path
        The written PNG.
    """
    if not results:
        raise PlotError("plot_astf: no ASTF results given")
    ref_key = reference if reference is not None else list(results)[-1]
    if ref_key not in results:
        raise PlotError(f"plot_astf: reference {ref_key!r} not among {list(results)}")
    ref = results[ref_key]
    edges = ref.edges[0]
    with _style():
        fig, ax, _ = _figure(ratio=False)
        lo = np.nan_to_num(ref.interval.low, nan=0.0)
        hi = np.nan_to_num(ref.interval.high, nan=0.0)
        have = np.isfinite(ref.fraction)
        ax.stairs(
            np.where(have, hi, 0.0),
            edges,
            baseline=np.where(have, lo, 0.0),
            fill=True,
            color=PROCESS_COLORS[0],
            alpha=0.45,
            label=f"{ref_key} (stat. unc.)",
        )
        ax.stairs(np.where(have, ref.fraction, np.nan), edges, color=PROCESS_COLORS[0], lw=1.5)
        k = 0
        for label, res in results.items():
            if label == ref_key:
                continue
            k += 1
            if res.edges[0].shape != edges.shape or not np.allclose(res.edges[0], edges):
                raise PlotError(f"plot_astf: {label!r} has a different binning from {ref_key!r}")
            ok = np.isfinite(res.fraction)
            ax.errorbar(
                res.centers[ok],
                res.fraction[ok],
                yerr=[res.interval.error_low[ok], res.interval.error_high[ok]],
                xerr=0.5 * np.diff(edges)[ok],
                fmt="o",
                color="black" if k == 1 else PROCESS_COLORS[k],
                ms=6,
                label=label,
            )
        if alpha is not None:
            ax.axhline(alpha, color="grey", ls="--", lw=1.5, label=rf"$\alpha$ = {alpha:g}")
        frac = np.concatenate([np.asarray(r.fraction, dtype=float).ravel() for r in results.values()])
        pos = frac[np.isfinite(frac) & (frac > 0)]
        if logy and pos.size:  # without any accepted event the plot stays linear
            ax.set_yscale("log")
            highs = np.concatenate([np.asarray(r.interval.high, dtype=float).ravel() for r in results.values()])
            top = float(np.max(highs[np.isfinite(frac)], initial=pos.max()))  # ignore empty bins' [0, 1]
            lo, hi = 0.3 * pos.min(), min(1.0, 3 * top)
            ax.set_ylim(lo, hi * (hi / lo) ** 0.45)  # head-room above the points for the legend
        ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel(xlabel or (ref.axis_labels[0] if ref.axis_labels else ""))
        ax.set_ylabel("ASTF (accepted fraction)")
        ax.legend(fontsize=15, loc="upper left")
        _cms_label(ax, data=is_data, text=text, lumi=lumi, com=com)
        return save_png(fig, path)


# ----------------------------------------------------------------------------- fits
def plot_fit(
    fit: FitResult,
    path: str | os.PathLike,
    *,
    xlabel: str = r"$m_{jj}$ [GeV]",
    data_label: str = "Data",
    logy: bool = True,
    text: str | None = None,
    lumi: float | None = None,
    com: float | str | None = 13,
    is_data: bool = False,
    overlays: Mapping[str, object] | None = None,
) -> Path:
    """Spectrum (events per bin width) with the fitted dijet function and a pulls panel.

    Parameters
    ----------
    fit : FitResult
        From :func:`cms_anomaly.stats.fits.fit_dijet`.
    path : str or path-like
        Output PNG.
    xlabel : str
        x-axis label with unit.
    data_label : str
        Legend label of the fitted histogram.
    logy : bool
        Logarithmic y axis.
    text, lumi, com, is_data : optional
        CMS label settings.
    overlays : mapping of str to hist.Hist, optional
        Spectra drawn as lines on top (e.g. signals), same binning as the fit; not fitted.

    Returns
    -------
    pathlib.Path
        The written PNG.
    """
    edges = fit.edges
    width = np.diff(edges)
    centers = 0.5 * (edges[1:] + edges[:-1])
    with _style():
        fig, ax, rax = _figure(ratio=True)
        n, err = fit.observed, np.sqrt(fit.variances)
        ok = n > 0
        ax.errorbar(
            centers[ok],
            (n / width)[ok],
            yerr=(err / width)[ok],
            xerr=0.5 * width[ok],
            fmt="o",
            color="black",
            ms=5,
            label=data_label,
        )
        fine = np.linspace(edges[0], edges[-1], 400)
        par = ", ".join(f"{k} = {v:.3g}" for k, v in fit.params.items())
        ax.plot(
            fine,
            fit.density(fine),
            color=PROCESS_COLORS[2],
            lw=2,
            label=f"{fit.model} fit ({fit.method}): " + rf"$\chi^2$/ndf = {fit.chi2:.1f}/{fit.ndf}",
        )
        excluded = ~fit.fit_mask
        for i in np.flatnonzero(excluded):
            ax.axvspan(edges[i], edges[i + 1], color="grey", alpha=0.15, lw=0)
        if excluded.any():
            ax.plot([], [], color="grey", alpha=0.3, lw=8, label="Excluded from fit")
        for i, (name, h) in enumerate((overlays or {}).items()):
            v, e, _, _ = _values_edges(h, name)
            if e.shape != edges.shape or not np.allclose(e, edges):
                raise PlotError(f"plot_fit: overlay {name!r} has a different binning from the fit")
            ax.stairs(v / width, edges, color=PROCESS_COLORS[(3 + i) % len(PROCESS_COLORS)], lw=2, ls="--", label=name)
        ax.text(0.03, 0.03, par, transform=ax.transAxes, fontsize=11, va="bottom")
        if logy:
            ax.set_yscale("log")
        unit = _unit(xlabel)
        ax.set_ylabel(f"Events / {unit}" if unit else "Events / bin width")
        ax.legend(fontsize=14, loc="upper right")
        pulls = np.nan_to_num(fit.pulls, nan=0.0)
        rax.bar(centers, pulls, width=width, color=PROCESS_COLORS[0], edgecolor="none")
        rax.axhline(0, color="black", lw=1)
        for y in (-2, 2):
            rax.axhline(y, color="grey", ls=":", lw=1)
        lim = max(3.0, float(np.nanmax(np.abs(fit.pulls))) * 1.2 if np.isfinite(fit.pulls).any() else 3.0)
        rax.set_ylim(-lim, lim)
        rax.set_ylabel("Pull")
        rax.set_xlabel(xlabel)
        ax.set_xlim(edges[0], edges[-1])
        _cms_label(ax, data=is_data, text=text, lumi=lumi, com=com)
        return save_png(fig, path)


def _unit(label: str) -> str:
    """Unit inside the trailing brackets of an axis label, e.g. 'GeV' from 'm_jj [GeV]'."""
    if label.endswith("]") and "[" in label:
        return label[label.rindex("[") + 1 : -1]
    return ""


# ----------------------------------------------------------------------------- BumpHunter
def plot_bumphunt(
    result: BumpHuntResult,
    path: str | os.PathLike,
    *,
    xlabel: str = r"$m_{jj}$ [GeV]",
    data_label: str = "Data",
    reference_label: str = "Background reference",
    logy: bool = True,
    text: str | None = None,
    lumi: float | None = None,
    com: float | str | None = 13,
    is_data: bool = False,
) -> Path:
    """Data vs reference with the most significant BumpHunter window and a per-bin significance panel.

    Parameters
    ----------
    result : BumpHuntResult
        From :func:`cms_anomaly.stats.bumphunt.bump_hunt`.
    path : str or path-like
        Output PNG.
    xlabel : str
        x-axis label with unit.
    data_label, reference_label : str
        Legend labels.
    logy : bool
        Logarithmic y axis.
    text, lumi, com, is_data : optional
        CMS label settings.

    Returns
    -------
    pathlib.Path
        The written PNG.
    """
    from scipy import stats

    edges, d, r = result.edges, result.data, result.reference
    centers = 0.5 * (edges[1:] + edges[:-1])
    with _style():
        fig, ax, rax = _figure(ratio=True)
        ax.stairs(r, edges, color=PROCESS_COLORS[0], fill=True, alpha=0.5, label=reference_label)
        ax.errorbar(centers, d, yerr=np.sqrt(d), fmt="o", color="black", ms=5, label=data_label)
        gs = (
            f">{result.global_significance:.2f}"
            if result.global_significance_is_lower_limit
            else f"{result.global_significance:.2f}"
        )
        ax.axvspan(
            *result.window,
            color=PROCESS_COLORS[2],
            alpha=0.25,
            label=f"BumpHunter window (local {result.local_significance:.1f}" + r"$\sigma$"
            f", global {gs}" + r"$\sigma$)",
        )
        if logy:
            ax.set_yscale("log")
        ax.set_ylabel("Events / bin")
        ax.legend(fontsize=14, loc="upper right")
        # per-bin one-sided Poisson significance (excess positive, deficit negative)
        with np.errstate(divide="ignore", invalid="ignore"):
            p_exc = stats.poisson.sf(d - 1, r)
            p_def = stats.poisson.cdf(d, r)
            sig = np.where(
                d >= r, stats.norm.isf(np.clip(p_exc, 1e-300, 0.5)), -stats.norm.isf(np.clip(p_def, 1e-300, 0.5))
            )
        sig = np.where(r > 0, sig, 0.0)
        rax.bar(centers, sig, width=np.diff(edges), color=PROCESS_COLORS[2], edgecolor="none")
        rax.axhline(0, color="black", lw=1)
        rax.set_ylabel(r"Significance [$\sigma$]")
        rax.set_xlabel(xlabel)
        ax.set_xlim(edges[0], edges[-1])
        _cms_label(ax, data=is_data, text=text, lumi=lumi, com=com)
        return save_png(fig, path)
