"""Physics objects from NanoEvents: pure columnar functions (awkward in, flat numpy and awkward out).

:func:`build_objects` reads every branch through the schema map
(:mod:`cms_anomaly.processors.schema`), makes every cut, the isolation, the overlap removal and the
pT ordering on flat numpy columns with numba passes
(:class:`~cms_anomaly.processors.flat.FlatCollection`; awkward's per-call overhead was half of a
chunk's processing), and returns an :class:`EventObjects` bundle:
pT-ordered muons, electrons (with the three isolation components), photons, jets, b-jets,
the looser ADC2021 objects, large-R jets with N-subjettiness ratios, MET, PF-candidate
hadron multiplicities and the generator weight.

Objects are those of a CMS analysis, the same on generated and real NanoAOD (every cut a field of
:class:`~cms_anomaly.processors.config.ObjectConfig` with its source):

- **leptons**: identification without isolation (the CMS loose muon, the isolation-free electron
  MVA), pT > ``lepton_pt_min``, relative isolation < ``lepton_iso_max``;
- **photons**: cut-based ID >= loose and relative PF isolation, pT > ``photon_pt_min``; photons
  within dR < 0.4 of a selected lepton are removed;
- **jets**: jet ID (tight by default) and no selected lepton or photon within dR < 0.4 (CMS AK4
  jets are clustered from all PF candidates, leptons included); b-jets are clean jets above the
  b-tag working point; large-R jets removed when a selected lepton or photon within their radius
  carries most of their pT (the jet is that object). Objects are thus
  disjoint, as in Delphes' UniqueObjectFinder that the papers' samples used.

Isolation of a lepton: CMS's relative PF isolation in a cone dR < 0.3 (``pfIsolationR03``), read
from the NanoAOD branches on every file, with or without PF candidates, so that collision data
(standard NanoAOD, no PF candidates) and simulation get the same definition: ``iso`` =
``pfRelIso03_all``, ``iso_ch`` = ``pfRelIso03_chg`` (charged hadrons), ``iso_neu`` = their
difference (neutral hadrons and photons: the branches do not split them). The papers (Cerri sec. 3,
Knapp app. A) sum "charged particles"; the CMS definition is the one NanoAOD stores. Only the photon
part ``iso_gamma`` is computed from PF candidates (:func:`pf_isolation`: ``sum_{p != l, dR < 0.3}
pT_p / pT_l`` over PF photons), where the file has them, else 0: a feature that needs them.

Jets carry the NanoAOD jet content (``nConstituents`` and the energy fractions ``chHEF``, ``neHEF``,
``chEmEF``, ``neEmEF``) where the file has all five branches (:attr:`EventObjects.has_jet_content`).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numba
import numpy as np
from cms_anomaly.processors import btag, schema
from cms_anomaly.processors.config import ObjectConfig
from cms_anomaly.processors.flat import FlatCollection, jagged_parts, offsets_from_counts
from cms_anomaly.processors.notices import notice_once

log = logging.getLogger(__name__)

MUON_PDGID = 13
ELECTRON_PDGID = 11


class _Jagged:
    """The jagged awkward record of one of :attr:`EventObjects.flat`'s collections, built on first
    access and kept in the instance (whose dict is writable on a frozen dataclass)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        jagged = obj.flat[self.name].to_awkward()
        obj.__dict__[self.name] = jagged  # a non-data descriptor: later reads find it in the dict
        return jagged


#: the object collections of :class:`EventObjects`, in their order
COLLECTIONS: tuple[str, ...] = ("muons", "electrons", "photons", "jets", "bjets", "all_jets", "fatjets")


