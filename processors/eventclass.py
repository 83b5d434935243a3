"""Exclusive, inclusive and jet-inclusive event classes (CMS MUSiC, EPJC 81 (2021) 629), columnar.

Every event that passes the class trigger (:func:`trigger_object`) belongs to one **exclusive** class
by its numbers of class objects: electrons, muons, photons, light jets, b-jets and missing transverse
momentum. The class objects are the analysis objects of :mod:`~cms_anomaly.processors.objects` (one
definition of each: lepton ID and isolation, photon ID and isolation, jet ID, overlap removal, the
b tag of :mod:`~cms_anomaly.processors.btag`) above the ``class_*`` thresholds of
:class:`~cms_anomaly.processors.config.SelectionConfig` (MUSiC's: e, mu, gamma pT > 25 GeV, jets and
b-jets pT > 50 GeV, MET > 100 GeV); a b-tagged jet counts as a b-jet, not as a jet.

**Naming rule**: ``<n>e``, ``<n>mu``, ``<n>gamma``, ``<n>jet``, ``<n>bjet``, ``MET`` in this order, the
types with zero objects left out, joined by ``_`` (``1e_2jet_1bjet_MET``, ``2mu``, ``1mu_1gamma_3jet``);
an inclusive class ends in ``+X``, a jet-inclusive one in ``+NJets``.

- **exclusive**: exactly these objects. An event with more objects of a type than its cap
  (``class_max_electrons`` 4, ``class_max_muons`` 4, ``class_max_photons`` 4, ``class_max_jets`` 6,
  ``class_max_bjets`` 3) has no exclusive class.
- **inclusive** (``+X``): every class whose content is a subset of the event's (each count from 0 to
  the event's, capped; MET with or without), with at least one e, mu, gamma, jet or b-jet; its
  variables are those of the class's objects: the leading ones of each type.
- **jet-inclusive** (``+NJets``): the event's electrons, muons, photons, b-jets and MET exactly, and
  k = 0 ... (the event's jets, capped at ``class_max_jets``) light jets; its variables use all the event's jets.
  Events with more jets than the cap are in these and the inclusive classes only.

Per class (and membership) MUSiC's distributions: ``st`` = the scalar sum of the pT of the class's
objects (+ MET where the class has MET), ``mass`` = their invariant mass, or, where the class has MET,
the transverse mass of the objects and MET, ``met``.

**Event lists** (:func:`class_event_lists`): per class, the data's :data:`EVENTS_PER_CLASS` events of
highest S_T of that class (run, luminosityBlock, event, ``st``, ``mass``, ``met``, hidden process of
pseudo-data); the report lists those inside the class's most significant region.

Classes are integer codes built arithmetically from the counts (base 10 per type, then MET), named
once per distinct code: no loop over events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import hist
import numpy as np
from cms_anomaly.processors import histograms
from cms_anomaly.processors.config import SelectionConfig
from cms_anomaly.processors.dataquality import CLASS_KINDS, CLASS_SELECTION
from cms_anomaly.processors.eventlist import TopEvents
from cms_anomaly.processors.flat import FlatCollection, offsets_from_counts
from cms_anomaly.processors.objects import EventObjects

#: the selection that fills the class histograms
SELECTION = CLASS_SELECTION
#: the object types of a class, in the order of its name
TYPES: tuple[str, ...] = ("e", "mu", "gamma", "jet", "bjet")
#: the membership kinds and their name suffix
KINDS: Mapping[str, str] = {"exclusive": "", "inclusive": "+X", "jet_inclusive": "+NJets"}
_BASE = 10  # every cap is < 10: one decimal digit per type
_JET = TYPES.index("jet")


def caps(config: SelectionConfig) -> np.ndarray:
    """The counting cap of each of :data:`TYPES`."""
    return np.array(
        [
            config.class_max_electrons,
            config.class_max_muons,
            config.class_max_photons,
            config.class_max_jets,
            config.class_max_bjets,
        ],
        dtype=np.int64,
    )


def _kinematic(coll: FlatCollection, pt_min: float, eta_max: float) -> np.ndarray:
    c = coll.columns
    return (c["pt"] > pt_min) & (np.abs(c["eta"]) < eta_max)


def class_collections(objects: EventObjects, config: SelectionConfig) -> dict[str, FlatCollection]:
    """The class objects of each of :data:`TYPES` (pT-ordered, as the analysis objects)."""
    flat = objects.flat
    mu, ele, pho, jets = flat["muons"], flat["electrons"], flat["photons"], flat["jets"]
    is_b = jets.columns["is_b"].astype(bool)
    jet_kin = _kinematic(jets, config.class_jet_pt_min, config.class_jet_eta_max)
    return {
        "e": ele.select(
            _kinematic(ele, config.class_electron_pt_min, config.class_electron_eta_max)
            & (ele.columns["iso"] < config.class_lepton_iso_max)
        ),
        "mu": mu.select(
            _kinematic(mu, config.class_muon_pt_min, config.class_muon_eta_max)
            & (mu.columns["iso"] < config.class_lepton_iso_max)
        ),
        "gamma": pho.select(_kinematic(pho, config.class_photon_pt_min, config.class_photon_eta_max)),
        "jet": jets.select(jet_kin & ~is_b),
        "bjet": jets.select(jet_kin & is_b),
    }


def trigger_object(
    objects: EventObjects, config: SelectionConfig, *, fired: Mapping[str, np.ndarray | None] | None = None
) -> np.ndarray:
    """Events with a trigger object: a kind of :data:`~cms_anomaly.processors.dataquality.CLASS_KINDS` whose
    paths fired (``fired[kind]``; ``None`` or absent: no HLT information, the offline threshold alone
    emulates the trigger) and whose leading class object(s) pass its offline threshold (MUSiC's rule)."""
    coll = class_collections(objects, config)
    lead = {t: coll[t].nth("pt", 0) for t in ("e", "mu", "gamma")}
    sub = {t: coll[t].nth("pt", 1) for t in ("e", "mu")}
    ht = np.bincount(
        np.repeat(np.arange(len(objects)), objects.flat["jets"].counts),
        weights=np.where(
            _kinematic(objects.flat["jets"], config.class_jet_pt_min, config.class_jet_eta_max),
            objects.flat["jets"].columns["pt"],
            0.0,
        ),
        minlength=len(objects),
    )
    offline = {
        "single_muon": lead["mu"] > config.trigger_single_muon_pt_min,
        "double_muon": (lead["mu"] > config.trigger_double_muon_pt1_min)
        & (sub["mu"] > config.trigger_double_muon_pt2_min),
        "single_electron": lead["e"] > config.trigger_single_electron_pt_min,
        "double_electron": (lead["e"] > config.trigger_double_electron_pt1_min)
        & (sub["e"] > config.trigger_double_electron_pt2_min),
        "photon": lead["gamma"] > config.trigger_photon_pt_min,
        "jets": ht > config.trigger_ht_min,
    }
    out = np.zeros(len(objects), dtype=bool)
    for kind in CLASS_KINDS:
        hlt = (fired or {}).get(kind)
        out |= offline[kind] if hlt is None else offline[kind] & np.asarray(hlt, dtype=bool)
    return out


def encode(counts: np.ndarray, met: np.ndarray) -> np.ndarray:
    """The integer code of (counts of :data:`TYPES`, MET flag) rows: base-10 digits, then MET."""
    place = _BASE ** np.arange(len(TYPES) - 1, -1, -1, dtype=np.int64)
    code = np.asarray(counts, dtype=np.int64) @ place
    return code * 2 + np.asarray(met, dtype=np.int64)


def class_name(code: int, kind: str = "exclusive") -> str:
    """The name of a class code (module docstring's naming rule); ``kind`` adds its suffix."""
    met, rest = code % 2, code // 2
    digits = []
    for _ in TYPES:
        digits.append(rest % _BASE)
        rest //= _BASE
    parts = [f"{n}{t}" for n, t in zip(reversed(digits), TYPES, strict=True) if n]
    return "_".join(parts + (["MET"] if met else [])) + KINDS[kind]


def names_of(codes: np.ndarray, kind: str = "exclusive") -> np.ndarray:
    """Class names of an array of codes (each distinct code named once)."""
    unique, inverse = np.unique(np.asarray(codes, dtype=np.int64), return_inverse=True)
    table = np.array([class_name(int(c), kind) for c in unique] or [""], dtype=object)
    return table[inverse].astype(str) if len(codes) else np.zeros(0, dtype=str)


@dataclass(frozen=True)
class Members:
    """Class memberships as flat rows: the event, the class's counts (``code_counts``), the objects its
    variables sum (``sum_counts``: the leading ones of each type), its MET flag and kind."""

    event: np.ndarray
    code_counts: np.ndarray
    sum_counts: np.ndarray
    met: np.ndarray
    kind: str


def _exclusive(counts: np.ndarray, met: np.ndarray, cap: np.ndarray) -> Members:
    ok = (counts <= cap).all(axis=1) & (counts.sum(axis=1) > 0)
    ev = np.flatnonzero(ok)
    return Members(ev, counts[ev], counts[ev], met[ev], "exclusive")


def _inclusive(counts: np.ndarray, met: np.ndarray, cap: np.ndarray) -> Members:
    """Every non-empty subset of each event's (capped) content: a mixed-radix count of the subsets."""
    radix = np.concatenate([np.minimum(counts, cap) + 1, met.astype(np.int64)[:, None] + 1], axis=1)
    n_sub = radix.prod(axis=1)
    ev = np.repeat(np.arange(len(counts)), n_sub)
    r = np.arange(len(ev)) - np.repeat(offsets_from_counts(n_sub)[:-1], n_sub)
    digits = np.empty((len(ev), radix.shape[1]), dtype=np.int64)
    for k in range(radix.shape[1]):
        digits[:, k] = r % radix[ev, k]
        r = r // radix[ev, k]
    sub, sub_met = digits[:, : len(TYPES)], digits[:, -1].astype(bool)
    keep = sub.sum(axis=1) > 0
    return Members(ev[keep], sub[keep], sub[keep], sub_met[keep], "inclusive")


def _jet_inclusive(counts: np.ndarray, met: np.ndarray, cap: np.ndarray) -> Members:
    """k = 0 ... min(jets, cap) light jets with the other types exactly (variables: all the jets)."""
    others = np.delete(np.arange(len(TYPES)), _JET)
    ok = (counts[:, others] <= cap[others]).all(axis=1)
    n_k = np.where(ok, np.minimum(counts[:, _JET], cap[_JET]) + 1, 0)
    ev = np.repeat(np.arange(len(counts)), n_k)
    k = np.arange(len(ev)) - np.repeat(offsets_from_counts(n_k)[:-1], n_k)
    code = counts[ev].copy()
    code[:, _JET] = k
    keep = code.sum(axis=1) > 0
    return Members(ev[keep], code[keep], counts[ev][keep], met[ev][keep], "jet_inclusive")


@dataclass(frozen=True)
class EventClasses:
    """The classes of a chunk's events: per event its exclusive class (``""``: none), and every
    membership (exclusive, inclusive, jet-inclusive) as a flat row with its class name, kind and the
    class's ``st``, ``mass`` (M or M_T) and ``met``."""

    exclusive: np.ndarray
    event: np.ndarray
    name: np.ndarray
    kind: np.ndarray
    st: np.ndarray
    mass: np.ndarray
    met: np.ndarray

    def counts(self) -> dict[str, int]:
        """Raw events per class name (every kind)."""
        names, n = np.unique(self.name, return_counts=True)
        return {str(k): int(v) for k, v in zip(names, n, strict=True)}

    def of_kind(self, kind: str) -> np.ndarray:
        """The membership rows of one kind (``exclusive``, ``inclusive``, ``jet_inclusive``)."""
        return np.flatnonzero(self.kind == kind)


def _prefix(coll: FlatCollection) -> dict[str, np.ndarray]:
    """Per object column, the cumulative sum over the flat objects with a leading 0 (sums of the leading k)."""
    c = coll.columns
    pt, eta, phi, mass = c["pt"], c["eta"], c["phi"], c["mass"]
    pz = pt * np.sinh(eta)
    cols = {
        "pt": pt,
        "px": pt * np.cos(phi),
        "py": pt * np.sin(phi),
        "pz": pz,
        "e": np.sqrt(pt * pt + pz * pz + mass * mass),
        "et": np.sqrt(pt * pt + mass * mass),
    }
    return {k: np.concatenate(([0.0], np.cumsum(v))) for k, v in cols.items()}


def _variables(
    coll: Mapping[str, FlatCollection],
    prefix: Mapping[str, Mapping[str, np.ndarray]],
    objects: EventObjects,
    members: Members,
) -> dict[str, np.ndarray]:
    """``st``, ``mass`` and ``met`` of each membership, from the leading ``sum_counts`` objects of each type
    (``prefix``: :func:`_prefix` of each type's collection)."""
    ev = members.event
    tot = dict.fromkeys(("pt", "px", "py", "pz", "e", "et"), np.zeros(len(ev)))
    for k, t in enumerate(TYPES):
        pre, start = prefix[t], coll[t].offsets[:-1][ev]
        stop = start + members.sum_counts[:, k]
        tot = {q: tot[q] + pre[q][stop] - pre[q][start] for q in tot}
    met = np.where(members.met, objects.met_pt[ev], 0.0)
    mex, mey = met * np.cos(objects.met_phi[ev]), met * np.sin(objects.met_phi[ev])
    m2 = tot["e"] ** 2 - tot["px"] ** 2 - tot["py"] ** 2 - tot["pz"] ** 2
    mt2 = (tot["et"] + met) ** 2 - (tot["px"] + mex) ** 2 - (tot["py"] + mey) ** 2
    return {
        "st": tot["pt"] + met,
        "mass": np.sqrt(np.maximum(np.where(members.met, mt2, m2), 0.0)),
        "met": objects.met_pt[ev],
    }


def class_counts(objects: EventObjects, config: SelectionConfig) -> tuple[np.ndarray, np.ndarray]:
    """(events, len(TYPES)) class-object counts (uncapped) and the MET flag of each event."""
    coll = class_collections(objects, config)
    counts = np.stack([coll[t].counts for t in TYPES], axis=1).astype(np.int64)
    return counts, objects.met_pt > config.class_met_min


def exclusive_names(counts: np.ndarray, met: np.ndarray, config: SelectionConfig) -> np.ndarray:
    """Each event's exclusive class name from its (events, len(TYPES)) uncapped class-object counts and MET
    flag (the feature tables' ``class_n_<type>`` and ``met > class_met_min``); ``""`` where it has none."""
    counts = np.asarray(counts, dtype=np.int64)
    members = _exclusive(counts, np.asarray(met, dtype=bool), caps(config))
    out = np.full(len(counts), "", dtype=object)
    out[members.event] = names_of(encode(members.code_counts, members.met))
    return out.astype(str)


def classify(objects: EventObjects, config: SelectionConfig) -> np.ndarray:
    """Each event's exclusive class name (``""`` where it has none: no class object, or above a cap)."""
    return memberships(objects, config).exclusive


def memberships(objects: EventObjects, config: SelectionConfig) -> EventClasses:
    """Every class membership of the events (see the module docstring) with the class's variables."""
    coll = class_collections(objects, config)
    counts = np.stack([coll[t].counts for t in TYPES], axis=1).astype(np.int64)
    met = objects.met_pt > config.class_met_min
    cap = caps(config)
    parts = [f(counts, met, cap) for f in (_exclusive, _inclusive, _jet_inclusive)]
    exclusive = np.full(len(objects), "", dtype=object)
    first = parts[0]
    exclusive[first.event] = names_of(encode(first.code_counts, first.met))
    prefix = {t: _prefix(coll[t]) for t in TYPES}
    values = [_variables(coll, prefix, objects, m) for m in parts]
    return EventClasses(
        exclusive=exclusive.astype(str),
        event=np.concatenate([m.event for m in parts]),
        name=np.concatenate([names_of(encode(m.code_counts, m.met), m.kind) for m in parts]).astype(str),
        kind=np.concatenate([np.full(len(m.event), m.kind) for m in parts]),
        **{q: np.concatenate([v[q] for v in values]) for q in ("st", "mass", "met")},
    )


#: the class histograms' names: ``class_<variable>`` for each of :data:`~cms_anomaly.processors.histograms.CLASS_BINNING`
#: and ``class_joint`` (S_T x M x MET of the exclusive classes, ``histograms.class_joint_hist``)
CLASS_HISTS: tuple[str, ...] = (*(f"class_{v}" for v in histograms.CLASS_BINNING), "class_joint")


def new_class_hists(
    dataset: str, scorers: Mapping[str, tuple[list[str], histograms.ScoreBinning | None]]
) -> dict[str, hist.Hist]:
    """Empty class histograms of a chunk: ``class_st``, ``class_mass``, ``class_met``, ``class_joint`` and, per
    scorer ``{name: (outputs, score binning)}``, ``class_score_<name>_<output>``."""
    out = {f"class_{v}": histograms.class_hist(v, dataset=dataset) for v in histograms.CLASS_BINNING}
    out["class_joint"] = histograms.class_joint_hist(dataset=dataset)
    for name, (outputs, binning) in scorers.items():
        for o in outputs:
            out[f"class_score_{name}_{o}"] = histograms.class_score_hist(name, o, dataset=dataset, binning=binning)
    return out


def fill_class_hists(
    hists: Mapping[str, hist.Hist], classes: EventClasses, *, dataset: str, weights: np.ndarray
) -> None:
    """Fill ``class_st``, ``class_mass``, ``class_met``: one entry per membership, at its event's weight; and
    ``class_joint`` (S_T, M, MET together): one entry per exclusive membership (the classes whose event sets
    are disjoint, which the joint test uses; the inclusive memberships would multiply its size)."""
    w = np.asarray(weights, dtype=np.float64)[classes.event]
    for v in histograms.CLASS_BINNING:
        hists[f"class_{v}"].fill(dataset=dataset, event_class=classes.name, **{v: getattr(classes, v)}, weight=w)
    ex = classes.of_kind("exclusive")
    hists["class_joint"].fill(
        dataset=dataset,
        event_class=classes.name[ex],
        st=classes.st[ex],
        mass=classes.mass[ex],
        met=classes.met[ex],
        weight=w[ex],
    )


def fill_class_scores(
    hists: Mapping[str, hist.Hist],
    classes: EventClasses,
    name: str,
    outputs: list[str],
    scores: np.ndarray,
    *,
    ok: np.ndarray,
    dataset: str,
    weights: np.ndarray,
    kinds: tuple[str, ...] | None = None,
) -> None:
    """Fill ``class_score_<name>_<output>``: each membership (of ``kinds``; None: every kind) of an event whose
    scores are finite (``ok``)."""
    take = np.asarray(ok, dtype=bool)[classes.event]
    if kinds is not None:
        take &= np.isin(classes.kind, kinds)
    rows = np.flatnonzero(take)
    ev = classes.event[rows]
    for k, o in enumerate(outputs):
        hists[f"class_score_{name}_{o}"].fill(
            dataset=dataset, event_class=classes.name[rows], **{o: scores[ev, k]}, weight=weights[ev]
        )


#: events of highest S_T kept per class in the data's class event lists
EVENTS_PER_CLASS = 20


def class_event_lists(
    classes: EventClasses,
    ids: Mapping[str, np.ndarray],
    process: np.ndarray,
    n: int = EVENTS_PER_CLASS,
    *,
    scores: Mapping[str, np.ndarray] | None = None,
) -> dict[str, TopEvents]:
    """Per class name, its ``n`` memberships of highest S_T as a :class:`TopEvents` (key ``st``): the
    event's ``run``, ``luminosityBlock``, ``event``, ``process`` (``ids``, ``process``: per event), the
    class's ``st``, ``mass``, ``met``, and the event's ``scores`` (per event, by column name: the
    scorers' outputs). Columnar: one sort by (class, -S_T), a rank within each class."""
    if n <= 0 or not len(classes.event):
        return {}
    order = np.lexsort((-classes.st, classes.name))
    names = classes.name[order]
    first = np.concatenate(([True], names[1:] != names[:-1]))
    start = np.maximum.accumulate(np.where(first, np.arange(len(names)), 0))
    kept = (np.arange(len(names)) - start) < n
    rows, bounds = order[kept], np.flatnonzero(first[kept])
    ev = classes.event[rows]
    cols = {
        "run": np.asarray(ids["run"])[ev].astype(np.int64),
        "luminosityBlock": np.asarray(ids["luminosityBlock"])[ev].astype(np.int64),
        "event": np.asarray(ids["event"])[ev].astype(np.int64),
        "st": classes.st[rows],
        "mass": classes.mass[rows],
        "met": classes.met[rows],
        "process": np.asarray(process)[ev].astype(str),
        **{k: np.asarray(v, dtype=np.float64)[ev] for k, v in (scores or {}).items()},
    }
    parts = {k: np.split(v, bounds[1:]) for k, v in cols.items()}
    return {str(names[kept][b]): TopEvents(n, {k: parts[k][i] for k in cols}, key="st") for i, b in enumerate(bounds)}
