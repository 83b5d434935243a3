"""Muons, electrons and photons of the detector response: identification of PF candidates, isolation sums,
H/E and the NanoAOD fields of the three collections."""

from __future__ import annotations

import numba
import numpy as np
from cms_anomaly.datasets.detector_config import DetectorConfig


@numba.njit(cache=True)
def _cone_sums(c_eta, c_phi, c_self, c_evt, o_eta, o_phi, o_pt, o_code, o_offsets, radius2, n_codes):
    """sum of ``o_pt`` per (centre, category code) for "others" of the same event within dR^2 < radius2.

    ``c_self`` is the index of the centre among the others (excluded), or -1.
    """
    out = np.zeros((len(c_eta), n_codes))
    for i in range(len(c_eta)):
        ev = c_evt[i]
        for j in range(o_offsets[ev], o_offsets[ev + 1]):
            if j == c_self[i]:
                continue
            dphi = (c_phi[i] - o_phi[j] + np.pi) % (2 * np.pi) - np.pi
            deta = c_eta[i] - o_eta[j]
            if deta * deta + dphi * dphi < radius2:
                out[i, o_code[j]] += o_pt[j]
    return out


def _id_passed(
    pf: dict[str, np.ndarray],
    pdg: int,
    *,
    abs_eta_max: float,
    pt_min: float,
    eff: tuple[float, ...],
    rng: np.random.Generator,
    config: DetectorConfig,
) -> np.ndarray:
    """PF candidates of |pdgId| ``pdg`` identified as such (a random draw against the efficiency).

    ``eff``: (low pT, barrel, endcap) for leptons, (barrel, endcap) for photons.
    """
    abs_eta = np.abs(pf["eta"])
    barrel = abs_eta < config.barrel_abs_eta
    prob = np.where(barrel, eff[-2], eff[-1])
    if len(eff) == 3:
        prob = np.where(pf["pt"] < config.id_low_pt, eff[0], prob)
    return np.flatnonzero(
        (np.abs(pf["pdgId"]) == pdg) & (abs_eta < abs_eta_max) & (pf["pt"] > pt_min) & (rng.random(len(abs_eta)) < prob)
    )


def _leptons_and_photons(
    pf: dict[str, np.ndarray], common: dict, rng: np.random.Generator, config: DetectorConfig
) -> dict[str, tuple[dict[str, np.ndarray], np.ndarray]]:
    """Step 4: ``{"Muon"|"Electron"|"Photon": (NanoAOD fields, PF indices)}``."""
    ones = lambda n: np.ones(n, dtype=bool)
    mu_sel = _id_passed(
        pf,
        13,
        abs_eta_max=config.muon_abs_eta,
        pt_min=config.muon_pt_min,
        eff=config.eff_id_muon,
        rng=rng,
        config=config,
    )
    muons = _lepton_collection(mu_sel, **common)
    tight = rng.random(len(mu_sel)) < config.eff_muon_tight
    muons["tightId"] = tight
    muons["mediumId"] = tight | (rng.random(len(mu_sel)) < config.eff_muon_medium)
    muons["looseId"] = ones(len(mu_sel))
    for flag in ("isPFcand", "isGlobal", "isTracker"):  # every simulated muon is a PF global+tracker muon
        muons[flag] = ones(len(mu_sel))
    ele_sel = _id_passed(
        pf,
        11,
        abs_eta_max=config.tracker_abs_eta,
        pt_min=config.electron_pt_min,
        eff=config.eff_id_electron,
        rng=rng,
        config=config,
    )
    electrons = _lepton_collection(ele_sel, **common)
    electrons.pop("pfRelIso04_all")  # NanoAOD electrons carry dR = 0.3 isolation only
    # cut-based id (0 fail, 1 veto, 2 loose, 3 medium, 4 tight) from the relative isolation
    edges = config.electron_cut_based_iso
    electrons["cutBased"] = (len(edges) - np.digitize(electrons["pfRelIso03_all"], edges)).astype(np.int32)
    electrons["photonIdx"] = np.full(len(ele_sel), -1, dtype=np.int32)
    # identification without isolation (the ID efficiency above decided which electrons exist)
    electrons["mvaFall17V2noIso_WPL"] = ones(len(ele_sel))
    pho_cand = _id_passed(
        pf,
        22,
        abs_eta_max=config.tracker_abs_eta,
        pt_min=config.photon_pt_min,
        eff=config.eff_id_photon,
        rng=rng,
        config=config,
    )
    hoe = _hadronic_over_em(pf, common["pf_evt"], pho_cand, common["n_events"], cone=config.photon_hoe_cone)
    reconstructed = hoe < config.photon_hoe_max
    pho_sel = pho_cand[reconstructed]
    photons = _lepton_collection(pho_sel, **common)
    photons["hoe"] = hoe[reconstructed].astype(np.float32)
    for key in ("dxy", "dz", "pfRelIso04_all"):
        photons.pop(key)
    edges = config.photon_cut_based_iso
    photons["cutBased"] = (len(edges) - np.digitize(photons["pfRelIso03_all"], edges)).astype(np.int32)
    photons["electronIdx"] = np.full(len(pho_sel), -1, dtype=np.int32)
    return {"Muon": (muons, mu_sel), "Electron": (electrons, ele_sel), "Photon": (photons, pho_sel)}


