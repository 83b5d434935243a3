"""The data-quality steps of the cut-flow: certified luminosity and trigger, before any selection cut.

``lumimask``
    A data dataset (metadata ``is_data``) whose metadata names a CMS certified-luminosity JSON
    (``lumimask``: a path or a URL, e.g. the ``Cert_..._JSON.txt`` of its era, which
    ``cms-anomaly opendata fileset`` sets) keeps exactly the events whose (run, luminosity section)
    the JSON lists, through :class:`coffea.lumi_tools.LumiMask`. Simulation has no certification:
    the step is not there.

``trigger``
    Each selection names its HLT paths per era in :data:`TRIGGERS` (with the source of each). An
    event passes when one of the paths whose branch the file has fired (``HLT_<path>``; the OR). In
    data of a primary dataset named in the table (metadata ``primary_dataset``), only that primary
    dataset's paths count and events that fire a path of a primary dataset listed before it are
    removed, so that an event recorded in both SingleMuon and SingleElectron is counted once (the
    standard CMS overlap removal between primary datasets). Where the era has paths but the file has
    none of their branches, the step keeps every event and a warning says so, once per dataset.

The era is the dataset's metadata ``era`` (``"2012"``, ``"2016postVFP_UL"``, ...; ``opendata fileset`` sets
it; the names of :mod:`~cms_anomaly.processors.btag`); the trigger table is that of its data-taking
year (:func:`trigger_era`: ``2016postVFP_UL`` and ``2016`` read the ``2016`` paths),
else the one the NanoAOD variant implies (:data:`VARIANT_TRIGGER_ERAS`: the 2012 ``NanoAODRun1`` files are
2012, this project's generated files are ``generated``, which has no trigger); without either
(a Run-2 file without ``era``) the trigger step is not there and a warning says so, once per dataset.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import awkward as ak
import numpy as np
from cms_anomaly.processors import attached
from cms_anomaly.processors.notices import notice_once

log = logging.getLogger(__name__)


class DataQualityError(ValueError):
    """A dataset's certified-luminosity JSON cannot be read, or its trigger metadata is inconsistent."""


@dataclass(frozen=True)
class TriggerGroup:
    """The HLT paths of one primary dataset that a selection requires in one era."""

    #: the primary dataset that records these paths (``SingleMuon``, ``SingleElectron``, ``SingleMu``)
    primary_dataset: str
    #: HLT path names without the ``HLT_`` prefix of their NanoAOD branch
    paths: tuple[str, ...]
    #: where the paths come from
    source: str


_MU_2016 = TriggerGroup(
    "SingleMuon",
    ("IsoMu24", "IsoTkMu24"),
    # CMS MUO POG, 2016 UL muon trigger efficiencies and scale factors: "IsoMu24 OR IsoTkMu24" is the
    # lowest unprescaled isolated single-muon trigger of 2016 (twiki.cern.ch/twiki/bin/view/CMS/MuonUL2016)
    "CMS MUO POG, MuonUL2016 twiki: HLT_IsoMu24 OR HLT_IsoTkMu24, the lowest unprescaled single muon of 2016",
)
_ELE_2016 = TriggerGroup(
    "SingleElectron",
    ("Ele27_WPTight_Gsf",),
    # CMS EGM POG, 2016 HLT summary: Ele27_WPTight_Gsf is the lowest unprescaled isolated single
    # electron of 2016 (twiki.cern.ch/twiki/bin/view/CMS/EgHLTRunIISummary)
    "CMS EGM POG, EgHLTRunIISummary twiki: HLT_Ele27_WPTight_Gsf, the lowest unprescaled single electron of 2016",
)
_MU_2012 = TriggerGroup(
    "SingleMu",
    ("IsoMu24_eta2p1",),
    # the isolated single-muon path of the 8 TeV top-quark analyses (CMS, ttbar lepton+jets cross
    # section at 8 TeV, JHEP 02 (2014) 024 / CMS-TOP-12-006; the SingleMu records' trigger list)
    "CMS 8 TeV top analyses (e.g. CMS-TOP-12-006): HLT_IsoMu24_eta2p1 in SingleMu",
)
_ELE_2012 = TriggerGroup(
    "SingleElectron",
    ("Ele27_WP80",),
    # the isolated single-electron path of the 8 TeV top-quark analyses (CMS-TOP-12-006)
    "CMS 8 TeV top analyses (e.g. CMS-TOP-12-006): HLT_Ele27_WP80 in SingleElectron",
)
_SINGLE_LEPTON = MappingProxyType({"2012": (_MU_2012, _ELE_2012), "2016": (_MU_2016, _ELE_2016), "generated": ()})

