"""Does a model describe the observed counts? Binned goodness of fit of data against simulation.

Pearson's chi^2 with the simulation's own statistical error: per bin
``(n - mu)^2 / (mu + sigma_mu^2)``, ``n`` Poisson, ``mu`` the prediction with its ``sum w^2``
variance. Sparse bins are merged left to right until each holds ``min_expected`` predicted
events (5, the usual validity condition of the chi^2 approximation; Cowan, *Statistical Data
Analysis*, sec. 7.5), so that tails with one or two events do not dominate the sum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.stats as _sps
from cms_anomaly.stats._common import StatisticsError


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare_counts`."""

    n_observed: float
    n_expected: float
    #: n_observed / n_expected with its error (data Poisson and simulation ``sum w^2``)
    norm_ratio: float
    norm_ratio_error: float
    chi2: float
    ndf: int
    p_value: float
    #: bins after merging
    bins: int

    @property
    def chi2_ndf(self) -> float:
        return self.chi2 / self.ndf if self.ndf > 0 else float("nan")

    @property
    def norm_pull(self) -> float:
        """(ratio - 1) in units of its error."""
        return (self.norm_ratio - 1.0) / self.norm_ratio_error if self.norm_ratio_error > 0 else float("nan")


def merge_groups(expected: np.ndarray, *, min_expected: float = 5.0) -> np.ndarray:
    """Group label per bin: adjacent bins merged left to right until each group has
    ``sum(expected) >= min_expected``; a short last group joins the one before it."""
    expected = np.asarray(expected, dtype=np.float64)
    groups = np.zeros(expected.size, dtype=np.int64)
    g, acc = 0, 0.0
    for i, e in enumerate(expected):  # one pass over the bins of one histogram (tens of bins)
        groups[i] = g
        acc += e
        if acc >= min_expected and i < expected.size - 1:
            g, acc = g + 1, 0.0
    if g > 0 and acc < min_expected:
        groups[groups == g] = g - 1
    return groups


def compare_counts(
    observed: np.ndarray,
    expected: np.ndarray,
    expected_variance: np.ndarray | None = None,
    *,
    normalise: bool = False,
    min_expected: float = 5.0,
) -> Comparison:
    """chi^2 of ``observed`` counts against ``expected`` (bins merged to ``min_expected``).

    ``normalise``: compare shapes only (the prediction scaled to the observed total; one degree of
    freedom fewer). The normalisation ratio is reported either way.
    """
    n = np.asarray(observed, dtype=np.float64).ravel()
    mu = np.asarray(expected, dtype=np.float64).ravel()
    var = np.zeros_like(mu) if expected_variance is None else np.asarray(expected_variance, dtype=np.float64).ravel()
    if not (n.shape == mu.shape == var.shape):
        raise StatisticsError(f"compare_counts: shapes {n.shape}, {mu.shape}, {var.shape} differ")
    if np.any(~np.isfinite(n)) or np.any(~np.isfinite(mu)) or np.any(mu < 0) or np.any(var < 0):
        raise StatisticsError("compare_counts: counts must be finite and the prediction non-negative")
    n_tot, mu_tot, var_tot = float(n.sum()), float(mu.sum()), float(var.sum())
    if mu_tot <= 0:
        nan = float("nan")
        return Comparison(n_tot, mu_tot, nan, nan, nan, 0, nan, 0)
    ratio = n_tot / mu_tot
    ratio_err = ratio * float(np.sqrt((1.0 / n_tot if n_tot > 0 else 0.0) + var_tot / mu_tot**2))
    scale = n_tot / mu_tot if normalise else 1.0
    mu, var = mu * scale, var * scale**2
    groups = merge_groups(mu, min_expected=min_expected)
    size = int(groups.max()) + 1
    n_g = np.bincount(groups, weights=n, minlength=size)
    mu_g = np.bincount(groups, weights=mu, minlength=size)
    var_g = np.bincount(groups, weights=var, minlength=size)
    denom = mu_g + var_g
    use = denom > 0
    chi2 = float(np.sum((n_g[use] - mu_g[use]) ** 2 / denom[use]))
    ndf = int(use.sum()) - (1 if normalise else 0)
    p = float(_sps.chi2.sf(chi2, ndf)) if ndf > 0 else float("nan")
    return Comparison(n_tot, mu_tot, ratio, ratio_err, chi2, ndf, p, size)
