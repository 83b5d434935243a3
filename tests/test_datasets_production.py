"""Generated NanoAOD: schema conformance with real CMS files, and physics sanity per process."""

from __future__ import annotations

import json
import shutil
import warnings

import awkward as ak
import numpy as np
import pytest
import uproot
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory
from conftest import COCKTAIL_EVENTS, COCKTAIL_SEED, COCKTAIL_SOURCES, REPO_ROOT, cocktail_cache_name

MEDIUM_WP = 0.2783  # DeepJet medium working point


def _events(cocktail, process):
    fileset = json.loads((cocktail / "fileset.json").read_text())
    files = dict.fromkeys(fileset[process]["files"], "Events")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        events = NanoEventsFactory.from_root(files, schemaclass=NanoAODSchema, mode="eager").events()
    return events, [str(w.message) for w in caught]


def test_fileset_metadata(generated_cocktail):
    fileset = json.loads((generated_cocktail / "fileset.json").read_text())
    assert set(fileset) == set(COCKTAIL_EVENTS)
    for name, entry in fileset.items():
        meta = entry["metadata"]
        assert meta["process"] == name
        assert meta["nevents"] == COCKTAIL_EVENTS[name]
        assert meta["tail_bias"] is None
        assert meta["seed"] == COCKTAIL_SEED
        assert meta["is_data"] is False
        assert meta["xsec_pb"] > 0
        assert 0 < meta["filter_efficiency"] <= 1
        assert meta["xsec_pb"] == pytest.approx(meta["sigma_gen_pb"] * meta["filter_efficiency"])
        for path, tree in entry["files"].items():
            assert tree == "Events"
            assert path.endswith(".root")
            with uproot.open(path) as f:
                assert f["Events"].num_entries == meta["nevents"] or len(entry["files"]) > 1
                runs = f["Runs"].arrays(library="np")
                assert runs["genEventCount"].sum() == f["Events"].num_entries
                gw = f["Events"]["genWeight"].array(library="np").astype(np.float64)
            # Pythia's weights of an unbiased production: 1, above 1 only for an event that violated the
            # cross-section maximum Pythia had estimated (measured: 2 of 40 hplus_t events, weight 1.099)
            assert 1.0 <= gw.min() <= gw.max() < 1.5, name
            if len(entry["files"]) == 1:
                assert meta["sumw"] == pytest.approx(gw.sum(), rel=1e-6)
                assert runs["genEventSumw"].sum() == pytest.approx(gw.sum(), rel=1e-6)
    assert fileset["qcd"]["metadata"]["filter_efficiency"] < 0.5  # the lepton filter is active
    assert fileset["wjets"]["metadata"]["filter_efficiency"] == 1.0
    # LO Pythia 8.317 at 13 TeV: sigma(W -> l nu, 3 flavours) = 45.3 nb, sigma(Z/gamma* -> ll, m > 50 GeV,
    # 3 flavours) = 4.67 nb, sigma(ttbar) = 516 pb (measured on 10^4-10^5 tried events; +-20 % leaves room
    # for the statistical error of Pythia's estimate on a few hundred events, not for a wrong process)
    assert fileset["wjets"]["metadata"]["xsec_pb"] == pytest.approx(45.3e3, rel=0.2)
    assert fileset["zjets"]["metadata"]["xsec_pb"] == pytest.approx(4.67e3, rel=0.2)
    assert fileset["ttbar"]["metadata"]["xsec_pb"] == pytest.approx(516.0, rel=0.2)


@pytest.mark.parametrize("process", sorted(COCKTAIL_EVENTS))
def test_nanoaod_schema_opens_without_missing_targets(generated_cocktail, process):
    events, messages = _events(generated_cocktail, process)
    assert len(events) == COCKTAIL_EVENTS[process]
    assert not [m for m in messages if "cross-reference target" in m], messages
    for collection in ("Muon", "Electron", "Photon", "Jet", "FatJet", "PFCands", "GenPart", "MET", "JetPFCands"):
        assert collection in events.fields
    # cross-references resolve to the right objects
    muons = ak.flatten(events.Muon)
    matched = muons[muons.genPartIdx >= 0]
    gen = ak.flatten(events.Muon.matched_gen[events.Muon.genPartIdx >= 0])
    assert ak.all(abs(gen.pdgId) == 13)
    assert ak.all(abs(matched.pt / gen.pt - 1) < 0.5)
    jets_with_mu = ak.flatten(events.Muon.matched_jet[events.Muon.jetIdx >= 0].pt)
    assert ak.all(jets_with_mu > 0)
    # jet constituents: JetPFCands point into PFCands, one entry per constituent
    assert ak.all(ak.sum(events.Jet.nConstituents, axis=1) == ak.num(events.JetPFCands))


