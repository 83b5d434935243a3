"""A VAE anomaly trigger for the single-lepton stream (Cerri et al., seed 004, sec. 5).

``cms-anomaly trigger`` (:func:`run_trigger`):

1. the single-lepton SM cocktail and the four BSM benchmarks (:mod:`~cms_anomaly.analyses.cocktail`),
   feature tables of the ``single_lepton`` selection (HLF-21);
2. a VAE trained on half of the SM events (unweighted), one BDT per BSM benchmark (supervised bound);
3. the VAE threshold at the SM efficiency epsilon_SM = 5.4e-6 (about 1000 SM events per month at
   5 fb^-1) on the SM validation half, weighted to the cocktail composition. An empirical quantile
   needs ``MIN_EVENTS_ABOVE / epsilon`` effective SM events (1.85e6 for 10 events above it); with
   fewer the survival function of the SM loss is extrapolated with an exponential fitted to its top
   1 % (:func:`~cms_anomaly.stats.threshold_at_fpr`), and so are the per-process efficiencies;
4. the tables of Cerri et al. Tables 3-5: per-SM-process efficiency, composition and events/month
   after the VAE; per BSM benchmark the efficiency, the cross section for 100 selected events per
   month and for S/B = 1/3; the single-lepton trigger (SLT: pT > 27 GeV, Iso < 0.25) efficiencies
   and SBR_VAE / SBR_SLT;
5. plots: the VAE loss of the SM processes and the BSM benchmarks with the threshold (Fig. 7), the
   ROC of the VAE (solid) and the BDTs (dashed) per benchmark (Fig. 10 left), the SM p-value
   distribution (Fig. 10 right); report in ``OUT/report``.

Efficiencies of the BSM benchmarks are relative to the events passing the ``single_lepton``
selection (the paper's "effective cross section" is the cross section after that selection);
the report also gives the generated cross sections and the acceptance.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cms_anomaly.analyses.analysis import fmt, fresh_report_dir, print_report, report_footer, write_report
from cms_anomaly.analyses.cocktail import UNIT_LUMI_PB, CocktailConfig, add_cocktail_arguments, cocktail_config
from cms_anomaly.datasets.argtypes import fraction, positive_int

log = logging.getLogger(__name__)

EPSILON_SM = 5.4e-6
SIGNAL_LABELS = {"ato4l": r"A$\to$4$\ell$", "lq_btau": r"LQ$\to$b$\tau$", "h0_tautau": r"h$^0\to\tau\tau$",
                 "hplus_taunu": r"h$^\pm\to\tau\nu$"}
SM_LABELS = {"wjets": "W", "qcd": "QCD", "zjets": "Z", "ttbar": r"$t\bar{t}$"}


@dataclass(frozen=True)
class TriggerConfig:
    """Settings of :func:`run_trigger` (defaults: ~10 min on 2 cores)."""

    cocktail: CocktailConfig = field(default_factory=CocktailConfig)
    epsilon_sm: float = EPSILON_SM
    composition: str = "paper"
    epochs: int = 100
    seed: int = 1
    device: str = "auto"
    slt_pt: float = 27.0
    slt_iso: float = 0.25
    events_per_month_target: float = 100.0
    signal_to_background: float = 1.0 / 3.0
    #: a second working point, measured without extrapolation, as a cross-check of the extrapolated
    #: efficiencies (raised to 10 / n_eff of the SM validation sample when that is larger)
    check_epsilon: float = 1e-3


# ------------------------------------------------------------------------------ inputs
@dataclass
class _Events:
    """HLF-21 inputs of one process with its weights and the VAE score."""

    x: np.ndarray
    weight: np.ndarray
    score: np.ndarray | None = None


def _slt(x: np.ndarray, columns: tuple[str, ...], config: TriggerConfig) -> np.ndarray:
    """The reference single-lepton trigger on HLF-21 rows: pT_l > slt_pt and Iso < slt_iso."""
    pt = x[:, columns.index("pt_lep")]
    iso = x[:, columns.index("iso_ch")] + x[:, columns.index("iso_neu")] + x[:, columns.index("iso_gamma")]
    return (pt > config.slt_pt) & (iso < config.slt_iso)


# ------------------------------------------------------------------------------ analysis
#: the efficiency record of a process with no event to measure it on
_NO_EVENTS = {"efficiency": 0.0, "low": float("nan"), "high": float("nan"), "method": "no events", "n_events": 0}


def _efficiency(e: _Events, threshold: float) -> dict[str, Any]:
    """VAE efficiency of one process (95 % CL), or a row saying there is nothing to measure."""
    from cms_anomaly.stats import efficiency_above

    if len(e.score) == 0:
        return dict(_NO_EVENTS)
    return efficiency_above(e.score, e.weight, threshold=threshold, cl=0.95)


def _tail_composition(sm: dict[str, _Events], threshold: dict) -> dict[str, dict[str, float]]:
    """Share of each SM process among the SM events in the tail the threshold was extrapolated from
    (weighted, 95 % CL Agresti-Coull on effective counts)."""
    from cms_anomaly.stats import weighted_efficiency

    lo = threshold["tail_range"][0]
    scores = np.concatenate([e.score for e in sm.values()])
    weights = np.concatenate([e.weight for e in sm.values()])
    owner = np.concatenate([np.full(len(e.score), i) for i, e in enumerate(sm.values())])
    in_tail = scores >= lo
    out = {}
    for i, name in enumerate(sm):
        ci = weighted_efficiency(owner[in_tail] == i, weights[in_tail], cl=0.95)
        out[name] = {"estimate": float(ci.estimate), "low": float(ci.low), "high": float(ci.high)}
    return out


def _tail_ratio_efficiency(e: _Events, sm_weights: np.ndarray, sm_scores: np.ndarray, threshold: dict) -> dict[str, Any]:
    """Signal efficiency at an extrapolated threshold: its efficiency at the lower edge of the SM
    tail fit (measured, 95 % CL) times the SM efficiency ratio between the threshold and that edge,
    i.e. the likelihood ratio LR+ = eps_S / eps_SM is taken as constant beyond the measured range.
    Anomaly scores usually have an LR+ that still grows there, so this tends to underestimate."""
    from cms_anomaly.stats import weighted_efficiency

    if len(e.score) == 0:
        return dict(_NO_EVENTS)
    lo = threshold["tail_range"][0]
    sm_at_lo = float(sm_weights[sm_scores >= lo].sum() / sm_weights.sum())
    at_lo = weighted_efficiency(e.score >= lo, e.weight, cl=0.95)
    scale = threshold["fpr"] / sm_at_lo
    return {"efficiency": float(at_lo.estimate) * scale, "low": float(at_lo.low) * scale, "high": float(at_lo.high) * scale,
            "method": "tail_ratio", "efficiency_at_tail_edge": float(at_lo.estimate), "sm_efficiency_at_tail_edge": sm_at_lo,
            "lr_plus": float(at_lo.estimate) / sm_at_lo, "n_events": len(e.score)}


def analyse(sm: dict[str, _Events], signals: dict[str, _Events], *, xsec: dict[str, float], threshold: dict,
            columns: tuple[str, ...], config: TriggerConfig) -> dict[str, Any]:
    """Tables 3-5 from scored SM validation events and signal events.

    ``sm`` weights are rates after the ``single_lepton`` selection (pb; already in the cocktail
    composition), ``signals`` weights likewise; ``xsec`` the generated cross sections (pb).
    """
    from cms_anomaly.stats import MIN_EVENTS_ABOVE
    from cms_anomaly import stats as statistics

    t = threshold["threshold"]
    lumi = statistics.LUMI_PER_MONTH_FB
    sm_rate = sum(float(e.weight.sum()) for e in sm.values())
    table3 = {}
    tail = _tail_composition(sm, threshold) if threshold["method"] == "exponential_tail_fit" else None
    for name, e in sm.items():
        rate = float(e.weight.sum())
        if tail is None:
            eff = _efficiency(e, t)
        else:  # the selected SM events have the process composition of the fitted tail
            share = tail[name]
            scale = threshold["fpr"] * sm_rate / rate if rate > 0 else 0.0
            eff = {"efficiency": share["estimate"] * scale, "low": share["low"] * scale, "high": share["high"] * scale,
                   "method": "tail_composition", "tail_share": share["estimate"], "n_events": len(e.score)}
        table3[name] = {"rate_after_selection_pb": rate, "fraction_after_selection": rate / sm_rate,
                        "vae_efficiency": eff, "events_per_month": statistics.events_per_month(rate, eff["efficiency"], lumi_fb=lumi),
                        "events_per_month_low": statistics.events_per_month(rate, eff["low"], lumi_fb=lumi),
                        "events_per_month_high": statistics.events_per_month(rate, eff["high"], lumi_fb=lumi)}
    total = sum(r["events_per_month"] for r in table3.values())
    for r in table3.values():
        r["selected_composition"] = r["events_per_month"] / total if total > 0 else float("nan")
    sm_eff = total / statistics.events_per_month(sm_rate, 1.0, lumi_fb=lumi)
    all_sm = np.concatenate([e.x for e in sm.values()])
    all_w = np.concatenate([e.weight for e in sm.values()])
    sm_slt = float(all_w[_slt(all_sm, columns, config)].sum() / all_w.sum())
    table4, table5 = {}, {"SM": {"vae_efficiency": sm_eff, "slt_efficiency": sm_slt}}
    sm_scores = np.concatenate([e.score for e in sm.values()])
    # the cross-check working point needs >= MIN_EVENTS_ABOVE effective SM events above it
    check = float(min(1.0, max(config.check_epsilon, MIN_EVENTS_ABOVE / statistics.effective_entries(all_w))))
    for name, e in signals.items():
        eff = _efficiency(e, t) if tail is None else _tail_ratio_efficiency(e, all_w, sm_scores, threshold)
        acceptance = float(e.weight.sum()) / xsec[name]
        row: dict[str, Any] = {"vae_efficiency": eff, "xsec_generated_pb": xsec[name], "single_lepton_acceptance": acceptance}
        if len(e.score):  # a measured cross-check at a working point this sample resolves
            wp = statistics.tpr_at_fpr(sm_scores, e.score, fpr=check, bkg_weights=all_w, sig_weights=e.weight, cl=0.95)
            row["vae_efficiency_check"] = {"epsilon_sm": check, "efficiency": wp.tpr,
                                           "low": wp.tpr_interval[0], "high": wp.tpr_interval[1],
                                           "sm_efficiency": wp.fpr}
        if eff["efficiency"] > 0:
            s100 = statistics.xsec_for_events_per_month(config.events_per_month_target, eff["efficiency"], lumi_fb=lumi)
            s_sb = statistics.xsec_for_signal_to_background(config.signal_to_background, total,
                                                            efficiency=eff["efficiency"], lumi_fb=lumi)
            row.update(xsec_eff_100_per_month_pb=s100, xsec_eff_sb_pb=s_sb,
                       xsec_100_per_month_pb=s100 / acceptance if acceptance > 0 else float("nan"),
                       events_per_month_at_generated_xsec=statistics.events_per_month(
                           float(e.weight.sum()), eff["efficiency"], lumi_fb=lumi))
        table4[name] = row
        slt = float(e.weight[_slt(e.x, columns, config)].sum() / e.weight.sum())
        table5[name] = {"vae_efficiency": eff["efficiency"], "slt_efficiency": slt,
                        "slt_over_vae": slt / eff["efficiency"] if eff["efficiency"] > 0 else float("inf"),
                        "sbr_vae_over_sbr_slt": statistics.sbr_ratio(sm_efficiency=sm_eff, sm_reference_efficiency=sm_slt,
                                                                     bsm_efficiency=eff["efficiency"],
                                                                     bsm_reference_efficiency=slt) if slt > 0 else float("nan")}
    table5["SM"]["slt_over_vae"] = sm_slt / sm_eff if sm_eff > 0 else float("inf")
    return {"threshold": threshold, "sm_rate_after_selection_pb": sm_rate, "sm_events_per_month": total,
            "sm_efficiency": sm_eff, "table3": table3, "table4": table4, "table5": table5}


def roc_table(sm_scores: np.ndarray, sm_weights: np.ndarray, vae: dict[str, np.ndarray], bdt_sm: dict[str, np.ndarray],
              bdt_sig: dict[str, np.ndarray]) -> dict[str, Any]:
    """ROC curves and AUCs of the VAE and the BDT per benchmark (signal test halves)."""
    from cms_anomaly.stats import roc_curve

    out = {}
    for sig in vae:
        # None where the signal has no test events, or no BDT (no training events: train_bdts)
        v = roc_curve(sm_scores, vae[sig], bkg_weights=sm_weights) if len(vae[sig]) else None
        b = (roc_curve(bdt_sm[sig], bdt_sig[sig], bkg_weights=sm_weights)
             if sig in bdt_sig and len(bdt_sig[sig]) else None)
        out[sig] = {"vae": v, "bdt": b}
    return out


# ------------------------------------------------------------------------------ plots
def make_plots(sm: dict[str, _Events], signals: dict[str, _Events], rocs: dict, result: dict,
               report_dir: Path) -> list[Path]:
    """Fig. 7 (VAE loss with the threshold), Fig. 10 (ROC VAE vs BDT; SM p-values)."""
    import hist

    from cms_anomaly.stats.thresholds import weighted_survival
    from cms_anomaly.analyses import plotting

    pngs = []
    scores = np.concatenate([e.score for e in (*sm.values(), *signals.values())])
    thr = result["threshold"]["threshold"]
    finite = scores[np.isfinite(scores)]
    # the VAE loss is a negative log-likelihood: it can be negative, so a linear axis (log y) as in the paper
    lo = float(np.quantile(finite, 1e-3)) if finite.size else 0.0
    hi = max(float(finite.max()) if finite.size else 1.0, thr) * 1.1
    axis = hist.axis.Regular(60, lo, hi, name="loss", label=r"VAE Loss$_{reco}$")

    def h(e: _Events, unit: bool = False):  # noqa: ANN202
        out = hist.Hist(axis, storage=hist.storage.Weight())
        out.fill(np.clip(e.score, lo, hi * 0.9999), weight=np.ones_like(e.score) if unit else e.weight)
        return out

    shapes = {f"SM {SM_LABELS.get(n, n)}": h(e) for n, e in sm.items()}
    shapes.update({SIGNAL_LABELS.get(n, n): h(e, unit=True) for n, e in signals.items()})
    styles = {SIGNAL_LABELS.get(n, n): {"ls": "--"} for n in signals}
    pngs.append(plotting.plot_shapes(shapes, report_dir / "vae_loss.png", styles=styles,
                                     cuts={rf"$\epsilon_{{SM}}$ = {result['threshold']['fpr']:.2g}": thr},
                                     text="Simulation"))
    curves, styles = {}, {}
    for i, (sig, r) in enumerate(rocs.items()):
        color = plotting.PROCESS_COLORS[i % len(plotting.PROCESS_COLORS)]
        name = SIGNAL_LABELS.get(sig, sig)
        for kind, ls in (("vae", "-"), ("bdt", "--")):
            if r[kind] is not None:
                label = f"{kind.upper()} {name} (AUC {r[kind].auc():.2f})"
                curves[label], styles[label] = r[kind], {"color": color, "ls": ls}
    pngs.append(plotting.plot_roc(curves, report_dir / "roc_vae_bdt.png", styles=styles, text="Simulation",
                                  working_points=(result["threshold"]["fpr"], 1e-3)))
    # p-value of an event: the SM survival function at its loss (flat for SM by construction)
    sm_scores = np.concatenate([e.score for e in sm.values()])
    sm_w = np.concatenate([e.weight for e in sm.values()])
    s_desc, surv = weighted_survival(sm_scores, sm_w)
    s_asc, surv_asc = s_desc[::-1], surv[::-1]

    def pvalue(v: np.ndarray) -> np.ndarray:
        i = np.searchsorted(s_asc, v, side="left")
        return np.where(i < s_asc.size, surv_asc[np.minimum(i, s_asc.size - 1)], 0.0)

    p_axis = hist.axis.Regular(20, 0.0, 1.0, name="p", label="p-value of the VAE loss under the SM cocktail")

    def hp(v: np.ndarray, w: np.ndarray):  # noqa: ANN202
        out = hist.Hist(p_axis, storage=hist.storage.Weight())
        out.fill(np.clip(pvalue(v), 0.0, 0.999999), weight=w)
        return out

    pshapes = {"SM cocktail": hp(sm_scores, sm_w)}
    pshapes.update({SIGNAL_LABELS.get(n, n): hp(e.score, np.ones_like(e.score)) for n, e in signals.items()})
    pngs.append(plotting.plot_shapes(pshapes, report_dir / "pvalue.png", logy=True, text="Simulation"))
    return pngs


# ------------------------------------------------------------------------------ report
def config_check(result: dict) -> str:
    """The cross-check working point of a result's Table 4."""
    for r in result["table4"].values():
        if "vae_efficiency_check" in r:
            return f"{r['vae_efficiency_check']['epsilon_sm']:.2g}"
    return "n/a"