def _isolation(pf: dict[str, np.ndarray], pf_evt: np.ndarray, cand: np.ndarray, n_events: int) -> dict[str, np.ndarray]:
    """Isolation sums around PF candidates ``cand`` (global PF indices, event-ordered).

    Returns absolute sums (GeV) of charged hadrons, neutral hadrons and photons within dR < 0.3,
    and of all three within dR < 0.4, excluding the candidate itself.
    """
    offsets = np.concatenate([[0], np.cumsum(np.bincount(pf_evt, minlength=n_events))])
    pdg = np.abs(pf["pdgId"])
    code = np.select([pdg == 211, pdg == 130, pdg == 22], [0, 1, 2], 3)
    args = (
        pf["eta"][cand],
        pf["phi"][cand],
        cand,
        pf_evt[cand],
        pf["eta"],
        pf["phi"],
        pf["pt"].astype(np.float64),
        code,
        offsets,
    )
    s03 = _cone_sums(*args, 0.09, 4)
    s04 = _cone_sums(*args, 0.16, 4)
    return {"ch": s03[:, 0], "neu": s03[:, 1], "pho": s03[:, 2], "all04": s04[:, :3].sum(axis=1)}


def _hadronic_over_em(
    pf: dict[str, np.ndarray], pf_evt: np.ndarray, cand: np.ndarray, n_events: int, *, cone: float
) -> np.ndarray:
    """H/E of the PF photons ``cand``: pT of the PF hadrons within dR < ``cone`` over the photon pT."""
    offsets = np.concatenate([[0], np.cumsum(np.bincount(pf_evt, minlength=n_events))])
    pdg = np.abs(pf["pdgId"])
    code = np.where((pdg == 211) | (pdg == 130), 0, 1)
    sums = _cone_sums(
        pf["eta"][cand],
        pf["phi"][cand],
        cand,
        pf_evt[cand],
        pf["eta"],
        pf["phi"],
        pf["pt"].astype(np.float64),
        code,
        offsets,
        cone**2,
        2,
    )
    return sums[:, 0] / np.maximum(pf["pt"][cand].astype(np.float64), 1e-6)


def _lepton_collection(sel: np.ndarray, *, pf, pf_evt, pf_jet_idx, truth, pf_truth, n_events) -> dict[str, np.ndarray]:
    """NanoAOD fields of the PF candidates ``sel`` promoted to muons/electrons/photons."""
    iso = _isolation(pf, pf_evt, sel, n_events)
    pt = pf["pt"][sel].astype(np.float64)
    safe = np.maximum(pt, 1e-6)
    g = pf_truth[sel]
    return {
        "pt": pf["pt"][sel],
        "eta": pf["eta"][sel],
        "phi": pf["phi"][sel],
        "mass": pf["mass"][sel],
        "charge": pf["charge"][sel],
        "pdgId": pf["pdgId"][sel],
        "pfRelIso03_all": ((iso["ch"] + iso["neu"] + iso["pho"]) / safe).astype(np.float32),
        "pfRelIso03_chg": (iso["ch"] / safe).astype(np.float32),
        "pfRelIso04_all": (iso["all04"] / safe).astype(np.float32),
        "dxy": pf["d0"][sel],
        "dz": pf["dz"][sel],
        "jetIdx": pf_jet_idx[sel].astype(np.int32),
        "genPartIdx": truth.new_index[g].astype(np.int32),
        "genPartFlav": np.where(truth.new_index[g] >= 0, truth.flav[g], 0).astype(np.uint8),
    }
