"""Post-processing statistics: ROC/SIC, binomial intervals, thresholds, ASTF, ABCD, rates, dCor.

Pure functions on numpy arrays and :class:`hist.Hist` objects. Score convention throughout:
**larger score = more anomalous**, and an event is *selected* when ``score > threshold``
(strictly greater, the same convention as the model cards written by ``cms-anomaly train``).
Weights are per-event (e.g. ``xsec * lumi / sumw``); where a binomial interval is needed for
weighted events the effective number of entries ``n_eff = (sum w)^2 / sum w^2`` is used.

References (the seed papers of this project)
-------------------------------------------
* Knapp et al., "Adversarially Learned Anomaly Detection on CMS Open Data" (seed 000):
  ASTF, Agresti-Coull intervals on TPR, the alpha = 1e-3 anomaly selection.
* Mikuni, Nachman, Shih, "Online-compatible unsupervised nonresonant anomaly detection"
  (seed 001): ABCD prediction eq. (3), closure, significance ``(N-B)/sqrt(N)``, SIC, DisCo.
* Cerri et al., "Variational autoencoders for new physics mining at the LHC" (seed 004):
  5 fb^-1 per month, cross section for 100 BSM events/month, SBR ratio eq. (5.1).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as _sps

log = logging.getLogger(__name__)

__all__ = [
    "LUMI_PER_MONTH_FB",
    "ONE_SIGMA_CL",
    "SM_WORKING_POINTS",
    "AbcdCounts",
    "AbcdPrediction",
    "AstfResult",
    "BinomialInterval",
    "RocCurve",
    "StatisticsError",
    "WorkingPoint",
    "abcd_counts",
    "abcd_counts_from_hist",
    "abcd_prediction",
    "abcd_signal_strength",
    "abcd_significance",
    "abcd_trigger_prescales",
    "on_off_significance",
    "agresti_coull_interval",
    "astf",
    "auc",
    "diagonal_thresholds",
    "distance_correlation",
    "effective_entries",
    "enrichment_factor",
    "events_per_month",
    "lr_plus",
    "ratio_uncertainty",
    "roc_curve",
    "roc_from_labels",
    "sbr_ratio",
    "selection_efficiency",
    "sic",
    "threshold_at_efficiency",
    "tpr_at_fpr",
    "trigger_rate_hz",
    "weighted_efficiency",
    "xsec_for_events_per_month",
    "xsec_for_signal_to_background",
]

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
def _as_1d(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise StatisticsError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _weights_for(scores: np.ndarray, weights, name: str) -> np.ndarray:
    if weights is None:
        return np.ones_like(scores)
    w = _as_1d(weights, name)
    if w.shape != scores.shape:
        raise StatisticsError(f"{name} has shape {w.shape} but its scores have shape {scores.shape}")
    if not np.all(np.isfinite(w)):
        raise StatisticsError(f"{name} contains non-finite values")
    return w


def _finite_scores(scores, weights, name: str) -> tuple[np.ndarray, np.ndarray]:
    s = _as_1d(scores, name)
    w = _weights_for(s, weights, f"{name} weights")
    bad = np.isnan(s)
    if bad.any():
        raise StatisticsError(f"{name} contains {int(bad.sum())} NaN scores")
    return s, w


def effective_entries(weights) -> float:
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
    s2 = float(np.sum(w * w))
    return float(np.sum(w)) ** 2 / s2 if s2 > 0 else 0.0


# ----------------------------------------------------------------------------- binomial intervals
@dataclass(frozen=True)
class BinomialInterval:
    """An efficiency estimate with its Agresti-Coull interval (arrays broadcast like the inputs).

    Attributes
    ----------
    estimate : numpy.ndarray
        Maximum-likelihood efficiency ``k / n`` (NaN where ``n == 0``).
    center : numpy.ndarray
        Agresti-Coull centre ``p~ = (k + z^2/2) / (n + z^2)``.
    low, high : numpy.ndarray
        Interval bounds, clipped to [0, 1].
    cl : float
        Confidence level of the interval.
    """

    estimate: np.ndarray
    center: np.ndarray
    low: np.ndarray
    high: np.ndarray
    cl: float

    @property
    def error_low(self) -> np.ndarray:
        """Distance from the estimate down to ``low`` (for asymmetric error bars)."""
        return np.where(np.isfinite(self.estimate), self.estimate - self.low, np.nan)

    @property
    def error_high(self) -> np.ndarray:
        """Distance from the estimate up to ``high``."""
        return np.where(np.isfinite(self.estimate), self.high - self.estimate, np.nan)


def agresti_coull_interval(passed, total, *, cl: float = ONE_SIGMA_CL) -> BinomialInterval:
    r"""Agresti-Coull interval for a binomial proportion (Agresti & Coull 1998; Knapp et al. ref. [45]).

    With :math:`z = \Phi^{-1}(1 - (1-\mathrm{CL})/2)`, :math:`\tilde n = n + z^2` and
    :math:`\tilde p = (k + z^2/2)/\tilde n` the interval is

    .. math:: \tilde p \pm z \sqrt{\tilde p (1-\tilde p) / \tilde n},

    clipped to [0, 1]. For CL = 95 % this is the "add two successes and two failures" rule.
    Non-integer ``passed``/``total`` (effective counts of weighted events) are accepted.

    Parameters
    ----------
    passed : array_like
        Number of successes ``k`` (``0 <= k <= n``).
    total : array_like
        Number of trials ``n``; ``n = 0`` gives the uninformative interval [0, 1].
    cl : float
        Two-sided confidence level, default 68.27 % (one sigma).

    Returns
    -------
    BinomialInterval
        MLE ``k/n``, the AC centre and the bounds.

    Raises
    ------
    StatisticsError
        If ``cl`` is outside (0, 1), or counts are negative or ``k > n``.
    """
    if not 0.0 < cl < 1.0:
        raise StatisticsError(f"agresti_coull_interval: cl must be in (0, 1), got {cl}")
    k = np.asarray(passed, dtype=np.float64)
    n = np.asarray(total, dtype=np.float64)
    if np.any(k < 0) or np.any(n < 0):
        raise StatisticsError("agresti_coull_interval: passed and total must be non-negative")
    if np.any(k > n * (1 + 1e-9) + 1e-12):
        raise StatisticsError("agresti_coull_interval: passed exceeds total in at least one entry")
    z = float(_sps.norm.isf((1.0 - cl) / 2.0))
    n_t = n + z * z
    p_t = (k + z * z / 2.0) / n_t
    half = z * np.sqrt(p_t * (1.0 - p_t) / n_t)
    with np.errstate(invalid="ignore", divide="ignore"):
        est = np.where(n > 0, k / np.where(n > 0, n, 1.0), np.nan)
    # n = 0 carries no information: exactly [0, 1] (the formula gives it up to round-off)
    low = np.where(n > 0, np.clip(p_t - half, 0.0, 1.0), 0.0)
    high = np.where(n > 0, np.clip(p_t + half, 0.0, 1.0), 1.0)
    return BinomialInterval(estimate=est, center=p_t, low=low, high=high, cl=cl)


def _weighted_efficiency_interval(w_pass: np.ndarray, w_total: np.ndarray, w2_total: np.ndarray,
                                  *, cl: float) -> BinomialInterval:
    """AC interval for ``w_pass / w_total`` using effective counts of the denominator sample."""
    w_pass = np.asarray(w_pass, dtype=np.float64)
    w_total = np.asarray(w_total, dtype=np.float64)
    w2_total = np.asarray(w2_total, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        n_eff = np.where(w2_total > 0, w_total ** 2 / np.where(w2_total > 0, w2_total, 1.0), 0.0)
        p = np.where(w_total > 0, w_pass / np.where(w_total != 0, w_total, 1.0), np.nan)
    k_eff = np.clip(np.nan_to_num(p, nan=0.0), 0.0, 1.0) * n_eff
    ac = agresti_coull_interval(k_eff, n_eff, cl=cl)
    return BinomialInterval(estimate=p, center=ac.center, low=ac.low, high=ac.high, cl=cl)


def weighted_efficiency(passed, weights=None, *, cl: float = ONE_SIGMA_CL) -> BinomialInterval:
    """Efficiency of a selection on a (weighted) sample with its Agresti-Coull interval.

    Parameters
    ----------
    passed : array_like of bool
        Per-event selection decision, shape (N,).
    weights : array_like, optional
        Per-event weights (unit by default); the interval uses effective entries.
    cl : float
        Confidence level.

    Returns
    -------
    BinomialInterval
        Scalar efficiency ``sum(w[passed]) / sum(w)`` and its interval.
    """
    mask = np.asarray(passed, dtype=bool)
    if mask.ndim != 1:
        raise StatisticsError(f"weighted_efficiency: passed must be one-dimensional, got shape {mask.shape}")
    w = _weights_for(mask.astype(np.float64), weights, "weights")
    return _weighted_efficiency_interval(w[mask].sum(), w.sum(), np.sum(w * w), cl=cl)


def enrichment_factor(process_passed, all_passed, *, process_weights=None, all_weights=None,
                      cl: float = ONE_SIGMA_CL) -> tuple[float, float]:
    r"""How much a selection enriches one process: :math:`\epsilon_\mathrm{process} / \epsilon_\mathrm{all}`.

    Equal to (process fraction after the selection) / (process fraction before), e.g. the
    ttbar enrichment at the alpha = 1e-3 anomaly selection (Knapp et al. sec. 4: about x20).
    The error propagates the symmetrised Agresti-Coull half-widths of both efficiencies
    (treated as independent, conservative when the process is part of "all").

    Parameters
    ----------
    process_passed : array_like of bool
        Selection decision for the events of the process (e.g. labelled ttbar MC).
    all_passed : array_like of bool
        Selection decision for all events (data, or the full MC mixture).
    process_weights, all_weights : array_like, optional
        Per-event weights.
    cl : float
        Confidence level of the efficiency intervals.

    Returns
    -------
    tuple of float
        ``(enrichment, error)``.
    """
    e_p = weighted_efficiency(process_passed, process_weights, cl=cl)
    e_a = weighted_efficiency(all_passed, all_weights, cl=cl)
    r, err = ratio_uncertainty(e_p.estimate, 0.5 * (e_p.high - e_p.low), e_a.estimate, 0.5 * (e_a.high - e_a.low))
    return float(r), float(err)


# ----------------------------------------------------------------------------- thresholds
def weighted_cdf(reference, weights, values) -> np.ndarray:
    """Weighted empirical CDF of ``reference`` evaluated at ``values``: the weighted fraction of
    reference entries ``<= value`` (e.g. the SM quantile of a signal event's score)."""
    ref = _as_1d(reference, "reference")
    w = _weights_for(ref, weights, "weights")
    order = np.argsort(ref)
    rs, cw = ref[order], np.cumsum(w[order])
    idx = np.searchsorted(rs, np.asarray(values, dtype=np.float64), side="right")
    return np.where(idx > 0, cw[np.maximum(idx - 1, 0)], 0.0) / cw[-1]


def threshold_at_efficiency(scores, weights=None, *, efficiency: float) -> float:
    """Score threshold that keeps (weighted) fraction ``<= efficiency`` of a sample.

    Events are selected by ``score > threshold``. Ties are never split: the threshold is always
    one of the sample's score values (or lies just below the minimum), so the achieved
    efficiency is the largest one reachable that does not exceed the request; it can be lower
    than the request when a block of tied scores straddles it. Use :func:`selection_efficiency`
    to read the achieved value.

    Parameters
    ----------
    scores : array_like
        Anomaly scores of the reference (SM) sample, shape (N,).
    weights : array_like, optional
        Per-event weights, shape (N,); unit weights by default. Must have a positive sum.
    efficiency : float
        Requested selected fraction in [0, 1] (e.g. ``5.4e-6`` for ~1000 SM events/month).

    Returns
    -------
    float
        The threshold; ``numpy.inf`` is never returned: for ``efficiency`` smaller than the
        weight of the highest-score block the maximum score is returned (nothing selected).

    Raises
    ------
    StatisticsError
        Empty sample, NaN scores, non-positive total weight, or ``efficiency`` outside [0, 1].
    """
    if not 0.0 <= efficiency <= 1.0:
        raise StatisticsError(f"threshold_at_efficiency: efficiency must be in [0, 1], got {efficiency}")
    s, w = _finite_scores(scores, weights, "scores")
    if s.size == 0:
        raise StatisticsError("threshold_at_efficiency: empty score array")
    total = float(w.sum())
    if not total > 0:
        raise StatisticsError(f"threshold_at_efficiency: total weight must be positive, got {total}")
    uniq, inv = np.unique(s, return_inverse=True)          # ascending unique scores
    w_at = np.bincount(inv, weights=w, minlength=uniq.size)
    # weight strictly above uniq[j] = sum of blocks j+1..end
    above = np.concatenate([np.cumsum(w_at[::-1])[::-1][1:], [0.0]]) / total
    if efficiency >= 1.0:
        # everything selected: put the threshold just below the minimum score
        return float(np.nextafter(uniq[0], -np.inf))
    # smallest candidate threshold whose selected fraction does not exceed the request
    # (``above`` is non-increasing for non-negative weights; the last entry is 0)
    j = int(np.flatnonzero(above <= efficiency * (1.0 + 1e-12))[0])
    return float(uniq[j])


def selection_efficiency(scores, weights=None, *, threshold: float) -> float:
    """Weighted fraction of events with ``score > threshold``.

    Parameters
    ----------
    scores : array_like
        Scores, shape (N,).
    weights : array_like, optional
        Per-event weights (unit by default).
    threshold : float
        Selection threshold.

    Returns
    -------
    float
        ``sum(w[s > t]) / sum(w)`` (NaN for an empty sample).
    """
    s, w = _finite_scores(scores, weights, "scores")
    total = float(w.sum())
    return float(w[s > threshold].sum() / total) if total != 0 else float("nan")


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


def roc_curve(bkg_scores, sig_scores, *, bkg_weights=None, sig_weights=None) -> RocCurve:
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
    ws_at = np.bincount(inv[sb.size:], weights=ws, minlength=uniq.size)[::-1]
    fpr = np.concatenate([[0.0], np.cumsum(wb_at) / tb])
    tpr = np.concatenate([[0.0], np.cumsum(ws_at) / ts])
    desc = uniq[::-1]
    thresholds = np.concatenate([desc, [np.nextafter(desc[-1], -np.inf)]])
    fpr[-1], tpr[-1] = 1.0, 1.0  # exact end point despite round-off
    return RocCurve(fpr=fpr, tpr=tpr, thresholds=thresholds,
                    n_bkg_eff=effective_entries(wb), n_sig_eff=effective_entries(ws))


def auc(bkg_scores, sig_scores, *, bkg_weights=None, sig_weights=None) -> float:
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


def roc_from_labels(scores, labels, *, weights=None) -> RocCurve:
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


def lr_plus(tpr, fpr) -> np.ndarray:
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


def sic(tpr, fpr) -> np.ndarray:
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


def tpr_at_fpr(bkg_scores, sig_scores, *, fpr: float, bkg_weights=None, sig_weights=None,
               cl: float = ONE_SIGMA_CL) -> WorkingPoint:
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
    ib = _weighted_efficiency_interval(wb[passed_b].sum(), wb.sum(), np.sum(wb * wb), cl=cl)
    is_ = _weighted_efficiency_interval(ws[passed_s].sum(), ws.sum(), np.sum(ws * ws), cl=cl)
    f, t = float(ib.estimate), float(is_.estimate)
    return WorkingPoint(target_fpr=float(fpr), threshold=thr, fpr=f, tpr=t,
                        fpr_interval=(float(ib.low), float(ib.high)),
                        tpr_interval=(float(is_.low), float(is_.high)),
                        lr_plus=float(lr_plus(t, f)), sic=float(sic(t, f)))


def ratio_uncertainty(numerator, numerator_error, denominator, denominator_error) -> tuple[np.ndarray, np.ndarray]:
    """Ratio ``r = a / b`` of independent quantities with first-order error propagation.

    ``sigma_r = |r| sqrt((sigma_a/a)^2 + (sigma_b/b)^2)``; for ``a == 0`` the error is
    ``sigma_a / |b|``. NaN where ``b == 0``.

    Parameters
    ----------
    numerator, numerator_error : array_like
        ``a`` and its standard error.
    denominator, denominator_error : array_like
        ``b`` and its standard error.

    Returns
    -------
    tuple of numpy.ndarray
        ``(r, sigma_r)``.
    """
    a = np.asarray(numerator, dtype=np.float64)
    sa = np.asarray(numerator_error, dtype=np.float64)
    b = np.asarray(denominator, dtype=np.float64)
    sb = np.asarray(denominator_error, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(b != 0, a / np.where(b != 0, b, 1.0), np.nan)
        rel2 = np.where(a != 0, (sa / np.where(a != 0, a, 1.0)) ** 2, 0.0) + (sb / np.where(b != 0, b, 1.0)) ** 2
        err = np.where(a != 0, np.abs(r) * np.sqrt(rel2), sa / np.abs(np.where(b != 0, b, np.nan)))
    return r, err


# ----------------------------------------------------------------------------- ASTF
@dataclass(frozen=True)
class AstfResult:
    """Anomaly selection transfer function: accepted fraction per bin (Knapp et al. sec. 4).

    Attributes
    ----------
    edges : tuple of numpy.ndarray
        Bin edges of each axis.
    axis_labels : tuple of str
        Axis labels (with units) copied from the histogram.
    fraction : numpy.ndarray
        ``N_selected / N_all`` per bin (NaN in empty bins).
    interval : BinomialInterval
        Agresti-Coull interval per bin, computed with the effective entries of ``N_all``.
    n_all, n_selected : numpy.ndarray
        Sums of weights per bin before and after the anomaly selection.
    n_all_eff : numpy.ndarray
        Effective entries per bin of the denominator.
    """

    edges: tuple[np.ndarray, ...]
    axis_labels: tuple[str, ...]
    fraction: np.ndarray
    interval: BinomialInterval
    n_all: np.ndarray
    n_selected: np.ndarray
    n_all_eff: np.ndarray

    @property
    def centers(self) -> np.ndarray:
        """Bin centres of the first axis."""
        e = self.edges[0]
        return 0.5 * (e[1:] + e[:-1])

    def ratio_to(self, other: AstfResult) -> tuple[np.ndarray, np.ndarray]:
        """Per-bin ``self.fraction / other.fraction`` (e.g. data ASTF over MC ASTF) and its error.

        Errors are the symmetrised Agresti-Coull half-widths propagated to first order.
        """
        _check_same_edges(self.edges, other.edges, "AstfResult.ratio_to")
        ea = 0.5 * (self.interval.high - self.interval.low)
        eb = 0.5 * (other.interval.high - other.interval.low)
        return ratio_uncertainty(self.fraction, ea, other.fraction, eb)


def _check_same_edges(a: Sequence[np.ndarray], b: Sequence[np.ndarray], where: str) -> None:
    if len(a) != len(b) or any(x.shape != y.shape or not np.allclose(x, y) for x, y in zip(a, b)):
        raise StatisticsError(f"{where}: histograms have different binning "
                              f"({[x.size - 1 for x in a]} vs {[y.size - 1 for y in b]} bins)")


def _hist_arrays(h, name: str) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...], tuple[str, ...]]:
    """values, variances, edges and labels of a ``hist.Hist`` (flow bins excluded)."""
    try:
        values = np.asarray(h.values(), dtype=np.float64)
        edges = tuple(np.asarray(ax.edges, dtype=np.float64) for ax in h.axes)
        labels = tuple(str(getattr(ax, "label", "") or getattr(ax, "name", "")) for ax in h.axes)
    except AttributeError as err:
        raise StatisticsError(f"{name} must be a hist.Hist with numeric axes, got {type(h).__name__}") from err
    var = h.variances()
    if var is None:
        log.warning("%s has no variance information (weighted fills into Double storage); "
                     "assuming unit weights", name)
        var = values
    return values, np.asarray(var, dtype=np.float64), edges, labels


