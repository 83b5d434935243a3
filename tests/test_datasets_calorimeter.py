"""Calorimeter cells and the neutral PF candidates: rules by hand, and the spectra against real PFNano."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot
from cms_anomaly.datasets.calorimeter import Cells, Deposits, cells, neutral_candidates, tower_keys
from cms_anomaly.datasets.detector_config import DetectorConfig
from scipy.stats import ks_2samp

CFG = DetectorConfig()
EXACT = (0.0, 0.0, 0.0)


def _deposits(rows):
    """Deposits from (event, E, eta, phi, linked E, linked variance) rows."""
    cols = list(zip(*rows, strict=True))
    return Deposits(
        evt=np.array(cols[0], dtype=np.int64),
        energy=np.array(cols[1], dtype=np.float64),
        eta=np.array(cols[2]),
        phi=np.array(cols[3]),
        linked=np.array(cols[4], dtype=np.float64),
        linked_var=np.array(cols[5], dtype=np.float64),
        truth=np.arange(len(rows)),
    )


def _cells(rows, grid) -> Cells:
    """Measured cells written by hand: (E, sigma, linked E, linked variance, eta, phi) rows, event 0."""
    e, sigma, linked, var, eta, phi = (np.array(c, dtype=np.float64) for c in zip(*rows, strict=True))
    key, inside = tower_keys(np.zeros(len(rows), dtype=np.int64), eta, phi, grid)
    assert inside.all()
    assert len(np.unique(key)) == len(key)  # one row per cell
    o = np.argsort(key)
    return Cells(key[o], np.zeros(len(o), dtype=np.int64), e[o], sigma[o], linked[o], var[o], eta[o], phi[o], o)


def test_ecal_cells_merge_deposits_of_one_crystal_only():
    """Two photons in one 0.0174 x 2pi/360 crystal are one cell (summed energy, energy-weighted direction,
    the larger photon as its truth); a photon one crystal further in eta is its own cell. Exact resolution."""
    dep = _deposits(
        [
            (0, 3.0, 0.001, 0.001, 0.0, 0.0),
            (0, 1.0, 0.010, 0.012, 0.0, 0.0),  # same crystal: eta 0-0.0174, phi 0-0.01745
            (0, 2.0, 0.030, 0.001, 0.0, 0.0),  # next crystal in eta
            (1, 0.4, 0.5, 0.5, 0.0, 0.0),
        ]
    )
    c = cells(
        dep, CFG.ecal_towers, res_central=EXACT, res_forward=EXACT, forward_abs_eta=3.0, rng=np.random.default_rng(1)
    )
    assert c.evt.tolist() == [0, 0, 1]
    np.testing.assert_allclose(c.energy, [4.0, 2.0, 0.4])
    np.testing.assert_allclose(c.eta[0], (3 * 0.001 + 0.010) / 4)
    np.testing.assert_allclose(c.phi[0], (3 * 0.001 + 0.012) / 4)
    assert c.truth.tolist() == [0, 2, 3]


def test_tower_keys_follow_the_configured_grid():
    """HCAL: 0.087 x 5-degree towers up to |eta| 1.74, 0.174 x 10-degree beyond, HF 0.175; the two sides of eta = 0 and of a
    5-degree phi edge are different towers; beyond |eta| 5 nothing."""
    grid = CFG.hcal_towers
    eta = np.array([0.01, 0.08, -0.01, 0.01, 1.75, 1.90, 1.93, 3.01, 5.2, 2.0, 2.0])
    phi = np.array([0.01, 0.08, 0.01, 0.09, 0.0, 0.0, 0.0, 0.0, 0.0, 0.05, 0.15])
    key, inside = tower_keys(np.zeros(len(eta), dtype=np.int64), eta, phi, grid)
    assert inside.tolist() == [True] * 8 + [False, True, True]
    assert key[9] == key[10]  # one 10-degree tower beyond |eta| 1.74
    assert key[0] == key[1]  # same 0.087 x 0.087 tower
    assert len({key[0], key[2], key[3]}) == 3  # other side in eta; next tower in phi (edge at 0.0873)
    assert key[4] == key[5] != key[6]  # 0.174 towers from 1.74: [1.74, 1.914), [1.914, 2.088)
    assert key[7] not in key[:7]
    # events never share a key
    assert tower_keys(np.array([1]), eta[:1], phi[:1], grid)[0][0] != key[0]


def test_particle_flow_on_cells_by_hand():
    """Blocks, free cells and electron cells with measured energies set by hand (thresholds 0.5 / 1.0 GeV,
    1 sigma): every candidate's energy worked out by hand."""
    hcal = _cells(
        [
            (20.0, 3.0, 9.0, 0.25, 0.5, 0.5),  # A: tracked, excess 20 + 4 - 9 = 15 > 3.05
            (10.0, 3.0, 9.5, 0.25, -1.0, 2.0),  # B: tracked, excess 10 + 1 - 9.5 = 1.5 < 3.05: nothing
            (3.0, 2.6, 0.0, 0.0, 1.0, -1.0),  # C: no track: a 3 GeV neutral hadron
            (0.8, 1.3, 0.0, 0.0, 0.0, -2.5),  # D: no track, below 1 GeV: nothing
        ],
        CFG.hcal_towers,
    )
    ecal = _cells(
        [
            (4.0, 0.2, 0.0, 0.0, 0.48, 0.47),  # in block A: its ECAL energy, a 4 GeV photon
            (1.0, 0.1, 0.0, 0.0, -1.01, 1.99),  # in block B: absorbed
            (5.0, 0.2, 0.0, 0.0, 1.01, -1.01),  # in front of untracked C: a free 5 GeV photon
            (0.6, 0.4, 0.0, 0.0, 2.0, 1.0),  # free, above 0.5 GeV
            (0.4, 0.4, 0.0, 0.0, 2.0, -1.0),  # free, below 0.5 GeV
            (40.0, 0.7, 39.2, 0.49, -0.3, -2.0),  # electron cell: 0.8 GeV excess < 1 sigma = 0.99 GeV
        ],
        CFG.ecal_towers,
    )
    pho, nh = neutral_candidates(ecal, hcal, CFG)
    e_pho = pho.pt * np.cosh(pho.eta)
    np.testing.assert_allclose(np.sort(e_pho), [0.6, 4.0, 5.0])
    block_photon = np.argmax(np.isclose(e_pho, 4.0))
    assert (pho.eta[block_photon], pho.phi[block_photon]) == pytest.approx((0.48, 0.47))
    e_nh = nh.pt * np.cosh(nh.eta)
    np.testing.assert_allclose(np.sort(e_nh), [3.0, 11.0])  # C, and A's excess beyond its ECAL energy
    assert nh.eta[np.argmax(e_nh)] == pytest.approx(0.5)