#: selection -> era -> the trigger groups it requires, in order of priority (data of a later primary
#: dataset lose the events that a path of an earlier one fired). An era missing or with ``()`` has no
#: trigger requirement: ``generated`` files have no HLT branches (``single_lepton_slt`` emulates its
#: trigger offline), the ``dijet`` selection is the LHC Olympics one on simulation and ``inclusive``
#: keeps every event.
_TRIGGERS: dict[str, Mapping[str, tuple[TriggerGroup, ...]]] = {
    "inclusive": MappingProxyType({}),
    "single_lepton": _SINGLE_LEPTON,
    "single_lepton_slt": _SINGLE_LEPTON,
    "rmm_lepton": _SINGLE_LEPTON,
    "top_rediscovery": MappingProxyType({"2012": (_MU_2012,), "2016": (_MU_2016,), "generated": ()}),
    "dijet": MappingProxyType({}),
    # the class trigger is per kind (CLASS_TRIGGERS, class_trigger_fired): no OR of every path before the cuts
    "event_classes": MappingProxyType({}),
}
#: a live view: :func:`cms_anomaly.processors.selections.register_selection` adds a new selection's table
TRIGGERS: Mapping[str, Mapping[str, tuple[TriggerGroup, ...]]] = MappingProxyType(_TRIGGERS)

#: the trigger kinds of the event classes, in order of priority of their primary datasets (data of a later
#: one lose the events a path of an earlier one fired)
CLASS_KINDS: tuple[str, ...] = ("single_muon", "double_muon", "single_electron", "double_electron", "photon", "jets")
_HZZ_2016 = "CMS H -> ZZ -> 4l at 13 TeV in 2016, CMS-HIG-16-041 (JHEP 11 (2017) 047), trigger table"
_HZZ_2012 = "CMS H -> ZZ -> 4l at 8 TeV, CMS-HIG-13-002 (PRD 89 (2014) 092007), trigger table"
#: era -> class trigger kind -> its primary dataset and paths (``event_classes``); ``generated`` files have no
#: HLT: the offline thresholds of :class:`~cms_anomaly.processors.config.SelectionConfig` emulate each kind
CLASS_TRIGGERS: Mapping[str, Mapping[str, TriggerGroup]] = MappingProxyType(
    {
        "2016": MappingProxyType(
            {
                "single_muon": _MU_2016,
                "double_muon": TriggerGroup(
                    "DoubleMuon",
                    (
                        "Mu17_TrkIsoVVL_Mu8_TrkIsoVVL",
                        "Mu17_TrkIsoVVL_TkMu8_TrkIsoVVL",
                        "Mu17_TrkIsoVVL_Mu8_TrkIsoVVL_DZ",
                        "Mu17_TrkIsoVVL_TkMu8_TrkIsoVVL_DZ",
                    ),
                    _HZZ_2016,
                ),
                "single_electron": _ELE_2016,
                "double_electron": TriggerGroup("DoubleEG", ("Ele23_Ele12_CaloIdL_TrackIdL_IsoVL_DZ",), _HZZ_2016),
                # the lowest unprescaled single photon of 2016 (CMS monophoton, EXO-16-053, JHEP 10 (2017) 073)
                "photon": TriggerGroup("SinglePhoton", ("Photon175",), "CMS-EXO-16-053: HLT_Photon175"),
                # CMS dijet search 2016, CMS-EXO-16-056 (JHEP 08 (2018) 130): PFHT900 OR PFJet450
                "jets": TriggerGroup("JetHT", ("PFHT900", "PFJet450"), "CMS-EXO-16-056: HLT_PFHT900 OR HLT_PFJet450"),
            }
        ),
        "2012": MappingProxyType(
            {
                "single_muon": _MU_2012,
                "double_muon": TriggerGroup("DoubleMu", ("Mu17_Mu8", "Mu17_TkMu8"), _HZZ_2012),
                "single_electron": _ELE_2012,
                "double_electron": TriggerGroup(
                    "DoubleElectron",
                    ("Ele17_CaloIdT_CaloIsoVL_TrkIdVL_TrkIsoVL_Ele8_CaloIdT_CaloIsoVL_TrkIdVL_TrkIsoVL",),
                    _HZZ_2012,
                ),
                # the lowest unprescaled single photon of the 2012 menu (CMS monophoton at 8 TeV, EXO-12-047)
                "photon": TriggerGroup("SinglePhoton", ("Photon150",), "CMS-EXO-12-047: HLT_Photon150"),
                # CMS dijet search at 8 TeV, CMS-EXO-12-059 (PRD 91 (2015) 052009): HT750 OR PFNoPUHT650
                "jets": TriggerGroup("JetHT", ("HT750", "PFNoPUHT650"), "CMS-EXO-12-059: HLT_HT750 OR HLT_PFNoPUHT650"),
            }
        ),
        "generated": MappingProxyType({}),
    }
)
#: the selection whose trigger is the class trigger (per kind, :func:`class_trigger_fired`)
CLASS_SELECTION = "event_classes"


