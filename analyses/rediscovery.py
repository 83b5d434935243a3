"""The main job: re-discover the top quark with an anomaly detector (Knapp et al., seed 000, sec. 4).

Steps (each a function below, the samples of step 1 from :mod:`~cms_anomaly.analyses.samples`;
``run_rediscovery`` wires them):

1. **Samples**: two independent productions of the muon + jets SM processes (W(mu nu)+jet,
   Z/gamma*(mu mu)+jet, ttbar; QCD optionally): one is mixed into **pseudo-data** at the
   luminosity the W+jets sample allows (ttbar with its SM share, labels kept apart), the other is
   the **simulation** used as background model, normalised to the same luminosity.
2. **First processor pass** (``top_rediscovery`` selection) on a local Dask cluster: cut-flows,
   histograms and the per-event feature tables.
3. **Training**: ALAD (Knapp Table 2; L1 score) on the unlabelled pseudo-data features (HLF-24);
   an autoencoder on the same inputs as a cross-check; the trivial baseline ALAD must beat (the L1
   distance of the standardised inputs from their median, :mod:`~cms_anomaly.models.baseline`)
   fitted on the same training events.
4. **Second processor pass** with the exported TorchScript files (ALAD, the AE and the baseline) applied through
   ``coffea.ml_tools``: per dataset and true process (pseudo-data labels; never used in training)
   each score against H_T, M_J, N_J, N_b and N_J x N_b, 50 log bins per score decade.
5. **Anomaly selection**, read off those histograms only: the score-bin edge that keeps at most
   alpha of the data; H_T, M_J, N_J, N_B before and after,
   for data and simulation; ASTF data vs background-only simulation; the post-processing
   selection (PPS: N_J >= 6, N_b >= 2) with and without ttbar in the simulation; the ttbar
   enrichment measured with the hidden labels; ROC of the detector on labelled simulation.
6. **Report**: ``summary.md``, ``summary.json``, ``index.html`` and PNG plots in ``OUT/report``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from cms_anomaly.analyses import analysis, rediscovery_plots, samples
from cms_anomaly.analyses.analysis import Execution, fmt
from cms_anomaly.analyses.baselines import BASELINE_AUC_MARGIN, baseline_sentence, beats_baseline, fit_baseline
from cms_anomaly.analyses.headline import cpu_seconds as analysis_cpu_seconds
from cms_anomaly.analyses.headline import paper_alpha, paper_alpha_sentence, with_note
from cms_anomaly.analyses.plot_training import plot_model_training
from cms_anomaly.analyses.samples import BACKGROUNDS, PROCESSES
from cms_anomaly.core.argtypes import fraction, positive_float, positive_int
from cms_anomaly.core.constants import SQRT_S
from cms_anomaly.stats.headline import few_events_mark

log = logging.getLogger(__name__)

ASTF_FEATURES = ("ht", "m_jets", "n_jets", "n_bjets")
REPORT_ALPHAS = (1e-3, 1e-2, 5e-2, 1e-1)


class RediscoveryError(RuntimeError):
    """The main job cannot go on; the message says which step and why."""


@dataclass(frozen=True)
class RediscoveryConfig:
    """Sizes and switches of the main job (defaults: ~15 min on 2 cores).

    ``events`` are generated events per process for *each* of the two productions (pseudo-data
    and simulation); the data luminosity is the largest the W+jets sample allows.
    """

    events: dict[str, int] = field(default_factory=lambda: {"wjets": 40000, "zjets": 5000, "ttbar": 3750})
    #: ttbar cross section of the pseudo-data (and of the simulation it is compared with) in units of
    #: Pythia's: Knapp et al. study ttbar as a rare process; Pythia's LO W + 1 parton gives
    #: sigma(W(mu nu) + >= 2 clean jets) ~ 40 pb, several times below CMS's W+jets, which at the
    #: full ttbar rate would make ttbar about half of the selected events. 0.1 keeps it ~10 %.
    ttbar_scale: float = 0.1
    with_qcd: bool = False
    qcd_events: int = 300
    seed: int = 1
    alpha: float = 1e-2
    #: ALAD's training: None trains by its step budget (models/registry.py, the reference's optimiser
    #: steps with weight averaging); a number trains that many epochs instead
    epochs: int | None = None
    ae_epochs: int = 60
    device: str = "auto"
    #: where the productions and the processor run
    execution: Execution = field(default_factory=Execution)
    pps_min_jets: int = 6
    pps_min_bjets: int = 2
    #: a coffea fileset JSON whose ``is_data`` datasets (with ``lumi_pb``) replace the pseudo-data,
    #: e.g. the 2012 SingleMu records of ``cms-anomaly opendata fileset``; the simulation is then
    #: generated at the data's sqrt(s) and the ttbar enrichment (which needs labels) is not measured
    data_fileset: str | None = None

    def scaled(self, factor: float) -> RediscoveryConfig:
        """The same job with ``factor`` times more events."""
        return replace(
            self,
            events={k: max(1, round(v * factor)) for k, v in self.events.items()},
            qcd_events=max(1, round(self.qcd_events * factor)),
        )


# ------------------------------------------------------------------------------------- step 1
def make_samples(samples_dir: Path, config: RediscoveryConfig) -> tuple[dict, dict]:
    """(simulation fileset, data fileset entry) of ``config`` (:func:`~cms_anomaly.analyses.samples.make_samples`)."""
    return samples.make_samples(
        samples_dir,
        events=config.events,
        seed=config.seed,
        execution=config.execution,
        ttbar_scale=config.ttbar_scale,
        data_fileset=config.data_fileset,
        qcd_events=config.qcd_events if config.with_qcd else None,
    )


# ------------------------------------------------------------------------------------- steps 2, 4
def run_pass(
    fileset: dict, *, out: Path, config: RediscoveryConfig, lumi_pb: float, scorers: dict | None = None, features: bool
) -> dict:
    """One processor pass with the ``top_rediscovery`` selection; histograms saved under ``out``."""
    return analysis.processor_pass(
        fileset,
        out=out,
        selection="top_rediscovery",
        lumi_pb=lumi_pb,
        execution=config.execution,
        scorers=scorers,
        features=features,
    )


# ------------------------------------------------------------------------------------- step 3
def train_detectors(features_dir: Path, out: Path, config: RediscoveryConfig) -> dict[str, Path]:
    """ALAD (L1 score) and an AE cross-check, trained on the pseudo-data only (no labels), and the
    trivial baseline fitted on ALAD's training events (same inputs, split and seed)."""
    from cms_anomaly.models.pipeline import TrainOptions, train_and_export

    paths = {}
    alad = train_and_export(
        "alad",
        features_dir=features_dir,
        out_dir=out,
        feature_set="hlf24",
        datasets=["data"],
        options=TrainOptions(epochs=config.epochs, seed=config.seed, device=config.device, progress=False),
    )
    by_score = {p.stem.rsplit("_", 1)[-1]: p for p in alad.paths}
    paths["alad"] = by_score.get("l1", alad.paths[0])
    ae = train_and_export(
        "ae",
        features_dir=features_dir,
        out_dir=out,
        feature_set="hlf24",
        datasets=["data"],
        options=TrainOptions(epochs=config.ae_epochs, seed=config.seed, device=config.device, progress=False),
    )
    paths["ae"] = ae.paths[0]
    options = TrainOptions(seed=config.seed, progress=False)
    paths["baseline"] = fit_baseline(features_dir, out, feature_set="hlf24", options=options, datasets=["data"])
    return paths


