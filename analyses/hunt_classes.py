"""The hunt over every final state (``cms-anomaly hunt --selection event_classes``), as CMS MUSiC does it.

1. **Samples**: the background model is an SM cocktail (:data:`CLASS_COCKTAIL`) generated at the data's
   sqrt(s), normalised to the data's luminosity by cross section; the data are a fileset of real data or
   pseudo-data mixed from an independent production of the same cocktail, optionally with a BSM card
   hidden in it (:func:`~cms_anomaly.analyses.samples.make_samples`). The generation cost is printed before
   it starts (:func:`generation_cost`).
2. **One processor pass** with the ``event_classes`` selection fills every class's S_T, M (M_T with MET)
   and MET histograms (:mod:`~cms_anomaly.processors.eventclass`).
3. **Per class**: observed and expected events (+- the simulation's statistical error, sqrt(sum w^2)) and
   MUSiC's scan of each distribution (:func:`~cms_anomaly.stats.class_scan`): the region of interest, its
   local p, the class's p-tilde and one global p-value of the whole procedure from one set of
   pseudo-experiments. ``classes`` (fnmatch patterns) chooses the classes scanned.
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
#: the distributions scanned: (name in the class scan, the processor's class histogram)
DISTRIBUTIONS: dict[str, str] = {"st": "class_st", "mass": "class_mass", "met": "class_met"}
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
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for d in datasets:
        h = output[d]["hists"].get(hname)
        if h is None:
            continue
        h = h[{"dataset": sum}]
        for c in h.axes["event_class"]:
            v = h[{"event_class": c}]
            w, w2 = (np.add.reduceat(a, np.arange(0, a.size, rebin)) for a in (v.values(), v.variances()))
            old = out.get(c)
            out[c] = (w, w2) if old is None else (old[0] + w, old[1] + w2)
    return out


def class_inputs(output: dict, config: ClassHuntConfig) -> dict[str, Any]:
    """Observed counts, expected yields and their variances per scanned class and distribution, the
    bin edges (GeV) of each distribution, and every class's totals (observed, expected, error)."""
    roles = [d for d in output if d != "data" and "hists" in output[d]]
    if "hists" not in output.get("data", {}):
        raise ClassHuntError("no data event was read")
    obs, exp, var, edges = {}, {}, {}, {}
    for dist, hname in DISTRIBUTIONS.items():
        data, sim = _sums(output, ["data"], hname, config.rebin), _sums(output, roles, hname, config.rebin)
        axis = output["data"]["hists"][hname].axes[-1]
        edges[dist] = np.append(axis.edges[: -1 : config.rebin], axis.edges[-1])
        for c in selected_classes(sorted(set(data) | set(sim)), config):
            zero = np.zeros(len(edges[dist]) - 1)
            obs.setdefault(c, {})[dist] = data.get(c, (zero, zero))[0]
            exp.setdefault(c, {})[dist] = sim.get(c, (zero, zero))[0]
            var.setdefault(c, {})[dist] = sim.get(c, (zero, zero))[1]
    totals = {
        c: {
            "observed": float(obs[c]["met"].sum()),
            "expected": float(exp[c]["met"].sum()),
            "expected_error": float(np.sqrt(var[c]["met"].sum())),
        }
        for c in obs
    }
    return {"observed": obs, "expected": exp, "variance": var, "edges": edges, "totals": totals}


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
        )
    except StatisticsError as err:
        raise ClassHuntError(f"class scan: {err}") from None


def class_rows(scan: Any, inputs: dict[str, Any]) -> list[dict[str, Any]]:
    """The class table, sorted by p-tilde: totals, p, p-tilde, the most significant region in GeV and the
    region of each distribution (``windows_gev``)."""

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
                "windows_gev": {d: gev(d, x.region) for d, x in r.per_distribution.items()},
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
    output = analysis.processor_pass(
        {**data, **simulation},
        out=out / "pass",
        selection="event_classes",
        lumi_pb=lumi,
        execution=config.execution,
        features=False,
    )
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
    }
    summary = report.write(out, output, inputs, scan, rows, meta, config, nplm=nplm)
    return ClassHuntResult(summary=summary, p_global=scan.p_global, z_global=scan.z_global, rows=rows, nplm=nplm)


#: where :data:`SECONDS_PER_EVENT` comes from, as printed
SECONDS_PER_EVENT_SOURCE = (
    "per-card s/event measured with production.produce on 2 cores: hunt_classes.SECONDS_PER_EVENT"
)


def add_nplm_arguments(parser: Any) -> None:
    """``--nplm-toys`` and ``--nplm-min-events`` of ``cms-anomaly hunt --selection event_classes``."""
    from cms_anomaly.core.argtypes import non_negative_float, non_negative_int

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
