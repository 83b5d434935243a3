"""Jets of the detector response: anti-kT R = 0.4 ``Jet`` (energy fractions, jet ID, flavour, b-tag score,
lepton references) and R = 1.0 ``FatJet`` (N-subjettiness, soft-drop mass), clustered with fastjet on the PF candidates."""

from __future__ import annotations

import awkward as ak
import fastjet
import numba
import numpy as np
from cms_anomaly.datasets.detector_config import DetectorConfig
from cms_anomaly.datasets.detector_truth import _Targets, _Truth
from cms_anomaly.datasets.flatarrays import _descending_within, _group_sum, _offsets, _unflatten
from cms_anomaly.datasets.substructure import _jet_taus_flat, softdrop_mass


def btag_score(
    hadron_flavour: np.ndarray, abs_eta: np.ndarray, rng: np.random.Generator, config: DetectorConfig
) -> np.ndarray:
    """A DeepJet-like b-tag score in (0, 1): sigmoid of a flavour-dependent normal logit; -1 outside the tracker."""
    mu = np.select(
        [hadron_flavour == 5, hadron_flavour == 4],
        [config.btag_logit_b[0], config.btag_logit_c[0]],
        config.btag_logit_light[0],
    )
    sigma = np.select(
        [hadron_flavour == 5, hadron_flavour == 4],
        [config.btag_logit_b[1], config.btag_logit_c[1]],
        config.btag_logit_light[1],
    )
    logit = mu + sigma * rng.standard_normal(hadron_flavour.shape)
    score = 1.0 / (1.0 + np.exp(-logit))
    return np.where(abs_eta < config.tracker_abs_eta, score, -1.0).astype(np.float32)


@numba.njit(cache=True)
def _nearest_in_cone(c_eta, c_phi, c_evt, o_eta, o_phi, o_pt, o_offsets, radius2):
    """Per centre: number of others within dR^2 < radius2 and the index of the hardest of them (-1 if none)."""
    count = np.zeros(len(c_eta), dtype=np.int64)
    best = np.full(len(c_eta), -1, dtype=np.int64)
    for i in range(len(c_eta)):
        ev = c_evt[i]
        best_pt = -1.0
        for j in range(o_offsets[ev], o_offsets[ev + 1]):
            dphi = (c_phi[i] - o_phi[j] + np.pi) % (2 * np.pi) - np.pi
            deta = c_eta[i] - o_eta[j]
            if deta * deta + dphi * dphi < radius2:
                count[i] += 1
                if o_pt[j] > best_pt:
                    best_pt = o_pt[j]
                    best[i] = j
    return count, best