# ------------------------------------------------------------------------------------- step 5
def _purity_ratio(k: int, n: int, k0: int, n0: int) -> dict[str, float]:
    """Fraction of ttbar among the ``n`` selected data events (``k`` of them ttbar) over its fraction
    ``k0 / n0`` among all, with the Agresti-Coull interval of the selected fraction (68 % CL)."""
    from cms_anomaly.stats import agresti_coull_interval
    from cms_anomaly.stats.headline import few_events

    f_all = k0 / n0 if n0 else float("nan")
    ci = agresti_coull_interval(k, n) if n else None
    if ci is None or not f_all:
        return {
            "selected": n,
            "ttbar_selected": k,
            "fraction_all": f_all,
            "fraction_selected": float("nan"),
            "purity_ratio": float("nan"),
            "purity_ratio_low": float("nan"),
            "purity_ratio_high": float("nan"),
            "few_events": True,
        }
    return {
        "selected": n,
        "ttbar_selected": k,
        "fraction_all": f_all,
        "fraction_selected": k / n,
        "purity_ratio": (k / n) / f_all,
        "purity_ratio_low": float(ci.low) / f_all,
        "purity_ratio_high": float(ci.high) / f_all,
        "few_events": few_events(n),
    }


def _efficiency_ratio(
    signal: tuple[np.ndarray, np.ndarray], background: tuple[np.ndarray, np.ndarray], *, first_bin: int
) -> dict[str, float]:
    """eps_ttbar / eps_(W+Z) in score bins >= ``first_bin`` of labelled simulation (LR+ = TPR/FPR), 68 % CL.

    ``signal`` and ``background`` are (sum w, sum w^2) per score bin. This is Knapp et al.'s
    "factor 20" (a ratio of selection efficiencies on labelled MC), not the purity ratio of
    :func:`_purity_ratio`. Each efficiency has its Agresti-Coull interval (effective entries of
    the weighted sample); the ratio's bounds combine them conservatively (low / high).
    """
    from cms_anomaly.stats import effective_entries_from_sums, efficiency_from_sums
    from cms_anomaly.stats.headline import few_events

    (ws, w2s), (wb, w2b) = signal, background
    e_s = efficiency_from_sums(ws[first_bin:].sum(), ws.sum(), w2s.sum())
    e_b = efficiency_from_sums(wb[first_bin:].sum(), wb.sum(), w2b.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(e_s.estimate / e_b.estimate) if e_b.estimate > 0 else float("inf")
        high = float(e_s.high / e_b.low) if e_b.low > 0 else float("inf")

    def entries(w: np.ndarray, w2: np.ndarray) -> float:  # effective entries above the threshold
        return effective_entries_from_sums(w[first_bin:].sum(), w2[first_bin:].sum())

    # effective entries (sum w)^2 / sum w^2 of the weighted simulation: the raw counts for unit weights
    passed = round(entries(ws, w2s)), round(entries(wb, w2b))
    return {
        "eps_ttbar": float(e_s.estimate),
        "eps_ttbar_low": float(e_s.low),
        "eps_ttbar_high": float(e_s.high),
        "eps_background": float(e_b.estimate),
        "eps_background_low": float(e_b.low),
        "eps_background_high": float(e_b.high),
        "lr_plus": ratio,
        "lr_plus_low": float(e_s.low / e_b.high) if e_b.high > 0 else float("nan"),
        "lr_plus_high": high,
        "ttbar_passed": passed[0],
        "background_passed": passed[1],
        "few_events": few_events(*passed),
    }


def analyse(
    output: dict[str, Any], *, model: str = "alad", score: str = "l1", alpha: float, config: RediscoveryConfig
) -> dict[str, Any]:
    """ASTF, PPS yields, ttbar enrichment and the labelled-simulation ROC from the processor's histograms.

    ``output`` is the second processor pass (``{dataset: {"hists": ...}}``, the ``model`` scorer
    applied); every number is read off its ``score_<model>_<score>_vs_*`` histograms: the
    threshold that keeps at most ``alpha`` of the data is a score-bin edge
    (:func:`~cms_anomaly.stats.threshold_bin_at_efficiency`).
    """
    from cms_anomaly.analyses.scorehists import ScoreHists
    from cms_anomaly.stats import roc_from_sums, threshold_bin_at_efficiency

    sh = ScoreHists(output, model, score)
    data_w, _ = sh.score_sums("data")
    n_data = round(data_w.sum())
    k_alpha = threshold_bin_at_efficiency(data_w, efficiency=alpha)
    # the hidden process labels of pseudo-data fill the process axis; real data carry "data"
    labelled = "ttbar" in sh.processes("data")
    roles = [r for r in ("data", *PROCESSES) if r in output]
    bkg_mc = [r for r in BACKGROUNDS if r in output]
    hists, astfs = _astf_hists(sh, roles, bkg_mc, k_alpha)

    def yields(first_bin: int, min_jets: int = 0, min_bjets: int = 0) -> dict[str, dict[str, float]]:
        return _yields(sh, roles, bkg_mc, first_bin=first_bin, min_jets=min_jets, min_bjets=min_bjets)

    unit_weight = _unit_weights(yields(0), roles, bkg_mc)
    pps_after = yields(k_alpha, config.pps_min_jets, config.pps_min_bjets)
    pps_before = yields(0, config.pps_min_jets, config.pps_min_bjets)
    selected_all = yields(k_alpha)
    sig = sh.score_sums("ttbar")
    bkg = tuple(np.sum([sh.score_sums(r)[i] for r in bkg_mc], axis=0) for i in (0, 1))
    roc = roc_from_sums(bkg[0], sig[0], bkg_sumw2=bkg[1], sig_sumw2=sig[1])
    purity, efficiency_ratio = _ratios(sh, sig, bkg, alpha=alpha, labelled=labelled, n_data=n_data)
    return {
        "alpha": alpha,
        "threshold": sh.threshold(k_alpha),
        "n_data": n_data,
        "n_data_selected": round(data_w[k_alpha:].sum()),
        "purity_ratio": purity,
        "efficiency_ratio": efficiency_ratio,
        "pps_after_anomaly_selection": {
            "yields": pps_after,
            "vs_background": _excess(pps_after, "background", unit_weight),
            "vs_background_ttbar": _excess(pps_after, "background + ttbar", unit_weight),
        },
        "pps_without_anomaly_selection": {
            "yields": pps_before,
            "vs_background": _excess(pps_before, "background", unit_weight),
            "vs_background_ttbar": _excess(pps_before, "background + ttbar", unit_weight),
        },
        "anomaly_selected_yields": selected_all,
        "roc_auc_ttbar_vs_background": float(roc.auc()),
        "_hists": hists,
        "_astf": astfs,
        "_roc": roc,
    }


def _astf_hists(sh: Any, roles: list[str], bkg_mc: list[str], k_alpha: int) -> tuple[dict, dict]:
    """Per ASTF feature its histograms (each role and the summed simulations, before and after the
    selection from score bin ``k_alpha``) and the ASTFs of data, background and background + ttbar."""
    from cms_anomaly.stats import astf

    hists: dict[str, dict[str, Any]] = {}
    astfs: dict[str, dict[str, Any]] = {}
    for name in ASTF_FEATURES:
        h = {}
        for role in roles:
            h[f"{role}_all"] = sh.feature(role, name)
            h[f"{role}_selected"] = sh.feature(role, name, first_bin=k_alpha)
        for stage in ("all", "selected"):
            h[f"background_{stage}"] = sum((h[f"{r}_{stage}"] for r in bkg_mc[1:]), start=h[f"{bkg_mc[0]}_{stage}"])
            h[f"with_ttbar_{stage}"] = h[f"background_{stage}"] + h[f"ttbar_{stage}"]
        hists[name] = h
        astfs[name] = {
            "data": astf(h["data_all"], h["data_selected"]),
            "background MC": astf(h["background_all"], h["background_selected"]),
            "background + ttbar MC": astf(h["with_ttbar_all"], h["with_ttbar_selected"]),
        }
    return hists, astfs


def _yields(
    sh: Any, roles: list[str], bkg_mc: list[str], *, first_bin: int, min_jets: int, min_bjets: int
) -> dict[str, dict[str, float]]:
    """Each role's yield from score bin ``first_bin`` with the jet counts, and the summed backgrounds."""
    out = {role: sh.count_yield(role, first_bin=first_bin, min_jets=min_jets, min_bjets=min_bjets) for role in roles}
    bkg = [out[r] for r in bkg_mc]
    out["background"] = {
        "sumw": sum(b["sumw"] for b in bkg),
        "error": float(np.sqrt(sum(b["error"] ** 2 for b in bkg))),
        "entries": sum(b["entries"] for b in bkg),
    }
    out["background + ttbar"] = {
        "sumw": out["background"]["sumw"] + out["ttbar"]["sumw"],
        "error": float(np.hypot(out["background"]["error"], out["ttbar"]["error"])),
        "entries": out["background"]["entries"] + out["ttbar"]["entries"],
    }
    return out


def _unit_weights(unselected: dict, roles: list[str], bkg_mc: list[str]) -> dict[str, float]:
    """The weight one simulated event carries, per reference: sets the exposure of an empty simulation."""
    unit_weight = {
        role: unselected[role]["sumw"] / unselected[role]["entries"] if unselected[role]["entries"] else 1.0
        for role in roles[1:]
    }
    unit_weight["background"] = max((unit_weight[r] for r in bkg_mc), default=1.0)
    unit_weight["background + ttbar"] = max(unit_weight["background"], unit_weight.get("ttbar", 0.0))
    return unit_weight


def _excess(y: dict, reference: str, unit_weight: dict[str, float]) -> dict[str, float]:
    """Z_Bi of the observed yield against the simulation's, whose own statistical error counts (the
    simulation is no larger than the pseudo-data); defined also when no MC event passes."""
    from cms_anomaly.stats import on_off_significance
    from cms_anomaly.stats.headline import few_events

    n, b, eb = y["data"]["sumw"], y[reference]["sumw"], y[reference]["error"]
    if b > 0 and eb > 0:
        n_off, tau = b**2 / eb**2, b / eb**2
    else:
        n_off, tau = 0.0, 1.0 / unit_weight[reference]
    return {
        "observed": n,
        "expected": b,
        "expected_error": eb,
        "difference": n - b,
        "significance": on_off_significance(n, n_off, tau),
        "few_events": few_events(n),
    }


def _ratios(
    sh: Any, sig: tuple, bkg: tuple, *, alpha: float, labelled: bool, n_data: int
) -> tuple[dict[str, dict], dict[str, dict]]:
    """(purity ratio, efficiency ratio) at each report alpha and ``alpha``; the purity needs the labels."""
    from cms_anomaly.stats import threshold_bin_at_efficiency

    data_w, _ = sh.score_sums("data")
    purity, efficiency_ratio = {}, {}
    ttbar_w, _ = sh.score_sums("data", processes=["ttbar"]) if labelled else (None, None)
    for a in sorted({*REPORT_ALPHAS, alpha}):
        k = threshold_bin_at_efficiency(data_w, efficiency=a)
        thr = sh.threshold(k)
        if labelled:
            purity[f"{a:g}"] = {
                "threshold": thr,
                **_purity_ratio(round(ttbar_w[k:].sum()), round(data_w[k:].sum()), round(ttbar_w.sum()), n_data),
            }
        # the paper's figure of merit: efficiencies on labelled simulation at the data's threshold
        efficiency_ratio[f"{a:g}"] = {
            "threshold": thr,
            "data_fraction": float(data_w[k:].sum() / data_w.sum()),
            **_efficiency_ratio(sig, bkg, first_bin=k),
        }
    return purity, efficiency_ratio


# ------------------------------------------------------------------------------------- step 6
def write_report(result: dict, report_dir: Path, *, meta: dict[str, Any], pngs: list[Path]) -> Path:
    """``summary.md``, ``summary.json`` and ``index.html`` (numbers, tables, plots)."""
    public = {k: v for k, v in result.items() if not k.startswith("_")}
    payload = {**meta, "result": public}
    lines = [
        "# Top-quark rediscovery with ALAD (Knapp et al., sec. 4)",
        "",
        f"{_data_text(meta)}, {public['n_data']} after the `top_rediscovery` selection. ALAD (L1 score; "
        f"{meta.get('alad_objective', 'ALAD')}) trained on them without labels; background model: an independent simulation of W and Z, normalised to the same luminosity.",
        "",
        "## ttbar efficiency ratio on labelled simulation (the paper's figure of merit)",
        "",
        "eps_ttbar / eps_(W+Z): the fractions of simulated ttbar and of simulated W+Z events above the threshold "
        'that selects alpha of the data (LR+ = TPR/FPR; Knapp et al.\'s "factor 20" is this ratio).',
        "",
        "| alpha | threshold | eps_ttbar (68 % CL) | eps_(W+Z) (68 % CL) | eps_ttbar / eps_(W+Z) (68 % CL) |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += _efficiency_lines(public)
    lines += _purity_lines(public)
    lines += _pps_lines(public, meta)
    lines += analysis.report_footer(pngs, meta["seconds"])
    return analysis.write_report(report_dir, markdown="\n".join(lines) + "\n", payload=payload, title="Top rediscovery")


def _data_text(meta: dict[str, Any]) -> str:
    """What the (pseudo-)data are, for the report's opening sentence."""
    sqrt_s = meta.get("sqrt_s", SQRT_S) / 1000.0
    if meta["data_composition"]:
        scale = meta["config"].get("ttbar_scale", 1.0)
        return (
            f"Pseudo-data: {meta['lumi_pb']:.3g} pb^-1 of generated {sqrt_s:g} TeV W(mu nu)+jets, Z/gamma*(mu mu)+jets "
            f"and ttbar at {scale:g} x its Pythia cross section, as a rare process "
            f"({', '.join(f'{k} {v}' for k, v in meta['data_composition'].items())} events before selection)"
        )
    return f"Data: {meta['lumi_pb']:.4g} pb^-1 of {sqrt_s:g} TeV collisions from `{meta['data_fileset']}`"


def _efficiency_lines(public: dict) -> list[str]:
    """The efficiency ratio's table rows and the sentence on alpha = 1e-3 and the working alpha."""
    a = f"{public['alpha']:g}"
    rows: list[str] = []
    for key, r in public["efficiency_ratio"].items():
        rows.append(
            f"| {key}{few_events_mark(r['ttbar_passed'], r['background_passed'])} | {fmt(r['threshold'], 4)} | {fmt(r['eps_ttbar'])} [{fmt(r['eps_ttbar_low'])}, "
            f"{fmt(r['eps_ttbar_high'])}] ({r['ttbar_passed']} ev.) | {fmt(r['eps_background'])} "
            f"[{fmt(r['eps_background_low'])}, {fmt(r['eps_background_high'])}] ({r['background_passed']} ev.) | "
            f"x{fmt(r['lr_plus'])} [{fmt(r['lr_plus_low'])}, {fmt(r['lr_plus_high'])}] |"
        )
    r3, ra = public["efficiency_ratio"].get("0.001", {}), public["efficiency_ratio"][a]
    lines = with_note(rows)
    lines += [
        "",
        f"At alpha = 1e-3: eps_ttbar / eps_(W+Z) = x{fmt(r3.get('lr_plus', float('nan')))} "
        f"[{fmt(r3.get('lr_plus_low', float('nan')))}, {fmt(r3.get('lr_plus_high', float('nan')))}] (paper: about x20); "
        f"at the working alpha = {a}: x{fmt(ra['lr_plus'])} [{fmt(ra['lr_plus_low'])}, {fmt(ra['lr_plus_high'])}].",
        *([] if "paper_alpha" not in public else ["", paper_alpha_sentence(public["paper_alpha"])]),
        "",
        "## ttbar purity ratio of the anomaly selection in the (pseudo-)data",
        "",
    ]
    return lines


def _purity_lines(public: dict) -> list[str]:
    """The purity ratio's table (pseudo-data, from the hidden labels) or why it is not measured."""
    enr = public["purity_ratio"]
    a = f"{public['alpha']:g}"
    if not enr:
        return [
            "Not measured: the process of a real-data event is unknown (the purity ratio needs the labels of "
            "pseudo-data). The efficiency ratio above and the PPS comparison below are the measurements."
        ]
    lines = [
        "The purity ratio f_ttbar(selected) / f_ttbar(all) of the pseudo-data, from its hidden labels: a "
        "different quantity from the efficiency ratio above (it is capped at 1 / f_ttbar(all)).",
        "",
        "| alpha | threshold | selected | ttbar among selected | ttbar fraction all -> selected | purity ratio (68 % CL) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    rows = []
    for key, e in enr.items():
        rows.append(
            f"| {key}{few_events_mark(e['selected'])} | {fmt(e['threshold'], 4)} | {e['selected']} | {e['ttbar_selected']} | "
            f"{fmt(e['fraction_all'])} -> {fmt(e['fraction_selected'])} | "
            f"x{fmt(e['purity_ratio'])} [{fmt(e['purity_ratio_low'])}, {fmt(e['purity_ratio_high'])}] |"
        )
    e3 = enr.get("0.001", {})
    lines += with_note(rows)
    lines += [
        "",
        f"At alpha = 1e-3 the purity ratio is x{fmt(e3.get('purity_ratio', float('nan')))} "
        f"(68 % CL [{fmt(e3.get('purity_ratio_low', float('nan')))}, {fmt(e3.get('purity_ratio_high', float('nan')))}], "
        f"{e3.get('selected', 0)} events selected). At the working alpha = {a}: "
        f"x{fmt(enr[a]['purity_ratio'])} [{fmt(enr[a]['purity_ratio_low'])}, {fmt(enr[a]['purity_ratio_high'])}].",
    ]
    return lines


def _baseline_lines(public: dict) -> list[str]:
    """The baseline's AUC and efficiency ratio beside the detector's, and whether the detector beats it."""
    if "baseline_roc_auc_ttbar_vs_background" not in public:
        return []
    b_auc = public["baseline_roc_auc_ttbar_vs_background"]
    a = f"{public['alpha']:g}"
    rb = public["baseline"]["efficiency_ratio"][a]
    return [
        "",
        f"The trivial baseline (the L1 distance of the standardised inputs from their median, fitted on ALAD's "
        f"training events): AUC = {b_auc:.3f}; at alpha = {a} eps_ttbar / eps_(W+Z) = x{fmt(rb['lr_plus'])} "
        f"[{fmt(rb['lr_plus_low'])}, {fmt(rb['lr_plus_high'])}] (ALAD: "
        f"x{fmt(public['efficiency_ratio'][a]['lr_plus'])}).",
        "",
        baseline_sentence(public["roc_auc_ttbar_vs_background"], b_auc),
    ]


def _pps_lines(public: dict, meta: dict[str, Any]) -> list[str]:
    """The ROC sentence and the post-processing selection's table with its reading."""
    a = f"{public['alpha']:g}"
    pps = public["pps_after_anomaly_selection"]
    pps0 = public["pps_without_anomaly_selection"]
    lines = [
        "",
        f"ROC of the detector on labelled simulation (ttbar vs W+Z): AUC = {public['roc_auc_ttbar_vs_background']:.3f}.",
        *_baseline_lines(public),
        "",
        f"## Post-processing selection (N_J >= {meta['pps_min_jets']}, N_b >= {meta['pps_min_bjets']})",
        "",
        "| | observed | background MC (W+Z) | Z_Bi | background + ttbar MC | Z_Bi |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    rows = []
    for label, block in ((f"after the anomaly selection (alpha = {a})", pps), ("without the anomaly selection", pps0)):
        b, bt = block["vs_background"], block["vs_background_ttbar"]
        rows.append(
            f"| {label}{few_events_mark(b['observed'])} | {b['observed']:.0f} | {b['expected']:.2f} +- {b['expected_error']:.2f} | "
            f"{fmt(b['significance'])} sigma | {bt['expected']:.2f} +- {bt['expected_error']:.2f} | {fmt(bt['significance'])} sigma |"
        )
    lines += with_note(rows)
    excess_only_without_ttbar = (pps["vs_background"]["significance"] > 2) and abs(
        pps["vs_background_ttbar"]["significance"]
    ) < 2
    lines += [
        "",
        (
            "The PPS excess appears only when ttbar is missing from the simulation: the data exceed the W+Z "
            "expectation and agree with it once ttbar is added."
            if excess_only_without_ttbar
            else "The PPS comparison does not show an excess that is significant (> 2 sigma) only without ttbar at this "
            "sample size; see the table for the numbers."
        ),
        "",
        "Z_Bi: significance of the observed yield over the simulated one, counting the simulation's own "
        "statistical error (on/off binomial test, Cousins, Linnemann, Tucker 2008); negative for a deficit.",
        "",
    ]
    return lines


# ------------------------------------------------------------------------------------- the job
def _detector_results(second: dict, scorers: dict, config: RediscoveryConfig) -> dict[str, Any]:
    """:func:`analyse` of ALAD's score, with the AE cross-check and the trivial baseline beside it
    (their AUCs and ratios, read off the same pass's histograms)."""

    def of(model: str) -> dict[str, Any]:
        return analyse(second, model=model, score=scorers[model].output_names[0], alpha=config.alpha, config=config)

    result, ae_result, base = of("alad"), of("ae"), of("baseline")
    result["ae_crosscheck"] = {
        "roc_auc_ttbar_vs_background": ae_result["roc_auc_ttbar_vs_background"],
        "purity_ratio": ae_result["purity_ratio"],
    }
    result["baseline_roc_auc_ttbar_vs_background"] = base["roc_auc_ttbar_vs_background"]
    result["baseline"] = {
        "definition": "sum_i |x_i - median_i| / std_i of the HLF-24 inputs, median and std of ALAD's training events",
        "efficiency_ratio": base["efficiency_ratio"],
        "purity_ratio": base["purity_ratio"],
        "beats_baseline": beats_baseline(result["roc_auc_ttbar_vs_background"], base["roc_auc_ttbar_vs_background"]),
        "auc_margin": BASELINE_AUC_MARGIN,
    }
    result["_baseline_roc"] = base["_roc"]
    return result


def run_rediscovery(out: str | os.PathLike, config: RediscoveryConfig = RediscoveryConfig()) -> Path:
    """Run the whole analysis into ``out``; returns the path of ``report/summary.md``."""
    import pandas as pd
    from cms_anomaly.models import export
    from cms_anomaly.models.scorers import load_scorer

    out = Path(out)
    times: dict[str, float] = {}
    t0, cpu0 = time.perf_counter(), analysis_cpu_seconds()
    simulation, data = make_samples(out / "samples", config)
    times["generation"] = time.perf_counter() - t0
    data_meta = data["data"]["metadata"]
    lumi = data_meta["lumi_pb"]
    labels_df = pd.read_parquet(data_meta["labels"]) if "labels" in data_meta else None  # pseudo-data only
    fileset = {**data, **simulation}

    t = time.perf_counter()
    first = run_pass(fileset, out=out / "pass1", config=config, lumi_pb=lumi, features=True)
    times["pass1"] = time.perf_counter() - t
    if (
        "data" not in first
        or first["data"]["cutflow"]["events"].get(list(first["data"]["cutflow"]["events"])[-1], 0)
        < analysis.MIN_PSEUDO_DATA_EVENTS
    ):
        raise RediscoveryError(
            f"fewer than {analysis.MIN_PSEUDO_DATA_EVENTS} pseudo-data events pass the top_rediscovery selection: "
            "generate more (--events)"
        )

    t = time.perf_counter()
    models = train_detectors(out / "pass1" / "features", out / "models", config)
    times["training"] = time.perf_counter() - t

    t = time.perf_counter()
    # the exported TorchScript files, applied inside the processor through coffea.ml_tools: every
    # number and plot of the report is read off this pass's histograms (saved in pass2/)
    scorers = {name: load_scorer(path) for name, path in models.items()}
    second = run_pass(fileset, out=out / "pass2", config=config, lumi_pb=lumi, scorers=scorers, features=False)
    times["pass2"] = time.perf_counter() - t

    t = time.perf_counter()
    alad_score = scorers["alad"].output_names[0]
    result = _detector_results(second, scorers, config)
    result["histograms"] = {
        "file": str(out / "pass2" / "histograms.coffea"),
        "model": "alad",
        "score": alad_score,
        "crosscheck_model": "ae",
        "crosscheck_score": scorers["ae"].output_names[0],
        "baseline_model": "baseline",
        "baseline_score": scorers["baseline"].output_names[0],
    }
    report_dir = analysis.fresh_report_dir(out)
    pngs = rediscovery_plots.make_plots(
        result,
        report_dir,
        lumi_pb=lumi,
        output=second,
        model="alad",
        score=alad_score,
        data_label="Pseudo-data" if labels_df is not None else "Data",
        real_data=labels_df is None,
    ) + plot_model_training(models, report_dir)
    times["analysis"], times["total"] = time.perf_counter() - t, time.perf_counter() - t0
    result["paper_alpha"] = _paper_alpha(result, config, wall_seconds=times["total"], cpu_start=cpu0)
    composition = {} if labels_df is None else dict(labels_df["process"].value_counts().sort_index().items())
    meta = {
        "lumi_pb": lumi,
        "sqrt_s": float(data_meta.get("sqrt_s", SQRT_S)),
        "data_fileset": config.data_fileset,
        "config": asdict(config),
        "models": {k: str(v) for k, v in models.items()},
        "alad_objective": export.load_card(models["alad"]).architecture.get("objective", "ALAD"),
        "data_composition": {str(k): int(v) for k, v in composition.items()},
        "seconds": times,
        "pps_min_jets": config.pps_min_jets,
        "pps_min_bjets": config.pps_min_bjets,
        "cutflow": {ds: res["cutflow"] for ds, res in first.items()},
    }
    return write_report(result, report_dir, meta=meta, pngs=pngs)


def _paper_alpha(result: dict, config: RediscoveryConfig, *, wall_seconds: float, cpu_start: float) -> dict:
    """The ``paper_alpha`` block of ``result`` (:func:`~cms_anomaly.analyses.headline.paper_alpha`): this run's
    ``--events`` from its W+jets size, its CPU time since ``cpu_start``."""
    return paper_alpha(
        n_data=result["n_data"],
        data_fraction=result["efficiency_ratio"]["0.001"]["data_fraction"],
        events_scale=config.events["wjets"] / RediscoveryConfig().events["wjets"],
        wall_seconds=wall_seconds,
        cpu_seconds=analysis_cpu_seconds() - cpu_start,
    )


# ------------------------------------------------------------------------------------- CLI
def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "rediscover-top",
        help="the main job: re-discover the top quark with ALAD on (pseudo-)data and write a report",
        description=(
            "Generate (or reuse) W(mu nu)+jets, Z(mu mu)+jets and ttbar, mix them into pseudo-data, run the "
            "top_rediscovery processor on a local Dask cluster, train ALAD on the unlabelled data, select the alpha "
            "most anomalous events and compare with the background-only simulation (ASTF, post-processing selection). "
            "Writes OUT/report/{summary.md,summary.json,index.html} and PNG plots. Rerunning reuses finished samples."
        ),
    )
    analysis.add_production_arguments(p, default_out="out/rediscover-top", default_samples=None, samples_help=None)
    p.add_argument(
        "--alpha",
        type=fraction,
        default=RediscoveryConfig.alpha,
        help="fraction of data selected as anomalous (default: 0.01)",
    )
    p.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help=f"ALAD and AE training epochs (default: ALAD its step budget, the AE {RediscoveryConfig.ae_epochs} epochs)",
    )
    p.add_argument(
        "--with-qcd", action="store_true", help="add lepton-filtered heavy-flavour QCD to data and simulation"
    )
    p.add_argument(
        "--ttbar-scale",
        type=positive_float,
        default=RediscoveryConfig.ttbar_scale,
        help="ttbar cross section of pseudo-data and simulation in units of Pythia's (default: 0.1, a rare "
        "process as in Knapp et al.; 1 for Pythia's rate)",
    )
    p.add_argument(
        "--data-fileset",
        default=None,
        metavar="FILESET",
        help="real data instead of pseudo-data: a fileset JSON whose is_data datasets carry lumi_pb, e.g. "
        "from 'cms-anomaly opendata fileset'; the simulation is generated at its sqrt(s)",
    )
    p.set_defaults(func=_cmd)


def _cmd(args: Any) -> int:
    config = replace(
        RediscoveryConfig(),
        alpha=args.alpha,
        epochs=args.epochs,
        ae_epochs=args.epochs or RediscoveryConfig.ae_epochs,
        seed=args.seed,
        with_qcd=args.with_qcd,
        ttbar_scale=args.ttbar_scale,
        execution=analysis.execution_from(args),
        device=args.device,
        data_fileset=args.data_fileset,
    ).scaled(args.events)
    return analysis.print_report(run_rediscovery(args.out, config))