@dataclass(frozen=True)
class EventObjects:
    """Objects of one chunk of events (every collection pT-ordered, descending).

    The collections are held flat (:attr:`flat`, a :class:`FlatCollection` each, which the features
    and the RMM read); ``muons``, ``electrons``, ``photons``, ``jets``, ``bjets``, ``all_jets`` (jets
    passing the ID and the overlap removal, no kinematic cut: the ADC2021 array) and ``fatjets`` are
    their jagged awkward records, built on first access.
    """

    variant: str
    flat: Mapping[str, FlatCollection]
    met_pt: np.ndarray
    met_phi: np.ndarray
    genweight: np.ndarray
    has_pfcands: bool
    #: the jets carry ``nConstituents`` and the four energy fractions
    #: (:data:`~cms_anomaly.processors.feature_spec.JET_CONTENT`)
    has_jet_content: bool = False
    #: PF-candidate multiplicities (``None`` where the file has no PF candidates)
    pf_multiplicities: PFMultiplicities | None = None
    #: collections absent from the file and treated as empty on request (``allow_missing``)
    missing_collections: tuple[str, ...] = ()

    muons = _Jagged()
    electrons = _Jagged()
    photons = _Jagged()
    jets = _Jagged()
    bjets = _Jagged()
    all_jets = _Jagged()
    fatjets = _Jagged()

    def __len__(self) -> int:
        return len(self.met_pt)

    def subset(self, mask: np.ndarray) -> EventObjects:
        """The objects of the events where ``mask`` is true."""
        if bool(np.all(mask)):
            return self
        return dataclasses.replace(
            self,
            flat={k: c.events(mask) for k, c in self.flat.items()},
            met_pt=self.met_pt[mask],
            met_phi=self.met_phi[mask],
            genweight=self.genweight[mask],
            pf_multiplicities=None if self.pf_multiplicities is None else self.pf_multiplicities[mask],
        )

    def _multiplicity(self, category: int) -> np.ndarray:
        if self.pf_multiplicities is None:
            return np.full(len(self), -1, dtype=np.int64)
        return self.pf_multiplicities.counts[:, category]

    @property
    def n_ch_had(self) -> np.ndarray:
        """Charged hadrons (charged PF candidates other than e/mu) per event; -1 without PF candidates."""
        return self._multiplicity(PF_CHARGED_HADRON)

    @property
    def n_neu_had(self) -> np.ndarray:
        """Neutral PF hadrons per event; -1 without PF candidates."""
        return self._multiplicity(PF_NEUTRAL_HADRON)

    @property
    def n_pf_photons(self) -> np.ndarray:
        """PF photons per event; -1 without PF candidates."""
        return self._multiplicity(PF_PHOTON)


def delta_phi(a: Any, b: Any) -> Any:
    """phi_a - phi_b wrapped into [-pi, pi)."""
    return (a - b + np.pi) % (2 * np.pi) - np.pi


def delta_r(eta1: Any, phi1: Any, eta2: Any, phi2: Any) -> Any:
    """Angular distance sqrt(deta^2 + dphi^2)."""
    return np.hypot(eta1 - eta2, delta_phi(phi1, phi2))


def _sorted_by_pt(coll: ak.Array) -> ak.Array:
    return coll[ak.argsort(coll.pt, axis=1, ascending=False, stable=True)]


def _as_float(arr: Any) -> ak.Array:
    return ak.values_astype(arr, np.float64)


def _collection(
    events: Any,
    prefix: str,
    fields: tuple[str, ...],
    *,
    variant: schema.SchemaVariant,
    feature: str,
    available: set[str],
) -> dict[str, ak.Array]:
    return {
        f: schema.get(events, f"{prefix}.{f}", variant=variant, feature=feature, available=available) for f in fields
    }


#: PF-candidate categories of the isolation sums and the multiplicities (CMS PF isolation:
#: electrons and muons enter no sum)
PF_CHARGED_HADRON, PF_NEUTRAL_HADRON, PF_PHOTON, PF_LEPTON = 0, 1, 2, 3


@numba.njit(cache=True, nogil=True, inline="always")
def _pf_category(charge: Any, pdgid: Any) -> Any:  # pragma: no cover - compiled
    """Category of a PF candidate: e/mu (any charge) -> lepton; other charged -> charged hadron;
    neutral pdgId 22 -> photon; other neutral -> neutral hadron. Branch-free selects."""
    aid = abs(pdgid)
    neutral_cat = PF_PHOTON if aid == 22 else PF_NEUTRAL_HADRON
    c = PF_CHARGED_HADRON if charge != 0 else neutral_cat
    return PF_LEPTON if (aid == 11) | (aid == 13) else c


