"""Detector internals against values set by hand or by the CMS numbers they were tuned to."""

from __future__ import annotations

import math
import warnings

import awkward as ak
import fastjet
import numpy as np
import pytest
from cms_anomaly.datasets.detector_config import DetectorConfig
from cms_anomaly.datasets.detector_jets import btag_score
from cms_anomaly.datasets.detector_leptons import _hadronic_over_em
from cms_anomaly.datasets.substructure import jet_taus, nsubjettiness, softdrop_mass

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


def _flat_p4(jets):
    """(px, py, pz, E) flat float64 arrays and per-jet offsets from lists of (pt, y, phi, m) tuples."""
    rows = [(pt, y, phi, m) for jet in jets for pt, y, phi, m in jet]
    pt, y, phi, m = (np.array([r[k] for r in rows], dtype=np.float64) for k in range(4))
    mt = np.sqrt(pt**2 + m**2)
    p4 = (pt * np.cos(phi), pt * np.sin(phi), mt * np.sinh(y), mt * np.cosh(y))
    return p4, np.concatenate([[0], np.cumsum([len(j) for j in jets])])


def test_softdrop_mass_by_hand():
    """A (100 GeV, phi 0) and B (50 GeV, phi 0.5) merge first; C at Delta R 2.0 comes last.

    m(A + B) = sqrt(2 pT_A pT_B (1 - cos 0.5)) = 34.99 GeV for massless A, B at equal rapidity."""
    m_ab = math.sqrt(2 * 100 * 50 * (1 - math.cos(0.5)))
    soft = [(100.0, 0.0, 0.0, 0.0), (50.0, 0.0, 0.5, 0.0), (5.0, 0.0, 2.0, 0.0)]  # z_C = 0.033: dropped
    hard = [(100.0, 0.0, 0.0, 0.0), (50.0, 0.0, 0.5, 0.0), (30.0, 0.0, 2.0, 0.0)]  # z_C = 0.17: kept
    p4, offsets = _flat_p4([soft, hard, [(40.0, 1.0, 1.0, 0.14)]])
    msd = softdrop_mass(*p4, offsets, 0.1, 0.0, 1.0)
    full = math.sqrt(p4[3][3:6].sum() ** 2 - sum(p4[k][3:6].sum() ** 2 for k in range(3)))
    assert msd[0] == pytest.approx(m_ab, rel=1e-9)
    # C sits beyond Delta R = 1 from A + B and is still part of the tree (C/A reclustering of the whole jet)
    assert msd[1] == pytest.approx(full, rel=1e-9)
    assert msd[2] == pytest.approx(0.14, rel=1e-9)  # one constituent: its own mass
    # z_cut 0.4 fails A-B too (z = 1/3): what is left is A alone, massless
    assert softdrop_mass(*p4, offsets, 0.4, 0.0, 1.0)[0] == pytest.approx(0.0, abs=1e-6)
    # beta = 1, R0 = 1: C needs z > 0.1 x 2.0 = 0.2 (0.17 fails), A-B needs z > 0.05
    assert softdrop_mass(*p4, offsets, 0.1, 1.0, 1.0)[1] == pytest.approx(m_ab, rel=1e-9)


