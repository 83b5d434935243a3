"""The hunt's anomaly selections (step 6 of :mod:`~cms_anomaly.analyses.hunt`), read off the second pass.

The k-fold ensemble's rarity is histogrammed against the event-level features and the masses of the
leading object pairs; from those histograms: one selection per alpha (yield over the normalised
simulation, whether it is quoted), the window scan of every mass with its global significance, and
the features ranked by the discrepancy of their anomaly-selection transfer function.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np

#: the scorer name of the k-fold ensemble in the processor's output, and its calibrated output
KFOLD_SCORER = "kfold"
KFOLD_OUTPUT = "rarity"
#: event-level features histogrammed against the rarity (the ASTF variables first)
EVENT_FEATURES: tuple[str, ...] = ("ht", "m_jets", "n_jets", "n_bjets", "met", "mt", "pt_lep", "n_mu", "n_ele", "st")
#: invariant masses of the leading object pairs (jets, b-jets, muons, electrons) scanned for bumps
MASS_FEATURES: tuple[str, ...] = (
    "m_j_j",
    "m_j_b",
    "m_b_b",
    "m_j_mu",
    "m_b_mu",
    "m_mu_mu",
    "m_j_e",
    "m_b_e",
    "m_mu_e",
    "m_e_e",
)

#: (data sum w, simulation sum w, simulation sum w^2) over (score, feature) of one feature
Sums = tuple[np.ndarray, np.ndarray, np.ndarray]


def _interval_sums(value: np.ndarray, bounds: list[int]) -> np.ndarray:
    """Sum the score axis (axis 0, flow included) into the disjoint intervals [b_j, b_j+1), last open."""
    edges = [*bounds, value.shape[0]]
    return np.stack([value[a:b].sum(axis=0) for a, b in itertools.pairwise(edges)])


def _bin_range(h: Any, name: str, k: int) -> tuple[float, float]:
    """The value range of flow-inclusive bin ``k`` of axis ``name``."""
    edges = h.axes[name].edges
    lo = -np.inf if k == 0 else edges[k - 1]
    hi = np.inf if k >= len(edges) else edges[k]
    return float(lo), float(hi)


def _not_quoted(alpha: float, calibrated: bool, acceptance: dict[str, Any], n_validation: list[int], need: int) -> str:
    """Why no significance is quoted at ``alpha`` ('' when it is)."""
    if not calibrated:
        return (
            f"alpha = {alpha:g} cannot be calibrated with {len(n_validation)} folds of ~{round(np.mean(n_validation))} "
            f"validation events (needs >= {need} per fold)"
        )
    if acceptance["separates"]:
        return (
            f"the detector separates simulation from data (simulated acceptance {acceptance['acceptance']:.2f} "
            f"at alpha {alpha:g})"
        )
    return ""


def selections(
    sh: Any,
    score_sums: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    alphas: list[float],
    bounds: list[int],
    norm: float,
    unit: float,
    n_validation: list[int],
    per_process: dict[str, np.ndarray],
    min_count: int,
    tolerance: float,
) -> list[dict[str, Any]]:
    """One row per alpha (descending, first score bin ``bounds``): the data kept, the normalised simulation
    expected, the simulated acceptance, and whether the selection is quoted (its local Z given).

    ``sh``: the :class:`~cms_anomaly.analyses.scorehists.ScoreHists` of the k-fold rarity; ``score_sums``:
    (data sum w, simulation sum w, simulation sum w^2) per score bin; ``per_process``: the data's sum w
    per score bin of each hidden process of pseudo-data (their shares among the selected events, for
    validation only).
    """
    from cms_anomaly.stats import acceptance_check, calibratable, min_validation_events, z_bi

    data_w, mc_w, mc_w2 = score_sums
    n_data = float(data_w.sum())
    rows = []
    for a, k in zip(alphas, bounds, strict=True):
        n, b, v = float(data_w[k:].sum()), float(mc_w[k:].sum()) * norm, float(mc_w2[k:].sum()) * norm**2
        need = min_validation_events(a, min_count=min_count)
        calibrated = calibratable(a, n_validation, min_count=min_count)
        accepted = asdict(
            acceptance_check(float(mc_w[k:].sum()), float(mc_w.sum()), float(mc_w2.sum()), a, tolerance=tolerance)
        )
        reason = _not_quoted(a, calibrated, accepted, n_validation, need)
        row = {
            "alpha": a,
            "first_bin": k,
            "threshold": sh.threshold(k),
            "observed": n,
            "expected": b,
            "expected_error": float(np.sqrt(v)),
            "z_local": None if reason else float(z_bi(n, b, v, unit_weight=unit)),
            "data_fraction": n / n_data,
            "calibratable": calibrated,
            "min_validation_events": need,
            "acceptance": accepted,
            "quoted": not reason,
            "not_quoted": reason,
        }
        if per_process:
            row["composition"] = {p: float(w[k:].sum() / n) if n else 0.0 for p, w in per_process.items()}
        rows.append(row)
    return rows


def feature_sums(sh: Any, roles: list[str]) -> Callable[[str], Sums]:
    """A function of a feature name giving its :data:`Sums` (flow bins included), each read once."""
    cache: dict[str, Sums] = {}

    def summed(feature: str) -> Sums:
        """(data sum w, simulation sum w, simulation sum w^2) over (score, feature), flow bins included."""
        if feature not in cache:
            sims = [sh.sums(r, feature) for r in roles]
            cache[feature] = (sh.sums("data", feature)[0], sum(x[0] for x in sims), sum(x[1] for x in sims))
        return cache[feature]

    return summed


def mass_scan(
    sh: Any,
    summed: Callable[[str], Sums],
    quoted: list[tuple[float, int]],
    *,
    norm: float,
    unit: float,
    widths: tuple[int, ...],
    npe: int,
    seed: int,
) -> dict[str, Any]:
    """Every mass x quoted selection ((alpha, first score bin)) x window, the global significance from
    pseudo-experiments drawn from the background model (:func:`~cms_anomaly.stats.scan`)."""
    from cms_anomaly.stats import scan

    scanned = [a for a, _ in quoted]
    scan_result: dict[str, Any] = {
        "alphas": scanned,
        "best": None,
        "z_local": None,
        "p_global": None,
        "z_global": None,
        "z_global_is_lower_limit": False,
        "npe": 0,
        "tests": 0,
        "per_variable": [],
    }
    if not quoted:
        return scan_result
    q_bounds = [k for _, k in quoted]
    obs, exp, var = {}, {}, {}
    for m in MASS_FEATURES:
        d_val, b_val, b_var = summed(m)  # in-range mass bins below (no pair: underflow)
        obs[m] = _interval_sums(d_val, q_bounds)[:, 1:-1]
        exp[m] = _interval_sums(b_val, q_bounds)[:, 1:-1] * norm
        var[m] = _interval_sums(b_var, q_bounds)[:, 1:-1] * norm**2
    result = scan(obs, exp, var, unit_weight=unit, widths=widths, npe=npe, seed=seed)
    edges = sh.histogram("data", result.variable).axes[result.variable].edges
    scans = [
        {
            "variable": var_name,
            "alpha": scanned[j],
            "z_local": r["z_local"],
            "observed": r["observed"],
            "expected": r["expected"],
            "window_gev": [float(edges[r["window"][0]]), float(edges[min(r["window"][1], len(edges) - 1)])],
        }
        for (var_name, j), r in result.best_per_test.items()
    ]
    scans.sort(key=lambda r: -r["z_local"])
    scan_result.update(
        best={
            "variable": result.variable,
            "alpha": scanned[result.selection],
            "window_gev": [float(edges[result.window[0]]), float(edges[result.window[1]])],
            "whole_range": result.window == (0, len(edges) - 1),
            "observed": result.observed,
            "expected": result.expected,
            "expected_error": result.expected_error,
            "z_local": result.z_local,
        },
        z_local=result.z_local,
        p_global=result.p_global,
        z_global=result.z_global,
        z_global_is_lower_limit=result.z_global_is_lower_limit,
        npe=result.npe,
        tests=result.tests,
        per_variable=scans,
    )
    return scan_result


def feature_ranking(sh: Any, summed: Callable[[str], Sums], first_bin: int) -> list[dict[str, Any]]:
    """Every feature's ASTF comparison (:func:`~cms_anomaly.stats.astf_comparison`) of the selection from
    score bin ``first_bin`` on, most discrepant first (by p-value, then chi^2)."""
    from cms_anomaly.stats import astf_comparison

    k = first_bin
    ranking = []
    for f in (*EVENT_FEATURES, *MASS_FEATURES):
        d_val, b_val, b_var = summed(f)
        r = astf_comparison(
            d_val.sum(axis=0),
            d_val[k:].sum(axis=0),
            b_val.sum(axis=0),
            b_var.sum(axis=0),
            b_val[k:].sum(axis=0),
            b_var[k:].sum(axis=0),
        )
        lo, hi = _bin_range(sh.histogram("data", f), f, r["largest_pull_bin"])
        ranking.append({"feature": f, **r, "largest_pull_range": [lo, hi]})
    ranking.sort(
        key=lambda r: (
            r["p_value"] if np.isfinite(r["p_value"]) else 1.0,
            -r["chi2"] if np.isfinite(r["chi2"]) else 0.0,
        )
    )
    return ranking