def astf(h_all, h_selected, *, cl: float = ONE_SIGMA_CL) -> AstfResult:
    r"""Anomaly selection transfer function from histograms before and after the anomaly selection.

    ASTF per bin :math:`= N_\mathrm{sel} / N_\mathrm{all}` (Knapp et al. sec. 4, Fig. 8), with a
    binomial (Agresti-Coull) interval. For weighted histograms (``Weight()`` storage) the
    interval uses effective entries :math:`n_\mathrm{eff} = (\sum w)^2/\sum w^2` of the
    denominator and :math:`k_\mathrm{eff} = \mathrm{ASTF} \cdot n_\mathrm{eff}`.

    Parameters
    ----------
    h_all : hist.Hist
        Quantity (e.g. H_T, N_J) for all events passing the pre-selection.
    h_selected : hist.Hist
        Same quantity and binning for the events passing the anomaly threshold (a subset).
    cl : float
        Confidence level of the interval (default one sigma).

    Returns
    -------
    AstfResult
        Fractions, intervals and counts per bin.

    Raises
    ------
    StatisticsError
        Different binning, or more selected than all events in some bin.
    """
    v_all, var_all, e_all, labels = _hist_arrays(h_all, "h_all")
    v_sel, _, e_sel, _ = _hist_arrays(h_selected, "h_selected")
    _check_same_edges(e_all, e_sel, "astf")
    over = v_sel > v_all * (1 + 1e-9) + 1e-12
    if np.any(over):
        idx = np.argwhere(over)[0].tolist()
        raise StatisticsError(f"astf: h_selected exceeds h_all in bin {idx} "
                              f"({v_sel[tuple(idx)]} > {v_all[tuple(idx)]}); is h_selected a subset?")
    interval = _weighted_efficiency_interval(v_sel, v_all, var_all, cl=cl)
    with np.errstate(invalid="ignore", divide="ignore"):
        n_eff = np.where(var_all > 0, v_all ** 2 / np.where(var_all > 0, var_all, 1.0), 0.0)
    return AstfResult(edges=e_all, axis_labels=labels, fraction=interval.estimate, interval=interval,
                      n_all=v_all, n_selected=v_sel, n_all_eff=n_eff)