@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_softdrop_mass_equals_fastjet_contrib(beta):
    """Random two- and three-prong jets with soft radiation out to Delta R 1.5, against fastjet's
    SoftDrop (contrib) on a C/A clustering that merges everything (R = 10)."""
    rng = np.random.default_rng(11)
    jets = []
    for _ in range(150):
        prongs = [(rng.uniform(20, 300), rng.normal(0, 0.3), rng.normal(0, 0.3)) for _ in range(rng.integers(1, 4))]
        parts = []
        for pt, y, phi in prongs:
            for _ in range(rng.integers(1, 30)):
                parts.append((pt * rng.exponential(0.1), y + rng.normal(0, 0.05), phi + rng.normal(0, 0.05), 0.0))
        for _ in range(rng.integers(0, 40)):
            r, a = rng.uniform(0, 1.5), rng.uniform(0, 2 * np.pi)
            parts.append((rng.exponential(1.5), r * np.cos(a), r * np.sin(a), rng.choice([0.0, 0.13957])))
        jets.append(parts)
    p4, offsets = _flat_p4(jets)
    mine = softdrop_mass(*p4, offsets, 0.1, beta, 1.0)
    counts = np.diff(offsets)
    vectors = ak.unflatten(ak.zip(dict(zip(("px", "py", "pz", "E"), p4, strict=True))), counts)
    ca = fastjet.ClusterSequence(vectors, fastjet.JetDefinition(fastjet.cambridge_algorithm, 10.0))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="dcut and exclusive jets")  # fastjet warns for C/A too
        groomed = ca.exclusive_jets_softdrop_grooming(njets=1, beta=beta, symmetry_cut=0.1, R0=1.0)
    reference = np.maximum(ak.to_numpy(groomed.msoftdrop), 0.0)
    assert mine.mean() > 20  # the jets have structure: the comparison is not 0 == 0
    assert np.all(mine > 0)
    np.testing.assert_allclose(mine, reference, rtol=1e-7, atol=1e-6)


def test_photon_hoe_counts_hadrons_in_the_cone_only():
    pf = {
        "pt": np.array([40.0, 10.0, 30.0]),
        "eta": np.array([0.0, 0.0, 0.0]),
        "phi": np.array([0.0, 0.14, 0.16]),
        "pdgId": np.array([22, 130, 211]),
    }
    hoe = _hadronic_over_em(pf, np.zeros(3, dtype=np.int64), np.array([0]), 1, cone=CFG.photon_hoe_cone)
    assert hoe[0] == pytest.approx(10.0 / 40.0)  # the pion at dR 0.16 is outside the 0.15 cone


# ----------------------------------------------------------------------------------------------
# simulate(): the whole response on events written by hand
# ----------------------------------------------------------------------------------------------
_PDG_MASS_CHARGE = {13: (0.10566, -1), -13: (0.10566, 1), 11: (0.000511, -1), 211: (0.13957, 1), -211: (0.13957, -1)}


def _batch(events):
    """A ``Pythia.nextBatch``-like record from (pdgId, pT, eta, phi) lists: Pythia's system line 0, then
    final-state particles (status 1, no mother) produced at the origin; and their charges."""
    rows, charges = [], []
    for particles in events:
        ev = [{"id": 90, "status": -11, "mother1": 0, "p": {"px": 0.0, "py": 0.0, "pz": 0.0, "e": 0.0}}]
        ch = [0.0]
        for pid, pt, eta, phi in particles:
            m, q = _PDG_MASS_CHARGE.get(pid, (0.0, 0))
            px, py, pz = pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta)
            e = math.sqrt(px**2 + py**2 + pz**2 + m**2)
            ev.append({"id": pid, "status": 1, "mother1": 0, "p": {"px": px, "py": py, "pz": pz, "e": e}})
            ch.append(float(q))
        for row in ev:
            row["vProd"] = {"px": 0.0, "py": 0.0, "pz": 0.0}
        rows.append(ev)
        charges.append(ch)
    return ak.Array({"prt": rows}), ak.Array(charges)


#: a detector that sees every particle exactly: every efficiency 1, every resolution 0
PERFECT = DetectorConfig(
    eff_track_hadron=((1.0, 1.0), (1.0, 1.0)),
    eff_track_electron=((1.0, 1.0), (1.0, 1.0)),
    eff_track_muon=((1.0, 1.0), (1.0, 1.0)),
    res_track_hadron=((0.0, 0.0),) * 3,
    res_track_muon=((0.0, 0.0),) * 3,
    ecal_res=(0.0, 0.0, 0.0),
    hf_em_res=(0.0, 0.0, 0.0),
    hcal_res=(0.0, 0.0, 0.0),
    hf_had_res=(0.0, 0.0, 0.0),
    eff_id_muon=(1.0, 1.0, 1.0),
    eff_id_electron=(1.0, 1.0, 1.0),
    eff_id_photon=(1.0, 1.0),
    eff_muon_tight=1.0,
    dxy_res_cm=0.0,
    dz_res_cm=0.0,
)


