"""ABCD background estimate from two decorrelated scores (Mikuni et al. eq. 3): counts, prediction, closure.

Pure functions on numpy arrays and :class:`hist.Hist` objects; larger score = more anomalous,
an event is selected when ``score > threshold``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from cms_anomaly.stats._common import StatisticsError, _as_1d, _finite_scores
from cms_anomaly.stats.intervals import ratio_uncertainty
from cms_anomaly.stats.significance import abcd_significance
from cms_anomaly.stats.thresholds import threshold_at_efficiency

log = logging.getLogger(__name__)


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
        return AbcdCounts(
            **{k: getattr(self, k) + getattr(other, k) for k in ("a", "b", "c", "d", "a_w2", "b_w2", "c_w2", "d_w2")}
        )


def abcd_counts(
    score1: npt.ArrayLike,
    score2: npt.ArrayLike,
    *,
    threshold1: float,
    threshold2: float,
    weights: npt.ArrayLike | None = None,
) -> AbcdCounts:
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


def abcd_counts_from_hist(h: Any, *, threshold1: float, threshold2: float) -> AbcdCounts:
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
    for k, (t, e) in enumerate(zip((threshold1, threshold2), edges, strict=True)):
        hit = np.flatnonzero(np.isclose(e, t, rtol=1e-12, atol=1e-12 * max(1.0, abs(t))))
        if hit.size == 0:
            raise StatisticsError(
                f"abcd_counts_from_hist: threshold{k + 1} = {t} is not a bin edge of axis "
                f"{h.axes[k].name!r} (edges {e[0]:g} .. {e[-1]:g}, {e.size - 1} bins)"
            )
        cuts.append(int(hit[0]) + flow[k][0])  # index of the first "above" bin in the flow-including array
    return abcd_counts_from_sums(values, var, first1=cuts[0], first2=cuts[1])


def abcd_counts_from_sums(sumw: npt.ArrayLike, sumw2: npt.ArrayLike, *, first1: int, first2: int) -> AbcdCounts:
    """The ABCD regions of a binned 2-D score distribution: ``sumw`` / ``sumw2`` indexed (score-1 bin,
    score-2 bin) in increasing score order, and "above" a threshold meaning bins ``first1, ...``
    (``first2, ...``) of that axis."""
    values = np.asarray(sumw, dtype=np.float64)
    var = np.asarray(sumw2, dtype=np.float64)
    if values.ndim != 2 or values.shape != var.shape:
        raise StatisticsError(
            f"abcd_counts_from_sums: need two 2-D arrays of one shape, got {values.shape}, {var.shape}"
        )

    def region(arr: np.ndarray, hi1: bool, hi2: bool) -> float:
        s1 = slice(first1, None) if hi1 else slice(None, first1)
        s2 = slice(first2, None) if hi2 else slice(None, first2)
        return float(arr[s1, s2].sum())

    keys = {"a": (True, True), "b": (True, False), "c": (False, True), "d": (False, False)}
    vals = {k: region(values, *sides) for k, sides in keys.items()}
    vals.update({f"{k}_w2": region(var, *sides) for k, sides in keys.items()})
    return AbcdCounts(**vals)


def diagonal_threshold_bins(sumw: npt.ArrayLike, *, efficiency: float) -> tuple[int, int, float]:
    """:func:`diagonal_thresholds` of a binned 2-D score distribution (``sumw`` as in
    :func:`abcd_counts_from_sums`): both axes cut at the first bin whose upper tail holds at most the
    same per-score efficiency ``e`` (:func:`~cms_anomaly.stats.threshold_bin_at_efficiency`), ``e`` the
    largest for which region A holds at most ``efficiency``. Returns ``(first1, first2, e)``."""
    from cms_anomaly.stats.thresholds import threshold_bin_at_efficiency

    if not 0.0 < efficiency <= 1.0:
        raise StatisticsError(f"diagonal_threshold_bins: efficiency must be in (0, 1], got {efficiency}")
    w = np.asarray(sumw, dtype=np.float64)
    total = float(w.sum())
    if w.ndim != 2 or not total > 0:
        raise StatisticsError(f"diagonal_threshold_bins: need a 2-D array with positive total, got {w.shape}")
    m1, m2 = w.sum(axis=1), w.sum(axis=0)

    def cut(e: float) -> tuple[int, int, float]:
        k1 = threshold_bin_at_efficiency(m1, efficiency=e)
        k2 = threshold_bin_at_efficiency(m2, efficiency=e)
        return k1, k2, float(w[k1:, k2:].sum()) / total

    # the candidate per-score efficiencies: every tail fraction of either marginal; region A grows with e
    tails = np.unique(np.concatenate([np.cumsum(m1[::-1]), np.cumsum(m2[::-1])]) / total)
    tails = tails[tails > 0]  # a per-score efficiency of 0 selects nothing: not a candidate
    lo, hi = 0, len(tails) - 1
    best = (len(m1), len(m2), 0.0)
    while lo <= hi:
        mid = (lo + hi) // 2
        k1, k2, a = cut(float(tails[mid]))
        if a <= efficiency:
            best, lo = (k1, k2, float(tails[mid])), mid + 1
        else:
            hi = mid - 1
    return best


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
    rel2 = sum(w2 / v**2 for v, w2 in ((b, counts.b_w2), (c, counts.c_w2), (d, counts.d_w2)) if v != 0)
    pred_err = abs(pred) * math.sqrt(rel2)
    obs, obs_err = counts.a, math.sqrt(counts.a_w2)
    closure, closure_err = ratio_uncertainty(pred, pred_err, obs, obs_err)
    return AbcdPrediction(
        predicted=pred,
        predicted_error=pred_err,
        observed=obs,
        observed_error=obs_err,
        closure=float(closure),
        closure_error=float(closure_err),
        significance=abcd_significance(obs, pred),
        corrected=signal is not None,
    )


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


def diagonal_thresholds(
    score1: npt.ArrayLike, score2: npt.ArrayLike, *, efficiency: float, weights: npt.ArrayLike | None = None
) -> tuple[float, float, float]:
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