# ----------------------------------------------------------------------------- ABCD
@dataclass(frozen=True)
class AbcdCounts:
    """Weighted yields in the four ABCD regions of two (decorrelated) scores.

    Naming follows Mikuni et al. eq. (3): ``a = N(>,>)`` (signal region, both scores above
    their thresholds), ``b = N(>,<)``, ``c = N(<,>)``, ``d = N(<,<)``; ``*_w2`` are the sums of
    squared weights (equal to the counts for unit weights).
    """

    a: float
    b: float
    c: float
    d: float
    a_w2: float
    b_w2: float
    c_w2: float
    d_w2: float

    @classmethod
    def from_counts(cls, a: float, b: float, c: float, d: float) -> AbcdCounts:
        """Unweighted event counts (Poisson variances)."""
        return cls(a=a, b=b, c=c, d=d, a_w2=a, b_w2=b, c_w2=c, d_w2=d)

    @property
    def total(self) -> float:
        """Sum of the four regions."""
        return self.a + self.b + self.c + self.d

    def __add__(self, other: AbcdCounts) -> AbcdCounts:
        """Yields of the union of two independent samples (e.g. SM + injected signal)."""
        return AbcdCounts(**{k: getattr(self, k) + getattr(other, k)
                             for k in ("a", "b", "c", "d", "a_w2", "b_w2", "c_w2", "d_w2")})


