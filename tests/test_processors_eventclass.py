"""Event classes (MUSiC) on real NanoAOD: the classification against a hand count from the raw branches,
exclusivity, inclusive memberships, thresholds, the class trigger per kind."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import uproot
from cms_anomaly.processors import dataquality, eventclass, schema
from cms_anomaly.processors.config import ObjectConfig, SelectionConfig
from cms_anomaly.processors.objects import build_objects

FILES = ("dy", "ttbar2015", "dimuon")
#: DeepJet medium, 2018 UL (BTV): the b-tag working point these Run-2 files get without an era
DEEPJET_MEDIUM = 0.2783
JET_TIGHT_BIT = 2


def _events(path):
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema, mode="eager").events()


def _dr(eta1, phi1, eta2, phi2):
    dphi = (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi
    return np.hypot(eta1 - eta2, dphi)


def _far(eta, phi, others):
    """True where no (eta, phi) of ``others`` is within dR < 0.4."""
    return np.array([all(_dr(e, p, oe, op) >= 0.4 for oe, op in others) for e, p in zip(eta, phi, strict=True)], bool)


def _hand_counts(path) -> tuple[np.ndarray, np.ndarray]:
    """(events, 5) counts of e, mu, gamma, light jets, b-jets and the MET > 100 flag, from the raw
    branches with the cuts written out here: loose muon ID, the electron noIso MVA loose WP, leptons
    Iso < 0.45 (objects) and pT > 25, Iso < 0.15 (class); photons loose ID, Iso < 0.3, pT > 15, |eta| < 2.5
    away from leptons > 10 GeV (objects), pT > 25, |eta| < 1.4442 (class); tight-ID jets away from those
    leptons and photons, pT > 50, |eta| < 2.4, DeepJet medium for b."""
    t = uproot.open(path)["Events"]
    keys = set(t.keys())
    photon_id = "Photon_cutBased" if "Photon_cutBased" in keys else "Photon_cutBasedBitmap"
    b = t.arrays(library="np")
    out, met = [], b["MET_pt"] > 100.0
    for i in range(t.num_entries):
        mu_ok = b["Muon_isPFcand"][i] & (b["Muon_isGlobal"][i] | b["Muon_isTracker"][i])
        mu_ok &= (b["Muon_pt"][i] > 0.5) & (b["Muon_pfRelIso03_all"][i] < 0.45)
        el_ok = b["Electron_mvaFall17V2noIso_WPL"][i].astype(bool)
        el_ok &= (b["Electron_pt"][i] > 0.5) & (b["Electron_pfRelIso03_all"][i] < 0.45)
        leptons = [
            (b[f"{c}_eta"][i][k], b[f"{c}_phi"][i][k])
            for c, ok in (("Muon", mu_ok), ("Electron", el_ok))
            for k in np.flatnonzero(ok & (b[f"{c}_pt"][i] > 10.0))
        ]
        ph_pt, ph_eta, ph_phi = b["Photon_pt"][i], b["Photon_eta"][i], b["Photon_phi"][i]
        ph_ok = (ph_pt > 15.0) & (abs(ph_eta) < 2.5) & (b["Photon_pfRelIso03_all"][i] < 0.3)
        ph_ok &= (b[photon_id][i] >= 1) if photon_id == "Photon_cutBased" else ((b[photon_id][i] & 1) == 1)
        ph_ok &= _far(ph_eta, ph_phi, leptons)
        photons = [(ph_eta[k], ph_phi[k]) for k in np.flatnonzero(ph_ok)]
        j_pt, j_eta = b["Jet_pt"][i], b["Jet_eta"][i]
        j_ok = ((b["Jet_jetId"][i] & JET_TIGHT_BIT) == JET_TIGHT_BIT) & _far(j_eta, b["Jet_phi"][i], leptons + photons)
        j_ok &= (j_pt > 50.0) & (abs(j_eta) < 2.4)
        is_b = b["Jet_btagDeepFlavB"][i] > DEEPJET_MEDIUM
        n_mu = np.sum(
            mu_ok & (b["Muon_pt"][i] > 25) & (abs(b["Muon_eta"][i]) < 2.4) & (b["Muon_pfRelIso03_all"][i] < 0.15)
        )
        n_e = np.sum(
            el_ok
            & (b["Electron_pt"][i] > 25)
            & (abs(b["Electron_eta"][i]) < 2.5)
            & (b["Electron_pfRelIso03_all"][i] < 0.15)
        )
        n_g = np.sum(ph_ok & (ph_pt > 25) & (abs(ph_eta) < 1.4442))
        out.append((n_e, n_mu, n_g, np.sum(j_ok & ~is_b), np.sum(j_ok & is_b)))
    return np.array(out, dtype=np.int64), met


def _hand_name(counts, met) -> str:
    tokens = [f"{n}{t}" for n, t in zip(counts, ("e", "mu", "gamma", "jet", "bjet"), strict=True) if n]
    return "_".join(tokens + (["MET"] if met else []))


@pytest.fixture(scope="module")
def objects_of(real_nanoaod_files):
    return {
        name: build_objects(_events(real_nanoaod_files[name]), config=ObjectConfig(), source=name) for name in FILES
    }


@pytest.mark.parametrize("name", FILES)
def test_exclusive_class_of_real_events_equals_a_hand_classification(name, objects_of, real_nanoaod_files):
    counts, met = _hand_counts(real_nanoaod_files[name])
    expected = np.array([_hand_name(c, m) for c, m in zip(counts, met, strict=True)])
    got = eventclass.classify(objects_of[name], SelectionConfig())
    np.testing.assert_array_equal(got, expected)
    assert (got != "").sum() >= 10  # a handful of classified events in each file


def test_the_files_cover_leptons_jets_b_jets_and_met(objects_of):
    names = np.concatenate([eventclass.classify(o, SelectionConfig()) for o in objects_of.values()])
    for token in ("1e", "mu", "jet", "bjet", "MET"):
        assert any(token in n for n in names), token


def test_each_event_in_one_exclusive_class_and_inclusive_classes_contain_it(objects_of):
    config = SelectionConfig()
    for objects in objects_of.values():
        classes = eventclass.memberships(objects, config)
        counts, _ = eventclass.class_counts(objects, config)
        within = (counts <= eventclass.caps(config)).all(axis=1) & (counts.sum(axis=1) > 0)
        excl = classes.of_kind("exclusive")
        # exactly one exclusive class for every event with a class object within the caps, none otherwise
        np.testing.assert_array_equal(np.bincount(classes.event[excl], minlength=len(objects)), within.astype(int))
        np.testing.assert_array_equal(classes.name[excl], classes.exclusive[classes.event[excl]])
        n = classes.counts()
        for c in set(classes.name[excl]):
            assert n[c + "+X"] >= n[c], c
            assert n[c + "+NJets"] >= n[c], c
        # an event is in the inclusive class of its own content and of each single object it has
        for ev in classes.event[excl]:
            mine = set(classes.name[classes.event == ev])
            assert classes.exclusive[ev] + "+X" in mine
            assert all(f"1{t}+X" in mine for t, k in zip(eventclass.TYPES, counts[ev], strict=True) if k)


def test_inclusive_variables_use_the_leading_objects_of_the_class(objects_of):
    objects = objects_of["dy"]
    classes = eventclass.memberships(objects, SelectionConfig())
    coll = eventclass.class_collections(objects, SelectionConfig())
    rows = np.flatnonzero(classes.name == "1mu+X")
    assert len(rows)
    lead = coll["mu"].nth("pt", 0)[classes.event[rows]]
    np.testing.assert_allclose(classes.st[rows], lead)
    np.testing.assert_allclose(classes.mass[rows], coll["mu"].nth("mass", 0)[classes.event[rows]], atol=1e-6)
    two = np.flatnonzero(classes.name == "2mu")
    assert len(two)
    ev = classes.event[two]
    pt = [coll["mu"].nth("pt", k)[ev] for k in (0, 1)]
    eta = [coll["mu"].nth("eta", k)[ev] for k in (0, 1)]
    phi = [coll["mu"].nth("phi", k)[ev] for k in (0, 1)]
    m2 = 2 * pt[0] * pt[1] * (np.cosh(eta[0] - eta[1]) - np.cos(phi[0] - phi[1]))  # massless dimuon mass
    np.testing.assert_allclose(classes.mass[two], np.sqrt(m2), rtol=1e-4)


def test_a_lepton_moved_below_its_threshold_changes_the_class(objects_of):
    objects = objects_of["dy"]
    config = SelectionConfig()
    before = eventclass.classify(objects, config)
    coll = eventclass.class_collections(objects, config)
    ev = int(np.flatnonzero(coll["mu"].counts == 1)[0])
    muons = objects.flat["muons"]
    pt = muons.columns["pt"].copy()
    lead = muons.offsets[ev] + int(np.argmax(muons.columns["pt"][muons.offsets[ev] : muons.offsets[ev + 1]]))
    pt[lead] = config.class_muon_pt_min - 1.0
    moved = dataclasses.replace(objects, flat={**objects.flat, "muons": muons.with_columns(pt=pt)})
    after = eventclass.classify(moved, config)
    assert "1mu" in before[ev].split("_")
    assert "mu" not in after[ev]
    counts, met = eventclass.class_counts(objects, config)
    counts[ev, eventclass.TYPES.index("mu")] -= 1
    assert after[ev] == _hand_name(counts[ev], met[ev])
    np.testing.assert_array_equal(np.delete(after, ev), np.delete(before, ev))


def test_caps_send_jet_rich_events_to_the_jet_inclusive_classes_only(objects_of):
    objects = objects_of["ttbar2015"]
    config = dataclasses.replace(SelectionConfig(), class_max_jets=1)
    counts, met = eventclass.class_counts(objects, config)
    ev = int(np.flatnonzero(counts[:, eventclass.TYPES.index("jet")] >= 2)[0])
    classes = eventclass.memberships(objects, config)
    assert classes.exclusive[ev] == ""
    mine = set(classes.name[classes.event == ev])
    k0, k1 = counts[ev].copy(), counts[ev].copy()
    k0[3], k1[3] = 0, 1
    assert {n for n in mine if n.endswith("+NJets")} == {_hand_name(k, met[ev]) + "+NJets" for k in (k0, k1) if k.sum()}
    assert not [n for n in mine for k in range(2, 10) if f"{k}jet" in n.split("_")]


def test_class_trigger_needs_the_kind_that_fired(real_nanoaod_files):
    """On the DY file as 2016 data: the kinds' HLT bits from the raw branches gate the offline thresholds;
    in the DoubleMuon primary dataset, single-muon events (an earlier dataset) are removed."""
    path = real_nanoaod_files["dy"]
    events = _events(path)
    available = schema.flat_branch_names(events)
    objects = build_objects(events, config=ObjectConfig(), source="dy")
    config = SelectionConfig()
    b = uproot.open(path)["Events"].arrays(library="np")
    meta = {"dataset": "dy", "era": "2016"}
    fired = dataquality.class_trigger_fired(events, meta=meta, variant="run2", available=available)
    np.testing.assert_array_equal(fired["single_muon"], b["HLT_IsoMu24"])
    assert fired["jets"] is not None
    assert fired["photon"] is not None
    coll = eventclass.class_collections(objects, config)
    lead_mu = coll["mu"].nth("pt", 0)
    offline_only = eventclass.trigger_object(objects, config)
    gated = eventclass.trigger_object(objects, config, fired=fired)
    assert gated.sum() < offline_only.sum()
    assert not (gated & ~offline_only).any()
    single = (lead_mu > 25) & b["HLT_IsoMu24"]
    assert (gated >= single).all()
    data = dataquality.class_trigger_fired(
        events, meta={**meta, "is_data": True, "primary_dataset": "DoubleMuon"}, variant="run2", available=available
    )
    assert not data["single_muon"].any()
    assert not data["single_electron"].any()
    double = b["HLT_Mu17_TrkIsoVVL_Mu8_TrkIsoVVL"] | b["HLT_Mu17_TrkIsoVVL_Mu8_TrkIsoVVL_DZ"]
    np.testing.assert_array_equal(data["double_muon"], double & ~b["HLT_IsoMu24"])
    with pytest.raises(dataquality.DataQualityError, match="records no class trigger"):
        dataquality.class_trigger_fired(
            events, meta={**meta, "is_data": True, "primary_dataset": "MET"}, variant="run2", available=available
        )


def test_generated_sm_events_fill_their_classes(generated_cocktail):
    """The SM of the generated production through the processor: every triggered event in at most one
    exclusive class and all but those above the caps (a ttbar event with more than 6 jets: 1 of 47 here)
    in one, Z -> ll in the dilepton classes, W -> l nu in 1e / 1mu."""
    from cms_anomaly.processors import runner
    from cms_anomaly.processors.processor import AnomalyProcessor

    fs = runner.load_fileset(generated_cocktail / "fileset.json")
    sm = {k: fs[k] for k in ("wjets", "zjets", "ttbar")}
    with runner.make_executor("iterative") as ex:
        out = runner.run_processor(sm, AnomalyProcessor(selection="event_classes"), executor=ex, chunksize=1000)
    for name, res in out.items():
        exclusive = {c: n for c, n in res["class_counts"].items() if "+" not in c}
        triggered = res["cutflow"]["events"]["trigger_object"]
        assert triggered > 0, name
        assert 0 <= triggered - sum(exclusive.values()) <= max(1, 0.03 * triggered), name
        assert set(res["hists"]["class_st"].axes["event_class"]) == set(res["class_counts"])
    z, w = out["zjets"]["class_counts"], out["wjets"]["class_counts"]
    assert z.get("2mu", 0) + z.get("2e", 0) > 0.2 * out["zjets"]["cutflow"]["events"]["trigger_object"]
    w_exclusive = {c: n for c, n in w.items() if "+" not in c}
    assert max(w_exclusive, key=w_exclusive.get) in {"1e", "1mu"}
    assert any("bjet" in c for c in out["ttbar"]["class_counts"])


def test_an_empty_chunk_and_an_era_without_class_triggers(real_nanoaod_files):
    from cms_anomaly.processors.processor import AnomalyProcessor
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        events = NanoEventsFactory.from_root(
            {str(real_nanoaod_files["dy"]): "Events"},
            schemaclass=NanoAODSchema,
            mode="virtual",
            entry_start=0,
            entry_stop=0,
            metadata={"dataset": "empty", "era": "2016"},
        ).events()
    out = AnomalyProcessor(selection="event_classes").process(events)["empty"]
    assert out["class_counts"] == {}
    assert out["cutflow"]["events"] == {"all": 0, "trigger_object": 0}
    assert out["hists"]["class_st"].sum(flow=True).value == 0
    fileset = {"dy": {"files": {str(real_nanoaod_files["dy"]): "Events"}, "metadata": {"era": "2015"}}}
    with pytest.raises(dataquality.DataQualityError, match="no class trigger table"):
        dataquality.check_fileset(fileset, selection="event_classes")
