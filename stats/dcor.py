"""Distance correlation (Szekely et al. 2007), weighted; the DisCo term of Mikuni et al.

Pure functions on numpy arrays and :class:`hist.Hist` objects; larger score = more anomalous,
an event is selected when ``score > threshold``.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import numpy.typing as npt
from cms_anomaly.stats._common import StatisticsError, _weights_for

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- distance correlation
def distance_correlation(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    weights: npt.ArrayLike | None = None,
    squared: bool = False,
    block_size: int | None = None,
) -> float:
    r"""(Weighted) distance correlation of two samples (Szekely, Rizzo & Bakirov 2007).

    With :math:`a_{ij} = |x_i - x_j|`, :math:`b_{ij} = |y_i - y_j|` and normalised weights
    :math:`w_i` (sum 1), double centring :math:`A_{ij} = a_{ij} - \bar a_i - \bar a_j + \bar a`
    (weighted means) gives :math:`\mathrm{dCov}^2 = \sum_{ij} w_i w_j A_{ij} B_{ij}`, computed as
    :math:`\sum_{ij} w_i w_j a_{ij} b_{ij} - 2 \sum_i w_i \bar a_i \bar b_i + \bar a \bar b`
    without storing the N x N matrices. ``dCor^2 = dCov^2(x,y)/sqrt(dCov^2(x,x) dCov^2(y,y))``
    (the V-statistic used by the DisCo regulariser, Mikuni et al. eq. 2). 0 for independent
    variables (up to O(1/sqrt N) bias), 1 for ``y = a x + b``. Time O(N^2), memory O(N * block).

    Parameters
    ----------
    x, y : array_like
        Samples of shape (N,) or (N, d) (Euclidean distances for d > 1).
    weights : array_like, optional
        Per-event weights, shape (N,).
    squared : bool
        Return dCor^2 instead of dCor.
    block_size : int, optional
        Rows per block; default keeps a block below ~4e6 matrix elements.

    Returns
    -------
    float
        Distance correlation in [0, 1] (NaN if either sample is constant).
    """
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    xa = xa[:, None] if xa.ndim == 1 else xa
    ya = ya[:, None] if ya.ndim == 1 else ya
    if xa.ndim != 2 or ya.ndim != 2 or xa.shape[0] != ya.shape[0]:
        raise StatisticsError(f"distance_correlation: x {np.shape(x)} and y {np.shape(y)} need equal first dimensions")
    n = xa.shape[0]
    if n < 2:
        raise StatisticsError(f"distance_correlation: need at least 2 events, got {n}")
    w = np.ones(n) if weights is None else _weights_for(xa[:, 0], weights, "weights")
    if not w.sum() > 0:
        raise StatisticsError("distance_correlation: weights must have a positive sum")
    w = w / w.sum()
    bs = block_size or max(1, min(n, 4_000_000 // n))
    abar, bbar = np.empty(n), np.empty(n)
    s_ab = s_aa = s_bb = 0.0
    for start in range(0, n, bs):
        sl = slice(start, min(n, start + bs))
        a = _pairwise(xa[sl], xa)
        b = _pairwise(ya[sl], ya)
        abar[sl], bbar[sl] = a @ w, b @ w
        wb = w[sl]
        s_ab += wb @ ((a * b) @ w)
        s_aa += wb @ ((a * a) @ w)
        s_bb += wb @ ((b * b) @ w)
    am, bm = float(w @ abar), float(w @ bbar)
    dcov_xy = s_ab - 2.0 * float(w @ (abar * bbar)) + am * bm
    dcov_xx = s_aa - 2.0 * float(w @ (abar * abar)) + am * am
    dcov_yy = s_bb - 2.0 * float(w @ (bbar * bbar)) + bm * bm
    den = math.sqrt(max(dcov_xx, 0.0) * max(dcov_yy, 0.0))
    if den <= 0:
        log.warning("distance_correlation: a constant sample (dCov(x,x)=%g, dCov(y,y)=%g)", dcov_xx, dcov_yy)
        return float("nan")
    r2 = min(max(dcov_xy / den, 0.0), 1.0)
    return float(r2 if squared else math.sqrt(r2))


def _pairwise(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Euclidean distances between rows of u (m, d) and v (n, d)."""
    if u.shape[1] == 1:
        return np.abs(u[:, 0][:, None] - v[:, 0][None, :])
    return np.sqrt(((u[:, None, :] - v[None, :, :]) ** 2).sum(axis=-1))