def class_trigger_fired(
    events: Any, *, meta: Mapping[str, Any], variant: str, available: set[str]
) -> dict[str, np.ndarray | None]:
    """Per class trigger kind (:data:`CLASS_KINDS`), the events whose paths fired; ``None`` for a kind without
    HLT information (a generated file, a Run-2 file without ``era``, a file without the kind's branches):
    there its offline threshold alone stands for the trigger. In data of a primary dataset (metadata
    ``primary_dataset``) only the kinds of that dataset fire, and not on events that a path of an earlier
    primary dataset fired (the overlap removal of :func:`trigger_mask`).

    Raises
    ------
    DataQualityError
        An era without a class trigger table, or data of a primary dataset no kind records.
    """
    era = era_of(meta, variant)
    if era is None:
        return dict.fromkeys(CLASS_KINDS)
    if era not in CLASS_TRIGGERS:
        raise DataQualityError(
            f"dataset {meta.get('dataset', '?')!r}: era {era!r} has no class trigger table; known: {sorted(CLASS_TRIGGERS)}"
        )
    table = CLASS_TRIGGERS[era]
    fired = {kind: (_fired(events, table[kind].paths, available) if kind in table else None) for kind in CLASS_KINDS}
    pd = meta.get("primary_dataset") if meta.get("is_data", False) else None
    if pd is None or not table:
        return fired
    pds = list(dict.fromkeys(table[k].primary_dataset for k in CLASS_KINDS if k in table))
    if pd not in pds:
        raise DataQualityError(
            f"dataset {meta.get('dataset', '?')!r}: primary dataset {pd!r} records no class trigger in era {era} "
            f"(the class triggers come from {pds})"
        )
    earlier = set(pds[: pds.index(pd)])
    veto = np.zeros(len(events), dtype=bool)
    for kind in CLASS_KINDS:
        if kind in table and table[kind].primary_dataset in earlier and fired[kind] is not None:
            veto |= fired[kind]
    none = np.zeros(len(events), dtype=bool)
    return {
        kind: (none if table[kind].primary_dataset != pd else (None if f is None else f & ~veto))
        for kind, f in fired.items()
    }


#: the trigger-table key a NanoAOD variant implies when the dataset's metadata has no ``era`` (the
#: b-tag default of a variant, ``btag.VARIANT_ERAS``, is a calibration choice, not a trigger menu: a
#: Run-2 file without ``era`` has no trigger step rather than 2018's)
VARIANT_TRIGGER_ERAS: Mapping[str, str] = MappingProxyType({"run1": "2012", "generated": "generated"})


