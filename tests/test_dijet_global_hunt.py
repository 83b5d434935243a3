"""The dijet hunt's statistics: the local p-value with the fit's uncertainty, the vectorised refit and
the global p-value over every region and window (calibrated on null toys)."""

from __future__ import annotations

import hist
import numpy as np
import pytest
from cms_anomaly.stats import bumphunt, fits
from cms_anomaly.stats.significance import poisson_gamma_p
from scipy import integrate, stats

EDGES = np.round(np.geomspace(2500.0, 6000.0, 21))  # 20 log bins: the toys' binning
SHAPE = [1.0, 10.0, 5.0, 0.0]  # lhco4


def _truth(n_events: float, edges: np.ndarray = EDGES) -> list[float]:
    _, expected = fits.sample_dijet_counts(edges, SHAPE, model="lhco4", seed=0)
    return [SHAPE[0] * n_events / expected.sum(), *SHAPE[1:]]


def _hist(counts: np.ndarray, edges: np.ndarray = EDGES) -> hist.Hist:
    h = hist.Hist(hist.axis.Variable(edges, name="mjj"), storage=hist.storage.Weight())
    h[...] = np.stack([counts, counts], axis=-1)
    return h


def _sideband_fit(seed: int, first: int, *, n_events: float = 600.0, sr_bins: int = 4) -> fits.FitResult:
    counts, _ = fits.sample_dijet_counts(EDGES, _truth(n_events), model="lhco4", seed=seed)
    return fits.fit_dijet(_hist(counts), model="lhco4", exclude=[(EDGES[first], EDGES[first + sr_bins])])


def test_poisson_gamma_p_by_hand_and_above_the_poisson_tail():
    # n = 25 over b = 15 +- 3: the Poisson tail integrated over a Gamma of mean 15 and width 3 (k = 25, theta = 0.6)
    by_hand = integrate.quad(lambda mu: stats.poisson.sf(24, mu) * stats.gamma.pdf(mu, 25.0, scale=0.6), 0, 80)[0]
    assert float(poisson_gamma_p(25, 15.0, 3.0)) == pytest.approx(by_hand, rel=1e-8)
    assert by_hand == pytest.approx(0.036932, abs=2e-6)
    plain = stats.poisson.sf(24, 15.0)  # 0.011165
    assert float(poisson_gamma_p(25, 15.0, 3.0)) > 3 * plain
    np.testing.assert_allclose(poisson_gamma_p([25, 25, 0], [15.0, 15.0, 15.0], [0.0, 1e-4, 3.0]), [plain, plain, 1.0])


def test_window_p_value_carries_the_fit_covariance():
    """One bin by hand: the fit's variance of the expectation is J C J^T (checked against a numerical
    Jacobian of the dijet function), and the window's p-value is the Poisson-Gamma tail with it."""
    fit = _sideband_fit(3, 8)
    theta, step = fit.theta, 1e-6
    numeric = np.empty((fit.expected.size, theta.size))
    for k in range(theta.size):
        up, down = theta.copy(), theta.copy()
        up[k] += step
        down[k] -= step
        params_up = [np.exp(up[0]), *up[1:]]
        params_down = [np.exp(down[0]), *down[1:]]
        mu_up = fits.sample_dijet_counts(EDGES, params_up, model="lhco4", seed=0)[1]
        mu_down = fits.sample_dijet_counts(EDGES, params_down, model="lhco4", seed=0)[1]
        numeric[:, k] = (mu_up - mu_down) / (2 * step)
    np.testing.assert_allclose(fit.expected_jacobian(), numeric, rtol=1e-4, atol=1e-8)
    var = np.diag(fit.expected_covariance())
    np.testing.assert_allclose(var, np.diag(numeric @ fit.theta_covariance @ numeric.T), rtol=1e-3)

    windows = np.array([[9, 1], [9, 2]])
    counts = fit.observed.copy()
    counts[9] = np.ceil(fit.expected[9] + 3 * np.sqrt(fit.expected[9]))  # an excess in bin 9
    p = bumphunt.scan_windows(counts, fit.expected, fit.expected_jacobian(), fit.theta_covariance, windows)
    assert p[0] == pytest.approx(float(poisson_gamma_p(counts[9], fit.expected[9], np.sqrt(var[9]))), rel=1e-12)
    assert p[0] > stats.poisson.sf(counts[9] - 1, fit.expected[9])
    b2 = fit.expected[9:11].sum()
    s2 = np.sqrt(fit.expected_covariance()[9:11, 9:11].sum())
    assert p[1] == pytest.approx(float(poisson_gamma_p(counts[9:11].sum(), b2, s2)), rel=1e-9)


