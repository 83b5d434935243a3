"""A parametric CMS-like detector response, columnar over batches of Pythia events.

Input: one batch of events from ``Pythia.nextBatch`` (awkward, full event record) and the charge
of every particle. Output: NanoAOD collections (awkward records with NanoAOD field names and types)
ready for :mod:`cms_anomaly.datasets.nanoaod`.

Chain, all on flat numpy arrays of the final-state particles of the whole batch:

1. **Tracking** of charged particles (|eta| < 2.5) with pT- and eta-dependent efficiency and
   relative pT resolution; untracked charged hadrons are seen by the calorimeters.
2. **Calorimetry** (:mod:`~cms_anomaly.datasets.calorimeter`): photons and electrons deposit in
   ECAL cells (0.0174 x 0.0174 up to |eta| 3, HF up to 5), all hadrons in HCAL towers (0.087 x
   0.087, coarser beyond |eta| 1.74); each cell's summed energy is smeared with a stochastic/noise/
   constant resolution.
3. **Particle flow candidates** (``PFCands``): tracked charged hadrons (pdgId +-211), electrons
   (+-11) and muons (+-13); photons (22) and neutral hadrons (130) from the cells: a cell without a
   track above its threshold, or the significant excess of a block's calorimeter energy over its
   tracks' momenta (CMS PF); pT-ordered per event.
4. **Leptons and photons**: identification efficiency on the PF leptons/photons; isolation sums
   of PF candidates in dR < 0.3 (and 0.4) split into charged-hadron, neutral-hadron and photon parts.
5. **Jets**: anti-kT R = 0.4 (``Jet``, pT > 15 GeV) and R = 1.0 (``FatJet``, pT > 150 GeV) with
   fastjet on all PF candidates; hadron flavour from B/C-hadron association (dR < R); a
   ``btagDeepFlavB``-like score drawn from flavour-dependent logit-normal distributions tuned to the
   DeepJet working points; N-subjettiness tau1..tau3 (exclusive-kT axes, beta = 1) and soft-drop mass
   (beta = 0, z_cut = 0.1, C/A reclustering of all the jet's constituents, as fastjet contrib's
   SoftDrop) for large-R jets.
6. **MET** = -sum of the PF-candidate transverse momenta; ``sumEt`` = scalar sum.

Steps 1-3 and 6 are in this module, step 4 in :mod:`~cms_anomaly.datasets.detector_leptons`, step 5 in
:mod:`~cms_anomaly.datasets.detector_jets` (substructure in :mod:`~cms_anomaly.datasets.substructure`), the
pruned ``GenPart`` record and the jets' truth targets in :mod:`~cms_anomaly.datasets.detector_truth`.
Every parameter is a field of :class:`~cms_anomaly.datasets.detector_config.DetectorConfig` with its
source. No pile-up is simulated.
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numba
import numpy as np
from cms_anomaly.core.fourvectors import to_cartesian
from cms_anomaly.datasets.calorimeter import Deposits, calo_resolution, cells, neutral_candidates, smear_positive
from cms_anomaly.datasets.detector_config import DetectorConfig
from cms_anomaly.datasets.detector_jets import _cluster_fatjets, _cluster_jets, _jet_lepton_refs
from cms_anomaly.datasets.detector_leptons import _leptons_and_photons
from cms_anomaly.datasets.detector_truth import _Truth, _truth_record
from cms_anomaly.datasets.flatarrays import _descending_within, _group_sum, _unflatten, kinematics

PION_MASS = 0.13957
ELECTRON_MASS = 0.000511
MUON_MASS = 0.10566
INVISIBLE_IDS = (12, 14, 16, 1000012, 1000014, 1000016, 1000022, 1000039)


def _binned_eff(
    pt: np.ndarray, abs_eta: np.ndarray, table, *, eta_edge: float = 1.5, pt_edge: float = 1.0
) -> np.ndarray:
    """Efficiency from a 2x2 table [(low pT, high pT) for |eta| < edge, (...) for |eta| > edge]."""
    central = abs_eta < eta_edge
    high = pt > pt_edge
    (c_lo, c_hi), (f_lo, f_hi) = table
    return np.where(central, np.where(high, c_hi, c_lo), np.where(high, f_hi, f_lo))


def _track_resolution(pt: np.ndarray, abs_eta: np.ndarray, table) -> np.ndarray:
    """Relative pT resolution sqrt(a^2 + (b pT)^2) with (a, b) per |eta| bin [0, 0.5, 1.5, 2.5]."""
    idx = np.digitize(abs_eta, (0.5, 1.5)).clip(0, len(table) - 1)
    a = np.asarray([t[0] for t in table])[idx]
    b = np.asarray([t[1] for t in table])[idx]
    return np.sqrt(a**2 + (b * pt) ** 2)


@dataclass
class _Particles:
    """The final-state visible particles of a batch (flat arrays) and what the truth record needs."""

    evt: np.ndarray  # event index of each particle
    gidx: np.ndarray  # index into the full event record
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    pid: np.ndarray
    charge: np.ndarray
    n_events: int

    @property
    def abs_id(self) -> np.ndarray:
        return np.abs(self.pid)


@numba.njit(cache=True)
def _visible_final(pid, status, invisible):  # pragma: no cover - compiled
    """Final-state particles (status > 0) whose |id| is not in ``invisible``."""
    out = np.zeros(len(pid), dtype=np.bool_)
    for k in range(len(pid)):
        if status[k] > 0:
            a = abs(pid[k])
            out[k] = True
            for v in invisible:
                if a == v:
                    out[k] = False
                    break
    return out


def _present(values: ak.Array, fields: tuple[str, ...]) -> tuple[np.ndarray, list[np.ndarray]]:
    """For an optional record array: which entries are present, and the fields of those (float64).

    Read from the option layout's index (``ak.is_none`` + ``ak.drop_none`` per field cost 5 ms per batch).
    """
    layout = values.layout
    if layout.is_option:
        layout = layout.to_IndexedOptionArray64()
        index = np.asarray(layout.index)
        content = ak.Array(layout.content)
    else:
        index = np.arange(len(layout))
        content = values
    present = index >= 0
    take = index[present]
    return present, [np.asarray(ak.to_numpy(content[c]), dtype=np.float64)[take] for c in fields]


def _final_state(batch: ak.Array, charges: ak.Array | np.ndarray) -> tuple[_Particles, dict[str, np.ndarray]]:
    """Visible final-state particles and the flat full event record (for the truth and vertices)."""
    prt = batch.prt
    n_events = len(prt)
    counts_all = ak.to_numpy(ak.num(prt, axis=1))
    flat = ak.flatten(prt)
    record = {
        "pid": ak.to_numpy(flat.id).astype(np.int64),
        "status": ak.to_numpy(flat.status),
        **{c: ak.to_numpy(flat.p[c]) for c in ("px", "py", "pz", "e")},
        "charge": np.asarray(charges) if isinstance(charges, np.ndarray) else ak.to_numpy(ak.flatten(charges)),
        "evt": np.repeat(np.arange(n_events), counts_all),
        "offsets": np.concatenate([[0], np.cumsum(counts_all)]),
        "mother1": ak.to_numpy(flat.mother1),
    }
    if len(record["charge"]) != len(record["pid"]):
        raise ValueError(f"{len(record['charge'])} charges for {len(record['pid'])} particles in the batch")
    # production vertices (None for particles made at the origin), read for the PF candidates only
    has_vertex, record["vertex_mm"] = _present(flat.vProd, ("px", "py", "pz"))
    record["vertex_slot"] = np.where(has_vertex, np.cumsum(has_vertex) - 1, -1)
    final = _visible_final(record["pid"], record["status"], np.asarray(INVISIBLE_IDS, dtype=np.int64))
    gidx = np.flatnonzero(final)
    px, py, pz, e = (record[c][gidx] for c in ("px", "py", "pz", "e"))
    pt, eta, phi = kinematics(px, py, pz)
    particles = _Particles(
        evt=record["evt"][gidx],
        gidx=gidx,
        px=px,
        py=py,
        pz=pz,
        e=e,
        pt=pt,
        eta=eta,
        phi=phi,
        pid=record["pid"][gidx],
        charge=record["charge"][gidx],
        n_events=n_events,
    )
    return particles, record


def _tracking(p: _Particles, rng: np.random.Generator, config: DetectorConfig) -> tuple[np.ndarray, np.ndarray]:
    """Step 1: which charged particles have a track, and the smeared track pT."""
    abs_eta, abs_id = np.abs(p.eta), p.abs_id
    is_mu, is_ele = abs_id == 13, abs_id == 11
    is_charged = (p.charge != 0) & ~is_mu & ~is_ele
    in_tracker = (abs_eta < config.tracker_abs_eta) & (p.pt > config.track_pt_min)
    eff_track = np.select(
        [is_mu, is_ele, is_charged],
        [
            _binned_eff(p.pt, abs_eta, config.eff_track_muon, eta_edge=config.barrel_abs_eta),
            _binned_eff(p.pt, abs_eta, config.eff_track_electron, eta_edge=config.barrel_abs_eta),
            _binned_eff(p.pt, abs_eta, config.eff_track_hadron, eta_edge=config.barrel_abs_eta),
        ],
        0.0,
    )
    tracked = in_tracker & (rng.random(len(p.pt)) < eff_track)
    rel_res = np.where(
        is_mu,
        _track_resolution(p.pt, abs_eta, config.res_track_muon),
        _track_resolution(p.pt, abs_eta, config.res_track_hadron),
    )
    return tracked, smear_positive(p.pt, rel_res * p.pt, rng)


def _particle_flow(
    p: _Particles, tracked: np.ndarray, pt_track: np.ndarray, rng: np.random.Generator, config: DetectorConfig
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Steps 2-3: calorimeter towers and PF candidates, pT-ordered per event.

    Returns the NanoAOD fields, the event of each candidate and the event-record index of the particle
    behind it (for a tower: its largest untracked deposit).
    """
    abs_id = p.abs_id
    is_mu, is_ele, is_pho = abs_id == 13, abs_id == 11, abs_id == 22
    is_charged = (p.charge != 0) & ~is_mu & ~is_ele
    ele_pf, mu_pf, ch_pf = is_ele & tracked, is_mu & tracked, is_charged & tracked
    # electrons: direction from the track, energy from the ECAL (|eta| < 2.5 always inside the ECAL)
    sigma_ele = calo_resolution(p.e, config.ecal_res)
    e_ele = smear_positive(p.e, sigma_ele, rng)
    cosh = np.cosh(p.eta)
    p_track = pt_track * cosh
    trk_var = (_track_resolution(p.pt, np.abs(p.eta), config.res_track_hadron) * p_track) ** 2
    em = np.flatnonzero(is_pho | is_ele)
    had = np.flatnonzero(((p.charge == 0) & ~is_pho) | is_charged)
    layers = (
        (em, ele_pf, e_ele, sigma_ele**2, config.ecal_towers, config.ecal_res, config.hf_em_res),
        (had, ch_pf, p_track, trk_var, config.hcal_towers, config.hcal_res, config.hf_had_res),
    )
    ecal, hcal = (
        cells(
            Deposits(
                evt=p.evt[idx],
                energy=p.e[idx],
                eta=p.eta[idx],
                phi=p.phi[idx],
                linked=np.where(linked_to[idx], e_linked[idx], 0.0),
                linked_var=np.where(linked_to[idx], var_linked[idx], 0.0),
                truth=p.gidx[idx],
            ),
            grid,
            res_central=res,
            res_forward=res_hf,
            forward_abs_eta=config.ecal_abs_eta,
            rng=rng,
        )
        for idx, linked_to, e_linked, var_linked, grid, res, res_hf in layers
    )
    pho, nh = neutral_candidates(ecal, hcal, config)
    trk = np.flatnonzero(ele_pf | mu_pf | ch_pf)
    n_neu = len(pho.pt) + len(nh.pt)
    evt = np.concatenate([p.evt[trk], pho.evt, nh.evt])
    pt = np.concatenate([np.where(ele_pf, e_ele / cosh, pt_track)[trk], pho.pt, nh.pt])
    pdg = np.where(ch_pf, np.sign(p.charge).astype(np.int64) * 211, p.pid)[trk]
    mass = np.select([ele_pf, mu_pf], [ELECTRON_MASS, MUON_MASS], PION_MASS)[trk]
    # decreasing pT inside each event
    by_event = np.argsort(evt, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(evt, minlength=p.n_events))])
    order = by_event[_descending_within(pt[by_event], offsets)]
    pf = {
        "pt": pt[order].astype(np.float32),
        "eta": np.concatenate([p.eta[trk], pho.eta, nh.eta])[order].astype(np.float32),
        "phi": np.concatenate([p.phi[trk], pho.phi, nh.phi])[order].astype(np.float32),
        "mass": np.concatenate([mass, np.zeros(n_neu)])[order].astype(np.float32),
        "charge": np.concatenate([np.sign(p.charge[trk]), np.zeros(n_neu)])[order].astype(np.int32),
        "pdgId": np.concatenate([pdg, np.full(len(pho.pt), 22), np.full(len(nh.pt), 130)])[order].astype(np.int32),
    }
    return pf, evt[order], np.concatenate([p.gidx[trk], pho.truth, nh.truth])[order]


