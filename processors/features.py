"""Per-event features: HLF-21, HLF-24, m_jj, large-R substructure, ADC2021 (19, 3), RMM (51, 51).

Entry point :func:`compute_features` (events -> one record per event). Everything is columnar on
the objects' flat columns (:class:`~cms_anomaly.processors.flat.FlatCollection`): one numba pass
per collection for the sums over objects (:class:`CollectionSums`), numpy for event-level
arithmetic, the numba RMM kernel of :mod:`cms_anomaly.processors.rmm` for the matrices. Feature
definitions: the papers (Cerri et al. sec. 3, Knapp et al. appendix A, the ADC2021 object lists) and
the records of :mod:`cms_anomaly.processors.feature_spec`.

Events without a trigger lepton get 0 for every lepton feature (``pt_lep``, ``iso_*``,
``charge_lep``, ``is_ele``, ``met_par``, ``met_perp``, ``mt``); selections decide whether such
events are used.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import awkward as ak
import numba
import numpy as np
from cms_anomaly.processors import rmm as rmm_mod
from cms_anomaly.processors.config import AnalysisConfig, ObjectConfig
from cms_anomaly.processors.feature_spec import (
    ADC_LAYOUT,
    ADC_ROWS,
    ADC_VARIABLES,
    ARRAY_FEATURES,
    FEATURES,
    registered_features,
)
from cms_anomaly.processors.flat import FlatCollection
from cms_anomaly.processors.objects import (
    ELECTRON_PDGID,
    MUON_PDGID,
    EventObjects,
    build_objects,
)

log = logging.getLogger(__name__)

#: the names of the 19 rows: ``met``, ``ele1`` .. ``ele4``, ``mu1`` .. ``mu4``, ``jet1`` .. ``jet10``
OBJECT_SLOTS: tuple[str, ...] = (
    "met",
    *(
        f"{short}{i + 1}"
        for name, short in (("electron", "ele"), ("muon", "mu"), ("jet", "jet"))
        for i in range(ADC_LAYOUT[name][1])
    ),
)


#: fields of the trigger lepton (:func:`trigger_lepton`)
TRIGGER_LEPTON_FIELDS: tuple[str, ...] = ("pt", "eta", "phi", "mass", "charge", "iso_ch", "iso_neu", "iso_gamma", "iso")


@numba.njit(cache=True, nogil=True)
def _leading_passing_kernel(
    counts_a: Any, pt_a: Any, iso_a: Any, counts_b: Any, pt_b: Any, iso_b: Any, pt_min: float, iso_max: float
) -> Any:  # pragma: no cover - compiled
    """Per event, the highest-pT object with pT > ``pt_min`` and iso < ``iso_max`` of the two
    collections: (0 for ``a``, 1 for ``b``, -1 for none; flat index). Ties go to the first in
    (``a`` then ``b``, each in its order), as a stable descending sort of their concatenation."""
    which = np.full(len(counts_a), -1, dtype=np.int8)
    index = np.zeros(len(counts_a), dtype=np.int64)
    a0 = 0
    b0 = 0
    for ev in range(len(counts_a)):
        best = -1.0
        for k in range(a0, a0 + counts_a[ev]):
            if pt_a[k] > pt_min and iso_a[k] < iso_max and (which[ev] < 0 or pt_a[k] > best):
                which[ev], index[ev], best = 0, k, pt_a[k]
        for k in range(b0, b0 + counts_b[ev]):
            if pt_b[k] > pt_min and iso_b[k] < iso_max and (which[ev] < 0 or pt_b[k] > best):
                which[ev], index[ev], best = 1, k, pt_b[k]
        a0 += counts_a[ev]
        b0 += counts_b[ev]
    return which, index


def trigger_lepton(objects: EventObjects, *, config: ObjectConfig) -> dict[str, np.ndarray]:
    """Highest-pT isolated lepton with pT > ``trigger_lepton_pt_min`` and Iso < ``trigger_iso_max``
    (muons first on a tie), as flat columns: ``has`` (bool), ``flavour`` (13, 11; 0 without one) and
    :data:`TRIGGER_LEPTON_FIELDS` (float64, 0 without one)."""
    muons, electrons = objects.flat["muons"], objects.flat["electrons"]
    cm, mu, ce, el = muons.counts, muons.columns, electrons.counts, electrons.columns
    which, index = _leading_passing_kernel(
        cm, mu["pt"], mu["iso"], ce, el["pt"], el["iso"], config.trigger_lepton_pt_min, config.trigger_iso_max
    )
    is_mu, is_ele = which == 0, which == 1
    out: dict[str, np.ndarray] = {"has": which >= 0}
    for f in TRIGGER_LEPTON_FIELDS:
        col = np.zeros(len(which))
        col[is_mu] = mu[f][index[is_mu]]
        col[is_ele] = el[f][index[is_ele]]
        out[f] = col
    out["flavour"] = np.where(is_mu, MUON_PDGID, np.where(is_ele, ELECTRON_PDGID, 0))
    return out


@numba.njit(cache=True, nogil=True)
def _sums_kernel(
    counts: Any, pt: Any, eta: Any, phi: Any, mass: Any, pt_min: float, abs_eta_max: float
) -> Any:  # pragma: no cover - compiled
    """Per event: [0] the scalar pT sum, [1] the pT sum of the objects with pT > ``pt_min`` and |eta| <
    ``abs_eta_max``, [2:6] (px, py, pz, E) summed over all objects, [6:10] over the first two. Sums run
    in the objects' order (the same rounding as awkward's per-list sums)."""
    out = np.zeros((len(counts), 10))
    k = 0
    for ev in range(len(counts)):
        for i in range(counts[ev]):
            px = pt[k] * np.cos(phi[k])
            py = pt[k] * np.sin(phi[k])
            pz = pt[k] * np.sinh(eta[k])
            energy = np.sqrt(px * px + py * py + pz * pz + mass[k] * mass[k])
            out[ev, 0] += pt[k]
            if pt[k] > pt_min and abs(eta[k]) < abs_eta_max:
                out[ev, 1] += pt[k]
            out[ev, 2] += px
            out[ev, 3] += py
            out[ev, 4] += pz
            out[ev, 5] += energy
            if i < 2:
                out[ev, 6] += px
                out[ev, 7] += py
                out[ev, 8] += pz
                out[ev, 9] += energy
            k += 1
    return out


def _mass(p4: np.ndarray) -> np.ndarray:
    px, py, pz, energy = p4.T
    return np.sqrt(np.maximum(energy**2 - px**2 - py**2 - pz**2, 0.0))


class CollectionSums:
    """Per-event sums over one collection with ``pt, eta, phi, mass`` (one numba pass).

    ``pt_min`` / ``abs_eta_max`` define the objects of :attr:`pt_sum_selected` (S_T's objects).
    """

    def __init__(self, coll: FlatCollection, *, pt_min: float = -np.inf, abs_eta_max: float = np.inf) -> None:
        self.counts, flat = coll.counts, coll.columns
        self._sums = _sums_kernel(
            self.counts, flat["pt"], flat["eta"], flat["phi"], flat["mass"], float(pt_min), float(abs_eta_max)
        )

    @property
    def pt_sum(self) -> np.ndarray:
        """Scalar pT sum (H_T of jets)."""
        return self._sums[:, 0]

    @property
    def pt_sum_selected(self) -> np.ndarray:
        """Scalar pT sum of the objects above ``pt_min`` within ``abs_eta_max``."""
        return self._sums[:, 1]

    @property
    def mass(self) -> np.ndarray:
        """Invariant mass of all objects (0 for an empty event)."""
        return _mass(self._sums[:, 2:6])

    @property
    def vector_pt(self) -> np.ndarray:
        """|sum of the objects' transverse momenta|."""
        return np.hypot(self._sums[:, 2], self._sums[:, 3])

    @property
    def leading_pair_mass(self) -> np.ndarray:
        """Invariant mass of the two leading objects (0 with fewer than two)."""
        return np.where(self.counts >= 2, _mass(self._sums[:, 6:10]), 0.0)


def lepton_features(objects: EventObjects, *, config: AnalysisConfig) -> dict[str, np.ndarray]:
    """Trigger-lepton features and the MET projections (0 where there is no trigger lepton)."""
    lep = trigger_lepton(objects, config=config.objects)
    has = lep["has"]
    pt, phi = lep["pt"], lep["phi"]
    dphi = objects.met_phi - phi
    met = objects.met_pt
    mt = np.sqrt(np.maximum(2.0 * pt * met * (1.0 - np.cos(dphi)), 0.0))
    return {
        "has_lepton": has,
        "pt_lep": pt,
        "eta_lep": lep["eta"],
        "iso_ch": lep["iso_ch"],
        "iso_neu": lep["iso_neu"],
        "iso_gamma": lep["iso_gamma"],
        "iso": lep["iso"],
        "charge_lep": lep["charge"].astype(np.int64),
        "is_ele": (lep["flavour"] == 11).astype(np.int64),
        "met_par": np.where(has, met * np.cos(dphi), 0.0),
        "met_perp": np.where(has, met * np.sin(dphi), 0.0),
        "mt": np.where(has, mt, 0.0),
    }


#: the pT-weighted jet energy fractions: feature name -> NanoAOD ``Jet_*`` field
JET_FRACTIONS: dict[str, str] = {
    "jet_chhef": "chHEF",
    "jet_nehef": "neHEF",
    "jet_chemef": "chEmEF",
    "jet_neemef": "neEmEF",
}


def jet_content_features(objects: EventObjects) -> dict[str, np.ndarray]:
    """``n_constituents`` (summed ``Jet_nConstituents``) and the pT-weighted mean energy fractions
    :data:`JET_FRACTIONS` of the selected jets; 0 without jets, -1 where the file has no jet content.

    pT-weighted: the fractions of a hard jet describe more of the event's hadronic energy than those
    of a 30 GeV jet, and the sum over jets then stays the event's fraction of the jets' (transverse) energy.
    """
    jets = objects.flat["jets"]
    n = len(jets.counts)
    if not objects.has_jet_content:
        return {name: np.full(n, -1.0) for name in ("n_constituents", *JET_FRACTIONS)}
    event = np.repeat(np.arange(n), jets.counts)
    pt = jets.columns["pt"]
    pt_sum = np.bincount(event, weights=pt, minlength=n)
    out = {"n_constituents": np.bincount(event, weights=jets.columns["nConstituents"], minlength=n)}
    for name, fld in JET_FRACTIONS.items():
        weighted = np.bincount(event, weights=pt * jets.columns[fld], minlength=n)
        out[name] = np.divide(weighted, pt_sum, out=np.zeros(n), where=pt_sum > 0)
    return out


def event_features(objects: EventObjects, *, config: AnalysisConfig) -> dict[str, np.ndarray]:
    """S_T, H_T, jet and b-jet counts, M_J, lepton sums, multiplicities, jet content, m_jj, large-R features."""
    fc = config.features
    # S_T (Cerri sec. 3): jets, leptons and photons with pT > 30 GeV, |eta| < 2.6, all disjoint
    # after the overlap removal. Cerri's N_J and M_J are "the jets entering S_T" and Knapp's N_J,
    # M_J, H_T the jets with pT > 30, |eta| < 2.4: one jet collection (``objects.jets``, |eta| <
    # 2.4, the tracker acceptance the b tag needs) serves both papers, so N_J, M_J, H_T and the jets
    # of S_T are the same jets; only the leptons and photons of S_T reach |eta| < 2.6.
    flat = objects.flat
    jets = CollectionSums(flat["jets"], pt_min=fc.st_pt_min)
    muons, electrons, photons = (
        CollectionSums(c, pt_min=fc.st_pt_min, abs_eta_max=fc.st_eta_max)
        for c in (flat["muons"], flat["electrons"], flat["photons"])
    )
    st_pt = jets.pt_sum_selected + muons.pt_sum_selected + electrons.pt_sum_selected + photons.pt_sum_selected
    fat = CollectionSums(flat["fatjets"])
    fj = flat["fatjets"]
    return {
        "st": st_pt,
        "ht": jets.pt_sum,
        "n_jets": jets.counts,
        "m_jets": jets.mass,
        "n_bjets": flat["bjets"].counts,
        "met": objects.met_pt,
        "n_mu": muons.counts,
        "m_mu": muons.mass,
        "pt_tot_mu": muons.vector_pt,
        "n_ele": electrons.counts,
        "m_ele": electrons.mass,
        "pt_tot_ele": electrons.vector_pt,
        "n_ch_had": objects.n_ch_had,
        "n_neu_had": objects.n_neu_had,
        # Knapp app. A: "the number of all photon PF candidates" (-1 without PF candidates, like
        # the hadron multiplicities); identified photons enter S_T and the RMM
        "n_photons": objects.n_pf_photons,
        **jet_content_features(objects),
        "mjj": jets.leading_pair_mass,
        "n_fatjets": fat.counts,
        "mJ1": fj.nth("mass", 0),
        "mJ2": fj.nth("mass", 1),
        "mJJ": fat.leading_pair_mass,
        "tau21_j1": fj.nth("tau21", 0),
        "tau32_j1": fj.nth("tau32", 0),
        "tau21_j2": fj.nth("tau21", 1),
        "tau32_j2": fj.nth("tau32", 1),
        **class_count_features(objects, config=config),
    }


def class_count_features(objects: EventObjects, *, config: AnalysisConfig) -> dict[str, np.ndarray]:
    """``class_n_<type>``: the event-class objects of each type
    (:func:`~cms_anomaly.processors.eventclass.class_counts`)."""
    from cms_anomaly.processors.eventclass import TYPES, class_counts

    counts, _ = class_counts(objects, config.selections)
    return {f"class_n_{t}": counts[:, k] for k, t in enumerate(TYPES)}


def adc_objects(objects: EventObjects, *, config: AnalysisConfig) -> np.ndarray:
    """ADC2021 (N, 19, 3) float32 array of (pT, eta, phi).

    Row 0: MET (pT = MET, eta = 0, phi = MET phi); rows 1-4 electrons, 5-8 muons, 9-18 jets;
    each type pT-ordered and zero-padded. Leptons need pT > ``adc_lepton_pt_min``; jets are the
    NanoAOD (or re-clustered) jets with pT > ``adc_jet_pt_min`` and |eta| < ``adc_jet_eta_max``.
    """
    fc = config.features
    n = len(objects)
    out = np.zeros((n, ADC_ROWS, len(ADC_VARIABLES)), dtype=np.float32)
    out[:, 0, 0] = objects.met_pt
    out[:, 0, 2] = objects.met_phi
    lep_min = fc.adc_lepton_pt_min
    jets, ele, muo = (objects.flat[k] for k in ("all_jets", "electrons", "muons"))
    colls = {
        "electron": ele.select(ele.columns["pt"] > lep_min),
        "muon": muo.select(muo.columns["pt"] > lep_min),
        "jet": jets.select((jets.columns["pt"] > fc.adc_jet_pt_min) & (abs(jets.columns["eta"]) < fc.adc_jet_eta_max)),
    }
    for name, (row, nrows) in ADC_LAYOUT.items():
        counts, flat = colls[name].counts, colls[name].columns
        # each object's position in its event; the first nrows fill the rows, the rest stay 0
        slot = np.arange(len(flat["pt"])) - np.repeat(colls[name].offsets[:-1], counts)
        keep = slot < nrows
        ev, slot = np.repeat(np.arange(n), counts)[keep], slot[keep] + row
        for k, fld in enumerate(ADC_VARIABLES):
            out[ev, slot, k] = flat[fld][keep]
    return out


def rmm_collections(objects: EventObjects, *, config: AnalysisConfig) -> list[FlatCollection]:
    """The five RMM collections in :data:`~cms_anomaly.processors.rmm.RMM_TYPES` order."""
    fc = config.features
    jets, mu, ele, pho = (objects.flat[k] for k in ("jets", "muons", "electrons", "photons"))
    return [
        jets.select(~jets.columns["is_b"]),
        objects.flat["bjets"],
        mu.select(mu.columns["pt"] > fc.rmm_lepton_pt_min),
        ele.select(ele.columns["pt"] > fc.rmm_lepton_pt_min),
        pho.select(pho.columns["pt"] > fc.rmm_photon_pt_min),
    ]


#: features computed only from the RMM and object arrays (see :func:`array_features`)
RMM_DERIVED: tuple[str, ...] = tuple(rmm_mod.M_LEAD_NAMES)


def scalar_features(objects: EventObjects, *, config: AnalysisConfig) -> dict[str, np.ndarray]:
    """Every scalar feature except the RMM-derived leading-object masses, plus ``has_lepton``; the features
    of :func:`~cms_anomaly.processors.feature_spec.register_feature` by their ``compute`` function."""
    columns: dict[str, np.ndarray] = {}
    columns.update(lepton_features(objects, config=config))
    columns.update(event_features(objects, config=config))
    for spec in registered_features():
        if spec.compute is not None:  # always, register_feature refuses a feature without one
            columns[spec.name] = np.asarray(spec.compute(objects, config), dtype=np.float64)
    return columns


#: scalar features a cut can have without computing the others: object counts
_COUNTS: dict[str, str] = {
    "n_jets": "jets",
    "n_bjets": "bjets",
    "n_fatjets": "fatjets",
    "n_mu": "muons",
    "n_ele": "electrons",
}


class CutFeatures(Mapping[str, np.ndarray]):
    """The scalar features of every event of a chunk as the selections read them, computed on demand.

    The cuts of a selection see every event, but the features of the events a selection rejects are
    never used: the built-in cuts read only object counts (``n_jets``, ``n_fatjets``), which come
    straight from the objects. Any other name computes :func:`scalar_features` of all events once
    (a user's cut on ``ht`` still works). The processor computes the features of the selected events
    afterwards, on those events only (a third of the chunk under ``single_lepton``).
    """

    def __init__(self, objects: EventObjects, *, config: AnalysisConfig) -> None:
        self._objects, self._config = objects, config
        self._all: dict[str, np.ndarray] | None = None

    def _computed(self) -> dict[str, np.ndarray]:
        if self._all is None:
            self._all = scalar_features(self._objects, config=self._config)
        return self._all

    def __getitem__(self, name: str) -> np.ndarray:
        if self._all is None and name in _COUNTS:
            return self._objects.flat[_COUNTS[name]].counts
        return self._computed()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._computed())

    def __len__(self) -> int:
        return len(self._computed())

    def of_selected(self, mask: np.ndarray, selected: EventObjects) -> dict[str, np.ndarray]:
        """The scalar features of the events where ``mask`` is true (their objects: ``selected``): the
        rows of the features of every event if a cut made them, else computed for these events only."""
        if self._all is not None:
            return {k: v[mask] for k, v in self._all.items()}
        return scalar_features(selected, config=self._config)


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
    """Zip scalar and array columns into the feature record (fields in :data:`FEATURES` order)."""
    columns = {**scalars, **arrays}
    record: dict[str, Any] = {name: columns[name] for name in FEATURES}
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