def trigger_era(era: str) -> str:
    """The key of :data:`TRIGGERS` for an era: its data-taking year (``2016preVFP_UL`` -> ``2016``), the
    HLT menus being those of the year; a name that does not start with a year stays itself."""
    return era[:4] if era[:4].isdigit() else era


def era_of(meta: Mapping[str, Any], variant: str) -> str | None:
    """The dataset's trigger era: metadata ``era`` (as :func:`trigger_era`), else the one its NanoAOD
    variant implies, else ``None``."""
    if meta.get("era") is not None:
        return trigger_era(str(meta["era"]))
    return VARIANT_TRIGGER_ERAS.get(variant)


@functools.lru_cache(maxsize=16)
def _lumi_mask(path: str) -> Any:
    from coffea.lumi_tools import LumiMask

    return LumiMask(path)


def load_lumimask(path: str, *, dataset: str) -> Any:
    """The :class:`coffea.lumi_tools.LumiMask` of a certified-luminosity JSON (path or URL), read once per process.

    Raises
    ------
    DataQualityError
        The JSON cannot be read or parsed (the message names the dataset and the path).
    """
    try:
        return _lumi_mask(attached.local_path(path))
    except (OSError, ValueError, TypeError, AttributeError) as err:
        raise DataQualityError(
            f"dataset {dataset!r}: lumimask {path!r} is not a readable CMS certified-luminosity "
            f"JSON ({{run: [[first, last], ...]}}): {type(err).__name__}: {err}"
        ) from err


def check_fileset(fileset: Mapping[str, Any], *, selection: str | None) -> None:
    """Before a run, on the client: every data dataset's ``lumimask`` is readable, every metadata ``era``
    has a trigger table for ``selection`` (the class trigger table for ``event_classes``) and every data
    ``primary_dataset`` is one the selection uses in that era.

    Raises
    ------
    DataQualityError
        One line naming the dataset and the value.
    """
    table = TRIGGERS.get(selection or "", {})
    for dataset, entry in fileset.items():
        meta = dict(entry.get("metadata") or {}) if isinstance(entry, Mapping) else {}
        if meta.get("is_data", False) and meta.get("lumimask"):
            load_lumimask(str(meta["lumimask"]), dataset=dataset)
        if (
            selection == CLASS_SELECTION
            and meta.get("era") is not None
            and trigger_era(str(meta["era"])) not in CLASS_TRIGGERS
        ):
            raise DataQualityError(
                f"dataset {dataset!r}: era {meta['era']!r} has no class trigger table; known: {sorted(CLASS_TRIGGERS)}"
            )
        if not table or meta.get("era") is None:
            continue
        era = trigger_era(str(meta["era"]))
        if era not in table:
            raise DataQualityError(
                f"dataset {dataset!r}: era {era!r} has no trigger table for selection {selection!r}; known eras: "
                f"{sorted(table)}"
            )
        pd = meta.get("primary_dataset") if meta.get("is_data", False) else None
        names = [g.primary_dataset for g in table[era]]
        if pd is not None and names and pd not in names:
            raise DataQualityError(
                f"dataset {dataset!r}: primary dataset {pd!r} is not used by selection {selection!r} in era {era} "
                f"(its triggers come from {names})"
            )


def certified(meta: Mapping[str, Any], run: np.ndarray, lumi: np.ndarray) -> np.ndarray:
    """Events of ``(run, lumi)`` inside the certified luminosity sections of ``meta["lumimask"]``.

    Raises
    ------
    DataQualityError
        The JSON cannot be read or parsed (the message names the dataset and the path).
    """
    mask = load_lumimask(str(meta["lumimask"]), dataset=str(meta.get("dataset", "?")))
    if not len(run):
        return np.zeros(0, dtype=bool)
    return np.asarray(mask(np.asarray(run, dtype=np.uint32), np.asarray(lumi, dtype=np.uint32)), dtype=bool)


def _fired(events: Any, paths: tuple[str, ...], available: set[str]) -> np.ndarray | None:
    """OR of the ``HLT_<path>`` branches the file has; ``None`` where it has none of them."""
    present = [p for p in paths if f"HLT_{p}" in available]
    if not present:
        return None
    out = np.zeros(len(events), dtype=bool)
    for p in present:
        out |= np.asarray(ak.to_numpy(events["HLT"][p]), dtype=bool)
    return out