@numba.njit(cache=True, nogil=True)
def _multiplicity_kernel(events: Any, offsets: Any, charge: Any, pdgid: Any) -> Any:  # pragma: no cover - compiled
    """Candidates of each category in each of ``events`` (indices into ``offsets``)."""
    mult = np.zeros((len(events), 4), dtype=np.int64)
    for i in range(len(events)):
        ev = events[i]
        n_ch = n_neu = n_pho = 0
        # counters in registers, incremented by comparisons: faster than an indexed mult[i, category] += 1,
        # which waits on its own store
        for k in range(offsets[ev], offsets[ev + 1]):
            c = _pf_category(charge[k], pdgid[k])
            n_ch += c == PF_CHARGED_HADRON
            n_neu += c == PF_NEUTRAL_HADRON
            n_pho += c == PF_PHOTON
        mult[i, PF_CHARGED_HADRON] = n_ch
        mult[i, PF_NEUTRAL_HADRON] = n_neu
        mult[i, PF_PHOTON] = n_pho
        mult[i, PF_LEPTON] = offsets[ev + 1] - offsets[ev] - n_ch - n_neu - n_pho
    return mult


@dataclass(frozen=True)
class PFMultiplicities:
    """The PF-candidate multiplicities of some events of a chunk, counted when first asked for.

    Holds the chunk's flat ``charge`` / ``pdgId`` and the indices of its events: a subset (the
    selected events) only narrows the indices, so the ~300 candidates per event are counted for
    the events whose features are computed, not for every event read.
    """

    offsets: np.ndarray
    charge: np.ndarray
    pdgid: np.ndarray
    events: np.ndarray

    def __len__(self) -> int:
        return len(self.events)

    def __getitem__(self, mask: np.ndarray) -> PFMultiplicities:
        return dataclasses.replace(self, events=self.events[mask])

    @functools.cached_property
    def counts(self) -> np.ndarray:
        """(events, 4) candidates per category (``counts[:, PF_PHOTON]``, ...)."""
        return _multiplicity_kernel(self.events, self.offsets, self.charge, self.pdgid)


@numba.njit(cache=True, nogil=True)
def _iso_kernel(
    lep_counts: Any,
    lpt: Any,
    leta: Any,
    lphi: Any,
    pf_counts: Any,
    ppt: Any,
    peta: Any,
    pphi: Any,
    pcharge: Any,
    ppdgid: Any,
    cone: Any,
) -> Any:  # pragma: no cover - compiled
    """Charged-hadron, neutral-hadron and photon pT sums within ``dR < cone`` over each lepton's pT.

    The candidates of the lepton's event are scanned once per lepton; |Delta eta| >= cone rejects
    most before any azimuth arithmetic (4x faster than computing dR for every pair).
    """
    out = np.zeros((len(lpt), 3))
    cone2 = cone * cone
    sums = np.zeros(4)
    l0 = 0
    p0 = 0
    for ev in range(len(lep_counts)):
        for a in range(l0, l0 + lep_counts[ev]):
            sums[:] = 0.0
            for b in range(p0, p0 + pf_counts[ev]):
                deta = np.float64(leta[a]) - np.float64(peta[b])
                if abs(deta) >= cone:
                    continue
                dphi = np.float64(lphi[a]) - np.float64(pphi[b])
                if dphi > np.pi:
                    dphi -= 2 * np.pi
                elif dphi < -np.pi:
                    dphi += 2 * np.pi
                if deta * deta + dphi * dphi < cone2:
                    sums[_pf_category(pcharge[b], ppdgid[b])] += ppt[b]
            if lpt[a] > 0:
                for k in range(3):
                    out[a, k] = sums[k] / lpt[a]
        l0 += lep_counts[ev]
        p0 += pf_counts[ev]
    return out


def pf_isolation(leptons: ak.Array, pfcands: ak.Array, *, cone: float = 0.3) -> dict[str, ak.Array]:
    """Relative PF isolation of each lepton, split in charged / neutral-hadron / photon parts.

    Charged hadrons: PF candidates with charge != 0 that are not e/mu; photons: neutral with
    pdgId 22; neutral hadrons: the other neutral candidates; electrons and muons enter no sum
    (CMS ``pfIsolationR03``, as the NanoAOD ``pfRelIso03_*`` branches). Computed by a numba
    kernel over the flat lepton and PF candidate arrays of the chunk (one pass per event over its
    own candidates).

    Parameters
    ----------
    leptons
        Jagged records with ``pt, eta, phi``.
    pfcands
        Jagged records with ``pt, eta, phi, charge, pdgId``.
    cone
        Isolation cone. The lepton's own PF candidate, an e or mu, enters no sum.

    Returns
    -------
    dict
        ``iso_ch, iso_neu, iso_gamma, iso`` (jagged like ``leptons``).
    """
    lc, lpt = jagged_parts(leptons.pt)
    iso = _iso_flat(lc, lpt, jagged_parts(leptons.eta)[1], jagged_parts(leptons.phi)[1], pf_flat(pfcands), cone=cone)
    return {name: ak.unflatten(values, lc) for name, values in iso.items()}


