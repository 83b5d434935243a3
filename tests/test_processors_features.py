"""Features on constructed events with hand-computed expectations (HLF, isolation, ADC2021 array, RMM)."""

from __future__ import annotations

import dataclasses
import math

import awkward as ak
import numpy as np
import pytest
import vector
from cms_anomaly.processors import rmm as rmm_mod
from cms_anomaly.processors import schema
from cms_anomaly.processors.config import AnalysisConfig
from cms_anomaly.processors.feature_spec import ARRAY_FEATURES, HLF21, HLF24, SCALAR_FEATURES
from cms_anomaly.processors.features import compute_features

SQRT_S = 13000.0
CFG = AnalysisConfig()

LEPTON_FIELDS = ("pt", "eta", "phi", "mass", "charge", "pfRelIso03_all", "pfRelIso03_chg")


def _coll(events: list[list[dict]], fields: tuple[str, ...], ints: tuple[str, ...] = ()) -> ak.Array:
    """A jagged collection from per-event lists of dicts (missing keys: 0)."""
    counts = [len(e) for e in events]
    cols = {}
    for f in fields:
        flat = [obj.get(f, 0) for ev in events for obj in ev]
        dtype = np.int32 if f in ints else np.float32
        cols[f] = ak.unflatten(np.asarray(flat, dtype=dtype), counts)
    return ak.zip(cols)


def make_events(*, muons, electrons=None, photons=None, jets=None, fatjets=None, met, pfcands=None) -> ak.Array:
    """Record array with the NanoAOD collection layout (``Muon``, ``Jet``, ``MET``, ...)."""
    n = len(muons)
    empty = [[] for _ in range(n)]
    rec = {
        "Muon": _coll(muons, LEPTON_FIELDS, ints=("charge",)),
        "Electron": _coll(electrons or empty, LEPTON_FIELDS, ints=("charge",)),
        "Photon": _coll(photons or empty, ("pt", "eta", "phi", "mass")),
        "Jet": _coll(jets or empty, ("pt", "eta", "phi", "mass", "btagDeepFlavB")),
        "FatJet": _coll(fatjets or empty, ("pt", "eta", "phi", "mass", "msoftdrop", "tau1", "tau2", "tau3")),
        "MET": ak.zip(
            {"pt": np.array([m[0] for m in met], np.float32), "phi": np.array([m[1] for m in met], np.float32)}
        ),
        "genWeight": np.ones(n, np.float32),
    }
    if pfcands is not None:
        rec["PFCands"] = _coll(pfcands, ("pt", "eta", "phi", "mass", "charge", "pdgId"), ints=("charge", "pdgId"))
    return ak.zip(rec, depth_limit=1)


# two muons with known four-vectors (massless, so the formulas below are exact)
MU1 = {"pt": 50.0, "eta": 0.0, "phi": 0.0, "mass": 0.0, "charge": -1, "pfRelIso03_all": 0.05, "pfRelIso03_chg": 0.03}
MU2 = {
    "pt": 35.0,
    "eta": 1.0,
    "phi": math.pi / 2,
    "mass": 0.0,
    "charge": 1,
    "pfRelIso03_all": 0.3,
    "pfRelIso03_chg": 0.3,
}
MET = (20.0, math.pi)


@pytest.fixture(scope="module")
def dimuon():
    ev = make_events(muons=[[MU2, MU1]], met=[MET])  # deliberately not pT-ordered
    return compute_features(ev, config=CFG)[0]


def test_variant_of_constructed_events_is_run2_without_pfcands():
    ev = make_events(muons=[[MU1]], met=[MET])
    assert schema.detect_variant(schema.flat_branch_names(ev)).name == "run2"


def test_dimuon_lepton_sums(dimuon):
    # M^2 = 2 pT1 pT2 (cosh(deta) - cos(dphi)) for massless particles
    m_mumu = math.sqrt(2 * 50 * 35 * (math.cosh(1.0) - math.cos(math.pi / 2)))
    assert dimuon["n_mu"] == 2
    assert dimuon["m_mu"] == pytest.approx(m_mumu, rel=1e-5)
    assert dimuon["pt_tot_mu"] == pytest.approx(math.hypot(50, 35), rel=1e-6)
    assert dimuon["n_ele"] == 0
    assert dimuon["m_ele"] == 0
    assert dimuon["pt_tot_ele"] == 0