def abcd_counts(score1, score2, *, threshold1: float, threshold2: float, weights=None) -> AbcdCounts:
    """Fill the ABCD regions from two per-event scores (``score > threshold`` = "above").

    Parameters
    ----------
    score1, score2 : array_like
        The two scores (e.g. the losses of the DisCo double autoencoder), shape (N,).
    threshold1, threshold2 : float
        Thresholds on each score.
    weights : array_like, optional
        Per-event weights.

    Returns
    -------
    AbcdCounts
        Yields and sums of squared weights per region.
    """
    s1, w = _finite_scores(score1, weights, "score1")
    s2 = _as_1d(score2, "score2")
    if s2.shape != s1.shape:
        raise StatisticsError(f"abcd_counts: score1 has shape {s1.shape}, score2 {s2.shape}")
    hi1, hi2 = s1 > threshold1, s2 > threshold2
    masks = {"a": hi1 & hi2, "b": hi1 & ~hi2, "c": ~hi1 & hi2, "d": ~hi1 & ~hi2}
    vals = {k: float(w[m].sum()) for k, m in masks.items()}
    vals.update({f"{k}_w2": float((w[m] ** 2).sum()) for k, m in masks.items()})
    return AbcdCounts(**vals)


def abcd_counts_from_hist(h, *, threshold1: float, threshold2: float) -> AbcdCounts:
    """Fill the ABCD regions from a 2-D histogram of the two scores (e.g. filled by the processor).

    Under/overflow bins are included (overflow counts as "above"). Each threshold must coincide
    with a bin edge of its axis so that no bin is split.

    Parameters
    ----------
    h : hist.Hist
        2-D histogram, axis 0 = score 1, axis 1 = score 2 (``Weight()`` storage for weighted MC).
    threshold1, threshold2 : float
        Thresholds on the two scores (bin edges).

    Returns
    -------
    AbcdCounts
        Yields and sums of squared weights per region.

    Raises
    ------
    StatisticsError
        Not a 2-D histogram, or a threshold that is not a bin edge.
    """
    try:
        if len(h.axes) != 2:
            raise StatisticsError(f"abcd_counts_from_hist: need a 2-D histogram, got {len(h.axes)} axes")
        values = np.asarray(h.values(flow=True), dtype=np.float64)
        var = h.variances(flow=True)
        edges = [np.asarray(ax.edges, dtype=np.float64) for ax in h.axes]
        flow = [(int(bool(ax.traits.underflow)), int(bool(ax.traits.overflow))) for ax in h.axes]
    except AttributeError as err:
        raise StatisticsError(f"abcd_counts_from_hist: expected a hist.Hist, got {type(h).__name__}") from err
    var = values if var is None else np.asarray(var, dtype=np.float64)
    cuts = []
    for k, (t, e) in enumerate(zip((threshold1, threshold2), edges)):
        hit = np.flatnonzero(np.isclose(e, t, rtol=1e-12, atol=1e-12 * max(1.0, abs(t))))
        if hit.size == 0:
            raise StatisticsError(f"abcd_counts_from_hist: threshold{k + 1} = {t} is not a bin edge of axis "
                                  f"{h.axes[k].name!r} (edges {e[0]:g} .. {e[-1]:g}, {e.size - 1} bins)")
        cuts.append(int(hit[0]) + flow[k][0])  # index of the first "above" bin in the flow-including array
    c1, c2 = cuts

    def region(arr: np.ndarray, hi1: bool, hi2: bool) -> float:
        s1 = slice(c1, None) if hi1 else slice(None, c1)
        s2 = slice(c2, None) if hi2 else slice(None, c2)
        return float(arr[s1, s2].sum())

    keys = {"a": (True, True), "b": (True, False), "c": (False, True), "d": (False, False)}
    vals = {k: region(values, *sides) for k, sides in keys.items()}
    vals.update({f"{k}_w2": region(var, *sides) for k, sides in keys.items()})
    return AbcdCounts(**vals)


