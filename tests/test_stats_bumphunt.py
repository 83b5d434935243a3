"""BumpHunter wrapper: finds an injected bump, stays quiet on a smooth sample, is reproducible."""

from __future__ import annotations

import logging

import hist
import numpy as np
import pytest
from cms_anomaly.stats import bumphunt
from cms_anomaly.stats.fits import sample_dijet_counts

EDGES = np.linspace(1500.0, 5500.0, 41)  # 40 bins of 100 GeV, as in the LHCO BumpHunter setup


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    _, expected = sample_dijet_counts(EDGES, [1.0, 10.0, -5.0], model="chekanov3", seed=0)
    return expected * (50_000.0 / expected.sum())


def _data_hist(counts: np.ndarray) -> hist.Hist:
    h = hist.Hist(hist.axis.Variable(EDGES, name="mjj", label="$m_{jj}$ [GeV]"))
    h[...] = counts
    return h


def test_finds_injected_bump_at_its_position(reference):
    rng = np.random.default_rng(31)
    signal = np.histogram(rng.normal(3500.0, 100.0, 250), bins=EDGES)[0]
    data = rng.poisson(reference) + signal
    res = bumphunt.bump_hunt(_data_hist(data), reference, seed=1, npe=2000)
    assert res.window[0] <= 3500.0 <= res.window[1]
    assert 2 <= res.window_bins[1] <= 7
    assert res.local_significance > 5.0
    assert res.global_p_value == 0.0
    assert res.global_significance_is_lower_limit
    assert res.global_significance == pytest.approx(3.29, abs=0.01)  # Phi^-1(1 - 1/2000)
    assert 0.5 * 250 < res.signal_estimate < 1.5 * 250
    assert res.pseudo_test_statistics.shape == (2000,)
    assert "window" in res.summary()


def test_smooth_sample_is_not_significant(reference):
    data = np.random.default_rng(32).poisson(reference)
    res = bumphunt.bump_hunt(_data_hist(data), reference, seed=2, npe=2000)
    assert res.global_p_value > 0.01
    assert res.global_significance < 2.5
    assert not res.global_significance_is_lower_limit


def test_reproducible_and_leaves_global_rng_alone(reference, caplog):
    data = np.random.default_rng(33).poisson(reference)
    # the legacy global generator is what pyBumpHunter uses and what this test watches
    np.random.seed(123)  # noqa: NPY002
    before = np.random.random(3)  # noqa: NPY002
    np.random.seed(123)  # noqa: NPY002
    with caplog.at_level(logging.DEBUG, logger="cms_anomaly.stats.bumphunt"):
        a = bumphunt.bump_hunt(data, reference, seed=5, npe=300)
    after = np.random.random(3)  # noqa: NPY002
    assert after == pytest.approx(before)  # the caller's global NumPy stream is untouched
    b = bumphunt.bump_hunt(data, reference, seed=5, npe=300, nworker=2)
    assert np.array_equal(a.pseudo_test_statistics, b.pseudo_test_statistics)
    assert a.global_p_value == b.global_p_value
    assert any("pyBumpHunter" in r.getMessage() for r in caplog.records)  # prints went to the log


def test_arrays_entry_point_and_normalisation():
    rng = np.random.default_rng(34)
    bkg = 1500.0 + rng.exponential(600.0, 200_000)
    data = np.concatenate([1500.0 + rng.exponential(600.0, 20_000), rng.normal(2500.0, 60.0, 300)])
    res = bumphunt.bump_hunt_arrays(
        data, bkg, bins=40, value_range=(1500.0, 5500.0), seed=3, npe=500, normalise_reference=True
    )
    assert res.window[0] <= 2500.0 <= res.window[1]
    assert res.reference.sum() == pytest.approx(res.data.sum())


def test_rejects_bad_input(reference):
    with pytest.raises(bumphunt.BumpHuntError, match="bins"):
        bumphunt.bump_hunt(np.ones(10), reference, seed=1)
    with pytest.raises(bumphunt.BumpHuntError, match="integer"):
        bumphunt.bump_hunt(reference, reference, seed=1)
    with pytest.raises(bumphunt.BumpHuntError, match="width"):
        bumphunt.bump_hunt(np.round(reference), reference, seed=1, width_min=8, width_max=7)


def test_real_lhco_rnd_file_fit_and_bump_hunt():
    """LHCO R&D (first 1000 events, 93 Z'(3.5 TeV) -> XY): fit the QCD m_JJ, find the Z' on top of it."""
    from cms_anomaly.datasets.lhco import dijet_features, read_lhco
    from cms_anomaly.stats import fits
    from conftest import LHCO_TINY

    particles, labels = read_lhco(LHCO_TINY)
    mjj = dijet_features(particles)["mjj"]
    is_sig = np.asarray(labels).astype(bool)
    edges = np.geomspace(2632.0, 6000.0, 17)  # the LHCO CWoLa binning (16 log-spaced bins)

    def filled(values):
        h = hist.Hist(hist.axis.Variable(edges, name="mjj", label="$m_{JJ}$ [GeV]"))
        h.fill(values)
        return h

    bkg_fit = fits.fit_dijet(filled(mjj[~is_sig]), model="lhco4")
    assert bkg_fit.valid
    assert bkg_fit.chi2_ndf < 2.5
    res = bumphunt.bump_hunt(filled(mjj), bkg_fit.expected, seed=1, npe=1000, width_min=1, width_max=4)
    assert res.window[0] <= 3500.0 <= res.window[1]
    assert res.local_significance > 4.0
    assert res.global_significance_is_lower_limit
