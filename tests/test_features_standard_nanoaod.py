"""Features the data have: every feature of HLF_NANO from branches standard NanoAOD carries, computed
the same with and without PF candidates; the needs check that keeps PF features out of a job whose
datasets lack them; data-like generated files (no PF candidates, no generator branches).

Expected values are recomputed here from the real files with uproot and numpy.
"""

from __future__ import annotations

import dataclasses
import json

import awkward as ak
import numpy as np
import pytest
import uproot
from cms_anomaly.processors.config import AnalysisConfig
from cms_anomaly.processors.feature_spec import (
    FEATURES,
    HLF24,
    HLF_NANO,
    JET_CONTENT,
    NEEDS,
    PFCANDS,
    usable_features,
)
from cms_anomaly.processors.features import compute_features
from cms_anomaly.processors.schema import AnalysisNanoAODSchema
from coffea.nanoevents import NanoEventsFactory
from nanoaod_events import rewrite_nanoaod

CFG = AnalysisConfig()
#: no isolation cut: pfnano.root's leptons are all non-isolated, and the isolation values are what is tested
LOOSE = dataclasses.replace(CFG, objects=dataclasses.replace(CFG.objects, lepton_iso_max=1e9, trigger_iso_max=1e9))
PF_FEATURES = ("n_ch_had", "n_neu_had", "n_photons", "iso_gamma")
JET_CONTENT_FEATURES = ("n_constituents", "jet_chhef", "jet_nehef", "jet_chemef", "jet_neemef")


def _features(path, config=CFG):
    events = NanoEventsFactory.from_root(
        {str(path): "Events"}, schemaclass=AnalysisNanoAODSchema, mode="eager"
    ).events()
    return compute_features(events, config=config, source=str(path))


def _raw(path, collection, fields):
    with uproot.open(path) as f:
        return f["Events"].arrays([f"{collection}_{k}" for k in fields], library="ak")


def test_pf_features_declare_their_need_and_hlf_nano_has_none():
    assert {n for n, s in FEATURES.items() if PFCANDS in s.needs} == set(PF_FEATURES)
    assert {n for n, s in FEATURES.items() if JET_CONTENT in s.needs} == set(JET_CONTENT_FEATURES)
    assert not any(PFCANDS in FEATURES[n].needs for n in HLF_NANO)
    # HLF-24 with the PF multiplicities and the photon isolation replaced by the jet content
    assert [n for n in HLF24 if n not in HLF_NANO] == ["n_neu_had", "n_ch_had", "n_photons", "iso_gamma"]
    assert HLF_NANO[-5:] == JET_CONTENT_FEATURES


@pytest.mark.parametrize("name", ["dy", "ttbar2015", "pfnano"])
def test_jet_content_from_the_jet_branches(real_nanoaod_files, name):
    """n_constituents and the pT-weighted energy fractions: the selected jets (as the processor selects
    them) looked up in the file's Jet_* branches and summed here with numpy."""
    path = real_nanoaod_files[name]
    from cms_anomaly.processors.objects import build_objects

    events = NanoEventsFactory.from_root(
        {str(path): "Events"}, schemaclass=AnalysisNanoAODSchema, mode="eager"
    ).events()
    feats = ak.to_list(compute_features(events, config=CFG)[list(JET_CONTENT_FEATURES)])
    selected_pt = ak.to_list(build_objects(events, config=CFG.objects).jets.pt)
    raw = ak.to_list(_raw(path, "Jet", ("pt", "nConstituents", "chHEF", "neHEF", "chEmEF", "neEmEF")))
    n_checked = 0
    for ev in range(len(feats)):
        raw_pt = np.asarray(raw[ev]["Jet_pt"], dtype=np.float32)
        # each selected jet in the file, by its pT
        idx = [int(np.flatnonzero(raw_pt == np.float32(p))[0]) for p in selected_pt[ev]]
        pt = raw_pt[idx].astype(np.float64)
        n_const = float(np.sum(np.asarray(raw[ev]["Jet_nConstituents"])[idx]))
        assert feats[ev]["n_constituents"] == n_const
        for feature, branch in (
            ("jet_chhef", "chHEF"),
            ("jet_nehef", "neHEF"),
            ("jet_chemef", "chEmEF"),
            ("jet_neemef", "neEmEF"),
        ):
            frac = np.asarray(raw[ev][f"Jet_{branch}"], dtype=np.float64)[idx]
            expected = float(np.sum(pt * frac) / np.sum(pt)) if idx else 0.0
            assert feats[ev][feature] == pytest.approx(expected, rel=1e-6, abs=1e-9), (name, ev, feature)
        n_checked += len(idx)
    assert n_checked > 10  # the samples have selected jets to check


