"""Dijet-function fits: formulas by hand, parameter recovery on sampled spectra, sideband fits."""

from __future__ import annotations

import math

import hist
import numpy as np
import pytest
from cms_anomaly.stats import fits

EDGES = np.linspace(1500.0, 6500.0, 51)
CHEKANOV_SHAPE = [1.0, 10.0, -5.0, -0.3, -0.02]
LHCO_SHAPE = [1.0, 9.0, 5.5, 0.3]


def _truth(model: str, shape: list[float], n_events: float) -> list[float]:
    """Parameters with the normalisation set so that the spectrum holds ``n_events``."""
    _, expected = fits.sample_dijet_counts(EDGES, shape, model=model, seed=0)
    return [shape[0] * n_events / expected.sum(), *shape[1:]]


def _weighted_hist(counts: np.ndarray, weight: float = 1.0) -> hist.Hist:
    h = hist.Hist(hist.axis.Variable(EDGES, name="mjj", label="$m_{jj}$ [GeV]"), storage=hist.storage.Weight())
    h[...] = np.stack([counts * weight, counts * weight**2], axis=-1)
    return h


def test_formulas_by_hand():
    # x = 0.2: 0.8^10 = 0.1073741824; ln 0.2 = -1.6094379;
    # exponent = -5 - 0.3 ln x - 0.02 ln^2 x = -4.5689744; 0.2^-4.5689744 = 1561.6 -> 2 * 0.10737 * 1561.6
    assert float(fits.chekanov_dijet(0.2, 2.0, 10.0, -5.0, -0.3, -0.02)) == pytest.approx(335.3559, rel=1e-6)
    # y = 0.3: 0.7^8 = 0.05764801; exponent 4.5 + 0.2 ln 0.3 = 4.2592054; 0.3^4.2592054 = 0.0059286
    assert float(fits.lhco_dijet(0.3, 3.0, 8.0, 4.5, 0.2)) == pytest.approx(29.17115, rel=1e-6)
    # the registry's log-linear form is the same function
    for name, pars in (("chekanov5", [2.0, 10.0, -5.0, -0.3, -0.02]), ("lhco4", [3.0, 8.0, 4.5, 0.2])):
        model = fits.DIJET_MODELS[name]
        x = np.array([0.15, 0.3, 0.45])
        direct = model.function(x, *pars)
        via_basis = np.exp(model.log_density(x, math.log(pars[0]), np.array(pars[1:])))
        assert via_basis == pytest.approx(direct, rel=1e-12)


@pytest.mark.parametrize(("model", "shape"), [("chekanov5", CHEKANOV_SHAPE), ("lhco4", LHCO_SHAPE)])
def test_poisson_fit_recovers_sampled_function(model, shape):
    truth = _truth(model, shape, 200_000)
    counts, _ = fits.sample_dijet_counts(EDGES, truth, model=model, seed=21)
    res = fits.fit_dijet(_weighted_hist(counts), model=model, method="poisson")
    assert res.valid
    for (name, value), t in zip(res.params.items(), truth, strict=True):
        assert abs(value - t) < 3.0 * res.errors[name], (name, value, t, res.errors[name])
    assert res.ndf == 50 - len(truth) - int(np.sum(~np.isfinite(res.pulls)))
    assert abs(res.chi2_ndf - 1.0) < 3.0 * math.sqrt(2.0 / res.ndf)
    assert res.expected.sum() == pytest.approx(counts.sum(), rel=1e-3)  # extended fit conserves the yield
    assert 0.001 < res.p_value <= 1.0


def test_chi2_fit_recovers_sampled_function_at_high_statistics():
    truth = _truth("lhco4", LHCO_SHAPE, 2_000_000)
    counts, _ = fits.sample_dijet_counts(EDGES, truth, model="lhco4", seed=22)
    res = fits.fit_dijet(_weighted_hist(counts), model="lhco4", method="chi2")
    assert res.valid
    for (name, value), t in zip(res.params.items(), truth, strict=True):
        assert abs(value - t) < 3.0 * res.errors[name], (name, value, t, res.errors[name])
    assert abs(res.chi2_ndf - 1.0) < 3.0 * math.sqrt(2.0 / res.ndf)
    # Neyman chi2: pulls use the bin variances
    used = np.isfinite(res.pulls)
    manual = (counts - res.expected)[used] / np.sqrt(counts[used])
    assert res.pulls[used] == pytest.approx(manual)
    assert res.chi2 == pytest.approx(float(np.sum(manual**2)))