def test_simulate_a_hand_written_event_with_a_perfect_detector():
    """A W -> mu nu-like event: a 50 GeV muon with a 5 GeV pion at dR = 0.2 and a 2 GeV photon at dR = 0.35,
    an isolated 40 GeV electron and 30 GeV photon, a jet of four hadrons, a muon at |eta| = 2.45 (tracked,
    outside the muon acceptance 2.4), a neutron in the HF, and a neutrino balancing everything. Second
    event: one 50 MeV pion, below every threshold. Every expected number is worked out by hand."""
    from cms_anomaly.datasets.detector import simulate

    visible = [
        (13, 50.0, 0.5, 0.3),
        (211, 5.0, 0.7, 0.3),  # dR = 0.2 from the muon: in both isolation cones
        (22, 2.0, 0.5, 0.65),  # dR = 0.35: in the 0.4 cone only
        (11, 40.0, -0.3, -2.0),
        (22, 30.0, 1.2, -1.0),
        (211, 30.0, -1.0, 2.0),  # the jet: 30 + 20 GeV charged, 15 GeV photon, 10 GeV K_L
        (-211, 20.0, -1.05, 2.05),
        (22, 15.0, -0.95, 1.95),
        (130, 10.0, -1.0, 2.08),
        (-13, 12.0, 2.45, -0.5),
        (2112, 8.0, 3.5, 1.0),
    ]
    px = -sum(pt * math.cos(phi) for _, pt, _, phi in visible)
    py = -sum(pt * math.sin(phi) for _, pt, _, phi in visible)
    nu = (-14, math.hypot(px, py), 0.0, math.atan2(py, px))
    batch, charges = _batch([[*visible, nu], [(211, 0.05, 0.0, 0.0)]])
    out = simulate(batch, charges, rng=np.random.default_rng(1), config=PERFECT)

    # PF candidates: every visible particle, with NanoAOD's pdgId for hadrons (+-211, 130, 22)
    pf = out["PFCands"]
    assert ak.num(pf).tolist() == [len(visible), 0]
    assert sorted(ak.to_list(pf.pdgId[0])) == sorted([13, 211, 22, 11, 22, 211, -211, 22, 130, -13, 130])
    assert ak.to_list(pf.pt[0]) == sorted(ak.to_list(pf.pt[0]), reverse=True)
    # MET is the neutrino: the event balances; sumEt the scalar sum of the visible pT
    assert out["MET"].pt[0] == pytest.approx(nu[1], rel=1e-5)
    assert out["MET"].phi[0] == pytest.approx(nu[3], abs=1e-5)
    assert out["MET"].sumEt[0] == pytest.approx(sum(p[1] for p in visible), rel=1e-6)
    assert out["MET"].pt[1] == 0
    # one muon (the |eta| = 2.45 one is outside the muon system), isolation by hand
    mu = out["Muon"][0]
    assert len(mu) == 1
    assert mu.pt[0] == pytest.approx(50.0, rel=1e-6)
    assert mu.charge[0] == -1
    assert mu.pfRelIso03_all[0] == pytest.approx(5.0 / 50.0, rel=1e-5)
    assert mu.pfRelIso03_chg[0] == pytest.approx(5.0 / 50.0, rel=1e-5)
    assert mu.pfRelIso04_all[0] == pytest.approx(7.0 / 50.0, rel=1e-5)
    assert mu.tightId[0]
    assert mu.looseId[0]
    # the electron and the photon: isolated, tight (cutBased 4 and 3), H/E = 0
    ele = out["Electron"][0]
    assert ak.to_list(ele.pt) == pytest.approx([40.0])
    assert ele.pfRelIso03_all[0] == 0
    assert ele.cutBased[0] == 4
    pho = out["Photon"][0]
    assert ak.to_list(pho.pt) == pytest.approx([30.0])  # the 15 GeV jet photon has H/E = 50 / 15
    assert pho.hoe[0] == 0
    assert pho.cutBased[0] == 3
    # truth: the muon points at a prompt generated muon
    gen = out["GenPart"][0]
    assert gen.pdgId[mu.genPartIdx[0]] == 13
    assert mu.genPartFlav[0] == 1
    # jets: the four hadrons (75 GeV), the muon with its pion and photon (tight ID, but no lepton veto: muEF > 0.8),
    # the electron and the photon (neutral EM fraction 1: no ID)
    jets = out["Jet"][0]
    had = jets[abs(jets.eta - -1.0) < 0.2]
    assert len(had) == 1
    assert had.nConstituents[0] == 4
    assert had.pt[0] == pytest.approx(74.9, abs=0.2)  # vector sum of 30, 20, 15, 10 GeV within dR 0.1
    assert had.jetId[0] == 6
    assert had.neHEF[0] == pytest.approx(10 * math.cosh(1.0) / had.pt[0] / math.cosh(had.eta[0]), rel=0.02)
    mu_jet = jets[mu.jetIdx[0]]
    assert mu_jet.nConstituents == 3
    assert mu_jet.jetId == 2
    assert mu_jet.nMuons == 1
    pho_jet = jets[abs(jets.eta - 1.2) < 0.01]
    assert pho_jet.jetId[0] == 0
    assert ak.num(out["Jet"]).tolist()[1] == 0
    assert ak.num(out["FatJet"]).tolist() == [0, 0]  # no R = 1.0 jet above 150 GeV