@pytest.mark.parametrize("name", ["dy", "ttbar2015", "pfnano"])
def test_lepton_isolation_from_the_pfreliso_branches(real_nanoaod_files, name):
    """iso = pfRelIso03_all, iso_ch = pfRelIso03_chg, iso_neu = their difference, of the trigger lepton
    found in the file by its pT (with PF candidates or without: pfnano.root has them)."""
    path = real_nanoaod_files[name]
    feats = ak.to_list(_features(path, LOOSE)[["has_lepton", "is_ele", "pt_lep", "iso", "iso_ch", "iso_neu"]])
    raw = {p: ak.to_list(_raw(path, p, ("pt", "pfRelIso03_all", "pfRelIso03_chg"))) for p in ("Muon", "Electron")}
    n_checked = 0
    for ev, f in enumerate(feats):
        if not f["has_lepton"]:
            continue
        prefix = "Electron" if f["is_ele"] else "Muon"
        row = raw[prefix][ev]
        pts = np.asarray(row[f"{prefix}_pt"], dtype=np.float32)
        k = int(np.flatnonzero(pts == np.float32(f["pt_lep"]))[0])
        iso_all = row[f"{prefix}_pfRelIso03_all"][k]
        iso_chg = row[f"{prefix}_pfRelIso03_chg"][k]
        assert f["iso"] == pytest.approx(iso_all, rel=1e-7), (name, ev)
        assert f["iso_ch"] == pytest.approx(iso_chg, rel=1e-7), (name, ev)
        assert f["iso_neu"] == pytest.approx(iso_all - iso_chg, rel=1e-7, abs=1e-12), (name, ev)
        n_checked += 1
    assert n_checked >= 1  # pfnano.root: one trigger lepton in its 10 events


def test_features_equal_with_and_without_pf_candidates(real_nanoaod_files, tmp_path):
    """pfnano.root as it is and without its PFCands: every feature that needs no PF candidate equal
    (isolation included), the PF features at their placeholder without them."""
    src = real_nanoaod_files["pfnano"]
    full = tmp_path / "with.root"
    stripped = tmp_path / "without.root"
    rewrite_nanoaod(src, full)
    rewrite_nanoaod(src, stripped, drop=("PFCands",))
    a, b = _features(full, LOOSE), _features(stripped, LOOSE)
    assert np.sum(np.asarray(a.has_lepton)) >= 1
    assert np.any(np.asarray(a.n_jets) > 0)
    for name, spec in FEATURES.items():
        if PFCANDS in spec.needs:
            continue
        np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]), err_msg=name)
    for name in ("n_ch_had", "n_neu_had", "n_photons"):
        assert np.all(np.asarray(b[name]) == -1), name
        assert np.all(np.asarray(a[name]) > 0), name
    assert np.all(np.asarray(b.iso_gamma) == 0)
    assert np.all(np.asarray(a.n_constituents) > 0)  # the jet content is there in both


def test_jet_content_placeholder_without_the_branches(real_nanoaod_files, tmp_path):
    stripped = tmp_path / "old.root"
    rewrite_nanoaod(real_nanoaod_files["dy"], stripped, drop=("Jet_nConstituents",))
    feats = _features(stripped)
    for name in JET_CONTENT_FEATURES:
        assert np.all(np.asarray(feats[name]) == -1), name


def test_usable_features_drops_what_a_dataset_lacks():
    kept, dropped = usable_features(HLF24, {"data": {JET_CONTENT}, "ttbar": set(NEEDS)})
    assert set(dropped) == set(PF_FEATURES)
    assert kept == tuple(n for n in HLF24 if n not in PF_FEATURES)
    assert dropped["n_ch_had"] == "needs PF candidates (PFCands_*), missing in data"
    kept, dropped = usable_features(HLF24, {"data": set(NEEDS), "ttbar": set(NEEDS)})
    assert kept == HLF24
    assert not dropped
    kept, dropped = usable_features(HLF_NANO, {"old": set()})
    assert set(dropped) == set(JET_CONTENT_FEATURES)
    assert "missing in old" in dropped["n_constituents"]


