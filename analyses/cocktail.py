"""The single-lepton SM cocktail and the four BSM benchmarks of Cerri et al. (seed 004), shared by
the VAE trigger study (``cms-anomaly trigger``), the DisCo ABCD study (``cms-anomaly disco``;
Mikuni et al. use the same samples, ADC2021) and, with its heavy benchmarks, the RMM outlier study
(``cms-anomaly outlier``). :func:`feature_tables` also serves the dijet hunt's own production.

One production (``generate`` of W, Z, ttbar, heavy-flavour QCD and A->4l, LQ->b tau, h0->tau tau,
h+- ->tau nu) and one processor pass with the ``single_lepton`` selection writing the feature tables.
Both are reused when a command is rerun with the same sizes and seed, and both commands share them
when they point at the same ``--samples`` directory.

**Composition.** Cerri et al. (sec. 2) quote the SM cocktail after the single-lepton selection as
W 59.2 %, QCD 33.8 %, Z 6.7 %, ttbar 0.3 %. Our QCD is a heavy-flavour, lepton-filtered Pythia sample
(inclusive QCD passes the filter 0.17 % of the time) and its cross section after the selection is not
the paper's; with ``composition="paper"`` each SM process is reweighted so that its share of the SM
rate after the selection is the paper's while the total SM rate (the sum of sigma x efficiency of
our samples) is kept. ``composition="generated"`` keeps Pythia's cross sections, and
``"unweighted"`` treats the generated events as one sample of unit-weight events. Training always
uses the generated events unweighted (the paper's fractions would leave a few hundred QCD events
duplicated hundreds of times); every efficiency, threshold and rate uses the weights.

**Tail weighting** (``tail_bias``, ``--tail-bias``): QCD and ttbar are generated with their cards'
phase-space bias, so their events carry generator weights. Training then draws each process's events
in proportion to them (:class:`~cms_anomaly.models.data.Sample` ``draw_weight``), and thresholds count
the effective events above them. It pays where the score tail is made of hard (high-pTHat) events;
the single-lepton stream's QCD tail is not (measured in ``docs/analyses/trigger.md``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from cms_anomaly.analyses.analysis import (
    Execution,
    add_production_arguments,
    execution_from,
    json_default,
    processor_pass,
)

log = logging.getLogger(__name__)

SM_PROCESSES = ("wjets", "qcd", "zjets", "ttbar")
#: plot legend label of each BSM benchmark (matplotlib mathtext)
SIGNAL_LABELS = {
    "ato4l": r"A$\to$4$\ell$",
    "lq_btau": r"LQ$\to$b$\tau$",
    "h0_tautau": r"h$^0\to\tau\tau$",
    "hplus_taunu": r"h$^\pm\to\tau\nu$",
}
#: share of each SM process after the single-lepton selection (Cerri et al. sec. 2)
PAPER_FRACTIONS = {"wjets": 0.592, "qcd": 0.338, "zjets": 0.067, "ttbar": 0.003}
#: the processor's luminosity for the feature tables: weights then sum to sigma x efficiency in pb
UNIT_LUMI_PB = 1.0


class CocktailError(RuntimeError):
    """The samples cannot be made or read; the message says which step and why."""


@dataclass(frozen=True)
class CocktailConfig:
    """Sizes of the production (events per process) and how it runs."""

    events: dict[str, int] = field(
        default_factory=lambda: {
            "wjets": 12000,
            "zjets": 6000,
            "ttbar": 3000,
            "qcd": 3000,
            "ato4l": 3000,
            "lq_btau": 3000,
            "h0_tautau": 3000,
            # every production mode: 16 % of h+- events have a lepton above 23 GeV (docs/analyses/trigger.md), so
            # 3000 events give about as many selected ones as the other benchmarks
            "hplus_taunu": 3000,
        }
    )
    seed: int = 1
    execution: Execution = Execution()
    #: generate the processes whose card has a [bias] table tail-weighted (``generate --tail-bias``)
    tail_bias: bool = False

    def scaled(self, factor: float) -> CocktailConfig:
        """The same production with ``factor`` times the events (at least 1 per process)."""
        return replace(self, events={k: max(1, round(v * factor)) for k, v in self.events.items()})


def produce_samples(samples_dir: str | Path, config: CocktailConfig) -> dict:
    """Generate (or resume) the production; returns its coffea fileset (datasets = process names)."""
    from cms_anomaly.datasets import production

    result = production.produce(
        list(config.events),
        out=samples_dir,
        events=dict(config.events),
        seed=config.seed,
        executor=config.execution.production_executor,
        scheduler=config.execution.scheduler,
        workers=config.execution.workers,
        tail_bias=config.tail_bias,
    )
    return {name: result["datasets"][name] for name in config.events}


def pass_key(fileset: dict) -> dict[str, object]:
    """What a cached processor pass must match to be reused: every file with its size and modification
    time (a regenerated file has new ones), the event counts, the feature columns and the table version."""
    from cms_anomaly.processors.feature_io import FEATURE_TABLE_VERSION
    from cms_anomaly.processors.feature_spec import ARRAY_FEATURES, SCALAR_FEATURES

    def identity(path: str) -> list[object]:
        st = Path(path).stat()
        return [path, st.st_size, st.st_mtime_ns]

    key: dict[str, object] = {
        name: {"files": sorted(identity(f) for f in entry["files"]), "nevents": entry["metadata"].get("nevents")}
        for name, entry in sorted(fileset.items())
    }
    key["_columns"] = [*SCALAR_FEATURES, *ARRAY_FEATURES]
    key["_version"] = FEATURE_TABLE_VERSION
    return key


def feature_tables(
    samples_dir: str | Path, config: CocktailConfig, *, selection: str = "single_lepton"
) -> tuple[Path, dict]:
    """The feature tables of the production after ``selection``; returns (features dir, fileset).

    The pass is skipped when ``<samples_dir>/<selection>/pass.json`` records the same fileset
    (files with their sizes and modification times, event counts) and table layout: a second
    analysis command on the same samples reads the tables; regenerated files are processed again.
    """
    from cms_anomaly.core.atomic import write_text_atomic

    fileset = produce_samples(samples_dir, config)
    out = Path(samples_dir) / selection
    stamp = out / "pass.json"
    key = pass_key(fileset)
    if stamp.is_file() and json.loads(stamp.read_text()).get("fileset") == key and (out / "features").is_dir():
        log.info("reusing the %s feature tables in %s", selection, out)
        return out / "features", fileset
    output = processor_pass(
        fileset, out=out, selection=selection, lumi_pb=UNIT_LUMI_PB, execution=config.execution, features=True
    )
    cutflows = {ds: res["cutflow"] for ds, res in output.items()}
    write_text_atomic(stamp, json.dumps({"fileset": key, "cutflow": cutflows}, indent=1, default=json_default) + "\n")
    return out / "features", fileset


def sm_process_weights(weights: dict[str, np.ndarray], *, composition: str) -> dict[str, np.ndarray]:
    """Per-event SM weights with the requested process composition after the selection.

    ``weights`` maps SM process -> the processor's weights (sigma x efficiency / N in pb at
    :data:`UNIT_LUMI_PB`). ``paper``: scaled so that each process carries :data:`PAPER_FRACTIONS`
    of the total (renormalised over the processes present); ``generated``: unchanged;
    ``unweighted``: every event weight 1 (the generated events as one fixed sample, like ADC2021),
    or, for a tail-weighted production, its generator weight over the process's mean weight.
    """
    if composition == "generated":
        return dict(weights)
    if composition == "unweighted":
        from cms_anomaly.models.data import relative_weights

        return {p: relative_weights(w) for p, w in weights.items()}
    if composition != "paper":
        raise ValueError(f"composition must be 'paper', 'generated' or 'unweighted', got {composition!r}")
    scales = composition_scales({p: float(w.sum()) for p, w in weights.items()}, composition)
    return {p: w * scales[p] for p, w in weights.items()}


def composition_scales(rates: dict[str, float], composition: str) -> dict[str, float]:
    """The factor on each SM process's weights that gives the requested composition (``paper``: each
    process carries its :data:`PAPER_FRACTIONS` share of the unchanged total rate, renormalised over
    the processes present; ``generated``: 1), from the processes' rates after the selection."""
    if composition == "generated":
        return dict.fromkeys(rates, 1.0)
    if composition != "paper":
        raise ValueError(f"composition scales are defined for 'paper' and 'generated', got {composition!r}")
    missing = [p for p in rates if p not in PAPER_FRACTIONS]
    if missing:
        raise CocktailError(f"no paper fraction for SM process(es) {missing}; use composition='generated'")
    total = sum(rates.values())
    norm = sum(PAPER_FRACTIONS[p] for p in rates)
    return {p: PAPER_FRACTIONS[p] / norm * total / r if r > 0 else 0.0 for p, r in rates.items()}


