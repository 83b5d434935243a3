"""ROC curves, AUC, LR+ and SIC, TPR at a fixed FPR (weighted; Knapp et al., Mikuni et al.).

Pure functions on numpy arrays and :class:`hist.Hist` objects; larger score = more anomalous,
an event is selected when ``score > threshold``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from cms_anomaly.stats._common import (
    ONE_SIGMA_CL,
    StatisticsError,
    _as_1d,
    _finite_scores,
    _weights_for,
    effective_entries,
)
from cms_anomaly.stats.intervals import efficiency_from_sums
from cms_anomaly.stats.thresholds import threshold_at_efficiency

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- ROC
@dataclass(frozen=True)
class RocCurve:
    """A (weighted) ROC curve: background efficiency vs signal efficiency.

    Point ``i`` selects ``score > thresholds[i]``. The first point is (0, 0) (threshold = the
    maximum score) and the last (1, 1) (threshold below the minimum). Ties in score move
    both efficiencies together (a diagonal segment), so :meth:`auc` counts ties one half.

    Attributes
    ----------
    fpr, tpr : numpy.ndarray
        False (background) and true (signal) positive rates, non-decreasing.
    thresholds : numpy.ndarray
        Decreasing thresholds.
    n_bkg_eff, n_sig_eff : float
        Effective entries of the background and signal samples (for binomial intervals).
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    n_bkg_eff: float
    n_sig_eff: float

    def auc(self) -> float:
        """Area under the curve by the trapezoid rule (exact Mann-Whitney AUC, ties count 1/2)."""
        return float(np.trapezoid(self.tpr, self.fpr))

    def sic(self, *, min_fpr: float = 0.0) -> np.ndarray:
        """SIC = TPR / sqrt(FPR) at each point; NaN where ``fpr <= min_fpr`` (or 0)."""
        return sic(self.tpr, np.where(self.fpr > min_fpr, self.fpr, 0.0))

    def lr_plus(self) -> np.ndarray:
        """LR+ = TPR / FPR at each point; NaN where FPR = 0."""
        return lr_plus(self.tpr, self.fpr)


def roc_curve(
    bkg_scores: npt.ArrayLike,
    sig_scores: npt.ArrayLike,
    *,
    bkg_weights: npt.ArrayLike | None = None,
    sig_weights: npt.ArrayLike | None = None,
) -> RocCurve:
    """ROC curve of a score separating signal from background, with per-event weights.

    Parameters
    ----------
    bkg_scores, sig_scores : array_like
        Scores of background (SM) and signal events; larger = more signal-like.
    bkg_weights, sig_weights : array_like, optional
        Per-event weights; each sample's total weight must be positive.

    Returns
    -------
    RocCurve
        Points at every distinct score value, from (0, 0) to (1, 1).

    Raises
    ------
    StatisticsError
        Empty sample, NaN scores, or non-positive total weight.
    """
    sb, wb = _finite_scores(bkg_scores, bkg_weights, "bkg_scores")
    ss, ws = _finite_scores(sig_scores, sig_weights, "sig_scores")
    if sb.size == 0 or ss.size == 0:
        raise StatisticsError(f"roc_curve: need events in both samples (bkg {sb.size}, signal {ss.size})")
    tb, ts = float(wb.sum()), float(ws.sum())
    if not (tb > 0 and ts > 0):
        raise StatisticsError(f"roc_curve: total weights must be positive (bkg {tb}, signal {ts})")
    uniq, inv = np.unique(np.concatenate([sb, ss]), return_inverse=True)
    wb_at = np.bincount(inv[: sb.size], weights=wb, minlength=uniq.size)[::-1]
    ws_at = np.bincount(inv[sb.size :], weights=ws, minlength=uniq.size)[::-1]
    fpr = np.concatenate([[0.0], np.cumsum(wb_at) / tb])
    tpr = np.concatenate([[0.0], np.cumsum(ws_at) / ts])
    desc = uniq[::-1]
    thresholds = np.concatenate([desc, [np.nextafter(desc[-1], -np.inf)]])
    fpr[-1], tpr[-1] = 1.0, 1.0  # exact end point despite round-off
    return RocCurve(
        fpr=fpr, tpr=tpr, thresholds=thresholds, n_bkg_eff=effective_entries(wb), n_sig_eff=effective_entries(ws)
    )