@dataclass(frozen=True)
class AbcdPrediction:
    """ABCD background prediction in region A and its comparison with the observation.

    Attributes
    ----------
    predicted, predicted_error : float
        ``B = N_b N_c / N_d`` (control regions optionally signal-subtracted) and its error.
    observed, observed_error : float
        ``N_a`` and ``sqrt(sum w^2)``.
    closure, closure_error : float
        ``predicted / observed`` (1 for perfect closure) and its error.
    significance : float
        ``(N - B) / sqrt(N)`` if ``N > B`` else 0 (Mikuni et al. sec. III).
    corrected : bool
        Whether known signal yields were subtracted from the control regions.
    """

    predicted: float
    predicted_error: float
    observed: float
    observed_error: float
    closure: float
    closure_error: float
    significance: float
    corrected: bool

    @property
    def pull(self) -> float:
        """``(observed - predicted) / sqrt(sigma_obs^2 + sigma_pred^2)``."""
        den = math.hypot(self.observed_error, self.predicted_error)
        return (self.observed - self.predicted) / den if den > 0 else float("nan")


def abcd_significance(n_observed: float, n_background: float, background_error: float = 0.0) -> float:
    """Significance ``(N - B)/sqrt(N)`` if ``N > B``, else 0 (Mikuni et al. sec. III).

    With ``background_error`` (the statistical error of the prediction, e.g. of ABCD control
    regions filled from a simulation smaller than the data) the denominator is
    ``sqrt(N + sigma_B^2)``; the paper's 800k-event sample makes that term negligible, a small
    simulation normalised to it does not.

    Parameters
    ----------
    n_observed : float
        Observed yield ``N`` in the signal region.
    n_background : float
        Predicted background ``B``.
    background_error : float
        Uncertainty of ``B`` (default 0: the paper's formula).

    Returns
    -------
    float
        The significance (never negative).
    """
    n, b = float(n_observed), float(n_background)
    return (n - b) / math.sqrt(n + float(background_error) ** 2) if n > b and n > 0 else 0.0