def test_checked_feature_set_refuses_a_set_with_nothing_left():
    from cms_anomaly.models.errors import FeatureNeedsError
    from cms_anomaly.models.feature_sets import FeatureSet, checked_feature_set, get_feature_set

    fs, dropped = checked_feature_set(get_feature_set("hlf24"), {"data": {JET_CONTENT}})
    assert fs.name == "hlf24"
    assert fs.width == len(fs.columns) == 21
    assert set(dropped) == set(PF_FEATURES)
    pf_only = FeatureSet("pf", ("n_ch_had", "n_photons"), 2)
    with pytest.raises(FeatureNeedsError, match="n_ch_had"):
        checked_feature_set(pf_only, {"data": set()})
    # the array sets are built from objects every NanoAOD has
    assert checked_feature_set(get_feature_set("objects"), {"data": set()}) == (get_feature_set("objects"), {})


def test_processor_records_the_needs_met_and_training_drops_pf_features(real_nanoaod_files, tmp_path):
    """dy (standard NanoAOD) and pfnano through the processor: the output and the tables record which
    needs each met; a job over both trains HLF-24 without the PF features, one over pfnano with them."""
    import pyarrow.parquet as pq
    from cms_anomaly.models.data import dataset_needs
    from cms_anomaly.models.pipeline import feature_set_for_job
    from cms_anomaly.processors.feature_io import NEEDS_KEY, table_files
    from cms_anomaly.processors.processor import AnomalyProcessor, needs_met
    from cms_anomaly.processors.runner import make_executor, run_processor

    fileset = {n: {"files": {str(real_nanoaod_files[n]): "Events"}} for n in ("dy", "pfnano")}
    features = tmp_path / "features"
    with make_executor("iterative") as ex:
        out = run_processor(fileset, AnomalyProcessor(selection="inclusive", features_dir=features), executor=ex)
    assert out["dy"]["needs_unmet"] == {PFCANDS: 1}
    assert out["pfnano"]["needs_unmet"] == {}
    assert needs_met(out) == {"dy": frozenset({JET_CONTENT}), "pfnano": frozenset(NEEDS)}
    from cms_anomaly.processors.feature_io import write_table_manifest

    write_table_manifest(features, out["dy"]["feature_files"] + out["pfnano"]["feature_files"])
    table = table_files(features / "dy")[0]
    assert json.loads(pq.read_schema(table).metadata[NEEDS_KEY]) == [JET_CONTENT]
    assert dataset_needs(features, ["dy", "pfnano"]) == {"dy": {JET_CONTENT}, "pfnano": set(NEEDS)}

    fs, dropped = feature_set_for_job("hlf24", features_dir=features, datasets=None)
    assert set(dropped) == set(PF_FEATURES)
    assert not set(fs.columns) & set(PF_FEATURES)
    assert all("missing in dy" in why for why in dropped.values())
    # reading the full HLF-24 for a job over both is refused, naming the feature and the dataset
    from cms_anomaly.models.data import read_samples
    from cms_anomaly.models.errors import FeatureNeedsError
    from cms_anomaly.models.feature_sets import get_feature_set

    with pytest.raises(FeatureNeedsError, match=r"n_ch_had \(needs PF candidates .*missing in dy\)"):
        read_samples(features, feature_set=get_feature_set("hlf24"))
    assert set(read_samples(features, feature_set=fs)) == {"dy", "pfnano"}
    fs, dropped = feature_set_for_job("hlf24", features_dir=features, datasets=["pfnano"])
    assert fs.columns == HLF24
    assert not dropped


# ----------------------------------------------------------------------------- data-like generation
@pytest.fixture(scope="module")
def twin_productions(tmp_path_factory):
    """The same 60 Z events (one seed) written as simulation and as data-like files."""
    from cms_anomaly.datasets import production

    root = tmp_path_factory.mktemp("data-like")
    kw = {"events": 60, "seed": 5, "executor": "local"}
    sim = production.produce(["zjets"], out=root / "sim", **kw)
    data = production.produce(["zjets"], out=root / "data", data_like=True, **kw)
    return sim, data


