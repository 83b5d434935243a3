"""A goodness-of-fit test statistic turned into a p-value by its pseudo-experiments.

Pure functions on numbers and numpy arrays. ``t_null`` are the statistic's values on
background-only pseudo-experiments, ``t_obs`` its value on the data. The empirical p-value counts
the pseudo-experiments at least as extreme, ``(k + 1) / (n + 1)`` (the observation counted as one
of them, so that it is never 0 and is exactly uniform under the null); beyond the last
pseudo-experiment it is bounded by ``1 / (n + 1)``, and the tail comes from a chi2 fitted to the
pseudo-experiments (maximum likelihood over its degrees of freedom), as for the New Physics Learning
Machine (D'Agnolo and Wulzer, Phys. Rev. D 99 (2019) 015014, sec. IV: the null distribution of t is
close to a chi2 whose degrees of freedom are of the order of the network's parameters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from cms_anomaly.stats._common import StatisticsError
from scipy import stats as _sps

#: the chi2 fit needs this many finite pseudo-experiments to say anything about a tail
MIN_TOYS_FOR_CHI2: int = 20


@dataclass(frozen=True)
class ToyPValue:
    """``t_obs`` against its null pseudo-experiments.

    Attributes
    ----------
    t_obs : float
        The statistic on the data.
    n_toys : int
        Finite pseudo-experiments used.
    n_above : int
        Pseudo-experiments with ``t >= t_obs``.
    p_empirical : float
        ``(n_above + 1) / (n_toys + 1)``.
    ndof : float
        Degrees of freedom of the chi2 fitted to the pseudo-experiments (nan with too few).
    p_chi2 : float
        ``chi2(ndof).sf(t_obs)``: the tail beyond the pseudo-experiments.
    z : float
        One-sided significance of ``p_empirical`` (of ``p_chi2`` where no pseudo-experiment
        reaches ``t_obs``; that is an extrapolation the chi2 carries).
    """

    t_obs: float
    n_toys: int
    n_above: int
    p_empirical: float
    ndof: float
    p_chi2: float
    z: float

    @property
    def beyond_toys(self) -> bool:
        """No pseudo-experiment reaches ``t_obs``: the p-value is the chi2's extrapolation."""
        return self.n_above == 0


def chi2_ndof(t_null: npt.ArrayLike) -> float:
    """Maximum-likelihood degrees of freedom of a chi2 (location 0, scale 1) fitted to ``t_null``.

    Values <= 0 (a training that ended at the start) are clipped to a small positive value: a chi2
    density is positive only for t > 0.
    """
    t = np.asarray(t_null, dtype=np.float64)
    t = t[np.isfinite(t)]
    if len(t) < MIN_TOYS_FOR_CHI2:
        raise StatisticsError(f"a chi2 fit needs >= {MIN_TOYS_FOR_CHI2} finite pseudo-experiments, got {len(t)}")
    t = np.clip(t, 1e-6, None)
    # the mean of a chi2 is its ndof: the start value of the fit
    ndof, _, _ = _sps.chi2.fit(t, max(float(np.mean(t)), 0.5), floc=0, fscale=1)
    return float(ndof)


def toy_p_value(t_obs: float, t_null: npt.ArrayLike) -> ToyPValue:
    """The p-value of ``t_obs`` from the null pseudo-experiments ``t_null`` (larger t: less compatible)."""
    if not math.isfinite(t_obs):
        raise StatisticsError(f"t_obs must be finite, got {t_obs}")
    t = np.asarray(t_null, dtype=np.float64)
    t = t[np.isfinite(t)]
    if len(t) == 0:
        raise StatisticsError("no finite pseudo-experiment in t_null")
    n_above = int(np.count_nonzero(t >= t_obs))
    p_emp = (n_above + 1) / (len(t) + 1)
    ndof = chi2_ndof(t) if len(t) >= MIN_TOYS_FOR_CHI2 else float("nan")
    p_chi2 = float(_sps.chi2.sf(t_obs, ndof)) if math.isfinite(ndof) else float("nan")
    p_for_z = p_chi2 if n_above == 0 and math.isfinite(p_chi2) else p_emp
    z = float(_sps.norm.isf(min(p_for_z, 0.5))) if p_for_z > 0 else float("inf")
    return ToyPValue(
        t_obs=float(t_obs), n_toys=len(t), n_above=n_above, p_empirical=p_emp, ndof=ndof, p_chi2=p_chi2, z=z
    )