def pf_flat(pfcands: ak.Array) -> dict[str, np.ndarray]:
    """Counts, offsets and flat numpy arrays of the PF-candidate fields the isolation and the
    multiplicities use (read once, shared by the kernels)."""
    counts, pt = jagged_parts(pfcands.pt)
    out = {"counts": counts, "offsets": offsets_from_counts(counts), "pt": pt}
    for f in ("eta", "phi", "charge", "pdgId"):
        out[f] = jagged_parts(pfcands[f])[1]
    return out


def _iso_flat(
    counts: np.ndarray, pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, pf: dict[str, np.ndarray], *, cone: float
) -> dict[str, np.ndarray]:
    """Flat ``iso_ch, iso_neu, iso_gamma, iso`` of flat leptons (see :func:`pf_isolation`)."""
    iso = _iso_kernel(
        counts, pt, eta, phi, pf["counts"], pf["pt"], pf["eta"], pf["phi"], pf["charge"], pf["pdgId"], float(cone)
    )
    out = {name: iso[:, k] for k, name in enumerate(("iso_ch", "iso_neu", "iso_gamma"))}
    out["iso"] = iso.sum(axis=1)
    return out


def _lepton_id(
    events: Any, prefix: str, *, variant: schema.SchemaVariant, available: set[str], config: ObjectConfig
) -> np.ndarray | None:
    """Flat identification mask (without isolation) of the leptons, ``None`` where the file has no ID branch."""
    get = lambda q: schema.get(events, q, variant=variant, feature=f"{prefix} identification", available=available)
    flat = lambda arr: jagged_parts(arr)[1].astype(bool)
    if prefix == "muon" and config.muon_id == "loose":
        # CMS MUO loose muon: a PF muon that is a global or an arbitrated tracker muon
        parts = [get(f"muon.{k}") for k in ("isPFcand", "isGlobal", "isTracker")]
        if all(p is not None for p in parts):
            pf, glb, trk = (flat(p) for p in parts)
            return pf & (glb | trk)
    quantity = f"muon.{config.muon_id}Id" if prefix == "muon" else ("electron.id" if config.electron_id else None)
    if quantity is None:
        return None
    ident = get(quantity)
    if ident is None:
        log.debug("%s: no %s identification branch: isolation only", variant.name, prefix)
        return None
    return flat(ident)


_F8 = np.float64
_KINEMATICS = {"pt": _F8, "eta": _F8, "phi": _F8, "mass": _F8}


def _leptons(
    events: Any,
    prefix: str,
    *,
    pdgid: int,
    pfcands: dict[str, np.ndarray] | None,
    variant: schema.SchemaVariant,
    available: set[str],
    config: ObjectConfig,
    source: str = "",
) -> FlatCollection:
    """Selected leptons: finite kinematics, ID, pT > ``lepton_pt_min``, Iso < ``lepton_iso_max`` (pT-ordered)."""
    fields = _collection(
        events,
        prefix,
        ("pt", "eta", "phi", "mass", "charge"),
        variant=variant,
        feature=f"{prefix} kinematics",
        available=available,
    )
    coll = FlatCollection.from_columns(fields, {**_KINEMATICS, "charge": np.int32})
    keep = _finite(coll, prefix, variant=variant, source=source) & (coll.columns["pt"] > config.lepton_pt_min)
    ident = _lepton_id(events, prefix, variant=variant, available=available, config=config)
    if ident is not None:
        keep = keep & ident
    coll = coll.select(keep)
    c = coll.columns
    # the NanoAOD branches on every file (the module docstring): one definition for data and simulation
    iso_all = schema.get(events, f"{prefix}.iso_all", variant=variant, feature="iso", available=available)
    iso_chg = schema.get(events, f"{prefix}.iso_chg", variant=variant, feature="iso_ch", available=available)
    all_flat = jagged_parts(iso_all)[1].astype(_F8)[keep]
    chg_flat = np.zeros_like(all_flat) if iso_chg is None else jagged_parts(iso_chg)[1].astype(_F8)[keep]
    gamma = (
        _iso_flat(coll.counts, c["pt"], c["eta"], c["phi"], pfcands, cone=config.iso_cone)["iso_gamma"]
        if pfcands is not None
        else np.zeros_like(all_flat)
    )
    coll = coll.with_columns(iso_ch=chg_flat, iso_neu=all_flat - chg_flat, iso_gamma=gamma, iso=all_flat)
    coll = coll.select(coll.columns["iso"] < config.lepton_iso_max)
    coll = coll.with_columns(flavour=np.full(len(coll.columns["pt"]), pdgid, dtype=np.int32))
    return coll.sorted_by_pt()


