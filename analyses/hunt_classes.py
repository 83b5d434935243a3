"""The hunt over every final state (``cms-anomaly hunt --selection event_classes``), as CMS MUSiC does it.

1. **Samples**: the background model is an SM cocktail (:data:`CLASS_COCKTAIL`) generated at the data's
   sqrt(s), normalised to the data's luminosity by cross section; the data are a fileset of real data or
   pseudo-data mixed from an independent production of the same cocktail, optionally with a BSM card
   hidden in it (:func:`~cms_anomaly.analyses.samples.make_samples`). The generation cost is printed before
   it starts (:func:`generation_cost`).
2. **One processor pass** with the ``event_classes`` selection fills every class's S_T, M (M_T with MET)
   and MET histograms (:mod:`~cms_anomaly.processors.eventclass`). With a ``model``
   (:func:`detector_passes`; ``detector_per="all"``): one k-fold detector trained on the data events of every
   class, with the class among its inputs (the ``hlf_nano_classes`` feature set: HLF_NANO and the class-object counts
   ``class_n_e``, ``class_n_mu``, ``class_n_gamma``, ``class_n_jet``, ``class_n_bjet``; the MET flag is
   ``met`` > ``class_met_min``), by the top hunt's machinery
   (:func:`~cms_anomaly.analyses.hunt_detectors.train_folds`): a first pass writes the feature tables,
   k models train on the data, and the pass whose histograms are scanned scores every event through
   :class:`~cms_anomaly.models.scorers.KFoldScorer`, filling each class's calibrated rarity
   (``class_score_kfold_rarity``). With ``detector_per="class"`` each exclusive class with at least
   ``class_min_events`` data events gets its own k-fold detectors, trained on its data events only
   (:func:`~cms_anomaly.analyses.hunt_detectors.train_class_folds`), which score its events and fill the
   rarity of its exclusive memberships only; the other classes have no rarity.
3. **Per class**: observed and expected events (+- the simulation's statistical error, sqrt(sum w^2)) and
   MUSiC's scan of each distribution (:func:`~cms_anomaly.stats.class_scan`; the rarity in upper tails
   only, :data:`UPPER_TAILS`): the region of interest, its local p, the class's p-tilde and one global
   p-value of the whole procedure from one set of pseudo-experiments. ``classes`` (fnmatch patterns)
   chooses the classes scanned.
   Beside the scans, each exclusive class with at least ``nplm_min_events`` observed and expected events
   gets the New Physics Learning Machine's goodness-of-fit test of its joint (S_T, M, MET) histogram
   (:func:`~cms_anomaly.stats.nplm.nplm_test`, calibrated by ``nplm_toys`` pseudo-datasets); the
   exclusive classes hold disjoint events, so their smallest p is corrected for their number by Sidak's
   ``1 - (1 - p_min)^k`` (:func:`nplm_classes`).
4. **Report** (:mod:`~cms_anomaly.analyses.hunt_classes_report`): the class table sorted by p-tilde (with
   the NPLM p), the global p, the NPLM global p, the p-tilde over classes against its expectation (PNG),
   the events of each top class's region.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import time
import zlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from cms_anomaly.analyses import analysis
from cms_anomaly.analyses.analysis import Execution
from cms_anomaly.analyses.hunt_selections import KFOLD_OUTPUT, KFOLD_SCORER
from cms_anomaly.analyses.samples import SamplesError
from cms_anomaly.analyses.samples import make_samples as productions

log = logging.getLogger(__name__)

#: the SM cocktail of the class hunt: (role, card, what it stands for). Every SM card of datasets/cards
#: with a role in a general search; ``qcd`` (heavy flavour only) and the muon-only ``wmunu_jets``,
#: ``zmumu_jets``, ``wjets_hard``, ``qcd_dijet`` are covered by broader cards here.
CLASS_COCKTAIL: tuple[tuple[str, str, str], ...] = (
    ("wjets", "wjets", "W -> l nu (e, mu, tau)"),
    ("zjets", "zjets", "Z/gamma* -> l l (e, mu, tau), m_ll > 50 GeV"),
    ("ttbar", "ttbar", "ttbar, all decays"),
    ("single_top", "single_top", "single top, t- and s-channel (no tW in Pythia 8.3)"),
    ("ww", "ww", "W+ W-, all decays"),
    ("wz", "wz", "W Z, all decays"),
    ("zz", "zz", "Z/gamma* Z/gamma*, all decays but 4 charged leptons"),
    ("zz4l", "zz4l", "Z/gamma* Z/gamma* -> 4 charged leptons (e, mu, tau)"),
    ("gjets", "gjets", "gamma + jet, pTHat > 20 GeV"),
    ("qcd", "qcd_inclusive", "QCD multijet with an e/mu/tau filter, tail-weighted: with real data only"),
)
#: roles that exist only tail-weighted: pseudo-data (an unweighted mixture) cannot contain them, so with
#: pseudo-data they are left out of data and background model alike
WEIGHTED_ONLY: tuple[str, ...] = ("qcd",)
#: CPU seconds per generated event of each card (Pythia, detector response, NanoAOD), measured on this
#: project's 2-core development machine while other jobs shared it (an upper estimate): the ``seconds``
#: of each card's 100-event file of ``production.produce(cards, events=100, seed=7, executor="local",
#: tail_bias=True)`` / 100 (Pythia's initialisation included); ``wjets`` from its 300-event file of the
#: tests' class-hunt production (seed 3; the first file of a process also pays the imports); ``qcd_inclusive``
#: per kept event, from its card (tail-weighted, 0.6 CPU-s)
SECONDS_PER_EVENT: dict[str, float] = {
    "wjets": 0.056,
    "zjets": 0.062,
    "ttbar": 0.066,
    "single_top": 0.056,
    "ww": 0.054,
    "wz": 0.048,
    "zz": 0.049,
    "zz4l": 0.035,
    "gjets": 0.047,
    "qcd_inclusive": 0.6,
}
#: the distributions scanned: (name in the class scan, the processor's class histogram); ``rarity`` where
#: the pass has a detector (:attr:`ClassHuntConfig.model`)
DISTRIBUTIONS: dict[str, str] = {
    "st": "class_st",
    "mass": "class_mass",
    "met": "class_met",
    "rarity": f"class_score_{KFOLD_SCORER}_{KFOLD_OUTPUT}",
}
#: distributions scanned in upper tails only (every window from a bin to the end): the detector's rarity,
#: -log10 of the fraction of the data scoring as high, where an anomaly is the events the detector finds
#: rare; a window inside the bulk tests the shape of common events, which S_T, M and MET already scan,
#: and would add trials (m(m+1)/2 windows instead of m) to the global p-value
UPPER_TAILS: tuple[str, ...] = ("rarity",)
#: rarity bins (0.05 each: :data:`~cms_anomaly.models.scorers.RARITY_BINNING`) merged into one scan bin
RARITY_REBIN = 1
#: the detector's inputs: HLF_NANO and the object counts that define the event class
#: (:data:`~cms_anomaly.processors.feature_spec.CLASS_COUNTS`)
CLASS_FEATURE_SET = "hlf_nano_classes"
#: what :attr:`ClassHuntConfig.detector_per` selects: the data each k-fold detector trains on
DETECTOR_PER: dict[str, str] = {
    "all": "one detector on the data of every class, the class-object counts among its inputs",
    "class": "one detector per exclusive class, on that class's data only; it scores that class only",
}
#: the class-name suffix of each membership kind
KIND_SUFFIX: dict[str, str] = {"exclusive": "", "inclusive": "+X", "jet_inclusive": "+NJets"}


class ClassHuntError(RuntimeError):
    """The class hunt cannot go on; the message says which step and why."""


@dataclass(frozen=True)
class ClassHuntConfig:
    """Settings of :func:`run_class_hunt`.

    ``events``: generated events per cocktail role in each production (the simulation and the pseudo-data
    pool). The pseudo-data's luminosity is set by the role with the fewest generated events per pb:
    gamma + jets (159 nb at pTHat > 20 GeV), 3000 events for 0.019 pb^-1, which W (46 nb) fills with 1200;
    the rarer roles get 200 each, more than the pseudo-data need, for a small simulation error.
    """

    data_fileset: str | None = None
    events: dict[str, int] = field(
        default_factory=lambda: {
            "wjets": 1200,
            "zjets": 200,
            "ttbar": 200,
            "single_top": 200,
            "ww": 200,
            "wz": 200,
            "zz": 200,
            "zz4l": 200,
            "gjets": 3000,
            "qcd": 300,
        }
    )
    seed: int = 1
    #: seed of the simulation production (default ``seed + 1000``)
    simulation_seed: int | None = None
    inject: str | None = None
    signal_fraction: float = 0.0
    #: fnmatch patterns of the classes scanned (all when empty)
    classes: tuple[str, ...] = ()
    #: membership kinds scanned (:data:`KIND_SUFFIX`)
    kinds: tuple[str, ...] = ("exclusive", "jet_inclusive", "inclusive")
    #: pseudo-experiments of the p-tilde and the global p-value
    npe: int = 2000
    #: 10 GeV histogram bins merged into one scan bin
    rebin: int = 5
    #: the smallest expected yield of a region (MUSiC's minimum region yield)
    min_yield: float = 0.1
    #: classes whose regions' events are listed
    top_classes: int = 5
    #: the detector whose rarity is scanned per class (a model of ``hunt_detectors.MODELS``; ``"none"`` or
    #: None: no detector, S_T, M and MET only); k-fold on the data (:func:`detector_passes`, ``detector_per``)
    model: str = "none"
    #: which data each k-fold detector trains on (:data:`DETECTOR_PER`): ``"all"`` one detector on the data
    #: of every class, ``"class"`` one per exclusive class with >= ``class_min_events`` data events
    detector_per: str = "all"
    #: the fewest data events of an exclusive class that gets its own detectors (``detector_per="class"``)
    class_min_events: int = analysis.MIN_HUNT_DATA_EVENTS
    k_folds: int = 3
    epochs: int = 60
    device: str = "auto"
    #: the detector's inputs (:data:`CLASS_FEATURE_SET`)
    feature_set: str | None = CLASS_FEATURE_SET
    #: pseudo-datasets of each class's NPLM test (0: no NPLM test)
    nplm_toys: int = 200
    #: the fewest observed and the fewest expected events of a class the NPLM test runs on: below ~20 a
    #: class fills a few of the joint histogram's 600 bins, and its window scan (a count) says as much
    nplm_min_events: float = 20.0
    execution: Execution = field(default_factory=Execution)

    def __post_init__(self) -> None:
        bad = set(self.kinds) - set(KIND_SUFFIX)
        if not self.kinds or bad:
            raise ClassHuntError(f"kinds must be among {', '.join(KIND_SUFFIX)}, got {self.kinds}")
        if self.npe < 1 or self.rebin < 1 or self.min_yield <= 0:
            raise ClassHuntError(
                f"npe and rebin must be >= 1, min_yield > 0; got {self.npe}, {self.rebin}, {self.min_yield}"
            )
        if self.nplm_toys < 0 or self.nplm_min_events < 0:
            raise ClassHuntError(
                f"nplm_toys and nplm_min_events must be >= 0; got {self.nplm_toys}, {self.nplm_min_events}"
            )
        if not 0 <= self.signal_fraction < 1:
            raise ClassHuntError(f"signal_fraction must be in [0, 1), got {self.signal_fraction}")
        if self.data_fileset and self.inject:
            raise ClassHuntError("--inject builds pseudo-data; it cannot be combined with --data-fileset")
        missing = set(self.roles()) - set(self.events)
        if missing:
            raise ClassHuntError(f"no event count for the cocktail roles {sorted(missing)}")
        self._check_detector()

    def _check_detector(self) -> None:
        from cms_anomaly.analyses.hunt_detectors import MODELS

        if self.model is None:
            object.__setattr__(self, "model", "none")
        if self.model != "none" and self.model not in MODELS:
            raise ClassHuntError(f"unknown model {self.model!r}: choose none or one of {', '.join(MODELS)}")
        if self.k_folds < 2 or self.epochs < 1:
            raise ClassHuntError(f"k_folds must be >= 2 and epochs >= 1, got {self.k_folds}, {self.epochs}")
        if self.detector_per not in DETECTOR_PER or self.class_min_events < 1:
            raise ClassHuntError(
                f"detector_per must be one of {', '.join(DETECTOR_PER)} and class_min_events >= 1; got "
                f"{self.detector_per!r}, {self.class_min_events}"
            )

    @property
    def detector(self) -> bool:
        """Whether the hunt trains a detector and scans its rarity."""
        return self.model != "none"

    def roles(self) -> dict[str, str]:
        """role -> card of the background model of this data (the weighted-only roles with real data only)."""
        return {r: c for r, c, _ in CLASS_COCKTAIL if self.data_fileset or r not in WEIGHTED_ONLY}

    def scaled(self, factor: float) -> ClassHuntConfig:
        """The same hunt with ``factor`` times more generated events."""
        return replace(self, events={k: max(1, round(v * factor)) for k, v in self.events.items()})


def generation_cost(config: ClassHuntConfig) -> tuple[list[str], float]:
    """Lines ``card: events x s/event = s`` of every production and the total CPU seconds (before any
    reuse of finished files), from :data:`SECONDS_PER_EVENT`."""
    productions_n = 1 if config.data_fileset else 2
    lines, total = [], 0.0
    for role, card in config.roles().items():
        n = config.events[role] * productions_n
        cost = n * SECONDS_PER_EVENT.get(card, max(SECONDS_PER_EVENT.values()))
        total += cost
        lines.append(f"  {card}: {n} events x {SECONDS_PER_EVENT.get(card, float('nan')):g} s/event = {cost:.0f} s")
    return lines, total


def make_samples(config: ClassHuntConfig, samples_dir: Path) -> tuple[dict, dict]:
    """(simulation fileset, data fileset entry): the cocktail (tail-weighted) and the (pseudo-)data."""
    try:
        return productions(
            samples_dir,
            events={r: config.events[r] for r in config.roles()},
            seed=config.seed,
            execution=config.execution,
            ttbar_scale=1.0,
            data_fileset=config.data_fileset,
            inject=config.inject,
            signal_fraction=config.signal_fraction,
            simulation_seed=config.simulation_seed,
            roles=config.roles(),
            tail_bias=True,
        )
    except SamplesError as err:
        raise ClassHuntError(str(err)) from None


# ------------------------------------------------------------------------------------- per class
def _kind_of(name: str) -> str:
    return "inclusive" if name.endswith("+X") else "jet_inclusive" if name.endswith("+NJets") else "exclusive"


def selected_classes(names: list[str], config: ClassHuntConfig) -> list[str]:
    """The class names of ``config.kinds`` that match one of ``config.classes`` (every one without patterns)."""
    keep = [n for n in names if _kind_of(n) in config.kinds]
    if config.classes:
        keep = [n for n in keep if any(fnmatch.fnmatchcase(n, p) for p in config.classes)]
    return sorted(keep)


def _sums(output: dict, datasets: list[str], hname: str, rebin: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per class: (sum of weights, sum of squared weights) of ``hname`` over ``datasets``, ``rebin`` bins merged."""
    parts = []
    for d in datasets:
        h = output[d]["hists"].get(hname)
        if h is None:
            continue
        h = h[{"dataset": sum}]
        part = {}
        for c in h.axes["event_class"]:
            v = h[{"event_class": c}]
            part[c] = tuple(np.add.reduceat(a, np.arange(0, a.size, rebin)) for a in (v.values(), v.variances()))
        parts.append(part)
    return _merged(parts)


