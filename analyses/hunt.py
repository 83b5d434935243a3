"""Hunt mode: an anomaly search on (pseudo-)data without a signal hypothesis (``cms-anomaly hunt``).

``rediscover-top`` asks whether the anomaly selection enriches one known process; the hunt asks
what, if anything, in the data the background model does not describe. Steps (each a function
below; :func:`run_hunt` wires them):

1. **Samples**: the background model (the SM processes of the selection, generated at the data's
   sqrt(s)) and the data: a fileset of real data (``is_data`` datasets with ``lumi_pb``), or
   pseudo-data mixed from a second SM production, optionally with a BSM card injected at a given
   share of the events (:mod:`~cms_anomaly.datasets.mixture`; the labels are kept apart and only
   validate the result).
2. **First processor pass**: feature tables and histograms of every dataset.
3. **Background-model check** before any anomaly selection: data vs simulation per feature
   (normalisation, chi^2/ndf and p-value with sparse bins merged, :func:`~cms_anomaly.stats.compare_counts`),
   ranked; a warning (and exit status 3 with ``--strict``) when the model does not describe the data.
   A k-fold classifier of data against simulation on the detector's inputs
   (:func:`~cms_anomaly.models.datasim.classify_data_vs_simulation`): its AUC and the features that
   drive it; a warning above :attr:`HuntConfig.auc_threshold`.
4. **k-fold detectors trained on the data**: model ``i`` is trained on the events outside fold ``i``
   (:class:`~cms_anomaly.processors.folds.KFold`, by event identity) and scores fold ``i`` only,
   so no event is scored by a model that saw it. Each model's score is calibrated to
   ``rarity = -log10 p`` (p: the fraction of its own validation events scoring as high), which puts
   the k models on one scale (:class:`~cms_anomaly.models.scorers.KFoldScorer`).
5. **Second processor pass** with the k-fold ensemble applied through ``coffea.ml_tools``: rarity
   against the ASTF variables, the event-level features and the invariant masses of the leading
   object pairs, and the list of the highest-rarity events. Every number below is read off it.
6. **Anomaly selections** keeping alpha of the data, for several alphas: yield over the background
   model (the simulation normalised to the data before the anomaly selection: the hunt looks for
   what the selection does differently in data; the normalisation itself is tested in step 3);
   the features ranked by the discrepancy of their anomaly-selection transfer function (data's
   ASTF against the simulation's, as a chi^2 of the selected data against the data before the
   selection times the simulation's ASTF); a window scan of every mass in every selection, with
   the global significance from pseudo-experiments drawn from the background model
   (:func:`~cms_anomaly.stats.scan`). A selection is quoted (its Z given, its masses scanned) only
   where the folds' validation events calibrate its alpha (:func:`~cms_anomaly.stats.calibratable`)
   and the simulation passes it not far more often than alpha (:func:`~cms_anomaly.stats.acceptance_check`).
7. **Report**: one paragraph saying what was found, the event list (CSV, parquet, HTML), tables and
   plots in ``OUT/report``.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from cms_anomaly.analyses import analysis
from cms_anomaly.analyses.analysis import Execution, fmt
from cms_anomaly.analyses.rediscovery import PROCESSES, ROLE_LABELS
from cms_anomaly.datasets.argtypes import fraction, non_negative_float, positive_float, positive_int
from cms_anomaly.processors.feature_spec import HLF_NANO
from cms_anomaly.processors.runner import EXECUTORS

log = logging.getLogger(__name__)

#: detectors the hunt can train, and the output each uses (ALAD: the L1 score of Knapp et al.; None: the
#: first, e.g. the double AE's R1, the loss of the autoencoder that the DisCo term decorrelates from R2)
MODELS: dict[str, str | None] = {"alad": "l1", "ae": None, "vae": None, "double-ae": None}
#: event-level features histogrammed against the rarity (the ASTF variables first)
EVENT_FEATURES: tuple[str, ...] = ("ht", "m_jets", "n_jets", "n_bjets", "met", "mt", "pt_lep", "n_mu", "n_ele", "st")
#: invariant masses of the leading object pairs (jets, b-jets, muons, electrons) scanned for bumps
MASS_FEATURES: tuple[str, ...] = (
    "m_j_j",
    "m_j_b",
    "m_b_b",
    "m_j_mu",
    "m_b_mu",
    "m_mu_mu",
    "m_j_e",
    "m_b_e",
    "m_mu_e",
    "m_e_e",
)
#: model inputs checked data vs simulation before any anomaly selection (with the masses): those of
#: HLF_NANO, which standard NanoAOD (collision data) carries, less the charged and neutral isolation and
#: IsEle, plus S_T and m_jj; a feature whose needs a dataset does not meet is left out of the check
#: (:func:`background_check`)
CHECK_FEATURES: tuple[str, ...] = (
    *(name for name in HLF_NANO if name not in ("iso_ch", "iso_neu", "is_ele")),
    "st",
    "mjj",
)
MIN_DATA_EVENTS = analysis.MIN_HUNT_DATA_EVENTS
KFOLD_SCORER = "kfold"
KFOLD_OUTPUT = "rarity"


class HuntError(RuntimeError):
    """The hunt cannot go on; the message says which step and why."""


@dataclass(frozen=True)
class HuntConfig:
    """Settings of :func:`run_hunt` (defaults: ~15 min on 2 cores with generation, 3 min without).

    ``events``: generated events per background process in each production (the simulation, and the
    pseudo-data pool when no ``data_fileset`` is given): those of ``rediscover-top``.
    """

    data_fileset: str | None = None
    events: dict[str, int] = field(default_factory=lambda: {"wjets": 40000, "zjets": 5000, "ttbar": 3750})
    #: ttbar cross section in units of Pythia's, as in ``rediscover-top`` (Pythia's LO W+jets is several
    #: times below CMS's; 0.1 keeps ttbar near its measured share of the muon + jets sample)
    ttbar_scale: float = 0.1
    #: seed of the simulation production (default ``seed + 1000``): one simulation for many pseudo-data seeds
    simulation_seed: int | None = None
    #: a BSM card injected into the pseudo-data (not with ``data_fileset``)
    inject: str | None = None
    #: the injected process's share of the pseudo-data events (before any selection)
    signal_fraction: float = 0.0
    model: str = "alad"
    k_folds: int = 3
    alphas: tuple[float, ...] = (0.1, 0.01, 0.001)
    #: the selection whose feature ranking and plots lead the report (the most significant if None)
    alpha: float | None = None
    top_events: int = 100
    #: pseudo-experiments of the global significance (no exceedance: a lower limit of 3.5 sigma at 5000)
    npe: int = 5000
    mass_widths: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)
    epochs: int = 60
    seed: int = 1
    device: str = "auto"
    selection: str = "top_rediscovery"
    #: the detector's inputs: None for HLF_NANO (Knapp et al.'s muon + jets features as standard
    #: NanoAOD, i.e. collision data, has them), or the ADC object array (MET, 4 e, 4 mu, 10 jets x pT,
    #: eta, phi) for the double AE, which is built for it
    feature_set: str | None = None
    #: the background model "does not describe the data" if the normalisation is off by more than this
    #: (a luminosity and cross-section uncertainty) and by > 3 sigma statistically, or if a shape
    #: p-value is below ``shape_p_value / features`` (Bonferroni)
    norm_tolerance: float = 0.25
    shape_p_value: float = 0.01
    #: the data-vs-simulation classifier's AUC above which the report warns that the simulation does not
    #: describe the data: a process hidden at a share f of the data raises the AUC by at most f / 2, so
    #: 0.6 needs a fifth of the data to look unlike the simulation (a mismodelling, not a hidden process)
    auc_threshold: float = 0.6
    #: no significance is quoted at an alpha whose simulated acceptance is, at 3 sigma, above this many
    #: times alpha (the detector separates simulation from data; ``stats.ACCEPTANCE_TOLERANCE``)
    acceptance_tolerance: float = 2.0
    #: validation events of each fold that must lie above a selection's threshold for the rarity to
    #: calibrate it (``stats.MIN_CALIBRATION_COUNT``: their count's Poisson error, 45 % at 5)
    min_calibration_count: int = 5
    strict: bool = False
    execution: Execution = field(default_factory=Execution)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise HuntError(f"unknown model {self.model!r}: choose one of {', '.join(MODELS)}")
        if self.k_folds < 2:
            raise HuntError(
                f"k_folds must be >= 2 (each fold scored by a model trained on the others), got {self.k_folds}"
            )
        if not self.alphas or not all(0 < a < 1 for a in self.alphas):
            raise HuntError(f"alphas must be fractions in (0, 1), got {self.alphas}")
        if self.selection != "top_rediscovery":
            raise HuntError(
                f"selection {self.selection!r}: the hunt's background model (the W(mu nu), Z(mu mu) and "
                "ttbar productions of rediscover-top) is built for the top_rediscovery selection"
            )
        if not 0 <= self.signal_fraction < 1:
            raise HuntError(f"signal_fraction must be in [0, 1), got {self.signal_fraction}")
        if not 0.5 < self.auc_threshold < 1:
            raise HuntError(f"auc_threshold must be in (0.5, 1), got {self.auc_threshold}")
        if not self.acceptance_tolerance > 1:
            raise HuntError(f"acceptance_tolerance must be > 1, got {self.acceptance_tolerance}")
        if self.min_calibration_count < 1:
            raise HuntError(f"min_calibration_count must be >= 1, got {self.min_calibration_count}")

    def scaled(self, factor: float) -> HuntConfig:
        """The same hunt with ``factor`` times more generated events."""
        return replace(self, events={k: max(1, round(v * factor)) for k, v in self.events.items()})


@dataclass(frozen=True)
class HuntResult:
    """What :func:`run_hunt` found (the full numbers are in ``summary.json``)."""

    summary: Path
    events: Path
    background_ok: bool
    #: neither the data-vs-simulation classifier nor any calibrated selection's simulated acceptance says
    #: that the simulation is told apart from the data (no :func:`simulation_warnings`)
    simulation_ok: bool
    #: the out-of-fold AUC of the data-vs-simulation classifier
    classifier_auc: float
    #: NaN where no selection is quoted (:func:`analyse`)
    z_local: float
    z_global: float
    p_global: float
    #: the mass, selection and window of the largest local excess
    best: dict[str, Any]
    #: features ranked by the discrepancy of their ASTF (most discrepant first), at the leading alpha
    ranked_features: list[str]
    #: share of each hidden process among the events selected at each alpha (labelled pseudo-data only)
    selected_composition: dict[str, dict[str, float]]
    #: ... and among all the data passing the event selection
    composition: dict[str, float]


# ------------------------------------------------------------------------------------- step 1
def make_samples(config: HuntConfig, samples_dir: Path) -> tuple[dict, dict]:
    """(simulation fileset, data fileset entry): the background model and the (pseudo-)data.

    The productions are those of ``rediscover-top`` (the same cards, sizes and seeds: a
    ``--samples`` directory of that job is reused as it is), with the injected card added.
    """
    from cms_anomaly.analyses.rediscovery import RediscoveryConfig, RediscoveryError
    from cms_anomaly.analyses.rediscovery import make_samples as productions

    if config.data_fileset and config.inject:
        raise HuntError("--inject builds pseudo-data; it cannot be combined with --data-fileset")
    ex = config.execution
    base = RediscoveryConfig(
        events=dict(config.events),
        ttbar_scale=config.ttbar_scale,
        seed=config.seed,
        executor=ex.executor,
        scheduler=ex.scheduler,
        workers=ex.workers,
        data_fileset=config.data_fileset,
    )
    try:
        return productions(
            samples_dir,
            base,
            inject=config.inject,
            signal_fraction=config.signal_fraction,
            simulation_seed=config.simulation_seed,
        )
    except RediscoveryError as err:
        raise HuntError(str(err)) from None


def run_pass(fileset: dict, *, out: Path, config: HuntConfig, lumi_pb: float, **options: Any) -> dict:
    return analysis.processor_pass(
        fileset, out=out, selection=config.selection, lumi_pb=lumi_pb, execution=config.execution, **options
    )


def _simulation_roles(output: dict) -> list[str]:
    return [d for d in output if d != "data"]


# ------------------------------------------------------------------------------------- step 3
def background_check(output: dict, config: HuntConfig) -> dict[str, Any]:
    """Data vs the summed simulation per feature before any anomaly selection, most discrepant first.

    A feature whose needs (:data:`~cms_anomaly.processors.feature_spec.NEEDS`) a dataset does not meet
    is left out (``dropped``: the feature and why): its placeholder in that dataset is no measurement.
    """
    from cms_anomaly.processors.feature_spec import usable_features
    from cms_anomaly.processors.histograms import nominal
    from cms_anomaly.processors.processor import needs_met
    from cms_anomaly.stats import compare_counts

    roles = _simulation_roles(output)
    checked, dropped = usable_features(CHECK_FEATURES, needs_met(output))
    rows = []
    for name in checked:
        found = [output[d]["hists"].get(name) for d in ("data", *roles)]
        if any(h is None for h in found):
            continue
        hists = [nominal(h) for h in found]
        data = hists[0][{"dataset": "data"}]
        n = data.values(flow=True)
        mu = sum(h[{"dataset": r}].values(flow=True) for h, r in zip(hists[1:], roles, strict=True))
        var = sum(h[{"dataset": r}].variances(flow=True) for h, r in zip(hists[1:], roles, strict=True))
        absolute = compare_counts(n, mu, var)
        shape = compare_counts(n, mu, var, normalise=True)
        rows.append(
            {
                "feature": name,
                "n_data": absolute.n_observed,
                "n_simulation": absolute.n_expected,
                "norm_ratio": absolute.norm_ratio,
                "norm_ratio_error": absolute.norm_ratio_error,
                "chi2": absolute.chi2,
                "ndf": absolute.ndf,
                "p_value": absolute.p_value,
                "shape_chi2": shape.chi2,
                "shape_ndf": shape.ndf,
                "shape_p_value": shape.p_value,
            }
        )
    if not rows:
        raise HuntError("the first pass has no feature histogram for data and simulation")
    rows.sort(key=lambda r: (r["shape_p_value"] if np.isfinite(r["shape_p_value"]) else 1.0, r["feature"]))
    first = rows[0]
    ratio, err = first["norm_ratio"], first["norm_ratio_error"]  # every feature has the same totals
    norm_bad = bool(abs(ratio - 1.0) > config.norm_tolerance and abs(ratio - 1.0) > 3.0 * err)
    cut = config.shape_p_value / len(rows)
    shape_bad = [r["feature"] for r in rows if np.isfinite(r["shape_p_value"]) and r["shape_p_value"] < cut]
    problems = []
    if norm_bad:
        problems.append(
            f"the simulation predicts {first['n_simulation']:.4g} events where the data have "
            f"{first['n_data']:.0f} (data / simulation = {ratio:.3g} +- {err:.2g})"
        )
    if shape_bad:
        problems.append(
            f"{len(shape_bad)} of {len(rows)} feature shapes disagree at p < {cut:.2g} "
            f"({', '.join(shape_bad[:6])}{', ...' if len(shape_bad) > 6 else ''})"
        )
    return {
        "features": rows,
        "norm_ratio": ratio,
        "norm_ratio_error": err,
        "shape_p_value_cut": cut,
        "ok": not problems,
        "problems": problems,
        "dropped": dropped,
    }


def simulation_classifier(features_dir: Path, config: HuntConfig, feature_set: Any = None) -> dict[str, Any]:
    """A k-fold classifier of the data against the simulation on the detector's inputs (``feature_set``,
    default :func:`detector_inputs`), before any anomaly selection
    (:func:`~cms_anomaly.models.datasim.classify_data_vs_simulation`): its AUC, the features that drive
    it, and whether it is above :attr:`HuntConfig.auc_threshold`."""
    from cms_anomaly.models.data import list_datasets, read_samples
    from cms_anomaly.models.datasim import classify_data_vs_simulation
    from cms_anomaly.models.errors import TrainingError

    fs = feature_set if feature_set is not None else detector_inputs(features_dir, config)[0]
    samples = read_samples(features_dir, feature_set=fs)  # the datasets with events
    if "data" not in samples:
        raise HuntError(f"{features_dir}: no data feature table for the data-vs-simulation classifier")
    roles = [d for d in list_datasets(features_dir) if d != "data" and d in samples]
    if not roles:
        raise HuntError(f"{features_dir}: no simulated feature table for the data-vs-simulation classifier")
    names = (
        [f"{c}[{i}]" for c in fs.columns for i in range(fs.width // len(fs.columns))]
        if fs.is_array
        else list(fs.columns)
    )
    data = samples["data"]
    try:
        r = classify_data_vs_simulation(
            data.x,
            data.weight,
            np.concatenate([samples[d].x for d in roles]),
            np.concatenate([samples[d].weight for d in roles]),
            feature_names=names,
            k_folds=config.k_folds,
            seed=config.seed,
        )
    except TrainingError as err:
        raise HuntError(f"data-vs-simulation classifier on {features_dir}: {err}") from None
    return {
        **asdict(r),
        "feature_set": fs.name,
        "simulation": roles,
        "threshold": config.auc_threshold,
        "separates": bool(r.auc > config.auc_threshold),
    }


# ------------------------------------------------------------------------------------- step 4
def detector_inputs(features_dir: Path, config: HuntConfig) -> tuple[Any, dict[str, str]]:
    """The detector's feature set (:func:`inputs`) without the features a dataset of the job (the data
    or a simulated process) cannot compute, and the dropped ones with the reason."""
    from cms_anomaly.models.errors import ModelError
    from cms_anomaly.models.pipeline import feature_set_for_job

    try:
        return feature_set_for_job(inputs(config), features_dir=features_dir, datasets=None)
    except ModelError as err:
        raise HuntError(f"detector inputs: {err}") from None


def train_folds(features_dir: Path, out: Path, config: HuntConfig, feature_set: Any = None) -> list[Path]:
    """k models, model i trained on the data outside fold i, each with its calibration file.

    ``feature_set``: the checked inputs (default :func:`detector_inputs`): no model trains on a feature
    a dataset of the job lacks.
    """
    from cms_anomaly.models.data import read_samples, validation_mask
    from cms_anomaly.models.pipeline import TrainOptions, train_and_export
    from cms_anomaly.models.scorers import load_scorer, write_calibration
    from cms_anomaly.processors.folds import KFold

    if config.model not in MODELS:
        raise HuntError(f"unknown model {config.model!r}: choose one of {', '.join(MODELS)}")
    fs = feature_set if feature_set is not None else detector_inputs(features_dir, config)[0]
    data = read_samples(features_dir, feature_set=fs, datasets=["data"])["data"]
    if data.run is None or data.event is None:
        raise HuntError(f"{features_dir / 'data'}: the feature tables have no run/event columns for the folds")
    folds = KFold(config.k_folds, config.seed).fold(data.run, data.event)
    paths = []
    for i in range(config.k_folds):
        train = data.subset(folds != i)
        options = TrainOptions(epochs=config.epochs, seed=config.seed + i, device=config.device, progress=False)
        trained = train_and_export(
            config.model,
            features_dir=features_dir,
            out_dir=out / f"fold{i}",
            feature_set=fs,
            options=options,
            samples={"data": train},
            name=f"{config.model.replace('-', '_')}_fold{i}",
        )
        wanted = MODELS[config.model]
        by_score = {p.stem.rsplit("_", 1)[-1]: p for p in trained.paths}
        path = by_score.get(wanted, trained.paths[0]) if wanted else trained.paths[0]
        # calibration on the model's own validation events (early stopping only, no gradient step)
        val = train.subset(validation_mask(train, val_fraction=options.val_fraction, seed=options.seed))
        scores = np.asarray(load_scorer(path).numpy_call(val.x), dtype=np.float64).reshape(len(val), -1)[:, 0]
        write_calibration(path, scores)
        paths.append(path)
        log.info("fold %d: %s trained on %d events, calibrated on %d", i, path.name, len(train), len(val))
    return paths


def inputs(config: HuntConfig) -> str:
    """The feature set the hunt's detector reads (see :attr:`HuntConfig.feature_set`)."""
    return config.feature_set or ("objects" if config.model == "double-ae" else "hlf_nano")


