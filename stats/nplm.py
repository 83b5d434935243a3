"""The New Physics Learning Machine on a binned sample: a goodness-of-fit test of data against a reference.

NPLM (D'Agnolo & Wulzer, Phys. Rev. D 99 (2019) 015014) learns the log-ratio ``f(x) = log n(x|data) /
n(x|reference)`` of the data's and the reference's densities by maximising the extended likelihood ratio;
the maximum is the test statistic. Here ``f`` is a kernel model as in its nonparametric form (Letizia et
al., Eur. Phys. J. C 82 (2022) 879, "Learning new physics efficiently with nonparametric methods"), on
binned inputs (a histogram of data counts and one of expected yields):

- **Points**: the centres of the bins where the reference is non-zero, each axis mapped to
  ``log(1 + x / unit)`` (``log_unit``; ``None``: linear) at the bin edges and centred between them, then
  centred and divided by its reference-weighted standard deviation (axes with none are left as they are).
  Reference weight of a point: its expected yield ``b``; data weight: its observed count ``n``. The
  observed events of a bin without reference are counted at the nearest point (standardised distance): at
  a point with data and no reference the loss below has no ``exp f`` term and is unbounded in ``f`` but for
  the penalty, so a thin simulation (a data event where the simulation has none, common in a 600-bin
  histogram) would make ``t`` as large as the penalty allows. Moved this way, an excess beyond the
  reference's reach is an excess at its edge.
- **Model**: ``f(x) = sum_j a_j K(x, c_j)``, ``K`` a Gaussian of width ``sigma``. The ``M`` centres are
  the points themselves when there are at most ``max_centres``, else ``max_centres`` of them drawn
  without replacement with ``seed`` (Nystrom centres, as Falkon's). ``sigma`` is the ``width_quantile``
  quantile of the points' pairwise distances (the 90th-percentile rule of Letizia et al.).
- **Loss**: ``L(a) = sum_R b (exp f - 1) - sum_D n f + (lambda/2) a^T K_MM a`` with
  ``lambda = lam * sum b`` (Falkon's objective averages the loss over events; ``lam`` is per expected event).
  ``L`` is convex; it is minimised by damped Newton steps (Armijo backtracking) in the whitened
  coordinates ``beta = K_MM^(1/2) a`` (eigen-directions of ``K_MM`` below ``1e-10`` of its largest
  eigenvalue dropped, so a wide kernel stays well conditioned), many pseudo-datasets at once.
  ``t = -2 min L`` (>= 0: ``a = 0`` gives ``L = 0``). With ``M`` = the points, a kernel narrower than
  the bin spacing and ``lam -> 0`` the fit saturates and ``t`` is the binned Poisson likelihood ratio
  ``2 sum [n ln(n/b) - (n - b)]``.
- **Calibration**: ``n_toys`` pseudo-datasets drawn from the reference, each bin's mean smeared by the
  reference's own error (a Gamma of ``b`` and its variance, then a Poisson:
  :func:`~cms_anomaly.stats.classes.pseudo_counts`), fitted with the same points, centres and width;
  ``p = (1 + #{t_toy >= t_obs}) / (1 + n_toys)``.

The points, centres and width are fixed by the reference (its non-empty bins) and shared by the data and
the pseudo-datasets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from cms_anomaly.stats._common import StatisticsError
from cms_anomaly.stats.classes import pseudo_counts

#: quantiles of the pseudo-datasets' t reported with a result
TOY_QUANTILES: tuple[float, ...] = (0.05, 0.5, 0.95, 0.99)
#: eigenvalues of K_MM below this fraction of the largest are dropped (numerical rank of the kernel)
_RCOND = 1e-10
_MAX_NEWTON = 100
_MAX_HALVINGS = 40
_TOL = 1e-9  # stop when every fit's Newton decrement^2 / 2 (the loss still to gain) is below this
_TOY_BLOCK = 256  # pseudo-datasets fitted together: bounds the (block, M, M) Hessians


@dataclass(frozen=True)
class NplmResult:
    """The NPLM test of one binned sample."""

    #: the test statistic of the data, ``-2 min L``
    t: float
    p: float
    n_toys: int
    #: t of the pseudo-datasets at :data:`TOY_QUANTILES`
    toy_quantiles: dict[float, float]
    #: (M, dims) kernel centres, in the standardised coordinates
    centres: np.ndarray
    width: float
    #: the penalty used, ``lam * sum b``
    lam: float
    n_points: int
    #: observed events in bins without reference, counted at their nearest point
    moved: float
    observed: float
    expected: float


def _coordinates(edges: Sequence[np.ndarray], log_unit: float | None) -> list[np.ndarray]:
    """Per axis, the bin centres in the (log) coordinates, midway between the transformed edges."""
    out = []
    for e in edges:
        u = np.log1p(np.asarray(e, dtype=np.float64) / log_unit) if log_unit else np.asarray(e, dtype=np.float64)
        out.append(0.5 * (u[1:] + u[:-1]))
    return out


def _points(
    b: np.ndarray, n: np.ndarray, edges: Sequence[np.ndarray], log_unit: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(index of the bins with reference, (N, dims) their standardised points, the observed counts at the
    points with each reference-less bin's added to its nearest point, the count so moved)."""
    from scipy.spatial.distance import cdist

    flat_b, flat_n = b.ravel(), n.ravel()
    centres = _coordinates(edges, log_unit)

    def coords(bins: np.ndarray) -> np.ndarray:
        idx = np.unravel_index(bins, b.shape)
        return np.stack([c[i] for c, i in zip(centres, idx, strict=True)], axis=1)

    keep, lone = np.flatnonzero(flat_b > 0), np.flatnonzero((flat_b <= 0) & (flat_n > 0))
    x, w = coords(keep), flat_b[keep]
    mean = (w[:, None] * x).sum(axis=0) / w.sum()
    scale = np.sqrt((w[:, None] * (x - mean) ** 2).sum(axis=0) / w.sum())
    scale = np.where(scale > 0, scale, 1.0)
    x = (x - mean) / scale
    counts = flat_n[keep].copy()
    if lone.size:
        nearest = np.argmin(cdist((coords(lone) - mean) / scale, x), axis=1)
        counts += np.bincount(nearest, weights=flat_n[lone], minlength=len(keep))
    return keep, x, counts, float(flat_n[lone].sum())