def trigger_mask(
    events: Any,
    groups: tuple[TriggerGroup, ...],
    *,
    meta: Mapping[str, Any],
    available: set[str],
    selection: str,
    era: str,
) -> np.ndarray:
    """Events passing the trigger requirement of ``groups`` (see the module docstring).

    Raises
    ------
    DataQualityError
        Data of a primary dataset (metadata ``primary_dataset``) that the selection does not use in this era.
    """
    dataset = str(meta.get("dataset", "?"))
    n = len(events)
    pd = meta.get("primary_dataset") if meta.get("is_data", False) else None
    if pd is not None:
        names = [g.primary_dataset for g in groups]
        if pd not in names:
            raise DataQualityError(
                f"dataset {dataset!r}: primary dataset {pd!r} is not used by selection {selection!r} in era {era} "
                f"(its triggers come from {names})"
            )
        k = names.index(pd)
        own = _fired(events, groups[k].paths, available)
        earlier = [_fired(events, g.paths, available) for g in groups[:k]]
        if own is None:
            notice_once(
                log,
                dataset,
                "dataset %s: none of the trigger branches %s (selection %s, era %s) is in its files: "
                "no trigger requirement",
                dataset,
                [f"HLT_{p}" for p in groups[k].paths],
                selection,
                era,
                key="trigger",
                level=logging.WARNING,
            )
            own = np.ones(n, dtype=bool)
        for e in earlier:
            if e is not None:
                own &= ~e
        return own
    fired = [f for f in (_fired(events, g.paths, available) for g in groups) if f is not None]
    if not fired:
        notice_once(
            log,
            dataset,
            "dataset %s: none of the trigger branches %s (selection %s, era %s) is in its files: no trigger requirement",
            dataset,
            [f"HLT_{p}" for g in groups for p in g.paths],
            selection,
            era,
            key="trigger",
            level=logging.WARNING,
        )
        return np.ones(n, dtype=bool)
    return np.logical_or.reduce(fired)


def hlt_paths(selection: str) -> set[str]:
    """Every HLT path (without ``HLT_``) that ``selection`` names in any era: the branches the
    dask-awkward path reads."""
    paths = {p for groups in TRIGGERS.get(selection, {}).values() for g in groups for p in g.paths}
    if selection == CLASS_SELECTION:
        paths |= {p for table in CLASS_TRIGGERS.values() for g in table.values() for p in g.paths}
    return paths


def steps(
    events: Any, *, meta: Mapping[str, Any], selection: str, variant: str, available: set[str]
) -> list[tuple[str, str, np.ndarray]]:
    """The data-quality steps that apply to this dataset, in order: ``(name, description, mask)`` each."""
    dataset = str(meta.get("dataset", "?"))
    out: list[tuple[str, str, np.ndarray]] = []
    if meta.get("is_data", False) and meta.get("lumimask"):
        run = np.asarray(ak.to_numpy(events["run"]))
        lumi = np.asarray(ak.to_numpy(events["luminosityBlock"]))
        out.append(("lumimask", f"certified luminosity sections ({meta['lumimask']})", certified(meta, run, lumi)))
    table = TRIGGERS.get(selection, {})
    if not table:
        return out
    era = era_of(meta, variant)
    if era is None:
        notice_once(
            log,
            dataset,
            "dataset %s: no era (metadata 'era' or a variant that implies one; NanoAOD variant %s): "
            "no trigger requirement for selection %s",
            dataset,
            variant,
            selection,
            key="era",
            level=logging.WARNING,
        )
        return out
    if era not in table:
        raise DataQualityError(
            f"dataset {dataset!r}: era {era!r} has no trigger table for selection {selection!r}; known eras: "
            f"{sorted(table)}"
        )
    groups = table[era]
    if groups:
        paths = " OR ".join(f"HLT_{p}" for g in groups for p in g.paths)
        mask = trigger_mask(events, groups, meta=meta, available=available, selection=selection, era=era)
        out.append(("trigger", f"trigger ({era}): {paths}", mask))
    return out