def test_simulate_muon_and_electron_efficiency_and_resolution():
    """4000 single 50 GeV muons at |eta| = 1 (barrel): reconstructed with the tracking x identification
    efficiency 0.99 x 0.95 = 0.9405, pT resolution sqrt(0.015^2 + (1.5e-4 x 50)^2) = 1.68 % (Delphes CMS,
    |eta| 0.5-1.5); 40 GeV electrons at eta = 0: 0.95 x 0.95 = 0.9025, ECAL resolution
    sqrt((0.007 E)^2 + 0.07^2 E + 0.35^2) / E = 1.58 %."""
    from cms_anomaly.datasets.detector import simulate

    n = 4000
    for pid, pt, eta, eff, res in ((13, 50.0, 1.0, 0.99 * 0.95, 0.01677), (11, 40.0, 0.0, 0.95 * 0.95, 0.01575)):
        batch, charges = _batch([[(pid, pt, eta, 0.5)]] * n)
        out = simulate(batch, charges, rng=np.random.default_rng(7), config=CFG)
        coll = out["Muon" if pid == 13 else "Electron"]
        found = ak.num(coll) == 1
        assert ak.all(ak.num(coll) <= 1)
        assert np.mean(found) == pytest.approx(eff, abs=4 * math.sqrt(eff * (1 - eff) / n))
        rel = ak.to_numpy(coll.pt[found][:, 0]) / pt - 1.0
        assert np.std(rel) == pytest.approx(res, rel=0.06)
        assert abs(np.mean(rel)) < 4 * res / math.sqrt(n)


# ----------------------------------------------------------------------------------------------
# the event record: charges and production vertices
# ----------------------------------------------------------------------------------------------
def test_generator_charges_by_hand_for_common_heavy_and_bsm_ids():
    """Charges from the generator's lookup tables (dense for |id| <= 10000, sorted beyond) against the PDG
    by hand, in the input's shape; a second call (cached table) and newly seen ids give the same values."""
    from cms_anomaly.datasets.cards import load_card
    from cms_anomaly.datasets.generator import DENSE_ID_MAX, PythiaGenerator

    by_hand = {
        11: -1,
        -11: 1,
        13: -1,
        12: 0,
        2: 2 / 3,
        -1: 1 / 3,
        21: 0,
        22: 0,
        211: 1,
        -211: -1,
        130: 0,
        2212: 1,
        -2212: -1,
        2203: 4 / 3,
        -1103: 2 / 3,
        3122: 0,
        3222: 1,
        -521: -1,  # diquarks uu_1, anti-dd_1; Sigma+, B-
        100443: 0,
        20213: 1,
        -20213: -1,
        9000211: 1,
        1000024: 1,
        -1000024: -1,
        1000022: 0,  # |id| > 10000
    }
    assert max(abs(i) for i in by_hand) > DENSE_ID_MAX > 5000
    gen = PythiaGenerator(load_card("wjets"), seed=5)
    ids = np.array(list(by_hand) * 3, dtype=np.int32)
    first = gen.charges(ids[:12])  # a part first: the rest are new ids for the tables
    got = gen.charges(ids.reshape(3, -1))
    assert got.shape == (3, len(by_hand))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np.tile(list(by_hand.values()), (3, 1)), atol=1e-6)
    np.testing.assert_array_equal(first, got.ravel()[:12])
    np.testing.assert_array_equal(gen.charges(ids), got.ravel())


