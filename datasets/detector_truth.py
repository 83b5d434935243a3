"""The truth record of the detector response: the Pythia event record pruned to a NanoAOD-like ``GenPart``,
and the B/C hadrons and hard partons that jets are matched to."""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numba
import numpy as np
from cms_anomaly.datasets.flatarrays import _offsets, _unflatten, kinematics


@dataclass
class _Targets:
    """Truth objects that jets are matched to: flat fields (event-ordered) and per-event offsets."""

    fields: dict[str, np.ndarray]
    offsets: np.ndarray


@dataclass
class _Truth:
    genpart: ak.Array  # pruned GenPart collection (NanoAOD fields)
    new_index: np.ndarray  # global event-record index -> local GenPart index (-1 if pruned)
    flav: np.ndarray  # global index -> NanoAOD genPartFlav of a kept particle (0 otherwise)
    bhad: _Targets  # weakly decaying B hadrons (eta, phi)
    chad: _Targets  # weakly decaying C hadrons (eta, phi)
    partons: _Targets  # hard-process outgoing quarks and gluons (eta, phi, pt, pdgId)


@numba.njit(cache=True)
def _record_classes(pid, status, mother1, evt, offsets):  # pragma: no cover - compiled
    """One pass over a batch's flat event record: the global index of each particle's ``mother1``
    (-1 without one) and what the truth record selects by, as boolean arrays:
    hadrons (100 < |id| < 10^6), B and C hadrons (a b or c digit, not a diquark), weakly decaying ones
    (no B / C hadron has them as mother), last-copy taus, hard-process particles (|status| 21-29),
    final-state e/mu/neutrinos (before their pT cut) and outgoing hard partons (|status| 23, q or g)."""
    n = len(pid)
    mother_g = np.full(n, -1, dtype=np.int64)
    is_hadron = np.zeros(n, dtype=np.bool_)
    is_b = np.zeros(n, dtype=np.bool_)
    is_c = np.zeros(n, dtype=np.bool_)
    is_tau = np.zeros(n, dtype=np.bool_)
    hard = np.zeros(n, dtype=np.bool_)
    light_lep = np.zeros(n, dtype=np.bool_)
    parton = np.zeros(n, dtype=np.bool_)
    for k in range(n):
        a = abs(pid[k])
        st = abs(status[k])
        if mother1[k] > 0:
            if mother1[k] >= offsets[evt[k] + 1] - offsets[evt[k]]:  # numba does not check bounds
                raise ValueError("event record: a mother1 index points outside its event")
            mother_g[k] = offsets[evt[k]] + mother1[k]
        if 100 < a < 1_000_000:
            is_hadron[k] = True
            if (a // 10) % 10 != 0:  # not a diquark
                d2, d3 = (a // 100) % 10, (a // 1000) % 10
                is_b[k] = d2 == 5 or d3 == 5
                is_c[k] = d2 == 4 or d3 == 4
        is_tau[k] = a == 15
        hard[k] = 21 <= st <= 29
        light_lep[k] = status[k] > 0 and (11 <= a <= 14 or a == 16)  # e, nu_e, mu, nu_mu, nu_tau
        parton[k] = st == 23 and (a <= 5 or a == 21)
    parent_of_b = np.zeros(n, dtype=np.bool_)
    parent_of_c = np.zeros(n, dtype=np.bool_)
    parent_of_tau = np.zeros(n, dtype=np.bool_)
    for k in range(n):
        m = mother_g[k]
        if m >= 0:
            if is_b[k]:
                parent_of_b[m] = True
            if is_c[k]:
                parent_of_c[m] = True
            if is_tau[k]:
                parent_of_tau[m] = True
    weak_b = is_b & ~parent_of_b
    weak_c = is_c & ~parent_of_c
    last_tau = is_tau & ~parent_of_tau
    return mother_g, is_hadron, is_b, is_c, weak_b, weak_c, last_tau, hard, light_lep, parton


@numba.njit(cache=True)
def _nearest_kept_ancestor(kept, keep, mother_g, is_hadron):  # pragma: no cover - compiled
    """Per kept particle: the global index of its nearest kept ancestor along ``mother1`` (-1 if none)
    and whether a hadron lies between them. At most 10000 steps up (the depth of an event record)."""
    parent = np.full(len(kept), -1, dtype=np.int64)
    via_hadron = np.zeros(len(kept), dtype=np.bool_)
    for a in range(len(kept)):
        cur = mother_g[kept[a]]
        for _ in range(10_000):
            if cur < 0:
                break
            if keep[cur]:
                parent[a] = cur
                break
            via_hadron[a] |= is_hadron[cur]
            cur = mother_g[cur]
    return parent, via_hadron


def _truth_record(*, pid, status, mother1, px, py, pz, e, evt, offsets, n_events) -> _Truth:
    """Prune the Pythia record to a NanoAOD-like ``GenPart``: hard process, leptons, taus, B/C hadrons.

    Kept: the hard process (|status| 21-29, incl. resonance decays), final-state e/mu/neutrinos with
    pT > 1 GeV, last-copy taus, and weakly decaying B and C hadrons. Mother indices point to the
    nearest kept ancestor (following ``mother1``). ``status`` is 1 (final), 2 (decayed) or the Pythia
    hard-process code; ``statusFlags`` bits: 0 isPrompt (no hadron among the ancestors),
    2 isTauDecayProduct, 7 isHardProcess, 8 fromHardProcess, 12 isFirstCopy, 13 isLastCopy.
    """
    n = len(pid)
    mother_g, is_hadron, is_b, is_c, weak_b, weak_c, last_tau, hard, light_lep, parton = _record_classes(
        np.asarray(pid, dtype=np.int64),
        np.asarray(status, dtype=np.int64),
        np.asarray(mother1, dtype=np.int64),
        np.asarray(evt, dtype=np.int64),
        np.asarray(offsets, dtype=np.int64),
    )
    lep = np.flatnonzero(light_lep)
    light_lep[lep] = np.hypot(px[lep], py[lep]) > 1.0
    keep = hard | light_lep | last_tau | weak_b | weak_c

    # kinematics of what is kept or matched to jets only (a few per cent of the record)
    need = np.flatnonzero(keep | parton)
    pt, eta, phi, mass = (np.zeros(n) for _ in range(4))
    pt[need], eta[need], phi[need] = kinematics(px[need], py[need], pz[need])
    mass[need] = np.sqrt(np.maximum(e[need] ** 2 - px[need] ** 2 - py[need] ** 2 - pz[need] ** 2, 0.0))

    # nearest kept ancestor of every kept particle, and whether a hadron was crossed on the way
    kept = np.flatnonzero(keep)
    kept_counts = np.bincount(evt[kept], minlength=n_events)
    kept_offsets = np.concatenate([[0], np.cumsum(kept_counts)])
    new_index = np.full(n, -1, dtype=np.int64)
    new_index[kept] = np.arange(len(kept)) - kept_offsets[evt[kept]]
    parent, via_hadron = _nearest_kept_ancestor(kept, keep, mother_g, is_hadron)
    parent_abs = np.where(parent >= 0, np.abs(pid[np.maximum(parent, 0)]), 0)
    parent_hadron = np.where(parent >= 0, is_hadron[np.maximum(parent, 0)], False)
    prompt = ~via_hadron & ~parent_hadron
    from_tau = parent_abs == 15
    k_hard = hard[kept]
    k_final = status[kept] > 0
    last_copy = k_final | weak_b[kept] | weak_c[kept] | last_tau[kept]
    flags = (
        (prompt.astype(np.int32) << 0)
        | (from_tau.astype(np.int32) << 2)
        | (k_hard.astype(np.int32) << 7)
        | (
            (
                k_hard
                | (prompt & ~from_tau & (parent >= 0) & np.where(parent >= 0, hard[np.maximum(parent, 0)], False))
            ).astype(np.int32)
            << 8
        )
        | (k_hard.astype(np.int32) << 12)
        | (last_copy.astype(np.int32) << 13)
    )
    nano_status = np.where(k_final, 1, np.where(k_hard, np.abs(status[kept]), 2)).astype(np.int32)
    genpart = {
        "pt": pt[kept].astype(np.float32),
        "eta": eta[kept].astype(np.float32),
        "phi": phi[kept].astype(np.float32),
        "mass": mass[kept].astype(np.float32),
        "pdgId": pid[kept].astype(np.int32),
        "status": nano_status,
        "statusFlags": flags.astype(np.int32),
        "genPartIdxMother": np.where(parent >= 0, new_index[np.maximum(parent, 0)], -1).astype(np.int32),
    }
    return _Truth(
        genpart=_unflatten(genpart, kept_counts),
        new_index=new_index,
        flav=_gen_part_flav(kept, parent, prompt, from_tau, is_b, is_c),
        bhad=_per_event(weak_b, {"eta": eta, "phi": phi}, evt, n_events),
        chad=_per_event(weak_c, {"eta": eta, "phi": phi}, evt, n_events),
        partons=_per_event(parton, {"eta": eta, "phi": phi, "pt": pt, "pdgId": pid}, evt, n_events),
    )


def _gen_part_flav(
    kept: np.ndarray, parent: np.ndarray, prompt: np.ndarray, from_tau: np.ndarray, is_b: np.ndarray, is_c: np.ndarray
) -> np.ndarray:
    """NanoAOD genPartFlav per record entry (0 where not kept): 1 prompt, 15 from a prompt tau, 5 from b, 4 from c,
    3 light/unknown hadron."""
    n = len(is_b)
    parent_is_b = np.where(parent >= 0, is_b[np.maximum(parent, 0)], False)
    parent_is_c = np.where(parent >= 0, is_c[np.maximum(parent, 0)], False)
    parent_prompt = np.zeros(len(kept), dtype=bool)
    has_parent = parent >= 0
    kept_pos = np.full(n, -1, dtype=np.int64)
    kept_pos[kept] = np.arange(len(kept))
    parent_prompt[has_parent] = prompt[kept_pos[parent[has_parent]]]
    flav_kept = np.select(
        [from_tau & parent_prompt, from_tau, parent_is_b, parent_is_c, prompt],
        [15, 3, 5, 4, 1],
        3,
    )
    flav = np.zeros(n, dtype=np.uint8)
    flav[kept] = flav_kept
    return flav


def _per_event(mask: np.ndarray, fields: dict[str, np.ndarray], evt: np.ndarray, n_events: int) -> _Targets:
    """The ``fields`` of the record entries in ``mask`` as jet-matching targets with per-event offsets."""
    idx = np.flatnonzero(mask)
    return _Targets({k: v[idx] for k, v in fields.items()}, _offsets(np.bincount(evt[idx], minlength=n_events)))
