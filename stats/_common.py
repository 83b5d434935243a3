"""Constants, the error class and input checks shared by the statistics modules."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)


#: integrated luminosity per month of LHC running (Cerri et al. sec. 1: ~40 fb^-1 in 8 months)
LUMI_PER_MONTH_FB: float = 5.0
#: confidence level of a +-1 sigma Gaussian interval
ONE_SIGMA_CL: float = 0.6826894921370859
#: SM false-positive-rate working points: ~1000 SM events/month (Cerri Table 2), 1e-5 (Knapp), 1e-3
SM_WORKING_POINTS: tuple[float, ...] = (5.4e-6, 1e-5, 1e-3)
_PB_PER_INV_FB = 1000.0  # 1 fb^-1 = 1000 pb^-1


class StatisticsError(ValueError):
    """Invalid input to a statistics function (the message names the argument and value)."""


# ----------------------------------------------------------------------------- input checks
def _as_1d(values: npt.ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise StatisticsError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _weights_for(scores: np.ndarray, weights: npt.ArrayLike | None, name: str) -> np.ndarray:
    if weights is None:
        return np.ones_like(scores)
    w = _as_1d(weights, name)
    if w.shape != scores.shape:
        raise StatisticsError(f"{name} has shape {w.shape} but its scores have shape {scores.shape}")
    if not np.all(np.isfinite(w)):
        raise StatisticsError(f"{name} contains non-finite values")
    return w


def _finite_scores(scores: npt.ArrayLike, weights: npt.ArrayLike | None, name: str) -> tuple[np.ndarray, np.ndarray]:
    s = _as_1d(scores, name)
    w = _weights_for(s, weights, f"{name} weights")
    bad = np.isnan(s)
    if bad.any():
        raise StatisticsError(f"{name} contains {int(bad.sum())} NaN scores")
    return s, w


def effective_entries(weights: npt.ArrayLike) -> float:
    """Kish effective number of entries of a weighted sample.

    ``n_eff = (sum_i w_i)^2 / sum_i w_i^2``; equals the number of events for unit weights.

    Parameters
    ----------
    weights : array_like
        Per-event weights.

    Returns
    -------
    float
        The effective number of entries (0 for an empty sample).
    """
    w = np.asarray(weights, dtype=np.float64)
    return float(effective_entries_from_sums(np.sum(w), np.sum(w * w)))


def effective_entries_from_sums(sumw: npt.ArrayLike, sumw2: npt.ArrayLike) -> Any:
    """``(sum w)^2 / sum w^2`` from the sums (histogram bins with ``Weight`` storage), element-wise;
    0 where ``sum w^2`` is 0. A float for scalar input."""
    sw = np.asarray(sumw, dtype=np.float64)
    sw2 = np.asarray(sumw2, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(sw2 > 0, sw * sw / np.where(sw2 > 0, sw2, 1.0), 0.0)
    return float(out) if out.ndim == 0 else out
