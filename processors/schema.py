"""The one schema map for the NanoAOD variants this analysis reads.

Every branch a feature needs is named here once, as a *logical quantity* (``"muon.iso_chg"``)
mapped to a ``(collection, field)`` pair per variant. Feature code never spells branch names;
it calls :func:`get` which either returns the column, returns ``None`` for a quantity with a
documented fallback, or raises :class:`MissingBranchError` naming the branch and the feature.

Variants (detected from the branches present, :func:`detect_variant`):

==================  ===============================================================  ==========================
name                what                                                             marker
==================  ===============================================================  ==========================
``generated``       this project's Pythia 8 + parametric-detector NanoAOD            ``PFCands_pt``, no ``Jet_area``
``pfnano``          Run-2 PFNano (NanoAOD v9 + ``PFCands_*``)                        ``PFCands_pt`` and ``Jet_area``
``run2``            Run-2 NanoAOD v6-v9, incl. the 2015 CMS Open Data conversion     ``Jet_btagDeepFlavB``
``run3``            later NanoAOD (v12-v15): ``PFMET`` / ``PuppiMET``, PNet b-tag     ``Jet_btagPNetB``
``run1``            2012 CMS Open Data "NanoAODRun1": CSV ``Jet_btag``, AK7 FatJet    ``Jet_btag``
==================  ===============================================================  ==========================

Documented fallbacks (quantity -> what happens when the file lacks it):

- ``pfcands.*`` (no PF candidates): the photon isolation ``iso_gamma`` = 0 and the PF
  multiplicities ``n_ch_had`` / ``n_neu_had`` / ``n_photons`` = -1 (features that need
  ``pfcands``, :data:`~cms_anomaly.processors.feature_spec.NEEDS`). The lepton isolation is read
  from ``pfRelIso03_chg`` and ``pfRelIso03_all`` on every file, with or without PF candidates.
- ``jet.nConstituents`` / ``jet.chHEF`` / ``jet.neHEF`` / ``jet.chEmEF`` / ``jet.neEmEF`` (NanoAOD
  before v5, NanoAODRun1 files without them): the jet-content features are -1 (need ``jet_content``).
- ``muon.iso_chg`` / ``electron.iso_chg`` (Run 1 muons): the whole ``pfRelIso03_all`` is
  reported as neutral (``iso_ch`` = 0).
- ``fatjet.msoftdrop``: the plain large-R jet ``mass``.
- ``fatjet.tau1..3`` (Run-1 AK7 jets): tau21 = tau32 = -1.
- ``event.genweight`` (data, Run-1 ttbar): weight 1.
- ``event.run`` / ``event.luminosityBlock`` / ``event.event`` (reduced derivations, e.g. the 2012 Open
  Data ``Run2012BC_DoubleMuParked_Muons``): an event is identified by (file, entry): run 0,
  luminosityBlock 0, event = its entry number in the file (the runner says so once per file).
- ``muon.<wp>Id`` / ``electron.id`` (lepton identification without isolation): every lepton
  passes; the isolation cut still applies. The loose muon ID is taken from its CMS definition
  (a PF muon that is a global or tracker muon: ``isPFcand & (isGlobal | isTracker)``) where those
  flags exist, ``Muon_looseId`` otherwise: the 2015 CMS Open Data conversion leaves every
  ``Muon_*Id`` flag false but fills the three ingredients. Electrons: ``mvaFall17V2noIso_WPL`` in Run 2,
  ``mvaNoIso_WP90`` in Run 3 (no loose point there), none in Run 1 (its ``cutBased`` includes
  isolation).
- ``photon.id`` (``Photon_cutBased``, 0 fail / 1 loose / 2 medium / 3 tight): older NanoAOD
  (v5-v7) has ``Photon_cutBasedBitmap`` (bit 0 loose, 1 medium, 2 tight), read instead; with
  neither, photons need only the isolation ``photon.iso_all``.
- ``jet.id`` / ``fatjet.id`` (``Jet_jetId``): every jet passes. The bit meaning is a field of
  the variant (:attr:`SchemaVariant.jet_id_bits`): in NanoAOD v6-v14 bit 1 (value 2) is tight and
  bit 2 (value 4) tight-lepton-veto; v15 dropped the branch.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import awkward as ak
import numpy as np
from coffea.nanoevents import NanoAODSchema

log = logging.getLogger(__name__)


class MissingBranchError(KeyError):
    """A branch that a feature needs is not in the input file."""

    def __init__(self, branch: str, *, feature: str, variant: str, source: str = "") -> None:
        self.branch, self.feature, self.variant, self.source = branch, feature, variant, source
        where = f" in {source}" if source else ""
        super().__init__(
            f"branch {branch!r} needed by feature {feature!r} is missing{where} "
            f"(NanoAOD variant {variant!r}, no fallback)"
        )

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


#: the jet-content fields of NanoAOD v5+ (PF constituents per jet and their energy fractions)
JET_CONTENT_FIELDS: tuple[str, ...] = ("nConstituents", "chHEF", "neHEF", "chEmEF", "neEmEF")

#: logical quantity -> (collection, field) for Run-2 NanoAOD; variants override entries
_RUN2: dict[str, tuple[str, str] | None] = {
    **{f"muon.{k}": ("Muon", k) for k in ("pt", "eta", "phi", "mass", "charge")},
    "muon.iso_all": ("Muon", "pfRelIso03_all"),
    "muon.iso_chg": ("Muon", "pfRelIso03_chg"),
    **{f"electron.{k}": ("Electron", k) for k in ("pt", "eta", "phi", "mass", "charge")},
    "electron.iso_all": ("Electron", "pfRelIso03_all"),
    "electron.iso_chg": ("Electron", "pfRelIso03_chg"),
    **{f"muon.{wp}Id": ("Muon", f"{wp}Id") for wp in ("loose", "medium", "tight")},
    **{f"muon.{k}": ("Muon", k) for k in ("isPFcand", "isGlobal", "isTracker")},
    "electron.id": ("Electron", "mvaFall17V2noIso_WPL"),
    **{f"photon.{k}": ("Photon", k) for k in ("pt", "eta", "phi", "mass")},
    "photon.id": ("Photon", "cutBased"),
    "photon.id_bitmap": ("Photon", "cutBasedBitmap"),
    "photon.iso_all": ("Photon", "pfRelIso03_all"),
    **{f"jet.{k}": ("Jet", k) for k in ("pt", "eta", "phi", "mass")},
    "jet.id": ("Jet", "jetId"),
    "fatjet.id": ("FatJet", "jetId"),
    "jet.btag": ("Jet", "btagDeepFlavB"),
    "jet.hadronFlavour": ("Jet", "hadronFlavour"),
    **{f"jet.{k}": ("Jet", k) for k in JET_CONTENT_FIELDS},
    **{f"fatjet.{k}": ("FatJet", k) for k in ("pt", "eta", "phi", "mass", "msoftdrop", "tau1", "tau2", "tau3")},
    "met.pt": ("MET", "pt"),
    "met.phi": ("MET", "phi"),
    **{f"pfcands.{k}": ("PFCands", k) for k in ("pt", "eta", "phi", "mass", "charge", "pdgId")},
    "event.genweight": ("genWeight", ""),
    "event.run": ("run", ""),
    "event.luminosityBlock": ("luminosityBlock", ""),
    "event.event": ("event", ""),
}

#: quantities with a documented fallback (see module docstring); all others are required
OPTIONAL: frozenset[str] = frozenset(
    {
        *(f"pfcands.{k}" for k in ("pt", "eta", "phi", "mass", "charge", "pdgId")),
        "muon.iso_chg",
        "electron.iso_chg",
        "fatjet.msoftdrop",
        "muon.looseId",
        "muon.mediumId",
        "muon.tightId",
        "electron.id",
        "muon.isPFcand",
        "muon.isGlobal",
        "muon.isTracker",
        "photon.id",
        "photon.id_bitmap",
        "photon.iso_all",
        "jet.id",
        "fatjet.id",
        "fatjet.tau1",
        "fatjet.tau2",
        "fatjet.tau3",
        "event.genweight",
        "event.run",
        "event.luminosityBlock",
        "event.event",
        "jet.hadronFlavour",
        *(f"jet.{k}" for k in JET_CONTENT_FIELDS),
    }
)

#: quantities read only on request (the b-tag scale factors need the simulated jet flavour): left out of
#: :func:`fields_used` and :func:`branches_used` unless asked for
ON_REQUEST: frozenset[str] = frozenset({"jet.hadronFlavour"})


#: ``Jet_jetId`` bits per ID level in Run-2 and Run-3 NanoAOD (branch title in every v6-v14 file)
JET_ID_BITS_RUN2: Mapping[str, int] = MappingProxyType({"tight": 0b010, "tight_lepveto": 0b110})


@dataclass(frozen=True)
class SchemaVariant:
    """One NanoAOD flavour: how to recognise it and where each logical quantity lives."""

    name: str
    description: str
    #: flat branch names that must be present / absent for this variant to match
    present: tuple[str, ...]
    absent: tuple[str, ...] = ()
    branches: Mapping[str, tuple[str, str] | None] = field(default_factory=dict)
    #: jet ID level -> bits of ``Jet_jetId`` that must all be set (NanoAOD v6-v14: "bit1 is loose
    #: (always false in 2017), bit2 is tight, bit3 is tightLepVeto", i.e. values 2 and 4)
    jet_id_bits: Mapping[str, int] = field(default_factory=lambda: MappingProxyType(JET_ID_BITS_RUN2))

    def branch_name(self, quantity: str) -> str | None:
        """Flat branch name (``Muon_pfRelIso03_chg``) of a logical quantity, ``None`` if absent."""
        where = self.branches.get(quantity)
        if where is None:
            return None
        coll, fld = where
        return f"{coll}_{fld}" if fld else coll


def _variant(
    name: str,
    description: str,
    *,
    present: tuple[str, ...],
    absent: tuple[str, ...] = (),
    overrides: Mapping[str, tuple[str, str] | None] | None = None,
) -> SchemaVariant:
    table = dict(_RUN2)
    table.update(overrides or {})
    return SchemaVariant(
        name=name,
        description=description,
        present=present,
        absent=absent,
        branches=MappingProxyType(table),
    )


#: order matters: the first variant whose markers match is used
VARIANTS: tuple[SchemaVariant, ...] = (
    _variant(
        "run1",
        "2012 CMS Open Data NanoAODRun1 (CSV b-tag, AK5 jets, AK7 FatJet)",
        present=("Jet_btag",),
        absent=("Jet_btagDeepFlavB",),
        overrides={
            "jet.btag": ("Jet", "btag"),
            "muon.iso_chg": None,
            "electron.id": None,
            "fatjet.tau1": None,
            "fatjet.tau2": None,
            "fatjet.tau3": None,
            "fatjet.msoftdrop": None,
        },
    ),
    _variant(
        "generated",
        "cms-anomaly generated NanoAOD (Pythia 8 + parametric detector, PFCands)",
        present=("PFCands_pt", "Jet_btagDeepFlavB"),
        absent=("Jet_area",),
    ),
    _variant("pfnano", "Run-2 PFNano (NanoAOD v9 + PFCands)", present=("PFCands_pt", "Jet_area")),
    _variant(
        "run3",
        "NanoAOD v12-v15 (PNet b-tag; MET as PFMET in v15)",
        present=("Jet_btagPNetB",),
        absent=("MET_pt",),
        overrides={
            "met.pt": ("PFMET", "pt"),
            "met.phi": ("PFMET", "phi"),
            "electron.id": ("Electron", "mvaNoIso_WP90"),
        },
    ),
    _variant(
        "run3_v12",
        "NanoAOD v12-v14 (MET still called MET)",
        present=("Jet_btagPNetB", "MET_pt"),
        overrides={"electron.id": ("Electron", "mvaNoIso_WP90")},
    ),
    _variant("run2", "Run-2 NanoAOD v6-v9 incl. 2015 CMS Open Data (DeepJet b-tag)", present=("Jet_btagDeepFlavB",)),
    _variant(
        "run2_csv",
        "older Run-2 NanoAOD with only CSVv2 b-tag",
        present=("Jet_btagCSVV2",),
        overrides={"jet.btag": ("Jet", "btagCSVV2")},
    ),
)


class UnknownSchemaError(ValueError):
    """No variant of the schema map matches the branches of a file."""


def flat_branch_names(events: Any) -> set[str]:
    """Flat branch names (``Muon_pt``, ``genWeight``) of a NanoEvents or plain record array.

    Only field names are inspected: no column is read.
    """
    names: set[str] = set()
    for coll in ak.fields(events):
        sub = events[coll]
        inner = ak.fields(sub)
        if inner:
            names.update(f"{coll}_{f}" for f in inner)
        else:
            names.add(coll)
    return names


def detect_variant(branches: Iterable[str], *, source: str = "") -> SchemaVariant:
    """The first :data:`VARIANTS` entry whose marker branches match ``branches``.

    Raises
    ------
    UnknownSchemaError
        No variant matches (the message lists the markers looked for).
    """
    have = set(branches)
    for variant in VARIANTS:
        if all(b in have for b in variant.present) and not any(b in have for b in variant.absent):
            return variant
    markers = {v.name: v.present for v in VARIANTS}
    collections = sorted({b.split("_")[0] for b in have if "_" in b and not b.startswith("_")})
    raise UnknownSchemaError(
        f"{source or 'input'}: no NanoAOD variant matches (the file has the collections {collections}); "
        f"looked for markers {markers}"
    )


def get(
    events: Any,
    quantity: str,
    *,
    variant: SchemaVariant,
    feature: str,
    available: set[str] | None = None,
    source: str = "",
) -> Any:
    """Column of a logical quantity, ``None`` for a missing optional one.

    Parameters
    ----------
    events
        NanoEvents (or a record array with the same collection layout).
    quantity
        A key of the schema map, e.g. ``"muon.iso_chg"``.
    variant
        The variant of the file (:func:`detect_variant`).
    feature
        The feature that needs it (named in the error).
    available
        Flat branch names of ``events`` (computed if not given).

    Raises
    ------
    MissingBranchError
        A required quantity is absent from the variant or the file.
    """
    if available is None:
        available = flat_branch_names(events)
    branch = variant.branch_name(quantity)
    if branch is None or branch not in available:
        if quantity in OPTIONAL:
            return None
        name = branch or f"<{quantity}: not in variant {variant.name}>"
        raise MissingBranchError(name, feature=feature, variant=variant.name, source=source)
    coll, fld = variant.branches[quantity] or ("", "")  # not None: branch_name gave a name
    return events[coll][fld] if fld else events[coll]


def branches_used(variant: SchemaVariant, available: Iterable[str], *, requested: Iterable[str] = ()) -> list[str]:
    """The flat branch names the features read for ``variant`` (plus the ``n<Collection>`` counters).

    A superset of what one processor configuration reads (the benchmark's floor reads exactly the
    latter, from NanoEvents' access log); the benchmark copies these into its replicated file.
    """
    have = set(available)
    out: set[str] = set()
    for quantity in _read(variant, requested):
        branch = variant.branch_name(quantity)
        if branch is None or branch not in have:
            continue
        out.add(branch)
        coll, fld = variant.branches[quantity] or ("", "")  # not None: branch_name gave a name
        if fld and f"n{coll}" in have:
            out.add(f"n{coll}")
    return sorted(out)


def missing_branches(branches: Iterable[str], *, source: str = "", allow_missing: Iterable[str] = ()) -> list[str]:
    """The branches the features need without a fallback that are absent from ``branches``.

    The file's variant is detected from ``branches``; a quantity outside :data:`OPTIONAL` must be
    present, except a branch ``NanoAODSchema`` fills in itself (``Photon_mass``: its ``full_like_items``)
    and the fields of a collection of ``allow_missing`` that the file lacks entirely (read as empty,
    :func:`with_empty_collections`). The same quantities :func:`get` refuses, known before any chunk
    is read.

    Raises
    ------
    UnknownSchemaError
        No variant matches ``branches``.
    """
    have = set(branches)
    variant = detect_variant(have, source=source)
    absent = {c for c in allow_missing if not any(b.startswith(f"{c}_") for b in have)}
    filled = {b for b in NanoAODSchema.full_like_items if f"n{b.split('_')[0]}" in have}
    out = []
    for quantity, where in variant.branches.items():
        branch = variant.branch_name(quantity)
        if quantity in OPTIONAL or branch is None or branch in have or branch in filled:
            continue
        if where is not None and where[0] in absent:
            continue
        out.append(branch)
    return sorted(out)


def with_empty_collections(
    events: Any, *, variant: SchemaVariant, available: set[str], collections: Iterable[str]
) -> tuple[Any, list[str]]:
    """``events`` with every absent collection of ``collections`` added as empty lists per event.

    For skimmed files analysed on purpose (``--allow-missing Photon``): the fields the schema map
    reads from such a collection exist and hold no object. Returns (events, the collections added).
    """
    added = []
    n = len(events)
    for coll in collections:
        if any(b.startswith(f"{coll}_") for b in available) or coll in ak.fields(events):
            continue
        fields = sorted(
            {fld for where in variant.branches.values() if where and where[0] == coll for fld in [where[1]] if fld}
        )
        if not fields:
            continue
        empty = ak.unflatten(np.zeros(0, np.float32), np.zeros(n, np.int64))
        events = ak.with_field(events, ak.zip(dict.fromkeys(fields, empty)), coll)
        added.append(coll)
    return events, added


def _read(variant: SchemaVariant, requested: Iterable[str]) -> list[str]:
    """The quantities of ``variant`` read: all but those of :data:`ON_REQUEST` not ``requested``."""
    asked = set(requested)
    return [q for q in variant.branches if q not in ON_REQUEST or q in asked]


def fields_used(
    variant: SchemaVariant, available: Iterable[str], *, requested: Iterable[str] = ()
) -> dict[str, list[str]]:
    """``{collection: [fields]}`` the features read for ``variant`` (``[]`` for a flat branch such
    as ``genWeight``): the projection of the events that the dask-awkward path reads (with the
    :data:`ON_REQUEST` quantities of ``requested``)."""
    have = set(available)
    out: dict[str, set[str]] = {}
    for quantity in _read(variant, requested):
        branch = variant.branch_name(quantity)
        if branch is None or branch not in have:
            continue
        coll, fld = variant.branches[quantity] or ("", "")  # not None: branch_name gave a name
        out.setdefault(coll, set())
        if fld:
            out[coll].add(fld)
    return {coll: sorted(fields) for coll, fields in sorted(out.items())}


# --------------------------------------------------------------------------- coffea schema class
class AnalysisNanoAODSchema(NanoAODSchema):
    """``NanoAODSchema`` without two warnings this analysis cannot act on.

    Cross-references to collections the analysis does not read (``FsrPhoton``, ``SubJet``,
    ``LowPtElectron``, absent from many real files) and the ``Photon_mass``/``charge`` fill-in.
    A file without the event-ID branches (``run``, ``luminosityBlock``, ``event``: a reduced derivation
    such as the 2012 Open Data ``Run2012BC_DoubleMuParked_Muons``) is read rather than refused
    (``error_missing_event_ids``); the runner says so once per file and the processor identifies its
    events by (file, entry). Set on the class and in ``__init__`` (not as a client-side filter) so that
    it holds in every Dask worker process that builds the events.
    """

    warn_missing_crossrefs = False
    error_missing_event_ids = False

    def __init__(self, base_form: Any, *args: Any, **kwargs: Any) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Branch Photon_", category=RuntimeWarning)
            warnings.filterwarnings("ignore", message="Missing event_ids", category=RuntimeWarning)
            super().__init__(base_form, *args, **kwargs)