def test_refit_poisson_is_minuits_fit():
    """The vectorised Newton fit reaches Minuit's minimum (or a lower one) and its error on the
    signal-region expectation, on sideband fits of Poisson spectra."""
    template = _sideband_fit(5, 8)
    spectra = np.stack([fits.sample_dijet_counts(EDGES, _truth(600.0), model="lhco4", seed=s)[0] for s in (6, 7, 8)])
    batch = fits.refit_poisson(template, spectra)
    assert batch.converged.all()
    sr = slice(8, 12)
    for i, counts in enumerate(spectra):
        minuit = fits.fit_dijet(_hist(counts), model="lhco4", exclude=[(EDGES[8], EDGES[12])])
        mine = batch.result(i)
        assert mine.fval <= minuit.fval + 1e-3
        assert mine.expected[sr].sum() == pytest.approx(minuit.expected[sr].sum(), rel=2e-3)
        err_mine = np.sqrt(mine.expected_covariance()[sr, sr].sum())
        err_minuit = np.sqrt(minuit.expected_covariance()[sr, sr].sum())
        assert err_mine == pytest.approx(err_minuit, rel=0.03)


def _null_toys(n_toys: int, firsts: list[int]) -> list[list[fits.FitResult]]:
    """``n_toys`` background-only experiments, each with one sideband fit per region (first SR bins ``firsts``)."""
    rng = np.random.default_rng(11)
    _, truth = fits.sample_dijet_counts(EDGES, _truth(600.0), model="lhco4", seed=0)
    per_region = []
    for r, first in enumerate(firsts):
        template = _sideband_fit(100 + r, first)
        batch = fits.refit_poisson(template, rng.poisson(truth, size=(n_toys, truth.size)))
        assert batch.converged.all()
        per_region.append([batch.result(i) for i in range(n_toys)])
    return [list(toy) for toy in zip(*per_region, strict=True)]


def test_global_p_value_of_null_toys_is_uniform_and_counts_every_region():
    """200 null experiments, 4 signal regions each: the global p-value over regions x windows is uniform
    (KS); the p-value of the best region's scan alone (the choice of region not counted) is not."""
    toys = _null_toys(200, [2, 6, 10, 14])
    p_all, p_one = [], []
    for t, toy in enumerate(toys):
        res = bumphunt.global_hunt(toy, seed=1000 + t, npe=200, width_min=2, width_max=4)
        assert res.n_failed == 0
        p_all.append(res.global_p_value)
        p_one.append(res.global_p_value_one_region)
    p_all, p_one = np.array(p_all), np.array(p_one)
    assert stats.kstest(p_all, "uniform").pvalue > 0.01
    assert stats.kstest(p_one, "uniform").pvalue < 1e-4
    assert np.mean(p_one < 0.05) > 1.5 * np.mean(p_all < 0.05)  # 16.5 % against 7.5 %
    assert np.all(p_one <= p_all)


def test_global_hunt_finds_an_injected_bump_in_one_region():
    toys = _null_toys(1, [2, 6, 10, 14])[0]
    fit = toys[2]
    counts = fit.observed.copy()
    counts[11:13] += 60.0  # inside the third region's signal region (bins 10-13)
    bumped = fits.fit_dijet(_hist(counts), model="lhco4", exclude=[(EDGES[10], EDGES[14])])
    res = bumphunt.global_hunt([toys[0], toys[1], bumped, toys[3]], seed=3, npe=500, width_min=2, width_max=4)
    assert res.region == 2
    assert res.window_bins[0] in (10, 11, 12)
    assert res.window_bins[0] + res.window_bins[1] >= 13
    assert res.global_significance_is_lower_limit
    assert res.global_p_value_one_region == 0.0
    assert "global p" in res.summary()
    bh = res.bumphunt_result(bumped)
    assert bh.window == res.window
    assert bh.npe == 500


def test_dijet_defaults_are_the_lhco_study():
    """40 m_JJ bins and 10000 pseudo-experiments; 8 signal regions about 20 % wide with their sidebands."""
    from cms_anomaly.analyses.dijet import DijetConfig, region_bins, signal_regions
    from cms_anomaly.processors.histograms import DIJET_MASS_EDGES

    config = DijetConfig()
    assert len(DIJET_MASS_EDGES) - 1 == 40
    assert config.bin_edges == DIJET_MASS_EDGES
    assert config.npe == 10000
    edges = np.asarray(config.bin_edges)
    firsts = signal_regions(config)
    assert len(firsts) == 8
    for first in firsts:
        (lo, hi), sr, sb = region_bins(edges, first, config)
        assert 0.18 < (hi - lo) / lo < 0.23
        assert len(sr) == 9
        assert len(sb) == 10
        assert 0 <= sb[0] < sb[-1] < 40
