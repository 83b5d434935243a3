"""Where is the excess, and how significant is it once every place that was looked at is counted?

A scan of contiguous windows of mass bins (BumpHunter's windows, Choudalakis arXiv:1101.0390) over
several nested anomaly selections and several mass variables. The local significance of a window
is Z_Bi (:func:`~cms_anomaly.stats.significance.on_off_significance`): the background prediction
is simulation with its own statistical error. The global significance is the fraction of
pseudo-experiments whose largest local significance, over every selection, variable and window,
reaches the observed one, counted as ``(n_ge + 1)/(N + 1)`` (the observation is one draw of the null).

Each pseudo-experiment repeats the whole comparison under the background-only hypothesis, a
parametric bootstrap: both the data and the simulation are drawn anew, and every window's Z_Bi is
computed against the drawn simulation. Their common truth in each bin is the background-only
maximum-likelihood estimate from the data ``n`` and the simulated entries ``k`` together,
``mu = w (n + k)/(1 + w)`` with ``w`` the bin's weight per simulated entry (``sum w^2 / sum w``,
one simulated event's weight where the simulation is empty); the data are Poisson(mu), the
simulation ``w`` times Poisson(mu / w). Drawing the data alone around the simulation's point
estimate puts no event where the simulation is empty and keeps the prediction the data are
compared with fixed: it undercounts the maxima of the null and gives too small global p-values.
The selections are nested, so the pseudo-experiments draw disjoint score intervals and add them
up. The mass variables of one event are correlated; the pseudo-experiments draw them
independently, which widens the null distribution of the maximum: with correlated variables the
global p-value is conservative (too large) by that.

Why not pyBumpHunter (:mod:`~cms_anomaly.stats.bumphunt`) here: it takes the reference as an exact
Poisson mean, while a simulation no larger than the data is empty in the tails where an anomaly
selection puts its events; Z_Bi counts that error, and the scan spans several spectra and selections.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from cms_anomaly.stats._common import StatisticsError
from cms_anomaly.stats.significance import Z_MAX, on_off_p


def z_bi(n_on: np.ndarray, b: np.ndarray, b_var: np.ndarray, *, unit_weight: float) -> np.ndarray:
    """Vectorised one-sided Z_Bi of ``n_on`` over ``b`` (variance ``b_var``); 0 for no excess.

    Without simulated entries (``b`` or ``b_var`` 0) the simulation's exposure is one over
    ``unit_weight``, the weight of one simulated event, as in :func:`on_off_significance`.
    """
    import scipy.stats as sps

    n_on, b, b_var = (np.asarray(a, dtype=np.float64) for a in (n_on, b, b_var))
    n_on, b, b_var = np.broadcast_arrays(n_on, b, b_var)
    has = (b > 0) & (b_var > 0)
    n_off = np.where(has, b**2 / np.where(has, b_var, 1.0), 0.0)
    tau = np.where(has, b / np.where(has, b_var, 1.0), 1.0 / unit_weight)
    excess = n_on > n_off / tau
    z = np.zeros(n_on.shape)
    if np.any(excess):
        p = on_off_p(n_on[excess], n_off[excess], tau[excess])
        z[excess] = np.minimum(np.where(p > 0, sps.norm.isf(np.maximum(p, 1e-300)), Z_MAX), Z_MAX)
    return np.maximum(z, 0.0)


def windows(n_bins: int, widths: Sequence[int]) -> list[tuple[int, int]]:
    """Every (start, stop) bin range of the given widths, plus the whole range (the count alone)."""
    out = [(s, s + w) for w in sorted({int(w) for w in widths if 0 < w < n_bins}) for s in range(n_bins - w + 1)]
    return [*out, (0, n_bins)]


def _window_sums(x: np.ndarray, wins: list[tuple[int, int]]) -> np.ndarray:
    cs = np.concatenate([np.zeros((*x.shape[:-1], 1)), np.cumsum(x, axis=-1)], axis=-1)
    starts = np.array([a for a, _ in wins])
    stops = np.array([b for _, b in wins])
    return cs[..., stops] - cs[..., starts]


def _nested(x: np.ndarray) -> np.ndarray:
    """Disjoint score intervals (axis -2, loosest first) -> nested selections (>= interval j)."""
    return np.flip(np.cumsum(np.flip(x, axis=-2), axis=-2), axis=-2)


@dataclass(frozen=True)
class ScanResult:
    """The largest local excess of a scan and its global significance."""

    variable: str
    selection: int
    window: tuple[int, int]
    observed: float
    expected: float
    expected_error: float
    z_local: float
    p_global: float
    z_global: float
    #: no pseudo-experiment reached the observed maximum: ``z_global`` is a lower limit
    z_global_is_lower_limit: bool
    npe: int
    tests: int
    #: per variable and selection, the largest local significance and its window
    best_per_test: dict


def scan(
    observed: Mapping[str, np.ndarray],
    expected: Mapping[str, np.ndarray],
    variance: Mapping[str, np.ndarray],
    *,
    unit_weight: float,
    widths: Sequence[int] = (1, 2, 3, 4, 5, 6, 7),
    npe: int = 1000,
    seed: int,
) -> ScanResult:
    """Scan windows of every variable in every nested selection; global significance from pseudo-experiments.

    Parameters
    ----------
    observed, expected, variance
        Per variable, arrays (G, M): counts in G disjoint score intervals (loosest first; selection
        j keeps intervals >= j) times M mass bins; the prediction and its ``sum w^2``.
    unit_weight
        Weight of one simulated event (the prediction's resolution where it is empty).
    widths
        Window widths in bins (the whole range is always added).
    npe, seed
        Pseudo-experiments and their seed.
    """
    import scipy.stats as sps

    if not observed:
        raise StatisticsError("scan: no variable")
    rng = np.random.default_rng(seed)
    best: dict = {}
    obs_max, obs_arg = -1.0, None
    pe_max = np.zeros(npe)
    tests = 0
    for var in observed:
        n = np.asarray(observed[var], dtype=np.float64)
        b = np.asarray(expected[var], dtype=np.float64)
        v = np.asarray(variance[var], dtype=np.float64)
        if not (n.shape == b.shape == v.shape) or n.ndim != 2:
            raise StatisticsError(f"scan: {var}: shapes {n.shape}, {b.shape}, {v.shape} (need equal (G, M))")
        wins = windows(n.shape[1], widths)
        nb, bb, vb = (_window_sums(_nested(a), wins) for a in (n, b, v))  # (G, W)
        z = z_bi(nb, bb, vb, unit_weight=unit_weight)
        tests += z.size
        for j in range(z.shape[0]):
            k = int(np.argmax(z[j]))
            best[(var, j)] = {
                "z_local": float(z[j, k]),
                "window": wins[k],
                "observed": float(nb[j, k]),
                "expected": float(bb[j, k]),
                "expected_error": float(np.sqrt(vb[j, k])),
            }
            if z[j, k] > obs_max:
                obs_max, obs_arg = float(z[j, k]), (var, j, k, wins, nb, bb, vb)
        _update_pseudo_maxima(pe_max, rng, n, b, v, wins, unit_weight=unit_weight)
    assert obs_arg is not None  # the whole range is always a window: z >= 0 > -1
    var, j, k, wins, nb, bb, vb = obs_arg
    exceed = int(np.sum(pe_max >= obs_max - 1e-12))
    p_global = (exceed + 1.0) / (npe + 1.0)
    z_global = float(min(sps.norm.isf(p_global), Z_MAX)) if p_global < 1 else 0.0
    return ScanResult(
        variable=var,
        selection=j,
        window=wins[k],
        observed=float(nb[j, k]),
        expected=float(bb[j, k]),
        expected_error=float(np.sqrt(vb[j, k])),
        z_local=obs_max,
        p_global=float(p_global),
        z_global=max(z_global, 0.0),
        z_global_is_lower_limit=exceed == 0,
        npe=npe,
        tests=tests,
        best_per_test=best,
    )


def _update_pseudo_maxima(
    pe_max: np.ndarray,
    rng: np.random.Generator,
    n: np.ndarray,
    b: np.ndarray,
    v: np.ndarray,
    wins: list[tuple[int, int]],
    *,
    unit_weight: float,
) -> None:
    """Raise ``pe_max`` to each pseudo-experiment's largest window Z of one variable.

    Pseudo-experiments: data ~ Poisson(mu) and simulated entries ~ Poisson(mu / w) around the
    background-only estimate ``mu = w (n + k)/(1 + w)`` (module docstring); drawn in blocks of
    200, which bound the memory of (npe, G, W).
    """
    npe = pe_max.size
    has = (b > 0) & (v > 0)
    w = np.where(has, v / np.where(has, b, 1.0), unit_weight)  # weight per simulated entry
    k = np.where(has, b**2 / np.where(has, v, 1.0), 0.0)  # effective simulated entries
    mu = w * (n + k) / (1.0 + w)
    for start in range(0, npe, 200):
        m = min(200, npe - start)
        counts = rng.poisson(mu, size=(m, *b.shape)).astype(np.float64)
        sim = rng.poisson(mu / w, size=(m, *b.shape)).astype(np.float64)
        nb, bb, vb = (_window_sums(_nested(a), wins) for a in (counts, sim * w, sim * w**2))
        zp = z_bi(nb, bb, vb, unit_weight=unit_weight)
        pe_max[start : start + m] = np.maximum(pe_max[start : start + m], zp.reshape(m, -1).max(axis=1))