def _photons(
    get: Callable[[str, str], Any], *, config: ObjectConfig, variant: schema.SchemaVariant, source: str
) -> FlatCollection:
    """Identified, isolated photons (before the lepton overlap removal), pT-ordered.

    ``Photon_cutBased >= photon_id_min`` (or the loose bit of the older ``cutBasedBitmap``) and
    ``Photon_pfRelIso03_all < photon_iso_max``: a pi0 photon inside a jet fails both.
    """
    photons = FlatCollection.from_columns({k: get(f"photon.{k}", "photons") for k in _KINEMATICS}, _KINEMATICS)
    pt, eta = photons.columns["pt"], photons.columns["eta"]
    keep = _finite(photons, "photon", variant=variant, source=source)
    keep &= (pt > config.photon_pt_min) & (abs(eta) < config.photon_eta_max)
    level = get("photon.id", "photon identification")
    bitmap = get("photon.id_bitmap", "photon identification") if level is None else None
    if level is not None:
        keep = keep & (jagged_parts(level)[1] >= config.photon_id_min)
    elif bitmap is not None and config.photon_id_min > 0:
        bit = 1 << (config.photon_id_min - 1)
        keep = keep & ((jagged_parts(bitmap)[1] & bit) == bit)
    iso = get("photon.iso_all", "photon isolation")
    if iso is not None:
        keep = keep & (jagged_parts(iso)[1] < config.photon_iso_max)
    if level is None and bitmap is None and iso is None:
        log.debug("%s: photons without ID or isolation branches: kinematic cuts only", source or variant.name)
    return photons.select(keep).sorted_by_pt()


def _jet_id(n_jets: int, ident: ak.Array | None, level: str, variant: schema.SchemaVariant) -> np.ndarray:
    """Flat mask of the jets passing the ID ``level`` (all where ``level`` is "none" or the file has no ID)."""
    if level == "none" or ident is None:
        return np.ones(n_jets, dtype=bool)
    bits = variant.jet_id_bits[level]
    return (jagged_parts(ident)[1] & bits) == bits


def recluster_jets(pfcands: ak.Array, *, radius: float = 0.4, pt_min: float = 15.0) -> ak.Array:
    """Anti-kT jets clustered with fastjet from PF candidates (multi-event interface).

    Returns jagged records ``pt, eta, phi, mass``, pT-ordered.
    """
    import fastjet
    from cms_anomaly.core.fourvectors import to_cartesian

    pt, eta, phi, mass = (_as_float(pfcands[k]) for k in ("pt", "eta", "phi", "mass"))
    particles = ak.to_packed(ak.zip(to_cartesian(pt, eta, phi, mass)))
    jetdef = fastjet.JetDefinition(fastjet.antikt_algorithm, radius)
    jets = fastjet.ClusterSequence(particles, jetdef).inclusive_jets(min_pt=pt_min)
    jpt = np.hypot(jets.px, jets.py)
    jp = np.sqrt(jpt**2 + jets.pz**2)
    jeta = np.arcsinh(jets.pz / ak.where(jpt > 0, jpt, 1e-12))
    jphi = np.arctan2(jets.py, jets.px)
    jmass = np.sqrt(np.maximum(jets.E**2 - jp**2, 0.0))
    return _sorted_by_pt(ak.zip({"pt": jpt, "eta": jeta, "phi": jphi, "mass": jmass}))


def _match_btag(jets: ak.Array, nano_jets: ak.Array, *, max_dr: float = 0.2) -> ak.Array:
    """b-tag score of the nearest NanoAOD jet within ``max_dr`` (0 if none) for re-clustered jets."""
    pairs = ak.cartesian({"j": jets[["eta", "phi"]], "n": nano_jets[["eta", "phi", "btag"]]}, axis=1, nested=True)
    dr = delta_r(pairs.j.eta, pairs.j.phi, pairs.n.eta, pairs.n.phi)
    best = ak.argmin(dr, axis=2, keepdims=True)
    best_dr = ak.fill_none(ak.firsts(dr[best], axis=2), np.inf)
    best_tag = ak.fill_none(ak.firsts(pairs.n.btag[best], axis=2), 0.0)
    return ak.where(best_dr < max_dr, best_tag, 0.0)