# ------------------------------------------------------------------------------------- step 6
def _interval_sums(value: np.ndarray, bounds: list[int]) -> np.ndarray:
    """Sum the score axis (axis 0, flow included) into the disjoint intervals [b_j, b_j+1), last open."""
    edges = [*bounds, value.shape[0]]
    return np.stack([value[a:b].sum(axis=0) for a, b in itertools.pairwise(edges)])


def _bin_range(h: Any, name: str, k: int) -> tuple[float, float]:
    """The value range of flow-inclusive bin ``k`` of axis ``name``."""
    edges = h.axes[name].edges
    lo = -np.inf if k == 0 else edges[k - 1]
    hi = np.inf if k >= len(edges) else edges[k]
    return float(lo), float(hi)


def _not_quoted(alpha: float, calibrated: bool, acceptance: dict[str, Any], n_validation: list[int], need: int) -> str:
    """Why no significance is quoted at ``alpha`` ('' when it is)."""
    if not calibrated:
        return (
            f"alpha = {alpha:g} cannot be calibrated with {len(n_validation)} folds of ~{round(np.mean(n_validation))} "
            f"validation events (needs >= {need} per fold)"
        )
    if acceptance["separates"]:
        return (
            f"the detector separates simulation from data (simulated acceptance {acceptance['acceptance']:.2f} "
            f"at alpha {alpha:g})"
        )
    return ""