def test_production_vertices_read_from_an_optional_record():
    """``_present``: which particles carry a production vertex (Pythia writes None at the origin) and their
    coordinates in order, from an option layout (indexed or byte-masked) and from a plain record."""
    from cms_anomaly.datasets.detector import _present

    rows = [{"px": 1.0, "py": 2.0, "pz": 3.0}, None, None, {"px": -4.0, "py": 5.0, "pz": 6.5}, None]
    indexed = ak.Array(rows)
    masked = ak.mask(ak.Array([r or {"px": 9.0, "py": 9.0, "pz": 9.0} for r in rows]), [r is not None for r in rows])
    for values in (indexed, masked, indexed[1:]):
        present, (x, y, z) = _present(values, ("px", "py", "pz"))
        expected = list(rows[len(rows) - len(values) :])
        assert present.tolist() == [r is not None for r in expected]
        assert x.tolist() == [r["px"] for r in expected if r]
        assert z.tolist() == [r["pz"] for r in expected if r]
        assert y.dtype == np.float64
    present, (x,) = _present(ak.Array([{"px": 1.5}, {"px": 2.5}]), ("px",))
    assert present.tolist() == [True, True]
    assert x.tolist() == [1.5, 2.5]


def test_simulate_takes_flat_or_jagged_charges_and_checks_their_number():
    from cms_anomaly.datasets.detector import simulate

    batch, charges = _batch([[(13, 50.0, 0.5, 0.3), (211, 5.0, 0.7, 0.3)], [(-211, 20.0, -1.0, 2.0)]])
    jagged = simulate(batch, charges, rng=np.random.default_rng(3), config=PERFECT)
    flat = simulate(batch, ak.to_numpy(ak.flatten(charges)), rng=np.random.default_rng(3), config=PERFECT)
    for name in jagged:
        assert ak.to_list(jagged[name]) == ak.to_list(flat[name]), name
    with pytest.raises(ValueError, match="4 charges for 5 particles"):
        simulate(batch, ak.to_numpy(ak.flatten(charges))[:-1], rng=np.random.default_rng(3), config=PERFECT)


