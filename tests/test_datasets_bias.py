"""Tail-weighted generation (issue 15): Pythia's phase-space bias, the event weights through the file,
the fileset and the processor, and the agreement of weighted and unweighted spectra."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot
from cms_anomaly.datasets import production
from cms_anomaly.datasets.cards import CardError, parse_card
from cms_anomaly.processors import runner
from cms_anomaly.processors.processor import AnomalyProcessor
from scipy import stats

EVENTS = 1000
SEED = 3
HT_EDGES = np.array([0.0, 30, 60, 100, 150, 220, 320, 500, 5000])


@pytest.fixture(scope="module")
def two_productions(tmp_path_factory):
    """W + 1 parton (pTHat > 20 GeV), 1000 events unbiased and 1000 sampled ~ pTHat^4, same seed."""
    out = {}
    for tag, bias in (("unbiased", False), ("biased", True)):
        res = production.produce(
            ["wjets_hard"], out=tmp_path_factory.mktemp(tag), events=EVENTS, seed=SEED, executor="local", tail_bias=bias
        )
        out[tag] = res["datasets"]["wjets_hard"]
    return out


def _ht_and_xsec_weights(entry):
    """H_T of the jets with pT > 30 GeV, |eta| < 2.4 and the weight xsec x genWeight / sumw (pb) per event."""
    arrays = [uproot.open(f)["Events"].arrays(["Jet_pt", "Jet_eta", "genWeight"]) for f in entry["files"]]
    a = ak.concatenate(arrays)
    ht = ak.to_numpy(ak.sum(a.Jet_pt[(a.Jet_pt > 30) & (abs(a.Jet_eta) < 2.4)], axis=1))
    meta = entry["metadata"]
    return ht, ak.to_numpy(a.genWeight).astype(np.float64) * meta["xsec_pb"] / meta["sumw"]


@pytest.mark.slow
def test_biased_and_unbiased_spectra_agree_and_the_tail_gains(two_productions):
    """The weighted H_T spectra (pb per bin) agree bin by bin within their errors (chi2 p > 0.001 over the
    bins with >= 5 unbiased events; measured chi2 3.4 for 7 bins), the cross sections within 3 sigma;
    above 320 GeV the weighted sample has over 5x the effective events of the unbiased one (measured:
    5 unbiased events, n_eff 47), above 500 GeV >= 10 where the unbiased sample expects fewer than 1. A genWeight of 1 for the biased events would put 600x too much cross
    section into the last bin."""
    (ht_u, w_u), (ht_b, w_b) = (_ht_and_xsec_weights(two_productions[t]) for t in ("unbiased", "biased"))
    su, _ = np.histogram(ht_u, HT_EDGES, weights=w_u)
    s2u, _ = np.histogram(ht_u, HT_EDGES, weights=w_u**2)
    nu, _ = np.histogram(ht_u, HT_EDGES)
    sb, _ = np.histogram(ht_b, HT_EDGES, weights=w_b)
    s2b, _ = np.histogram(ht_b, HT_EDGES, weights=w_b**2)
    ok = nu >= 5
    chi2 = float((((su - sb) ** 2) / (s2u + s2b))[ok].sum())
    assert ok.sum() >= 6
    assert stats.chi2.sf(chi2, ok.sum()) > 1e-3, (chi2, su, sb)
    meta_u, meta_b = (two_productions[t]["metadata"] for t in ("unbiased", "biased"))
    assert abs(meta_u["xsec_pb"] - meta_b["xsec_pb"]) < 3 * 0.02 * meta_u["xsec_pb"]  # sigma_gen errors ~1 %

    def n_eff_above(cut):
        tail = w_b[ht_b > cut]
        return tail.sum() ** 2 / np.square(tail).sum()

    assert n_eff_above(320) > 5 * np.count_nonzero(ht_u > 320)
    # above 500 GeV: the unbiased sample expects EVENTS x fraction < 1 event, the weighted one has >= 10
    assert EVENTS * w_b[ht_b > 500].sum() / w_b.sum() < 1
    assert n_eff_above(500) >= 10


@pytest.mark.slow
def test_weights_flow_into_the_file_the_fileset_and_the_processor(two_productions):
    """The biased file's genWeight varies (pTHat^-4) and sums to the fileset's sumw and the Runs tree's
    genEventSumw; n_eff is Kish's; the processor with a luminosity gives the process's cross section x
    luminosity as the sum of its weights, biased or not."""
    for tag, entry in two_productions.items():
        meta = entry["metadata"]
        (path,) = entry["files"]
        with uproot.open(path) as f:
            gw = f["Events"]["genWeight"].array(library="np").astype(np.float64)
            runs_sumw = float(f["Runs"]["genEventSumw"].array(library="np").sum())
        assert meta["sumw"] == pytest.approx(gw.sum(), rel=1e-6)
        assert runs_sumw == pytest.approx(gw.sum(), rel=1e-6)
        assert meta["n_eff"] == pytest.approx(gw.sum() ** 2 / np.square(gw).sum(), rel=1e-5)
        if tag == "biased":
            assert meta["tail_bias"] == {"power": 4.0, "reference": 20.0}
            assert gw.max() / gw.min() > 100
            assert meta["n_eff"] < 0.1 * EVENTS
        else:
            assert meta["tail_bias"] is None
            np.testing.assert_array_equal(gw, 1.0)
        fs = {"w": {"files": entry["files"], "metadata": meta}}
        with runner.make_executor("iterative") as ex:
            out = runner.run_processor(fs, AnomalyProcessor(selection="inclusive", lumi_pb=10.0), executor=ex)["w"]
        assert out["cutflow"]["sumw"]["all"] == pytest.approx(meta["xsec_pb"] * 10.0, rel=1e-5)


def test_bias_table_is_validated_and_cannot_be_set_as_a_raw_setting():
    base = 'name = "x"\ndescription = "d"\nis_signal = false\nsettings = ["HardQCD:all = on"]\n'
    card = parse_card(base + "[bias]\npower = 4\nreference = 30.0\n")
    assert card.bias.settings() == (
        "PhaseSpace:bias2Selection = on",
        "PhaseSpace:bias2SelectionPow = 4.0",
        "PhaseSpace:bias2SelectionRef = 30.0",
    )
    for bad in ("power = 4\n", "power = -1\nreference = 30\n", "power = 4\nreference = 30\nextra = 1\n"):
        with pytest.raises(CardError, match=r"\[bias\]"):
            parse_card(base + "[bias]\n" + bad)
    with pytest.raises(CardError, match="reserved"):
        parse_card(base.replace('"]', '", "PhaseSpace:bias2Selection = on"]'))


def test_a_bias_on_a_2_to_1_process_is_refused():
    """PhaseSpace:bias2Selection acts on 2 -> 2 processes only: Pythia does not initialise the inclusive
    W card (2 -> 1) with it, and the error says why in one line."""
    from cms_anomaly.datasets.cards import PhaseSpaceBias, load_card
    from cms_anomaly.datasets.generator import GeneratorError, PythiaGenerator

    with pytest.raises(GeneratorError, match=r"wjets.toml: .*\[bias\]: PhaseSpace:bias2Selection needs 2 -> 2"):
        PythiaGenerator(load_card("wjets"), seed=5, bias=PhaseSpaceBias(power=4.0, reference=20.0))


@pytest.mark.slow
def test_pseudo_data_refuses_a_tail_weighted_sample(two_productions, tmp_path):
    """Pseudo-data takes a process's events as they come: weighted events would be counted as unweighted
    ones. The biased sample is refused in one line naming it; the unbiased one is mixed."""
    from cms_anomaly.datasets.mixture import MixtureError, build_pseudo_data

    with pytest.raises(MixtureError, match="wjets_hard: the sample is tail-weighted"):
        build_pseudo_data(
            {"wjets_hard": two_productions["biased"]},
            processes=["wjets_hard"],
            out=tmp_path / "b",
            seed=1,
            lumi_pb=0.01,
        )
    entry = build_pseudo_data(
        {"wjets_hard": two_productions["unbiased"]}, processes=["wjets_hard"], out=tmp_path / "u", seed=1, lumi_pb=0.01
    )
    assert entry