def test_dimuon_trigger_lepton_and_met(dimuon):
    # both muons are selected (Iso < 0.45); the harder one, MU1, is the trigger lepton
    assert dimuon["pt_lep"] == pytest.approx(50)
    assert dimuon["charge_lep"] == -1
    assert dimuon["is_ele"] == 0
    # isolation from pfRelIso03 (no PFCands): charged 0.03, neutral = all - chg = 0.02, photon 0
    assert dimuon["iso_ch"] == pytest.approx(0.03, abs=1e-7)
    assert dimuon["iso_neu"] == pytest.approx(0.02, abs=1e-7)
    assert dimuon["iso_gamma"] == 0
    assert dimuon["iso"] == pytest.approx(0.05, abs=1e-7)
    # MET (20 GeV, phi = pi) is anti-parallel to the lepton at phi = 0
    assert dimuon["met_par"] == pytest.approx(-20, abs=1e-5)
    assert dimuon["met_perp"] == pytest.approx(0, abs=1e-5)
    assert dimuon["mt"] == pytest.approx(math.sqrt(2 * 50 * 20 * 2), rel=1e-6)
    assert dimuon["met"] == pytest.approx(20)
    # S_T: both muons have pT > 30 and |eta| < 2.6; no jets
    assert dimuon["st"] == pytest.approx(85)
    assert dimuon["ht"] == 0
    assert dimuon["n_jets"] == 0
    assert dimuon["n_ch_had"] == -1
    assert dimuon["n_neu_had"] == -1


def test_trigger_lepton_is_the_hardest_isolated_one():
    # the harder muon (Iso 0.30) fails a trigger isolation of 0.1: the softer isolated one is chosen
    hard = {**MU1, "pfRelIso03_all": 0.30, "pfRelIso03_chg": 0.2}
    soft = {**MU2, "pfRelIso03_all": 0.05, "pfRelIso03_chg": 0.05}
    ev = make_events(muons=[[hard, soft]], met=[MET])
    cfg = AnalysisConfig(objects=dataclasses.replace(CFG.objects, trigger_iso_max=0.1))
    f = compute_features(ev, config=cfg)[0]
    assert f["pt_lep"] == pytest.approx(35)
    assert f["charge_lep"] == 1
    assert f["iso"] == pytest.approx(0.05)
    # with the default trigger isolation (0.45) the harder muon is the trigger lepton
    assert compute_features(ev, config=CFG)[0]["pt_lep"] == pytest.approx(50)
    # a lepton above the selected-lepton isolation (0.45) is no lepton at all
    lone = make_events(muons=[[{**MU1, "pfRelIso03_all": 0.46}]], met=[MET])
    f = compute_features(lone, config=CFG)[0]
    assert f["n_mu"] == 0
    assert f["pt_lep"] == 0


def test_dimuon_rmm_every_cell_type(dimuon):
    r = np.asarray(dimuon["rmm"], dtype=np.float64)
    assert r.shape == (51, 51)
    i1, i2 = 1 + 2 * 10, 1 + 2 * 10 + 1  # muons are type 2
    expected = np.zeros((51, 51))
    expected[0, 0] = 20 / SQRT_S  # MET
    expected[0, i1] = math.sqrt((50 + 20) ** 2 - (50 - 20) ** 2 - 0) / SQRT_S  # m_T row
    expected[0, i2] = math.sqrt((35 + 20) ** 2 - (0 - 20) ** 2 - 35**2) / SQRT_S
    expected[i1, 0] = math.cosh(0.0) - 1  # h_L column (0 for y = 0)
    expected[i2, 0] = math.cosh(1.0) - 1
    expected[i1, i1] = 50 / SQRT_S  # E_T of the leading muon
    expected[i2, i2] = (50 - 35) / (50 + 35)  # imbalance of the second
    expected[i1, i2] = math.sqrt(2 * 50 * 35 * math.cosh(1.0)) / SQRT_S  # mass above the diagonal
    expected[i2, i1] = math.cosh((0.0 - 1.0) / 2) - 1  # rapidity term below
    np.testing.assert_allclose(r, expected, rtol=2e-6, atol=1e-9)
    assert np.count_nonzero(r) == 8
    # the 14 leading-object masses read the mu-mu cell
    k = rmm_mod.M_LEAD_NAMES.index("m_mu_mu")
    assert dimuon["m_lead_objects"][k] == pytest.approx(math.sqrt(2 * 50 * 35 * math.cosh(1.0)), rel=1e-5)
    assert dimuon["m_mu_mu"] == pytest.approx(dimuon["m_lead_objects"][k], rel=1e-6)