def test_truth_record_pruning_ancestry_and_flavour_by_hand():
    """A hand-written ttbar-like record (one event; local index 0 is Pythia's system line): the hard process,
    b -> B*0 -> B0 -> D- -> e- nu_e, W -> mu nu, W -> tau (a shower copy, then the last copy) -> mu, a beam-remnant diquark.
    Kept and their mothers, genPartFlav and the B/C-hadron and parton targets are worked out by hand."""
    from cms_anomaly.datasets.detector_truth import _truth_record

    rows = [  # (pdgId, status, mother1, pT)
        (90, -11, 0, 0.0),  # 0 system
        (21, -21, 0, 0.0),  # 1 incoming gluon: hard
        (6, -22, 1, 50.0),  # 2 top: hard
        (24, -22, 2, 40.0),  # 3 W+: hard
        (5, -23, 2, 60.0),  # 4 b: hard, outgoing parton (showered)
        (-13, -23, 3, 30.0),  # 5 mu+ of the hard process (its final copy follows)
        (-13, 1, 5, 30.0),  # 6 final mu+: kept, prompt, from the hard process
        (513, -2, 4, 55.0),  # 7 B*0 -> B0: a B hadron with a B daughter, not kept
        (511, -91, 7, 54.0),  # 8 B0: weakly decaying, kept
        (-411, -91, 8, 20.0),  # 9 D-: weakly decaying C hadron, kept
        (11, 1, 9, 5.0),  # 10 e-: kept, from a C hadron
        (-12, 1, 9, 0.5),  # 11 anti-nu_e below 1 GeV: pruned
        (15, -51, 3, 35.0),  # 12 tau-: a shower copy with a tau daughter, pruned
        (15, -91, 12, 35.0),  # 13 tau-: last copy, kept
        (13, 1, 13, 10.0),  # 14 mu- from the prompt tau
        (2203, 63, 0, 1.0),  # 15 uu_1 diquark (beam remnant): a "hadron" id without b or c
    ]
    pid, status, mother1, pt = (np.array(c) for c in zip(*rows, strict=True))
    n = len(rows)
    px, py, pz = pt.astype(float), np.zeros(n), np.full(n, 3.0)
    e = np.sqrt(px**2 + pz**2 + 1.0)
    truth = _truth_record(
        pid=pid, status=status, mother1=mother1, px=px, py=py, pz=pz, e=e,
        evt=np.zeros(n, dtype=np.int64), offsets=np.array([0, n]), n_events=1,
    )  # fmt: skip
    gen = truth.genpart[0]
    kept = [1, 2, 3, 4, 5, 6, 8, 9, 10, 13, 14]
    assert ak.to_list(gen.pdgId) == [rows[k][0] for k in kept]
    # mothers: the nearest kept ancestor (8's mother 7 is pruned: its mother, the b quark 4, stands in)
    mother_local = {1: -1, 2: 1, 3: 2, 4: 2, 5: 3, 6: 5, 8: 4, 9: 8, 10: 9, 13: 3, 14: 13}
    assert ak.to_list(gen.genPartIdxMother) == [
        kept.index(mother_local[k]) if mother_local[k] >= 0 else -1 for k in kept
    ]
    assert truth.new_index[11] == -1
    assert truth.new_index[7] == -1
    assert truth.new_index[15] == -1
    assert truth.new_index[12] == -1
    # genPartFlav of the final leptons: prompt 1, from a C hadron 4, from a prompt tau 15
    assert [int(truth.flav[k]) for k in (6, 10, 14)] == [1, 4, 15]
    flags = dict(zip(kept, ak.to_list(gen.statusFlags), strict=True))
    assert flags[6] & 1
    assert flags[6] & (1 << 8)
    assert flags[6] & (1 << 13)
    assert not flags[10] & 1  # behind a hadron: not prompt
    assert not flags[8] & 1  # the B0 behind the pruned B*0: not prompt either
    assert flags[4] & 1  # the b quark: prompt
    assert flags[14] & (1 << 2)  # isTauDecayProduct
    assert flags[3] & (1 << 7)
    assert flags[3] & (1 << 12)
    assert ak.to_list(gen.status) == [21, 22, 22, 23, 23, 1, 2, 2, 1, 2, 1]
    # jet-matching targets: weakly decaying B (the B0, not the B*0) and C hadrons, outgoing hard partons
    assert truth.bhad.fields["eta"].shape == (1,)
    assert truth.chad.fields["eta"].shape == (1,)
    assert truth.partons.fields["pdgId"].tolist() == [5]
    assert truth.bhad.offsets.tolist() == [0, 1]


def test_truth_record_rejects_a_mother_outside_its_event():
    from cms_anomaly.datasets.detector_truth import _truth_record

    n = 3
    args = {c: np.ones(n) for c in ("px", "py", "pz", "e")}
    with pytest.raises(ValueError, match="mother1 index points outside its event"):
        _truth_record(
            pid=np.array([90, 21, 21]), status=np.array([-11, -21, 1]), mother1=np.array([0, 0, 7]),
            evt=np.zeros(n, dtype=np.int64), offsets=np.array([0, n]), n_events=1, **args,
        )  # fmt: skip