def _finite(coll: FlatCollection, prefix: str, *, variant: schema.SchemaVariant, source: str) -> np.ndarray:
    """Mask of the objects of ``coll`` whose pt, eta, phi and mass are all finite.

    The choice: a NaN or infinite kinematic value is a broken reconstruction or a corrupt file, not a
    physics object (NaN fails every cut; inf passes every pT cut and makes H_T and S_T infinite), so
    such objects are dropped before any cut, as if absent, and the run goes on; a warning names the
    file and the branch once per file and branch (with the count in the first chunk that has any).
    """
    keep = np.ones(len(coll.columns["pt"]), dtype=bool)
    for k in _KINEMATICS:
        bad = ~np.isfinite(coll.columns[k])
        if bad.any():
            keep &= ~bad
            branch = variant.branch_name(f"{prefix}.{k}") or f"{prefix}.{k}"
            message = f"%s: %d non-finite value(s) in {branch}: those objects dropped (further chunks not reported)"
            notice_once(log, source, message, source or variant.name, int(bad.sum()), level=logging.WARNING)
    return keep


#: reads one quantity of the chunk through the schema map: ``get(quantity, feature)``
_Getter = Callable[[str, str], Any]


def _with_allowed_missing(
    events: Any, *, variant: schema.SchemaVariant, available: set[str], allow_missing: tuple[str, ...], source: str
) -> tuple[Any, set[str], list[str]]:
    """``events`` with the absent collections of ``allow_missing`` empty, its branch names and those collections."""
    if not allow_missing:
        return events, available, []
    events, missing = schema.with_empty_collections(
        events, variant=variant, available=available, collections=allow_missing
    )
    if missing:
        available = schema.flat_branch_names(events)
        notice_once(
            log,
            source,
            "%s: no %s collection: treated as empty (--allow-missing)",
            source or variant.name,
            ", ".join(missing),
            level=logging.WARNING,
        )
    return events, available, missing


def _pf_candidates(
    get: _Getter, *, variant: schema.SchemaVariant, source: str
) -> tuple[dict[str, Any], dict[str, np.ndarray] | None]:
    """The PF-candidate fields of the chunk and their flat columns (``None`` where the file has none)."""
    pf_fields = {
        k: get(f"pfcands.{k}", "isolation / hadron multiplicities")
        for k in ("pt", "eta", "phi", "mass", "charge", "pdgId")
    }
    has_pf = all(v is not None for v in pf_fields.values())
    pfcands = pf_flat(ak.zip(pf_fields)) if has_pf else None
    if not has_pf:
        notice_once(log, source, "%s: no PFCands: iso_gamma 0, PF multiplicities set to -1", source or variant.name)
    return pf_fields, pfcands


def _leptons_and_photons(
    events: Any,
    get: _Getter,
    *,
    pfcands: dict[str, np.ndarray] | None,
    variant: schema.SchemaVariant,
    available: set[str],
    config: ObjectConfig,
    source: str,
) -> tuple[FlatCollection, FlatCollection, FlatCollection, tuple[FlatCollection, ...]]:
    """Muons, electrons, photons without a lepton within ``photon_lepton_dr``, and the collections that
    clean the jets (leptons above ``overlap_lepton_pt_min``, photons)."""
    lepton_args: dict[str, Any] = {
        "pfcands": pfcands,
        "variant": variant,
        "available": available,
        "config": config,
        "source": source,
    }
    muons = _leptons(events, "muon", pdgid=MUON_PDGID, **lepton_args)
    electrons = _leptons(events, "electron", pdgid=ELECTRON_PDGID, **lepton_args)
    # overlap removal: leptons > photons > jets (objects are disjoint); an object is removed when one of
    # any cleaning collection is close, so each collection is one pass of the overlap kernel
    leptons = [c.select(c.columns["pt"] > config.overlap_lepton_pt_min) for c in (muons, electrons)]
    photons = _photons(get, config=config, variant=variant, source=source)
    photons = photons.select(photons.keep_isolated_from(*leptons, dr=config.photon_lepton_dr))
    return muons, electrons, photons, (*leptons, photons)


