"""Histograms: data vs stacked MC with a ratio panel (Knapp Fig. 9), unit-area shapes with cut lines
(Cerri Fig. 7, Chekanov Fig. 3) and the ASTF of data vs MC (Knapp Fig. 8)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from cms_anomaly.analyses.plot_style import (
    PROCESS_COLORS,
    PlotError,
    cms_label,
    cms_style,
    line_style,
    new_figure,
    save_png,
    values_edges,
)

if TYPE_CHECKING:  # pragma: no cover
    from cms_anomaly.stats import AstfResult


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

    if not mc:
        raise PlotError("plot_data_mc: no MC components given")
    d_vals, d_edges, _, axis_label = values_edges(data, "data")
    _check_same_binning(d_edges, [*mc.items(), *(signals or {}).items()])
    signals = signals or {}
    with cms_style():
        fig, ax, rax = new_figure(ratio=True, share_x=False)
        _draw_data_model(fig, ax, rax, data, mc, xlabel=xlabel or axis_label, ylabel=ylabel, data_label=data_label)
        _overlay_signals(ax, signals, first_color=len(mc))
        mc_total = sum(np.asarray(h.values(), dtype=np.float64) for h in mc.values())
        _data_mc_scales(ax, rax, d_vals, d_edges, mc_total, logy=logy, logx=logx)
        _drop_empty_data_bars((ax, rax), d_vals)
        lo, hi = _populated_range(d_edges, d_vals, mc_total, *(np.asarray(h.values()) for h in signals.values()))
        rax.set_xlim(lo, hi)
        ax.set_xlim(lo, hi)
        rax.set_ylabel("Data / MC")
        ax.legend(fontsize=14, ncols=2, loc="upper right")
        cms_label(ax, data=is_data, text=text, lumi=lumi, com=com)
        return save_png(fig, path)


def _draw_data_model(
    fig, ax, rax, data, mc: Mapping[str, object], *, xlabel: str, ylabel: str, data_label: str
) -> None:
    """Data points over the stacked MC and the data/MC ratio panel (:func:`mplhep.comp.data_model`)."""
    import mplhep as hep

    hep.comp.data_model(
        data,
        stacked_components=list(mc.values()),
        stacked_labels=list(mc.keys()),
        stacked_colors=[PROCESS_COLORS[i % len(PROCESS_COLORS)] for i in range(len(mc))],
        xlabel=xlabel,
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


def _check_same_binning(edges: np.ndarray, components: Sequence[tuple[str, object]]) -> None:
    """Raise :class:`PlotError` naming the first component whose bin edges differ from ``edges``."""
    for name, h in components:
        _, e, _, _ = values_edges(h, f"mc[{name!r}]")
        if e.shape != edges.shape or not np.allclose(e, edges):
            raise PlotError(f"plot_data_mc: component {name!r} has a different binning from the data")


def _overlay_signals(ax, signals: Mapping[str, object], *, first_color: int) -> None:
    """Draw the signals as step lines with their statistical errors, colours from ``first_color`` on.

    Signals are overlaid, not part of the model: mplhep's unstacked components would be added
    to the "Sum" and to the data/MC ratio, hiding exactly the excess a missing process makes.
    """
    import mplhep as hep

    for i, (name, h) in enumerate(signals.items()):
        _, _, variances, _ = values_edges(h, name)
        hep.histplot(
            h,
            ax=ax,
            histtype="step",
            lw=2,
            label=name,
            flow="none",
            yerr=np.sqrt(variances),
            color=PROCESS_COLORS[(first_color + i) % len(PROCESS_COLORS)],
        )


def _data_mc_scales(ax, rax, d_vals, d_edges, mc_total, *, logy: bool, logx: bool) -> None:
    """Axis scales and y ranges of the data/MC panels (an empty plot stays linear in y)."""
    if logy and (np.any(d_vals > 0) or np.any(mc_total > 0)):
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
    if not hists:
        raise PlotError("plot_shapes: no histograms given")
    with cms_style():
        fig, ax, _ = new_figure(ratio=False)
        first_label, edges, top, bottom = _draw_shapes(ax, hists, styles, normalise=normalise)
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
        cms_label(ax, data=False, text=text, lumi=None, com=com)
        return save_png(fig, path)


def _draw_shapes(
    ax, hists: Mapping[str, object], styles: Mapping[str, Mapping[str, Any]] | None, *, normalise: bool
) -> tuple[Any, Any, float, float]:
    """Draw each histogram per bin width; the first axis label, the first edges, the highest and lowest positive density."""
    import mplhep as hep

    first_label, edges = None, None
    top, bottom = 0.0, np.inf
    for i, (label, h) in enumerate(hists.items()):
        values, e, variances, axis_label = values_edges(h, label)
        first_label = first_label or axis_label
        edges = e if edges is None else edges
        total = float(values.sum()) if normalise else 1.0
        if values.sum() <= 0:
            continue
        widths = np.diff(e)
        density = values / total / widths
        err = np.sqrt(np.maximum(variances, 0.0)) / total / widths
        style = line_style(i, label, styles)
        hep.histplot(density, e, ax=ax, histtype="step", yerr=err, label=f"{label}", flow="none", **style)
        top = max(top, float(density.max()))
        if np.any(density > 0):
            bottom = min(bottom, float(density[density > 0].min()))
    return first_label, edges, top, bottom


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
    with cms_style():
        fig, ax, _ = new_figure(ratio=False)
        _astf_band(ax, ref, edges, label=f"{ref_key} (stat. unc.)")
        _astf_points(ax, results, ref_key, edges)
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
        cms_label(ax, data=is_data, text=text, lumi=lumi, com=com)
        return save_png(fig, path)


def _astf_band(ax, ref: AstfResult, edges: np.ndarray, *, label: str) -> None:
    """The reference ASTF as a filled band of its interval with its central line (empty bins left blank)."""
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
        label=label,
    )
    ax.stairs(np.where(have, ref.fraction, np.nan), edges, color=PROCESS_COLORS[0], lw=1.5)


def _astf_points(ax, results: Mapping[str, AstfResult], ref_key: str, edges: np.ndarray) -> None:
    """Every ASTF but the reference as points with their intervals (the first in black)."""
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