def test_branch_types_match_real_nanoaod(generated_cocktail, real_nanoaod_files):
    fileset = json.loads((generated_cocktail / "fileset.json").read_text())
    ours = uproot.open(next(iter(fileset["ttbar"]["files"])))["Events"]
    reference: dict[str, str] = {}
    for path in real_nanoaod_files.values():
        with uproot.open(path) as f:
            for name, branch in f["Events"].items():
                reference.setdefault(name, branch.typename)
    shared = [b for b in ours.keys() if b in reference and not b.startswith("n")]  # noqa: SIM118 - uproot: iterating yields branches, keys() the names
    assert len(shared) > 80
    mismatched = {b: (ours[b].typename, reference[b]) for b in shared if ours[b].typename != reference[b]}
    # nConstituents is uint8 in the 2015 Open Data file and int32 in v9 NanoAOD; we follow v9
    mismatched.pop("Jet_nConstituents", None)
    assert not mismatched
    ours_only = sorted(b for b in ours.keys() if b not in reference and not b.startswith("n"))  # noqa: SIM118 - uproot: iterating yields branches, keys() the names
    assert ours_only == []  # every branch we write exists, with this name, in real (PF)NanoAOD


def _leptons(events):
    mu = events.Muon[(events.Muon.pt > 10) & (abs(events.Muon.eta) < 2.4)]
    el = events.Electron[(events.Electron.pt > 10) & (abs(events.Electron.eta) < 2.5)]
    return mu, el


def test_z_peak(generated_cocktail):
    events, _ = _events(generated_cocktail, "zjets")
    mu, el = _leptons(events)
    masses = []
    for lep in (mu, el):
        two = lep[(ak.num(lep) >= 2)]
        two = two[two[:, 0].charge != two[:, 1].charge]
        masses.append(ak.to_numpy((two[:, 0] + two[:, 1]).mass))
    mll = np.concatenate(masses)
    assert len(mll) > 60
    counts, edges = np.histogram(mll, bins=np.arange(60, 122, 2.0))
    peak = edges[np.argmax(counts)] + 1.0
    assert 88 <= peak <= 94
    assert 88 <= np.median(mll[(mll > 70) & (mll < 110)]) <= 94


def test_w_transverse_mass_edge(generated_cocktail):
    events, _ = _events(generated_cocktail, "wjets")
    mu, el = _leptons(events)
    lep = ak.concatenate([mu, el], axis=1)
    lep = lep[ak.argsort(lep.pt, ascending=False)]
    one = events[ak.num(lep) >= 1]
    l1 = lep[ak.num(lep) >= 1][:, 0]
    mt = np.sqrt(2 * l1.pt * one.MET.pt * (1 - np.cos(l1.phi - one.MET.phi)))
    mt = ak.to_numpy(mt)
    assert len(mt) > 100
    # Jacobian edge: the distribution piles up just below m_W and falls off above it
    assert 55 < np.percentile(mt, 75) < 90
    assert np.mean(mt > 100) < 0.1
    assert np.mean((mt > 50) & (mt < 90)) > 0.4


def test_ttbar_jets_and_btags(generated_cocktail):
    events, _ = _events(generated_cocktail, "ttbar")
    jets = events.Jet[(events.Jet.pt > 30) & (abs(events.Jet.eta) < 2.4)]
    n_jets = ak.num(jets)
    n_b = ak.sum(jets.btagDeepFlavB > MEDIUM_WP, axis=1)
    assert np.mean(n_jets >= 4) > 0.5
    # ~0.3 expected (both b jets inside pT > 30, |eta| < 2.4 in ~60 % of events, each tagged with ~0.7);
    # 200 events give +-0.03 (0.25 measured on the test cocktail)
    assert np.mean(n_b >= 2) > 0.2
    assert np.mean(n_b >= 1) > 0.7
    flat = ak.flatten(jets)
    b_eff = np.mean(ak.to_numpy(flat.btagDeepFlavB[flat.hadronFlavour == 5] > MEDIUM_WP))
    light_eff = np.mean(ak.to_numpy(flat.btagDeepFlavB[flat.hadronFlavour == 0] > MEDIUM_WP))
    assert 0.6 < b_eff < 0.8
    assert light_eff < 0.04
    assert np.mean(ak.to_numpy(flat.hadronFlavour == 5)) > 0.2  # two b jets among ~5-6 jets


def _lepton_efficiency(pid, pt, eta):
    """Tracking x identification efficiency of a generated e/mu (Delphes CMS card, the numbers of
    DetectorConfig written out here): muons |eta| < 2.4, pT > 3 GeV: 0.99 (0.98 for |eta| > 1.5) x
    0.80 (pT < 10 GeV) / 0.95; electrons |eta| < 2.5, pT > 5 GeV: 0.95 (0.85) x 0.70 (pT < 10) / 0.95
    (0.85)."""
    barrel = np.abs(eta) < 1.5
    muon = np.where(barrel, 0.99, 0.98) * np.where(pt < 10, 0.80, 0.95) * ((np.abs(eta) < 2.4) & (pt > 3))
    electron = np.where(barrel, 0.95, 0.85) * np.where(pt < 10, 0.70, np.where(barrel, 0.95, 0.85))
    electron = electron * ((np.abs(eta) < 2.5) & (pt > 5))
    return np.where(np.abs(pid) == 13, muon, electron)