def _nano_jets(
    get: _Getter, *, config: ObjectConfig, variant: schema.SchemaVariant, jet_flavour: bool, source: str
) -> tuple[FlatCollection, bool]:
    """The file's jets with b-tag score, jet content (where the file has it) and flavour (if asked)."""
    content = {k: get(f"jet.{k}", "jet content") for k in schema.JET_CONTENT_FIELDS}
    # re-clustered jets are no NanoAOD jets: the file's jet content does not describe them
    has_content = all(v is not None for v in content.values()) and not config.recluster_jets
    if not has_content:
        notice_once(
            log,
            source,
            "%s: no jet content (Jet_nConstituents, Jet_*EF) for these jets: set to -1",
            source or variant.name,
        )
    content_columns = {k: v for k, v in content.items() if has_content}
    jet_columns = {
        **{k: get(f"jet.{k}", "jets") for k in _KINEMATICS},
        "btag": get("jet.btag", "n_bjets"),
        **content_columns,
    }
    jet_types: dict[str, Any] = {**_KINEMATICS, "btag": _F8, **dict.fromkeys(content_columns, _F8)}
    if jet_flavour:
        flavour = get("jet.hadronFlavour", "b-tag scale factors")
        jet_columns["flavour"] = ak.zeros_like(jet_columns["pt"], dtype=np.int32) if flavour is None else flavour
        jet_types["flavour"] = np.int32
    return FlatCollection.from_columns(jet_columns, jet_types), has_content


def _jets(
    get: _Getter,
    *,
    config: ObjectConfig,
    variant: schema.SchemaVariant,
    tagging: btag.BTagChoice,
    pf_fields: dict[str, Any],
    has_pf: bool,
    jet_flavour: bool,
    cleaners: tuple[FlatCollection, ...],
    source: str,
) -> tuple[FlatCollection, FlatCollection, FlatCollection, bool]:
    """Jets, b-jets, all jets (identified or re-clustered, no lepton or photon within ``jet_overlap_dr``,
    no kinematic cut) and whether they carry the jet content."""
    nano_jets, has_content = _nano_jets(get, config=config, variant=variant, jet_flavour=jet_flavour, source=source)
    if config.recluster_jets:
        if not has_pf:
            raise schema.MissingBranchError(
                "PFCands_pt", feature="re-clustered jets", variant=variant.name, source=source
            )
        clustered = recluster_jets(ak.zip(pf_fields), radius=config.recluster_radius, pt_min=15.0)
        matched_tag = _match_btag(clustered, nano_jets.to_awkward())
        all_jets = FlatCollection.from_columns(
            {**{k: clustered[k] for k in _KINEMATICS}, "btag": matched_tag}, {**_KINEMATICS, "btag": _F8}
        )
    else:
        ident = _jet_id(len(nano_jets.columns["pt"]), get("jet.id", "jet identification"), config.jet_id, variant)
        all_jets = nano_jets.select(ident & _finite(nano_jets, "jet", variant=variant, source=source)).sorted_by_pt()
    all_jets = all_jets.select(all_jets.keep_isolated_from(*cleaners, dr=config.jet_overlap_dr))
    c = all_jets.columns
    jets = all_jets.select((c["pt"] > config.jet_pt_min) & (abs(c["eta"]) < config.jet_eta_max))
    jets = jets.with_columns(is_b=jets.columns["btag"] > tagging.threshold)
    return jets, jets.select(jets.columns["is_b"]), all_jets, has_content


