"""CMS objects: identification, isolation and overlap removal on hand-built events and real files.

Every expectation is set by the construction of the event (an object placed inside or outside a
cone, a flag set or not), not by the code under test.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings

import awkward as ak
import numpy as np
import pytest
from cms_anomaly.processors import schema
from cms_anomaly.processors.config import AnalysisConfig, ConfigError, ObjectConfig
from cms_anomaly.processors.features import compute_features
from cms_anomaly.processors.objects import build_objects, delta_r
from nanoaod_events import event, jet, mu, pho

CFG = AnalysisConfig()


def objects(ev, config=CFG):
    return build_objects(ev, config=config.objects)


# ----------------------------------------------------------------------------- overlap removal
@pytest.mark.parametrize(("deta", "kept"), [(0.39, False), (0.41, True)])
def test_muon_inside_the_jet_cone_removes_the_jet(deta, kept):
    o = objects(event(muons=[mu(eta=0.0)], jets=[jet(eta=deta), jet(eta=2.0)]))
    etas = ak.to_list(o.jets.eta[0])
    assert len(etas) == (2 if kept else 1)
    assert etas[-1] == pytest.approx(2.0)
    assert ak.num(o.muons)[0] == 1  # the lepton stays


def test_lepton_that_is_also_a_jet_counts_once_in_st_and_not_in_n_jets():
    # the muon (50 GeV) was clustered into a 55 GeV jet: CMS jets contain the leptons
    ev = event(muons=[mu(pt=50.0, iso=0.05)], jets=[jet(pt=55.0, eta=0.01, phi=0.01), jet(pt=45.0, eta=-1.5, phi=2.5)])
    f = compute_features(ev, config=CFG)[0]
    assert f["n_jets"] == 1
    assert f["ht"] == pytest.approx(45.0)
    assert f["st"] == pytest.approx(50.0 + 45.0)


def test_non_isolated_or_soft_leptons_do_not_remove_jets():
    # a muon from a b decay (Iso 0.6: not a selected lepton) and an isolated 8 GeV muon
    # (below the 10 GeV overlap threshold) leave the jets alone
    ev = event(
        muons=[mu(pt=20.0, iso=0.6), mu(pt=8.0, eta=1.0, phi=1.0, iso=0.01)], jets=[jet(eta=0.1), jet(eta=1.1, phi=1.0)]
    )
    o = objects(ev)
    assert ak.num(o.jets)[0] == 2
    assert ak.to_list(o.muons.pt[0]) == pytest.approx([8.0])


def test_b_tag_only_on_clean_jets():
    ev = event(muons=[mu(eta=0.0, phi=0.0)], jets=[jet(eta=0.05, btag=0.95), jet(eta=-1.0, phi=3.0, btag=0.01)])
    f = compute_features(ev, config=CFG)[0]
    assert f["n_bjets"] == 0
    assert f["n_jets"] == 1


def test_isolated_photon_removes_its_jet_and_a_photon_near_a_lepton_is_removed():
    ev = event(
        muons=[mu(eta=0.0, phi=0.0)],
        photons=[pho(pt=50.0, eta=1.0, phi=1.0), pho(pt=30.0, eta=0.0, phi=0.2)],
        jets=[jet(pt=52.0, eta=1.02, phi=1.01), jet(pt=80.0, eta=-1.0, phi=-2.0)],
    )
    o = objects(ev)
    assert ak.to_list(o.photons.pt[0]) == pytest.approx([50.0])  # the FSR-like photon at dR 0.2 is gone
    assert ak.to_list(o.jets.pt[0]) == pytest.approx([80.0])  # the photon's own jet is gone


@pytest.mark.parametrize(("muon_pt", "removed"), [(250.0, True), (150.0, False)])
def test_fat_jets_are_removed_when_a_lepton_inside_carries_most_of_their_pt(muon_pt, removed):
    fat = {
        "pt": 400.0,
        "eta": 0.0,
        "phi": 0.0,
        "mass": 90.0,
        "msoftdrop": 85.0,
        "tau1": 0.3,
        "tau2": 0.1,
        "tau3": 0.05,
        "jetId": 6,
    }
    far = {**fat, "eta": 0.0, "phi": math.pi}
    o = objects(event(muons=[mu(pt=muon_pt, eta=0.9, phi=0.0)], fatjets=[fat, far]))  # dR 0.9 < R = 1.0
    # 250 GeV of a 400 GeV jet: the jet is the muon; 150 GeV: an unrelated muon at its edge
    expected = [math.pi] if removed else [0.0, math.pi]
    assert sorted(ak.to_list(o.fatjets.phi[0])) == pytest.approx(expected)


def test_no_selected_jet_near_a_selected_lepton_or_photon_by_construction():
    rng = np.random.default_rng(5)
    leptons = [
        mu(pt=float(rng.uniform(15, 80)), eta=float(rng.uniform(-2, 2)), phi=float(rng.uniform(-3, 3)))
        for _ in range(3)
    ]
    jets = [
        jet(pt=float(rng.uniform(30, 200)), eta=float(rng.uniform(-2.4, 2.4)), phi=float(rng.uniform(-3, 3)))
        for _ in range(40)
    ]
    o = objects(event(muons=leptons, jets=jets))
    expected = sum(
        all(math.hypot(j["eta"] - m["eta"], math.remainder(j["phi"] - m["phi"], 2 * math.pi)) >= 0.4 for m in leptons)
        for j in jets
    )
    assert ak.num(o.jets)[0] == expected < 40


# ----------------------------------------------------------------------------- jet ID
@pytest.mark.parametrize(
    ("jet_id", "level", "kept"),
    [
        (0, "tight", False),
        (2, "tight", True),
        (6, "tight", True),
        (2, "tight_lepveto", False),
        (6, "tight_lepveto", True),
        (0, "none", True),
    ],
)
def test_jet_id_bits(jet_id, level, kept):
    cfg = AnalysisConfig(objects=dataclasses.replace(CFG.objects, jet_id=level))
    o = objects(event(jets=[jet(jet_id=jet_id)]), cfg)
    assert ak.num(o.jets)[0] == int(kept)


def test_jets_without_an_id_branch_all_pass():
    o = objects(event(jets=[jet(jet_id=0)], jet_fields=()))
    assert ak.num(o.jets)[0] == 1


def test_unknown_id_levels_are_config_errors():
    with pytest.raises(ConfigError, match="jet_id"):
        ObjectConfig(jet_id="loose")
    with pytest.raises(ConfigError, match="muon_id"):
        ObjectConfig(muon_id="soft")


# ----------------------------------------------------------------------------- photons
def test_pi0_photon_inside_a_jet_is_not_a_photon():
    # a 35 GeV photon in the core of a 120 GeV jet: not isolated, fails the cut-based ID
    ev = event(photons=[pho(pt=35.0, eta=0.5, phi=0.5, cut_based=0, iso=2.4)], jets=[jet(pt=120.0, eta=0.52, phi=0.49)])
    o = objects(ev)
    assert ak.num(o.photons)[0] == 0
    assert ak.num(o.jets)[0] == 1
    f = compute_features(ev, config=CFG)[0]
    assert f["st"] == pytest.approx(120.0)
    assert np.count_nonzero(np.asarray(f["rmm"])[41:51]) == 0  # no photon rows in the RMM


@pytest.mark.parametrize(
    ("cut_based", "iso", "kept"), [(1, 0.1, True), (0, 0.1, False), (3, 0.31, False), (3, 0.29, True)]
)
def test_photon_id_and_isolation(cut_based, iso, kept):
    o = objects(event(photons=[pho(cut_based=cut_based, iso=iso)]))
    assert ak.num(o.photons)[0] == int(kept)


@pytest.mark.parametrize(("bitmap", "kept"), [(0, False), (1, True), (7, True), (6, False)])
def test_photon_id_from_the_older_bitmap(bitmap, kept):
    ev = event(photons=[{**pho(), "cutBasedBitmap": bitmap}], photon_fields=("cutBasedBitmap", "pfRelIso03_all"))
    assert ak.num(objects(ev).photons)[0] == int(kept)


def test_photon_pt_threshold():
    o = objects(event(photons=[pho(pt=14.0), pho(pt=16.0, phi=2.0)]))
    assert ak.to_list(o.photons.pt[0]) == pytest.approx([16.0])


# ----------------------------------------------------------------------------- lepton ID
@pytest.mark.parametrize(
    ("flags", "kept"),
    [
        ({"isPFcand": True, "isGlobal": False, "isTracker": True}, True),
        ({"isPFcand": True, "isGlobal": True, "isTracker": False}, True),
        ({"isPFcand": False, "isGlobal": True, "isTracker": True}, False),
        ({"isPFcand": True, "isGlobal": False, "isTracker": False}, False),
    ],
)
def test_loose_muon_from_its_cms_definition(flags, kept):
    # looseId false everywhere, as in the 2015 Open Data conversion: the ingredients decide
    ev = event(muons=[mu(looseId=False, **flags)], muon_fields=("looseId", "isPFcand", "isGlobal", "isTracker"))
    assert ak.num(objects(ev).muons)[0] == int(kept)


@pytest.mark.parametrize(
    ("wp", "flags", "kept"),
    [
        ("medium", {"mediumId": False, "tightId": True}, False),
        ("tight", {"mediumId": False, "tightId": True}, True),
        ("loose", {"looseId": True}, True),
        ("loose", {"looseId": False}, False),
    ],
)
def test_muon_id_working_points(wp, flags, kept):
    cfg = AnalysisConfig(objects=dataclasses.replace(CFG.objects, muon_id=wp))
    ev = event(muons=[mu(**flags)], muon_fields=("looseId", "mediumId", "tightId"))
    assert ak.num(objects(ev, cfg).muons)[0] == int(kept)


def test_electron_id_without_isolation():
    ele = {"pt": 40.0, "eta": 0.3, "phi": 1.0, "mass": 0.0, "charge": 1, "pfRelIso03_all": 0.05, "pfRelIso03_chg": 0.05}
    failed = event(electrons=[{**ele, "mvaFall17V2noIso_WPL": False}], electron_fields=("mvaFall17V2noIso_WPL",))
    passed = event(electrons=[{**ele, "mvaFall17V2noIso_WPL": True}], electron_fields=("mvaFall17V2noIso_WPL",))
    assert ak.num(objects(failed).electrons)[0] == 0
    assert ak.num(objects(passed).electrons)[0] == 1
    no_id = dataclasses.replace(CFG.objects, electron_id=False)
    assert ak.num(build_objects(failed, config=no_id).electrons)[0] == 1


# ----------------------------------------------------------------------------- real and generated files
def _open(path):
    from coffea.nanoevents import NanoEventsFactory

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return NanoEventsFactory.from_root(
            {str(path): "Events"}, schemaclass=schema.AnalysisNanoAODSchema, mode="eager"
        ).events()


def _overlaps(coll: ak.Array, others: ak.Array, dr: float) -> int:
    a, b = ak.unzip(ak.cartesian([coll[["eta", "phi"]], others[["eta", "phi"]]], nested=True))
    return int(ak.sum(ak.any(delta_r(a.eta, a.phi, b.eta, b.phi) < dr, axis=2)))


def _assert_disjoint(o, cfg: ObjectConfig) -> None:
    leptons = ak.concatenate(
        [
            o.muons[o.muons.pt > cfg.overlap_lepton_pt_min][["eta", "phi"]],
            o.electrons[o.electrons.pt > cfg.overlap_lepton_pt_min][["eta", "phi"]],
        ],
        axis=1,
    )
    assert _overlaps(o.all_jets, leptons, 0.4) == 0
    assert _overlaps(o.all_jets, o.photons, 0.4) == 0
    assert _overlaps(o.photons, leptons, 0.4) == 0
    lep_pt = ak.concatenate(
        [
            o.muons[o.muons.pt > cfg.overlap_lepton_pt_min][["eta", "phi", "pt"]],
            o.electrons[o.electrons.pt > cfg.overlap_lepton_pt_min][["eta", "phi", "pt"]],
        ],
        axis=1,
    )
    a, b = ak.unzip(ak.cartesian([o.fatjets[["eta", "phi", "pt"]], lep_pt], nested=True))
    assert ak.sum(ak.any((delta_r(a.eta, a.phi, b.eta, b.phi) < 1.0) & (b.pt > 0.5 * a.pt), axis=2)) == 0


@pytest.mark.parametrize("name", ["ttbar2015", "dy", "dimuon", "pfnano"])
def test_real_nanoaod_objects_are_disjoint(real_nanoaod_files, name):
    ev = _open(real_nanoaod_files[name])
    o = objects(ev)
    _assert_disjoint(o, CFG.objects)
    raw = ev.Jet[(ev.Jet.pt > 30) & (abs(ev.Jet.eta) < 2.4)]
    lep = ak.concatenate(
        [o.muons[o.muons.pt > 10][["eta", "phi"]], o.electrons[o.electrons.pt > 10][["eta", "phi"]]], axis=1
    )
    if name in ("ttbar2015", "dy"):  # files with leptons: the raw jets contain them (what the cleaning removes)
        assert _overlaps(raw, lep, 0.4) > 0
    assert ak.all(o.jets.pt > 30)
    assert ak.all(abs(o.jets.eta) < 2.4)
    # tight jet ID: the selected jets are among the raw jets with the tight bit set
    tight = raw[(raw.jetId & 2) == 2]
    assert ak.all(ak.num(o.jets) <= ak.num(tight))
    assert _overlaps(o.jets, tight, 1e-3) == ak.sum(ak.num(o.jets))


def test_the_2015_open_data_muons_pass_the_loose_id_from_its_ingredients(real_nanoaod_files):
    ev = _open(real_nanoaod_files["ttbar2015"])
    assert not ak.any(ev.Muon.looseId)  # the conversion left the flag empty
    o = objects(ev)
    assert ak.sum(ak.num(o.muons)) > 0


@pytest.mark.parametrize("process", ["wjets", "ttbar", "zjets"])
def test_generated_objects_are_disjoint(generated_cocktail, process):
    path = min((generated_cocktail / process).glob("*.root"))
    ev = _open(path)
    o = objects(ev)
    _assert_disjoint(o, CFG.objects)
    assert ak.sum(ak.num(o.jets)) > 0
    assert ak.sum(ak.num(o.muons)) + ak.sum(ak.num(o.electrons)) > 0
    # jets with the ID bits unset exist in the file and none is selected
    assert ak.sum((ev.Jet.jetId & 2) == 0) > 0


@pytest.mark.parametrize("process", ["wjets", "ttbar"])
def test_one_isolation_definition_for_both_paths(generated_cocktail, process):
    """The PF-candidate isolation equals the file's pfRelIso03_* branches, lepton by lepton."""
    from cms_anomaly.processors.objects import pf_isolation

    ev = _open(min((generated_cocktail / process).glob("*.root")))
    for coll in (ev.Muon, ev.Electron):
        iso = pf_isolation(coll, ev.PFCands, cone=0.3)
        assert ak.sum(ak.num(coll)) > 0
        np.testing.assert_allclose(
            ak.to_numpy(ak.flatten(iso["iso"])), ak.to_numpy(ak.flatten(coll.pfRelIso03_all)), rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(
            ak.to_numpy(ak.flatten(iso["iso_ch"])), ak.to_numpy(ak.flatten(coll.pfRelIso03_chg)), rtol=1e-5, atol=1e-6
        )


def test_generated_photons_pass_the_reconstruction_preselection(generated_cocktail):
    """Every generated ``Photon`` has H/E < 0.5 (CMS photon preselection) and an ID from its isolation."""
    ev = _open(min((generated_cocktail / "ttbar").glob("*.root")))
    assert ak.sum(ak.num(ev.Photon)) > 0
    assert ak.all(ev.Photon.hoe < 0.5)
    iso, cut_based = ak.flatten(ev.Photon.pfRelIso03_all), ak.flatten(ev.Photon.cutBased)
    # cut-based level from the isolation: tight < 0.1, medium < 0.2, loose < 0.3, else fail
    expected = np.select([iso < 0.1, iso < 0.2, iso < 0.3], [3, 2, 1], 0)
    np.testing.assert_array_equal(ak.to_numpy(cut_based), expected)


def test_a_skimmed_file_without_photons_is_an_error_unless_allowed(caplog):
    full = event(muons=[mu()], photons=[pho(eta=1.5, phi=2.0)], jets=[jet(eta=-1.0, phi=-2.0)])
    skimmed = ak.zip({k: full[k] for k in ak.fields(full) if k != "Photon"}, depth_limit=1)
    with pytest.raises(schema.MissingBranchError, match="Photon_pt"):
        objects(skimmed)
    o = build_objects(skimmed, config=CFG.objects, source="skim.root", allow_missing=("Photon",))
    assert ak.num(o.photons)[0] == 0
    assert ak.num(o.jets)[0] == 1
    assert o.missing_collections == ("Photon",)
    assert "no Photon collection: treated as empty" in caplog.text
    # the processor records it per dataset
    from cms_anomaly.processors.processor import AnomalyProcessor

    out = AnomalyProcessor(selection="inclusive", allow_missing=("Photon",)).process_chunk(
        skimmed, {"dataset": "skim", "filename": "skim.root"}
    )
    assert out["skim"]["missing_collections"] == {"Photon": 1}
    assert out["skim"]["nevents"] == 1
    # a file that has the collection is untouched
    assert build_objects(full, config=CFG.objects, allow_missing=("Photon",)).missing_collections == ()


def test_non_finite_kinematics_are_dropped_and_named_once_per_file(caplog):
    """A NaN or inf pT is no object: dropped before any cut; one warning per file and branch; H_T, S_T finite."""
    ev = event(
        muons=[mu(pt=np.inf), mu(pt=30.0, phi=2.0)],
        jets=[jet(pt=np.nan), jet(pt=np.inf, phi=1.0), jet(pt=80.0, phi=-2.0)],
    )
    with caplog.at_level(logging.WARNING, logger="cms_anomaly.processors.objects"):
        o = build_objects(ev, config=CFG.objects, source="nonfinite.root")
        build_objects(ev, config=CFG.objects, source="nonfinite.root")  # a second chunk: not reported again
    assert o.flat["muons"].columns["pt"].tolist() == [30.0]
    assert o.flat["jets"].columns["pt"].tolist() == [80.0]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"nonfinite.root: {n} non-finite value(s) in {b}: those objects dropped (further chunks not reported)"
        for n, b in ((1, "Muon_pt"), (2, "Jet_pt"))
    ]
    features = compute_features(ev, config=CFG, source="nonfinite.root")
    assert features.ht.tolist() == [80.0]
    assert np.isfinite(features.st.to_numpy()).all()
