"""Hunt mode: an anomaly search on (pseudo-)data without a signal hypothesis (``cms-anomaly hunt``).

``rediscover-top`` asks whether the anomaly selection enriches one known process; the hunt asks
what, if anything, in the data the background model does not describe. Steps (each a function
below, step 4 in :mod:`~cms_anomaly.analyses.hunt_detectors`, step 6 in
:mod:`~cms_anomaly.analyses.hunt_selections`, step 7 in :mod:`~cms_anomaly.analyses.hunt_report`;
:func:`run_hunt` wires them):

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

import logging
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from cms_anomaly.analyses import analysis, hunt_report, hunt_selections
from cms_anomaly.analyses.analysis import Execution
from cms_anomaly.analyses.hunt_detectors import (
    MODELS,
    HuntError,
    detector_inputs,
    inputs,
    kfold_scorer,
    train_folds,
)
from cms_anomaly.analyses.hunt_selections import EVENT_FEATURES, KFOLD_OUTPUT, KFOLD_SCORER, MASS_FEATURES
from cms_anomaly.analyses.samples import PROCESSES, SamplesError
from cms_anomaly.analyses.samples import make_samples as productions
from cms_anomaly.core.argtypes import fraction, non_negative_float, positive_float, positive_int
from cms_anomaly.processors.feature_spec import HLF_NANO

log = logging.getLogger(__name__)

#: model inputs checked data vs simulation before any anomaly selection (with the masses): those of
#: HLF_NANO, which standard NanoAOD (collision data) carries, less the charged and neutral isolation and
#: IsEle, plus S_T and m_jj; a feature whose needs a dataset does not meet is left out of the check
#: (:func:`background_check`)
CHECK_FEATURES: tuple[str, ...] = (
    *(name for name in HLF_NANO if name not in ("iso_ch", "iso_neu", "is_ele")),
    "st",
    "mjj",
)
#: data events after the selection below which k-fold training on the data is not attempted
MIN_DATA_EVENTS = analysis.MIN_HUNT_DATA_EVENTS


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
    #: Knapp et al.'s ALAD (no cycle term): the hunt's injection and null studies were measured with it,
    #: and its k-fold scores select the hidden 1 TeV h+- where the cycle-term default does not (tests/test_hunt.py)
    model: str = "alad_knapp"
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
    if config.data_fileset and config.inject:
        raise HuntError("--inject builds pseudo-data; it cannot be combined with --data-fileset")
    try:
        return productions(
            samples_dir,
            events=config.events,
            seed=config.seed,
            execution=config.execution,
            ttbar_scale=config.ttbar_scale,
            data_fileset=config.data_fileset,
            inject=config.inject,
            signal_fraction=config.signal_fraction,
            simulation_seed=config.simulation_seed,
        )
    except SamplesError as err:
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


def simulation_classifier(
    features_dir: Path, config: HuntConfig, feature_set: Any = None, *, samples: dict | None = None
) -> dict[str, Any]:
    """A k-fold classifier of the data against the simulation on the detector's inputs (``feature_set``,
    default :func:`detector_inputs`), before any anomaly selection
    (:func:`~cms_anomaly.models.datasim.classify_data_vs_simulation`): its AUC, the features that drive
    it, and whether it is above :attr:`HuntConfig.auc_threshold`. ``samples``: the tables of
    ``features_dir`` already read with ``feature_set`` (default: read here)."""
    from cms_anomaly.models.data import list_datasets, read_samples
    from cms_anomaly.models.datasim import classify_data_vs_simulation
    from cms_anomaly.models.errors import TrainingError

    fs = feature_set if feature_set is not None else detector_inputs(features_dir, config)[0]
    if samples is None:
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


# ------------------------------------------------------------------------------------- step 6
def analyse(output: dict[str, Any], *, config: HuntConfig, n_validation: list[int]) -> dict[str, Any]:
    """Selections, feature ranking, mass scan and significance from the second pass's histograms.

    ``n_validation``: the validation (calibration) events of each fold's detector. A selection is
    quoted (it enters the mass scan and its local Z is given) only where the folds can calibrate its
    alpha and the simulation passes it not far more often than the data
    (:func:`~cms_anomaly.stats.calibratable`, :func:`~cms_anomaly.stats.acceptance_check`).
    """
    from cms_anomaly.analyses.scorehists import ScoreHists
    from cms_anomaly.stats import threshold_bin_at_efficiency

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
    rows = hunt_selections.selections(
        sh,
        (data_w, mc_w, mc_w2),
        alphas=alphas,
        bounds=bounds,
        norm=norm,
        unit=unit,
        n_validation=n_validation,
        per_process=per_process,
        min_count=config.min_calibration_count,
        tolerance=config.acceptance_tolerance,
    )
    summed = hunt_selections.feature_sums(sh, roles)
    quoted = [(a, k) for a, k, row in zip(alphas, bounds, rows, strict=True) if row["quoted"]]
    scan_result = hunt_selections.mass_scan(
        sh, summed, quoted, norm=norm, unit=unit, widths=config.mass_widths, npe=config.npe, seed=config.seed
    )
    # the feature ranking at the leading selection (the most significant quoted one, else the loosest)
    lead = config.alpha if config.alpha in alphas else (scan_result["best"] or {"alpha": alphas[0]})["alpha"]
    return {
        "n_data": n_data,
        "n_simulation": float(mc_w.sum()),
        "normalisation": norm,
        "unit_weight": unit,
        "alphas": alphas,
        "selections": rows,
        "leading_alpha": lead,
        "ranking": hunt_selections.feature_ranking(sh, summed, bounds[alphas.index(lead)]),
        "n_validation": list(n_validation),
        "scan": scan_result,
        "labelled": labelled,
        "composition_before_selection": {p: float(w.sum() / n_data) for p, w in per_process.items()},
    }


# ------------------------------------------------------------------------------------- the job
def run_hunt(
    out: str | os.PathLike, config: HuntConfig = HuntConfig(), *, samples_dir: str | os.PathLike | None = None
) -> HuntResult:
    """Run the whole hunt into ``out`` (see the module docstring); the report is in ``out/report``.

    ``samples_dir`` (default ``out/samples``): the productions, reused where finished.
    """
    from cms_anomaly.models.scorers import calibration_path

    out = Path(out)
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    simulation, data = make_samples(config, Path(samples_dir) if samples_dir is not None else out / "samples")
    times["samples"] = time.perf_counter() - t0
    lumi = float(data["data"]["metadata"]["lumi_pb"])
    fileset = {**data, **simulation}

    t = time.perf_counter()
    first = _first_pass(fileset, out, config, lumi)
    times["pass1"] = time.perf_counter() - t
    check = background_check(first, config)
    detector_fs, dropped = detector_inputs(out / "pass1" / "features", config)
    classifier, paths = _detectors(out, config, detector_fs, times)

    t = time.perf_counter()
    second = _second_pass(fileset, out, config, lumi, paths)
    times["pass2"] = time.perf_counter() - t

    t = time.perf_counter()
    n_validation = [len(np.load(calibration_path(p), allow_pickle=False)) for p in paths]
    analysed = analyse(second, config=config, n_validation=n_validation)
    hunt_report.mark_few_events(analysed)
    report_dir = analysis.fresh_report_dir(out)
    events, event_paths = hunt_report.event_list(second, analysed, report_dir)
    paragraph = hunt_report.summary_paragraph(check, analysed, events, config)
    labelled = bool(analysed["labelled"])
    pngs = hunt_report.make_plots(
        second,
        check,
        analysed,
        report_dir,
        lumi_pb=lumi,
        data_label="Pseudo-data" if labelled else "Data",
        models=paths,
    )
    times["analysis"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - t0
    meta = _meta(config, out, lumi=lumi, first=first, features=(detector_fs, dropped), paths=paths, times=times)
    warnings = hunt_report.simulation_warnings(classifier, analysed)
    summary = analysis.write_report(
        report_dir,
        markdown=hunt_report.format_report(paragraph, check, analysed, meta, pngs, classifier),
        payload={
            **meta,
            "summary": paragraph,
            "warnings": warnings,
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
        simulation_ok=not warnings,
        classifier_auc=classifier["auc"],
        z_local=nan if sc["z_local"] is None else sc["z_local"],
        z_global=nan if sc["z_global"] is None else sc["z_global"],
        p_global=nan if sc["p_global"] is None else sc["p_global"],
        best=sc["best"] or {},
        ranked_features=[r["feature"] for r in analysed["ranking"]],
        selected_composition={f"{s['alpha']:g}": s.get("composition", {}) for s in analysed["selections"]},
        composition=analysed["composition_before_selection"],
    )


def _first_pass(fileset: dict, out: Path, config: HuntConfig, lumi: float) -> dict:
    """The first pass (feature tables in ``out/pass1``), refused without enough data events to train on."""
    first = run_pass(fileset, out=out / "pass1", config=config, lumi_pb=lumi, features=True)
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
    return first


def _detectors(out: Path, config: HuntConfig, feature_set: Any, times: dict[str, float]) -> tuple[dict, list[Path]]:
    """The data-vs-simulation classifier and the k-fold detectors, from one read of the pass-1 tables."""
    from cms_anomaly.models.data import read_samples

    features = out / "pass1" / "features"
    t = time.perf_counter()
    samples = read_samples(features, feature_set=feature_set)  # the datasets with events
    classifier = simulation_classifier(features, config, feature_set, samples=samples)
    times["classifier"] = time.perf_counter() - t
    t = time.perf_counter()
    paths = train_folds(features, out / "models", config, feature_set, data=samples.get("data"))
    times["training"] = time.perf_counter() - t
    return classifier, paths


def _second_pass(fileset: dict, out: Path, config: HuntConfig, lumi: float, paths: list[Path]) -> dict:
    """The second pass (``out/pass2``) with the k-fold ensemble of ``paths`` scoring every event."""
    return run_pass(
        fileset,
        out=out / "pass2",
        config=config,
        lumi_pb=lumi,
        features=False,
        scorers={KFOLD_SCORER: kfold_scorer(paths, config)},
        score_features=(*EVENT_FEATURES, *MASS_FEATURES),
        top_events=config.top_events,
    )


def _meta(
    config: HuntConfig,
    out: Path,
    *,
    lumi: float,
    first: dict,
    features: tuple[Any, dict[str, str]],
    paths: list[Path],
    times: dict[str, float],
) -> dict[str, Any]:
    """The settings and provenance of a hunt (``summary.json``, with its results)."""
    description = (
        f"{config.data_fileset} ({lumi:.4g} pb^-1)"
        if config.data_fileset
        else f"pseudo-data ({lumi:.4g} pb^-1) of {', '.join(PROCESSES)}"
        + (f" with {config.inject} injected at {config.signal_fraction:g} of the events" if config.inject else "")
    )
    return {
        "config": asdict(config),
        "data_description": description,
        "lumi_pb": lumi,
        "selection": config.selection,
        "model": config.model,
        "k_folds": config.k_folds,
        "feature_set": inputs(config),
        "features": list(features[0].columns),
        "dropped_features": features[1],
        "models": [str(p) for p in paths],
        "seconds": times,
        "skipped_files": {
            d: [str(f) for f in r.get("skipped_files", [])] for d, r in first.items() if r.get("skipped_files")
        },
        "histograms": str(out / "pass2" / "histograms.coffea"),
    }


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
    analysis.add_production_arguments(
        p,
        default_out="out/hunt",
        default_samples=None,
        samples_help="productions directory (default: OUT/samples); a rediscover-top OUT/samples is reused as is",
        events_help="scale factor on the generated sample sizes",
    )
    p.add_argument(
        "--selection",
        choices=("top_rediscovery", "event_classes"),
        default=HuntConfig.selection,
        help="top_rediscovery (muon + jets, k-fold detectors) or event_classes (every final state, MUSiC's scan "
        "against the SM cocktail: cms_anomaly.analyses.hunt_classes)",
    )
    from cms_anomaly.analyses.hunt_classes import add_class_arguments

    add_class_arguments(p)
    p.add_argument(
        "--model",
        choices=(*MODELS, "none"),
        default=None,
        help=f"the detector (default: {HuntConfig.model}; event_classes: none, S_T, M and MET only, or a model "
        "whose rarity each class also scans)",
    )
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
    p.set_defaults(func=_cmd)


def _cmd(args: Any) -> int:
    if args.selection == "event_classes":
        from cms_anomaly.analyses.hunt_classes import run_from_args

        return run_from_args(args)
    config = HuntConfig(
        data_fileset=args.data_fileset,
        model=args.model or HuntConfig.model,
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
        execution=replace(analysis.execution_from(args), skip_bad_files=args.skip_bad_files),
    )
    config = config.scaled(args.events)
    result = run_hunt(args.out, config, samples_dir=args.samples)
    analysis.print_report(result.summary)
    if config.strict and not result.background_ok:
        print("cms-anomaly hunt: the background model does not describe the data (--strict)")
        return 3
    return 0
