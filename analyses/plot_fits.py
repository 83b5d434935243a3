"""Mass spectra: a dijet-function fit with a pulls panel (Chekanov Fig. 3) and the BumpHunter window."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from cms_anomaly.analyses.plot_style import (
    PROCESS_COLORS,
    PlotError,
    cms_label,
    cms_style,
    new_figure,
    save_png,
    values_edges,
)

if TYPE_CHECKING:  # pragma: no cover
    from cms_anomaly.stats.bumphunt import BumpHuntResult
    from cms_anomaly.stats.fits import FitResult


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
    with cms_style():
        fig, ax, rax = new_figure(ratio=True)
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
        _shade_excluded(ax, edges, ~fit.fit_mask)
        for i, (name, h) in enumerate((overlays or {}).items()):
            v, e, _, _ = values_edges(h, name)
            if e.shape != edges.shape or not np.allclose(e, edges):
                raise PlotError(f"plot_fit: overlay {name!r} has a different binning from the fit")
            ax.stairs(v / width, edges, color=PROCESS_COLORS[(3 + i) % len(PROCESS_COLORS)], lw=2, ls="--", label=name)
        ax.text(0.03, 0.03, par, transform=ax.transAxes, fontsize=11, va="bottom")
        if logy:
            ax.set_yscale("log")
        unit = _unit(xlabel)
        ax.set_ylabel(f"Events / {unit}" if unit else "Events / bin width")
        ax.legend(fontsize=14, loc="upper right")
        _pulls_panel(rax, fit.pulls, centers, width, xlabel=xlabel)
        ax.set_xlim(edges[0], edges[-1])
        cms_label(ax, data=is_data, text=text, lumi=lumi, com=com)
        return save_png(fig, path)


def _shade_excluded(ax, edges: np.ndarray, excluded: np.ndarray) -> None:
    """Grey spans over the bins left out of the fit, with one legend entry when there are any."""
    for i in np.flatnonzero(excluded):
        ax.axvspan(edges[i], edges[i + 1], color="grey", alpha=0.15, lw=0)
    if excluded.any():
        ax.plot([], [], color="grey", alpha=0.3, lw=8, label="Excluded from fit")


def _pulls_panel(rax, pulls: np.ndarray, centers: np.ndarray, width: np.ndarray, *, xlabel: str) -> None:
    """Pull per bin as bars with lines at 0 and +-2; symmetric range of at least +-3."""
    rax.bar(centers, np.nan_to_num(pulls, nan=0.0), width=width, color=PROCESS_COLORS[0], edgecolor="none")
    rax.axhline(0, color="black", lw=1)
    for y in (-2, 2):
        rax.axhline(y, color="grey", ls=":", lw=1)
    lim = max(3.0, float(np.nanmax(np.abs(pulls))) * 1.2 if np.isfinite(pulls).any() else 3.0)
    rax.set_ylim(-lim, lim)
    rax.set_ylabel("Pull")
    rax.set_xlabel(xlabel)


def _unit(label: str) -> str:
    """Unit inside the trailing brackets of an axis label, e.g. 'GeV' from 'm_jj [GeV]'."""
    if label.endswith("]") and "[" in label:
        return label[label.rindex("[") + 1 : -1]
    return ""


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
    with cms_style():
        fig, ax, rax = new_figure(ratio=True)
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
        cms_label(ax, data=is_data, text=text, lumi=lumi, com=com)
        return save_png(fig, path)