def on_off_significance(n_on: float, n_off: float, tau: float) -> float:
    r"""Significance :math:`Z_\mathrm{Bi}` of an excess over a background known from simulation.

    The "on/off" problem (Cousins, Linnemann, Tucker, NIM A 595 (2008) 480): ``n_on`` events are
    observed; the background was measured as ``n_off`` simulated (or control-region) entries that
    stand for ``tau`` times the expected background, :math:`b = n_\mathrm{off}/\tau`. Conditioning
    on :math:`n_\mathrm{on} + n_\mathrm{off}` gives the exact binomial p-value
    :math:`p = I_{1/(1+\tau)}(n_\mathrm{on}, n_\mathrm{off} + 1)` (regularised incomplete beta),
    and :math:`Z = \Phi^{-1}(1 - p)`. It stays defined when the simulation has no entry at all
    (``n_off = 0``), where ``(N - B)/sigma`` does not. For a weighted simulation use the effective
    entries ``n_off = B^2/sigma_B^2`` and ``tau = B/sigma_B^2``; with no entries, ``tau`` is one over
    the per-event weight.

    Parameters
    ----------
    n_on : float
        Observed events (> 0 for a non-zero significance).
    n_off : float
        Background entries (may be non-integer: effective entries).
    tau : float
        Ratio of the off (simulation) to the on exposure, > 0.

    Returns
    -------
    float
        Z in Gaussian sigma; 0 when ``n_on`` is 0 (no evidence either way); capped at 38
        (the double-precision limit of the p-value).
    """
    n_on, n_off, tau = float(n_on), float(n_off), float(tau)
    if not (n_on >= 0 and n_off >= 0 and tau > 0) or not all(map(math.isfinite, (n_on, n_off, tau))):
        raise StatisticsError(f"on_off_significance needs n_on >= 0, n_off >= 0, tau > 0; got {n_on}, {n_off}, {tau}")
    if n_on == 0:
        return 0.0
    from scipy.special import betainc

    p = float(betainc(n_on, n_off + 1.0, 1.0 / (1.0 + tau)))
    return float(min(_sps.norm.isf(p), 38.0)) if p > 0 else 38.0


def abcd_prediction(counts: AbcdCounts, *, signal: AbcdCounts | None = None) -> AbcdPrediction:
    r"""ABCD prediction :math:`N_\mathrm{pred}(>,>) = N(>,<) N(<,>) / N(<,<)` (Mikuni et al. eq. 3).

    The prediction error propagates independent Poisson (sum-of-weights-squared) errors of the
    three control regions. With ``signal`` (known signal yields per region, e.g. from a
    signal model) the control regions are corrected for signal contamination,
    :math:`B = (N_b - S_b)(N_c - S_c)/(N_d - S_d)` — the "corrected" curves of Mikuni et al. Fig. 3.

    Parameters
    ----------
    counts : AbcdCounts
        Observed yields (SM only, or SM + signal).
    signal : AbcdCounts, optional
        Signal yields to subtract from the control regions.

    Returns
    -------
    AbcdPrediction
        Prediction, observation, closure (predicted/observed) and significance.

    Raises
    ------
    StatisticsError
        If region D (after correction) is not positive.
    """
    b, c, d = counts.b, counts.c, counts.d
    if signal is not None:
        b, c, d = b - signal.b, c - signal.c, d - signal.d
    if not d > 0:
        raise StatisticsError(f"abcd_prediction: region D = N(<,<) must be positive, got {d}")
    pred = b * c / d
    rel2 = sum(w2 / v ** 2 for v, w2 in ((b, counts.b_w2), (c, counts.c_w2), (d, counts.d_w2)) if v != 0)
    pred_err = abs(pred) * math.sqrt(rel2)
    obs, obs_err = counts.a, math.sqrt(counts.a_w2)
    closure, closure_err = ratio_uncertainty(pred, pred_err, obs, obs_err)
    return AbcdPrediction(predicted=pred, predicted_error=pred_err, observed=obs, observed_error=obs_err,
                          closure=float(closure), closure_error=float(closure_err),
                          significance=abcd_significance(obs, pred), corrected=signal is not None)