def roc_from_sums(
    bkg_sumw: npt.ArrayLike,
    sig_sumw: npt.ArrayLike,
    *,
    bkg_sumw2: npt.ArrayLike | None = None,
    sig_sumw2: npt.ArrayLike | None = None,
) -> RocCurve:
    """ROC of a binned score from the per-bin sums of weights (bins in increasing score order, flow
    bins included, e.g. a ``Weight`` histogram's ``view(flow=True)``); the events of one bin are tied.

    ``thresholds`` are bin indices: point ``i`` selects bins ``thresholds[i], ...``. With the sums of
    squared weights the effective entries are exact (else those of the bin sums as weights).
    """
    b = np.asarray(bkg_sumw, dtype=np.float64)
    s = np.asarray(sig_sumw, dtype=np.float64)
    if b.shape != s.shape or b.ndim != 1:
        raise StatisticsError(f"roc_from_sums: bin sums of different shapes {b.shape}, {s.shape}")
    tb, ts = float(b.sum()), float(s.sum())
    if not (tb > 0 and ts > 0):
        raise StatisticsError(f"roc_from_sums: total weights must be positive (bkg {tb}, signal {ts})")
    fpr = np.concatenate([[0.0], np.cumsum(b[::-1]) / tb])
    tpr = np.concatenate([[0.0], np.cumsum(s[::-1]) / ts])
    fpr[-1], tpr[-1] = 1.0, 1.0
    thresholds = np.arange(len(b), -1, -1, dtype=np.float64)  # point i keeps bins len-i, ...

    def n_eff(w: np.ndarray, w2: npt.ArrayLike | None) -> float:
        return effective_entries(w) if w2 is None else float(w.sum() ** 2 / np.asarray(w2, np.float64).sum())

    return RocCurve(
        fpr=fpr, tpr=tpr, thresholds=thresholds, n_bkg_eff=n_eff(b, bkg_sumw2), n_sig_eff=n_eff(s, sig_sumw2)
    )


def auc(
    bkg_scores: npt.ArrayLike,
    sig_scores: npt.ArrayLike,
    *,
    bkg_weights: npt.ArrayLike | None = None,
    sig_weights: npt.ArrayLike | None = None,
) -> float:
    r"""Area under the ROC curve, :math:`P(s_\mathrm{sig} > s_\mathrm{bkg}) + \tfrac12 P(s_\mathrm{sig} = s_\mathrm{bkg})`.

    For two unit-variance Gaussians separated by ``d`` this is :math:`\Phi(d/\sqrt2)`.

    Parameters
    ----------
    bkg_scores, sig_scores : array_like
        Scores; larger = more signal-like.
    bkg_weights, sig_weights : array_like, optional
        Per-event weights.

    Returns
    -------
    float
        The AUC in [0, 1].
    """
    return roc_curve(bkg_scores, sig_scores, bkg_weights=bkg_weights, sig_weights=sig_weights).auc()


def roc_from_labels(scores: npt.ArrayLike, labels: npt.ArrayLike, *, weights: npt.ArrayLike | None = None) -> RocCurve:
    """ROC curve from one score array and boolean truth labels (True = signal).

    Parameters
    ----------
    scores : array_like
        Scores of all events, shape (N,).
    labels : array_like of bool
        True for signal (e.g. ttbar in labelled MC), False for background.
    weights : array_like, optional
        Per-event weights.

    Returns
    -------
    RocCurve
        As :func:`roc_curve`.
    """
    s = _as_1d(scores, "scores")
    lab = np.asarray(labels, dtype=bool)
    if lab.shape != s.shape:
        raise StatisticsError(f"roc_from_labels: labels have shape {lab.shape}, scores {s.shape}")
    w = _weights_for(s, weights, "weights")
    return roc_curve(s[~lab], s[lab], bkg_weights=w[~lab], sig_weights=w[lab])


