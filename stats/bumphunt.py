"""BumpHunter scans: through pyBumpHunter (the reference implementation), and over many regions at once.

:func:`bump_hunt` is a thin typed wrapper of pyBumpHunter for one histogram against a fixed
reference. :func:`global_hunt` scans the selected spectra of several regions, each against its own
background fit, with the fit's uncertainty in every local p-value, and calibrates the smallest
local p-value over regions x windows with pseudo-experiments that refit every region (vectorised
over the pseudo-experiments); pyBumpHunter has neither a background uncertainty in its local
p-value nor a refit or several histograms in its pseudo-experiments.

BumpHunter (Choudalakis, arXiv:1101.0390) slides windows of ``width_min..width_max`` bins over a
data histogram, computes the local Poisson p-value of the data count in each window given the
reference (background) count, and takes the smallest one. The global p-value — corrected for
the look-elsewhere effect — is the fraction of Poisson pseudo-experiments drawn from the
reference whose smallest local p-value is at least as small. Defaults follow the LHC Olympics
analysis (Kasieczka et al. Table 4, seed 002): 40 bins, widths 2-7 bins, step 1, 10000
pseudo-experiments.

The wrapper keeps pyBumpHunter from touching the caller's state: it seeds NumPy's *global*
generator internally (``np.random.seed``), so the global state is saved and restored around the
scan; its ``print`` output is captured and sent to this module's logger at DEBUG level.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from cms_anomaly.stats.significance import z_from_p
from scipy import stats as _sps

log = logging.getLogger(__name__)

__all__ = [
    "BumpHuntError",
    "BumpHuntResult",
    "GlobalHuntResult",
    "bump_hunt",
    "bump_hunt_arrays",
    "global_hunt",
    "scan_windows",
    "window_bins",
]


class BumpHuntError(ValueError):
    """Invalid input to a BumpHunter scan (the message names the argument and value)."""


@dataclass(frozen=True)
class BumpHuntResult:
    """Outcome of a BumpHunter scan.

    Attributes
    ----------
    edges : numpy.ndarray
        Bin edges of the scanned histograms.
    data, reference : numpy.ndarray
        Data counts and reference (background) expectation per bin, as scanned.
    window : tuple of float
        ``(low, high)`` edges of the most significant window.
    window_bins : tuple of int
        First bin index and width (in bins) of that window.
    local_p_value, local_significance : float
        Smallest local p-value (data) and its one-sided Gaussian significance.
    global_p_value, global_significance : float
        Look-elsewhere-corrected p-value from the pseudo-experiments and its one-sided
        significance ``Phi^-1(1 - p)``, clipped at 0 (pyBumpHunter reports negative values for p > 0.5).
    global_significance_is_lower_limit : bool
        True when no pseudo-experiment was as extreme as the data (``global_p_value == 0``);
        the significance is then the limit ``Phi^-1(1 - 1/npe)``.
    signal_estimate : float
        Data minus reference in the window (``pyBumpHunter``'s ``signal_eval``).
    test_statistic : float
        ``t = -ln(local_p_value)`` of the data.
    pseudo_test_statistics : numpy.ndarray
        ``t`` of each pseudo-experiment.
    npe, seed : int
        Number of pseudo-experiments and the seed used.
    mode : str
        ``"excess"`` or ``"deficit"``.
    """

    edges: np.ndarray
    data: np.ndarray
    reference: np.ndarray
    window: tuple[float, float]
    window_bins: tuple[int, int]
    local_p_value: float
    local_significance: float
    global_p_value: float
    global_significance: float
    global_significance_is_lower_limit: bool
    signal_estimate: float
    test_statistic: float
    pseudo_test_statistics: np.ndarray
    npe: int
    seed: int
    mode: str

    @property
    def window_center(self) -> float:
        """Centre of the most significant window."""
        return 0.5 * (self.window[0] + self.window[1])

    def summary(self) -> str:
        """One line: window, local and global significance."""
        gsig = (
            f">{self.global_significance:.2f}"
            if self.global_significance_is_lower_limit
            else f"{self.global_significance:.2f}"
        )
        return (
            f"BumpHunter ({self.mode}): window [{self.window[0]:.4g}, {self.window[1]:.4g}], "
            f"local p = {self.local_p_value:.3g} ({self.local_significance:.2f} sigma), "
            f"global p = {self.global_p_value:.3g} ({gsig} sigma, {self.npe} pseudo-experiments)"
        )


def _as_counts(obj: Any, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(values, edges) from a hist.Hist, or (values, None) from an array."""
    if hasattr(obj, "axes") and hasattr(obj, "values"):
        if len(obj.axes) != 1:
            raise BumpHuntError(f"bump_hunt: {name} must be a 1-D histogram, got {len(obj.axes)} axes")
        return np.asarray(obj.values(), dtype=np.float64), np.asarray(obj.axes[0].edges, dtype=np.float64)
    arr = np.asarray(obj, dtype=np.float64)
    if arr.ndim != 1:
        raise BumpHuntError(f"bump_hunt: {name} must be one-dimensional, got shape {arr.shape}")
    return arr, None


def bump_hunt(
    data: Any,
    reference: npt.ArrayLike,
    *,
    seed: int,
    width_min: int = 2,
    width_max: int = 7,
    width_step: int = 1,
    scan_step: int | Literal["full", "half"] = 1,
    npe: int = 10000,
    mode: Literal["excess", "deficit"] = "excess",
    normalise_reference: bool = False,
    use_sideband: bool = False,
    sideband_width: int | None = None,
    nworker: int = 1,
) -> BumpHuntResult:
    """Run a BumpHunter scan of a data histogram against a reference histogram.

    Parameters
    ----------
    data : hist.Hist or array_like
        Observed counts (integers; a weighted data histogram is not a Poisson count).
    reference : hist.Hist or array_like
        Expected background per bin: weighted MC, or a fit expectation such as
        :meth:`cms_anomaly.stats.fits.FitResult.expected`. Same binning as ``data``.
    seed : int
        Seed of the pseudo-experiments (required: results are reproducible).
    width_min, width_max, width_step : int
        Window widths scanned, in bins (LHCO: 2, 7, 1).
    scan_step : int or {"full", "half"}
        Window shift in bins (LHCO: 1).
    npe : int
        Number of pseudo-experiments for the global p-value (LHCO: 10000).
    mode : {"excess", "deficit"}
        Look for an excess or a deficit.
    normalise_reference : bool
        Scale the reference to the data integral before scanning.
    use_sideband, sideband_width : bool, int
        pyBumpHunter's side-band normalisation (the window's complement fixes the scale).
    nworker : int
        Threads used by pyBumpHunter for the pseudo-experiment scans (results do not depend on it).

    Returns
    -------
    BumpHuntResult
        Window, local/global p-values and significances.

    Raises
    ------
    BumpHuntError
        Mismatched binning, negative or non-finite inputs, or a window setting that does not fit.
    """
    from pyBumpHunter import BumpHunter1D

    d, r, edges = _checked_inputs(data, reference, width_min=width_min, width_max=width_max, npe=npe)
    if normalise_reference:
        r = r * (d.sum() / r.sum())
    bh = BumpHunter1D(
        mode=mode,
        width_min=width_min,
        width_max=width_max,
        width_step=width_step,
        scan_step=scan_step,
        npe=int(npe),
        bins=edges,
        nworker=int(nworker),
        seed=int(seed),
        use_sideband=use_sideband,
        sideband_width=sideband_width,
    )
    _scan_quietly(bh, np.round(d).astype(np.int64), r)
    return _result(bh, d, r, edges, npe=npe, seed=seed, mode=mode)


def _checked_inputs(
    data: Any, reference: Any, *, width_min: int, width_max: int, npe: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Data counts, reference and bin edges (bin indices without histograms); :class:`BumpHuntError` on bad input."""
    d, d_edges = _as_counts(data, "data")
    r, r_edges = _as_counts(reference, "reference")
    if d.shape != r.shape:
        raise BumpHuntError(f"bump_hunt: data has {d.size} bins but reference has {r.size}")
    if d_edges is not None and r_edges is not None and not np.allclose(d_edges, r_edges):
        raise BumpHuntError("bump_hunt: data and reference histograms have different bin edges")
    edges = d_edges if d_edges is not None else r_edges
    if edges is None:
        edges = np.arange(d.size + 1, dtype=np.float64)
    for name, arr in (("data", d), ("reference", r)):
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise BumpHuntError(f"bump_hunt: {name} must be finite and non-negative")
    if not np.allclose(d, np.round(d)):
        raise BumpHuntError("bump_hunt: data must hold integer counts (unweighted events)")
    if not r.sum() > 0:
        raise BumpHuntError("bump_hunt: the reference histogram is empty")
    if not 1 <= width_min <= width_max <= d.size:
        raise BumpHuntError(
            f"bump_hunt: need 1 <= width_min ({width_min}) <= width_max ({width_max}) <= number of bins ({d.size})"
        )
    if npe < 1:
        raise BumpHuntError(f"bump_hunt: npe must be positive, got {npe}")
    return d, r, edges


def _scan_quietly(bh: Any, d_int: np.ndarray, r: np.ndarray) -> None:
    """Run pyBumpHunter's scan with its printout sent to the debug log and numpy's global RNG state restored."""
    state = np.random.get_state()  # noqa: NPY002 - pyBumpHunter draws from numpy's global generator
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            bh.bump_scan(d_int, r, is_hist=True)
    finally:
        np.random.set_state(state)  # noqa: NPY002 - restore the caller's global state
    for line in out.getvalue().splitlines():
        if line.strip():
            log.debug("pyBumpHunter: %s", line)


def _global_significance(p_global: float, npe: int) -> float:
    """One-sided Z of the global p-value (p > 0.5 counts as 0 sigma); at p = 0 the bound from ``1 / npe``."""
    if p_global >= 1.0:
        return 0.0
    if p_global == 0.0:
        return float(_sps.norm.isf(1.0 / npe))
    return z_from_p(p_global)


def _result(
    bh: Any, d: np.ndarray, r: np.ndarray, edges: np.ndarray, *, npe: int, seed: int, mode: str
) -> BumpHuntResult:
    """The :class:`BumpHuntResult` of a finished pyBumpHunter scan."""
    p_local = float(bh.min_Pval_ar[0])
    p_global = float(bh.global_Pval)
    lower = p_global == 0.0
    z_global = _global_significance(p_global, npe)
    loc, width = int(bh.min_loc_ar[0]), int(bh.min_width_ar[0])
    t = np.asarray(bh.t_ar, dtype=np.float64)
    return BumpHuntResult(
        edges=edges,
        data=d,
        reference=r,
        window=(float(edges[loc]), float(edges[loc + width])),
        window_bins=(loc, width),
        local_p_value=p_local,
        local_significance=z_from_p(p_local),
        global_p_value=p_global,
        global_significance=z_global,
        global_significance_is_lower_limit=lower,
        signal_estimate=float(bh.signal_eval),
        test_statistic=float(t[0]),
        pseudo_test_statistics=t[1:].copy(),
        npe=int(npe),
        seed=int(seed),
        mode=mode,
    )


def bump_hunt_arrays(
    data_values: Any,
    reference_values: Any,
    *,
    bins: int | np.ndarray = 40,
    value_range: tuple[float, float] | None = None,
    reference_weights: Any = None,
    seed: int,
    **scan_options: Any,
) -> BumpHuntResult:
    """Histogram unbinned values (e.g. ``m_jj`` of selected events) and run :func:`bump_hunt`.

    Parameters
    ----------
    data_values : array_like
        Observed values.
    reference_values : array_like
        Background values (e.g. MC), optionally weighted.
    bins : int or array_like
        Number of bins (LHCO: 40) or explicit edges.
    value_range : tuple of float, optional
        Histogram range; default spans both samples.
    reference_weights : array_like, optional
        Per-event weights of the reference.
    seed : int
        Seed of the pseudo-experiments.
    **scan_options
        Further keyword arguments of :func:`bump_hunt`.

    Returns
    -------
    BumpHuntResult
        The scan result.
    """
    dv = np.asarray(data_values, dtype=np.float64)
    rv = np.asarray(reference_values, dtype=np.float64)
    if value_range is None:
        both = np.concatenate([dv, rv])
        if both.size == 0:
            raise BumpHuntError("bump_hunt_arrays: no values to histogram")
        value_range = (float(both.min()), float(both.max()))
    edges = np.histogram_bin_edges(rv, bins=bins, range=value_range)
    r, _ = np.histogram(rv, bins=edges, weights=reference_weights)
    d, _ = np.histogram(dv, bins=edges)
    import hist

    hd = hist.Hist(hist.axis.Variable(edges, name="x"), storage=hist.storage.Double())
    hd[...] = d.astype(np.float64)
    return bump_hunt(hd, r.astype(np.float64), seed=seed, **scan_options)


# ------------------------------------------------------------------------------ many regions, fitted backgrounds
def window_bins(n_bins: int, *, width_min: int = 2, width_max: int = 7) -> np.ndarray:
    """``(first bin, width)`` of every window of ``width_min..width_max`` bins, shifted by one bin."""
    if not 1 <= width_min <= width_max <= n_bins:
        raise BumpHuntError(f"window_bins: need 1 <= width_min ({width_min}) <= width_max ({width_max}) <= {n_bins}")
    return np.array([(a, w) for w in range(width_min, width_max + 1) for a in range(n_bins - w + 1)], dtype=np.int64)


def scan_windows(
    counts: npt.ArrayLike, expected: npt.ArrayLike, jacobian: npt.ArrayLike, covariance: npt.ArrayLike, windows: Any
) -> np.ndarray:
    r"""Local p-value of the count in every window over a fitted background with its uncertainty.

    The expectation of window ``w`` is :math:`B_w = \sum_{i \in w} \mu_i`; its variance propagates the
    fit's covariance ``C`` through the Jacobian of the fitted function,
    :math:`\sigma_w^2 = J_w C J_w^T` with :math:`J_w = \sum_{i \in w} \partial\mu_i/\partial\theta`; the
    p-value is :func:`~cms_anomaly.stats.significance.poisson_gamma_p` (Poisson folded with a Gamma
    distribution of mean :math:`B_w` and width :math:`\sigma_w`). A window with no excess (count
    <= :math:`B_w`) has p = 1, BumpHunter's convention for an excess search.

    Parameters
    ----------
    counts, expected : array_like
        Observed and fitted counts, shape ``(..., bins)``.
    jacobian : array_like
        ``d expected / d theta``, shape ``(..., bins, params)``.
    covariance : array_like
        Covariance of ``theta``, shape ``(..., params, params)``.
    windows : array_like
        ``(first bin, width)`` rows (:func:`window_bins`).

    Returns
    -------
    numpy.ndarray
        p-values, shape ``(..., windows)``.
    """
    from cms_anomaly.stats.significance import poisson_gamma_p

    win = np.asarray(windows, dtype=np.int64)
    first, last = win[:, 0], win[:, 0] + win[:, 1]

    def window_sums(x: np.ndarray, axis: int) -> np.ndarray:
        cs = np.cumsum(x, axis=axis)
        cs = np.concatenate([np.zeros_like(np.take(cs, [0], axis=axis)), cs], axis=axis)
        return np.take(cs, last, axis=axis) - np.take(cs, first, axis=axis)

    n_w = window_sums(np.asarray(counts, dtype=np.float64), -1)
    b_w = window_sums(np.asarray(expected, dtype=np.float64), -1)
    j_w = window_sums(np.asarray(jacobian, dtype=np.float64), -2)
    var_w = np.sum(np.matmul(j_w, np.asarray(covariance, dtype=np.float64)) * j_w, axis=-1)
    p = np.ones(np.broadcast_shapes(n_w.shape, b_w.shape))
    excess = np.broadcast_to(n_w, p.shape) > b_w
    p[excess] = poisson_gamma_p(
        np.broadcast_to(n_w, p.shape)[excess], b_w[excess], np.sqrt(np.clip(var_w[excess], 0.0, None))
    )
    return p


@dataclass(frozen=True)
class GlobalHuntResult:
    """Outcome of :func:`global_hunt`.

    Attributes
    ----------
    windows : numpy.ndarray
        ``(first bin, width)`` of every scanned window.
    local_p : numpy.ndarray
        Observed local p-value of every (region, window), shape ``(regions, windows)``.
    region : int
        Index of the region that holds the smallest local p-value.
    window_bins : tuple of int
        First bin and width of that window; ``window`` its ``(low, high)`` edges.
    local_p_value, local_significance : float
        The smallest local p-value over regions x windows and its one-sided significance.
    global_p_value, global_significance : float
        Fraction of pseudo-experiments whose smallest local p-value over all regions and windows is
        at most the observed one, and its one-sided significance (the bound ``Phi^-1(1 - 1/npe)``
        when none is, ``global_significance_is_lower_limit``).
    global_p_value_one_region : float
        The same fraction with the pseudo-experiments of ``region`` alone (the choice of region not
        counted): what a scan of the best region only would report.
    pseudo_min_p : numpy.ndarray
        Smallest local p-value per pseudo-experiment and region, shape ``(npe_used, regions)``.
    npe, n_failed, seed : int
        Pseudo-experiments drawn, those dropped because a refit did not converge, the seed.
    """

    windows: np.ndarray
    local_p: np.ndarray
    region: int
    window_bins: tuple[int, int]
    window: tuple[float, float]
    local_p_value: float
    local_significance: float
    global_p_value: float
    global_significance: float
    global_significance_is_lower_limit: bool
    global_p_value_one_region: float
    pseudo_min_p: np.ndarray
    npe: int
    n_failed: int
    seed: int

    def summary(self) -> str:
        """One line: region, window, local and global significance."""
        z = f"{'>' if self.global_significance_is_lower_limit else ''}{self.global_significance:.2f}"
        return (
            f"global hunt: region {self.region}, window [{self.window[0]:.4g}, {self.window[1]:.4g}], "
            f"local p = {self.local_p_value:.3g} ({self.local_significance:.2f} sigma), global p = "
            f"{self.global_p_value:.3g} ({z} sigma; {self.global_p_value_one_region:.3g} for this region alone, "
            f"{self.npe - self.n_failed} pseudo-experiments)"
        )

    def bumphunt_result(self, fit: Any) -> BumpHuntResult:
        """The best region as a :class:`BumpHuntResult` (for :func:`~cms_anomaly.analyses.plotting.plot_bumphunt`);
        ``fit`` is that region's :class:`~cms_anomaly.stats.fits.FitResult`."""
        first, width = self.window_bins
        t_pe = -np.log(np.clip(self.pseudo_min_p.min(axis=1), 1e-300, None))
        return BumpHuntResult(
            edges=fit.edges,
            data=fit.observed,
            reference=fit.expected,
            window=self.window,
            window_bins=self.window_bins,
            local_p_value=self.local_p_value,
            local_significance=self.local_significance,
            global_p_value=self.global_p_value,
            global_significance=self.global_significance,
            global_significance_is_lower_limit=self.global_significance_is_lower_limit,
            signal_estimate=float(np.sum(fit.observed[first : first + width] - fit.expected[first : first + width])),
            test_statistic=float(-np.log(max(self.local_p_value, 1e-300))),
            pseudo_test_statistics=t_pe,
            npe=self.npe - self.n_failed,
            seed=self.seed,
            mode="excess",
        )


def _pseudo_min_p(fit: Any, windows: np.ndarray, npe: int, rng: np.random.Generator, chunk: int) -> np.ndarray:
    """Smallest local p-value over ``windows`` of ``npe`` background-only spectra drawn from ``fit`` and
    refitted as ``fit`` was (NaN where a refit did not converge)."""
    from cms_anomaly.stats.fits import refit_poisson

    out = np.empty(npe)
    for start in range(0, npe, chunk):
        size = min(chunk, npe - start)
        counts = rng.poisson(fit.expected, size=(size, fit.expected.size)).astype(np.float64)
        refit = refit_poisson(fit, counts)
        p = scan_windows(counts, refit.expected, refit.jacobian, refit.theta_covariance, windows)
        out[start : start + size] = np.where(refit.converged, p.min(axis=1), np.nan)
    return out


def global_hunt(
    fits: Any, *, seed: int, npe: int = 10000, width_min: int = 2, width_max: int = 7, chunk: int = 1000
) -> GlobalHuntResult:
    """BumpHunter over every region's selected spectrum, each against its own background fit, with
    the global p-value of the whole procedure.

    The observed statistic is the smallest local p-value (:func:`scan_windows`, Minuit's covariance
    of each fit) over regions x windows of ``width_min..width_max`` bins. Each pseudo-experiment draws
    every region's spectrum from that region's fitted background (Poisson in every bin, regions
    independent), refits it with the same likelihood, bins and excluded bins
    (:func:`~cms_anomaly.stats.fits.refit_poisson`, its covariance from the Fisher information) and
    takes the same minimum; the global p-value is the fraction of pseudo-experiments at least as extreme.

    Parameters
    ----------
    fits : sequence of FitResult
        One unweighted Poisson fit (:func:`~cms_anomaly.stats.fits.fit_dijet`) per region, same binning.
    seed : int
        Seed of the pseudo-experiments.
    npe : int
        Number of pseudo-experiments (LHCO: 10000).
    width_min, width_max : int
        Window widths in bins (LHCO: 2-7).
    chunk : int
        Pseudo-experiments refitted at once (memory only; the result does not depend on it).

    Returns
    -------
    GlobalHuntResult
        Best region and window, local and global p-values, the single-region global p-value.

    Raises
    ------
    BumpHuntError
        No fit, fits of different binnings, or ``npe < 1``.
    """
    from threadpoolctl import threadpool_limits

    fits = list(fits)
    if not fits or npe < 1:
        raise BumpHuntError(f"global_hunt: need at least one fit and npe >= 1, got {len(fits)} fits, npe = {npe}")
    edges = fits[0].edges
    if any(f.edges.shape != edges.shape or not np.allclose(f.edges, edges) for f in fits):
        raise BumpHuntError("global_hunt: the fits have different bin edges")
    windows = window_bins(edges.size - 1, width_min=width_min, width_max=width_max)
    local = np.stack(
        [scan_windows(f.observed, f.expected, f.expected_jacobian(), f.theta_covariance, windows) for f in fits]
    )
    region, w = np.unravel_index(int(np.argmin(local)), local.shape)
    p_obs = float(local[region, w])
    rng = np.random.default_rng(seed)
    with threadpool_limits(1):  # 4-parameter matrices: BLAS threads only add overhead
        pe = np.stack([_pseudo_min_p(f, windows, npe, rng, chunk) for f in fits], axis=1)
    ok = np.isfinite(pe).all(axis=1)
    if not ok.all():
        log.warning("global_hunt: %d of %d pseudo-experiments dropped (a refit did not converge)", (~ok).sum(), npe)
    pe = pe[ok]
    p_global = float(np.mean(pe.min(axis=1) <= p_obs)) if pe.size else float("nan")
    first, width = (int(x) for x in windows[w])
    return GlobalHuntResult(
        windows=windows,
        local_p=local,
        region=int(region),
        window_bins=(first, width),
        window=(float(edges[first]), float(edges[first + width])),
        local_p_value=p_obs,
        local_significance=z_from_p(p_obs),
        global_p_value=p_global,
        global_significance=_global_significance(p_global, max(len(pe), 1)),
        global_significance_is_lower_limit=p_global == 0.0,
        global_p_value_one_region=float(np.mean(pe[:, region] <= p_obs)) if pe.size else float("nan"),
        pseudo_min_p=pe,
        npe=int(npe),
        n_failed=int((~ok).sum()),
        seed=int(seed),
    )
