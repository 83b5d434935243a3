"""Significance of an observed yield over a background estimate (with its own error).

Pure functions on numpy arrays and :class:`hist.Hist` objects; larger score = more anomalous,
an event is selected when ``score > threshold``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from cms_anomaly.stats._common import StatisticsError
from scipy import stats as _sps

log = logging.getLogger(__name__)


def abcd_significance(n_observed: float, n_background: float, background_error: float = 0.0) -> float:
    """Significance ``(N - B)/sqrt(N)`` if ``N > B``, else 0 (Mikuni et al. sec. III).

    With ``background_error`` (the statistical error of the prediction, e.g. of ABCD control
    regions filled from a simulation smaller than the data) the denominator is
    ``sqrt(N + sigma_B^2)``; the paper's 800k-event sample makes that term negligible, a small
    simulation normalised to it does not.

    Parameters
    ----------
    n_observed : float
        Observed yield ``N`` in the signal region.
    n_background : float
        Predicted background ``B``.
    background_error : float
        Uncertainty of ``B`` (default 0: the paper's formula).

    Returns
    -------
    float
        The significance (never negative).
    """
    n, b = float(n_observed), float(n_background)
    return (n - b) / math.sqrt(n + float(background_error) ** 2) if n > b and n > 0 else 0.0


def on_off_significance(n_on: float, n_off: float, tau: float) -> float:
    r"""Significance :math:`Z_\mathrm{Bi}` of an excess over a background known from simulation.

    The "on/off" problem (Cousins, Linnemann, Tucker, NIM A 595 (2008) 480): ``n_on`` events are
    observed; the background was measured as ``n_off`` simulated (or control-region) entries that
    stand for ``tau`` times the expected background, :math:`b = n_\mathrm{off}/\tau`. Conditioning
    on :math:`n_\mathrm{on} + n_\mathrm{off}` gives the exact binomial p-value
    :math:`p = I_{1/(1+\tau)}(n_\mathrm{on}, n_\mathrm{off} + 1)` (regularised incomplete beta),
    and :math:`Z = \Phi^{-1}(1 - p)`. It stays defined when the simulation has no entry at all
    (``n_off = 0``), where ``(N - B)/sigma`` does not. For a weighted simulation use the effective
    entries ``n_off = B^2/sigma_B^2`` and ``tau = B/sigma_B^2``; with no entries, ``tau`` is one over
    the per-event weight.

    Parameters
    ----------
    n_on : float
        Observed events (> 0 for a non-zero significance).
    n_off : float
        Background entries (may be non-integer: effective entries).
    tau : float
        Ratio of the off (simulation) to the on exposure, > 0.

    Returns
    -------
    float
        Z in Gaussian sigma; 0 when ``n_on`` is 0 (no evidence either way); capped at 38
        (the double-precision limit of the p-value).
    """
    n_on, n_off, tau = float(n_on), float(n_off), float(tau)
    if not (n_on >= 0 and n_off >= 0 and tau > 0) or not all(map(math.isfinite, (n_on, n_off, tau))):
        raise StatisticsError(f"on_off_significance needs n_on >= 0, n_off >= 0, tau > 0; got {n_on}, {n_off}, {tau}")
    if n_on == 0:
        return 0.0
    return z_from_p(float(on_off_p(n_on, n_off, tau)), one_sided=False)


def on_off_p(n_on: Any, n_off: Any, tau: Any) -> Any:
    """The binomial p-value of :func:`on_off_significance`, ``I_{1/(1+tau)}(n_on, n_off + 1)``
    (element-wise on arrays; ``n_on`` > 0)."""
    from scipy.special import betainc

    return betainc(n_on, np.asarray(n_off) + 1.0, 1.0 / (1.0 + np.asarray(tau)))


#: the largest significance a double-precision p-value expresses (norm.isf of the smallest double ~ 37.5)
Z_MAX: float = 38.0


def z_from_p(p: float, *, one_sided: bool = True) -> float:
    """Gaussian significance of a p-value: ``Phi^-1(1 - p)``, capped at :data:`Z_MAX` (also for p = 0).

    ``one_sided``: p > 0.5 (a deficit) counts as 0 sigma; otherwise it gives a negative Z.
    """
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise StatisticsError(f"z_from_p: p must be in [0, 1], got {p}")
    z = float(min(_sps.norm.isf(p), Z_MAX)) if p > 0 else Z_MAX
    return max(0.0, z) if one_sided else z


def poisson_significance(n_observed: float, n_expected: float) -> float:
    """One-sided significance of ``n_observed`` events over a Poisson mean ``n_expected`` (no error on it).

    ``P(N >= n | b)`` converted with :func:`z_from_p`; NaN without an expectation (b <= 0).
    """
    if n_expected <= 0:
        return float("nan")
    p = float(_sps.poisson.sf(n_observed - 1, n_expected)) if n_observed > 0 else 1.0
    return z_from_p(p)


def poisson_gamma_p(n_observed: Any, n_expected: Any, expected_error: Any) -> np.ndarray:
    r"""One-sided p-value ``P(N >= n)`` of a Poisson count whose mean carries an uncertainty (element-wise).

    The Poisson mean is marginalised over a Gamma distribution with mean ``b`` (``n_expected``) and
    standard deviation :math:`\sigma_b` (``expected_error``), shape :math:`k = b^2/\sigma_b^2` and
    scale :math:`\theta = \sigma_b^2/b`: the prior-predictive (Bayesian-hybrid) p-value of Cousins,
    Linnemann and Tucker, NIM A 595 (2008) 480. The marginal count is negative binomial, so

    .. math:: p = P(N \ge n) = I_{\theta/(1+\theta)}(n, k) \quad (n \ge 1), \qquad p = 1 \quad (n = 0),

    with :math:`I` the regularised incomplete beta function. It tends to the Poisson tail
    ``poisson.sf(n - 1, b)`` as :math:`\sigma_b \to 0` (used exactly where :math:`\sigma_b = 0`),
    and is larger than it for :math:`\sigma_b > 0` and ``n`` above ``b``.

    Parameters
    ----------
    n_observed : array_like
        Observed counts (non-negative).
    n_expected : array_like
        Expected counts ``b`` (> 0).
    expected_error : array_like
        Standard deviation of ``b`` (>= 0).

    Returns
    -------
    numpy.ndarray
        p-values of the broadcast shape.
    """
    from scipy.special import betainc

    n = np.asarray(n_observed, dtype=np.float64)
    b = np.asarray(n_expected, dtype=np.float64)
    s = np.asarray(expected_error, dtype=np.float64)
    if np.any(n < 0) or np.any(~(b > 0)) or np.any(~(s >= 0)):
        raise StatisticsError("poisson_gamma_p needs n_observed >= 0, n_expected > 0 and expected_error >= 0")
    n, b, s = np.broadcast_arrays(n, b, s)
    p = np.ones(n.shape)
    mixed, plain = (n > 0) & (s > 0), (n > 0) & (s == 0)
    s2 = s[mixed] ** 2
    p[mixed] = betainc(n[mixed], b[mixed] ** 2 / s2, s2 / (b[mixed] + s2))
    p[plain] = _sps.poisson.sf(n[plain] - 1.0, b[plain])
    return p
