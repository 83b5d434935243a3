"""Every cut of the named selections at its threshold, on hand-built events (one unit above and below)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from cms_anomaly.processors import selections
from cms_anomaly.processors.config import AnalysisConfig
from cms_anomaly.processors.features import scalar_features
from cms_anomaly.processors.objects import build_objects
from nanoaod_events import ele, event, fatjet, jet, mu

CFG = AnalysisConfig()
# two jets far from the leptons (dR > 1) and from each other
JETS = (jet(pt=31.0, eta=1.0, phi=2.0), jet(pt=31.0, eta=-1.0, phi=-2.0))


def passes(name: str, ev) -> bool:
    objs = build_objects(ev, config=CFG.objects)
    feats = scalar_features(objs, config=CFG)
    sel = selections.get_selection(name)
    packed = selections.evaluate(sel, objs, feats, config=CFG.selections)
    return bool(selections.passing(packed, sel, len(objs))[0])


@pytest.mark.parametrize(
    ("lepton", "expected"),
    [
        (mu(pt=23.01, iso=0.44), True),
        (mu(pt=22.99, iso=0.1), False),
        (mu(pt=40.0, iso=0.449), True),
        (mu(pt=40.0, iso=0.451), False),
        (ele(pt=23.01, iso=0.1), True),
        (ele(pt=22.99, iso=0.1), False),
    ],
)
def test_single_lepton_thresholds(lepton, expected):
    """Cerri: one lepton with pT > 23 GeV and Iso < 0.45."""
    ev = event(muons=[lepton] if lepton["mass"] > 0.01 else [], electrons=[lepton] if lepton["mass"] < 0.01 else [])
    assert passes("single_lepton", ev) is expected


@pytest.mark.parametrize(
    ("muons", "expected"),
    [
        ([mu(pt=27.01, iso=0.249)], True),
        ([mu(pt=26.99, iso=0.1)], False),  # passes single_lepton (pT > 23), not the trigger
        ([mu(pt=40.0, iso=0.251)], False),  # passes single_lepton (Iso < 0.45), not the trigger
        ([mu(pt=24.0, iso=0.1), mu(pt=30.0, iso=0.3, phi=3.0)], False),  # no lepton passes both trigger cuts
        ([mu(pt=24.0, iso=0.1), mu(pt=30.0, iso=0.2, phi=3.0)], True),  # the second lepton fires it
        ([mu(pt=40.0, iso=0.5)], False),  # fails single_lepton itself
    ],
)
def test_single_lepton_trigger_thresholds(muons, expected):
    """Cerri Table 5's reference trigger on top of single_lepton: a lepton with pT > 27 GeV and Iso < 0.25."""
    assert passes("single_lepton_slt", event(muons=muons)) is expected


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, True),
        ({"pt": 22.99}, False),
        ({"iso": 0.1001}, False),
        ({"iso": 0.0999}, True),
        ({"eta": 1.41}, False),
        ({"eta": -1.39}, True),
    ],
)
def test_top_rediscovery_muon_thresholds(change, expected):
    """Knapp sec. 4: a muon with pT > 23 GeV, Iso < 0.1, |eta| < 1.4 and >= 2 jets (pT > 30, |eta| < 2.4)."""
    muon = mu(**{"pt": 30.0, "iso": 0.05, "eta": 0.0, "phi": 0.0, **change})
    assert passes("top_rediscovery", event(muons=[muon], jets=JETS)) is expected


@pytest.mark.parametrize(
    ("jets", "expected"),
    [
        (JETS, True),
        ((jet(pt=29.99, eta=1.0, phi=2.0), JETS[1]), False),
        ((jet(pt=31.0, eta=2.41, phi=2.0), JETS[1]), False),
        ((jet(pt=31.0, eta=2.39, phi=2.0), JETS[1]), True),
        ((JETS[0], jet(pt=31.0, eta=0.1, phi=0.1)), False),  # the second jet is the muon: removed, one jet left
    ],
)
def test_top_rediscovery_jet_thresholds(jets, expected):
    assert passes("top_rediscovery", event(muons=[mu(pt=30.0, iso=0.05)], jets=jets)) is expected