def kernel_features(points: np.ndarray, centres: np.ndarray, width: float) -> np.ndarray:
    """``(N, k)`` whitened kernel features ``Phi = K_NM U S^(-1/2)`` (``K_MM = U S U^T``, the ``k``
    eigen-directions above :data:`_RCOND`): ``f = Phi beta`` and ``a^T K_MM a = |beta|^2``."""
    from scipy.spatial.distance import cdist

    k_nm = np.exp(-0.5 * cdist(points, centres, "sqeuclidean") / width**2)
    k_mm = np.exp(-0.5 * cdist(centres, centres, "sqeuclidean") / width**2)
    s, u = np.linalg.eigh(k_mm)
    keep = s > _RCOND * s.max()
    return (k_nm @ u[:, keep]) / np.sqrt(s[keep])


def _loss(beta: np.ndarray, phi: np.ndarray, b: np.ndarray, n: np.ndarray, lam: float) -> np.ndarray:
    f = beta @ phi.T
    with np.errstate(over="ignore", invalid="ignore"):
        value = (b * np.expm1(f)).sum(axis=1) - (n * f).sum(axis=1) + 0.5 * lam * (beta * beta).sum(axis=1)
    return np.where(np.isfinite(value), value, np.inf)


def fit_t(counts: np.ndarray, b: np.ndarray, phi: np.ndarray, lam: float) -> np.ndarray:
    """``t = -2 min L`` (module docstring) of each row of ``counts`` (``(T, N)``) against the reference
    yields ``b`` (``(N,)``) with features ``phi`` (``(N, k)``): damped Newton, all rows together."""
    counts = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    beta = np.zeros((counts.shape[0], phi.shape[1]))
    value = np.zeros(counts.shape[0])
    eye = np.eye(phi.shape[1])
    for _ in range(_MAX_NEWTON):
        w = b * np.exp(np.minimum(beta @ phi.T, 700.0))
        grad = (w - counts) @ phi + lam * beta
        root = np.sqrt(w)[:, :, None] * phi
        hess = np.matmul(root.transpose(0, 2, 1), root) + (lam + 1e-12) * eye
        step = -np.linalg.solve(hess, grad[..., None])[..., 0]
        slope = (grad * step).sum(axis=1)  # -(Newton decrement)^2
        if (-0.5 * slope).max() < _TOL:
            break
        s = np.ones(counts.shape[0])
        new = _loss(beta + step, phi, b, counts, lam)
        for _ in range(_MAX_HALVINGS):
            bad = new > value + 1e-4 * s * slope
            if not bad.any():
                break
            s = np.where(bad, 0.5 * s, s)
            new = np.where(bad, _loss(beta + s[:, None] * step, phi, b, counts, lam), new)
        better = new <= value
        beta = np.where(better[:, None], beta + s[:, None] * step, beta)
        value = np.where(better, new, value)
    return -2.0 * value


