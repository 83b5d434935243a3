"""A weakly supervised dijet resonance hunt: CWoLa hunting with BumpHunter (LHC Olympics 2020, seed 002).

``cms-anomaly dijet`` (:func:`run_dijet`):

1. QCD dijets (pTHat > 1 TeV) and the LHCO benchmark kinematics, a 3.5 TeV resonance -> X (500 GeV)
   Y (100 GeV) -> four quarks (``zprime_xy``; a W' stands in for the Z', see its card), through the
   ``dijet`` selection (leading R = 1.0 jet pT > 1.2 TeV): m_JJ, jet masses and N-subjettiness;
2. signal injected into the QCD sample at a few S/B values (signal over background events in the
   selected sample, the first events of one seeded permutation of the generated signal, so that a
   larger S/B contains a smaller one), and a signal-free sample;
3. CWoLa hunting (LHCO sec. 4.1, Collins, Howe, Nachman): for each signal region of 9 of the 40
   log-spaced m_JJ bins (about 20 % wide, shifted by 3 bins), an XGBoost classifier (k folds by event
   identity: every event scored by a model that never saw it) separates the signal region from the
   5 + 5 sideband bins on (m_J1/m_JJ, m_J2/m_JJ, tau21,
   tau32 of both jets, the heavier jet first). The exported classifiers are applied in a second
   processor pass, which fills their calibrated output (rarity) against m_JJ per dataset and
   injection label; from those histograms, the events above the rarity bin that keeps ``efficiency``
   of the signal region and sidebands are kept in every bin, the selected spectrum is fitted with the
   4-parameter dijet function with the signal region excluded, and the local significance of the
   signal-region count over the fit folds in the fit's uncertainty (Minuit's covariance through the
   Jacobian of the function; Poisson mixed with a Gamma of that width,
   :func:`~cms_anomaly.stats.significance.poisson_gamma_p`);
4. BumpHunter over every signal region's selected spectrum against its fit (windows of 2-7 bins,
   LHCO Table 4) with the global p-value of the whole procedure: pseudo-experiments draw every
   region's spectrum from its fit, refit it and take the smallest local p-value over regions x
   windows (:func:`~cms_anomaly.stats.bumphunt.global_hunt`).
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
from cms_anomaly.analyses.analysis import (
    Execution,
    add_production_arguments,
    execution_from,
    fmt,
    fresh_report_dir,
    print_report,
    report_footer,
    write_report,
)
from cms_anomaly.analyses.headline import note_for
from cms_anomaly.analyses.plot_training import plot_model_training
from cms_anomaly.core.argtypes import fraction, non_negative_float
from cms_anomaly.processors.histograms import DIJET_MASS_EDGES
from cms_anomaly.stats.headline import few_events, few_events_mark

log = logging.getLogger(__name__)

BACKGROUND, SIGNAL = "qcd_dijet", "zprime_xy"


@dataclass(frozen=True)
class DijetConfig:
    """Settings of :func:`run_dijet` (defaults: ~20 min on 2 cores, generation included).

    Signal regions: ``sr_bins`` of the m_JJ bins (9 of 40: 607-962 GeV wide from 2.8 to 5.4 TeV), each
    between ``sideband_bins`` sideband bins (5: 289-457 GeV) on either side, the first bin shifted by
    ``region_step`` bins (3: about 6.6 % in m_JJ); 8 regions with the defaults.
    """

    events: dict[str, int] = field(default_factory=lambda: {BACKGROUND: 30000, SIGNAL: 3000})
    seed: int = 1
    execution: Execution = field(default_factory=Execution)
    injections: tuple[float, ...] = (0.0, 0.005, 0.01, 0.02)
    #: m_JJ bins of the scan: the processor's (DIJET_MASS_EDGES) or a subset of its edges (merged bins)
    bin_edges: tuple[float, ...] = DIJET_MASS_EDGES
    sr_bins: int = 9
    sideband_bins: int = 5
    region_step: int = 3
    #: fraction of SR + sideband events the classifier keeps (10 % found S/B = 1 % at 3.2 sigma local,
    #: 3 % at 5.5 sigma with the default samples; the signal-free scan stayed below 2 sigma global at both)
    efficiency: float = 0.03
    k_folds: int = 5
    #: pseudo-experiments of the global p-value (LHCO Table 4: 10000)
    npe: int = 10000

    def scaled(self, factor: float) -> DijetConfig:
        """The same study with ``factor`` times the generated events."""
        return replace(self, events={k: max(1, round(v * factor)) for k, v in self.events.items()})


# ------------------------------------------------------------------------------ inputs
def load_events(features_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """The ``dijet`` feature columns (:data:`~cms_anomaly.models.bdt.CWOLA_COLUMNS`) and the event
    identity of each dataset, from the feature tables (the classifiers' training input)."""
    from cms_anomaly.models.bdt import CWOLA_COLUMNS
    from cms_anomaly.processors.feature_io import read_feature_tables

    out = {}
    for name in (BACKGROUND, SIGNAL):
        t = read_feature_tables(features_dir / name, columns=[*CWOLA_COLUMNS, "run", "event"], as_numpy=True)
        out[name] = {k: np.asarray(v) for k, v in t.items()}
    return out


def injected_counts(n_background: int, n_signal: int, injections: tuple[float, ...]) -> list[int]:
    """Signal events injected at each S/B (signal over background events of the selected sample)."""
    counts = [round(sb * n_background) for sb in injections]
    for sb, n in zip(injections, counts, strict=True):
        if n > n_signal:
            raise ValueError(f"S/B = {sb} needs {n} signal events, only {n_signal} generated")
    return counts


def injection_labels(n_signal: int, counts: list[int], *, seed: int) -> np.ndarray:
    """The label of every generated signal event for the processor's ``process`` axis.

    One seeded permutation ranks the signal events; the injection of ``n`` events takes the first
    ``n`` of it (so a larger S/B contains a smaller one). An event is labelled with the smallest
    injected count that contains it, ``signal_<n>``, or ``signal_unused``: the injection of ``n``
    events is the union of the labels ``signal_<m>`` with ``m <= n``.
    """
    rank = np.empty(n_signal, np.int64)
    rank[np.random.default_rng(seed).permutation(n_signal)] = np.arange(n_signal)
    labels = np.full(n_signal, "signal_unused", dtype=object)
    for n in sorted(set(counts), reverse=True):
        labels[rank < n] = f"signal_{n}"
    return labels


def injected_processes(counts: list[int], n: int) -> list[str]:
    """The ``process`` labels of :func:`injection_labels` that make up the injection of ``n`` events."""
    return [f"signal_{m}" for m in sorted(set(counts)) if 0 < m <= n]


def region_bins(edges: np.ndarray, first: int, config: DijetConfig) -> tuple[tuple[float, float], list[int], list[int]]:
    """The signal region starting at bin ``first`` of ``edges``: its (low, high) and the bin indices of
    the signal region and of the two sidebands."""
    sr = list(range(first, first + config.sr_bins))
    sb = [
        *range(first - config.sideband_bins, first),
        *range(first + config.sr_bins, first + config.sr_bins + config.sideband_bins),
    ]
    return (float(edges[first]), float(edges[first + config.sr_bins])), sr, sb


def signal_regions(config: DijetConfig) -> list[int]:
    """First bin of every signal region that has both sidebands inside the binning (every ``region_step``-th)."""
    n_bins = len(config.bin_edges) - 1
    return list(range(config.sideband_bins, n_bins - config.sr_bins - config.sideband_bins + 1, config.region_step))


# ------------------------------------------------------------------------------ the hunt
def train_regions(
    events: dict[str, dict[str, np.ndarray]],
    signal_labels: np.ndarray,
    processes: list[str],
    *,
    config: DijetConfig,
    out_dir: Path,
    tag: str,
) -> dict[int, list[Path]]:
    """The k-fold CWoLa classifiers of every signal region on QCD + the signal events whose
    :func:`injection_labels` are in ``processes``, exported under ``out_dir``."""
    from cms_anomaly.models.bdt import CWOLA_COLUMNS, cwola_labels
    from cms_anomaly.models.pipeline import train_cwola_region
    from cms_anomaly.processors.folds import KFold

    bkg, sig = events[BACKGROUND], events[SIGNAL]
    keep = np.isin(signal_labels, processes)
    cols = {c: np.concatenate([bkg[c], sig[c][keep]]) for c in (*CWOLA_COLUMNS, "run", "event")}
    folds = KFold(config.k_folds, config.seed).fold(cols["run"], cols["event"])
    edges = np.asarray(config.bin_edges)
    paths = {}
    for first in signal_regions(config):
        (lo, hi), _, sb = region_bins(edges, first, config)
        sidebands = ((float(edges[sb[0]]), lo), (hi, float(edges[sb[-1] + 1])))
        labels = cwola_labels(cols["mJJ"], signal_region=(lo, hi), sidebands=sidebands)
        paths[first] = train_cwola_region(
            cols,
            labels,
            folds,
            k_folds=config.k_folds,
            out_dir=out_dir,
            name=f"cwola_{tag}_sr{first}",
            seed=config.seed + first,
        )
    return paths


def _mjj_sums(sh: Any, dataset: str, processes: list[str] | None, edges: np.ndarray) -> np.ndarray:
    """(score bin, m_JJ bin of ``edges``) event counts of ``dataset``, flow bins of the score included;
    the processor's m_JJ bins merged onto ``edges`` (each must be a processor edge)."""
    from cms_anomaly.processors.histograms import DIJET_MASS_EDGES

    w, w2 = sh.sums(dataset, "mJJ", processes=processes)
    unit = float(w.sum() / w2.sum()) if w2.sum() > 0 else 1.0  # one weight per generated sample: events
    proc_edges = np.asarray(DIJET_MASS_EDGES)
    idx = [int(np.flatnonzero(np.isclose(proc_edges, e))[0]) for e in edges]
    inner = w[:, 1:-1] * unit  # the processor's in-range m_JJ bins
    return np.stack([inner[:, a:b].sum(axis=1) for a, b in itertools.pairwise(idx)], axis=1)


def scan(bkg: dict[int, np.ndarray], sig: dict[int, np.ndarray], *, config: DijetConfig) -> dict[str, Any]:
    """CWoLa hunting over every signal region from the binned classifier output.

    ``bkg`` and ``sig`` map each signal region's first bin to its (score bin, m_JJ bin) counts of
    the background and of the injected signal events (score: the calibrated rarity of the region's
    k-fold ensemble). The events above the classifier threshold that keeps ``config.efficiency`` of
    the signal region and sidebands are kept in every bin; the selected spectrum is fitted with the
    4-parameter dijet function with the signal region excluded; the local significance of the
    signal-region count over the fit is :func:`~cms_anomaly.stats.significance.poisson_gamma_p` with
    the fit's uncertainty of the signal-region expectation (``significance``; without it:
    ``significance_without_fit_error``).
    """
    import hist
    from cms_anomaly.stats import poisson_significance, threshold_bin_at_efficiency
    from cms_anomaly.stats.fits import FitError, fit_dijet
    from cms_anomaly.stats.significance import poisson_gamma_p, z_from_p

    edges = np.asarray(config.bin_edges)
    regions = []
    for first in signal_regions(config):
        (lo, hi), sr, sb = region_bins(edges, first, config)
        total = bkg[first] + sig[first]
        k = threshold_bin_at_efficiency(total[:, sr + sb].sum(axis=1), efficiency=config.efficiency)
        selected = total[k:].sum(axis=0)
        h = hist.Hist(hist.axis.Variable(edges, name="mjj", label=r"$m_{JJ}$ [GeV]"), storage=hist.storage.Weight())
        h.view(flow=False)["value"] = selected
        h.view(flow=False)["variance"] = selected
        row: dict[str, Any] = {
            "signal_region": [lo, hi],
            "first_bin": first,
            "threshold_bin": int(k),
            "selected": round(float(selected.sum())),
            "signal_in_sr_before": round(float(sig[first][:, sr].sum())),
            "signal_in_sr_after": round(float(sig[first][k:, sr].sum())),
        }
        try:
            fit = fit_dijet(h, model="lhco4", method="poisson", exclude=[(lo, hi)])
        except FitError as err:
            row.update(status=f"fit failed: {err}", significance=float("nan"))
            regions.append(row)
            continue
        n_obs, n_exp = float(selected[sr].sum()), float(fit.expected[sr].sum())
        n_err = float(np.sqrt(max(fit.expected_covariance()[np.ix_(sr, sr)].sum(), 0.0)))
        if not np.isfinite(n_err):
            row.update(status="fit failed: no covariance (Minuit's HESSE)", significance=float("nan"))
            regions.append(row)
            continue
        row.update(
            status="ok",
            observed=n_obs,
            expected=n_exp,
            expected_error=n_err,
            chi2_ndf_sidebands=fit.chi2_ndf,
            significance=z_from_p(float(poisson_gamma_p(n_obs, n_exp, n_err))),
            significance_without_fit_error=poisson_significance(n_obs, n_exp),
            _hist=h,
            _fit=fit,
        )
        regions.append(row)
    best = max((r for r in regions if r["status"] == "ok"), key=lambda r: r["significance"], default=None)
    return {"regions": regions, "best": best}


def hunt(bkg: dict[int, np.ndarray], sig: dict[int, np.ndarray], *, config: DijetConfig, seed: int) -> dict[str, Any]:
    """The scan and the global hunt over every signal region's selection (windows of 2-7 bins,
    ``config.npe`` pseudo-experiments through every region whose sideband fit converged)."""
    from cms_anomaly.stats.bumphunt import global_hunt

    result = scan(bkg, sig, config=config)
    fitted = [r for r in result["regions"] if r["status"] == "ok"]
    if fitted:
        gh = global_hunt([r["_fit"] for r in fitted], seed=seed, npe=config.npe, width_min=2, width_max=7)
        log.info("%s", gh.summary())
        result["bumphunt"] = gh
        result["bumphunt_region"] = fitted[gh.region]
    return result


# ------------------------------------------------------------------------------ report
def _public(result: dict) -> dict:
    regions = [{k: v for k, v in r.items() if not k.startswith("_")} for r in result["regions"]]
    out: dict[str, Any] = {"regions": regions}
    if result.get("best") is not None:
        out["best_signal_region"] = result["best"]["signal_region"]
        out["best_local_significance"] = result["best"]["significance"]
        out["few_events"] = few_events(result["best"]["observed"])  # selected events in the best region
    if "bumphunt" in result:
        gh = result["bumphunt"]
        out["bumphunt"] = {
            "signal_region": result["bumphunt_region"]["signal_region"],
            "window": list(gh.window),
            "local_p_value": gh.local_p_value,
            "local_significance": gh.local_significance,
            "global_p_value": gh.global_p_value,
            "global_significance": gh.global_significance,
            "global_is_lower_limit": gh.global_significance_is_lower_limit,
            "global_p_value_this_region_only": gh.global_p_value_one_region,
            "npe": gh.npe,
            "npe_dropped": gh.n_failed,
        }
    return out


def format_report(results: dict[str, dict], meta: dict, pngs: list[Path]) -> str:
    lines = [
        "# CWoLa hunting for a dijet resonance (LHC Olympics 2020, seed 002)",
        "",
        f"`dijet` selection (leading R = 1.0 jet pT > 1.2 TeV, two large-R jets): {meta['n_background']} QCD events and "
        f"{meta['n_signal_available']} W'(3.5 TeV) -> X(500) Y(100) -> 4q events available for injection. m_JJ bins: "
        f"{len(meta['bin_edges']) - 1} log-spaced from {meta['bin_edges'][0]:.0f} to {meta['bin_edges'][-1]:.0f} GeV; "
        f"signal regions of {meta['sr_bins']} bins with {meta['sideband_bins']} + {meta['sideband_bins']} sideband bins; "
        f"XGBoost {meta['k_folds']}-fold; selection efficiency {meta['efficiency']:.0%} of SR + sidebands; "
        f"4-parameter fit with the signal region excluded. Local significances fold in the fit's uncertainty "
        f"(Minuit's covariance through the function's Jacobian; Poisson mixed with a Gamma of that width). "
        f"BumpHunter scans windows of 2-7 bins in every signal region's selected spectrum; its global "
        f"significance counts every region and window: {meta['npe']} pseudo-experiments draw every region's "
        f"spectrum from its fit and refit it (in brackets: the global p-value of that region's scan alone).",
        "",
        "| injected S/B | signal events | signal in the best SR (before / after selection) | best SR [GeV] | "
        "observed / fit in SR | local significance | BumpHunter window (region) | BumpHunter global significance |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, r in results.items():
        best = next((x for x in r["regions"] if x["signal_region"] == r.get("best_signal_region")), None)
        bh = r.get("bumphunt")
        if best is None:
            lines.append(f"| {key} | {meta['injected'][key]} | | no fit converged | | | | |")
            continue
        window = "n/a" if bh is None else "{:.0f}-{:.0f} ({:.0f}-{:.0f})".format(*bh["window"], *bh["signal_region"])
        glob = (
            "n/a"
            if bh is None
            else (">" if bh["global_is_lower_limit"] else "")
            + f"{bh['global_significance']:.2f}"
            + f" (p = {bh['global_p_value']:.3g}; this region alone {bh['global_p_value_this_region_only']:.3g})"
        )
        lines.append(
            f"| {key}{few_events_mark(best['observed'])} | {meta['injected'][key]} | {best['signal_in_sr_before']} / {best['signal_in_sr_after']} | "
            f"{best['signal_region'][0]:.0f}-{best['signal_region'][1]:.0f} | {best['observed']:.0f} / "
            f"{best['expected']:.1f} +- {best['expected_error']:.1f} | {fmt(best['significance'])} | "
            f"{window} | {glob} |"
        )
    lines += [
        *note_for(lines),
        "",
        "The signal-free row is the false-discovery check: its best signal region is the largest upward "
        "fluctuation of the scan (the local column is not corrected for the look-elsewhere effect; the "
        "global column is, over signal regions and windows).",
        "",
        "Paper (LHCO R&D, 1M QCD events, 1000 signal): CWoLa hunting found the 3.5 TeV resonance; at our "
        "sample size the injected S/B values are correspondingly larger.",
        "",
        *report_footer(pngs, meta["seconds"]),
    ]
    return "\n".join(lines) + "\n"


def make_plots(results: dict[str, dict], report_dir: Path) -> list[Path]:
    """Local significance per signal region for every injection; the fit and BumpHunter of the largest and
    smallest injection (BumpHunter on the region that holds its smallest local p-value)."""
    from cms_anomaly.analyses import plotting

    pngs = []
    series = {}
    for key, r in results.items():
        ok = [x for x in r["regions"] if x["status"] == "ok"]
        centers = [np.sqrt(x["signal_region"][0] * x["signal_region"][1]) for x in ok]
        series[f"S/B = {key}"] = (centers, [x["significance"] for x in ok])
    pngs.append(
        plotting.plot_lines(
            series,
            report_dir / "cwola_scan.png",
            xlabel=r"signal-region centre $m_{JJ}$ [GeV]",
            ylabel="local significance [sigma]",
            hline=0.0,
            text="Simulation",
        )
    )
    for key in (max(results, key=float), min(results, key=float)):
        r = results[key]
        if r.get("best") is None:
            continue
        tag = f"sb{float(key):g}".replace(".", "p")
        pngs.append(
            plotting.plot_fit(
                r["best"]["_fit"],
                report_dir / f"fit_{tag}.png",
                xlabel=r"$m_{JJ}$ [GeV]",
                data_label=f"selected (S/B = {key})",
                text="Simulation",
            )
        )
        if "bumphunt" in r:
            pngs.append(
                plotting.plot_bumphunt(
                    r["bumphunt"].bumphunt_result(r["bumphunt_region"]["_fit"]),
                    report_dir / f"bumphunt_{tag}.png",
                    xlabel=r"$m_{JJ}$ [GeV]",
                    data_label=f"selected (S/B = {key})",
                    reference_label="sideband fit",
                    text="Simulation",
                )
            )
    return pngs


def _training_plots(results: dict[str, dict], models_dir: Path, report_dir: Path) -> list[Path]:
    """The training logloss per boosting round of the best signal region's fold-0 classifier, per injection
    (``results`` in the order of the injections, whose models are ``cwola_inj<k>_sr<first bin>_fold<i>``)."""
    models = {}
    for k, (key, r) in enumerate(results.items()):
        if r.get("best") is not None:
            name = f"cwola_inj{k}_sr{r['best']['first_bin']}_fold0.json"
            models[f"cwola_sb{float(key):g}".replace(".", "p")] = models_dir / name
    return plot_model_training(models, report_dir)


def _write_labels(event: np.ndarray, labels: np.ndarray, path: Path) -> Path:
    """Write the signal events' injection labels (event number, process) as parquet, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from cms_anomaly.core.atomic import atomic_output

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, suffix=".parquet") as tmp:
        table = {"event": event.astype(np.uint64), "process": labels.astype(str)}
        pq.write_table(pa.table(table), tmp)
    return path


def _train_scorers(
    events: dict, labels: np.ndarray, counts: list[int], *, config: DijetConfig, models_dir: Path
) -> dict[str, Any]:
    """Train every signal region's k-fold classifiers per injection; processor name -> k-fold scorer."""
    from cms_anomaly.models.scorers import KFoldScorer
    from cms_anomaly.processors.folds import KFold

    folds = KFold(config.k_folds, config.seed)
    scorers = {}
    for k, n in enumerate(counts):
        paths = train_regions(
            events, labels, injected_processes(counts, n), config=config, out_dir=models_dir, tag=f"inj{k}"
        )
        for first, p in paths.items():
            scorers[f"cwola_inj{k}_sr{first}"] = KFoldScorer.load(p, folds, name=f"cwola_inj{k}_sr{first}")
    return scorers


def _hunt_injections(output: dict, counts: list[int], *, config: DijetConfig) -> tuple[dict, dict, dict]:
    """Per injected S/B, the hunt over the signal regions: full results, their public part, injected events."""
    from cms_anomaly.analyses.scorehists import ScoreHists

    edges = np.asarray(config.bin_edges)
    results, public, injected = {}, {}, {}
    for k, (sb, n) in enumerate(zip(config.injections, counts, strict=True)):
        bkg, sig = {}, {}
        processes = injected_processes(counts, n)
        for first in signal_regions(config):
            sh = ScoreHists(output, f"cwola_inj{k}_sr{first}", "rarity")
            bkg[first] = _mjj_sums(sh, BACKGROUND, None, edges)
            sig[first] = _mjj_sums(sh, SIGNAL, processes, edges) if processes else np.zeros_like(bkg[first])
        key = f"{sb:g}"
        injected[key] = n
        results[key] = hunt(bkg, sig, config=config, seed=config.seed)
        public[key] = _public(results[key])
        log.info("S/B %s: best local significance %s", key, public[key].get("best_local_significance"))
    return results, public, injected


def run_dijet(
    out: str | os.PathLike, config: DijetConfig = DijetConfig(), *, samples_dir: str | os.PathLike | None = None
) -> Path:
    """Run the whole study into ``out`` (samples in ``samples_dir``, default ``out/samples``).

    Per injected S/B, the k-fold classifiers of every signal region are trained on the feature
    tables (QCD + the injected signal events) and exported; a second processor pass
    (``OUT/pass2/histograms.*``) applies all of them through ``coffea.ml_tools`` (each event scored by
    the fold model that did not see it, calibrated to a rarity) and fills the rarity against m_JJ per
    dataset and process, where the signal events carry their injection label (``OUT/labels``). The
    scans, fits and BumpHunter read those histograms only.
    """
    from cms_anomaly.analyses.analysis import processor_pass
    from cms_anomaly.analyses.cocktail import CocktailConfig, feature_tables

    out = Path(out)
    samples_dir = Path(samples_dir) if samples_dir is not None else out / "samples"
    unknown = [e for e in config.bin_edges if not np.isclose(DIJET_MASS_EDGES, e).any()]
    if unknown:
        raise ValueError(f"bin_edges {unknown} are not edges of the processor's m_JJ axis {DIJET_MASS_EDGES}")
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    production = CocktailConfig(events=dict(config.events), seed=config.seed, execution=config.execution)
    features_dir, fileset = feature_tables(samples_dir, production, selection="dijet")
    events = load_events(features_dir)
    times["samples"] = time.perf_counter() - t0

    t = time.perf_counter()
    n_bkg, n_sig = len(events[BACKGROUND]["mJJ"]), len(events[SIGNAL]["mJJ"])
    counts = injected_counts(n_bkg, n_sig, config.injections)
    labels = injection_labels(n_sig, counts, seed=config.seed)
    labels_path = _write_labels(events[SIGNAL]["event"], labels, out / "labels" / f"{SIGNAL}.parquet")
    scorers = _train_scorers(events, labels, counts, config=config, models_dir=out / "models")
    times["training"] = time.perf_counter() - t

    t = time.perf_counter()
    signal_entry = {**fileset[SIGNAL], "metadata": {**fileset[SIGNAL]["metadata"], "labels": str(labels_path)}}
    output = processor_pass(
        {BACKGROUND: fileset[BACKGROUND], SIGNAL: signal_entry},
        out=out / "pass2",
        selection="dijet",
        lumi_pb=None,
        execution=config.execution,
        scorers=scorers,
        features=False,
        score_features=("mJJ",),
    )
    times["pass2"] = time.perf_counter() - t

    t = time.perf_counter()
    results, public, injected = _hunt_injections(output, counts, config=config)
    times["hunt"] = time.perf_counter() - t
    report_dir = fresh_report_dir(out)
    t = time.perf_counter()
    pngs = make_plots(results, report_dir) + _training_plots(results, out / "models", report_dir)
    times["plots"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - t0
    meta = {
        "config": asdict(config),
        "samples_dir": str(samples_dir),
        "n_background": n_bkg,
        "n_signal_available": n_sig,
        "injected": injected,
        "bin_edges": list(config.bin_edges),
        "sr_bins": config.sr_bins,
        "sideband_bins": config.sideband_bins,
        "region_step": config.region_step,
        "k_folds": config.k_folds,
        "efficiency": config.efficiency,
        "npe": config.npe,
        "histograms": {"file": str(out / "pass2" / "histograms.coffea"), "labels": str(labels_path)},
        "seconds": times,
    }
    markdown = format_report(public, meta, pngs)
    return write_report(report_dir, markdown=markdown, payload={**meta, "result": public}, title="CWoLa dijet hunt")


# ------------------------------------------------------------------------------ CLI
def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "dijet",
        help="CWoLa hunting + BumpHunter on QCD dijets with an injected 3.5 TeV resonance (LHC Olympics)",
        description=(
            "Generate (or reuse) QCD dijets and the LHCO-like W'(3.5 TeV) -> X Y -> 4q signal, run the dijet processor, "
            "inject the signal at several S/B values (and none), scan signal regions with a k-fold XGBoost CWoLa "
            "classifier, fit the selected m_JJ spectrum with the 4-parameter function and run BumpHunter. Writes OUT/report."
        ),
    )
    add_production_arguments(
        p, default_out="out/dijet", default_samples="out/samples/dijet", samples_help="", device=False
    )
    p.add_argument(
        "--injections",
        type=non_negative_float,
        nargs="+",
        default=list(DijetConfig.injections),
        help="signal-to-background ratios to inject (0 = the signal-free check)",
    )
    p.add_argument("--efficiency", type=fraction, default=DijetConfig.efficiency, help="CWoLa selection efficiency")
    p.set_defaults(func=_cmd)


def _cmd(args: Any) -> int:
    config = replace(
        DijetConfig(),
        seed=args.seed,
        injections=tuple(args.injections),
        efficiency=args.efficiency,
        execution=execution_from(args),
    ).scaled(args.events)
    summary = run_dijet(args.out, config, samples_dir=args.samples)
    return print_report(summary)
