"""Per-event features: HLF-21, HLF-24, m_jj, large-R substructure, ADC2021 (19, 3), RMM (51, 51).

Entry point :func:`compute_features` (events -> one record per event). Everything is columnar:
awkward reductions for sums over objects, numpy for event-level arithmetic, the numba RMM kernel
of :mod:`cms_anomaly.processors.rmm` for the matrices. Feature definitions: the papers (Cerri et al.
sec. 3, Knapp et al. appendix A, the ADC2021 object lists) and the records of
:mod:`cms_anomaly.processors.feature_spec`.

Events without a trigger lepton get 0 for every lepton feature (``pt_lep``, ``iso_*``,
``charge_lep``, ``is_ele``, ``met_par``, ``met_perp``, ``mt``); selections decide whether such
events are used.
"""

from __future__ import annotations

import logging
from typing import Any

import awkward as ak
import numba
import numpy as np
from cms_anomaly.processors import rmm as rmm_mod
from cms_anomaly.processors.config import AnalysisConfig
from cms_anomaly.processors.feature_spec import ARRAY_FEATURES, SCALAR_FEATURES
from cms_anomaly.processors.objects import EventObjects, build_objects, jagged_parts, trigger_lepton

log = logging.getLogger(__name__)

#: ADC2021 (19, 3) layout: (row offset, number of rows) per object type after the MET row
ADC_LAYOUT: dict[str, tuple[int, int]] = {"electron": (1, 4), "muon": (5, 4), "jet": (9, 10)}
#: the names of the 19 rows: ``met``, ``ele1`` .. ``ele4``, ``mu1`` .. ``mu4``, ``jet1`` .. ``jet10``
OBJECT_SLOTS: tuple[str, ...] = (
    "met",
    *(
        f"{short}{i + 1}"
        for name, short in (("electron", "ele"), ("muon", "mu"), ("jet", "jet"))
        for i in range(ADC_LAYOUT[name][1])
    ),
)


def _np(arr: Any, dtype: Any = np.float64) -> np.ndarray:
    return np.asarray(ak.to_numpy(arr), dtype=dtype)


@numba.njit(cache=True, nogil=True)
def _p4_sum_kernel(counts: Any, pt: Any, eta: Any, phi: Any, mass: Any) -> Any:  # pragma: no cover - compiled
    out = np.zeros((len(counts), 4))
    k = 0
    for ev in range(len(counts)):
        for _ in range(counts[ev]):
            px = pt[k] * np.cos(phi[k])
            py = pt[k] * np.sin(phi[k])
            pz = pt[k] * np.sinh(eta[k])
            out[ev, 0] += px
            out[ev, 1] += py
            out[ev, 2] += pz
            out[ev, 3] += np.sqrt(px * px + py * py + pz * pz + mass[k] * mass[k])
            k += 1
    return out