def _merged(parts: list[dict[str, tuple[np.ndarray, np.ndarray]]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The per-class (sum w, sum w^2) of several :func:`_sums`, added up."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for part in parts:
        for c, (w, w2) in part.items():
            old = out.get(c)
            out[c] = (w, w2) if old is None else (old[0] + w, old[1] + w2)
    return out


def process_weights(output: dict, roles: list[str]) -> np.ndarray:
    """Each background process's effective event weight, sum w^2 / sum w over its events in the exclusive
    classes (one membership per event); 0 for a process without any such event."""
    out = []
    for r in roles:
        sums = _sums(output, [r], "class_met", 1)
        w = sum(float(s[0].sum()) for c, s in sums.items() if _kind_of(c) == "exclusive")
        w2 = sum(float(s[1].sum()) for c, s in sums.items() if _kind_of(c) == "exclusive")
        out.append(w2 / w if w > 0 else 0.0)
    return np.array(out)


def distributions(output: dict) -> dict[str, str]:
    """The distributions of :data:`DISTRIBUTIONS` whose histogram the data's output has (the rarity
    with a detector only): name -> histogram."""
    hists = output.get("data", {}).get("hists", {})
    return {d: h for d, h in DISTRIBUTIONS.items() if h in hists}


def class_inputs(output: dict, config: ClassHuntConfig) -> dict[str, Any]:
    """Observed counts, expected yields and their variances per scanned class and distribution, each
    background process's expected yields (``process_expected``: per class and distribution, processes x
    bins) and effective event weight (``process_weight``), the bin edges (GeV; -log10 p for the rarity) of
    each distribution, and every class's totals (observed, expected, error)."""
    roles = [d for d in output if d != "data" and "hists" in output[d]]
    if "hists" not in output.get("data", {}):
        raise ClassHuntError("no data event was read")
    obs, exp, var, per, edges = {}, {}, {}, {}, {}
    for dist, hname in distributions(output).items():
        rebin = RARITY_REBIN if dist == "rarity" else config.rebin
        each = [_sums(output, [r], hname, rebin) for r in roles]
        data, sim = _sums(output, ["data"], hname, rebin), _merged(each)
        axis = output["data"]["hists"][hname].axes[-1]
        edges[dist] = np.append(axis.edges[:-1:rebin], axis.edges[-1])
        zero = np.zeros(len(edges[dist]) - 1)
        for c in selected_classes(sorted(set(data) | set(sim)), config):
            obs.setdefault(c, {})[dist] = data.get(c, (zero, zero))[0]
            exp.setdefault(c, {})[dist] = sim.get(c, (zero, zero))[0]
            var.setdefault(c, {})[dist] = sim.get(c, (zero, zero))[1]
            per.setdefault(c, {})[dist] = np.array([e.get(c, (zero, zero))[0] for e in each]).reshape(len(roles), -1)
    totals = {
        c: {
            "observed": float(obs[c]["met"].sum()),
            "expected": float(exp[c]["met"].sum()),
            "expected_error": float(np.sqrt(var[c]["met"].sum())),
        }
        for c in obs
    }
    return {
        "observed": obs,
        "expected": exp,
        "variance": var,
        "process_expected": per,
        "process_weight": process_weights(output, roles),
        "processes": roles,
        "edges": edges,
        "totals": totals,
    }


def scan_classes(inputs: dict[str, Any], config: ClassHuntConfig) -> Any:
    """MUSiC's scan of every class with an expectation of at least ``min_yield`` or an observed event."""
    from cms_anomaly.stats import StatisticsError
    from cms_anomaly.stats.classes import class_scan

    t = inputs["totals"]
    scanned = [c for c in t if t[c]["expected"] >= config.min_yield or t[c]["observed"] > 0]
    if not scanned:
        raise ClassHuntError(f"no class matches {list(config.classes) or 'any pattern'} with data or simulation")
    try:
        return class_scan(
            {c: inputs["observed"][c] for c in scanned},
            {c: inputs["expected"][c] for c in scanned},
            {c: inputs["variance"][c] for c in scanned},
            n_pe=config.npe,
            seed=config.seed,
            min_yield=config.min_yield,
            process_expected={c: inputs["process_expected"][c] for c in scanned},
            process_weight=inputs["process_weight"],
            upper_tails=UPPER_TAILS,
        )
    except StatisticsError as err:
        raise ClassHuntError(f"class scan: {err}") from None


def class_rows(scan: Any, inputs: dict[str, Any]) -> list[dict[str, Any]]:
    """The class table, sorted by p-tilde: totals, p, p-tilde, the most significant region (``window_gev``:
    its window in GeV, in -log10 p for the rarity), the region and p-tilde of each distribution (``windows_gev``,
    ``p_tildes``)."""

    def gev(d: str, region: tuple[int, int] | None) -> list[float] | None:
        e = inputs["edges"][d]
        return None if region is None else [float(e[region[0]]), float(e[region[1]])]

    rows = []
    for r in scan.classes:
        region = r.per_distribution[r.distribution]
        window = gev(r.distribution, r.region)
        rows.append(
            {
                "class": r.name,
                **inputs["totals"][r.name],
                "p": r.p,
                "p_tilde": r.p_tilde,
                "distribution": r.distribution,
                "window_gev": window,
                "region_observed": region.observed,
                "region_expected": region.expected,
                "region_expected_error": region.expected_error,
                "region_unsimulated": region.unsimulated,
                "windows_gev": {d: gev(d, x.region) for d, x in r.per_distribution.items()},
                "p_tildes": {d: x.p_tilde for d, x in r.per_distribution.items()},
            }
        )
    return rows


def _joint(output: dict, datasets: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per class of ``class_joint``: (sum of weights, sum of squared weights) over ``datasets``, (S_T, M, MET)
    arrays with each axis's overflow added to its last bin."""

    def fold(a: np.ndarray) -> np.ndarray:
        for axis in range(a.ndim):
            a = np.concatenate(
                [a.take(range(a.shape[axis] - 2), axis), a.take([-2, -1], axis).sum(axis, keepdims=True)], axis
            )
        return a

    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for d in datasets:
        h = output[d]["hists"].get("class_joint")
        if h is None:
            continue
        h = h[{"dataset": sum}]
        for c in h.axes["event_class"]:
            v = h[{"event_class": c}]
            w, w2 = fold(v.values(flow=True)), fold(v.variances(flow=True))
            old = out.get(c)
            out[c] = (w, w2) if old is None else (old[0] + w, old[1] + w2)
    return out


def nplm_classes(output: dict, config: ClassHuntConfig) -> dict[str, Any]:
    """The NPLM test (:func:`~cms_anomaly.stats.nplm.nplm_test`, joint S_T x M x MET in GeV, log coordinates)
    of every selected exclusive class with >= ``nplm_min_events`` observed and expected events, each with its
    own seed (from ``seed`` and the class name); the smallest p and its Sidak correction over the ``k``
    tested (disjoint, independent) classes: ``{"n_toys", "min_events", "tested", "classes": {class: {t, p,
    ...}}, "p_min", "p_global"}``; no class (``tested`` 0, ``p_global`` None) with ``nplm_toys`` 0 or none
    qualifying."""
    from cms_anomaly.stats import StatisticsError
    from cms_anomaly.stats.nplm import nplm_test

    result: dict[str, Any] = {"n_toys": config.nplm_toys, "min_events": config.nplm_min_events, "classes": {}}
    if config.nplm_toys and "exclusive" in config.kinds and "hists" in output.get("data", {}):
        data = _joint(output, ["data"])
        sim = _joint(output, [d for d in output if d != "data" and "hists" in output[d]])
        h = output["data"]["hists"].get("class_joint")
        if h is None:
            raise ClassHuntError("NPLM: the processor output has no class_joint histogram")
        edges = [ax.edges for ax in h.axes[2:]]
        names = [c for c in selected_classes(sorted(set(data) & set(sim)), config) if _kind_of(c) == "exclusive"]
        for c in (n for n in names if min(data[n][0].sum(), sim[n][0].sum()) >= config.nplm_min_events):
            seed = int(np.random.SeedSequence([config.seed, zlib.crc32(c.encode())]).generate_state(1)[0])
            try:
                r = nplm_test(data[c][0], sim[c][0], sim[c][1], edges, n_toys=config.nplm_toys, seed=seed)
            except StatisticsError as err:
                raise ClassHuntError(f"NPLM test of {c}: {err}") from None
            result["classes"][c] = {
                "t": r.t,
                "p": r.p,
                "n_toys": r.n_toys,
                "toy_t_quantiles": {str(q): v for q, v in r.toy_quantiles.items()},
                "observed": r.observed,
                "expected": r.expected,
                "points": r.n_points,
                "moved": r.moved,
                "centres": len(r.centres),
                "width": r.width,
            }
    tested = result["classes"]
    result["tested"] = len(tested)
    p_min = min((v["p"] for v in tested.values()), default=None)
    result["p_min"] = p_min
    result["p_global"] = None if p_min is None else float(1.0 - (1.0 - p_min) ** len(tested))
    return result


# ------------------------------------------------------------------------------------- the job
@dataclass(frozen=True)
class ClassHuntResult:
    summary: Path
    p_global: float
    z_global: float
    #: the class table (:func:`class_rows`), most significant first
    rows: list[dict[str, Any]]
    #: the NPLM tests (:func:`nplm_classes`)
    nplm: dict[str, Any] = field(default_factory=dict)


def run_class_hunt(
    out: str | os.PathLike, config: ClassHuntConfig = ClassHuntConfig(), *, samples_dir: str | os.PathLike | None = None
) -> ClassHuntResult:
    """Run the class hunt into ``out`` (module docstring); the report is in ``out/report``."""
    from cms_anomaly.analyses import hunt_classes_report as report

    out = Path(out)
    lines, total = generation_cost(config)
    print(f"generation (cards x events x s/event, {SECONDS_PER_EVENT_SOURCE}): ~{total / 60:.1f} CPU-min", flush=True)
    print("\n".join(lines), flush=True)
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    simulation, data = make_samples(config, Path(samples_dir) if samples_dir is not None else out / "samples")
    times["samples"] = time.perf_counter() - t0
    lumi = float(data["data"]["metadata"]["lumi_pb"])
    t = time.perf_counter()
    detector: dict[str, Any] = {}
    if config.detector:
        output, detector = detector_passes({**data, **simulation}, out, config, lumi, times)
    else:
        output = class_pass({**data, **simulation}, out / "pass", config, lumi)
    times["pass"] = time.perf_counter() - t
    t = time.perf_counter()
    inputs = class_inputs(output, config)
    scan = scan_classes(inputs, config)
    rows = class_rows(scan, inputs)
    times["scan"] = time.perf_counter() - t
    t = time.perf_counter()
    nplm = nplm_classes(output, config)
    for r in rows:
        r["nplm_p"] = nplm["classes"].get(r["class"], {}).get("p")
    times["nplm"] = time.perf_counter() - t
    meta = {
        "config": asdict(config),
        "lumi_pb": lumi,
        "cocktail": [{"role": r, "card": c, "what": w} for r, c, w in CLASS_COCKTAIL if r in config.roles()],
        "generation_cost_s": total,
        "seconds": times,
        "histograms": str(out / "pass" / "histograms.coffea"),
        "detector": detector,
    }
    summary = report.write(out, output, inputs, scan, rows, meta, config, nplm=nplm)
    return ClassHuntResult(summary=summary, p_global=scan.p_global, z_global=scan.z_global, rows=rows, nplm=nplm)


def class_pass(
    fileset: dict, out: Path, config: ClassHuntConfig, lumi: float, *, features: bool = False, **options: Any
) -> dict:
    """One processor pass of the ``event_classes`` selection into ``out`` (``features``: with the feature
    tables; ``options``: the processor's)."""
    return analysis.processor_pass(
        fileset,
        out=out,
        selection="event_classes",
        lumi_pb=lumi,
        execution=config.execution,
        features=features,
        **options,
    )


def detector_passes(
    fileset: dict, out: Path, config: ClassHuntConfig, lumi: float, times: dict[str, float]
) -> tuple[dict, dict[str, Any]]:
    """The rarity per class (module docstring, step 2): the first pass's feature tables (``out/pass1``),
    ``k_folds`` models trained on the data of every class (``out/models``), and the output of the pass
    that scores every event with them (``out/pass``); with the detector's provenance."""
    from cms_anomaly.analyses import hunt_detectors as kfold
    from cms_anomaly.models.data import read_samples
    from cms_anomaly.models.errors import ModelError

    t = time.perf_counter()
    features = out / "pass1" / "features"
    first = class_pass(fileset, out / "pass1", config, lumi, features=True)
    n_data = list(first.get("data", {}).get("cutflow", {}).get("events", {0: 0}).values())[-1]
    if n_data < analysis.MIN_HUNT_DATA_EVENTS:
        raise ClassHuntError(
            f"only {n_data} data events are in an event class; the detector needs >= {analysis.MIN_HUNT_DATA_EVENTS} "
            f"to train {config.k_folds} models on the data (or run without a model)"
        )
    times["pass1"] = time.perf_counter() - t
    t = time.perf_counter()
    try:
        fs, dropped = kfold.detector_inputs(features, config)
        data = read_samples(features, feature_set=fs, datasets=["data"])["data"]
        if config.detector_per == "class":
            classes = data_classes(features)
            per_class, untrained = kfold.train_class_folds(
                features, out / "models", config, fs, data, classes, min_events=config.class_min_events
            )
            scorer: Any = kfold.class_kfold_scorer(per_class, config)
            models: Any = {c: [str(p) for p in paths] for c, paths in per_class.items()}
            trained: Any = {c: int((classes == c).sum()) for c in per_class}
        else:
            paths = kfold.train_folds(features, out / "models", config, fs, data=data)
            scorer, models, trained = kfold.kfold_scorer(paths, config), [str(p) for p in paths], n_data
            untrained = {}
    except (kfold.HuntError, ModelError) as err:
        raise ClassHuntError(f"detector: {err}") from None
    times["training"] = time.perf_counter() - t
    t = time.perf_counter()
    output = class_pass(fileset, out / "pass", config, lumi, scorers={KFOLD_SCORER: scorer})
    times["pass2"] = time.perf_counter() - t
    info = {
        "model": config.model,
        "detector_per": config.detector_per,
        "k_folds": config.k_folds,
        "trained_on": trained,
        "feature_set": fs.name,
        "features": list(fs.columns),
        "dropped_features": dropped,
        "models": models,
        "untrained_classes": untrained,
    }
    return output, info


def data_classes(features_dir: Path, dataset: str = "data") -> np.ndarray:
    """Each event's exclusive class (``""``: none) of ``dataset``'s feature tables in ``features_dir``, from its
    class-object counts and MET (the processor's default selection settings), in the tables' row order."""
    from cms_anomaly.models.data import read_samples
    from cms_anomaly.models.feature_sets import FeatureSet
    from cms_anomaly.processors.config import AnalysisConfig
    from cms_anomaly.processors.eventclass import exclusive_names
    from cms_anomaly.processors.feature_spec import CLASS_COUNTS

    columns = (*CLASS_COUNTS, "met")
    x = read_samples(features_dir, feature_set=FeatureSet("class_of", columns, len(columns)), datasets=[dataset])
    ids = x[dataset].x
    selections = AnalysisConfig().selections
    return exclusive_names(ids[:, :-1].astype(np.int64), ids[:, -1] > selections.class_met_min, selections)


#: where :data:`SECONDS_PER_EVENT` comes from, as printed
SECONDS_PER_EVENT_SOURCE = (
    "per-card s/event measured with production.produce on 2 cores: hunt_classes.SECONDS_PER_EVENT"
)


def add_class_arguments(parser: Any) -> None:
    """``--classes``, ``--nplm-toys`` and ``--nplm-min-events`` of ``cms-anomaly hunt --selection event_classes``."""
    from cms_anomaly.core.argtypes import non_negative_float, non_negative_int

    parser.add_argument(
        "--classes",
        nargs="+",
        default=None,
        metavar="PATTERN",
        help="event_classes: fnmatch patterns of the classes scanned",
    )
    parser.add_argument(
        "--detector-per",
        choices=tuple(DETECTOR_PER),
        default=ClassHuntConfig.detector_per,
        help="event_classes with --model: " + "; ".join(f"{k}: {v}" for k, v in DETECTOR_PER.items()),
    )
    parser.add_argument(
        "--nplm-toys",
        type=non_negative_int,
        default=ClassHuntConfig.nplm_toys,
        help="event_classes: pseudo-datasets of each exclusive class's NPLM test (0: none)",
    )
    parser.add_argument(
        "--nplm-min-events",
        type=non_negative_float,
        default=ClassHuntConfig.nplm_min_events,
        help="event_classes: the fewest observed and expected events of a class the NPLM test runs on",
    )


def config_from_args(args: Any) -> ClassHuntConfig:
    """The :class:`ClassHuntConfig` of ``cms-anomaly hunt --selection event_classes`` options."""
    config = ClassHuntConfig(
        data_fileset=args.data_fileset,
        seed=args.seed,
        inject=args.inject,
        signal_fraction=args.signal_fraction if args.inject else 0.0,
        classes=tuple(args.classes or ()),
        npe=args.npe,
        model=args.model or "none",
        detector_per=args.detector_per,
        k_folds=args.k_folds,
        epochs=args.epochs,
        device=args.device,
        nplm_toys=args.nplm_toys,
        nplm_min_events=args.nplm_min_events,
        execution=replace(analysis.execution_from(args), skip_bad_files=args.skip_bad_files),
    )
    return config.scaled(args.events)


def run_from_args(args: Any) -> int:
    """``cms-anomaly hunt --selection event_classes``: run and print the report."""
    try:
        result = run_class_hunt(args.out, config_from_args(args), samples_dir=args.samples)
    except ClassHuntError as err:
        raise SystemExit(f"cms-anomaly hunt: {err}") from None
    return analysis.print_report(result.summary)