def test_weighted_histogram_scales_only_the_normalisation():
    truth = _truth("lhco4", LHCO_SHAPE, 100_000)
    counts, _ = fits.sample_dijet_counts(EDGES, truth, model="lhco4", seed=23)
    plain = fits.fit_dijet(_weighted_hist(counts), model="lhco4")
    scaled = fits.fit_dijet(_weighted_hist(counts, weight=0.25), model="lhco4")
    assert scaled.params["p0"] == pytest.approx(0.25 * plain.params["p0"], rel=1e-3)
    for k in ("p1", "p2", "p3"):
        assert scaled.params[k] == pytest.approx(plain.params[k], abs=1e-3 * max(1.0, abs(plain.params[k])))
        assert scaled.errors[k] == pytest.approx(plain.errors[k], rel=1e-2)  # Bohm-Zech: same information


def test_sideband_fit_interpolates_into_the_excluded_window():
    truth = _truth("chekanov5", CHEKANOV_SHAPE, 300_000)
    counts, expected = fits.sample_dijet_counts(EDGES, truth, model="chekanov5", seed=24)
    bump = np.zeros_like(counts)
    window = (EDGES[:-1] >= 3300) & (EDGES[1:] <= 3700)
    bump[window] = 150.0
    res = fits.fit_dijet(_weighted_hist(counts + bump), model="chekanov5", exclude=[(3300.0, 3700.0)])
    assert not res.fit_mask[window].any()
    assert res.fit_mask[~window].all()
    assert np.isnan(res.pulls[window]).all()
    # the interpolated background in the window agrees with the true expectation, not with the bump
    assert res.expected[window].sum() == pytest.approx(expected[window].sum(), rel=0.05)
    assert res.expected_in(EDGES) == pytest.approx(res.expected, rel=1e-9)
    # density integrates to the expected counts
    fine = np.linspace(EDGES[0], EDGES[1], 2001)
    assert np.trapezoid(res.density(fine), fine) == pytest.approx(res.expected[0], rel=1e-4)


def test_fit_rejects_bad_setup():
    counts, _ = fits.sample_dijet_counts(EDGES, _truth("lhco4", LHCO_SHAPE, 1000), model="lhco4", seed=1)
    with pytest.raises(fits.FitError, match="unknown model"):
        fits.fit_dijet(_weighted_hist(counts), model="dijet7")
    with pytest.raises(fits.FitError, match="sqrt_s"):
        fits.fit_dijet(_weighted_hist(counts), sqrt_s=6000.0)
    with pytest.raises(fits.FitError, match="populated bins"):
        fits.fit_dijet(_weighted_hist(np.zeros(50)), model="lhco4")


def test_fisher_f_test_prefers_the_needed_parameter():
    truth = _truth("lhco4", [1.0, 9.0, 5.5, 0.8], 500_000)  # a clearly non-zero p3
    counts, _ = fits.sample_dijet_counts(EDGES, truth, model="lhco4", seed=25)
    h = _weighted_hist(counts)
    f_needed, p_needed = fits.fisher_f_test(fits.fit_dijet(h, model="lhco3"), fits.fit_dijet(h, model="lhco4"))
    assert p_needed < 1e-3
    assert f_needed > 10
    # data generated by the 4-parameter form: the 5-parameter Chekanov form adds nothing significant
    small, large = fits.fit_dijet(h, model="chekanov4"), fits.fit_dijet(h, model="chekanov5")
    _, p_extra = fits.fisher_f_test(small, large)
    assert p_extra > 0.001
    with pytest.raises(fits.FitError, match="extend"):
        fits.fisher_f_test(large, small)