def four_momentum_sum(coll: ak.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-event (px, py, pz, E) summed over a jagged collection with ``pt, eta, phi, mass``."""
    counts, pt = jagged_parts(coll.pt)
    flat = [np.asarray(jagged_parts(coll[f])[1], dtype=np.float64) for f in ("eta", "phi", "mass")]
    sums = _p4_sum_kernel(counts, np.asarray(pt, dtype=np.float64), *flat)
    return sums[:, 0], sums[:, 1], sums[:, 2], sums[:, 3]


def invariant_mass(coll: ak.Array) -> np.ndarray:
    """Invariant mass of the sum of all objects of each event (0 for empty events)."""
    px, py, pz, energy = four_momentum_sum(coll)
    return np.sqrt(np.maximum(energy**2 - px**2 - py**2 - pz**2, 0.0))


def vector_pt_sum(coll: ak.Array) -> np.ndarray:
    """|sum of transverse momenta| of the objects of each event."""
    px, py, _, _ = four_momentum_sum(coll)
    return np.hypot(px, py)


def leading_pair_mass(coll: ak.Array) -> np.ndarray:
    """Invariant mass of the two leading objects (0 if fewer than two)."""
    two = coll[:, :2]
    return np.where(_np(ak.num(two, axis=1), np.int64) == 2, invariant_mass(two), 0.0)


def _nth(coll: ak.Array, field: str, n: int, default: float) -> np.ndarray:
    col = ak.pad_none(coll[field], n + 1, axis=1)[:, n]
    return _np(ak.fill_none(col, default))


def lepton_features(objects: EventObjects, *, config: AnalysisConfig) -> dict[str, np.ndarray]:
    """Trigger-lepton features and the MET projections (0 where there is no trigger lepton)."""
    lep = trigger_lepton(objects, config=config.objects)
    has = _np(~ak.is_none(lep), bool)
    get = lambda f: _np(ak.fill_none(lep[f], 0))
    pt, phi = get("pt"), get("phi")
    dphi = objects.met_phi - phi
    met = objects.met_pt
    mt = np.sqrt(np.maximum(2.0 * pt * met * (1.0 - np.cos(dphi)), 0.0))
    return {
        "has_lepton": has,
        "pt_lep": pt,
        "eta_lep": get("eta"),
        "iso_ch": get("iso_ch"),
        "iso_neu": get("iso_neu"),
        "iso_gamma": get("iso_gamma"),
        "iso": get("iso"),
        "charge_lep": get("charge").astype(np.int64),
        "is_ele": (get("flavour") == 11).astype(np.int64),
        "met_par": np.where(has, met * np.cos(dphi), 0.0),
        "met_perp": np.where(has, met * np.sin(dphi), 0.0),
        "mt": np.where(has, mt, 0.0),
    }


def event_features(objects: EventObjects, *, config: AnalysisConfig) -> dict[str, np.ndarray]:
    """S_T, H_T, jet and b-jet counts, M_J, lepton sums, multiplicities, m_jj, large-R features."""
    fc = config.features
    # S_T (Cerri sec. 3): jets, leptons and photons with pT > 30 GeV, |eta| < 2.6, all disjoint
    # after the overlap removal. Cerri's N_J and M_J are "the jets entering S_T" and Knapp's N_J,
    # M_J, H_T the jets with pT > 30, |eta| < 2.4: one jet collection (``objects.jets``, |eta| <
    # 2.4, the tracker acceptance the b tag needs) serves both papers, so N_J, M_J, H_T and the jets
    # of S_T are the same jets; only the leptons and photons of S_T reach |eta| < 2.6.
    st_pt = _np(ak.sum(objects.jets.pt[objects.jets.pt > fc.st_pt_min], axis=1))
    for coll in (objects.muons, objects.electrons, objects.photons):
        sel = (coll.pt > fc.st_pt_min) & (abs(coll.eta) < fc.st_eta_max)
        st_pt = st_pt + _np(ak.sum(coll.pt[sel], axis=1))
    fat = objects.fatjets
    return {
        "st": np.asarray(st_pt, dtype=np.float64) * np.ones(len(objects)),
        "ht": _np(ak.sum(objects.jets.pt, axis=1)),
        "n_jets": _np(ak.num(objects.jets, axis=1), np.int64),
        "m_jets": invariant_mass(objects.jets),
        "n_bjets": _np(ak.num(objects.bjets, axis=1), np.int64),
        "met": objects.met_pt,
        "n_mu": _np(ak.num(objects.muons, axis=1), np.int64),
        "m_mu": invariant_mass(objects.muons),
        "pt_tot_mu": vector_pt_sum(objects.muons),
        "n_ele": _np(ak.num(objects.electrons, axis=1), np.int64),
        "m_ele": invariant_mass(objects.electrons),
        "pt_tot_ele": vector_pt_sum(objects.electrons),
        "n_ch_had": objects.n_ch_had,
        "n_neu_had": objects.n_neu_had,
        # Knapp app. A: "the number of all photon PF candidates" (-1 without PF candidates, like
        # the hadron multiplicities); identified photons enter S_T and the RMM
        "n_photons": objects.n_pf_photons,
        "mjj": leading_pair_mass(objects.jets),
        "n_fatjets": _np(ak.num(fat, axis=1), np.int64),
        "mJ1": _nth(fat, "mass", 0, 0.0),
        "mJ2": _nth(fat, "mass", 1, 0.0),
        "mJJ": leading_pair_mass(fat),
        "tau21_j1": _nth(fat, "tau21", 0, 0.0),
        "tau32_j1": _nth(fat, "tau32", 0, 0.0),
        "tau21_j2": _nth(fat, "tau21", 1, 0.0),
        "tau32_j2": _nth(fat, "tau32", 1, 0.0),
    }


def adc_objects(objects: EventObjects, *, config: AnalysisConfig) -> np.ndarray:
    """ADC2021 (N, 19, 3) float32 array of (pT, eta, phi).

    Row 0: MET (pT = MET, eta = 0, phi = MET phi); rows 1-4 electrons, 5-8 muons, 9-18 jets;
    each type pT-ordered and zero-padded. Leptons need pT > ``adc_lepton_pt_min``; jets are the
    NanoAOD (or re-clustered) jets with pT > ``adc_jet_pt_min`` and |eta| < ``adc_jet_eta_max``.
    """
    fc = config.features
    n = len(objects)
    out = np.zeros((n, 19, 3), dtype=np.float32)
    out[:, 0, 0] = objects.met_pt
    out[:, 0, 2] = objects.met_phi
    jets = objects.all_jets
    colls = {
        "electron": objects.electrons[objects.electrons.pt > fc.adc_lepton_pt_min],
        "muon": objects.muons[objects.muons.pt > fc.adc_lepton_pt_min],
        "jet": jets[(jets.pt > fc.adc_jet_pt_min) & (abs(jets.eta) < fc.adc_jet_eta_max)],
    }
    for name, (row, nrows) in ADC_LAYOUT.items():
        coll = colls[name]
        for k, fld in enumerate(("pt", "eta", "phi")):
            padded = ak.fill_none(ak.pad_none(coll[fld][:, :nrows], nrows, axis=1, clip=True), 0.0)
            out[:, row : row + nrows, k] = _np(padded, np.float32).reshape(n, nrows)
    return out


def rmm_collections(objects: EventObjects, *, config: AnalysisConfig) -> list[ak.Array]:
    """The five RMM collections in :data:`~cms_anomaly.processors.rmm.RMM_TYPES` order."""
    fc = config.features
    light = objects.jets[~objects.jets.is_b]
    mu = objects.muons[objects.muons.pt > fc.rmm_lepton_pt_min]
    ele = objects.electrons[objects.electrons.pt > fc.rmm_lepton_pt_min]
    pho = objects.photons[objects.photons.pt > fc.rmm_photon_pt_min]
    return [c[["pt", "eta", "phi", "mass"]] for c in (light, objects.bjets, mu, ele, pho)]


#: features computed only from the RMM and object arrays (see :func:`array_features`)
RMM_DERIVED: tuple[str, ...] = tuple(rmm_mod.M_LEAD_NAMES)


def scalar_features(objects: EventObjects, *, config: AnalysisConfig) -> dict[str, np.ndarray]:
    """Every scalar feature except the RMM-derived leading-object masses, plus ``has_lepton``."""
    columns: dict[str, np.ndarray] = {}
    columns.update(lepton_features(objects, config=config))
    columns.update(event_features(objects, config=config))
    return columns


def array_features(
    objects: EventObjects, *, config: AnalysisConfig, weights: np.ndarray | None = None, keep_rmm: bool = True
) -> dict[str, np.ndarray]:
    """``rmm`` (N, 51, 51; only with ``keep_rmm``), ``objects`` (N, 19, 3), ``m_lead_objects`` (N, 14), the
    14 named masses, and ``rmm_occupancy_sumw`` / ``rmm_occupancy_sumw2`` (51, 51): per cell, the sum of the
    ``weights`` (default 1) of the events in which it is non-zero
    (:func:`~cms_anomaly.processors.rmm.rmm_summary`, one pass)."""
    fc = config.features
    summary = rmm_mod.rmm_summary(
        rmm_collections(objects, config=config),
        objects.met_pt,
        objects.met_phi,
        weights,
        keep_matrices=keep_rmm,
        n_per_type=fc.rmm_n_per_type,
        sqrt_s=fc.sqrt_s,
    )
    out: dict[str, np.ndarray] = {name: summary.leading[:, k] for k, name in enumerate(RMM_DERIVED)}
    out["m_lead_objects"] = summary.leading.astype(np.float32)
    out["objects"] = adc_objects(objects, config=config)
    if summary.rmm is not None:
        out["rmm"] = summary.rmm
    out["rmm_occupancy_sumw"], out["rmm_occupancy_sumw2"] = summary.sumw, summary.sumw2
    return out


def feature_record(scalars: dict[str, np.ndarray], arrays: dict[str, np.ndarray]) -> ak.Array:
    """Zip scalar and array columns into the feature record (fields in :data:`SCALAR_FEATURES` order)."""
    columns = {**scalars, **arrays}
    record: dict[str, Any] = {name: columns[name] for name in SCALAR_FEATURES}
    record["has_lepton"] = columns["has_lepton"]
    for name in ARRAY_FEATURES:
        if name in columns:  # ``rmm`` is absent unless kept (see array_features)
            record[name] = ak.from_numpy(columns[name])
    return ak.zip(record, depth_limit=1)


def features_from_objects(objects: EventObjects, *, config: AnalysisConfig) -> ak.Array:
    """The feature record array of :func:`compute_features` from already built objects."""
    return feature_record(scalar_features(objects, config=config), array_features(objects, config=config))


def compute_features(events: Any, *, config: AnalysisConfig, source: str = "") -> ak.Array:
    """One record per event with every scalar feature, ``m_lead_objects`` (N, 14), ``objects``
    (N, 19, 3) and ``rmm`` (N, 51, 51) (regular float32 arrays), plus ``has_lepton``.

    Parameters
    ----------
    events
        NanoEvents of any supported NanoAOD variant (or a record array with that layout).
    config
        Analysis configuration (object cuts, sqrt(s), RMM size).
    source
        File name used in error messages.

    Raises
    ------
    cms_anomaly.processors.schema.MissingBranchError
        A branch a feature needs is missing and has no documented fallback.
    """
    objects = build_objects(events, config=config.objects, source=source)
    return features_from_objects(objects, config=config)
