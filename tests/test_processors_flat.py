"""The flat-column machinery under the objects and features, against references built another way.

Each reference is written with awkward's own operations (``ak.argsort``, ``ak.cartesian``, boolean
masks) or by hand, not with the code under test.
"""

from __future__ import annotations

import dataclasses

import awkward as ak
import numpy as np
import pytest
from cms_anomaly.processors import features as features_mod
from cms_anomaly.processors.config import AnalysisConfig
from cms_anomaly.processors.features import CutFeatures, scalar_features, trigger_lepton
from cms_anomaly.processors.flat import FlatCollection, jagged_parts
from cms_anomaly.processors.objects import PFMultiplicities, build_objects, delta_r
from nanoaod_events import ele, event, jet, mu

CFG = AnalysisConfig()


def _random_collection(rng, n_events, max_objects, *, ties=False):
    counts = rng.integers(0, max_objects + 1, n_events)
    n = int(counts.sum())
    pt = rng.choice([20.0, 30.0, 40.0], n) if ties else rng.exponential(40.0, n) + 5.0
    return FlatCollection(
        counts,
        {
            "pt": pt,
            "eta": rng.uniform(-2.5, 2.5, n),
            "phi": rng.uniform(-np.pi, np.pi, n),
            "tag": np.arange(n, dtype=np.int64),
        },
    )


def test_jagged_parts_reads_sliced_and_masked_layouts():
    arr = ak.Array([[1.0, 2.0], [3.0], [], [4.0, 5.0, 6.0]])
    sliced = arr[1:]  # offsets start at 2: the values before them are not this array's
    counts, values = jagged_parts(sliced)
    assert counts.tolist() == [1, 0, 3]
    assert values.tolist() == [3.0, 4.0, 5.0, 6.0]
    masked = arr[np.array([True, False, True, True])]  # a ListArray after an event mask
    counts, values = jagged_parts(masked)
    assert counts.tolist() == [2, 0, 3]
    assert values.tolist() == [1.0, 2.0, 4.0, 5.0, 6.0]


def test_select_and_to_awkward_match_an_awkward_mask():
    rng = np.random.default_rng(1)
    coll = _random_collection(rng, 200, 5)
    keep = rng.random(len(coll.columns["pt"])) < 0.4
    ref = coll.to_awkward()[ak.unflatten(keep, coll.counts)]
    got = coll.select(keep).to_awkward()
    assert ak.fields(got) == ["pt", "eta", "phi", "tag"]
    assert ak.to_list(got) == ak.to_list(ref)


def test_pt_order_is_awkwards_stable_descending_sort():
    rng = np.random.default_rng(2)
    coll = _random_collection(rng, 300, 6, ties=True)  # many equal pT: the order of ties matters
    arr = coll.to_awkward()
    ref = arr[ak.argsort(arr.pt, axis=1, ascending=False, stable=True)]
    assert ak.to_list(coll.sorted_by_pt().to_awkward().tag) == ak.to_list(ref.tag)


@pytest.mark.parametrize("min_pt_fraction", [0.0, 0.5])
def test_overlap_removal_against_all_pairs(min_pt_fraction):
    """Removed exactly when some object of either other collection is within dR (and hard enough)."""
    rng = np.random.default_rng(3)
    coll, a, b = (_random_collection(rng, 400, k) for k in (4, 2, 3))
    keep = coll.keep_isolated_from(a, b, dr=0.8, min_pt_fraction=min_pt_fraction)
    objs = coll.to_awkward()
    close = []
    for other in (a.to_awkward(), b.to_awkward()):
        x, y = ak.unzip(ak.cartesian([objs, other], axis=1, nested=True))
        hit = delta_r(x.eta, x.phi, y.eta, y.phi) < 0.8
        if min_pt_fraction > 0:
            hit = hit & (y.pt > min_pt_fraction * x.pt)
        close.append(ak.any(hit, axis=2))
    expected = ak.to_numpy(ak.flatten(~(close[0] | close[1])))
    np.testing.assert_array_equal(keep, expected)
    assert 0 < keep.sum() < len(keep)  # both outcomes occur


def test_trigger_lepton_prefers_the_muon_on_a_tie_and_needs_isolation():
    config = dataclasses.replace(CFG.objects, trigger_iso_max=0.1)  # tighter than the objects' 0.45
    ev = event(
        muons=[mu(pt=40.0, eta=0.5, iso=0.05), mu(pt=60.0, eta=1.0, phi=2.0, iso=0.2)],
        electrons=[ele(pt=40.0, eta=-0.5, phi=-2.0, iso=0.05)],
    )
    objs = build_objects(ev, config=config)
    assert ak.num(objs.muons).tolist() == [2]  # the 60 GeV muon is a selected lepton ...
    lep = trigger_lepton(objs, config=config)
    assert lep["has"].tolist() == [True]
    assert lep["flavour"].tolist() == [13]  # ... but not a trigger lepton; the 40 GeV pair ties
    assert lep["eta"][0] == pytest.approx(0.5)
    assert lep["iso"][0] == pytest.approx(0.05, rel=1e-6)