def test_top_rediscovery_needs_a_muon_not_an_electron():
    assert not passes("top_rediscovery", event(electrons=[ele(pt=40.0, eta=0.0, phi=0.0)], jets=JETS))


@pytest.mark.parametrize(
    ("lepton", "expected"),
    [
        (mu(pt=30.01, iso=0.14), True),
        (mu(pt=29.99, iso=0.05), False),
        (mu(pt=40.0, iso=0.149), True),
        (mu(pt=40.0, iso=0.151), False),
        (ele(pt=30.01, iso=0.05), True),
    ],
)
def test_rmm_lepton_thresholds(lepton, expected):
    """Chekanov: an isolated lepton (Iso < 0.15) with pT > 30 GeV and >= 2 jets with pT > 30 GeV."""
    is_ele = lepton["mass"] < 0.01
    ev = event(
        muons=[] if is_ele else [{**lepton, "eta": 0.0, "phi": 0.0}],
        electrons=[{**lepton, "eta": 0.0, "phi": 0.0}] if is_ele else [],
        jets=JETS,
    )
    assert passes("rmm_lepton", ev) is expected


@pytest.mark.parametrize(("pts", "expected"), [((1200.1, 900.0), True), ((1199.9, 900.0), False), ((1500.0,), False)])
def test_dijet_thresholds(pts, expected):
    """LHC Olympics: leading large-R jet pT > 1.2 TeV and two large-R jets."""
    fats = [fatjet(pt=p, eta=0.0, phi=k * math.pi) for k, p in enumerate(pts)]
    assert passes("dijet", event(fatjets=fats)) is expected


def test_fat_jet_features_by_hand():
    """m_J of the two leading large-R jets, m_JJ and the N-subjettiness ratios of each."""
    import vector

    j1, j2 = (
        fatjet(pt=1300.0, eta=0.5, phi=0.0, mass=500.0, tau1=0.5, tau2=0.2, tau3=0.15),
        fatjet(pt=1100.0, eta=-0.3, phi=3.0, mass=100.0, tau1=0.6, tau2=0.3, tau3=0.1),
    )
    objs = build_objects(event(fatjets=[j2, j1]), config=CFG.objects)
    f = scalar_features(objs, config=CFG)
    v1 = vector.obj(pt=1300.0, eta=0.5, phi=0.0, mass=500.0)
    v2 = vector.obj(pt=1100.0, eta=-0.3, phi=3.0, mass=100.0)
    assert f["mJ1"][0] == pytest.approx(500.0)
    assert f["mJ2"][0] == pytest.approx(100.0)
    assert f["mJJ"][0] == pytest.approx((v1 + v2).mass, rel=1e-5)
    assert f["tau21_j1"][0] == pytest.approx(0.4)
    assert f["tau32_j1"][0] == pytest.approx(0.75)
    assert f["tau21_j2"][0] == pytest.approx(0.5)
    assert f["tau32_j2"][0] == pytest.approx(1 / 3)
    assert f["n_fatjets"][0] == 2


def test_trigger_lepton_eta_and_charge():
    f = scalar_features(
        build_objects(event(electrons=[ele(pt=50.0, eta=-1.7, phi=0.3)]), config=CFG.objects), config=CFG
    )
    assert f["eta_lep"][0] == pytest.approx(-1.7)
    assert f["is_ele"][0] == 1
    assert f["charge_lep"][0] == 1
    assert np.isclose(f["pt_lep"][0], 50.0)