@pytest.mark.slow
def test_data_like_files_have_no_pf_candidates_nor_generator_branches(twin_productions):
    sim, data = twin_productions
    (sim_file,) = sim["datasets"]["zjets"]["files"]
    (data_file,) = data["datasets"]["zjets"]["files"]
    with uproot.open(sim_file) as f:
        sim_keys = set(f["Events"].keys())
    with uproot.open(data_file) as f:
        keys = set(f["Events"].keys())
        runs = set(f["Runs"].keys())
    # the simulation has what the data-like file must lack
    assert {"PFCands_pt", "GenPart_pdgId", "genWeight", "Muon_genPartIdx", "Jet_hadronFlavour"} <= sim_keys
    assert not [k for k in keys if k.startswith(("PFCands", "nPFCands", "JetPFCands", "Gen", "nGen", "LHE"))]
    assert not [k for k in keys if k.lower().startswith("genweight") or "genPart" in k or "Flavour" in k]
    assert runs == {"run"}
    # everything else is the same reconstruction, branch for branch
    assert keys < sim_keys
    meta = data["datasets"]["zjets"]["metadata"]
    assert meta["is_data"] is True
    assert meta["lumi_pb"] == pytest.approx(60 / meta["xsec_pb"])
    assert sim["datasets"]["zjets"]["metadata"]["is_data"] is False


@pytest.mark.slow
def test_data_like_file_runs_through_the_processor_with_the_same_features(twin_productions, tmp_path):
    """The processor on the data-like twin: the HLF_NANO features equal the simulation's event by event,
    the PF features are placeholders, and a job over both drops them before training."""
    from cms_anomaly.models.pipeline import feature_set_for_job
    from cms_anomaly.processors.feature_io import write_table_manifest
    from cms_anomaly.processors.processor import AnomalyProcessor, needs_met
    from cms_anomaly.processors.runner import make_executor, run_processor

    sim, data = twin_productions
    (sim_file,) = sim["datasets"]["zjets"]["files"]
    (data_file,) = data["datasets"]["zjets"]["files"]
    a, b = _features(sim_file), _features(data_file)
    for name in HLF_NANO:
        np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]), err_msg=name)
    assert np.all(np.asarray(b.n_ch_had) == -1)
    assert np.all(np.asarray(a.n_ch_had) > 0)

    fileset = {
        "data": {"files": {data_file: "Events"}, "metadata": data["datasets"]["zjets"]["metadata"]},
        "zjets": {"files": {sim_file: "Events"}, "metadata": sim["datasets"]["zjets"]["metadata"]},
    }
    features = tmp_path / "features"
    with make_executor("iterative") as ex:
        out = run_processor(fileset, AnomalyProcessor(selection="inclusive", features_dir=features), executor=ex)
    assert needs_met(out) == {"data": frozenset({JET_CONTENT}), "zjets": frozenset(NEEDS)}
    assert out["data"]["nevents"] == 60
    write_table_manifest(features, out["data"]["feature_files"] + out["zjets"]["feature_files"])
    for name in ("hlf24", "hlf21", "hlf_nano"):
        fs, _ = feature_set_for_job(name, features_dir=features, datasets=None)
        assert not set(fs.columns) & set(PF_FEATURES), name
    fs, dropped = feature_set_for_job("hlf_nano", features_dir=features, datasets=None)
    assert fs.columns == HLF_NANO
    assert not dropped

    # the hunt on this job: its detector and its background-model check use no PF feature
    from cms_anomaly.analyses.hunt import HuntConfig, background_check, detector_inputs

    fs, dropped = detector_inputs(features, HuntConfig())
    assert fs.columns == HLF_NANO
    assert not dropped
    fs, dropped = detector_inputs(features, HuntConfig(feature_set="hlf24"))
    assert set(dropped) == set(PF_FEATURES)
    assert not set(fs.columns) & set(PF_FEATURES)
    check = background_check(out, HuntConfig())
    assert {r["feature"] for r in check["features"]} >= set(JET_CONTENT_FEATURES)
    assert not {r["feature"] for r in check["features"]} & set(PF_FEATURES)
