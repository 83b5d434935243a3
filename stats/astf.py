"""Anomaly-selection transfer functions (Knapp et al. sec. 4) and ratio uncertainties.

Pure functions on numpy arrays and :class:`hist.Hist` objects; larger score = more anomalous,
an event is selected when ``score > threshold``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from cms_anomaly.stats._common import ONE_SIGMA_CL, StatisticsError, effective_entries_from_sums
from cms_anomaly.stats.compare import compare_counts
from cms_anomaly.stats.intervals import BinomialInterval, efficiency_from_sums, ratio_uncertainty

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- ASTF
@dataclass(frozen=True)
class AstfResult:
    """Anomaly selection transfer function: accepted fraction per bin (Knapp et al. sec. 4).

    Attributes
    ----------
    edges : tuple of numpy.ndarray
        Bin edges of each axis.
    axis_labels : tuple of str
        Axis labels (with units) copied from the histogram.
    fraction : numpy.ndarray
        ``N_selected / N_all`` per bin (NaN in empty bins).
    interval : BinomialInterval
        Agresti-Coull interval per bin, computed with the effective entries of ``N_all``.
    n_all, n_selected : numpy.ndarray
        Sums of weights per bin before and after the anomaly selection.
    n_all_eff : numpy.ndarray
        Effective entries per bin of the denominator.
    """

    edges: tuple[np.ndarray, ...]
    axis_labels: tuple[str, ...]
    fraction: np.ndarray
    interval: BinomialInterval
    n_all: np.ndarray
    n_selected: np.ndarray
    n_all_eff: np.ndarray

    @property
    def centers(self) -> np.ndarray:
        """Bin centres of the first axis."""
        e = self.edges[0]
        return 0.5 * (e[1:] + e[:-1])

    def ratio_to(self, other: AstfResult) -> tuple[np.ndarray, np.ndarray]:
        """Per-bin ``self.fraction / other.fraction`` (e.g. data ASTF over MC ASTF) and its error.

        Errors are the symmetrised Agresti-Coull half-widths propagated to first order.
        """
        _check_same_edges(self.edges, other.edges, "AstfResult.ratio_to")
        ea = 0.5 * (self.interval.high - self.interval.low)
        eb = 0.5 * (other.interval.high - other.interval.low)
        return ratio_uncertainty(self.fraction, ea, other.fraction, eb)


def _check_same_edges(a: Sequence[np.ndarray], b: Sequence[np.ndarray], where: str) -> None:
    if len(a) != len(b) or any(x.shape != y.shape or not np.allclose(x, y) for x, y in zip(a, b, strict=True)):
        raise StatisticsError(
            f"{where}: histograms have different binning ({[x.size - 1 for x in a]} vs {[y.size - 1 for y in b]} bins)"
        )


def _hist_arrays(h: Any, name: str) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...], tuple[str, ...]]:
    """values, variances, edges and labels of a ``hist.Hist`` (flow bins excluded)."""
    try:
        values = np.asarray(h.values(), dtype=np.float64)
        edges = tuple(np.asarray(ax.edges, dtype=np.float64) for ax in h.axes)
        labels = tuple(str(getattr(ax, "label", "") or getattr(ax, "name", "")) for ax in h.axes)
    except AttributeError as err:
        raise StatisticsError(f"{name} must be a hist.Hist with numeric axes, got {type(h).__name__}") from err
    var = h.variances()
    if var is None:
        log.warning("%s has no variance information (weighted fills into Double storage); assuming unit weights", name)
        var = values
    return values, np.asarray(var, dtype=np.float64), edges, labels


def astf(h_all: Any, h_selected: Any, *, cl: float = ONE_SIGMA_CL) -> AstfResult:
    r"""Anomaly selection transfer function from histograms before and after the anomaly selection.

    ASTF per bin :math:`= N_\mathrm{sel} / N_\mathrm{all}` (Knapp et al. sec. 4, Fig. 8), with a
    binomial (Agresti-Coull) interval. For weighted histograms (``Weight()`` storage) the
    interval uses effective entries :math:`n_\mathrm{eff} = (\sum w)^2/\sum w^2` of the
    denominator and :math:`k_\mathrm{eff} = \mathrm{ASTF} \cdot n_\mathrm{eff}`.

    Parameters
    ----------
    h_all : hist.Hist
        Quantity (e.g. H_T, N_J) for all events passing the pre-selection.
    h_selected : hist.Hist
        Same quantity and binning for the events passing the anomaly threshold (a subset).
    cl : float
        Confidence level of the interval (default one sigma).

    Returns
    -------
    AstfResult
        Fractions, intervals and counts per bin.

    Raises
    ------
    StatisticsError
        Different binning, or more selected than all events in some bin.
    """
    v_all, var_all, e_all, labels = _hist_arrays(h_all, "h_all")
    v_sel, _, e_sel, _ = _hist_arrays(h_selected, "h_selected")
    _check_same_edges(e_all, e_sel, "astf")
    over = v_sel > v_all * (1 + 1e-9) + 1e-12
    if np.any(over):
        idx = np.argwhere(over)[0].tolist()
        raise StatisticsError(
            f"astf: h_selected exceeds h_all in bin {idx} "
            f"({v_sel[tuple(idx)]} > {v_all[tuple(idx)]}); is h_selected a subset?"
        )
    interval = efficiency_from_sums(v_sel, v_all, var_all, cl=cl)
    n_eff = effective_entries_from_sums(v_all, var_all)
    return AstfResult(
        edges=e_all,
        axis_labels=labels,
        fraction=interval.estimate,
        interval=interval,
        n_all=v_all,
        n_selected=v_sel,
        n_all_eff=n_eff,
    )


def astf_comparison(
    d_all: np.ndarray,
    d_sel: np.ndarray,
    b_all: np.ndarray,
    b_all_var: np.ndarray,
    b_sel: np.ndarray,
    b_sel_var: np.ndarray,
) -> dict[str, Any]:
    """Does the anomaly selection act on data as on the simulation? Per feature bin, the selected data
    against (data before the selection) x (the simulation's ASTF): the shape chi^2 (the prediction
    scaled to the selected data; the overall count is the selection's own test) and the largest pull
    before scaling.

    Arrays are per bin (sum w for data; sum w and sum w^2 for the simulation, all and selected). The
    simulation's ASTF in a bin is eps = S/A with variance ((1 - 2 eps) var(S) + eps^2 var(A)) / A^2,
    exact for a weighted subset S of A (with equal weights it is :func:`astf`'s eps (1 - eps) / n_eff);
    where the simulation has no event in a bin, its overall efficiency stands in.
    """
    total = b_sel.sum() / b_all.sum() if b_all.sum() > 0 else 0.0
    has = b_all > 0
    safe = np.where(has, b_all, 1.0)
    eps = np.where(has, b_sel / safe, total)
    var_eps = np.where(has, np.clip((1 - 2 * eps) * b_sel_var + eps**2 * b_all_var, 0, None) / safe**2, 0.0)
    expected = d_all * eps
    comparison = compare_counts(d_sel, expected, d_all**2 * var_eps, normalise=True)
    pull = (d_sel - expected) / np.sqrt(np.maximum(expected + d_all**2 * var_eps, 1e-12))
    k = int(np.argmax(pull))
    return {
        "chi2": comparison.chi2,
        "ndf": comparison.ndf,
        "p_value": comparison.p_value,
        "astf_ratio": comparison.norm_ratio,
        "observed": comparison.n_observed,
        "expected": comparison.n_expected,
        "largest_pull_bin": k,
        "largest_pull": float(pull[k]),
        "largest_pull_observed": float(d_sel[k]),
        "largest_pull_expected": float(expected[k]),
    }