def test_rmm_keeps_the_ten_leading_objects_of_a_type():
    """12 light jets: slots 1-10 hold the 10 leading ones (E_T, then pairwise imbalances), the 11th and 12th
    are nowhere (no eleventh slot: the b-jet block starts at index 11)."""
    from cms_anomaly.processors.features import array_features

    pts = [200.0 - 10.0 * k for k in range(12)]
    jets = [jet(pt=p, eta=-2.0 + 0.35 * k, phi=-3.0 + 0.5 * k, btag=0.0) for k, p in enumerate(pts)]
    objs = build_objects(event(jets=jets), config=CFG.objects)
    assert len(objs.jets[0]) == 12
    rmm = np.asarray(array_features(objs, config=CFG)["rmm"][0], dtype=np.float64)
    diag = np.diag(rmm)
    et0 = math.hypot(pts[0], 8.0)  # E_T of the leading jet (mass 8 GeV)
    assert diag[1] == pytest.approx(et0 / 13000.0, rel=1e-5)
    for k in range(1, 10):
        e_prev, e_k = math.hypot(pts[k - 1], 8.0), math.hypot(pts[k], 8.0)
        assert diag[1 + k] == pytest.approx((e_prev - e_k) / (e_prev + e_k), rel=1e-4)
    assert not rmm[11:, 11:].any()
    assert not rmm[11:, :].any()
    assert np.count_nonzero(rmm[1:11, 1:11]) == 100  # 10 x 10 block complete


def _generated_ttbar(generated_cocktail):
    """The first generated ttbar file of the cocktail as eager NanoEvents."""
    import warnings

    from cms_anomaly.processors.schema import AnalysisNanoAODSchema
    from coffea.nanoevents import NanoEventsFactory

    path = min((generated_cocktail / "ttbar").glob("*.root"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return NanoEventsFactory.from_root(
            {str(path): "Events"}, schemaclass=AnalysisNanoAODSchema, mode="eager"
        ).events()


def test_reclustering_reproduces_the_detector_jets(generated_cocktail):
    """The generated Jet collection is anti-kT 0.4 on all PF candidates: re-clustering the file's PFCands
    with fastjet must give the same jets (float32 precision)."""
    import awkward as ak
    from cms_anomaly.processors.objects import recluster_jets

    ev = _generated_ttbar(generated_cocktail)
    ours = recluster_jets(ev.PFCands, radius=0.4, pt_min=15.0)
    theirs = ev.Jet[ak.argsort(ev.Jet.pt, axis=1, ascending=False)]
    assert ak.all(ak.num(ours) == ak.num(theirs))
    assert ak.sum(ak.num(ours)) > 500
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(ours.pt)), ak.to_numpy(ak.flatten(theirs.pt)), rtol=1e-5)
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(ours.eta)), ak.to_numpy(ak.flatten(theirs.eta)), atol=1e-4)


def test_build_objects_with_reclustered_jets_equals_the_file_jets(generated_cocktail):
    """Objects from re-clustered PF candidates equal those from the file's Jet collection (without a jet ID,
    which re-clustered jets do not have): same jets after the overlap removal, the b tag matched from the
    NanoAOD jets."""
    import dataclasses

    import awkward as ak
    from cms_anomaly.processors.objects import build_objects

    ev = _generated_ttbar(generated_cocktail)
    config = dataclasses.replace(CFG.objects, jet_id="none")
    nano = build_objects(ev, config=config)
    clustered = build_objects(ev, config=dataclasses.replace(config, recluster_jets=True))
    for name in ("jets", "bjets", "all_jets"):
        a, b = getattr(nano, name), getattr(clustered, name)
        assert ak.num(a).tolist() == ak.num(b).tolist(), name
        np.testing.assert_allclose(ak.to_numpy(ak.flatten(b.pt)), ak.to_numpy(ak.flatten(a.pt)), rtol=1e-5)
        np.testing.assert_array_equal(ak.to_numpy(ak.flatten(b.btag)), ak.to_numpy(ak.flatten(a.btag)))
    assert ak.sum(ak.num(clustered.bjets)) > 0