def _check(observed: np.ndarray, expected: np.ndarray, variance: np.ndarray, edges: Sequence) -> None:
    shapes = {observed.shape, expected.shape, variance.shape}
    if len(shapes) != 1:
        raise StatisticsError(f"nplm_test: shapes {observed.shape}, {expected.shape}, {variance.shape} differ")
    if len(edges) != observed.ndim or any(len(e) != s + 1 for e, s in zip(edges, observed.shape, strict=False)):
        raise StatisticsError(f"nplm_test: edges of lengths {[len(e) for e in edges]} for shape {observed.shape}")
    for name, a in (("observed", observed), ("expected", expected), ("variance", variance)):
        if not np.all(np.isfinite(a)) or np.any(a < 0):
            raise StatisticsError(f"nplm_test: {name} must be finite and >= 0")
    if expected.sum() <= 0:
        raise StatisticsError("nplm_test: the reference is empty (expected yields sum to 0)")


def nplm_test(
    observed: npt.ArrayLike,
    expected: npt.ArrayLike,
    variance: npt.ArrayLike,
    edges: Sequence[npt.ArrayLike],
    *,
    n_toys: int,
    seed: int,
    lam: float = 1e-6,
    max_centres: int = 60,
    width_quantile: float = 0.9,
    width: float | None = None,
    log_unit: float | None = 1.0,
) -> NplmResult:
    """The NPLM test of observed counts against expected yields (module docstring).

    Parameters
    ----------
    observed, expected, variance
        Histograms of the same shape (any number of axes): observed counts, the reference's expected
        yields and those yields' variances (the simulation's sum of squared weights).
    edges
        The bin edges of each axis (in ``log_unit``'s units where that is given).
    n_toys, seed
        Pseudo-datasets of the calibration (>= 1) and their seed (also the seed of the centres).
    lam, max_centres, width_quantile, width
        Penalty per expected event, the most kernel centres, the quantile of the pairwise distances
        that sets the kernel width, or the width itself (standardised coordinates).
    """
    n, b, v = (np.asarray(a, dtype=np.float64) for a in (observed, expected, variance))
    axes = [np.asarray(e, dtype=np.float64) for e in edges]
    _check(n, b, v, axes)
    if n_toys < 1 or lam < 0 or max_centres < 1 or not 0 < width_quantile <= 1 or (width is not None and width <= 0):
        raise StatisticsError(
            f"nplm_test needs n_toys >= 1, lam >= 0, max_centres >= 1, 0 < width_quantile <= 1, width > 0; got "
            f"{n_toys}, {lam}, {max_centres}, {width_quantile}, {width}"
        )
    from scipy.spatial.distance import pdist

    keep, x, nk, moved = _points(b, n, axes, log_unit)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(x), max_centres, replace=False)) if len(x) > max_centres else np.arange(len(x))
    centres = x[chosen]
    if width is None:
        dist = pdist(x)
        width = float(np.quantile(dist, width_quantile)) if dist.size and dist.max() > 0 else 1.0
    phi = kernel_features(x, centres, width)
    bk, vk = b.ravel()[keep], v.ravel()[keep]
    penalty = lam * float(bk.sum())
    t_obs = float(fit_t(nk[None, :], bk, phi, penalty)[0])
    toys = np.concatenate(
        [
            fit_t(pseudo_counts(rng, bk, vk, min(_TOY_BLOCK, n_toys - first)), bk, phi, penalty)
            for first in range(0, n_toys, _TOY_BLOCK)
        ]
    )
    return NplmResult(
        t=t_obs,
        p=float((1 + np.count_nonzero(toys >= t_obs)) / (1 + n_toys)),
        n_toys=n_toys,
        toy_quantiles={q: float(v) for q, v in zip(TOY_QUANTILES, np.quantile(toys, TOY_QUANTILES), strict=True)},
        centres=centres,
        width=width,
        lam=penalty,
        n_points=len(x),
        moved=moved,
        observed=float(n.sum()),
        expected=float(b.sum()),
    )