def validation_indices(samples: dict, *, seed: int, val_fraction: float) -> dict[str, np.ndarray]:
    """Per SM dataset, the indices of its events in the validation part that
    :func:`cms_anomaly.models.pipeline.split_cocktail` makes with the same seed (the process label of
    every SM validation event, which the concatenated cocktail drops)."""
    from cms_anomaly.models.data import cocktail_validation_mask

    sm = [name for name, s in samples.items() if not s.is_signal]
    owner = np.concatenate([np.full(len(samples[n]), i) for i, n in enumerate(sm)])
    local = np.concatenate([np.arange(len(samples[n])) for n in sm])
    va = cocktail_validation_mask(samples, val_fraction=val_fraction, seed=seed)
    return {n: local[va & (owner == i)] for i, n in enumerate(sm)}


def add_cocktail_arguments(p: Any, *, default_out: str) -> None:
    """Options every command on the single-lepton cocktail (trigger, disco, outlier) shares."""
    add_production_arguments(
        p,
        default_out=default_out,
        default_samples="out/samples/single-lepton",
        samples_help=", shared by trigger, disco and outlier",
    )
    p.add_argument(
        "--tail-bias",
        action="store_true",
        help="generate the SM processes whose card has a [bias] table (qcd, ttbar) tail-weighted (more effective "
        "events at high pTHat; the isolated-lepton stream gains little, see docs/analyses/trigger.md); use a "
        "--samples directory of its own",
    )