def _impact_parameters(
    pf: dict[str, np.ndarray],
    pf_truth: np.ndarray,
    record: dict[str, np.ndarray],
    rng: np.random.Generator,
    config: DetectorConfig,
) -> None:
    """``d0``/``dz`` of charged candidates: straight line from the production vertex plus resolution."""
    slot = record["vertex_slot"][pf_truth]
    t_vx, t_vy, t_vz = (
        np.where(slot >= 0, v[np.maximum(slot, 0)] * 0.1, 0.0) if len(v) else np.zeros(len(slot))  # mm -> cm
        for v in record["vertex_mm"]
    )
    t_px, t_py, t_pz = record["px"][pf_truth], record["py"][pf_truth], record["pz"][pf_truth]
    t_pt = np.maximum(np.hypot(t_px, t_py), 1e-9)
    n = len(pf_truth)
    dxy = (t_vx * t_py - t_vy * t_px) / t_pt + config.dxy_res_cm * rng.standard_normal(n)
    dz = t_vz - (t_vx * t_px + t_vy * t_py) / t_pt * (t_pz / t_pt) + config.dz_res_cm * rng.standard_normal(n)
    is_trk = pf["charge"] != 0
    pf["d0"] = np.where(is_trk, dxy, 0.0).astype(np.float32)
    pf["dz"] = np.where(is_trk, dz, 0.0).astype(np.float32)