def _fatjets(
    get: _Getter,
    *,
    config: ObjectConfig,
    variant: schema.SchemaVariant,
    cleaners: tuple[FlatCollection, ...],
    source: str,
) -> FlatCollection:
    """Large-R jets: mass choice, N-subjettiness ratios (-1 without the branches), ID, cuts, overlap removal."""
    fatjets = FlatCollection.from_columns({k: get(f"fatjet.{k}", "large-R jets") for k in _KINEMATICS}, _KINEMATICS)
    soft = get("fatjet.msoftdrop", "mJ1") if config.fatjet_mass == "msoftdrop" else None
    taus = [get(f"fatjet.tau{i}", f"tau{i}") for i in (1, 2, 3)]
    if soft is not None:
        fatjets = fatjets.with_columns(mass=jagged_parts(soft)[1].astype(_F8))
    n_fat = len(fatjets.columns["pt"])
    if all(t is not None for t in taus):
        t1, t2, t3 = (jagged_parts(t)[1].astype(_F8) for t in taus)
        fatjets = fatjets.with_columns(
            tau21=np.where(t1 > 0, t2 / np.where(t1 > 0, t1, 1.0), 0.0),
            tau32=np.where(t2 > 0, t3 / np.where(t2 > 0, t2, 1.0), 0.0),
        )
    else:
        fatjets = fatjets.with_columns(tau21=np.full(n_fat, -1.0), tau32=np.full(n_fat, -1.0))
    fatjet_id = _jet_id(
        n_fat, get("fatjet.id", "large-R jet identification"), "tight" if config.jet_id != "none" else "none", variant
    )
    c = fatjets.columns
    fatjet_id &= _finite(fatjets, "fatjet", variant=variant, source=source)
    fatjets = fatjets.select(fatjet_id & (c["pt"] > config.fatjet_pt_min) & (abs(c["eta"]) < config.fatjet_eta_max))
    return fatjets.select(
        fatjets.keep_isolated_from(
            *cleaners, dr=config.fatjet_overlap_dr, min_pt_fraction=config.fatjet_overlap_pt_fraction
        )
    ).sorted_by_pt()


def build_objects(
    events: Any,
    *,
    config: ObjectConfig,
    variant: schema.SchemaVariant | None = None,
    era: str | None = None,
    jet_flavour: bool = False,
    source: str = "",
    allow_missing: tuple[str, ...] = (),
) -> EventObjects:
    """All analysis objects of a chunk of events.

    Parameters
    ----------
    events
        NanoEvents (or a record array with the NanoAOD collection layout).
    config
        Object cuts.
    variant
        NanoAOD variant; detected from the branches if not given.
    era
        Data-taking era of the b-tag working point (dataset metadata ``era``; ``None``: the variant's,
        see :mod:`cms_anomaly.processors.btag`).
    jet_flavour
        Give the jets their simulated ``hadronFlavour`` (column ``flavour``; 0 where the file has none,
        as in real data), for the b-tag scale factors.
    source
        File name for error messages.

    Raises
    ------
    cms_anomaly.processors.schema.MissingBranchError
        A required branch is missing (message names branch and feature).
    cms_anomaly.processors.btag.BTagError
        No b-tag working point for the era and algorithm.
    """
    available = schema.flat_branch_names(events)
    if variant is None:
        variant = schema.detect_variant(available, source=source)
    tagging = btag.choose(
        variant.name, era=era, level=config.btag_level, algorithm=config.btag_algorithm, source=source
    )
    variant = btag.with_algorithm(variant, tagging)
    events, available, missing = _with_allowed_missing(
        events, variant=variant, available=available, allow_missing=allow_missing, source=source
    )
    get = lambda q, feature: schema.get(events, q, variant=variant, feature=feature, available=available, source=source)
    pf_fields, pfcands = _pf_candidates(get, variant=variant, source=source)

    muons, electrons, photons, cleaners = _leptons_and_photons(
        events, get, pfcands=pfcands, variant=variant, available=available, config=config, source=source
    )
    jet_args: dict[str, Any] = {"config": config, "variant": variant, "cleaners": cleaners, "source": source}
    jets, bjets, all_jets, has_content = _jets(
        get, tagging=tagging, pf_fields=pf_fields, has_pf=pfcands is not None, jet_flavour=jet_flavour, **jet_args
    )
    fatjets = _fatjets(get, **jet_args)

    met_pt = ak.to_numpy(_as_float(get("met.pt", "met"))).astype(np.float64)
    met_phi = ak.to_numpy(_as_float(get("met.phi", "met_par / met_perp / mt"))).astype(np.float64)
    gw = get("event.genweight", "weight")
    n = len(events)
    genweight = np.ones(n) if gw is None else ak.to_numpy(gw).astype(np.float64)
    pf_mult = (
        PFMultiplicities(pfcands["offsets"], pfcands["charge"], pfcands["pdgId"], np.arange(n))
        if pfcands is not None
        else None
    )
    collections = (muons, electrons, photons, jets, bjets, all_jets, fatjets)
    return EventObjects(
        variant=variant.name,
        flat=dict(zip(COLLECTIONS, collections, strict=True)),
        met_pt=met_pt,
        met_phi=met_phi,
        pf_multiplicities=pf_mult,
        genweight=genweight,
        has_pfcands=pfcands is not None,
        has_jet_content=has_content,
        missing_collections=tuple(missing),
    )
