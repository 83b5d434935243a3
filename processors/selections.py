"""Named event selections as ordered cuts, evaluated with coffea's ``PackedSelection``.

Each selection is a record of cuts; each cut is a pure function
``(objects, features, config) -> bool ndarray`` with a label built from the
:class:`~cms_anomaly.processors.config.SelectionConfig` values it reads (:meth:`Cut.label`), so that
a moved cut changes its label. :data:`SELECTIONS` lists every selection; :func:`register_selection`
adds one with its trigger table (see ``docs/howto/add-a-selection.md``). Object-level requirements are cumulative
inside one cut sequence (e.g. ``muon_iso`` asks for one muon passing *both* the pT and the
isolation cut), so the cut-flow reads like the papers' tables.

=================  ==========================================================================
``inclusive``      no cut (every event)
``single_lepton``  Cerri: one lepton with pT > 23 GeV and Iso < 0.45
``top_rediscovery`` Knapp sec. 4: muon pT > 23, Iso < 0.1, |eta| < 1.4; >= 2 jets (pT > 30, |eta| < 2.4)
``rmm_lepton``     Chekanov: >= 1 isolated lepton (Iso < 0.15) with pT > 30; >= 2 jets pT > 30
``dijet``          LHC Olympics: leading R = 1.0 jet pT > 1.2 TeV; two large-R jets for m_JJ
``event_classes``  MUSiC: a trigger object of a class trigger kind; fills the event-class histograms
                   (:mod:`~cms_anomaly.processors.eventclass`)
=================  ==========================================================================

The data-quality steps before these cuts (certified luminosity, the selection's trigger paths per
era) are in :mod:`cms_anomaly.processors.dataquality`; the processor puts them first in the cut-flow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import awkward as ak
import numpy as np
from cms_anomaly.processors import dataquality, eventclass
from cms_anomaly.processors.config import SelectionConfig
from cms_anomaly.processors.objects import EventObjects
from coffea.analysis_tools import PackedSelection

CutFunction = Callable[[EventObjects, ak.Array, SelectionConfig], Any]


class UnknownSelectionError(KeyError):
    """The requested selection name is not defined."""

    def __str__(self) -> str:
        return self.args[0]


class SelectionRegistryError(ValueError):
    """A selection cannot be registered (its name is taken or a cut label names no config field)."""


def _label(template: str, config: SelectionConfig) -> str:
    """``template`` with each ``{field}`` of :class:`SelectionConfig` replaced by its value (``{field:g}`` style)."""
    return template.format_map(dataclasses.asdict(config))


@dataclass(frozen=True)
class Cut:
    """One named event-level requirement.

    ``description`` is the label's template: ``{field}`` (or ``{field:g}``) stands for the value of a
    :class:`~cms_anomaly.processors.config.SelectionConfig` field the cut reads.
    """

    name: str
    description: str
    function: CutFunction

    def label(self, config: SelectionConfig) -> str:
        """The cut's label with the values of ``config``."""
        return _label(self.description, config)


@dataclass(frozen=True)
class Selection:
    """An ordered list of cuts."""

    name: str
    description: str
    cuts: tuple[Cut, ...]

    @property
    def cut_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cuts)

    def label(self, config: SelectionConfig) -> str:
        """The selection's description with the values of ``config``."""
        return _label(self.description, config)

    def cut_labels(self, config: SelectionConfig) -> dict[str, str]:
        """``{cut name: label}`` of the cut-flow, ``all`` first, with the values of ``config``."""
        return {"all": "all events"} | {c.name: c.label(config) for c in self.cuts}


def _has_lepton(
    objects: EventObjects,
    pt_min: float,
    iso_max: float = np.inf,
    *,
    abs_eta_max: float = np.inf,
    collections: tuple[str, ...] = ("muons", "electrons"),
) -> np.ndarray:
    """Events with a lepton of ``collections`` with pT > ``pt_min``, Iso < ``iso_max`` and |eta| <
    ``abs_eta_max`` (one object passing all three; counted on the flat columns)."""
    n = np.zeros(len(objects), dtype=np.int64)
    for name in collections:
        c = objects.flat[name].columns
        passing = c["pt"] > pt_min
        if np.isfinite(iso_max):
            passing &= c["iso"] < iso_max
        if np.isfinite(abs_eta_max):
            passing &= abs(c["eta"]) < abs_eta_max
        n += objects.flat[name].count(passing)
    return n > 0


def _leading_fatjet_pt(objects: EventObjects) -> np.ndarray:
    return objects.flat["fatjets"].nth("pt", 0)


