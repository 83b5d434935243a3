"""Published formats: the real LHC Olympics 2020 R&D events (clustered with fastjet) and ADC2021."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from cms_anomaly.datasets import lhco
from conftest import LHCO_TINY

LHCO_FILE = LHCO_TINY


@pytest.fixture(scope="module")
def lhco_events():
    return lhco.read_lhco(LHCO_FILE)


def test_read_lhco(lhco_events):
    particles, labels = lhco_events
    assert len(particles) == len(labels) == 1000
    assert labels.sum() == 93  # the README of the tiny file: 907 background, 93 signal
    assert np.all(np.asarray(particles.pt[0]) > 0)


def test_lhco_dijet_features_show_the_xy_resonance(lhco_events):
    particles, labels = lhco_events
    f = lhco.dijet_features(particles)
    sig = labels == 1
    assert np.isfinite(f["mjj"]).mean() > 0.99
    # Z'(3.5 TeV) -> X(500) Y(100): the signal's jets carry the X and Y masses and two-prong substructure
    assert 3300 < np.nanmedian(f["mjj"][sig]) < 3700
    assert 450 < np.nanmedian(f["mj1"][sig]) < 550
    assert 80 < np.nanmedian(f["mj2"][sig]) < 140
    assert np.nanmedian(f["tau21_j1"][sig]) < np.nanmedian(f["tau21_j1"][~sig]) - 0.15
    assert np.nanmedian(f["mj1"][~sig]) < 300
    assert np.all(f["mj1"][np.isfinite(f["mj1"])] >= f["mj2"][np.isfinite(f["mj1"])])  # mj1 is the heavier jet
    assert np.nanmin(f["ptj1"]) > 1000  # the R&D sample's trigger: leading jet pT > 1.2 TeV


def test_lhco_wrong_file_is_named(tmp_path):
    bogus = tmp_path / "bogus.h5"
    with h5py.File(bogus, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(lhco.FormatError, match=r"bogus\.h5"):
        lhco.read_lhco(bogus)


def test_read_adc2021(tmp_path):
    rng = np.random.default_rng(0)
    data = np.zeros((5, 19, 4), dtype=np.float32)
    data[:, :, :3] = rng.random((5, 19, 3))
    data[:, 0, 3], data[:, 5, 3], data[:, 9, 3] = 1, 3, 4  # MET, muon, jet classes
    path = tmp_path / "adc.h5"
    with h5py.File(path, "w") as f:
        f["Particles"] = data
        f["Particles_Names"] = np.array([b"Pt", b"Eta", b"Phi", b"Class"])
    objects = lhco.read_adc2021(path)
    assert objects.shape == (5, 19, 3)
    np.testing.assert_array_equal(objects, data[:, :, :3])
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["Particles"] = np.zeros((2, 19, 3))
    with pytest.raises(lhco.FormatError, match=r"shape \(2, 19, 3\)"):
        lhco.read_adc2021(tmp_path / "bad.h5")