# ----------------------------------------------------------------------------------------------
# against the real PFNano sample
# ----------------------------------------------------------------------------------------------
#: the real sample's process: tests/samples/pfnano.root is CMS QCD multijet simulation with the hard
#: scale (``Generator_binvar``) between 1.43 and 1.78 TeV and 23-40 pile-up interactions
#: (``Pileup_nPU``); the generated sample is Pythia 8 QCD in pTHat 1.4-1.8 TeV without pile-up
QCD_1400 = ("HardQCD:all = on", "PhaseSpace:pTHatMin = 1400.", "PhaseSpace:pTHatMax = 1800.")
N_GENERATED = 60
#: the comparison region: candidates within dR < 0.4 of the two leading AK4 jets, |eta| < 2.5 and
#: pT > 1 GeV (pfnano.root keeps every packed PF candidate, down to 0.03 GeV: no storage threshold).
#: Inside the ~1.5 TeV jets pile-up adds little: the real file has 12 more neutral hadrons per
#: event with pT > 1 GeV over |eta| < 2.5 than the generated events (~0.4 per unit of eta-phi area),
#: against ~8 per event in the jets' area of ~1.
CONE_R2, ABS_ETA_MAX, PT_MIN = 0.16, 2.5, 1.0
#: tolerances: a factor 1.5 on the multiplicity per event, the mean and the median pT, and a two-sample
#: KS distance below 0.2 (the 99 % critical value for the 81 real neutral hadrons against ~500
#: generated ones is 0.19): towers of a fixed grid are not CMS's topological clusters, the real
#: sample has 10 events (its mean pT rests on a few photons above 500 GeV), and its
#: pile-up is absent from the generated one
RATIO_TOL, KS_MAX = 1.5, 0.2