def test_ato4l_four_lepton_rate_follows_the_lepton_efficiencies(generated_cocktail):
    """A -> Z Z* -> 4l: four prompt generated leptons; the events with four reconstructed prompt leptons
    are as many as the per-lepton efficiencies predict from the generated leptons (P(>= 4 of k) per
    event, summed), within 3 binomial standard deviations (measured: 15 events of 100, 14.4 +- 2.5
    predicted)."""
    events, _ = _events(generated_cocktail, "ato4l")
    gen = events.GenPart
    prompt = gen[(gen.status == 1) & ((abs(gen.pdgId) == 11) | (abs(gen.pdgId) == 13)) & gen.hasFlags(["isPrompt"])]
    assert np.mean(ak.num(prompt) == 4) > 0.95
    counts = ak.to_numpy(ak.num(prompt))
    eff = ak.unflatten(
        _lepton_efficiency(*(ak.to_numpy(ak.flatten(prompt[k])) for k in ("pdgId", "pt", "eta"))), counts
    )
    p_four = []
    for probs in ak.to_list(eff):  # Poisson-binomial: P(at least 4 of the event's leptons seen)
        dist = np.array([1.0])
        for p in probs:
            dist = np.convolve(dist, [1 - p, p])
        p_four.append(dist[4:].sum())
    expected = float(np.sum(p_four))
    sigma = float(np.sqrt(np.sum(np.array(p_four) * (1 - np.array(p_four)))))
    reco = [events.Muon, events.Electron]
    n_prompt = sum(ak.sum((lep.genPartFlav == 1) | (lep.genPartFlav == 15), axis=1) for lep in reco)
    observed = int(ak.sum(n_prompt >= 4))
    assert abs(observed - expected) < 3 * sigma + 1, (observed, expected, sigma)
    assert observed > 0.5 * expected > 5


def test_zprime_dijet_mass(generated_cocktail):
    events, _ = _events(generated_cocktail, "zprime_xy")
    fat = events.FatJet[ak.num(events.FatJet) >= 2]
    fat = fat[fat[:, 0].pt > 1200]  # the LHCO dijet selection
    assert len(fat) > 0.4 * COCKTAIL_EVENTS["zprime_xy"]
    mjj = ak.to_numpy((fat[:, 0] + fat[:, 1]).mass)
    assert 3000 < np.median(mjj) < 3700
    heavier = np.maximum(ak.to_numpy(fat[:, 0].mass), ak.to_numpy(fat[:, 1].mass))
    lighter = np.minimum(ak.to_numpy(fat[:, 0].mass), ak.to_numpy(fat[:, 1].mass))
    assert 420 < np.median(heavier) < 580  # X (500 GeV)
    assert 70 < np.median(lighter) < 170  # Y (100 GeV) plus radiation in R = 1.0
    flat = ak.flatten(events.FatJet)
    assert ak.all(flat.msoftdrop <= flat.mass * 1.001 + 0.5)  # grooming only removes radiation
    # ["tau2"], not .tau2: on Lorentz vectors the attribute is vector's tau^2 = m^2, not the field
    tau21 = ak.to_numpy(fat[:, 0]["tau2"] / fat[:, 0]["tau1"])
    assert 0 < np.median(tau21) < 0.5  # two-prong substructure (measured 0.41; QCD jets: ~0.6-0.7)


def test_met_balances_visible_momentum(generated_cocktail):
    events, _ = _events(generated_cocktail, "zjets")
    pf = events.PFCands
    px = ak.sum(pf.pt * np.cos(pf.phi), axis=1)
    py = ak.sum(pf.pt * np.sin(pf.phi), axis=1)
    np.testing.assert_allclose(ak.to_numpy(events.MET.pt), ak.to_numpy(np.hypot(px, py)), rtol=1e-3, atol=0.05)


@pytest.mark.parametrize(
    "changed", ["datasets/production.py", "datasets/cards.py", "datasets/cards/ttbar.toml", "core/__init__.py"]
)
def test_cocktail_cache_is_keyed_on_every_file_that_shapes_it(tmp_path, changed):
    """The test suite's cached cocktail: a change to any file of the production code or cards is a new key."""
    for folder in COCKTAIL_SOURCES:
        shutil.copytree(REPO_ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    before = cocktail_cache_name(tmp_path)
    assert before == cocktail_cache_name(REPO_ROOT)
    with (tmp_path / changed).open("a") as f:
        f.write("\n")
    assert cocktail_cache_name(tmp_path) != before