def test_pf_multiplicities_of_a_subset_are_counted_on_its_events():
    rng = np.random.default_rng(4)
    counts = rng.integers(0, 30, 50)
    n = int(counts.sum())
    charge = rng.choice([-1, 0, 1], n)
    pdgid = np.where(charge == 0, rng.choice([22, 130], n), rng.choice([211, -11, 13], n) * charge)
    offsets = np.concatenate(([0], np.cumsum(counts)))
    whole = PFMultiplicities(offsets, charge, pdgid, np.arange(len(counts)))
    mask = rng.random(len(counts)) < 0.5
    np.testing.assert_array_equal(whole[mask].counts, whole.counts[mask])
    # by hand: charged hadrons are charged and not e/mu, photons neutral pdgId 22
    ev = np.repeat(np.arange(len(counts)), counts)
    is_lep = np.isin(np.abs(pdgid), (11, 13))
    np.testing.assert_array_equal(whole.counts[:, 0], np.bincount(ev[(charge != 0) & ~is_lep], minlength=len(counts)))
    np.testing.assert_array_equal(
        whole.counts[:, 2], np.bincount(ev[(charge == 0) & (pdgid == 22)], minlength=len(counts))
    )


def test_cut_features_count_objects_without_computing_the_rest(monkeypatch):
    ev = event(muons=[mu(pt=40.0, iso=0.05)], jets=[jet(pt=50.0, eta=1.5), jet(pt=35.0, eta=-1.5, phi=2.0)])
    objs = build_objects(ev, config=CFG.objects)
    reference = scalar_features(objs, config=CFG)

    def refuse(*args, **kwargs):
        raise AssertionError("a count made the features of every event")

    monkeypatch.setattr(features_mod, "scalar_features", refuse)
    lazy = CutFeatures(objs, config=CFG)
    assert lazy["n_jets"].tolist() == [2]
    assert lazy["n_mu"].tolist() == [1]
    monkeypatch.undo()
    lazy = CutFeatures(objs, config=CFG)
    assert lazy["ht"].tolist() == pytest.approx([85.0])  # any other feature: all of them, once
    assert set(lazy) == set(reference)
    for name, values in reference.items():
        np.testing.assert_array_equal(lazy[name], values)


def test_event_subset_keeps_whole_events():
    rng = np.random.default_rng(5)
    coll = _random_collection(rng, 100, 4)
    mask = rng.random(100) < 0.3
    got = coll.events(mask)
    assert len(got) == int(mask.sum())
    assert ak.to_list(got.to_awkward()) == ak.to_list(coll.to_awkward()[mask])


def test_event_objects_subset_and_jagged_views():
    ev = event(muons=[mu(pt=40.0, iso=0.05)], jets=[jet(pt=50.0, eta=1.5), jet(pt=35.0, eta=-1.5, phi=2.0)])
    both = ak.concatenate([ev, event(jets=[jet(pt=70.0)])])
    objs = build_objects(both, config=CFG.objects)
    assert ak.to_list(objs.jets.pt) == [[50.0, 35.0], [70.0]]
    assert objs.jets is objs.jets  # built once
    second = objs.subset(np.array([False, True]))
    assert len(second) == 1
    assert ak.to_list(second.jets.pt) == [[70.0]]
    assert ak.num(second.muons).tolist() == [0]
    assert second.met_pt.tolist() == [0.0]


def test_nth_and_count_per_event():
    rng = np.random.default_rng(6)
    coll = _random_collection(rng, 200, 4)
    arr = coll.to_awkward()
    for n in (0, 1, 3):
        ref = ak.fill_none(ak.pad_none(arr.pt, n + 1, axis=1)[:, n], -1.0)
        np.testing.assert_array_equal(coll.nth("pt", n, default=-1.0), ak.to_numpy(ref))
    mask = coll.columns["pt"] > 40.0
    np.testing.assert_array_equal(coll.count(mask), ak.to_numpy(ak.sum(arr.pt > 40.0, axis=1)))


def test_cut_features_of_the_selected_events_either_way():
    ev = ak.concatenate(
        [event(muons=[mu(pt=40.0, iso=0.05)], jets=[jet(pt=50.0, eta=1.5)]), event(jets=[jet(pt=70.0)])]
    )
    objs = build_objects(ev, config=CFG.objects)
    mask = np.array([True, False])
    expected = scalar_features(objs.subset(mask), config=CFG)
    untouched, read = CutFeatures(objs, config=CFG), CutFeatures(objs, config=CFG)
    assert read["ht"].tolist() == pytest.approx([50.0, 70.0])  # a cut made the features of every event
    for lazy in (untouched, read):
        got = lazy.of_selected(mask, objs.subset(mask))
        assert set(got) == set(expected)
        for name, values in expected.items():
            np.testing.assert_array_equal(got[name], values)
