"""Score thresholds at a background efficiency and the efficiency above a threshold.

Pure functions on numpy arrays and :class:`hist.Hist` objects; larger score = more anomalous,
an event is selected when ``score > threshold``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import numpy.typing as npt
from cms_anomaly.stats._common import (
    StatisticsError,
    _as_1d,
    _finite_scores,
    _weights_for,
    effective_entries,
    effective_entries_from_sums,
)
from cms_anomaly.stats.intervals import weighted_efficiency

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- thresholds
def weighted_cdf(reference: npt.ArrayLike, weights: npt.ArrayLike, values: npt.ArrayLike) -> np.ndarray:
    """Weighted empirical CDF of ``reference`` evaluated at ``values``: the weighted fraction of
    reference entries ``<= value`` (e.g. the SM quantile of a signal event's score)."""
    ref = _as_1d(reference, "reference")
    w = _weights_for(ref, weights, "weights")
    order = np.argsort(ref)
    rs, cw = ref[order], np.cumsum(w[order])
    idx = np.searchsorted(rs, np.asarray(values, dtype=np.float64), side="right")
    return np.where(idx > 0, cw[np.maximum(idx - 1, 0)], 0.0) / cw[-1]


def threshold_at_efficiency(scores: npt.ArrayLike, weights: npt.ArrayLike | None = None, *, efficiency: float) -> float:
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
    uniq, inv = np.unique(s, return_inverse=True)  # ascending unique scores
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


def selection_efficiency(scores: npt.ArrayLike, weights: npt.ArrayLike | None = None, *, threshold: float) -> float:
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


#: below this many effective events above a threshold, it is extrapolated from the tail (not counted)
MIN_EVENTS_ABOVE = 10.0


def _finite_weighted(
    scores: npt.ArrayLike, weights: npt.ArrayLike | None, where: str
) -> tuple[np.ndarray, np.ndarray, float]:
    """Finite scores with their weights (default 1) and the effective number of entries."""
    s = np.asarray(scores, np.float64)
    w = np.ones_like(s) if weights is None else np.asarray(weights, np.float64)
    ok = np.isfinite(s)
    s, w = s[ok], w[ok]
    if s.size == 0:
        raise ValueError(f"{where}: no finite scores")
    return s, w, effective_entries(w)


def weighted_survival(scores: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores in descending order and the fraction of the weight at or above each of them."""
    order = np.argsort(scores)[::-1]
    s = scores[order]
    cw = np.cumsum(weights[order]) / weights.sum()
    return s, cw  # fraction of weight with score >= s[i]


def threshold_at_fpr(
    scores: np.ndarray, weights: np.ndarray | None = None, *, fpr: float, tail_fraction: float = 0.01
) -> dict[str, Any]:
    """Score threshold above which a fraction ``fpr`` of the (weighted) SM events lies.

    When fewer than :data:`MIN_EVENTS_ABOVE` effective events (Kish, of the events themselves:
    a tail-weighted sample has many more than ``fpr`` x ``n_eff``) lie above the
    empirical threshold, the survival function is extrapolated: ``log S(t)`` is
    fitted linearly in ``t`` over the top ``tail_fraction`` of the SM scores (an
    exponential tail) and solved for ``S(t) = fpr``.

    Parameters
    ----------
    scores : numpy.ndarray
        SM validation scores (N,).
    weights : numpy.ndarray, optional
        Per-event weights (default 1).
    fpr : float
        Target false-positive rate.
    tail_fraction : float
        Fraction of the distribution used for the tail fit.

    Returns
    -------
    dict
        ``threshold``, ``method`` (``empirical`` or ``exponential_tail_fit``),
        ``n_events``, ``n_eff_above`` and for a fit its slope and range.
    """
    scores, w, n_eff = _finite_weighted(scores, weights, "threshold_at_fpr")
    s, surv = weighted_survival(scores, w)
    out: dict[str, Any] = {"fpr": fpr, "n_events": int(scores.size), "n_eff": float(n_eff)}
    threshold = threshold_at_efficiency(scores, w, efficiency=fpr)
    above = w[scores > threshold]
    # the effective events above the threshold itself: with weighted (tail-biased) samples far more
    # than fpr x n_eff of the whole sample
    out["n_eff_above"] = effective_entries(above) if above.size else 0.0
    if out["n_eff_above"] >= MIN_EVENTS_ABOVE:
        out.update(threshold=threshold, method="empirical")
        return out
    return _extrapolated(out, s, surv, fpr=fpr, tail_fraction=tail_fraction, what="scores")


def threshold_at_fpr_from_sums(
    lower_edges: npt.ArrayLike,
    sumw: npt.ArrayLike,
    sumw2: npt.ArrayLike,
    *,
    fpr: float,
    tail_fraction: float = 0.01,
) -> dict[str, Any]:
    """:func:`threshold_at_fpr` of a binned score distribution (a ``Weight`` histogram's sums).

    ``lower_edges``, ``sumw`` and ``sumw2`` run over the bins in increasing score order, flow bins
    included (the underflow's lower edge is ``-inf``). The survival function is known at the lower
    edges: an empirical threshold is the lower edge of the first bin of
    :func:`threshold_bin_at_efficiency` (``bin`` in the result); the extrapolation fits ``log S`` at
    the lower edges of the highest populated bins, as many as :func:`threshold_at_fpr` takes events
    (with fine bins and a sparse tail, one event per bin). ``n_eff`` is ``(sum w)^2 / sum w^2``.
    """
    edges = np.asarray(lower_edges, dtype=np.float64)
    w = np.asarray(sumw, dtype=np.float64)
    w2 = np.asarray(sumw2, dtype=np.float64)
    if not (edges.shape == w.shape == w2.shape) or w.ndim != 1:
        raise ValueError(f"threshold_at_fpr_from_sums: shapes differ ({edges.shape}, {w.shape}, {w2.shape})")
    total = float(w.sum())
    if not total > 0:
        raise ValueError("threshold_at_fpr_from_sums: no events")
    n_eff = total**2 / float(w2.sum())
    out: dict[str, Any] = {"fpr": fpr, "n_events": int(np.count_nonzero(w)), "n_eff": float(n_eff), "binned": True}
    k = threshold_bin_at_efficiency(w, efficiency=fpr)
    out["n_eff_above"] = float(effective_entries_from_sums(w[k:].sum(), w2[k:].sum()))
    if out["n_eff_above"] >= MIN_EVENTS_ABOVE:
        threshold = float(edges[k]) if k < len(edges) else float("inf")
        out.update(threshold=threshold, bin=int(k), method="empirical")
        return out
    surv = np.cumsum(w[::-1])[::-1] / total  # fraction at or above each bin's lower edge
    filled = np.flatnonzero((w > 0) & np.isfinite(edges))[::-1]  # populated bins, highest first
    return _extrapolated(out, edges[filled], surv[filled], fpr=fpr, tail_fraction=tail_fraction, what="bins")


def _extrapolated(
    out: dict[str, Any], s: np.ndarray, surv: np.ndarray, *, fpr: float, tail_fraction: float, what: str
) -> dict[str, Any]:
    """The threshold where the exponential fit of the survival tail reaches ``fpr`` (``s`` descending)."""
    fit = _tail_fit(s, surv, tail_fraction)
    if isinstance(fit, str):
        out.update(threshold=float(s[0]) if s.size else float("nan"), method=f"max_score ({fit})")
        return out
    slope, intercept, k, lo, hi = fit
    out.update(
        threshold=float((np.log(fpr) - intercept) / slope),
        method="exponential_tail_fit",
        tail_events=k,
        tail_range=[lo, hi],
        slope=float(slope),
        note=f"only {out['n_eff_above']:.2g} effective SM events above the empirical threshold; log-survival fitted "
        f"linearly over the top {k} {what} and extrapolated",
    )
    return out


def _tail_fit(s: np.ndarray, surv: np.ndarray, tail_fraction: float) -> tuple[float, float, int, float, float] | str:
    """Straight-line fit of ``log S(t)`` over the top ``tail_fraction`` of the scores (at least 50).

    ``s`` and ``surv`` come from :func:`weighted_survival`. Returns (slope, intercept, events,
    low, high end of the fitted range) or, when no falling tail can be fitted, the reason.
    """
    k = max(int(tail_fraction * s.size), min(50, s.size))
    ts, ls = s[:k], np.log(surv[:k])
    if k < 5 or np.ptp(ts) == 0:
        return "too few events to extrapolate"
    slope, intercept = np.polyfit(ts, ls, 1)
    if slope >= 0:
        return "tail not falling"
    return float(slope), float(intercept), k, float(ts[-1]), float(ts[0])


def efficiency_above(
    scores: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    threshold: float,
    tail_fraction: float = 0.01,
    cl: float = 0.95,
) -> dict[str, Any]:
    """Weighted fraction of events with ``score > threshold``, extrapolated beyond the sample.

    Measured (with an Agresti-Coull interval at ``cl`` on effective counts) when at least
    :data:`MIN_EVENTS_ABOVE` effective events pass (``n_eff_passed``); otherwise read off the same exponential fit
    of the sample's own survival tail that :func:`threshold_at_fpr` uses (no interval then: the
    fit's assumption, not counting, dominates).
    """
    scores, w, n_eff = _finite_weighted(scores, weights, "efficiency_above")
    passed = scores > threshold
    measured = weighted_efficiency(passed, w, cl=cl)
    out: dict[str, Any] = {"n_events": int(scores.size), "n_eff": float(n_eff), "n_passed": int(passed.sum())}
    out["n_eff_passed"] = effective_entries(w[passed]) if passed.any() else 0.0
    if out["n_eff_passed"] >= MIN_EVENTS_ABOVE:
        out.update(
            efficiency=float(measured.estimate), low=float(measured.low), high=float(measured.high), method="empirical"
        )
        return out
    s, surv = weighted_survival(scores, w)
    fit = _tail_fit(s, surv, tail_fraction)
    if isinstance(fit, str) or threshold <= fit[3]:
        out.update(
            efficiency=float(measured.estimate),
            low=float(measured.low),
            high=float(measured.high),
            method="empirical (few events)" if isinstance(fit, str) else "empirical",
        )
        return out
    slope, intercept = fit[0], fit[1]
    out.update(
        efficiency=float(np.exp(slope * threshold + intercept)),
        low=float("nan"),
        high=float("nan"),
        method="exponential_tail_fit",
        upper_limit_empirical=float(measured.high),
    )
    return out


def threshold_bin_at_efficiency(sumw: np.ndarray, *, efficiency: float) -> int:
    """First bin of a binned score distribution whose upper tail holds at most ``efficiency``.

    ``sumw`` are the bin contents in score order (flow bins included, as ``hist``'s
    ``view(flow=True)``). Returns the smallest index ``k`` with
    ``sum(sumw[k:]) <= efficiency * sum(sumw)``: selecting every event in bins ``k, k+1, ...``
    is the largest selection at a bin edge that keeps no more than the requested fraction (the
    fraction actually selected is ``sum(sumw[k:]) / sum(sumw)``; ``len(sumw)`` selects nothing).
    """
    w = np.asarray(sumw, dtype=np.float64)
    if w.ndim != 1 or not np.all(np.isfinite(w)):
        raise StatisticsError(f"threshold_bin_at_efficiency: need a finite 1-D array, got shape {w.shape}")
    if not 0 < efficiency <= 1:
        raise StatisticsError(f"threshold_bin_at_efficiency: efficiency must be in (0, 1], got {efficiency}")
    total = float(w.sum())
    if total <= 0:
        raise StatisticsError("threshold_bin_at_efficiency: the histogram is empty")
    tail = np.concatenate([np.cumsum(w[::-1])[::-1], [0.0]])  # tail[k] = sum(w[k:])
    ok = np.flatnonzero(tail <= efficiency * total * (1 + 1e-12))
    return int(ok[0])