JET = {"pt": 100.0, "eta": 0.5, "phi": 1.0, "mass": 10.0, "btagDeepFlavB": 0.1}
BJET = {"pt": 60.0, "eta": -0.5, "phi": -1.0, "mass": 5.0, "btagDeepFlavB": 0.9}
ELE = {"pt": 40.0, "eta": 0.2, "phi": 2.0, "mass": 0.0, "charge": 1, "pfRelIso03_all": 0.01, "pfRelIso03_chg": 0.0}
PHO = {"pt": 45.0, "eta": 0.0, "phi": -2.0, "mass": 0.0}


def _v(o):
    return vector.obj(pt=o["pt"], eta=o["eta"], phi=o["phi"], mass=o["mass"])


def test_mixed_event_types_positions_and_masses():
    ev = make_events(muons=[[]], electrons=[[ELE]], photons=[[PHO]], jets=[[BJET, JET]], met=[(0.0, 0.0)])
    f = compute_features(ev, config=CFG)[0]
    r = np.asarray(f["rmm"], dtype=np.float64)
    ij, ib, ie, ig = 1, 11, 31, 41  # light jet, b-jet, electron, photon slots
    # with zero MET the m_T cell is sqrt(E_T^2 - pT^2) = the object mass: only the massive jets
    assert np.count_nonzero(r[0, :]) == 2
    assert r[0, ij] == pytest.approx(JET["mass"] / SQRT_S, rel=1e-4)
    assert r[0, ib] == pytest.approx(BJET["mass"] / SQRT_S, rel=1e-4)
    for a, oa in ((ij, JET), (ib, BJET), (ie, ELE), (ig, PHO)):
        assert r[a, a] == pytest.approx(math.hypot(oa["pt"], oa["mass"]) / SQRT_S, rel=1e-6)
        assert r[a, 0] == pytest.approx(math.cosh(_v(oa).rapidity) - 1, rel=1e-5)
    for (a, oa), (b, ob) in [
        ((ij, JET), (ib, BJET)),
        ((ij, JET), (ie, ELE)),
        ((ib, BJET), (ig, PHO)),
        ((ie, ELE), (ig, PHO)),
    ]:
        assert r[a, b] == pytest.approx((_v(oa) + _v(ob)).mass / SQRT_S, rel=1e-5)
        assert r[b, a] == pytest.approx(math.cosh((_v(oa).rapidity - _v(ob).rapidity) / 2) - 1, rel=1e-4, abs=1e-9)
    # HLF: jets, b-jets, M_J, m_jj, S_T, photons, HLF-24 H_T
    # N_gamma counts photon PF candidates (Knapp app. A): -1 without them; the identified photon
    # is in S_T and in the RMM above
    assert f["n_jets"] == 2
    assert f["n_bjets"] == 1
    assert f["n_photons"] == -1
    assert f["m_jets"] == pytest.approx((_v(JET) + _v(BJET)).mass, rel=1e-6)
    assert f["mjj"] == pytest.approx((_v(JET) + _v(BJET)).mass, rel=1e-6)
    assert f["ht"] == pytest.approx(160)
    assert f["st"] == pytest.approx(160 + 40 + 45)
    assert f["is_ele"] == 1
    assert f["pt_lep"] == pytest.approx(40)
    assert f["charge_lep"] == 1
    assert f["m_j_b"] == pytest.approx((_v(JET) + _v(BJET)).mass, rel=1e-5)
    assert f["m_e_gamma"] == pytest.approx((_v(ELE) + _v(PHO)).mass, rel=1e-5)
    assert f["m_j_j"] == 0  # only one light jet


