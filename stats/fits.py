"""Smooth dijet-function fits to mass spectra with iminuit.

Two standard forms (both are linear in their parameters after taking the logarithm, which gives
robust starting values from a weighted linear least-squares fit of ``ln(counts / width)``):

* Chekanov et al. eq. (1) (seed 003), ``x = m / sqrt(s)``::

      f(x) = p1 (1 - x)^p2  x^(p3 + p4 ln x + p5 ln^2 x)

* the 4-parameter LHC Olympics form (seed 002, eq. 4.3), ``y = m / 13 TeV``::

      f(y) = p0 (1 - y)^p1 / y^(p2 + p3 ln y)

``f`` is a density in ``x``: the expected count of a bin is ``integral f(x) dx`` over the bin
(Gauss-Legendre quadrature), so the normalisation parameter is in events per unit ``x``.
Fits are binned: an extended Poisson likelihood (``iminuit.cost.ExtendedBinnedNLL``, with the
Bohm-Zech scaled Poisson treatment for weighted histograms) or a Neyman chi2 with the bin
variances (``iminuit.cost.LeastSquares``). Bins can be excluded (e.g. a signal region for a
sideband fit).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats as _sps

log = logging.getLogger(__name__)

__all__ = [
    "DIJET_MODELS",
    "BatchFit",
    "DijetModel",
    "FitError",
    "FitResult",
    "chekanov_dijet",
    "fisher_f_test",
    "fit_dijet",
    "lhco_dijet",
    "refit_poisson",
    "sample_dijet_counts",
]

_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(8)


class FitError(RuntimeError):
    """A fit could not be set up or did not converge (the message names the model and histogram)."""


# ----------------------------------------------------------------------------- model functions
def chekanov_dijet(x: npt.ArrayLike, p1: float, p2: float, p3: float, p4: float = 0.0, p5: float = 0.0) -> np.ndarray:
    r"""5-parameter dijet function of Chekanov et al. eq. (1).

    .. math:: f(x) = p_1 (1-x)^{p_2} x^{p_3 + p_4 \ln x + p_5 \ln^2 x}, \quad x = m_{jj}/\sqrt{s}

    Parameters
    ----------
    x : array_like
        Scaled mass ``m / sqrt(s)`` in (0, 1).
    p1, p2, p3, p4, p5 : float
        Parameters (``p4 = p5 = 0`` gives the 3-parameter form).

    Returns
    -------
    numpy.ndarray
        ``f(x)``.
    """
    x = np.asarray(x, dtype=np.float64)
    lx = np.log(x)
    return p1 * np.exp(p2 * np.log1p(-x) + lx * (p3 + p4 * lx + p5 * lx * lx))


def lhco_dijet(y: npt.ArrayLike, p0: float, p1: float, p2: float, p3: float = 0.0) -> np.ndarray:
    r"""4-parameter dijet function used in the LHC Olympics (Kasieczka et al. eq. 4.3).

    .. math:: f(y) = p_0 \frac{(1-y)^{p_1}}{y^{p_2 + p_3 \ln y}}, \quad y = m_{JJ} / 13\,\mathrm{TeV}

    Parameters
    ----------
    y : array_like
        Scaled mass in (0, 1).
    p0, p1, p2, p3 : float
        Parameters.

    Returns
    -------
    numpy.ndarray
        ``f(y)``.
    """
    y = np.asarray(y, dtype=np.float64)
    ly = np.log(y)
    return p0 * np.exp(p1 * np.log1p(-y) - ly * (p2 + p3 * ly))


@dataclass(frozen=True)
class DijetModel:
    """A dijet form ``f = norm * exp(sum_k theta_k b_k(x))`` with log-linear basis functions.

    Attributes
    ----------
    name : str
        Registry key.
    param_names : tuple of str
        Names of the formula's parameters; the first one is the normalisation.
    basis : callable
        ``basis(x) -> (len(x), n_params - 1)`` basis functions multiplying the non-normalisation
        parameters in ``ln f``.
    function : callable
        The formula itself, ``function(x, *params)``.
    """

    name: str
    param_names: tuple[str, ...]
    basis: Callable[[np.ndarray], np.ndarray]
    function: Callable[..., np.ndarray]

    @property
    def n_params(self) -> int:
        """Number of free parameters."""
        return len(self.param_names)

    def log_density(self, x: np.ndarray, log_norm: float, shape: np.ndarray) -> np.ndarray:
        """``ln f(x)`` for the normalisation ``exp(log_norm)`` and the shape parameters."""
        return log_norm + self.basis(x) @ np.asarray(shape, dtype=np.float64)


def _chekanov_basis(n_shape: int) -> Callable[[np.ndarray], np.ndarray]:
    def basis(x: np.ndarray) -> np.ndarray:
        lx = np.log(x)
        cols = [np.log1p(-x), lx, lx**2, lx**3][:n_shape]
        return np.stack(cols, axis=-1)

    return basis


def _lhco_basis(n_shape: int) -> Callable[[np.ndarray], np.ndarray]:
    def basis(x: np.ndarray) -> np.ndarray:
        ly = np.log(x)
        cols = [np.log1p(-x), -ly, -(ly**2)][:n_shape]
        return np.stack(cols, axis=-1)

    return basis


#: available forms; ``chekanov5`` and ``lhco4`` are the papers' choices, the others are nested
#: lower-order variants (for a Fisher test of the number of parameters)
DIJET_MODELS: dict[str, DijetModel] = {
    "chekanov5": DijetModel("chekanov5", ("p1", "p2", "p3", "p4", "p5"), _chekanov_basis(4), chekanov_dijet),
    "chekanov4": DijetModel("chekanov4", ("p1", "p2", "p3", "p4"), _chekanov_basis(3), chekanov_dijet),
    "chekanov3": DijetModel("chekanov3", ("p1", "p2", "p3"), _chekanov_basis(2), chekanov_dijet),
    "lhco4": DijetModel("lhco4", ("p0", "p1", "p2", "p3"), _lhco_basis(3), lhco_dijet),
    "lhco3": DijetModel("lhco3", ("p0", "p1", "p2"), _lhco_basis(2), lhco_dijet),
}


def _bin_integrals(model: DijetModel, x_edges: np.ndarray, log_norm: float, shape: np.ndarray) -> np.ndarray:
    """Integral of the density over each bin by 8-point Gauss-Legendre quadrature."""
    lo, hi = x_edges[:-1], x_edges[1:]
    half, mid = 0.5 * (hi - lo), 0.5 * (hi + lo)
    pts = mid[:, None] + half[:, None] * _GL_NODES[None, :]
    ln_f = model.log_density(pts.reshape(-1), log_norm, shape).reshape(pts.shape)
    return half * (np.exp(np.clip(ln_f, -745.0, 709.0)) @ _GL_WEIGHTS)


class _Integrator:
    """Bin integrals of ``exp(G theta)`` with the basis precomputed at the quadrature points."""

    def __init__(self, model: DijetModel, x_edges: np.ndarray) -> None:
        self.model = model
        self.x_edges = x_edges
        self.half, self.design = self._prepare(x_edges)

    def _prepare(self, x_edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = x_edges[:-1], x_edges[1:]
        half, mid = 0.5 * (hi - lo), 0.5 * (hi + lo)
        pts = (mid[:, None] + half[:, None] * _GL_NODES[None, :]).reshape(-1)
        return half, np.column_stack([np.ones(pts.size), self.model.basis(pts)])

    def batch_counts(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bin counts ``(n, bins)`` for ``theta`` of shape ``(n, params)``, and the weighted density at the nodes."""
        ln_f = (theta @ self.design.T).reshape(theta.shape[0], self.half.size, _GL_NODES.size)
        np.clip(ln_f, -745.0, 709.0, out=ln_f)
        fw = np.exp(ln_f, out=ln_f)
        fw *= _GL_WEIGHTS
        return self.half * fw.sum(axis=-1), fw

    def counts_and_jacobian(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bin counts ``(n, bins)`` and their derivatives ``(n, bins, params)`` for ``theta`` of shape ``(n, params)``."""
        mu, fw = self.batch_counts(theta)
        per_bin = np.matmul(fw.transpose(1, 0, 2), self.design.reshape(self.half.size, _GL_NODES.size, -1))
        return mu, self.half[None, :, None] * per_bin.transpose(1, 0, 2)

    def counts(self, theta: np.ndarray, x_edges: np.ndarray | None = None) -> np.ndarray:
        half, design = self.half, self.design
        if x_edges is not None and not (x_edges is self.x_edges or np.array_equal(x_edges, self.x_edges)):
            half, design = self._prepare(np.asarray(x_edges, dtype=np.float64))
        ln_f = np.clip(design @ theta, -745.0, 709.0).reshape(half.size, _GL_NODES.size)
        return half * (np.exp(ln_f) @ _GL_WEIGHTS)


# ----------------------------------------------------------------------------- result
@dataclass(frozen=True)
class FitResult:
    """Outcome of :func:`fit_dijet`.

    Attributes
    ----------
    model : str
        Model name (key of :data:`DIJET_MODELS`).
    method : str
        ``"poisson"`` or ``"chi2"``.
    params, errors : dict
        Best-fit parameters of the formula (as written in the papers) and their HESSE errors.
    covariance : numpy.ndarray
        Covariance of ``params`` (in ``param_names`` order).
    edges : numpy.ndarray
        Bin edges in the histogram's unit (e.g. GeV).
    sqrt_s : float
        Scale used for ``x = m / sqrt_s`` (same unit as ``edges``).
    observed, variances : numpy.ndarray
        Histogram values and variances.
    expected : numpy.ndarray
        Fitted expected count per bin (all bins, including excluded ones).
    fit_mask : numpy.ndarray
        Bins used in the fit.
    pulls : numpy.ndarray
        ``(observed - expected) / sigma`` per bin (NaN outside the fit mask); ``sigma`` is
        ``sqrt(expected * variance/observed)`` for the Poisson fit (``sqrt(expected)`` for unit
        weights) and ``sqrt(variance)`` for the chi2 fit.
    chi2, ndf : float, int
        Goodness of fit: sum of squared pulls over fitted bins with non-zero sigma, and the
        number of those bins minus the number of parameters.
    fval : float
        Minimum of the cost (Poisson deviance for ``"poisson"``, chi2 for ``"chi2"``).
    valid : bool
        Minuit's validity flag (converged, accurate covariance).
    """

    model: str
    method: str
    params: dict[str, float]
    errors: dict[str, float]
    covariance: np.ndarray
    edges: np.ndarray
    sqrt_s: float
    observed: np.ndarray
    variances: np.ndarray
    expected: np.ndarray
    fit_mask: np.ndarray
    pulls: np.ndarray
    chi2: float
    ndf: int
    fval: float
    valid: bool
    _theta: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    _theta_cov: np.ndarray | None = field(repr=False, default=None)

    @property
    def chi2_ndf(self) -> float:
        """chi2 / ndf (NaN if ndf <= 0)."""
        return self.chi2 / self.ndf if self.ndf > 0 else float("nan")

    @property
    def p_value(self) -> float:
        """Probability of a chi2 at least this large for ``ndf`` degrees of freedom."""
        return float(_sps.chi2.sf(self.chi2, self.ndf)) if self.ndf > 0 else float("nan")

    def density(self, m: npt.ArrayLike) -> np.ndarray:
        """Fitted density per unit of ``m`` (events / GeV for a GeV axis), for drawing the curve."""
        x = np.asarray(m, dtype=np.float64) / self.sqrt_s
        model = DIJET_MODELS[self.model]
        return np.exp(model.log_density(x, self._theta[0], self._theta[1:])) / self.sqrt_s

    @property
    def theta(self) -> np.ndarray:
        """The parameters with the logarithm of the normalisation first (``ln f`` is linear in them)."""
        return self._theta.copy()

    @property
    def theta_covariance(self) -> np.ndarray:
        """:attr:`covariance` transformed to :attr:`theta` (the normalisation's error over its value)."""
        if self._theta_cov is not None:
            return self._theta_cov.copy()
        jinv = np.eye(self._theta.size)
        jinv[0, 0] = np.exp(-self._theta[0])
        return jinv @ self.covariance @ jinv.T

    def expected_jacobian(self) -> np.ndarray:
        """``d expected / d theta`` per bin, shape ``(bins, params)`` (the dijet function's Jacobian)."""
        integ = _Integrator(DIJET_MODELS[self.model], self.edges / self.sqrt_s)
        return integ.counts_and_jacobian(self._theta[None, :])[1][0]

    def expected_covariance(self) -> np.ndarray:
        """Covariance of :attr:`expected` between bins, ``J C J^T`` (Minuit's covariance propagated)."""
        jac = self.expected_jacobian()
        return jac @ self.theta_covariance @ jac.T

    def expected_in(self, edges: npt.ArrayLike) -> np.ndarray:
        """Expected counts for another binning of the same axis (e.g. a BumpHunter reference)."""
        x_edges = np.asarray(edges, dtype=np.float64) / self.sqrt_s
        return _bin_integrals(DIJET_MODELS[self.model], x_edges, self._theta[0], self._theta[1:])


# ----------------------------------------------------------------------------- fitting
def _hist_1d(h: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        if len(h.axes) != 1:
            raise FitError(f"fit_dijet: need a 1-D histogram, got {len(h.axes)} axes")
        values = np.asarray(h.values(), dtype=np.float64)
        edges = np.asarray(h.axes[0].edges, dtype=np.float64)
    except AttributeError as err:
        raise FitError(f"fit_dijet: expected a hist.Hist, got {type(h).__name__}") from err
    var = h.variances()
    return values, edges, values.copy() if var is None else np.asarray(var, dtype=np.float64)


def _start_values(
    model: DijetModel, x_edges: np.ndarray, n: np.ndarray, var: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """Weighted linear least squares of ``ln(n / dx)`` on the log-linear basis (weights n^2/var)."""
    use = mask & (n > 0) & (var > 0)
    if use.sum() < model.n_params:
        raise FitError(f"fit_dijet({model.name}): only {int(use.sum())} populated bins for {model.n_params} parameters")
    xc = 0.5 * (x_edges[1:] + x_edges[:-1])[use]
    dx = np.diff(x_edges)[use]
    yv = np.log(n[use] / dx)
    design = np.column_stack([np.ones(xc.size), model.basis(xc)])
    sw = np.sqrt(n[use] ** 2 / var[use])  # 1/sigma of ln(n) ~ n/sqrt(var)
    theta, *_ = np.linalg.lstsq(design * sw[:, None], yv * sw, rcond=None)
    return theta


def fit_dijet(
    h: Any,
    *,
    model: str = "chekanov5",
    method: Literal["poisson", "chi2"] = "poisson",
    sqrt_s: float = 13000.0,
    fit_range: tuple[float, float] | None = None,
    exclude: Sequence[tuple[float, float]] = (),
    start: Sequence[float] | None = None,
) -> FitResult:
    """Fit a dijet function to a 1-D mass histogram.

    Parameters
    ----------
    h : hist.Hist
        Mass spectrum (e.g. ``m_jj`` in GeV); ``Weight()`` storage is used for weighted MC.
    model : str
        Key of :data:`DIJET_MODELS`: ``"chekanov5"`` (Chekanov eq. 1) or ``"lhco4"`` (LHCO eq. 4.3),
        or a nested lower-order variant.
    method : {"poisson", "chi2"}
        Extended binned Poisson likelihood, or Neyman chi2 with the bin variances (empty bins
        are skipped by the chi2 fit).
    sqrt_s : float
        Scale of ``x = m / sqrt_s`` in the axis unit (13000 GeV; use 8000 for 2012 data).
    fit_range : tuple of float, optional
        ``(low, high)`` in the axis unit; bins fully inside are fitted. Default: all bins.
    exclude : sequence of (low, high)
        Windows whose overlapping bins are left out of the fit (sideband fit around a signal region).
    start : sequence of float, optional
        Starting values of the formula's parameters; by default from a log-linear least-squares fit.

    Returns
    -------
    FitResult
        Parameters, errors, covariance, expected counts, pulls and chi2/ndf.

    Raises
    ------
    FitError
        Unknown model, axis outside ``0 < m < sqrt_s``, too few populated bins, or a failed minimisation.
    """
    dm = _dijet_model(model, method)
    n, edges, var = _hist_1d(h)
    x_edges = edges / float(sqrt_s)
    if x_edges[0] <= 0 or x_edges[-1] >= 1:
        raise FitError(f"fit_dijet({model}): axis [{edges[0]}, {edges[-1]}] must lie inside (0, sqrt_s={sqrt_s})")
    mask = _fit_mask(edges, fit_range, exclude)
    theta0 = _start_values(dm, x_edges, n, var, mask) if start is None else _theta_from_params(dm, start)
    integ = _Integrator(dm, x_edges)
    r_mat, r_inv = _orthonormal_basis(dm, x_edges, n, var, mask)
    cost, mask = _cost(method, integ, r_inv, x_edges, n, var, mask, n_params=dm.n_params)
    if mask.sum() <= dm.n_params:
        raise FitError(f"fit_dijet({model}): {int(mask.sum())} bins in the fit for {dm.n_params} parameters")
    m = _minimise(cost, r_mat @ theta0, model=model, method=method)
    theta, cov, params, errors, cov_theta = _parameters(dm, m, r_inv)
    expected = integ.counts(theta)
    pulls = _pulls(method, n, var, expected, mask)
    used = np.isfinite(pulls)
    chi2 = float(np.sum(pulls[used] ** 2))
    return FitResult(
        model=model,
        method=method,
        params=params,
        errors=errors,
        covariance=cov,
        edges=edges,
        sqrt_s=float(sqrt_s),
        observed=n,
        variances=var,
        expected=expected,
        fit_mask=mask,
        pulls=pulls,
        chi2=chi2,
        ndf=int(used.sum()) - dm.n_params,
        fval=float(m.fval),
        valid=bool(m.valid),
        _theta=theta,
        _theta_cov=cov_theta,
    )


def _fit_mask(
    edges: np.ndarray, fit_range: tuple[float, float] | None, exclude: Sequence[tuple[float, float]]
) -> np.ndarray:
    """Bins fully inside ``fit_range`` that overlap none of the ``exclude`` windows."""
    mask = np.ones(edges.size - 1, dtype=bool)
    if fit_range is not None:
        mask &= (edges[:-1] >= fit_range[0] - 1e-9) & (edges[1:] <= fit_range[1] + 1e-9)
    for lo, hi in exclude:
        mask &= ~((edges[1:] > lo) & (edges[:-1] < hi))
    return mask


def _orthonormal_basis(
    dm: DijetModel, x_edges: np.ndarray, n: np.ndarray, var: np.ndarray, mask: np.ndarray
) -> tuple[Any, np.ndarray]:
    """``R`` and ``R^-1`` of the weighted log-linear design ``D = Q R`` of the fitted, populated bins.

    The fit runs in an orthonormalised basis: the log-linear basis functions (ln x, ln^2 x, ln^3 x, ...)
    are nearly collinear over a typical mass range, which makes MIGRAD/HESSE unreliable in the
    formula's own parameters. With ln f = G theta, phi = R theta has an approximately unit, diagonal
    Hessian; results are transformed back.
    """
    use = mask & (n > 0) & (var > 0)
    xc = 0.5 * (x_edges[1:] + x_edges[:-1])[use]
    design = np.column_stack([np.ones(xc.size), dm.basis(xc)]) * np.sqrt(n[use] ** 2 / var[use])[:, None]
    r_mat = np.linalg.qr(design, mode="r")
    return r_mat, np.linalg.inv(r_mat)


def _cost(
    method: str,
    integ: _Integrator,
    r_inv: np.ndarray,
    x_edges: np.ndarray,
    n: np.ndarray,
    var: np.ndarray,
    mask: np.ndarray,
    *,
    n_params: int,
) -> tuple[Any, np.ndarray]:
    """The iminuit cost in the parameters ``phi`` and its bin mask (the chi2 fit drops bins of zero variance)."""
    from iminuit.cost import ExtendedBinnedNLL, LeastSquares

    names = tuple(f"phi{i}" for i in range(n_params))
    weighted = not np.allclose(var, n)
    cost: Any
    if method == "poisson":

        def scaled_cdf(xe: np.ndarray, *phi: float) -> Any:
            mu = integ.counts(r_inv @ np.asarray(phi), xe)
            return np.concatenate([[0.0], np.cumsum(mu)])

        counts = np.stack([n, var], axis=-1) if weighted else n
        cost = ExtendedBinnedNLL(counts, x_edges, scaled_cdf, name=names)
    else:
        idx = np.arange(n.size, dtype=np.float64)

        def bin_model(i: Any, *phi: float) -> Any:
            return integ.counts(r_inv @ np.asarray(phi))[np.asarray(i, dtype=int)]

        mask &= var > 0
        cost = LeastSquares(idx, n, np.sqrt(np.where(var > 0, var, 1.0)), bin_model, name=names)
    cost.mask = mask
    return cost, mask


def _minimise(cost: Any, phi0: np.ndarray, *, model: str, method: str) -> Any:
    """MIGRAD (retried with SIMPLEX and strategy 2 when invalid), then HESSE; the Minuit object."""
    from iminuit import Minuit

    m = Minuit(cost, *phi0)
    m.errors = np.ones(phi0.size)
    m.strategy = 1
    m.migrad(ncall=20000)
    if not m.valid:
        log.info("fit_dijet(%s): first MIGRAD invalid (fval %.4g); retrying with SIMPLEX + strategy 2", model, m.fval)
        m.simplex().migrad(ncall=40000)
        m.strategy = 2
        m.migrad(ncall=40000)
    m.hesse()
    if not np.isfinite(m.fval):
        raise FitError(f"fit_dijet({model}): minimisation failed (fval {m.fval})")
    if not m.valid:
        log.warning(
            "fit_dijet(%s, %s): Minuit reports an invalid minimum (edm %.3g); check the result", model, method, m.edm
        )
    return m


def _dijet_model(model: str, method: str) -> DijetModel:
    """The model of ``DIJET_MODELS``; :class:`FitError` for an unknown model or method."""
    if model not in DIJET_MODELS:
        raise FitError(f"fit_dijet: unknown model {model!r}; choose one of {sorted(DIJET_MODELS)}")
    if method not in ("poisson", "chi2"):
        raise FitError(f"fit_dijet: method must be 'poisson' or 'chi2', got {method!r}")
    return DIJET_MODELS[model]


def _parameters(
    dm: DijetModel, m: Any, r_inv: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[str, float], dict[str, float], np.ndarray]:
    """theta, the covariance of the formula's parameters (normalisation, not its logarithm, first),
    the parameter values and their errors by name, and the covariance of theta, from the minimum in ``phi``."""
    theta = r_inv @ np.array(m.values)
    cov_phi = np.array(m.covariance) if m.covariance is not None else np.full((theta.size,) * 2, np.nan)
    cov_theta = r_inv @ cov_phi @ r_inv.T
    jac = np.eye(theta.size)
    jac[0, 0] = np.exp(theta[0])  # d norm / d log_norm
    cov = jac @ cov_theta @ jac.T
    values = np.concatenate([[np.exp(theta[0])], theta[1:]])
    params = dict(zip(dm.param_names, map(float, values), strict=True))
    errors = dict(zip(dm.param_names, map(float, np.sqrt(np.clip(np.diag(cov), 0, None))), strict=True))
    return theta, cov, params, errors, cov_theta


def _pulls(method: str, n: np.ndarray, var: np.ndarray, expected: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(observed - expected) / sigma in the fitted bins, NaN elsewhere; the Poisson sigma scales with the mean weight."""
    if method == "poisson":
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(n > 0, var / np.where(n > 0, n, 1.0), 1.0)  # mean weight per bin
        sigma = np.sqrt(expected * scale)
    else:
        sigma = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mask & (sigma > 0), (n - expected) / np.where(sigma > 0, sigma, 1.0), np.nan)


def fisher_f_test(nested: FitResult, extended: FitResult) -> tuple[float, float]:
    r"""Fisher F-test: does the function with more parameters fit significantly better?

    .. math:: F = \frac{(\chi^2_1 - \chi^2_2)/(n_2 - n_1)}{\chi^2_2 / (N - n_2)}

    with :math:`n_i` parameters and :math:`N` fitted bins (the standard choice of the number of
    parameters in dijet searches). A small p-value favours ``extended``.

    Parameters
    ----------
    nested : FitResult
        Fit with fewer parameters (e.g. ``chekanov4``).
    extended : FitResult
        Fit with more parameters (e.g. ``chekanov5``) to the same histogram and bins.

    Returns
    -------
    tuple of float
        ``(F, p_value)``.

    Raises
    ------
    FitError
        Fits to different bins, or ``extended`` without more parameters.
    """
    n1 = len(nested.params)
    n2 = len(extended.params)
    if n2 <= n1:
        raise FitError(f"fisher_f_test: {extended.model} ({n2} parameters) must extend {nested.model} ({n1})")
    n_bins = extended.ndf + n2
    if nested.ndf + n1 != n_bins or not np.array_equal(nested.observed, extended.observed):
        raise FitError(f"fisher_f_test: {nested.model} and {extended.model} were not fitted to the same bins")
    if extended.ndf <= 0:
        raise FitError(f"fisher_f_test: {extended.model} has no degrees of freedom left")
    f = ((nested.chi2 - extended.chi2) / (n2 - n1)) / (extended.chi2 / extended.ndf)
    return float(f), float(_sps.f.sf(f, n2 - n1, extended.ndf))


def _theta_from_params(dm: DijetModel, params: Sequence[float]) -> np.ndarray:
    p = np.asarray(params, dtype=np.float64)
    if p.size != dm.n_params or not p[0] > 0:
        raise FitError(
            f"fit_dijet({dm.name}): start needs {dm.n_params} values with a positive normalisation, got {p.tolist()}"
        )
    return np.concatenate([[np.log(p[0])], p[1:]])


def sample_dijet_counts(
    edges: npt.ArrayLike, params: Sequence[float], *, model: str = "chekanov5", sqrt_s: float = 13000.0, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson-sample a binned spectrum from a dijet function (for closure tests and toys).

    Parameters
    ----------
    edges : array_like
        Bin edges in the axis unit.
    params : sequence of float
        Formula parameters of ``model`` (normalisation first, events per unit x).
    model : str
        Key of :data:`DIJET_MODELS`.
    sqrt_s : float
        Scale of ``x = m / sqrt_s``.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    tuple of numpy.ndarray
        ``(counts, expected)`` per bin.
    """
    if model not in DIJET_MODELS:
        raise FitError(f"sample_dijet_counts: unknown model {model!r}")
    dm = DIJET_MODELS[model]
    theta = _theta_from_params(dm, params)
    expected = _bin_integrals(dm, np.asarray(edges, dtype=np.float64) / sqrt_s, theta[0], theta[1:])
    return np.random.default_rng(seed).poisson(expected).astype(np.float64), expected


# ----------------------------------------------------------------------------- many spectra at once
@dataclass(frozen=True)
class BatchFit:
    """Poisson fits of many spectra with the model, binning and fitted bins of one :class:`FitResult`.

    Attributes
    ----------
    template : FitResult
        The fit whose model, bin edges, ``sqrt_s`` and fit mask were used (and whose minimum started
        every fit).
    observed : numpy.ndarray
        Fitted counts, shape ``(n, bins)``.
    theta, theta_covariance : numpy.ndarray
        Best-fit parameters (logarithm of the normalisation first, :attr:`FitResult.theta`), shape
        ``(n, params)``, and their covariance from the Fisher information, ``(n, params, params)``.
    expected : numpy.ndarray
        Fitted expected counts, ``(n, bins)``.
    jacobian : numpy.ndarray
        ``d expected / d theta``, ``(n, bins, params)``.
    converged : numpy.ndarray
        True where the Newton iterations converged to finite values.
    """

    template: FitResult
    observed: np.ndarray
    theta: np.ndarray
    theta_covariance: np.ndarray
    expected: np.ndarray
    jacobian: np.ndarray
    converged: np.ndarray

    def result(self, i: int) -> FitResult:
        """The fit of spectrum ``i`` as a :class:`FitResult` (``fval``: the Poisson deviance)."""
        t = self.template
        n, mu, theta = self.observed[i], self.expected[i], self.theta[i]
        jac = np.eye(theta.size)
        jac[0, 0] = np.exp(theta[0])
        with np.errstate(over="ignore", invalid="ignore"):  # the normalisation of a steep spectrum overflows
            cov = jac @ self.theta_covariance[i] @ jac.T
        names = DIJET_MODELS[t.model].param_names
        values = np.concatenate([[np.exp(theta[0])], theta[1:]])
        pulls = _pulls("poisson", n, n, mu, t.fit_mask)
        used = np.isfinite(pulls)
        with np.errstate(divide="ignore", invalid="ignore"):
            dev = 2.0 * np.sum((mu - n + np.where(n > 0, n * np.log(n / mu), 0.0))[t.fit_mask])
        return FitResult(
            model=t.model,
            method="poisson",
            params=dict(zip(names, map(float, values), strict=True)),
            errors=dict(zip(names, map(float, np.sqrt(np.clip(np.diag(cov), 0, None))), strict=True)),
            covariance=cov,
            edges=t.edges,
            sqrt_s=t.sqrt_s,
            observed=n.copy(),
            variances=n.copy(),
            expected=mu.copy(),
            fit_mask=t.fit_mask,
            pulls=pulls,
            chi2=float(np.sum(pulls[used] ** 2)),
            ndf=int(used.sum()) - theta.size,
            fval=float(dev),
            valid=bool(self.converged[i]),
            _theta=theta.copy(),
            _theta_cov=self.theta_covariance[i].copy(),
        )


def refit_poisson(fit: FitResult, counts: npt.ArrayLike, *, max_iterations: int = 30) -> BatchFit:
    """Fit many unweighted spectra at once by the extended binned Poisson likelihood of ``fit``.

    The same likelihood as :func:`fit_dijet` with ``method="poisson"`` (the model, bins and fit mask of
    ``fit``), maximised by Newton steps with the expected (Fisher) information, vectorised over the
    spectra and started at ``fit``'s minimum; a step that raises the negative log-likelihood is halved.
    The parameters are whitened with ``fit``'s Fisher information, so the steps stay well conditioned
    although the basis functions are nearly collinear. Meant for pseudo-experiments drawn around ``fit``.

    Parameters
    ----------
    fit : FitResult
        A fit of the same binning (its minimum is the starting point).
    counts : array_like
        Event counts, shape ``(n, bins)``.
    max_iterations : int
        Newton steps at most; a spectrum converges when its Newton decrement is below 1e-9.

    Returns
    -------
    BatchFit
        Parameters, their covariance (inverse Fisher information), expected counts and Jacobians.

    Raises
    ------
    FitError
        Counts of another shape than the fit's bins.
    """
    n = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    if n.ndim != 2 or n.shape[1] != fit.edges.size - 1:
        raise FitError(f"refit_poisson: counts of shape {n.shape} for {fit.edges.size - 1} bins")
    integ = _Integrator(DIJET_MODELS[fit.model], fit.edges / fit.sqrt_s)
    mask = fit.fit_mask.astype(np.float64)
    mu0, j0 = integ.counts_and_jacobian(fit._theta[None, :])
    r_mat = np.linalg.qr((j0[0] / np.sqrt(mu0[0])[:, None])[fit.fit_mask], mode="r")
    whiten = np.linalg.inv(r_mat)  # theta - theta0 = whiten @ phi: unit information at the start

    def nll(mu: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return np.sum(mask * (mu - n[rows] * np.log(mu)), axis=1)

    theta = np.repeat(fit._theta[None, :], n.shape[0], axis=0)
    mu, jac = integ.counts_and_jacobian(theta)
    active = np.arange(n.shape[0])  # the spectra not converged yet
    for _ in range(max_iterations):
        jw = jac[active] @ whiten
        score = np.matmul((mask * (n[active] / mu[active] - 1.0))[:, None, :], jw)[:, 0, :]
        info = np.matmul(jw.transpose(0, 2, 1), jw * (mask / mu[active])[..., None])
        step = np.linalg.solve(info, score[..., None])[..., 0]
        finite = np.isfinite(step).all(axis=1)
        active, step = active[finite], step[finite]
        keep = np.einsum("ek,ek->e", score[finite], step) >= 1e-9
        active, step = active[keep], step[keep]
        if active.size == 0:
            break
        before = nll(mu[active], active)
        for _ in range(8):
            trial = theta[active] + step @ whiten.T
            worse = ~(nll(integ.batch_counts(trial)[0], active) <= before + 1e-12)
            if not worse.any():
                break
            step[worse] *= 0.5
        theta[active] = trial
        mu[active], jac[active] = integ.counts_and_jacobian(trial)
    jw = jac @ whiten
    info = np.matmul(jw.transpose(0, 2, 1), jw * (mask / mu)[..., None])
    cov = whiten @ np.linalg.inv(info) @ whiten.T
    done = np.ones(n.shape[0], dtype=bool)
    done[active] = False
    return BatchFit(fit, n, theta, cov, mu, jac, done & np.isfinite(mu).all(axis=1) & np.isfinite(theta).all(axis=1))