#: Cerri et al.'s event selection: one isolated lepton (pT > 23 GeV, Iso < 0.45)
_SINGLE_LEPTON = (
    Cut(
        "lepton_pt",
        "a lepton with pT > {single_lepton_pt_min:g} GeV",
        lambda o, f, c: _has_lepton(o, c.single_lepton_pt_min),
    ),
    Cut(
        "lepton_iso",
        "... that has Iso < {single_lepton_iso_max:g}",
        lambda o, f, c: _has_lepton(o, c.single_lepton_pt_min, c.single_lepton_iso_max),
    ),
)

_SELECTIONS: dict[str, Selection] = {
    s.name: s
    for s in (
        Selection("inclusive", "all events", ()),
        Selection(
            "single_lepton",
            "Cerri et al.: one isolated lepton (pT > {single_lepton_pt_min:g} GeV, Iso < {single_lepton_iso_max:g})",
            _SINGLE_LEPTON,
        ),
        Selection(
            "single_lepton_slt",
            "single_lepton events that fire the reference single-lepton trigger (Cerri et al. Table 5)",
            (
                *_SINGLE_LEPTON,
                Cut(
                    "slt",
                    "a lepton with pT > {slt_pt_min:g} GeV and Iso < {slt_iso_max:g} (the single-lepton trigger)",
                    lambda o, f, c: _has_lepton(o, c.slt_pt_min, c.slt_iso_max),
                ),
            ),
        ),
        Selection(
            "top_rediscovery",
            "Knapp et al. sec. 4: isolated central muon and >= {top_min_jets} jets",
            (
                Cut(
                    "muon_pt",
                    "a muon with pT > {top_muon_pt_min:g} GeV",
                    lambda o, f, c: _has_lepton(o, c.top_muon_pt_min, collections=("muons",)),
                ),
                Cut(
                    "muon_iso",
                    "... with Iso < {top_muon_iso_max:g}",
                    lambda o, f, c: _has_lepton(o, c.top_muon_pt_min, c.top_muon_iso_max, collections=("muons",)),
                ),
                Cut(
                    "muon_eta",
                    "... and |eta| < {top_muon_eta_max:g}",
                    lambda o, f, c: _has_lepton(
                        o,
                        c.top_muon_pt_min,
                        c.top_muon_iso_max,
                        abs_eta_max=c.top_muon_eta_max,
                        collections=("muons",),
                    ),
                ),
                Cut(
                    "two_jets",
                    ">= {top_min_jets} jets (the analysis jets)",
                    lambda o, f, c: np.asarray(f["n_jets"]) >= c.top_min_jets,
                ),
            ),
        ),
        Selection(
            "rmm_lepton",
            "Chekanov et al.: >= 1 isolated lepton pT > {rmm_lepton_pt_min:g} GeV and >= {rmm_min_jets} jets",
            (
                Cut(
                    "lepton_pt",
                    "a lepton with pT > {rmm_lepton_pt_min:g} GeV",
                    lambda o, f, c: _has_lepton(o, c.rmm_lepton_pt_min),
                ),
                Cut(
                    "lepton_iso",
                    "... with Iso < {rmm_lepton_iso_max:g}",
                    lambda o, f, c: _has_lepton(o, c.rmm_lepton_pt_min, c.rmm_lepton_iso_max),
                ),
                Cut(
                    "two_jets",
                    ">= {rmm_min_jets} jets (the analysis jets)",
                    lambda o, f, c: np.asarray(f["n_jets"]) >= c.rmm_min_jets,
                ),
            ),
        ),
        Selection(
            "dijet",
            "LHC Olympics: leading large-R jet pT > {dijet_leading_pt_min:g} GeV, two large-R jets",
            (
                Cut(
                    "fatjet_pt",
                    "leading R=1.0 jet pT > {dijet_leading_pt_min:g} GeV",
                    lambda o, f, c: _leading_fatjet_pt(o) > c.dijet_leading_pt_min,
                ),
                Cut(
                    "two_fatjets",
                    ">= 2 large-R jets (m_JJ defined)",
                    lambda o, f, c: np.asarray(f["n_fatjets"]) >= 2,
                ),
            ),
        ),
        Selection(
            eventclass.SELECTION,
            "MUSiC event classes: a class trigger kind fired and its leading object(s) pass its offline threshold",
            (
                Cut(
                    "trigger_object",
                    "a trigger object: mu > {trigger_single_muon_pt_min:g}, e > {trigger_single_electron_pt_min:g}, "
                    "2 mu > {trigger_double_muon_pt1_min:g}/{trigger_double_muon_pt2_min:g}, 2 e > "
                    "{trigger_double_electron_pt1_min:g}/{trigger_double_electron_pt2_min:g}, gamma > "
                    "{trigger_photon_pt_min:g} or jet H_T > {trigger_ht_min:g} GeV (class objects)",
                    lambda o, f, c: eventclass.trigger_object(o, c),
                ),
            ),
        ),
    )
}
#: every selection by name (a live view: :func:`register_selection` adds one)
SELECTIONS: Mapping[str, Selection] = MappingProxyType(_SELECTIONS)


