"""Detector internals against values set by hand or by the CMS numbers they were tuned to."""

from __future__ import annotations

import math

import awkward as ak
import numpy as np
import pytest
from cms_anomaly.datasets.detector import DetectorConfig, _hadronic_over_em, btag_score, jet_taus, nsubjettiness

CFG = DetectorConfig()


@pytest.mark.parametrize(("flavour", "medium", "loose"), [(5, 0.70, 0.90), (4, 0.12, 0.40), (0, 0.01, 0.10)])
def test_btag_score_hits_the_deepjet_working_point_efficiencies(flavour, medium, loose):
    """CMS DeepJet (BTV 2018 UL): medium 0.2783 keeps 70 / 12 / 1 % of b / c / light jets, loose 0.0490
    keeps 90 / 40 / 10 % (JINST 13 (2018) P05011); 200k jets give +-0.002 at most."""
    n = 200_000
    score = btag_score(np.full(n, flavour), np.zeros(n), np.random.default_rng(3), CFG)
    assert np.mean(score > 0.2783) == pytest.approx(medium, abs=0.004)
    assert np.mean(score > 0.0490) == pytest.approx(loose, abs=0.004)
    assert np.all((score > 0) & (score < 1))


def test_btag_score_outside_the_tracker_is_minus_one():
    score = btag_score(np.array([5, 5]), np.array([2.4, 2.6]), np.random.default_rng(1), CFG)
    assert score[0] >= 0
    assert score[1] == -1


def _vectors(parts):
    """(jets, particles) records with px, py, pz from (pt, eta, phi) triples."""
    return ak.Array(
        [
            [{"px": pt * math.cos(phi), "py": pt * math.sin(phi), "pz": pt * math.sinh(eta)} for pt, eta, phi in jet]
            for jet in parts
        ]
    )


def test_nsubjettiness_by_hand():
    """Two 100 GeV particles 0.5 apart in phi: tau_1 around their midpoint is 0.25 (R0 = 1), tau_2 with an
    axis on each is 0; a 3:1 pT split with the axis on the harder one gives 25 * 0.5 / 100 / 0.8."""
    pair = [[(100.0, 0.0, 0.0), (100.0, 0.0, 0.5)]]
    assert nsubjettiness(_vectors(pair), _vectors([[(1.0, 0.0, 0.25)]]), 1.0)[0] == pytest.approx(0.25, rel=1e-9)
    assert nsubjettiness(_vectors(pair), _vectors([[(1.0, 0.0, 0.0), (1.0, 0.0, 0.5)]]), 1.0)[0] == pytest.approx(
        0.0, abs=1e-12
    )
    split = [[(75.0, 0.0, 0.0), (25.0, 0.0, 0.5)]]
    assert nsubjettiness(_vectors(split), _vectors([[(1.0, 0.0, 0.0)]]), 0.8)[0] == pytest.approx(
        25 * 0.5 / (100 * 0.8), rel=1e-9
    )


def _massless(parts):
    """(jets, particles) records with px, py, pz, E (massless) from (pt, eta, phi) triples."""
    return ak.Array(
        [
            [
                {
                    "px": pt * math.cos(phi),
                    "py": pt * math.sin(phi),
                    "pz": pt * math.sinh(eta),
                    "E": pt * math.cosh(eta),
                }
                for pt, eta, phi in jet
            ]
            for jet in parts
        ]
    )


def test_jet_taus_with_kt_axes_by_hand():
    """The file's tau_1..3 with exclusive-kT axes (R0 = 1). Two 100 GeV particles 0.02 apart and a
    50 GeV one 0.6 away: the two kT subjets are the close pair (axis at phi 0.01) and the single one,
    tau_2 = (100 x 0.01 + 100 x 0.01) / 250 = 0.008; three constituents give tau_3 = 0; tau_1 is the
    pT-weighted distance to the one axis, the summed momentum (at eta 0); a jet with two constituents
    gets zeros."""
    jets = [[(100.0, 0.0, 0.0), (100.0, 0.0, 0.02), (50.0, 0.0, 0.6)], [(80.0, 0.0, 0.0), (40.0, 0.0, 0.3)]]
    taus = jet_taus(_massless(jets), 1.0)
    assert taus.shape == (3, 2)
    assert taus[1, 0] == pytest.approx(0.008, rel=1e-6)
    assert taus[2, 0] == pytest.approx(0.0, abs=1e-12)
    # tau_1: the axis of the summed momenta (eta 0); dR of each particle to it, weighted by pT
    px = sum(pt * math.cos(phi) for pt, _, phi in jets[0])
    py = sum(pt * math.sin(phi) for pt, _, phi in jets[0])
    axis = math.atan2(py, px)
    tau1 = sum(pt * abs(phi - axis) for pt, _, phi in jets[0]) / 250.0
    assert taus[0, 0] == pytest.approx(tau1, rel=1e-6)
    assert taus[0, 0] > taus[1, 0] > taus[2, 0]
    np.testing.assert_array_equal(taus[:, 1], 0.0)


def test_photon_hoe_counts_hadrons_in_the_cone_only():
    pf = {
        "pt": np.array([40.0, 10.0, 30.0]),
        "eta": np.array([0.0, 0.0, 0.0]),
        "phi": np.array([0.0, 0.14, 0.16]),
        "pdgId": np.array([22, 130, 211]),
    }
    hoe = _hadronic_over_em(pf, np.zeros(3, dtype=np.int64), np.array([0]), 1, cone=CFG.photon_hoe_cone)
    assert hoe[0] == pytest.approx(10.0 / 40.0)  # the pion at dR 0.16 is outside the 0.15 cone