def abcd_signal_strength(counts: AbcdCounts, *, signal_template: AbcdCounts) -> tuple[float, float]:
    r"""Signal strength that makes the ABCD relation hold with a known signal shape.

    Solves :math:`(N_a - \mu s_a)(N_d - \mu s_d) = (N_b - \mu s_b)(N_c - \mu s_c)` for
    :math:`\mu`, i.e. the signal normalisation for which the background alone factorises;
    this is the contamination-aware ABCD estimate discussed by Kasieczka et al. (ABCDisCo,
    Mikuni et al. ref. [75]). The physical root keeps every background yield non-negative.

    Parameters
    ----------
    counts : AbcdCounts
        Observed yields.
    signal_template : AbcdCounts
        Signal yields per region for ``mu = 1`` (only their ratios matter for the shape).

    Returns
    -------
    tuple of float
        ``(mu, background_in_a)`` with ``background_in_a = N_a - mu s_a``.

    Raises
    ------
    StatisticsError
        If no root keeps all four background yields non-negative.
    """
    n = np.array([counts.a, counts.b, counts.c, counts.d], dtype=np.float64)
    s = np.array([signal_template.a, signal_template.b, signal_template.c, signal_template.d], dtype=np.float64)
    qa = s[0] * s[3] - s[1] * s[2]
    qb = -(n[0] * s[3] + n[3] * s[0] - n[1] * s[2] - n[2] * s[1])
    qc = n[0] * n[3] - n[1] * n[2]
    if abs(qa) < 1e-12 * max(abs(qb), abs(qc), 1e-300):
        roots = np.array([-qc / qb]) if qb != 0 else np.array([])
    else:
        disc = qb * qb - 4 * qa * qc
        if disc < 0:
            raise StatisticsError(f"abcd_signal_strength: no real solution (discriminant {disc:.3g})")
        sq = math.sqrt(disc)
        roots = np.array([(-qb - sq) / (2 * qa), (-qb + sq) / (2 * qa)])
    ok = [r for r in roots if np.all(n - r * s >= -1e-9 * np.maximum(n, 1.0))]
    if not ok:
        raise StatisticsError(f"abcd_signal_strength: roots {roots.tolist()} give a negative background yield")
    mu = float(min(ok, key=abs))
    return mu, float(n[0] - mu * s[0])


def diagonal_thresholds(score1, score2, *, efficiency: float, weights=None) -> tuple[float, float, float]:
    """Thresholds with equal single-score SM efficiency whose joint region A keeps ``efficiency``.

    The "diagonal" cut of Mikuni et al. (Fig. 1 bottom, Fig. 3): both scores are cut at the
    same per-score background efficiency ``e``, chosen as the largest ``e`` for which the
    fraction with both scores above threshold does not exceed ``efficiency``.

    Parameters
    ----------
    score1, score2 : array_like
        The two scores of the reference (SM) sample.
    efficiency : float
        Target fraction in region A = N(>,>), in (0, 1].
    weights : array_like, optional
        Per-event weights.

    Returns
    -------
    tuple of float
        ``(threshold1, threshold2, per_score_efficiency)``.
    """
    if not 0.0 < efficiency <= 1.0:
        raise StatisticsError(f"diagonal_thresholds: efficiency must be in (0, 1], got {efficiency}")
    s1, w = _finite_scores(score1, weights, "score1")
    s2 = _as_1d(score2, "score2")
    if s2.shape != s1.shape:
        raise StatisticsError(f"diagonal_thresholds: score1 has shape {s1.shape}, score2 {s2.shape}")
    total = float(w.sum())
    if not total > 0:
        raise StatisticsError(f"diagonal_thresholds: total weight must be positive, got {total}")

    def survival(s: np.ndarray) -> np.ndarray:
        # weighted fraction of events with score >= s_e: event e passes a cut at efficiency e' iff <= e'
        order = np.argsort(-s, kind="stable")
        cw = np.cumsum(w[order])
        uniq_first = np.r_[True, np.diff(s[order]) != 0]
        # ties share the survival of the last member of their block
        block = np.cumsum(uniq_first) - 1
        last = np.r_[np.flatnonzero(uniq_first)[1:] - 1, s.size - 1]
        out = np.empty_like(s)
        out[order] = cw[last[block]] / total
        return out

    u = np.maximum(survival(s1), survival(s2))
    order = np.argsort(u, kind="stable")
    cum = np.cumsum(w[order]) / total
    k = np.searchsorted(cum, efficiency * (1 + 1e-12), side="right") - 1
    e = float(u[order][k]) if k >= 0 else 0.0
    return (threshold_at_efficiency(s1, w, efficiency=e), threshold_at_efficiency(s2, w, efficiency=e), e)


