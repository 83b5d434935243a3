"""mplhep-styled (CMS) plots for the statistics outputs, saved atomically as PNG: the one import of the analyses.

Every function takes the objects of :mod:`cms_anomaly.stats` /
:mod:`cms_anomaly.stats.fits` / :mod:`cms_anomaly.stats.bumphunt` (or ``hist.Hist``),
draws on a fresh :class:`matplotlib.figure.Figure` (no pyplot global state, safe in workers),
applies the CMS style locally and writes ``path`` via ``path.tmp-<pid>`` + ``os.replace``.
The figures live in modules of one topic: :mod:`~cms_anomaly.analyses.plot_style` (colours,
figure, label, :func:`save_png`), :mod:`~cms_anomaly.analyses.plot_curves`,
:mod:`~cms_anomaly.analyses.plot_hists` and :mod:`~cms_anomaly.analyses.plot_fits`.

* :func:`plot_roc` — ROC curves, FPR on a log axis, working points marked (Cerri Fig. 10, Knapp Fig. 4).
* :func:`plot_sic` — significance improvement vs signal efficiency (Mikuni Fig. 1).
* :func:`plot_lines` — y against x for several series with error bars (Mikuni Figs. 2 and 3).
* :func:`plot_data_mc` — data vs stacked MC with a data/MC ratio panel (Knapp Fig. 9).
* :func:`plot_shapes` — unit-area distributions with cut lines (Cerri Fig. 7, Chekanov Fig. 3).
* :func:`plot_astf` — ASTF of data (points) vs MC (band) with binomial errors (Knapp Fig. 8).
* :func:`plot_fit` — spectrum with a dijet-function fit and a pulls panel (Chekanov Fig. 3).
* :func:`plot_bumphunt` — data vs reference with the BumpHunter window and local significance.
* :func:`plot_training` — training and validation loss per step or epoch (:func:`plot_model_training` from model cards).
"""

from __future__ import annotations

from cms_anomaly.analyses.plot_curves import plot_lines, plot_roc, plot_sic
from cms_anomaly.analyses.plot_fits import plot_bumphunt, plot_fit
from cms_anomaly.analyses.plot_hists import plot_astf, plot_data_mc, plot_shapes
from cms_anomaly.analyses.plot_style import PROCESS_COLORS, PlotError, save_png
from cms_anomaly.analyses.plot_training import plot_model_training, plot_training

__all__ = [
    "PROCESS_COLORS",
    "PlotError",
    "plot_astf",
    "plot_bumphunt",
    "plot_data_mc",
    "plot_fit",
    "plot_lines",
    "plot_model_training",
    "plot_roc",
    "plot_shapes",
    "plot_sic",
    "plot_training",
    "save_png",
]