def analyse(output: dict[str, Any], *, config: HuntConfig, n_validation: list[int]) -> dict[str, Any]:
    """Selections, feature ranking, mass scan and significance from the second pass's histograms.

    ``n_validation``: the validation (calibration) events of each fold's detector. A selection is
    quoted (it enters the mass scan and its local Z is given) only where the folds can calibrate its
    alpha and the simulation passes it not far more often than the data
    (:func:`~cms_anomaly.stats.calibratable`, :func:`~cms_anomaly.stats.acceptance_check`).
    """
    from cms_anomaly.analyses.scorehists import ScoreHists
    from cms_anomaly.stats import (
        acceptance_check,
        astf_comparison,
        calibratable,
        min_validation_events,
        scan,
        threshold_bin_at_efficiency,
        z_bi,
    )

    sh = ScoreHists(output, KFOLD_SCORER, KFOLD_OUTPUT)
    roles = _simulation_roles(output)
    data_w, _ = sh.score_sums("data")
    n_data = float(data_w.sum())
    if n_data <= 0:
        raise HuntError("no data event passes the selection")
    mc_w = np.sum([sh.score_sums(r)[0] for r in roles], axis=0)
    mc_w2 = np.sum([sh.score_sums(r)[1] for r in roles], axis=0)
    if mc_w.sum() <= 0:
        raise HuntError(
            f"no simulated event of {', '.join(roles)} passes the {config.selection} selection: "
            "generate more (--events)"
        )
    # normalised to the data before the anomaly selection (see the module docstring)
    norm = n_data / float(mc_w.sum())
    unit = max(float(mc_w2.sum() / mc_w.sum()), 1e-12) * norm  # the weight of one simulated event, normalised
    alphas = sorted(config.alphas, reverse=True)
    bounds = [threshold_bin_at_efficiency(data_w, efficiency=a) for a in alphas]
    labelled = [p for p in sh.processes("data") if p != "data"]

    per_process = {p: sh.score_sums("data", processes=[p])[0] for p in labelled}  # hidden labels (validation)
    composition_all = {p: float(w.sum() / n_data) for p, w in per_process.items()}
    selections = []
    for a, k in zip(alphas, bounds, strict=True):
        n, b, v = float(data_w[k:].sum()), float(mc_w[k:].sum()) * norm, float(mc_w2[k:].sum()) * norm**2
        need = min_validation_events(a, min_count=config.min_calibration_count)
        calibrated = calibratable(a, n_validation, min_count=config.min_calibration_count)
        accepted = asdict(
            acceptance_check(
                float(mc_w[k:].sum()), float(mc_w.sum()), float(mc_w2.sum()), a, tolerance=config.acceptance_tolerance
            )
        )
        reason = _not_quoted(a, calibrated, accepted, n_validation, need)
        row = {
            "alpha": a,
            "first_bin": k,
            "threshold": sh.threshold(k),
            "observed": n,
            "expected": b,
            "expected_error": float(np.sqrt(v)),
            "z_local": None if reason else float(z_bi(n, b, v, unit_weight=unit)),
            "data_fraction": n / n_data,
            "calibratable": calibrated,
            "min_validation_events": need,
            "acceptance": accepted,
            "quoted": not reason,
            "not_quoted": reason,
        }
        if labelled:
            row["composition"] = {p: float(w[k:].sum() / n) if n else 0.0 for p, w in per_process.items()}
        selections.append(row)

    cache: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def summed(feature: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(data sum w, simulation sum w, simulation sum w^2) over (score, feature), flow bins included."""
        if feature not in cache:
            sims = [sh.sums(r, feature) for r in roles]
            cache[feature] = (sh.sums("data", feature)[0], sum(x[0] for x in sims), sum(x[1] for x in sims))
        return cache[feature]

    # the mass scan: every mass x quoted selection x window, global significance from pseudo-experiments
    quoted = [(a, k) for a, k, row in zip(alphas, bounds, selections, strict=True) if row["quoted"]]
    scanned = [a for a, _ in quoted]
    scan_result: dict[str, Any] = {
        "alphas": scanned,
        "best": None,
        "z_local": None,
        "p_global": None,
        "z_global": None,
        "z_global_is_lower_limit": False,
        "npe": 0,
        "tests": 0,
        "per_variable": [],
    }
    if quoted:
        q_bounds = [k for _, k in quoted]
        obs, exp, var = {}, {}, {}
        for m in MASS_FEATURES:
            d_val, b_val, b_var = summed(m)  # in-range mass bins below (no pair: underflow)
            obs[m] = _interval_sums(d_val, q_bounds)[:, 1:-1]
            exp[m] = _interval_sums(b_val, q_bounds)[:, 1:-1] * norm
            var[m] = _interval_sums(b_var, q_bounds)[:, 1:-1] * norm**2
        result = scan(obs, exp, var, unit_weight=unit, widths=config.mass_widths, npe=config.npe, seed=config.seed)
        h_mass = sh.histogram("data", result.variable)
        edges = h_mass.axes[result.variable].edges
        scans = [
            {
                "variable": var_name,
                "alpha": scanned[j],
                "z_local": r["z_local"],
                "observed": r["observed"],
                "expected": r["expected"],
                "window_gev": [float(edges[r["window"][0]]), float(edges[min(r["window"][1], len(edges) - 1)])],
            }
            for (var_name, j), r in result.best_per_test.items()
        ]
        scans.sort(key=lambda r: -r["z_local"])
        scan_result.update(
            best={
                "variable": result.variable,
                "alpha": scanned[result.selection],
                "window_gev": [float(edges[result.window[0]]), float(edges[result.window[1]])],
                "whole_range": result.window == (0, len(edges) - 1),
                "observed": result.observed,
                "expected": result.expected,
                "expected_error": result.expected_error,
                "z_local": result.z_local,
            },
            z_local=result.z_local,
            p_global=result.p_global,
            z_global=result.z_global,
            z_global_is_lower_limit=result.z_global_is_lower_limit,
            npe=result.npe,
            tests=result.tests,
            per_variable=scans,
        )
    # the feature ranking at the leading selection (the most significant quoted one, else the loosest)
    lead = config.alpha if config.alpha in alphas else (scan_result["best"] or {"alpha": alphas[0]})["alpha"]
    j = alphas.index(lead)
    ranking = []
    k = bounds[j]
    for f in (*EVENT_FEATURES, *MASS_FEATURES):
        d_val, b_val, b_var = summed(f)
        r = astf_comparison(
            d_val.sum(axis=0),
            d_val[k:].sum(axis=0),
            b_val.sum(axis=0),
            b_var.sum(axis=0),
            b_val[k:].sum(axis=0),
            b_var[k:].sum(axis=0),
        )
        lo, hi = _bin_range(sh.histogram("data", f), f, r["largest_pull_bin"])
        ranking.append({"feature": f, **r, "largest_pull_range": [lo, hi]})
    ranking.sort(
        key=lambda r: (
            r["p_value"] if np.isfinite(r["p_value"]) else 1.0,
            -r["chi2"] if np.isfinite(r["chi2"]) else 0.0,
        )
    )
    return {
        "n_data": n_data,
        "n_simulation": float(mc_w.sum()),
        "normalisation": norm,
        "unit_weight": unit,
        "alphas": alphas,
        "selections": selections,
        "leading_alpha": lead,
        "ranking": ranking,
        "n_validation": list(n_validation),
        "scan": scan_result,
        "labelled": labelled,
        "composition_before_selection": composition_all,
    }


# ------------------------------------------------------------------------------------- step 7
def event_list(output: dict, analysed: dict, report_dir: Path) -> tuple[Any, dict[str, Path]]:
    """The data's highest-rarity events as CSV, parquet and an HTML table; the selection each passes."""
    import pandas as pd
    from cms_anomaly.datasets.atomic import atomic_output, write_text_atomic

    top = output["data"].get("top_events", {}).get(KFOLD_SCORER)
    df = top.to_pandas() if top is not None else pd.DataFrame()
    if len(df):
        df = df.rename(columns={"score": "rarity", "process": "true_process" if analysed["labelled"] else "process"})
        passed = np.full(len(df), np.nan)
        for s in analysed["selections"]:  # alphas descending: the last one passed is the tightest
            passed = np.where(df["rarity"].to_numpy() >= s["threshold"], s["alpha"], passed)
        df.insert(4, "selected_at_alpha", passed)
        df.insert(
            0, "id", [f"{r}:{lb}:{e}" for r, lb, e in zip(df["run"], df["luminosityBlock"], df["event"], strict=True)]
        )
    paths = {
        "csv": report_dir / "events.csv",
        "parquet": report_dir / "events.parquet",
        "html": report_dir / "events.html",
    }
    write_text_atomic(paths["csv"], df.to_csv(index=False))
    with atomic_output(paths["parquet"]) as tmp:
        df.to_parquet(tmp, index=False)
    shown = [
        c
        for c in (
            "id",
            "rarity",
            "fold",
            "selected_at_alpha",
            "true_process",
            "n_jets",
            "n_bjets",
            "n_mu",
            "n_ele",
            "ht",
            "met",
            "mt",
            "m_jets",
            "pt_lep",
            "mu1_pt",
            "mu1_eta",
            "mu1_phi",
            "ele1_pt",
            "jet1_pt",
            "jet1_eta",
            "jet1_phi",
            "jet2_pt",
            "jet3_pt",
            "jet4_pt",
            "met_phi",
        )
        if c in df.columns
    ]
    table = (
        df[shown].to_html(index=False, float_format=lambda x: f"{x:.4g}", border=0) if len(df) else "<p>no events</p>"
    )
    write_text_atomic(
        paths["html"],
        "<!doctype html><meta charset='utf-8'><title>Anomalous events</title>"
        "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:right}</style>"
        f"<h1>The {len(df)} highest-rarity data events</h1>"
        "<p>All columns (objects' pT, eta, phi; every feature) are in events.csv.</p>" + table,
    )
    return df, paths


def _selection(analysed: dict, alpha: float) -> dict[str, Any]:
    """The row of :func:`analyse`'s ``selections`` for ``alpha`` (one row per alpha, in the same order)."""
    return analysed["selections"][analysed["alphas"].index(alpha)]


def _verdict(z_global: float, *, lower_limit: bool = False) -> str:
    if lower_limit and z_global >= 3:
        return "evidence for an excess, at least this significant (more pseudo-experiments, --npe, resolve it further)"
    if lower_limit and z_global >= 2:
        return "an excess beyond what the pseudo-experiments resolve (more with --npe)"
    if z_global >= 5:
        return "a significant excess"
    if z_global >= 3:
        return "evidence for an excess"
    if z_global >= 2:
        return "a mild excess, compatible with a fluctuation after the look-elsewhere effect"
    return "no significant excess"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def simulation_warnings(classifier: dict, analysed: dict) -> list[str]:
    """The report's opening warnings: the data-vs-simulation classifier above its AUC threshold, and
    every alpha at which the detector's simulated acceptance is far above alpha."""
    lines = []
    if classifier["separates"]:
        drivers = ", ".join(f"{f} (AUC {classifier['feature_auc'][f]:.2f})" for f in classifier["ranking"][:3])
        lines.append(
            f"**Warning: the simulation does not describe the data**: a classifier tells data from simulation "
            f"with AUC {classifier['auc']:.3f} +- {classifier['auc_spread']:.3f} (> {classifier['threshold']:g}), "
            f"driven by {drivers}; excesses over this simulation are not evidence of a process it lacks."
        )
    off = [s for s in analysed["selections"] if s["calibratable"] and s["acceptance"]["separates"]]
    if off:
        lines.append(
            "**Warning: the detector separates simulation from data**: "
            + "; ".join(
                f"simulated acceptance {s['acceptance']['acceptance']:.2f} at alpha {s['alpha']:g}" for s in off
            )
            + f" (above {off[0]['acceptance']['tolerance']:g} x alpha at 3 sigma); no significance is quoted there."
        )
    return lines


def summary_paragraph(check: dict, analysed: dict, events: Any, config: HuntConfig) -> str:
    """What was found, in words, with the numbers."""
    s = analysed["scan"]
    b = s["best"]
    parts = []
    if check["ok"]:
        parts.append(
            f"The background model describes the data before the anomaly selection (data / simulation = "
            f"{check['norm_ratio']:.3g} +- {check['norm_ratio_error']:.2g}; no feature shape below p = "
            f"{check['shape_p_value_cut']:.2g})."
        )
    else:
        parts.append(
            "**Warning: the background model does not describe the data** before any anomaly selection: "
            + "; ".join(check["problems"])
            + ". Either the simulation mismodels these features or the data "
            "hold a process it lacks; the excesses below are relative to this model."
        )
    unquoted = [r for r in analysed["selections"] if not r["quoted"]]
    if b is None:
        parts.append(
            f"With {config.k_folds}-fold {config.model.upper()} detectors trained on the data, **no significance "
            "is quoted**: " + "; ".join(r["not_quoted"] for r in unquoted) + "."
        )
    else:
        pair = b["variable"][2:].replace("_", "-")
        where = (
            f"in the number of selected events with a {pair} pair"
            if b["whole_range"]
            else f"in {b['variable']} between {b['window_gev'][0]:.0f} and {b['window_gev'][1]:.0f} GeV"
        )
        z_glob = f">= {s['z_global']:.2f}" if s["z_global_is_lower_limit"] else f"{s['z_global']:.2f}"
        none = "; none reached it" if s["z_global_is_lower_limit"] else ""
        parts.append(
            f"With {config.k_folds}-fold {config.model.upper()} detectors trained on the data, the most "
            f"significant local excess is {where} after the selection keeping alpha = {b['alpha']:g} of the data: "
            f"{b['observed']:.0f} events observed, {b['expected']:.3g} +- {b['expected_error']:.2g} expected "
            f"(local Z = {b['z_local']:.2f}). Over {_count(len(s['alphas']), 'quoted selection')}, {len(MASS_FEATURES)} masses "
            f"and their windows ({s['tests']} tests), the global significance is {z_glob} sigma "
            f"(p = {s['p_global']:.3g}, {s['npe']} pseudo-experiments{none}): "
            f"**{_verdict(s['z_global'], lower_limit=s['z_global_is_lower_limit'])}**."
        )
        if unquoted:
            parts.append("Not quoted: " + "; ".join(r["not_quoted"] for r in unquoted) + ".")
    # a ranking at an alpha the folds cannot calibrate compares selections that do not exist
    top3 = [r for r in analysed["ranking"] if np.isfinite(r["p_value"])][:3]
    if top3 and _selection(analysed, analysed["leading_alpha"]).get("calibratable", True):
        parts.append(
            f"At alpha = {analysed['leading_alpha']:g} the features whose anomaly-selection transfer function "
            "differs most between data and simulation are "
            + ", ".join(
                f"{r['feature']} (p = {r['p_value']:.2g}, most in {r['largest_pull_range'][0]:.4g}-"
                f"{r['largest_pull_range'][1]:.4g}: {r['largest_pull_observed']:.0f} vs "
                f"{r['largest_pull_expected']:.2g})"
                for r in top3
            )
            + "."
        )
    if len(events):
        parts.append(f"The {len(events)} highest-rarity events are listed in events.csv / events.html.")
    if analysed["labelled"]:
        comp = _selection(analysed, analysed["leading_alpha"])
        shares = ", ".join(f"{p} {f:.0%}" for p, f in sorted(comp.get("composition", {}).items(), key=lambda x: -x[1]))
        parts.append(
            f"(Validation with the pseudo-data's hidden labels, not used by the hunt: the events selected at "
            f"alpha = {analysed['leading_alpha']:g} are {shares}.)"
        )
    return " ".join(parts)


def make_plots(
    output: dict, check: dict, analysed: dict, report_dir: Path, *, lumi_pb: float, data_label: str
) -> list[Path]:
    """The worst-described features before the selection, the rarity, the best mass window and feature after it."""
    from cms_anomaly.analyses import plotting
    from cms_anomaly.analyses.scorehists import ScoreHists, drawable
    from cms_anomaly.processors.histograms import nominal

    roles = _simulation_roles(output)
    lumi_text = f"{lumi_pb:.3g} pb$^{{-1}}$"
    label = {r: ROLE_LABELS.get(r, r) for r in roles}
    style = {"data_label": data_label, "lumi": None, "com": None, "is_data": False}
    pngs = []
    for row in check["features"][:2]:
        f = row["feature"]
        data = drawable(nominal(output["data"]["hists"][f])[{"dataset": "data"}])
        mc = {label[r]: drawable(nominal(output[r]["hists"][f])[{"dataset": r}]) for r in roles}
        pngs.append(
            plotting.plot_data_mc(
                data, mc, report_dir / f"check_{f}.png", **style, text=f"no anomaly selection, {lumi_text}"
            )
        )
    sh = ScoreHists(output, KFOLD_SCORER, KFOLD_OUTPUT)
    norm = analysed["normalisation"]
    first, last = sh.occupied_range(["data", *roles])
    data = sh.score_hist("data", first=first, last=last, rebin=2)
    mc = {label[r]: sh.score_hist(r, first=first, last=last, rebin=2) * norm for r in roles}
    pngs.append(
        plotting.plot_data_mc(
            data,
            mc,
            report_dir / "rarity.png",
            **style,
            xlabel=r"rarity $-\log_{10} p$ (k-fold, calibrated)",
            text=f"simulation x {norm:.3g}, {lumi_text}",
        )
    )
    k = _selection(analysed, analysed["leading_alpha"])["first_bin"]
    best = analysed["scan"]["best"]
    shown = [(analysed["ranking"][0]["feature"], k, analysed["leading_alpha"], "feature")]
    if best is not None:
        shown.insert(0, (best["variable"], _selection(analysed, best["alpha"])["first_bin"], best["alpha"], "mass"))
    for feature, first_bin, alpha, tag in shown:
        data = sh.feature("data", feature, first_bin=first_bin)
        mc = {label[r]: sh.feature(r, feature, first_bin=first_bin) * norm for r in roles}
        pngs.append(
            plotting.plot_data_mc(
                data,
                mc,
                report_dir / f"selected_{tag}_{feature}.png",
                **style,
                logx=feature in MASS_FEATURES,
                text=rf"$\alpha$ = {alpha:g}, {lumi_text}",
            )
        )
    return pngs


def _dropped_lines(title: str, dropped: dict[str, str] | None) -> list[str]:
    """A report paragraph naming each left-out feature with its reason (none when nothing was left out)."""
    if not dropped:
        return []
    return ["", f"{title}: " + "; ".join(f"`{k}` ({v})" for k, v in dropped.items()) + "."]


def format_report(paragraph: str, check: dict, analysed: dict, meta: dict, pngs: list[Path], classifier: dict) -> str:
    warnings = simulation_warnings(classifier, analysed)
    lines = [
        "# Anomaly hunt",
        "",
        *(line for w in warnings for line in (w, "")),
        paragraph,
        "",
        f"Data: {meta['data_description']}; {analysed['n_data']:.0f} events pass the `{meta['selection']}` "
        f"selection (simulation: {analysed['n_simulation']:.4g}, normalised by {analysed['normalisation']:.3g}). "
        f"Detector: {meta['k_folds']}-fold {meta['model']} on `{meta['feature_set']}`; every event is scored by "
        "the model that did not train on its fold. Events: [events.html](events.html), `events.csv`, "
        "`events.parquet`.",
        *_dropped_lines(
            "Features dropped from the detector's inputs (a dataset of the job cannot compute them)",
            meta.get("dropped_features"),
        ),
        *_dropped_lines("Left out of the background-model check", check.get("dropped")),
        "",
        "## Background-model check (before any anomaly selection)",
        "",
        "| feature | data | simulation | data / sim. | chi2 / ndf | p | shape chi2 / ndf | shape p |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in check["features"]:
        lines.append(
            f"| {r['feature']} | {r['n_data']:.0f} | {r['n_simulation']:.4g} | {r['norm_ratio']:.3g} +- "
            f"{r['norm_ratio_error']:.2g} | {fmt(r['chi2'])} / {r['ndf']} | {r['p_value']:.2g} | "
            f"{fmt(r['shape_chi2'])} / {r['shape_ndf']} | {r['shape_p_value']:.2g} |"
        )
    c = classifier
    negative = f"; {c['negative_weights']} negative weights taken as |w|" if c["negative_weights"] else ""
    lines += [
        "",
        "## Data against simulation: a classifier (before any anomaly selection)",
        "",
        f"A {c['k_folds']}-fold XGBoost classifier of the {c['n_data']} data events against the {c['n_simulation']} "
        f"simulated ones on the detector's inputs (`{c['feature_set']}`; each class weighted to the same total"
        f"{negative}): out-of-fold AUC **{c['auc']:.3f}** +- {c['auc_spread']:.3f} (spread over the folds: "
        f"{', '.join(f'{a:.3f}' for a in c['auc_folds'])}); 0.5 where the simulation describes the data, "
        f"above {c['threshold']:g} a warning. The features that tell them apart, by their own AUC:",
        "",
        "| feature | AUC (data vs simulation) |",
        "| --- | --- |",
        *(f"| {f} | {c['feature_auc'][f]:.3f} |" for f in c["ranking"][:8]),
        "",
        "## Anomaly selections",
        "",
        f"Calibration: {len(analysed['n_validation'])} folds of {', '.join(map(str, analysed['n_validation']))} "
        "validation events; a selection's simulated acceptance (the fraction of the simulation it keeps) is "
        "compared with alpha (3-sigma interval).",
        "",
        "| alpha | rarity threshold | data | expected (normalised simulation) | simulated acceptance | local Z | "
        + ("hidden composition (validation) |" if analysed["labelled"] else "|"),
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in analysed["selections"]:
        comp = ", ".join(f"{p} {f:.0%}" for p, f in sorted(s.get("composition", {}).items(), key=lambda x: -x[1]))
        if not s["calibratable"]:  # nothing to show but why
            lines.append(f"| {s['alpha']:g} | - | - | - | - | not quoted: {s['not_quoted']} | |")
            continue
        acc = s["acceptance"]
        z = f"{s['z_local']:.2f}" if s["quoted"] else f"not quoted: {s['not_quoted']}"
        lines.append(
            f"| {s['alpha']:g} | {s['threshold']:.3g} | {s['observed']:.0f} | {s['expected']:.3g} +- "
            f"{s['expected_error']:.2g} | {acc['acceptance']:.3g} ({acc['low']:.2g}-{acc['high']:.2g}) | {z} | {comp} |"
        )
    sc = analysed["scan"]
    lines += [
        "",
        f"## Mass scan (global: {sc['tests']} tests over alpha = {', '.join(f'{a:g}' for a in sc['alphas'])}, "
        f"{sc['npe']} pseudo-experiments)"
        if sc["best"] is not None
        else "## Mass scan: not run (no selection quoted)",
        "",
        "| mass | alpha | window [GeV] | observed | expected | local Z |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in sc["per_variable"][:12]:
        lines.append(
            f"| {r['variable']} | {r['alpha']:g} | {r['window_gev'][0]:.0f}-{r['window_gev'][1]:.0f} | "
            f"{r['observed']:.0f} | {r['expected']:.3g} | {r['z_local']:.2f} |"
        )
    lines += [
        "",
        f"## What differs after the selection (alpha = {analysed['leading_alpha']:g})",
        "",
        "Selected data against the data before the selection times the simulation's ASTF; ranked by p-value.",
        "",
        "| feature | selected data | expected | chi2 / ndf | p | largest pull (range: observed vs expected) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in analysed["ranking"]:
        lines.append(
            f"| {r['feature']} | {r['observed']:.0f} | {r['expected']:.3g} | {fmt(r['chi2'])} / {r['ndf']} | "
            f"{r['p_value']:.2g} | {r['largest_pull_range'][0]:.4g}-{r['largest_pull_range'][1]:.4g}: "
            f"{r['largest_pull_observed']:.0f} vs {r['largest_pull_expected']:.2g} |"
        )
    if meta.get("skipped_files"):
        lines += [
            "",
            "## Input files left out (unreadable; --skip-bad-files)",
            "",
            *(f"- {d}: {f}" for d, files in meta["skipped_files"].items() for f in files),
            "",
            "A data file left out still counts in the fileset's lumi_pb: the normalisation check is off by its share.",
        ]
    lines += ["", *analysis.report_footer(pngs, meta["seconds"])]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------- the job
def run_hunt(
    out: str | os.PathLike, config: HuntConfig = HuntConfig(), *, samples_dir: str | os.PathLike | None = None
) -> HuntResult:
    """Run the whole hunt into ``out`` (see the module docstring); the report is in ``out/report``.

    ``samples_dir`` (default ``out/samples``): the productions, reused where finished.
    """
    from cms_anomaly.models.scorers import KFoldScorer, calibration_path
    from cms_anomaly.processors.folds import KFold

    out = Path(out)
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    simulation, data = make_samples(config, Path(samples_dir) if samples_dir is not None else out / "samples")
    times["samples"] = time.perf_counter() - t0
    meta_data = data["data"]["metadata"]
    lumi = float(meta_data["lumi_pb"])
    fileset = {**data, **simulation}

    t = time.perf_counter()
    first = run_pass(fileset, out=out / "pass1", config=config, lumi_pb=lumi, features=True)
    times["pass1"] = time.perf_counter() - t
    if "hists" not in first.get("data", {}):
        raise HuntError(
            f"no readable data file: {'; '.join(first.get('data', {}).get('skipped_files', [])) or 'none given'}"
        )
    n_selected = list(first["data"]["cutflow"]["events"].values())[-1]
    if n_selected < MIN_DATA_EVENTS:
        raise HuntError(
            f"only {n_selected} data events pass the {config.selection} selection; the hunt needs "
            f">= {MIN_DATA_EVENTS} to train {config.k_folds} detectors on the data"
        )
    check = background_check(first, config)
    detector_fs, dropped = detector_inputs(out / "pass1" / "features", config)
    t = time.perf_counter()
    classifier = simulation_classifier(out / "pass1" / "features", config, detector_fs)
    times["classifier"] = time.perf_counter() - t

    t = time.perf_counter()
    paths = train_folds(out / "pass1" / "features", out / "models", config, detector_fs)
    times["training"] = time.perf_counter() - t

    t = time.perf_counter()
    scorer = KFoldScorer.load(paths, KFold(config.k_folds, config.seed), name=KFOLD_SCORER)
    second = run_pass(
        fileset,
        out=out / "pass2",
        config=config,
        lumi_pb=lumi,
        features=False,
        scorers={KFOLD_SCORER: scorer},
        score_features=(*EVENT_FEATURES, *MASS_FEATURES),
        top_events=config.top_events,
    )
    times["pass2"] = time.perf_counter() - t

    t = time.perf_counter()
    n_validation = [len(np.load(calibration_path(p), allow_pickle=False)) for p in paths]
    analysed = analyse(second, config=config, n_validation=n_validation)
    report_dir = analysis.fresh_report_dir(out)
    events, event_paths = event_list(second, analysed, report_dir)
    paragraph = summary_paragraph(check, analysed, events, config)
    labelled = bool(analysed["labelled"])
    pngs = make_plots(
        second, check, analysed, report_dir, lumi_pb=lumi, data_label="Pseudo-data" if labelled else "Data"
    )
    times["analysis"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - t0
    description = (
        f"{config.data_fileset} ({lumi:.4g} pb^-1)"
        if config.data_fileset
        else f"pseudo-data ({lumi:.4g} pb^-1) of {', '.join(PROCESSES)}"
        + (f" with {config.inject} injected at {config.signal_fraction:g} of the events" if config.inject else "")
    )
    meta = {
        "config": asdict(config),
        "data_description": description,
        "lumi_pb": lumi,
        "selection": config.selection,
        "model": config.model,
        "k_folds": config.k_folds,
        "feature_set": inputs(config),
        "features": list(detector_fs.columns),
        "dropped_features": dropped,
        "models": [str(p) for p in paths],
        "seconds": times,
        "skipped_files": {
            d: [str(f) for f in r.get("skipped_files", [])] for d, r in first.items() if r.get("skipped_files")
        },
        "histograms": str(out / "pass2" / "histograms.coffea"),
    }
    markdown = format_report(paragraph, check, analysed, meta, pngs, classifier)
    summary = analysis.write_report(
        report_dir,
        markdown=markdown,
        payload={
            **meta,
            "summary": paragraph,
            "warnings": simulation_warnings(classifier, analysed),
            "background_check": check,
            "classifier": classifier,
            "result": analysed,
        },
        title="Anomaly hunt",
    )
    sc = analysed["scan"]
    nan = float("nan")
    return HuntResult(
        summary=summary,
        events=event_paths["csv"],
        background_ok=check["ok"],
        simulation_ok=not simulation_warnings(classifier, analysed),
        classifier_auc=classifier["auc"],
        z_local=nan if sc["z_local"] is None else sc["z_local"],
        z_global=nan if sc["z_global"] is None else sc["z_global"],
        p_global=nan if sc["p_global"] is None else sc["p_global"],
        best=sc["best"] or {},
        ranked_features=[r["feature"] for r in analysed["ranking"]],
        selected_composition={f"{s['alpha']:g}": s.get("composition", {}) for s in analysed["selections"]},
        composition=analysed["composition_before_selection"],
    )


# ------------------------------------------------------------------------------------- CLI
def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "hunt",
        help="anomaly search on (pseudo-)data: background-model check, k-fold detectors, event list, mass scan, "
        "global significance",
        description=(
            "Check the background model against the data, train k-fold anomaly detectors on the data (no event scored "
            "by a model that saw it), select the alpha most anomalous events for several alphas, list them, rank the "
            "features by how differently the selection acts on data and simulation, scan the invariant masses of "
            "object pairs, and give the global significance of the largest excess. Without --data-fileset the data "
            "are pseudo-data mixed from generated SM processes, with --inject CARD --signal-fraction F a BSM process "
            "hidden in them. Writes OUT/report (summary.md, index.html, events.csv/.parquet/.html, PNGs)."
        ),
    )
    p.add_argument(
        "--data-fileset",
        default=None,
        metavar="FILESET",
        help="real data: a fileset JSON whose is_data datasets carry lumi_pb (e.g. 'cms-anomaly opendata fileset')",
    )
    p.add_argument("--out", default="out/hunt", help="output directory (default: out/hunt)")
    p.add_argument(
        "--samples",
        default=None,
        help="productions directory (default: OUT/samples); a rediscover-top OUT/samples is reused as is",
    )
    p.add_argument("--model", choices=tuple(MODELS), default=HuntConfig.model)
    p.add_argument("--k-folds", type=positive_int, default=HuntConfig.k_folds)
    p.add_argument(
        "--alphas",
        type=fraction,
        nargs="+",
        default=list(HuntConfig.alphas),
        help="fractions of the data selected as anomalous (default: 0.1 0.01 0.001)",
    )
    p.add_argument("--inject", default=None, metavar="CARD", help="pseudo-data only: a BSM card hidden in the data")
    p.add_argument("--signal-fraction", type=fraction, default=0.0, help="its share of the pseudo-data events")
    p.add_argument("--events", type=positive_float, default=1.0, help="scale factor on the generated sample sizes")
    p.add_argument(
        "--ttbar-scale",
        type=positive_float,
        default=HuntConfig.ttbar_scale,
        help="ttbar cross section in units of Pythia's (default: 0.1, as rediscover-top)",
    )
    p.add_argument("--epochs", type=positive_int, default=HuntConfig.epochs)
    p.add_argument(
        "--npe", type=positive_int, default=HuntConfig.npe, help="pseudo-experiments for the global significance"
    )
    p.add_argument("--top-events", type=positive_int, default=HuntConfig.top_events)
    p.add_argument("--norm-tolerance", type=non_negative_float, default=HuntConfig.norm_tolerance)
    p.add_argument(
        "--skip-bad-files",
        action="store_true",
        help="leave unreadable input files out (listed in the report) instead of stopping",
    )
    p.add_argument(
        "--strict", action="store_true", help="exit with status 3 if the background model does not describe the data"
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--executor", choices=EXECUTORS, default="dask")
    p.add_argument("--scheduler", default=None, help=analysis.SCHEDULER_HELP)
    p.add_argument("--workers", type=positive_int, default=None, help=analysis.WORKERS_HELP)
    p.add_argument("--device", default="auto", help="training device: auto, cpu or cuda")
    p.set_defaults(func=_cmd)


def _cmd(args: Any) -> int:
    config = HuntConfig(
        data_fileset=args.data_fileset,
        model=args.model,
        k_folds=args.k_folds,
        alphas=tuple(args.alphas),
        inject=args.inject,
        signal_fraction=args.signal_fraction if args.inject else 0.0,
        ttbar_scale=args.ttbar_scale,
        epochs=args.epochs,
        npe=args.npe,
        top_events=args.top_events,
        norm_tolerance=args.norm_tolerance,
        strict=args.strict,
        seed=args.seed,
        device=args.device,
        execution=Execution(
            executor=args.executor, scheduler=args.scheduler, workers=args.workers, skip_bad_files=args.skip_bad_files
        ),
    )
    config = config.scaled(args.events)
    result = run_hunt(args.out, config, samples_dir=args.samples)
    analysis.print_report(result.summary)
    if config.strict and not result.background_ok:
        print("cms-anomaly hunt: the background model does not describe the data (--strict)")
        return 3
    return 0