def abcd_trigger_prescales(counts: AbcdCounts) -> dict[str, float]:
    """Prescales that store each ABCD control region at the rate of the signal region.

    Online use of the double autoencoder (Mikuni et al. sec. IV): keeping region A unprescaled
    and B, C, D prescaled by ``N_i / N_a`` stores ~4x the rate of A, enough to run the ABCD
    prediction offline. Prescales below 1 are set to 1 (region kept entirely).

    Parameters
    ----------
    counts : AbcdCounts
        Expected yields (or rates) per region.

    Returns
    -------
    dict
        ``{"b": p_b, "c": p_c, "d": p_d, "stored_over_a": total stored / N_a}``.
    """
    if not counts.a > 0:
        raise StatisticsError(f"abcd_trigger_prescales: region A must be populated, got {counts.a}")
    out = {k: max(1.0, getattr(counts, k) / counts.a) for k in ("b", "c", "d")}
    out["stored_over_a"] = 1.0 + sum(getattr(counts, k) / out[k] for k in ("b", "c", "d")) / counts.a
    return out


# ----------------------------------------------------------------------------- rates
def events_per_month(xsec_pb: float, efficiency: float = 1.0, *, lumi_fb: float = LUMI_PER_MONTH_FB) -> float:
    """Expected events per month, ``N = sigma * efficiency * L`` (Cerri et al. Table 1).

    Parameters
    ----------
    xsec_pb : float
        Cross section in pb.
    efficiency : float
        Total selection efficiency (acceptance x trigger x anomaly selection).
    lumi_fb : float
        Integrated luminosity per month in fb^-1 (default 5 fb^-1).

    Returns
    -------
    float
        Events per month (1 pb at 5 fb^-1 gives 5000).
    """
    return float(xsec_pb) * float(efficiency) * float(lumi_fb) * _PB_PER_INV_FB


def xsec_for_events_per_month(n_events: float, efficiency: float, *, lumi_fb: float = LUMI_PER_MONTH_FB) -> float:
    """Cross section (pb) giving ``n_events`` selected per month (Cerri et al. Tables 1 and 4).

    ``sigma = N / (efficiency * L)``; e.g. 100 events at efficiency 2.8e-3 and 5 fb^-1 give 7.1 pb.

    Parameters
    ----------
    n_events : float
        Target number of selected events per month (the papers use 100).
    efficiency : float
        Total selection efficiency, > 0.
    lumi_fb : float
        Integrated luminosity per month in fb^-1.

    Returns
    -------
    float
        Cross section in pb.
    """
    if not efficiency > 0:
        raise StatisticsError(f"xsec_for_events_per_month: efficiency must be positive, got {efficiency}")
    return float(n_events) / (float(efficiency) * float(lumi_fb) * _PB_PER_INV_FB)


def xsec_for_signal_to_background(signal_to_background: float, background_per_month: float, *,
                                  efficiency: float, lumi_fb: float = LUMI_PER_MONTH_FB) -> float:
    """Cross section (pb) for which the selected sample has ``S/B = signal_to_background``.

    ``sigma = (S/B) * B_month / (efficiency * L)`` (Cerri et al. Table 4, S/B = 1/3).

    Parameters
    ----------
    signal_to_background : float
        Target ratio S/B.
    background_per_month : float
        Selected SM events per month (e.g. ~1000 at FPR 5.4e-6).
    efficiency : float
        Signal selection efficiency.
    lumi_fb : float
        Integrated luminosity per month in fb^-1.

    Returns
    -------
    float
        Cross section in pb.
    """
    return xsec_for_events_per_month(signal_to_background * background_per_month, efficiency, lumi_fb=lumi_fb)


def sbr_ratio(*, sm_efficiency: float, sm_reference_efficiency: float, bsm_efficiency: float,
              bsm_reference_efficiency: float) -> float:
    r"""Ratio of signal-to-background ratios of two selections (Cerri et al. eq. 5.1).

    .. math:: \frac{SBR_\mathrm{sel}}{SBR_\mathrm{ref}} =
              \left(\frac{\epsilon_\mathrm{ref}}{\epsilon_\mathrm{sel}}\right)_{SM}
              \left(\frac{\epsilon_\mathrm{sel}}{\epsilon_\mathrm{ref}}\right)_{BSM}

    with "sel" the anomaly selection (VAE) and "ref" the single-lepton trigger (pT > 27 GeV,
    Iso < 0.25). Independent of the BSM cross section.

    Parameters
    ----------
    sm_efficiency, sm_reference_efficiency : float
        SM efficiencies of the anomaly selection and of the reference selection.
    bsm_efficiency, bsm_reference_efficiency : float
        The same for the BSM process.

    Returns
    -------
    float
        ``SBR_sel / SBR_ref``.
    """
    for name, v in (("sm_efficiency", sm_efficiency), ("bsm_reference_efficiency", bsm_reference_efficiency)):
        if not v > 0:
            raise StatisticsError(f"sbr_ratio: {name} must be positive, got {v}")
    return (sm_reference_efficiency / sm_efficiency) * (bsm_efficiency / bsm_reference_efficiency)


def trigger_rate_hz(xsec_pb: float, efficiency: float = 1.0, *, inst_lumi_cm2s: float = 2.9e33) -> float:
    """Trigger rate in Hz, ``R = sigma * efficiency * L_inst`` (1 pb = 1e-36 cm^2).

    Parameters
    ----------
    xsec_pb : float
        Cross section in pb.
    efficiency : float
        Selection efficiency.
    inst_lumi_cm2s : float
        Instantaneous luminosity in cm^-2 s^-1 (default 2.9e33, Cerri et al. sec. 1).

    Returns
    -------
    float
        Rate in events per second.
    """
    return float(xsec_pb) * 1e-36 * float(efficiency) * float(inst_lumi_cm2s)


# ----------------------------------------------------------------------------- distance correlation
def distance_correlation(x, y, *, weights=None, squared: bool = False, block_size: int | None = None) -> float:
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
