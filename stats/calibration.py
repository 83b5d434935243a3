"""Whether a calibrated anomaly selection can be trusted: the alphas its calibration resolves, and
whether the simulation passes it as often as the data it was set on.

Pure functions on numbers and numpy arrays. The setting: k detectors, each calibrated to a rarity
``-log10 p`` on its own ``n`` validation events (``p = (1 + n_above) / (n + 1)``), and a selection
keeping the fraction alpha of the data, its threshold set on the data.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from cms_anomaly.stats._common import StatisticsError
from cms_anomaly.stats.intervals import efficiency_from_sums
from scipy import stats as _sps

log = logging.getLogger(__name__)

#: validation events of every fold that must score above a selection's threshold for the rarity to
#: place it: the fraction of a fold's events above it, on which the k models' common scale rests, is
#: known to 1 / sqrt(count) (Poisson), 45 % at 5, i.e. the rarity to +-0.2 (a fifth of a decade); below
#: one event a fold's rarity cannot reach -log10(alpha) at all (its largest value is log10(n + 1))
MIN_CALIBRATION_COUNT: int = 5
#: the simulated acceptance "is far from alpha" when even the lower end of its interval is above this
#: many times alpha: a simulation that passes a selection twice (or more) as often as the data it was set
#: on is not an excess the simulation underestimates but events it does not describe
ACCEPTANCE_TOLERANCE: float = 2.0
#: confidence level of that interval: +-3 sigma, so that a small simulation's fluctuation does not trip it
THREE_SIGMA_CL: float = float(1.0 - 2.0 * _sps.norm.sf(3.0))


def min_validation_events(alpha: float, *, min_count: int = MIN_CALIBRATION_COUNT) -> int:
    """The validation events per fold a selection keeping ``alpha`` needs: ``ceil(min_count / alpha)``.

    Parameters
    ----------
    alpha : float
        Fraction of the data selected, in (0, 1).
    min_count : int
        Validation events of a fold that must lie above the threshold (:data:`MIN_CALIBRATION_COUNT`).

    Returns
    -------
    int
        E.g. 500 for alpha = 0.01 and the default 5.
    """
    if not 0.0 < alpha < 1.0:
        raise StatisticsError(f"min_validation_events: alpha must be in (0, 1), got {alpha}")
    if min_count < 1:
        raise StatisticsError(f"min_validation_events: min_count must be >= 1, got {min_count}")
    # the product rounds up to an integer only where it is one (0.01 x 500 = 5 in floating point)
    return math.ceil(round(min_count / alpha, 9))


def calibratable(alpha: float, n_validation: int | Sequence[int], *, min_count: int = MIN_CALIBRATION_COUNT) -> bool:
    """True when every fold has the validation events (:func:`min_validation_events`) to place a
    threshold at ``alpha``: ``min(n_validation) * alpha >= min_count``.

    Parameters
    ----------
    alpha : float
        Fraction of the data selected, in (0, 1).
    n_validation : int or list of int
        Validation (calibration) events of each fold; the smallest decides.
    min_count : int
        See :data:`MIN_CALIBRATION_COUNT`.
    """
    sizes = [int(n_validation)] if isinstance(n_validation, int | np.integer) else [int(n) for n in n_validation]
    if not sizes or min(sizes) < 0:
        raise StatisticsError(f"calibratable: n_validation must be non-negative counts, got {n_validation}")
    return min(sizes) >= min_validation_events(alpha, min_count=min_count)


@dataclass(frozen=True)
class AcceptanceCheck:
    """The simulation's acceptance of a selection set to keep ``alpha`` of the data.

    Attributes
    ----------
    alpha : float
        The data fraction the selection keeps.
    acceptance : float
        ``sum w`` of the simulated events passing it over ``sum w`` of all simulated events.
    low, high : float
        Its Agresti-Coull interval at ``cl`` (effective entries of the weighted simulation).
    cl : float
        The interval's confidence level.
    tolerance : float
        The factor on alpha the lower end must exceed for ``separates``.
    separates : bool
        ``low > tolerance * alpha``: the selection (a detector trained on the data) passes the
        simulation far more often than the data, i.e. it tells simulation from data.
    """

    alpha: float
    acceptance: float
    low: float
    high: float
    cl: float
    tolerance: float
    separates: bool


def acceptance_check(
    w_pass: float,
    w_total: float,
    w2_total: float,
    alpha: float,
    *,
    tolerance: float = ACCEPTANCE_TOLERANCE,
    cl: float = THREE_SIGMA_CL,
) -> AcceptanceCheck:
    """Is the simulation's acceptance of a selection that keeps ``alpha`` of the data far above alpha?

    One-sided: an acceptance below alpha is what an excess in the data looks like (the data hold
    more anomalous events than the simulation predicts) and is what the significance measures; an
    acceptance far above alpha means the simulated events look anomalous to a detector trained on the
    data, so the significance of that selection compares the data with events it does not describe.

    Parameters
    ----------
    w_pass : float
        Sum of the weights of the simulated events passing the selection.
    w_total, w2_total : float
        Sum of the weights, and of their squares, of all simulated events (before the selection).
    alpha : float
        The fraction of the data the selection keeps, in (0, 1).
    tolerance : float
        :data:`ACCEPTANCE_TOLERANCE`, > 1.
    cl : float
        Confidence level of the acceptance interval (:data:`THREE_SIGMA_CL`).

    Returns
    -------
    AcceptanceCheck
    """
    if not 0.0 < alpha < 1.0:
        raise StatisticsError(f"acceptance_check: alpha must be in (0, 1), got {alpha}")
    if not tolerance > 1.0:
        raise StatisticsError(f"acceptance_check: tolerance must be > 1, got {tolerance}")
    if not (w_total > 0 and w2_total > 0):
        raise StatisticsError(f"acceptance_check: no simulated weight (sum w {w_total}, sum w^2 {w2_total})")
    if not 0.0 <= w_pass <= w_total * (1 + 1e-9):
        raise StatisticsError(f"acceptance_check: passing weight {w_pass} outside [0, {w_total}]")
    eff = efficiency_from_sums(w_pass, w_total, w2_total, cl=cl)
    low = float(eff.low)
    return AcceptanceCheck(
        alpha=float(alpha),
        acceptance=float(eff.estimate),
        low=low,
        high=float(eff.high),
        cl=float(cl),
        tolerance=float(tolerance),
        separates=bool(low > tolerance * alpha),
    )