def _jet_lepton_refs(
    lep_evt: np.ndarray, lep_jet: np.ndarray, jet_counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NanoAOD ``Jet_<lepton>Idx1/2`` and ``Jet_n<Lepton>s`` from each lepton's jet index.

    Parameters
    ----------
    lep_evt, lep_jet : np.ndarray
        Event index and local jet index (-1: in no jet) of every lepton, event-ordered, pT-ordered.
    jet_counts : np.ndarray
        Jets per event.
    """
    n_events = len(jet_counts)
    lep_counts = np.bincount(lep_evt, minlength=n_events)
    lep_local = np.arange(len(lep_evt)) - np.concatenate([[0], np.cumsum(lep_counts)])[lep_evt]
    jet_offsets = np.concatenate([[0], np.cumsum(jet_counts)])
    n_jets = int(jet_offsets[-1])
    idx1 = np.full(n_jets, -1, dtype=np.int32)
    idx2 = np.full(n_jets, -1, dtype=np.int32)
    in_jet = lep_jet >= 0
    jet_global = jet_offsets[lep_evt[in_jet]] + lep_jet[in_jet]
    local = lep_local[in_jet]
    order = np.lexsort((local, jet_global))  # by jet, then by lepton pT rank
    jet_global, local = jet_global[order], local[order]
    first = np.ones(len(jet_global), dtype=bool)
    first[1:] = jet_global[1:] != jet_global[:-1]
    start = np.maximum.accumulate(np.where(first, np.arange(len(first)), 0))
    rank = np.arange(len(first)) - start
    idx1[jet_global[rank == 0]] = local[rank == 0]
    idx2[jet_global[rank == 1]] = local[rank == 1]
    count = np.bincount(jet_global, minlength=n_jets).astype(np.int32)
    return idx1, idx2, count


def _pf_vectors(cart: dict[str, np.ndarray], counts: np.ndarray) -> ak.Array:
    """fastjet's input: (events x particles) records ``px, py, pz, E`` (float64) from flat Cartesian momenta."""
    return _unflatten({c: cart[c] for c in ("px", "py", "pz", "E")}, counts)


def _sorted_jets(jets: ak.Array) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Flat ``pt, eta, phi, mass`` (float64) of fastjet's jets, pT-ordered in each event.

    Returns ``(kinematics, jets per event, order)``; ``order`` maps the sorted flat jets to fastjet's
    flat jets (for the constituents).
    """
    n_jets = ak.to_numpy(ak.num(jets, axis=1))
    flat = ak.flatten(jets)
    px, py, pz, e = (ak.to_numpy(flat[c]) for c in ("px", "py", "pz", "E"))
    pt = np.hypot(px, py)
    kin = {
        "pt": pt,
        "eta": np.arcsinh(pz / np.maximum(pt, 1e-9)),
        "phi": np.arctan2(py, px),
        "mass": np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0.0)),
    }
    order = _descending_within(pt, _offsets(n_jets))
    return {k: v[order] for k, v in kin.items()}, n_jets, order


def _constituents(cs, min_pt: float, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(number of constituents per jet, their indices in the event's input list, flat), jets in ``order``."""
    cidx = ak.flatten(cs.constituent_index(min_pt=min_pt), axis=1)[order]
    return ak.to_numpy(ak.num(cidx, axis=1)), ak.to_numpy(ak.flatten(cidx)).astype(np.int64)


def _flavours(
    eta: np.ndarray, phi: np.ndarray, n_jets: np.ndarray, truth: _Truth, radius: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flat per-jet (hadronFlavour, partonFlavour, number of B hadrons, number of C hadrons) within dR < radius."""
    evt = np.repeat(np.arange(len(n_jets)), n_jets)
    r2 = radius**2

    def match(targets: _Targets) -> tuple[np.ndarray, np.ndarray]:
        t = targets.fields
        t_pt = t["pt"] if "pt" in t else np.ones(len(t["eta"]))
        return _nearest_in_cone(eta, phi, evt, t["eta"], t["phi"], t_pt, targets.offsets, r2)

    n_b, _ = match(truth.bhad)
    n_c, _ = match(truth.chad)
    _, best = match(truth.partons)
    parton_ids = truth.partons.fields["pdgId"]
    parton_flavour = np.where(best >= 0, parton_ids[np.maximum(best, 0)] if len(parton_ids) else 0, 0)
    hadron_flavour = np.where(n_b > 0, 5, np.where(n_c > 0, 4, 0))
    return hadron_flavour.astype(np.int32), parton_flavour.astype(np.int32), n_b, n_c


def _cluster_jets(
    pf, cart, pf_counts, pf_offsets, *, truth: _Truth, rng: np.random.Generator, config: DetectorConfig
) -> tuple[dict[str, np.ndarray], np.ndarray, ak.Array, np.ndarray]:
    """anti-kT R = 0.4 jets: (flat NanoAOD fields, jets per event, ``JetPFCands``, jet index of every PF candidate)."""
    n_events = len(pf_counts)
    vectors = _pf_vectors(cart, pf_counts)
    cs = fastjet.ClusterSequence(vectors, fastjet.JetDefinition(fastjet.antikt_algorithm, config.jet_r))
    kin, n_jets, order = _sorted_jets(cs.inclusive_jets(min_pt=config.jet_pt_min))
    n_const, const_local = _constituents(cs, config.jet_pt_min, order)

    jet_evt = np.repeat(np.arange(n_events), n_jets)
    const_jet = np.repeat(np.arange(len(n_const)), n_const)  # global jet index of each constituent
    const_global = const_local + pf_offsets[jet_evt[const_jet]]
    jet_offsets = np.concatenate([[0], np.cumsum(n_jets)])
    jet_local = np.arange(len(jet_evt)) - jet_offsets[jet_evt]
    pf_jet_idx = np.full(len(pf["pt"]), -1, dtype=np.int64)
    pf_jet_idx[const_global] = jet_local[const_jet]

    # energy fractions of the constituents
    c_pt, c_eta, c_m = pf["pt"][const_global].astype(np.float64), pf["eta"][const_global], pf["mass"][const_global]
    c_e = np.sqrt((c_pt * np.cosh(c_eta)) ** 2 + c_m.astype(np.float64) ** 2)
    c_pdg = np.abs(pf["pdgId"][const_global])
    n_all = len(n_const)
    e_tot = np.maximum(_group_sum(c_e, const_jet, n_all), 1e-9)
    frac = {
        name: (_group_sum(np.where(c_pdg == code, c_e, 0.0), const_jet, n_all) / e_tot).astype(np.float32)
        for name, code in (("chHEF", 211), ("neHEF", 130), ("chEmEF", 11), ("neEmEF", 22), ("muEF", 13))
    }
    flat_eta = kin["eta"]
    tight = (
        (frac["neHEF"] < config.jet_id_neutral_max)
        & (frac["neEmEF"] < config.jet_id_neutral_max)
        & (n_const > 1)
        & (
            (np.abs(flat_eta) > config.jet_id_tracker_abs_eta)
            | ((frac["chHEF"] > 0) & (frac["chEmEF"] < config.jet_id_charged_em_max))
        )
    )
    lepveto = tight & (frac["muEF"] < config.jet_id_muon_max) & (frac["chEmEF"] < config.jet_id_charged_em_max)

    hflav, parton_flavour, _, _ = _flavours(kin["eta"], kin["phi"], n_jets, truth, config.jet_r)
    jet_fields = {
        **{k: v.astype(np.float32) for k, v in kin.items()},
        "btagDeepFlavB": btag_score(hflav, np.abs(flat_eta), rng, config),
        "hadronFlavour": hflav,
        "partonFlavour": parton_flavour,
        "jetId": (2 * tight + 4 * lepveto).astype(np.int32),
        "nConstituents": n_const.astype(np.int32),
        **frac,
    }
    jet_pf = _unflatten(
        {"jetIdx": jet_local[const_jet].astype(np.int32), "pFCandsIdx": const_local.astype(np.int32)},
        np.bincount(jet_evt[const_jet], minlength=n_events) if len(const_jet) else np.zeros(n_events, dtype=np.int64),
    )
    return jet_fields, n_jets, jet_pf, pf_jet_idx


def _cluster_fatjets(pf, cart, pf_evt, pf_counts, *, truth: _Truth, config: DetectorConfig) -> ak.Array:
    """anti-kT R = 1.0 jets with N-subjettiness and soft-drop mass."""
    # an event whose PF scalar pT sum is below the threshold cannot contain such a jet: cluster only
    # the others (the empty events keep their place), which skips most W/Z events
    sum_pt = _group_sum(pf["pt"].astype(np.float64), pf_evt, len(pf_counts))
    candidate = sum_pt >= config.fatjet_pt_min
    keep = np.flatnonzero(candidate[pf_evt])
    cart = {c: v[keep] for c, v in cart.items()}
    counts = np.where(candidate, pf_counts, 0)
    cs = fastjet.ClusterSequence(
        _pf_vectors(cart, counts), fastjet.JetDefinition(fastjet.antikt_algorithm, config.fatjet_r)
    )
    kin, n_jets, order = _sorted_jets(cs.inclusive_jets(min_pt=config.fatjet_pt_min))
    n_const, const_local = _constituents(cs, config.fatjet_pt_min, order)
    # constituents as flat momenta: the clustered inputs, found by event offset + local index
    jet_evt = np.repeat(np.arange(len(counts)), n_jets)
    const_global = const_local + _offsets(counts)[np.repeat(jet_evt, n_const)]
    p4 = [cart[c][const_global] for c in ("px", "py", "pz", "E")]
    n_total = len(n_const)
    taus = {f"tau{n}": np.zeros(n_total, dtype=np.float32) for n in (1, 2, 3)}
    msd = np.zeros(n_total, dtype=np.float32)
    if n_total:
        tau_values = _jet_taus_flat(*p4, n_const, config.fatjet_r)
        for n in (1, 2, 3):
            taus[f"tau{n}"] = tau_values[n - 1].astype(np.float32)
        msd = softdrop_mass(*p4, _offsets(n_const), config.softdrop_zcut, config.softdrop_beta, config.fatjet_r).astype(
            np.float32
        )
    hadron_flavour, _, n_b, n_c = _flavours(kin["eta"], kin["phi"], n_jets, truth, config.fatjet_r)
    fields = {
        **{k: v.astype(np.float32) for k, v in kin.items()},
        "msoftdrop": msd,
        **taus,
        "hadronFlavour": hadron_flavour,
        "nBHadrons": np.minimum(n_b, 255).astype(np.uint8),
        "nCHadrons": np.minimum(n_c, 255).astype(np.uint8),
        "nConstituents": np.minimum(n_const, 255).astype(np.uint8),
        "jetId": np.full(n_total, 6, dtype=np.int32),
    }
    return _unflatten(fields, n_jets)
