"""Statistics of the hunt: data vs simulation chi^2, window scans and their look-elsewhere effect.

Expected values are worked out by hand in the comments (or by an independent formula).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as sps
from cms_anomaly.stats import StatisticsError, compare_counts, merge_groups, on_off_significance, scan, z_bi
from cms_anomaly.stats.scan import windows


def test_merge_groups_by_hand():
    # 3+3 = 6 >= 5 closes group 0; 1+5 = 6 closes group 1; 2+4 = 6 is the last group
    assert merge_groups(np.array([3, 3, 1, 5, 2, 4.0])).tolist() == [0, 0, 1, 1, 2, 2]
    # the short tail (0.5 + 0.5 < 5) joins the group before it
    assert merge_groups(np.array([6, 0.5, 0.5])).tolist() == [0, 0, 0]
    assert merge_groups(np.array([1.0, 1.0])).tolist() == [0, 0]


def test_compare_counts_by_hand():
    n, mu, var = np.array([10.0, 20.0]), np.array([12.0, 15.0]), np.array([1.0, 4.0])
    c = compare_counts(n, mu, var)
    chi2 = 4 / 13 + 25 / 19  # (10-12)^2/(12+1) + (20-15)^2/(15+4)
    assert c.chi2 == pytest.approx(chi2)
    assert c.ndf == 2
    assert c.p_value == pytest.approx(math.exp(-chi2 / 2))  # chi^2 survival for 2 dof
    assert c.norm_ratio == pytest.approx(30 / 27)
    assert c.norm_ratio_error == pytest.approx(30 / 27 * math.sqrt(1 / 30 + 5 / 27**2))
    s = compare_counts(n, mu, var, normalise=True)
    k = 30 / 27
    shape = (10 - 12 * k) ** 2 / (12 * k + k * k) + (20 - 15 * k) ** 2 / (15 * k + 4 * k * k)
    assert s.chi2 == pytest.approx(shape)
    assert s.ndf == 1
    assert s.p_value == pytest.approx(sps.chi2.sf(shape, 1))


def test_compare_counts_merges_sparse_tails():
    # one event in a bin expecting 0.01 would alone give chi2 ~ 100: merged with its neighbours it cannot
    n = np.array([50.0, 40.0, 1.0, 0.0])
    mu = np.array([50.0, 40.0, 0.01, 0.01])
    c = compare_counts(n, mu)
    assert c.bins == 2
    assert c.p_value > 0.5
    with pytest.raises(StatisticsError):
        compare_counts(n, -mu)


def test_z_bi_matches_the_scalar_and_the_closed_form():
    n, b, v = np.array([10.0, 3.0, 30.0]), np.array([5.0, 4.0, 12.0]), np.array([1.0, 0.5, 9.0])
    z = z_bi(n, b, v, unit_weight=0.1)
    assert z[0] == pytest.approx(on_off_significance(10, 25.0, 5.0))  # n_off = b^2/v, tau = b/v
    assert z[1] == 0.0  # a deficit
    assert z[2] == pytest.approx(on_off_significance(30, 16.0, 12 / 9))
    # no simulated entry: tau = 1 / unit weight; I_x(3, 1) = x^3 with x = 1/(1 + tau) = 1/3
    assert z_bi(3.0, 0.0, 0.0, unit_weight=0.5) == pytest.approx(sps.norm.isf(1 / 27))


def test_windows_by_hand():
    assert windows(4, [1, 2]) == [(0, 1), (1, 2), (2, 3), (3, 4), (0, 2), (1, 3), (2, 4), (0, 4)]


def test_scan_finds_an_injected_bump_and_its_global_significance():
    rng = np.random.default_rng(5)
    b = np.full((3, 30), 4.0)
    v = np.full((3, 30), 0.05)
    obs = {"m_a": rng.poisson(b).astype(float), "m_b": rng.poisson(b).astype(float)}
    obs["m_b"][2, 12:15] += 12  # 36 events in the tightest selection (interval 2 is in every selection)
    r = scan(obs, {"m_a": b, "m_b": b}, {"m_a": v, "m_b": v}, unit_weight=0.01, npe=300, seed=1)
    assert r.variable == "m_b"
    assert r.window[0] >= 11
    assert r.window[1] <= 16
    assert r.selection == 2  # the tightest selection has the least background under the same bump
    assert r.z_local > 4
    assert r.z_global > 2.5
    assert r.z_global < r.z_local
    assert r.tests == 2 * 3 * len(windows(30, range(1, 8)))


def test_scan_global_p_values_are_calibrated_without_signal():
    """Under the background model the global p-value is uniform or conservative: a scan that forgot
    the look-elsewhere effect (the p-value of the best window alone) would be below 0.1 nearly always."""
    b = np.full((2, 20), 3.0)
    v = np.full((2, 20), 0.01)
    ps = []
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        obs = {"m": rng.poisson(b).astype(float)}
        ps.append(scan(obs, {"m": b}, {"m": v}, unit_weight=0.01, npe=200, seed=seed).p_global)
    frac = np.mean(np.array(ps) < 0.1)
    assert frac <= 0.1 + 3 * math.sqrt(0.09 / 40)
    assert np.median(ps) > 0.25


def test_scan_counts_the_simulation_error():
    """A larger simulation error makes the same excess less significant (locally and globally)."""
    b = np.full((1, 20), 5.0)
    obs = {"m": b.copy()}
    obs["m"][0, 8:10] += 10
    small = scan(obs, {"m": b}, {"m": np.full_like(b, 0.01)}, unit_weight=0.01, npe=300, seed=2)
    large = scan(obs, {"m": b}, {"m": np.full_like(b, 5.0)}, unit_weight=0.01, npe=300, seed=2)
    assert large.z_local < small.z_local
    assert large.p_global > small.p_global


def _falling_truth(n_bins: int, events: float) -> dict[str, np.ndarray]:
    """Three mass spectra (exponentials of different slopes with a wiggle) in two disjoint score
    intervals holding 9 % and 1 % of ``events`` (the hunt's alpha = 0.1 and 0.01 selections)."""
    x = (np.arange(n_bins) + 0.5) / n_bins
    out = {}
    for i, slope in enumerate((4.0, 6.0, 3.0)):
        shape = np.exp(-slope * x) * (1.0 + 0.5 * np.sin(3.0 * x + i))
        out[f"m{i}"] = np.outer([0.09, 0.01], events * shape / shape.sum())
    return out


@pytest.mark.slow  # 200 scans of 200 pseudo-experiments: ~8 s CPU, 30 s on the loaded 2-core machine
def test_scan_null_global_p_values_are_uniform():
    """Data and simulation both drawn from one known falling truth, the simulation at twice the data's
    weight per event and empty in the tails: over 200 null toys the global p-values are uniform (KS)
    and the fraction below 0.05 is 0.05 within 3 binomial errors. Pseudo-experiments that draw the
    data alone around the simulation's point estimate fail the KS test (61 % below 0.5)."""
    truth, w, toys = _falling_truth(30, 2000.0), 2.0, 200
    ps = []
    for i in range(toys):
        rng = np.random.default_rng(1000 + i)
        obs = {k: rng.poisson(mu).astype(float) for k, mu in truth.items()}
        sim = {k: rng.poisson(mu / w).astype(float) for k, mu in truth.items()}
        exp = {k: s * w for k, s in sim.items()}
        var = {k: s * w**2 for k, s in sim.items()}
        ps.append(scan(obs, exp, var, unit_weight=w, npe=200, seed=i).p_global)
    p = np.array(ps)
    assert sps.kstest(p, "uniform").pvalue > 0.01
    assert abs(np.mean(p < 0.05) - 0.05) <= 3 * math.sqrt(0.05 * 0.95 / toys)


def _correlated_masses(rng: np.random.Generator, events: int) -> dict[str, np.ndarray]:
    """Three masses of the same events (the second and third: the first smeared by 10 % log-normal), in
    the two score intervals (9 : 1) over 30 bins of [0, 1]."""
    edges = np.linspace(0.0, 1.0, 31)
    tight = rng.integers(0, 10, size=events) == 9
    m = rng.exponential(0.25, events)
    masses = {"m0": m, "m1": m * np.exp(0.1 * rng.normal(size=events)), "m2": m * np.exp(0.1 * rng.normal(size=events))}
    return {
        k: np.stack([np.histogram(x[tight == t], edges)[0] for t in (False, True)]).astype(float)
        for k, x in masses.items()
    }


@pytest.mark.slow  # 200 scans of 200 pseudo-experiments: ~8 s CPU, 30 s on the loaded 2-core machine
def test_scan_correlated_masses_give_a_conservative_global_p():
    """The pseudo-experiments draw the masses independently: where they are masses of the same events the
    null global p-values are larger than uniform (median above 0.5) and the tail below 0.05 is not inflated."""
    w, toys = 2.0, 200
    ps = []
    for i in range(toys):
        rng = np.random.default_rng(2000 + i)
        obs, sim = _correlated_masses(rng, int(rng.poisson(250))), _correlated_masses(rng, int(rng.poisson(125)))
        exp = {k: s * w for k, s in sim.items()}
        var = {k: s * w**2 for k, s in sim.items()}
        ps.append(scan(obs, exp, var, unit_weight=w, npe=200, seed=i).p_global)
    p = np.array(ps)
    assert np.median(p) > 0.6
    assert np.mean(p < 0.05) <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / toys)