def _met(pf: dict[str, np.ndarray], pf_evt: np.ndarray, n_events: int) -> dict[str, np.ndarray]:
    """Step 6: MET = -sum of the PF transverse momenta; ``sumEt`` their scalar sum."""
    met_x = -_group_sum((pf["pt"] * np.cos(pf["phi"])).astype(np.float64), pf_evt, n_events)
    met_y = -_group_sum((pf["pt"] * np.sin(pf["phi"])).astype(np.float64), pf_evt, n_events)
    return {
        "pt": np.hypot(met_x, met_y).astype(np.float32),
        "phi": np.arctan2(met_y, met_x).astype(np.float32),
        "sumEt": _group_sum(pf["pt"].astype(np.float64), pf_evt, n_events).astype(np.float32),
    }


def _truth_from_record(record: dict[str, np.ndarray], n_events: int) -> _Truth:
    """The pruned truth record of the flat full event record of :func:`_final_state`."""
    return _truth_record(
        pid=record["pid"],
        status=record["status"],
        mother1=record["mother1"],
        px=record["px"],
        py=record["py"],
        pz=record["pz"],
        e=record["e"],
        evt=record["evt"],
        offsets=record["offsets"],
        n_events=n_events,
    )


def simulate(
    batch: ak.Array,
    charges: ak.Array | np.ndarray,
    *,
    rng: np.random.Generator,
    config: DetectorConfig = DetectorConfig(),
) -> dict[str, ak.Array]:
    """Detector response for one batch of Pythia events (the steps of the module docstring).

    Parameters
    ----------
    batch : ak.Array
        Output of ``Pythia.nextBatch`` (``batch.prt`` = event record).
    charges : ak.Array or np.ndarray
        Electric charge of every particle of ``batch.prt``: same jagged structure, or flat in the
        order of ``ak.flatten(batch.prt)``.
    rng : numpy.random.Generator
        Source of every random number (efficiencies, smearing, b-tag scores), drawn in a fixed order.
    config : DetectorConfig
        Every number of the response.

    Returns
    -------
    dict
        NanoAOD collections: ``PFCands``, ``Muon``, ``Electron``, ``Photon``, ``Jet``,
        ``JetPFCands``, ``FatJet``, ``GenPart`` (jagged records) and the flat ``MET`` record.
    """
    particles, record = _final_state(batch, charges)
    n_events = particles.n_events
    tracked, pt_track = _tracking(particles, rng, config)
    pf, pf_evt, pf_truth = _particle_flow(particles, tracked, pt_track, rng, config)
    pf_counts = np.bincount(pf_evt, minlength=n_events)
    pf_offsets = np.concatenate([[0], np.cumsum(pf_counts)])
    _impact_parameters(pf, pf_truth, record, rng, config)
    met = _met(pf, pf_evt, n_events)
    pf_arr = _unflatten(dict(pf), pf_counts)

    # 5. jets (before leptons: leptons need the jet index)
    truth = _truth_from_record(record, n_events)
    # fastjet's inputs, one set of Cartesian momenta for both radii
    cart = to_cartesian(*(pf[k].astype(np.float64) for k in ("pt", "eta", "phi", "mass")))
    jet_fields, jet_counts, jet_pf, pf_jet_idx = _cluster_jets(
        pf, cart, pf_counts, pf_offsets, truth=truth, rng=rng, config=config
    )
    fatjets = _cluster_fatjets(pf, cart, pf_evt, pf_counts, truth=truth, config=config)

    # 4. leptons and photons, and the jets' references to the leptons inside them
    common = {
        "pf": pf,
        "pf_evt": pf_evt,
        "pf_jet_idx": pf_jet_idx,
        "truth": truth,
        "pf_truth": pf_truth,
        "n_events": n_events,
    }
    objects = _leptons_and_photons(pf, common, rng, config)
    for name, key in (("muon", "Muon"), ("electron", "Electron")):
        sel_lep = objects[key][1]
        idx1, idx2, n_in_jet = _jet_lepton_refs(pf_evt[sel_lep], pf_jet_idx[sel_lep], jet_counts)
        jet_fields.update({f"{name}Idx1": idx1, f"{name}Idx2": idx2, f"n{name.capitalize()}s": n_in_jet})
    jets = _unflatten(jet_fields, jet_counts)

    out = {"PFCands": pf_arr}
    out.update(
        {
            key: _unflatten(fields, np.bincount(pf_evt[idx], minlength=n_events))
            for key, (fields, idx) in objects.items()
        }
    )
    out.update({"Jet": jets, "JetPFCands": jet_pf, "FatJet": fatjets, "GenPart": truth.genpart, "MET": ak.zip(met)})
    return out
