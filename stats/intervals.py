"""Binomial intervals and efficiencies of (weighted) selections (Agresti-Coull; Knapp et al. ref. [45]).

Pure functions on numpy arrays and :class:`hist.Hist` objects; larger score = more anomalous,
an event is selected when ``score > threshold``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from cms_anomaly.stats._common import ONE_SIGMA_CL, StatisticsError, _weights_for, effective_entries_from_sums
from scipy import stats as _sps

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- binomial intervals
@dataclass(frozen=True)
class BinomialInterval:
    """An efficiency estimate with its Agresti-Coull interval (arrays broadcast like the inputs).

    Attributes
    ----------
    estimate : numpy.ndarray
        Maximum-likelihood efficiency ``k / n`` (NaN where ``n == 0``).
    center : numpy.ndarray
        Agresti-Coull centre ``p~ = (k + z^2/2) / (n + z^2)``.
    low, high : numpy.ndarray
        Interval bounds, clipped to [0, 1].
    cl : float
        Confidence level of the interval.
    """

    estimate: np.ndarray
    center: np.ndarray
    low: np.ndarray
    high: np.ndarray
    cl: float

    @property
    def error_low(self) -> np.ndarray:
        """Distance from the estimate down to ``low`` (for asymmetric error bars)."""
        return np.where(np.isfinite(self.estimate), self.estimate - self.low, np.nan)

    @property
    def error_high(self) -> np.ndarray:
        """Distance from the estimate up to ``high``."""
        return np.where(np.isfinite(self.estimate), self.high - self.estimate, np.nan)


def agresti_coull_interval(
    passed: npt.ArrayLike, total: npt.ArrayLike, *, cl: float = ONE_SIGMA_CL
) -> BinomialInterval:
    r"""Agresti-Coull interval for a binomial proportion (Agresti & Coull 1998; Knapp et al. ref. [45]).

    With :math:`z = \Phi^{-1}(1 - (1-\mathrm{CL})/2)`, :math:`\tilde n = n + z^2` and
    :math:`\tilde p = (k + z^2/2)/\tilde n` the interval is

    .. math:: \tilde p \pm z \sqrt{\tilde p (1-\tilde p) / \tilde n},

    clipped to [0, 1]. For CL = 95 % this is the "add two successes and two failures" rule.
    Non-integer ``passed``/``total`` (effective counts of weighted events) are accepted.

    Parameters
    ----------
    passed : array_like
        Number of successes ``k`` (``0 <= k <= n``).
    total : array_like
        Number of trials ``n``; ``n = 0`` gives the uninformative interval [0, 1].
    cl : float
        Two-sided confidence level, default 68.27 % (one sigma).

    Returns
    -------
    BinomialInterval
        MLE ``k/n``, the AC centre and the bounds.

    Raises
    ------
    StatisticsError
        If ``cl`` is outside (0, 1), or counts are negative or ``k > n``.
    """
    if not 0.0 < cl < 1.0:
        raise StatisticsError(f"agresti_coull_interval: cl must be in (0, 1), got {cl}")
    k = np.asarray(passed, dtype=np.float64)
    n = np.asarray(total, dtype=np.float64)
    if np.any(k < 0) or np.any(n < 0):
        raise StatisticsError("agresti_coull_interval: passed and total must be non-negative")
    if np.any(k > n * (1 + 1e-9) + 1e-12):
        raise StatisticsError("agresti_coull_interval: passed exceeds total in at least one entry")
    z = float(_sps.norm.isf((1.0 - cl) / 2.0))
    n_t = n + z * z
    p_t = (k + z * z / 2.0) / n_t
    half = z * np.sqrt(p_t * (1.0 - p_t) / n_t)
    with np.errstate(invalid="ignore", divide="ignore"):
        est = np.where(n > 0, k / np.where(n > 0, n, 1.0), np.nan)
    # n = 0 carries no information: exactly [0, 1] (the formula gives it up to round-off)
    low = np.where(n > 0, np.clip(p_t - half, 0.0, 1.0), 0.0)
    high = np.where(n > 0, np.clip(p_t + half, 0.0, 1.0), 1.0)
    return BinomialInterval(estimate=est, center=p_t, low=low, high=high, cl=cl)


def efficiency_from_sums(
    w_pass: npt.ArrayLike, w_total: npt.ArrayLike, w2_total: npt.ArrayLike, *, cl: float = ONE_SIGMA_CL
) -> BinomialInterval:
    """Efficiency ``w_pass / w_total`` of a weighted selection from its sums (e.g. histogram bins
    with ``Weight`` storage), with the Agresti-Coull interval in effective entries of the total."""
    w_pass = np.asarray(w_pass, dtype=np.float64)
    w_total = np.asarray(w_total, dtype=np.float64)
    w2_total = np.asarray(w2_total, dtype=np.float64)
    n_eff = effective_entries_from_sums(w_total, w2_total)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(w_total > 0, w_pass / np.where(w_total != 0, w_total, 1.0), np.nan)
    k_eff = np.clip(np.nan_to_num(p, nan=0.0), 0.0, 1.0) * n_eff
    ac = agresti_coull_interval(k_eff, n_eff, cl=cl)
    return BinomialInterval(estimate=p, center=ac.center, low=ac.low, high=ac.high, cl=cl)


def weighted_efficiency(
    passed: npt.ArrayLike, weights: npt.ArrayLike | None = None, *, cl: float = ONE_SIGMA_CL
) -> BinomialInterval:
    """Efficiency of a selection on a (weighted) sample with its Agresti-Coull interval.

    Parameters
    ----------
    passed : array_like of bool
        Per-event selection decision, shape (N,).
    weights : array_like, optional
        Per-event weights (unit by default); the interval uses effective entries.
    cl : float
        Confidence level.

    Returns
    -------
    BinomialInterval
        Scalar efficiency ``sum(w[passed]) / sum(w)`` and its interval.
    """
    mask = np.asarray(passed, dtype=bool)
    if mask.ndim != 1:
        raise StatisticsError(f"weighted_efficiency: passed must be one-dimensional, got shape {mask.shape}")
    w = _weights_for(mask.astype(np.float64), weights, "weights")
    return efficiency_from_sums(w[mask].sum(), w.sum(), np.sum(w * w), cl=cl)


def enrichment_factor(
    process_passed: Any,
    all_passed: Any,
    *,
    process_weights: Any = None,
    all_weights: Any = None,
    cl: float = ONE_SIGMA_CL,
) -> tuple[float, float]:
    r"""How much a selection enriches one process: :math:`\epsilon_\mathrm{process} / \epsilon_\mathrm{all}`.

    Equal to (process fraction after the selection) / (process fraction before), e.g. the
    ttbar enrichment at the alpha = 1e-3 anomaly selection (Knapp et al. sec. 4: about x20).
    The error propagates the symmetrised Agresti-Coull half-widths of both efficiencies
    (treated as independent, conservative when the process is part of "all").

    Parameters
    ----------
    process_passed : array_like of bool
        Selection decision for the events of the process (e.g. labelled ttbar MC).
    all_passed : array_like of bool
        Selection decision for all events (data, or the full MC mixture).
    process_weights, all_weights : array_like, optional
        Per-event weights.
    cl : float
        Confidence level of the efficiency intervals.

    Returns
    -------
    tuple of float
        ``(enrichment, error)``.
    """
    e_p = weighted_efficiency(process_passed, process_weights, cl=cl)
    e_a = weighted_efficiency(all_passed, all_weights, cl=cl)
    r, err = ratio_uncertainty(e_p.estimate, 0.5 * (e_p.high - e_p.low), e_a.estimate, 0.5 * (e_a.high - e_a.low))
    return float(r), float(err)


def ratio_uncertainty(
    numerator: npt.ArrayLike,
    numerator_error: npt.ArrayLike,
    denominator: npt.ArrayLike,
    denominator_error: npt.ArrayLike,
) -> tuple[np.ndarray, np.ndarray]:
    """Ratio ``r = a / b`` of independent quantities with first-order error propagation.

    ``sigma_r = |r| sqrt((sigma_a/a)^2 + (sigma_b/b)^2)``; for ``a == 0`` the error is
    ``sigma_a / |b|``. NaN where ``b == 0``.

    Parameters
    ----------
    numerator, numerator_error : array_like
        ``a`` and its standard error.
    denominator, denominator_error : array_like
        ``b`` and its standard error.

    Returns
    -------
    tuple of numpy.ndarray
        ``(r, sigma_r)``.
    """
    a = np.asarray(numerator, dtype=np.float64)
    sa = np.asarray(numerator_error, dtype=np.float64)
    b = np.asarray(denominator, dtype=np.float64)
    sb = np.asarray(denominator_error, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(b != 0, a / np.where(b != 0, b, 1.0), np.nan)
        rel2 = np.where(a != 0, (sa / np.where(a != 0, a, 1.0)) ** 2, 0.0) + (sb / np.where(b != 0, b, 1.0)) ** 2
        err = np.where(a != 0, np.abs(r) * np.sqrt(rel2), sa / np.abs(np.where(b != 0, b, np.nan)))
    return r, err