def register_selection(
    selection: Selection, *, triggers: Mapping[str, tuple[dataquality.TriggerGroup, ...]] | None = None
) -> None:
    """Add ``selection`` to :data:`SELECTIONS`, with its trigger groups per era (none by default) in
    :data:`~cms_anomaly.processors.dataquality.TRIGGERS`.

    Raises
    ------
    SelectionRegistryError
        The name is taken, or a label names a field :class:`SelectionConfig` does not have.
    """
    if selection.name in _SELECTIONS:
        raise SelectionRegistryError(f"selection {selection.name!r} is already registered")
    try:
        selection.label(SelectionConfig())
        selection.cut_labels(SelectionConfig())
    except (KeyError, ValueError, IndexError) as err:
        raise SelectionRegistryError(f"selection {selection.name!r}: a label names no config field ({err})") from None
    _SELECTIONS[selection.name] = selection
    dataquality._TRIGGERS[selection.name] = MappingProxyType(dict(triggers or {}))


def unregister_selection(name: str) -> None:
    """Remove a selection added with :func:`register_selection` and its trigger table."""
    if name not in _SELECTIONS or name in _BUILT_IN:
        raise SelectionRegistryError(f"selection {name!r} is not a registered one")
    del _SELECTIONS[name]
    dataquality._TRIGGERS.pop(name, None)


_BUILT_IN = frozenset(_SELECTIONS)


def get_selection(name: str) -> Selection:
    """The :class:`Selection` called ``name`` (raises :class:`UnknownSelectionError`)."""
    try:
        return SELECTIONS[name]
    except KeyError:
        raise UnknownSelectionError(f"unknown selection {name!r}; known: {sorted(SELECTIONS)}") from None


def evaluate(selection: Selection, objects: EventObjects, features: Any, *, config: SelectionConfig) -> PackedSelection:
    """A ``PackedSelection`` holding every cut of ``selection`` for these events.

    ``features`` is the feature record or a ``{name: ndarray}`` mapping of the scalar features.
    """
    packed = PackedSelection()
    for cut in selection.cuts:
        mask = np.asarray(cut.function(objects, features, config), dtype=bool)
        if mask.shape != (len(objects),):
            raise ValueError(
                f"cut {cut.name!r} of {selection.name!r} gave shape {mask.shape}, expected ({len(objects)},)"
            )
        packed.add(cut.name, mask)
    return packed


def passing(packed: PackedSelection, selection: Selection, n_events: int) -> np.ndarray:
    """Events passing every cut of ``selection`` (all events for a selection without cuts)."""
    if not selection.cuts:
        return np.ones(n_events, dtype=bool)
    return np.asarray(packed.all(*selection.cut_names), dtype=bool)


def cutflow(packed: PackedSelection, selection: Selection, *, weights: np.ndarray) -> dict[str, dict[str, Any]]:
    """Cumulative cut-flow and where events fail, as accumulatable dicts.

    Returns
    -------
    dict
        ``events`` / ``sumw``: ``{"all": N, cut1: N after cut1, ...}`` (cumulative);
        ``first_failed``: ``{cut: number of events whose first failed cut is this one,
        "passed": events passing all}``; its values add up to ``events["all"]``.
    """
    n = len(weights)
    names = selection.cut_names
    events = {"all": int(n)}
    sumw = {"all": float(np.sum(weights))}
    for k, name in enumerate(names):
        mask = np.asarray(packed.all(*names[: k + 1]), dtype=bool)
        events[name] = int(mask.sum())
        sumw[name] = float(weights[mask].sum())
    first_failed: dict[str, int] = dict.fromkeys(names, 0)
    if names and n:
        stacked = np.stack([np.asarray(packed.all(name), dtype=bool) for name in names], axis=1)
        failed_any = ~stacked.all(axis=1)
        first = np.argmin(stacked, axis=1)[failed_any]
        counts = np.bincount(first, minlength=len(names))
        first_failed = {name: int(counts[k]) for k, name in enumerate(names)}
        first_failed["passed"] = int((~failed_any).sum())
    else:
        first_failed["passed"] = int(n)
    return {"events": events, "sumw": sumw, "first_failed": first_failed}


def with_class_triggers(selection: Selection, fired: Mapping[str, np.ndarray | None]) -> Selection:
    """``selection`` with its ``trigger_object`` cut (``event_classes``) reading the chunk's fired class
    triggers (:func:`~cms_anomaly.processors.dataquality.class_trigger_fired`)."""
    cuts = tuple(
        dataclasses.replace(c, function=lambda o, f, cfg: eventclass.trigger_object(o, cfg, fired=fired))
        if c.name == "trigger_object"
        else c
        for c in selection.cuts
    )
    return dataclasses.replace(selection, cuts=cuts)