def lr_plus(tpr: npt.ArrayLike, fpr: npt.ArrayLike) -> np.ndarray:
    """Positive likelihood ratio ``LR+ = TPR / FPR`` (NaN where FPR = 0).

    Parameters
    ----------
    tpr, fpr : array_like
        True and false positive rates.

    Returns
    -------
    numpy.ndarray
        Element-wise ratio.
    """
    t = np.asarray(tpr, dtype=np.float64)
    f = np.asarray(fpr, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f > 0, t / np.where(f > 0, f, 1.0), np.nan)


def sic(tpr: npt.ArrayLike, fpr: npt.ArrayLike) -> np.ndarray:
    r"""Significance improvement characteristic ``SIC = TPR / sqrt(FPR)`` (Mikuni et al. Fig. 1).

    The gain in :math:`S/\sqrt{B}` from a selection; NaN where FPR = 0.

    Parameters
    ----------
    tpr, fpr : array_like
        True and false positive rates.

    Returns
    -------
    numpy.ndarray
        Element-wise SIC.
    """
    t = np.asarray(tpr, dtype=np.float64)
    f = np.asarray(fpr, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f > 0, t / np.sqrt(np.where(f > 0, f, 1.0)), np.nan)


@dataclass(frozen=True)
class WorkingPoint:
    """Signal efficiency at a fixed SM false-positive rate.

    Attributes
    ----------
    target_fpr : float
        Requested FPR.
    threshold : float
        Score threshold from the background sample (``score > threshold`` selected).
    fpr, tpr : float
        Achieved rates (``fpr <= target_fpr``; ties are not split).
    fpr_interval, tpr_interval : tuple of float
        Agresti-Coull intervals (effective counts for weighted samples).
    lr_plus, sic : float
        ``tpr/fpr`` and ``tpr/sqrt(fpr)`` (NaN when ``fpr == 0``).
    """

    target_fpr: float
    threshold: float
    fpr: float
    tpr: float
    fpr_interval: tuple[float, float]
    tpr_interval: tuple[float, float]
    lr_plus: float
    sic: float


def tpr_at_fpr(
    bkg_scores: npt.ArrayLike,
    sig_scores: npt.ArrayLike,
    *,
    fpr: float,
    bkg_weights: npt.ArrayLike | None = None,
    sig_weights: npt.ArrayLike | None = None,
    cl: float = ONE_SIGMA_CL,
) -> WorkingPoint:
    """Signal efficiency at the threshold that keeps a fraction ``fpr`` of the background.

    The threshold comes from :func:`threshold_at_efficiency` on the background sample; the TPR
    uncertainty is the Agresti-Coull interval (Knapp et al. sec. 3) with effective counts.

    Parameters
    ----------
    bkg_scores, sig_scores : array_like
        Scores; larger = more anomalous.
    fpr : float
        Target false-positive rate (e.g. one of :data:`SM_WORKING_POINTS`).
    bkg_weights, sig_weights : array_like, optional
        Per-event weights.
    cl : float
        Confidence level of the intervals.

    Returns
    -------
    WorkingPoint
        Threshold, achieved FPR/TPR with intervals, LR+ and SIC.
    """
    sb, wb = _finite_scores(bkg_scores, bkg_weights, "bkg_scores")
    ss, ws = _finite_scores(sig_scores, sig_weights, "sig_scores")
    if ss.size == 0:
        raise StatisticsError("tpr_at_fpr: empty signal sample")
    thr = threshold_at_efficiency(sb, wb, efficiency=fpr)
    passed_b, passed_s = sb > thr, ss > thr
    ib = efficiency_from_sums(wb[passed_b].sum(), wb.sum(), np.sum(wb * wb), cl=cl)
    is_ = efficiency_from_sums(ws[passed_s].sum(), ws.sum(), np.sum(ws * ws), cl=cl)
    f, t = float(ib.estimate), float(is_.estimate)
    return WorkingPoint(
        target_fpr=float(fpr),
        threshold=thr,
        fpr=f,
        tpr=t,
        fpr_interval=(float(ib.low), float(ib.high)),
        tpr_interval=(float(is_.low), float(is_.high)),
        lr_plus=float(lr_plus(t, f)),
        sic=float(sic(t, f)),
    )