def test_adc_objects_ordering_padding_and_truncation():
    rng = np.random.default_rng(3)
    eles = [
        {"pt": float(p), "eta": 0.1 * k, "phi": 0.2 * k, "mass": 0.0}
        for k, p in enumerate(rng.permutation([5, 50, 20, 35, 10, 7]))
    ]
    # jets far from the electrons (dR > 0.4: the overlap removal keeps them), inside |eta| < 4
    jets = [
        {"pt": float(p), "eta": 3.0, "phi": 0.0, "mass": 1.0} for p in rng.permutation(np.arange(16, 16 + 13 * 5, 5))
    ]
    mus = [{"pt": 4.0, "eta": -1.0, "phi": 1.0, "mass": 0.1}, {"pt": 2.0, "eta": 0.0, "phi": 0.0, "mass": 0.1}]
    ev = make_events(muons=[mus, []], electrons=[eles, []], jets=[jets, []], met=[(33.0, -1.5), (0.0, 0.0)])
    objs = ak.to_numpy(compute_features(ev, config=CFG)["objects"])
    assert objs.shape == (2, 19, 3)
    assert objs.dtype == np.float32
    first = objs[0]
    np.testing.assert_allclose(first[0], [33.0, 0.0, -1.5])  # MET row, eta = 0
    np.testing.assert_allclose(first[1:5, 0], [50, 35, 20, 10])  # 4 leading electrons of 6
    np.testing.assert_allclose(first[5:9, 0], [4, 0, 0, 0])  # muon pT 2 < 3 GeV dropped; padding
    np.testing.assert_allclose(first[9:19, 0], 76.0 - 5.0 * np.arange(10))  # 10 leading jets of 13 (16 ... 76 GeV)
    assert np.all(np.diff(first[9:19, 0]) < 0)
    assert not objs[1].any()  # empty event: all zeros


def test_pf_isolation_and_multiplicities():
    # the file's pfRelIso03_* differ from the PF-candidate sums below: iso, iso_ch, iso_neu come from the
    # branches whatever PF candidates a file has; only iso_gamma (and the multiplicities) from the candidates
    mu = {"pt": 50.0, "eta": 0.0, "phi": 0.0, "mass": 0.0, "charge": 1, "pfRelIso03_all": 0.11, "pfRelIso03_chg": 0.07}
    pf = [
        {"pt": 50.0, "eta": 0.0, "phi": 0.0, "charge": 1, "pdgId": -13},  # the muon itself
        {"pt": 2.0, "eta": 0.1, "phi": 0.0, "charge": 1, "pdgId": 211},  # dR 0.1: charged
        {"pt": 1.0, "eta": 0.0, "phi": 0.2, "charge": 0, "pdgId": 130},  # dR 0.2: neutral hadron
        {"pt": 0.5, "eta": -0.25, "phi": 0.0, "charge": 0, "pdgId": 22},  # dR 0.25: photon
        {"pt": 5.0, "eta": 0.5, "phi": 0.0, "charge": -1, "pdgId": -211},  # dR 0.5: outside the cone
        {"pt": 4.0, "eta": 0.0, "phi": -0.15, "charge": -1, "pdgId": 11},  # dR 0.15: an electron, in no sum
        {"pt": 3.0, "eta": 0.15, "phi": 0.0, "charge": 1, "pdgId": 13},  # dR 0.15: another muon, in no sum
    ]
    ev = make_events(muons=[[mu]], met=[(10.0, 0.0)], pfcands=[pf])
    assert schema.detect_variant(schema.flat_branch_names(ev)).name == "generated"
    f = compute_features(ev, config=CFG)[0]
    assert f["iso_ch"] == pytest.approx(0.07)
    assert f["iso_neu"] == pytest.approx(0.11 - 0.07)
    assert f["iso"] == pytest.approx(0.11)
    assert f["iso_gamma"] == pytest.approx(0.5 / 50)
    # CMS PF isolation (as pfRelIso03_*): other electrons and muons enter neither sum
    assert f["n_ch_had"] == 2
    assert f["n_neu_had"] == 1
    assert f["n_photons"] == 1


def test_pf_isolation_across_the_phi_boundary():
    """A lepton at phi = +-3.1 and candidates on the other side of +-pi: Delta phi = 2 pi - 6.2 = 0.083."""
    from cms_anomaly.processors.objects import pf_isolation

    leptons = ak.Array([[{"pt": 40.0, "eta": 0.0, "phi": 3.1}], [{"pt": 40.0, "eta": 0.0, "phi": -3.1}]])
    pf = ak.Array(
        [
            [
                {"pt": 2.0, "eta": 0.0, "phi": -3.1, "charge": 1, "pdgId": 211},  # dR 0.083
                {"pt": 1.0, "eta": 0.1, "phi": -3.0, "charge": 0, "pdgId": 22},  # dR 0.21
                {"pt": 8.0, "eta": 0.0, "phi": 2.75, "charge": 0, "pdgId": 130},  # dR 0.35: outside
            ],
            [{"pt": 3.0, "eta": 0.0, "phi": 3.1, "charge": -1, "pdgId": -211}],  # dR 0.083
        ]
    )
    iso = pf_isolation(leptons, pf, cone=0.3)
    assert ak.to_list(ak.flatten(iso["iso_ch"])) == pytest.approx([2 / 40, 3 / 40])
    assert ak.to_list(ak.flatten(iso["iso_gamma"])) == pytest.approx([1 / 40, 0.0])
    assert ak.to_list(ak.flatten(iso["iso_neu"])) == pytest.approx([0.0, 0.0])