def cocktail_config(args: Any, base: CocktailConfig | None = None) -> CocktailConfig:
    """``base`` (default :class:`CocktailConfig`) with the seed, executor and scale of parsed
    :func:`add_cocktail_arguments` options."""
    return replace(
        base or CocktailConfig(),
        seed=args.seed,
        execution=execution_from(args),
        tail_bias=args.tail_bias,
    ).scaled(args.events)


def reweighted(samples: dict, *, composition: str) -> tuple[dict, dict[str, np.ndarray]]:
    """``samples`` with the SM weights of :func:`sm_process_weights`; also returns those weights."""
    weights = sm_process_weights({n: s.weight for n, s in samples.items() if not s.is_signal}, composition=composition)
    return {n: (replace(s, weight=weights[n]) if n in weights else s) for n, s in samples.items()}, weights


@dataclass(frozen=True)
class CocktailSamples:
    """The production of a cocktail command and its training input: the feature tables after the
    selection, read as one feature set, SM weights in the requested composition."""

    features_dir: Path
    fileset: dict
    samples: dict
    sm_names: list[str]
    signal_names: list[str]
    seconds: float


def cocktail_samples(
    samples_dir: str | Path, config: CocktailConfig, *, feature_set: str, composition: str
) -> CocktailSamples:
    """Produce (or reuse) the cocktail, its ``single_lepton`` feature tables and the training samples
    (:func:`~cms_anomaly.models.data.read_samples` of ``feature_set``, :func:`reweighted`)."""
    import time

    from cms_anomaly.models.data import read_samples
    from cms_anomaly.models.feature_sets import get_feature_set

    t0 = time.perf_counter()
    features_dir, fileset = feature_tables(samples_dir, config)
    seconds = time.perf_counter() - t0
    samples = read_samples(features_dir, feature_set=get_feature_set(feature_set))
    sm_names = [n for n, s in samples.items() if not s.is_signal]
    signal_names = sorted(n for n, s in samples.items() if s.is_signal)
    samples, _ = reweighted(samples, composition=composition)
    return CocktailSamples(features_dir, fileset, samples, sm_names, signal_names, seconds)
