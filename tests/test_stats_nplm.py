"""The New Physics Learning Machine on binned samples (stats/nplm.py): the saturated and the constant fit
against their closed forms, calibration under the null, power for a localized excess, bad input; the
processor's joint class histogram it reads."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as sps
from cms_anomaly.stats import StatisticsError
from cms_anomaly.stats.nplm import nplm_test

EDGES_1D = [np.linspace(0.0, 1.0, 21)]


def _falling(total: float, edges: list[np.ndarray]) -> np.ndarray:
    """A smooth falling reference of ``total`` expected events on the grid of ``edges``."""
    grids = np.meshgrid(*[0.5 * (e[1:] + e[:-1]) for e in edges], indexing="ij")
    mu = np.exp(-sum(s * g for s, g in zip((2.0, 1.0, 0.5), grids, strict=False)))
    return total * mu / mu.sum()


def test_saturated_fit_is_the_binned_poisson_likelihood_ratio():
    """M = every point, a kernel narrower than the bins and lambda -> 0: f(x_i) = ln(n_i/b_i) at each bin,
    t = 2 sum [n ln(n/b) - (n - b)], computed here by hand."""
    b = _falling(500.0, EDGES_1D)
    n = np.random.default_rng(1).poisson(b).astype(float)
    assert n.min() > 0
    r = nplm_test(n, b, np.zeros_like(b), EDGES_1D, n_toys=1, seed=1, lam=1e-12, max_centres=100, width=0.01)
    assert r.t == pytest.approx(2 * np.sum(n * np.log(n / b) - (n - b)), rel=1e-6)
    assert r.centres.shape == (20, 1)


def test_a_normalisation_change_is_fitted_by_a_constant_and_a_local_excess_is_found():
    """30 events over a smooth reference of 500: in 2 adjacent bins p < 0.01; spread proportionally over all
    bins (exact expected counts, a pure normalisation change) the fit is the constant ln(530/500), t =
    2 [N ln(N/B) - (N - B)] by hand, and not significant."""
    b = _falling(500.0, EDGES_1D)
    v = 0.01 * b  # a simulation 100 times the data
    n = np.random.default_rng(4).poisson(b).astype(float)
    local = n.copy()
    local[12:14] += 15.0
    r_local = nplm_test(local, b, v, EDGES_1D, n_toys=200, seed=2, log_unit=None)
    assert r_local.p < 0.01
    scaled = b * 530.0 / 500.0
    r_norm = nplm_test(scaled, b, v, EDGES_1D, n_toys=200, seed=2, log_unit=None)
    assert r_norm.t == pytest.approx(2 * (530.0 * np.log(530.0 / 500.0) - 30.0), rel=0.02)
    assert r_norm.p > 0.1
    assert r_norm.t > nplm_test(b, b, v, EDGES_1D, n_toys=1, seed=2, log_unit=None).t + 1.0


def test_null_p_values_are_uniform():
    """150 background-only datasets on an 8 x 4 grid (600 expected events, >= 4.4 per bin): the simulation has
    twice the data's events (weight 0.5: data spread around it 1.5 times the Poisson variance; an empty
    simulated bin in 1e-4 of the bins), each dataset has its own simulation and its own 100 pseudo-datasets;
    the p-values are uniform (KS) and about 5 % fall below 0.05."""
    edges = [np.linspace(0.0, 1.0, 9), np.linspace(0.0, 1.0, 5)]
    mu = _falling(600.0, edges)
    rng = np.random.default_rng(11)
    ps = []
    for i in range(150):
        k = rng.poisson(mu / 0.5)
        n = rng.poisson(mu).astype(float)
        ps.append(nplm_test(n, 0.5 * k, 0.25 * k, edges, n_toys=100, seed=100 + i, log_unit=None).p)
    ks, below = sps.kstest(ps, "uniform").pvalue, np.mean(np.array(ps) < 0.05)
    assert ks > 0.01, (ks, below)
    assert 0.01 <= below <= 0.11, (ks, below)


def test_results_are_seeded_and_bad_input_is_one_clear_error():
    edges = [np.array([0.0, 50, 100, 200, 400]), np.array([0.0, 100, 300])]
    b = np.array([[40.0, 20], [20, 10], [8, 4], [2, 1]])
    n = np.array([[38.0, 25], [17, 9], [9, 3], [4, 0]])
    one = nplm_test(n, b, 0.1 * b, edges, n_toys=50, seed=3, max_centres=5)
    two = nplm_test(n, b, 0.1 * b, edges, n_toys=50, seed=3, max_centres=5)
    assert (one.t, one.p, one.toy_quantiles) == (two.t, two.p, two.toy_quantiles)
    assert one.centres.shape == (5, 2)
    assert one.n_points == 8
    assert (one.observed, one.expected) == (n.sum(), b.sum())
    with pytest.raises(StatisticsError, match="shapes"):
        nplm_test(n, b[:3], b, edges, n_toys=5, seed=1)
    with pytest.raises(StatisticsError, match="edges"):
        nplm_test(n, b, b, edges[:1], n_toys=5, seed=1)
    with pytest.raises(StatisticsError, match="observed"):
        nplm_test(-n, b, b, edges, n_toys=5, seed=1)
    with pytest.raises(StatisticsError, match="empty"):
        nplm_test(n, 0 * b, b, edges, n_toys=5, seed=1)
    with pytest.raises(StatisticsError, match="n_toys"):
        nplm_test(n, b, b, edges, n_toys=0, seed=1)


def test_events_without_reference_count_at_the_nearest_point():
    """Data in a bin the reference leaves empty are counted at the nearest bin with reference: the same t as
    the data with those events moved there by hand (an unbounded loss otherwise)."""
    b = _falling(500.0, EDGES_1D)
    b[17:] = 0.0
    n = np.random.default_rng(6).poisson(_falling(500.0, EDGES_1D)).astype(float)
    n[19] = 4.0
    by_hand = n.copy()
    by_hand[16] += n[17:].sum()
    by_hand[17:] = 0.0
    r = nplm_test(n, b, 0.01 * b, EDGES_1D, n_toys=20, seed=1, log_unit=None)
    assert r.moved == n[17:].sum()
    assert r.n_points == 17
    assert r.t == pytest.approx(nplm_test(by_hand, b, 0.01 * b, EDGES_1D, n_toys=20, seed=1, log_unit=None).t)
    assert r.t < 100.0


@pytest.mark.slow
def test_null_p_values_are_uniform_with_a_thin_simulation_in_the_hunt_binning():
    """The hunt's regime: the joint class binning (10 x 10 x 6, log coordinates), 300 data events of falling
    S_T-like spectra and a simulation of the same size (weight 1), so that data often fall in bins the
    simulation leaves empty (counted at the nearest point); 100 datasets with 100 pseudo-datasets each."""
    from cms_anomaly.processors.histograms import CLASS_JOINT_EDGES

    edges = [np.asarray(e) for e in CLASS_JOINT_EDGES.values()]
    rng = np.random.default_rng(7)

    def sample(n: int) -> np.ndarray:
        st = rng.exponential(150.0, n) + 60.0
        x = np.stack([st, 0.5 * st * rng.uniform(0.5, 1.0, n), rng.exponential(30.0, n)], axis=1)
        return np.histogramdd(np.minimum(x, [5999.0, 5999.0, 2999.0]), bins=edges)[0]

    ps, moved = [], []
    for i in range(100):
        k = sample(300)
        r = nplm_test(sample(rng.poisson(300)), k, k, edges, n_toys=100, seed=i)
        ps.append(r.p)
        moved.append(r.moved)
    assert np.mean(moved) > 5  # the regime this test is for
    ks, below = sps.kstest(ps, "uniform").pvalue, np.mean(np.array(ps) < 0.05)
    assert ks > 0.01, (ks, below)
    assert below <= 0.12, (ks, below)