def test_missing_branch_names_branch_and_feature():
    ev = make_events(muons=[[MU1]], met=[MET])
    ev = ak.with_field(ev, ev.Muon[["pt", "eta", "phi", "mass", "charge"]], "Muon")  # no isolation branches
    with pytest.raises(schema.MissingBranchError, match=r"Muon_pfRelIso03_all.*feature 'iso'"):
        compute_features(ev, config=CFG)


def test_empty_chunk_gives_empty_regular_arrays():
    ev = make_events(muons=[[MU1]], met=[MET])[:0]
    f = compute_features(ev, config=CFG)
    assert len(f) == 0
    assert set(SCALAR_FEATURES) | set(ARRAY_FEATURES) <= set(ak.fields(f))
    assert ak.to_numpy(f["rmm"]).shape == (0, 51, 51)


def test_feature_sets_have_the_contract_names():
    assert HLF21[:6] == ("pt_lep", "iso_ch", "iso_neu", "iso_gamma", "charge_lep", "is_ele")
    assert len(HLF21) == 21
    assert HLF24[0] == "ht"
    assert HLF24[-1] == "is_ele"
    assert len(HLF24) == 25
    assert len(rmm_mod.M_LEAD_NAMES) == 14


def test_rmm_cell_mask_round_trip():
    rmm = np.zeros((3, 51, 51), np.float32)
    rmm[0, 0, 0] = 1
    rmm[2, 5, 7] = 2
    mask = rmm_mod.occupied_cells(rmm)
    assert mask.sum() == 2
    kept = rmm_mod.apply_cell_mask(rmm, mask)
    np.testing.assert_array_equal(kept, [[1, 0], [0, 0], [0, 2]])


def test_rmm_keeps_the_ten_leading_objects_of_a_type():
    """12 light jets (pT 150 ... 40 GeV, unordered in the input): the RMM's light-jet block holds the
    10 leading, in pT order (diagonal: E_T / sqrt(s) of the first, then the imbalance to the one
    before), and neither of the two softest jets enters any cell."""
    pts = [40.0 + 10.0 * k for k in range(12)]
    order = np.random.default_rng(7).permutation(12)
    jets = [{"pt": pts[k], "eta": 0.0, "phi": -3.0 + 0.5 * k, "mass": 0.0, "btagDeepFlavB": 0.0} for k in order]
    ev = make_events(muons=[[]], electrons=[[]], photons=[[]], jets=[jets], met=[(0.0, 0.0)])
    r = np.asarray(compute_features(ev, config=CFG)[0]["rmm"], dtype=np.float64)
    leading = sorted(pts, reverse=True)[:10]
    diag = np.diag(r)[1:11]
    assert diag[0] == pytest.approx(leading[0] / SQRT_S, rel=1e-6)
    for i in range(1, 10):
        assert diag[i] == pytest.approx((leading[i - 1] - leading[i]) / (leading[i - 1] + leading[i]), rel=1e-5)
    assert np.count_nonzero(r[11:, :]) == 0  # no b-jet, lepton or photon block: the 11th jet spills nowhere
    # the mass cell of jets 1 and 10 is theirs (massless, same eta: m^2 = 2 pT1 pT10 (1 - cos dphi))
    phi = {p: -3.0 + 0.5 * k for k, p in zip(order, [pts[k] for k in order], strict=True)}
    m = math.sqrt(2 * leading[0] * leading[9] * (1 - math.cos(phi[leading[0]] - phi[leading[9]])))
    assert r[1, 10] == pytest.approx(m / SQRT_S, rel=1e-5)


