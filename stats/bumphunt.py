"""BumpHunter scans through pyBumpHunter (the reference implementation), as a thin typed wrapper.

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

__all__ = ["BumpHuntError", "BumpHuntResult", "bump_hunt", "bump_hunt_arrays"]


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