def _in_leading_jets(pf, jets, pdg):
    near = np.zeros_like(ak.to_numpy(ak.flatten(pf.pt)), dtype=bool)
    for j in range(2):
        jet = ak.pad_none(jets, 2)[:, j]
        dphi = (pf.phi - jet.phi + np.pi) % (2 * np.pi) - np.pi
        dr2 = ak.fill_none((pf.eta - jet.eta) ** 2 + dphi**2, 99.0)
        near |= ak.to_numpy(ak.flatten(dr2 < CONE_R2))
    flat = {k: ak.to_numpy(ak.flatten(pf[k])) for k in ("pt", "eta", "pdgId")}
    keep = near & (np.abs(flat["pdgId"]) == pdg) & (np.abs(flat["eta"]) < ABS_ETA_MAX) & (flat["pt"] > PT_MIN)
    return flat["pt"][keep]


@pytest.fixture(scope="module")
def generated_qcd():
    from cms_anomaly.datasets.cards import ProcessCard
    from cms_anomaly.datasets.detector import simulate
    from cms_anomaly.datasets.generator import PythiaGenerator

    card = ProcessCard(name="qcd_pthat_1400_1800", description="as pfnano.root", is_signal=False, settings=QCD_1400)
    gen = PythiaGenerator(card, seed=11)
    (batch, _), *_ = gen.batches(N_GENERATED, batch_size=N_GENERATED)
    out = simulate(batch, gen.charges(ak.to_numpy(ak.flatten(batch.prt.id))), rng=np.random.default_rng(11))
    return out["PFCands"], out["Jet"]


@pytest.mark.slow
@pytest.mark.parametrize(("pdg", "name"), [(22, "photons"), (130, "neutral hadrons")])
def test_neutral_candidates_in_jets_match_the_real_pfnano_sample(generated_qcd, real_nanoaod_files, pdg, name):
    events = uproot.open(real_nanoaod_files["pfnano"])["Events"].arrays(
        ["PFCands_pt", "PFCands_eta", "PFCands_phi", "PFCands_pdgId", "Jet_eta", "Jet_phi"]
    )
    real_pf = ak.zip({k: events[f"PFCands_{k}"] for k in ("pt", "eta", "phi", "pdgId")})
    real = _in_leading_jets(real_pf, ak.zip({"eta": events.Jet_eta, "phi": events.Jet_phi}), pdg)
    gen = _in_leading_jets(*generated_qcd, pdg)
    ratios = {
        "per event": (len(gen) / N_GENERATED) / (len(real) / len(events)),
        "mean pT": gen.mean() / real.mean(),
        "median pT": np.median(gen) / np.median(real),
    }
    ks = ks_2samp(gen, real).statistic
    summary = (
        f"{name}: generated / real {', '.join(f'{k} {v:.2f}' for k, v in ratios.items())}, KS {ks:.3f}; real"
        f" {len(real) / len(events):.1f} per event, mean {real.mean():.1f}, median {np.median(real):.2f} GeV;"
        f" generated {len(gen) / N_GENERATED:.1f}, {gen.mean():.1f}, {np.median(gen):.2f} GeV"
    )
    for what, ratio in ratios.items():
        assert 1 / RATIO_TOL < ratio < RATIO_TOL, f"{what} off: {summary}"
    assert ks < KS_MAX, summary