def test_all_fourteen_leading_masses_by_hand():
    """Two light jets, two b-jets, two muons, two electrons and a photon, far apart: each of the 14
    named masses is the invariant mass of the leading object(s) of its pair of types (the two leading
    for a pair of one type), computed here with ``vector``; given in reverse pT order."""
    phis = iter(np.linspace(-3.0, 3.0, 9))
    lep = {"mass": 0.0, "pfRelIso03_all": 0.01, "pfRelIso03_chg": 0.0}
    j1, j2 = ({"pt": pt, "eta": 0.3, "phi": next(phis), "mass": 8.0, "btagDeepFlavB": 0.05} for pt in (120.0, 80.0))
    b1, b2 = ({"pt": pt, "eta": -0.4, "phi": next(phis), "mass": 5.0, "btagDeepFlavB": 0.95} for pt in (90.0, 60.0))
    m1, m2 = ({"pt": pt, "eta": 1.1, "phi": next(phis), "charge": c, **lep} for pt, c in ((70.0, -1), (40.0, 1)))
    e1, e2 = ({"pt": pt, "eta": -1.2, "phi": next(phis), "charge": c, **lep} for pt, c in ((55.0, 1), (32.0, -1)))
    gam = {"pt": 48.0, "eta": 0.8, "phi": next(phis), "mass": 0.0}
    ev = make_events(
        muons=[[m2, m1]], electrons=[[e2, e1]], photons=[[gam]], jets=[[b2, j2, b1, j1]], met=[(10.0, 0.0)]
    )
    f = compute_features(ev, config=CFG)[0]
    leading = {"j": (j1, j2), "b": (b1, b2), "mu": (m1, m2), "e": (e1, e2), "gamma": (gam,)}
    for name in rmm_mod.M_LEAD_NAMES:
        a, b = name[2:].split("_")
        pair = leading[a][:2] if a == b else (leading[a][0], leading[b][0])
        expected = (_v(pair[0]) + _v(pair[1])).mass
        assert f[name] == pytest.approx(expected, rel=1e-5), name
    assert f["n_jets"] == 4
    assert f["n_bjets"] == 2


def test_rmm_summary_equals_the_stored_matrices_on_real_events(real_nanoaod_files):
    """``rmm_summary`` (one scratch matrix per event) against ``build_rmm`` + ``leading_masses`` + the
    weighted count of the non-zero cells of the stored (N, 51, 51) matrices (numpy, in event order), on the
    events of every real NanoAOD sample file with random weights: bit-identical masses, sums of weights and
    sums of squared weights per cell; with ``keep_matrices`` the same numbers and the stored matrices."""
    from cms_anomaly.processors import histograms
    from cms_anomaly.processors.features import rmm_collections
    from cms_anomaly.processors.objects import build_objects
    from coffea.nanoevents import NanoEventsFactory

    rng = np.random.default_rng(11)
    occupied = 0
    for name, path in real_nanoaod_files.items():
        events = NanoEventsFactory.from_root(
            {str(path): "Events"}, schemaclass=schema.AnalysisNanoAODSchema, mode="eager"
        ).events()
        objs = build_objects(events, config=CFG.objects, source=str(path))
        colls = rmm_collections(objs, config=CFG)
        weights = rng.uniform(0.1, 3.0, len(objs))
        full = rmm_mod.build_rmm(colls, objs.met_pt, objs.met_phi)
        summary = rmm_mod.rmm_summary(colls, objs.met_pt, objs.met_phi, weights)
        np.testing.assert_array_equal(summary.leading, rmm_mod.leading_masses(full), err_msg=name)
        h_full, h_summary = histograms.rmm_occupancy_hist(dataset=name), histograms.rmm_occupancy_hist(dataset=name)
        nonzero = full != 0
        histograms.add_rmm_occupancy(
            h_full,
            (weights[:, None, None] * nonzero).sum(axis=0),
            (weights[:, None, None] ** 2 * nonzero).sum(axis=0),
            dataset=name,
        )
        histograms.add_rmm_occupancy(h_summary, summary.sumw, summary.sumw2, dataset=name)
        kept = rmm_mod.rmm_summary(colls, objs.met_pt, objs.met_phi, weights, keep_matrices=True)
        assert summary.rmm is None
        np.testing.assert_array_equal(kept.rmm, full, err_msg=name)
        for field in ("leading", "sumw", "sumw2"):
            np.testing.assert_array_equal(getattr(kept, field), getattr(summary, field), err_msg=f"{name} {field}")
        np.testing.assert_array_equal(h_summary.values(), h_full.values(), err_msg=name)
        np.testing.assert_array_equal(h_summary.variances(), h_full.variances(), err_msg=name)
        occupied += int(np.count_nonzero(summary.sumw))
        # the lower triangle (rapidity differences) and the MET row and column are all counted
        assert np.count_nonzero(np.tril(summary.sumw, -1)[1:, 1:]) > 0, name
        assert np.count_nonzero(summary.sumw[0, 1:]) == np.count_nonzero(summary.sumw[1:, 0]) > 0, name
    assert occupied > 100