def format_report(result: dict, meta: dict, pngs: list[Path]) -> str:
    th = result["threshold"]
    lines = [
        "# VAE anomaly trigger on the single-lepton stream (Cerri et al., seed 004)",
        "",
        f"SM cocktail after the `single_lepton` selection: {meta['sm_validation_events']} validation events "
        f"(n_eff {th['n_eff']:.3g}), {meta['sm_training_events']} training events; composition "
        f"`{meta['composition']}` ({', '.join(f'{k} {v:.1%}' for k, v in meta['fractions'].items())}); "
        f"SM rate after the selection {result['sm_rate_after_selection_pb']:.4g} pb "
        f"({result['sm_rate_after_selection_pb'] * 1e-36 * 2.9e33:.3g} Hz at 2.9e33 cm^-2 s^-1). 5 fb^-1 per month.",
        "",
        f"VAE threshold at epsilon_SM = {th['fpr']:.2g}: Loss_reco > {th['threshold']:.4g} ({th['method']}). "
        f"An empirical threshold needs >= {meta['min_events_above']:.0f} effective SM events above it, i.e. "
        f"{meta['min_events_above'] / th['fpr']:.3g} SM events ({1 / th['fpr']:.3g} for a single one); "
        + ("this sample has enough." if th["method"] == "empirical" else
           f"this sample has {th['n_eff']:.3g}, so the SM survival function was fitted with an exponential over its "
           f"top {th.get('tail_events', 0)} losses ({fmt(th.get('tail_range', [np.nan])[0], 4)} to "
           f"{fmt(th.get('tail_range', [np.nan, np.nan])[1], 4)}) and extrapolated. The selected SM events are "
           "assumed to have the process composition of that tail (per-process efficiencies = epsilon_SM x tail share / "
           "process share, 95 % CL from the tail counts). A benchmark's efficiency is its measured efficiency at the "
           "lower edge of that tail times epsilon_SM over the SM efficiency there (its LR+ = eps_BSM / eps_SM held "
           "constant beyond the measured range; LR+ usually still grows there, so these efficiencies are conservative)."),
        "",
        "## Table 3: SM processes after the VAE selection",
        "",
        "| process | share after single_lepton | VAE selection efficiency (95 % CL) | sample composition | events/month |",
        "| --- | --- | --- | --- | --- |",
    ]

    def eff_text(e: dict) -> str:
        if e["method"] == "no events":
            return "no events"
        if e["method"] == "tail_ratio":
            return f"{e['efficiency']:.2g} [{e['low']:.2g}, {e['high']:.2g}] (LR+ {e['lr_plus']:.3g})"
        if e["method"] == "tail_composition":
            return f"{e['efficiency']:.2g} [{e['low']:.2g}, {e['high']:.2g}] (tail share {e['tail_share']:.0%})"
        if e["method"] == "exponential_tail_fit":
            return f"{e['efficiency']:.2g} (fit; measured < {e['upper_limit_empirical']:.2g})"
        return f"{e['efficiency']:.2g} [{e['low']:.2g}, {e['high']:.2g}]"

    for name, r in result["table3"].items():
        lines.append(f"| {name} | {r['fraction_after_selection']:.1%} | {eff_text(r['vae_efficiency'])} | "
                     f"{r['selected_composition']:.0%} | {r['events_per_month']:.3g} |")
    lines += [f"| total | | {result['sm_efficiency']:.2g} | | {result['sm_events_per_month']:.3g} |", "",
              "Paper: W 3.6e-6, QCD 6.0e-6, Z 21e-6, ttbar 400e-6; composition 32/29/21/18 %; 1204 events/month.", "",
              "## Table 4: BSM benchmarks", "",
              "| process | generated sigma [pb] | single_lepton acceptance | VAE efficiency | sigma_eff for 100 events/month [pb] | "
              "sigma_eff for S/B = 1/3 [pb] | sigma for 100 events/month [pb] | events/month at the generated sigma | "
              f"VAE efficiency at epsilon_SM = {config_check(result)} (measured; LR+) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in result["table4"].items():
        lines.append(f"| {name} | {r['xsec_generated_pb']:.3g} | {r['single_lepton_acceptance']:.3f} | {eff_text(r['vae_efficiency'])} | "
                     f"{fmt(r.get('xsec_eff_100_per_month_pb'))} | {fmt(r.get('xsec_eff_sb_pb'))} | "
                     f"{fmt(r.get('xsec_100_per_month_pb'))} | {fmt(r.get('events_per_month_at_generated_xsec'))} | "
                     + (f"{r['vae_efficiency_check']['efficiency']:.3g} [{r['vae_efficiency_check']['low']:.3g}, "
                        f"{r['vae_efficiency_check']['high']:.3g}]; "
                        f"{r['vae_efficiency_check']['efficiency'] / r['vae_efficiency_check']['sm_efficiency']:.3g} |"
                        if "vae_efficiency_check" in r else "n/a |"))
    lines += ["", "Paper (efficiency; sigma_eff for 100/month; for S/B = 1/3): A->4l 2.8e-3, 7.1 pb, 27 pb; LQ->b tau 6.7e-4, "
              "30, 110; h0->tau tau 3.6e-4, 55, 210; h+- ->tau nu 1.2e-3, 17, 65.", "",
              "## Table 5: single-lepton trigger (pT > 27 GeV, Iso < 0.25) vs VAE", "",
              "| | " + " | ".join(result["table5"]) + " |", "|---|" + "---|" * len(result["table5"])]
    t5 = result["table5"]
    lines.append("| epsilon_VAE | " + " | ".join(f"{r['vae_efficiency']:.2g}" for r in t5.values()) + " |")
    lines.append("| epsilon_SLT | " + " | ".join(f"{r['slt_efficiency']:.2f}" for r in t5.values()) + " |")
    lines.append("| epsilon_SLT / epsilon_VAE | " + " | ".join(f"{r['slt_over_vae']:.2g}" for r in t5.values()) + " |")
    lines.append("| SBR_VAE / SBR_SLT | - | " + " | ".join(fmt(r['sbr_vae_over_sbr_slt']) for k, r in t5.items() if k != "SM") + " |")
    lines += ["", "Paper: SBR_VAE / SBR_SLT = 625 (A->4l), 125 (LQ), 70 (h0), 191 (h+-).", "",
              "## ROC: VAE vs BDT on the signal test halves", "",
              "| benchmark | AUC VAE | AUC BDT |", "| --- | --- | --- |"]
    for sig, r in meta["auc"].items():
        lines.append(f"| {sig} | {r['vae']:.3f} | {r['bdt']:.3f} |")
    lines += ["", *report_footer(pngs, meta["seconds"])]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ the job
def run_trigger(out: str | os.PathLike, config: TriggerConfig = TriggerConfig(), *,
                samples_dir: str | os.PathLike | None = None) -> Path:
    """Run the whole study into ``out`` (samples in ``samples_dir``, default ``out/samples``)."""
    import xgboost

    from cms_anomaly.models.bdt import predict
    from cms_anomaly.models.data import read_samples, validation_mask
    from cms_anomaly.models.export import eager_scores
    from cms_anomaly.stats import MIN_EVENTS_ABOVE, threshold_at_fpr
    from cms_anomaly.models.feature_sets import get_feature_set
    from cms_anomaly.models.pipeline import TrainOptions, train_and_export, train_bdts
    from cms_anomaly.analyses.cocktail import feature_tables, reweighted, validation_indices

    out = Path(out)
    samples_dir = Path(samples_dir) if samples_dir is not None else out / "samples"
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    features_dir, fileset = feature_tables(samples_dir, config.cocktail)
    times["samples"] = time.perf_counter() - t0
    fs = get_feature_set("hlf21")
    samples = read_samples(features_dir, feature_set=fs)
    sm_names = [n for n, s in samples.items() if not s.is_signal]
    samples, weights = reweighted(samples, composition=config.composition)

    t = time.perf_counter()
    options = TrainOptions(epochs=config.epochs, seed=config.seed, device=config.device, progress=False)
    vae = train_and_export("vae", features_dir=features_dir, out_dir=out / "models", feature_set="hlf21",
                           options=options, samples=samples)
    bdt_paths = train_bdts(features_dir=features_dir, out_dir=out / "models", samples=samples, seed=config.seed,
                           val_fraction=options.val_fraction)
    times["training"] = time.perf_counter() - t

    t = time.perf_counter()
    val_index = validation_indices(samples, seed=config.seed, val_fraction=options.val_fraction)
    sm = {n: _Events(samples[n].x[i], samples[n].weight[i] / options.val_fraction) for n, i in val_index.items()}
    for e in sm.values():
        e.score = eager_scores(vae.model, e.x)
    signals = {n: _Events(s.x, s.weight, eager_scores(vae.model, s.x)) for n, s in samples.items() if s.is_signal}
    sm_x = np.concatenate([sm[n].x for n in sm])
    sm_scores = np.concatenate([sm[n].score for n in sm])
    sm_weights = np.concatenate([sm[n].weight for n in sm])
    threshold = threshold_at_fpr(sm_scores, sm_weights, fpr=config.epsilon_sm)
    xsec = {n: float(fileset[n]["metadata"]["xsec_pb"]) for n in signals}
    result = analyse(sm, signals, xsec=xsec, threshold=threshold, columns=fs.columns, config=config)

    test = {n: np.flatnonzero(validation_mask(samples[n], val_fraction=options.val_fraction, seed=config.seed))
            for n in signals}
    bdt_sm, bdt_sig = {}, {}
    for sig, path in sorted(bdt_paths.items()):
        booster = xgboost.Booster(model_file=str(path))
        bdt_sm[sig] = predict(booster, sm_x)
        bdt_sig[sig] = predict(booster, samples[sig].x[test[sig]])
    rocs = roc_table(sm_scores, sm_weights, {n: signals[n].score[test[n]] for n in sorted(signals)}, bdt_sm, bdt_sig)
    report_dir = fresh_report_dir(out)
    pngs = make_plots(sm, signals, rocs, result, report_dir)
    times["analysis"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - t0
    rates = {n: float(w.sum()) for n, w in weights.items()}
    meta = {
        "config": asdict(config), "samples_dir": str(samples_dir), "composition": config.composition,
        "fractions": {n: r / sum(rates.values()) for n, r in rates.items()},
        "sm_training_events": sum(len(samples[n]) for n in sm_names) - len(sm_scores), "sm_validation_events": len(sm_scores),
        "min_events_above": MIN_EVENTS_ABOVE, "models": [str(p) for p in (*vae.paths, *bdt_paths.values())],
        "auc": {s: {k: (c.auc() if c is not None else float("nan")) for k, c in rocs[s].items()} for s in sorted(signals)},
        "seconds": times, "unit_lumi_pb": UNIT_LUMI_PB,
    }
    markdown = format_report(result, meta, pngs)
    return write_report(report_dir, markdown=markdown, payload={**meta, "result": result}, title="VAE anomaly trigger")


# ------------------------------------------------------------------------------ CLI
def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "trigger",
        help="VAE anomaly trigger on the single-lepton stream: rate and efficiency tables (Cerri et al.)",
        description=(
            "Generate (or reuse) the single-lepton SM cocktail (W, QCD, Z, ttbar) and four BSM benchmarks, run the "
            "single_lepton processor, train the VAE and one BDT per benchmark, set the VAE threshold at epsilon_SM "
            "and write the per-process rate table, the BSM efficiency / cross-section table, the SLT comparison, the "
            "loss, ROC and p-value plots to OUT/report."
        ),
    )
    add_cocktail_arguments(p, default_out="out/trigger")
    p.add_argument("--epsilon", type=fraction, default=EPSILON_SM, help="SM efficiency of the VAE selection (default 5.4e-6)")
    p.add_argument("--epochs", type=positive_int, default=TriggerConfig.epochs, help="maximum VAE epochs")
    p.add_argument("--composition", choices=("paper", "generated"), default="paper",
                   help="SM process shares after the selection: the paper's (default) or Pythia's cross sections")
    p.set_defaults(func=_cmd)


def _cmd(args: Any) -> int:
    config = TriggerConfig(cocktail=cocktail_config(args), epsilon_sm=args.epsilon, epochs=args.epochs,
                           composition=args.composition, seed=args.seed, device=args.device)
    summary = run_trigger(args.out, config, samples_dir=args.samples)
    return print_report(summary)
