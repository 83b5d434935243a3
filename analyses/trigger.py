"""A VAE anomaly trigger for the single-lepton stream (Cerri et al., seed 004, sec. 5).

``cms-anomaly trigger`` (:func:`run_trigger`):

1. the single-lepton SM cocktail and the four BSM benchmarks (:mod:`~cms_anomaly.analyses.cocktail`),
   feature tables of the ``single_lepton`` selection (HLF-21);
2. a VAE trained on half of the SM events (unweighted), one BDT per BSM benchmark (supervised bound);
3. the VAE threshold at the SM efficiency epsilon_SM = 5.4e-6 (about 1000 SM events per month at
   5 fb^-1) on the SM validation half, weighted to the cocktail composition. An empirical quantile
   needs ``MIN_EVENTS_ABOVE / epsilon`` effective SM events (1.85e6 for 10 events above it); with
   fewer the survival function of the SM loss is extrapolated with an exponential fitted to its top
   1 % (:func:`~cms_anomaly.stats.threshold_at_fpr_from_sums`), and so are the per-process efficiencies;
   everything from the processor's histograms of the exported models' scores (second and third pass);
4. the tables of Cerri et al. Tables 3-5: per-SM-process efficiency, composition and events/month
   after the VAE; per BSM benchmark the efficiency, the cross section for 100 selected events per
   month and for S/B = 1/3; the single-lepton trigger (SLT: a lepton with pT > 27 GeV, Iso < 0.25,
   the ``single_lepton_slt`` selection) efficiencies and SBR_VAE / SBR_SLT;
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
from cms_anomaly.analyses.baselines import BASELINE, fit_baseline, with_baseline_aucs
from cms_anomaly.analyses.cocktail import (
    SIGNAL_LABELS,
    UNIT_LUMI_PB,
    CocktailConfig,
    add_cocktail_arguments,
    cocktail_config,
)
from cms_anomaly.analyses.headline import note_for
from cms_anomaly.analyses.plot_training import plot_model_training
from cms_anomaly.core.argtypes import fraction, positive_int
from cms_anomaly.processors.config import SelectionConfig
from cms_anomaly.stats.headline import few_events, few_events_mark

log = logging.getLogger(__name__)

EPSILON_SM = 5.4e-6
#: SM efficiencies at which the report lists the VAE threshold, measured (>= MIN_EVENTS_ABOVE effective
#: SM events above it) or extrapolated, with the effective SM events above it
REPORTED_FPRS = (1e-3, 1e-4, 1e-5)
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
    events_per_month_target: float = 100.0
    signal_to_background: float = 1.0 / 3.0
    #: a second working point, measured without extrapolation, as a cross-check of the extrapolated
    #: efficiencies (raised to 10 / n_eff of the SM validation sample when that is larger)
    check_epsilon: float = 1e-3


# ------------------------------------------------------------------------------ inputs
@dataclass(frozen=True)
class Binned:
    """The binned VAE score of one process: sum w and sum w^2 per score bin (flow bins included, the
    processor's ``score_vae_loss_reco_vs_counts`` summed over N_J and N_b)."""

    w: np.ndarray
    w2: np.ndarray

    @property
    def total(self) -> float:
        return float(self.w.sum())

    def scaled(self, factor: float) -> Binned:
        """The same events with every weight times ``factor``."""
        return Binned(self.w * factor, self.w2 * factor**2)

    def __add__(self, other: Binned) -> Binned:
        return Binned(self.w + other.w, self.w2 + other.w2)

    def __radd__(self, other: int | Binned) -> Binned:
        """``sum()`` of processes (its start value 0 adds nothing)."""
        return self if isinstance(other, int) and other == 0 else self + other


def first_bin(lower_edges: np.ndarray, value: float) -> int:
    """The first bin whose lower edge is at or above ``value``: the bins ``k, ...`` are the events with
    a score of at least ``value`` rounded up to a bin edge (a selection never looser than asked)."""
    return int(np.searchsorted(lower_edges, value, side="left"))


# ------------------------------------------------------------------------------ analysis
#: the efficiency record of a process with no event to measure it on
_NO_EVENTS = {"efficiency": 0.0, "low": float("nan"), "high": float("nan"), "method": "no events", "n_events": 0,
              "n_selected": 0, "few_events": True}  # fmt: skip


def _efficiency(b: Binned, k: int) -> dict[str, Any]:
    """Efficiency of the score bins ``k, ...`` for one process (95 % CL Agresti-Coull on effective entries)."""
    from cms_anomaly.stats import effective_entries_from_sums, efficiency_from_sums

    if b.total <= 0:
        return dict(_NO_EVENTS)
    ci = efficiency_from_sums(b.w[k:].sum(), b.total, b.w2.sum(), cl=0.95)
    return {
        "efficiency": float(ci.estimate),
        "low": float(ci.low),
        "high": float(ci.high),
        "method": "measured",
        "n_events": round(effective_entries_from_sums(b.total, float(b.w2.sum()))),
        "n_selected": (n := round(effective_entries_from_sums(b.w[k:].sum(), b.w2[k:].sum()))),
        "few_events": few_events(n),
    }


def _tail_composition(sm: dict[str, Binned], k_tail: int) -> dict[str, dict[str, float]]:
    """Share of each SM process among the SM events in the tail the threshold was extrapolated from
    (score bins ``k_tail, ...``; weighted, 95 % CL Agresti-Coull on effective counts)."""
    from cms_anomaly.stats import effective_entries_from_sums, efficiency_from_sums

    tail_w = sum(float(b.w[k_tail:].sum()) for b in sm.values())
    tail_w2 = sum(float(b.w2[k_tail:].sum()) for b in sm.values())
    out = {}
    for name, b in sm.items():
        ci = efficiency_from_sums(float(b.w[k_tail:].sum()), tail_w, tail_w2, cl=0.95)
        n = round(effective_entries_from_sums(float(b.w[k_tail:].sum()), float(b.w2[k_tail:].sum())))
        out[name] = {"estimate": float(ci.estimate), "low": float(ci.low), "high": float(ci.high), "n_selected": n}
        out[name]["few_events"] = few_events(n)
    return out


def _tail_ratio_efficiency(b: Binned, sm_all: Binned, k_tail: int, threshold: dict) -> dict[str, Any]:
    """Signal efficiency at an extrapolated threshold: its efficiency at the lower edge of the SM
    tail fit (measured, 95 % CL) times the SM efficiency ratio between the threshold and that edge,
    i.e. the likelihood ratio LR+ = eps_S / eps_SM is taken as constant beyond the measured range.
    Anomaly scores usually have an LR+ that still grows there, so this tends to underestimate."""
    if b.total <= 0:
        return dict(_NO_EVENTS)
    sm_at_lo = float(sm_all.w[k_tail:].sum() / sm_all.total)
    at_lo = _efficiency(b, k_tail)
    scale = threshold["fpr"] / sm_at_lo
    return {
        "efficiency": at_lo["efficiency"] * scale,
        "low": at_lo["low"] * scale,
        "high": at_lo["high"] * scale,
        "method": "tail_ratio",
        "efficiency_at_tail_edge": at_lo["efficiency"],
        "sm_efficiency_at_tail_edge": sm_at_lo,
        "lr_plus": at_lo["efficiency"] / sm_at_lo,
        "n_events": at_lo["n_events"],
        **{x: at_lo[x] for x in ("n_selected", "few_events")},  # at the tail edge
    }


def analyse(
    sm: dict[str, Binned],
    signals: dict[str, Binned],
    *,
    lower_edges: np.ndarray,
    xsec: dict[str, float],
    threshold: dict,
    slt: dict[str, float],
    config: TriggerConfig,
) -> dict[str, Any]:
    """Tables 3-5 from the binned VAE scores of the SM validation events and of the signals.

    ``sm`` sums are rates after the ``single_lepton`` selection (pb; already in the cocktail
    composition), ``signals`` likewise; ``lower_edges`` the score bins' lower edges (flow bins
    included); ``threshold`` from :func:`~cms_anomaly.stats.threshold_at_fpr_from_sums` on the summed
    SM; ``xsec`` the generated cross sections (pb); ``slt`` the single-lepton trigger efficiency of
    every process after the selection (from the ``single_lepton_slt`` cut-flow).
    """
    from cms_anomaly.stats import MIN_EVENTS_ABOVE, threshold_bin_at_efficiency

    from cms_anomaly import stats as statistics

    lumi = statistics.LUMI_PER_MONTH_FB
    sm_all = sum(sm.values())
    sm_rate = sm_all.total
    extrapolated = threshold["method"] == "exponential_tail_fit"
    k_thr = first_bin(lower_edges, threshold["threshold"])
    k_tail = first_bin(lower_edges, threshold["tail_range"][0]) if extrapolated else k_thr
    tail = _tail_composition(sm, k_tail) if extrapolated else None
    table3 = _table3(sm, k_thr, tail, threshold, sm_rate=sm_rate, lumi=lumi)
    total = sum(r["events_per_month"] for r in table3.values())
    for r in table3.values():
        r["selected_composition"] = r["events_per_month"] / total if total > 0 else float("nan")
    sm_eff = total / statistics.events_per_month(sm_rate, 1.0, lumi_fb=lumi)
    sm_slt = sum(b.total * slt[n] for n, b in sm.items()) / sm_rate
    table4: dict[str, Any] = {}
    table5: dict[str, Any] = {"SM": {"vae_efficiency": sm_eff, "slt_efficiency": sm_slt}}
    # the cross-check working point needs >= MIN_EVENTS_ABOVE effective SM events above it
    n_eff_sm = sm_rate**2 / float(sm_all.w2.sum())
    check = float(min(1.0, max(config.check_epsilon, MIN_EVENTS_ABOVE / n_eff_sm)))
    k_check = threshold_bin_at_efficiency(sm_all.w, efficiency=check)
    for name, b in signals.items():
        eff = _efficiency(b, k_thr) if tail is None else _tail_ratio_efficiency(b, sm_all, k_tail, threshold)
        table4[name] = _signal_row(
            b, eff, xsec[name], sm_all, k_check, check, sm_total_per_month=total, config=config, lumi=lumi
        )
        table5[name] = _table5_row(eff["efficiency"], slt[name], sm_eff=sm_eff, sm_slt=sm_slt)
    table5["SM"]["slt_over_vae"] = sm_slt / sm_eff if sm_eff > 0 else float("inf")
    return {
        "threshold": threshold,
        "threshold_bin": k_thr,
        "sm_rate_after_selection_pb": sm_rate,
        "sm_events_per_month": total,
        "sm_efficiency": sm_eff,
        "table3": table3,
        "table4": table4,
        "table5": table5,
    }


def _table3(
    sm: dict[str, Binned], k_thr: int, tail: dict | None, threshold: dict, *, sm_rate: float, lumi: float
) -> dict[str, Any]:
    """Table 3: per SM process its rate after the selection, VAE efficiency and events per month above the threshold."""
    from cms_anomaly import stats as statistics

    table3 = {}
    for name, b in sm.items():
        rate = b.total
        if tail is None:
            eff = _efficiency(b, k_thr)
        else:  # the selected SM events have the process composition of the fitted tail
            share = tail[name]
            scale = threshold["fpr"] * sm_rate / rate if rate > 0 else 0.0
            eff = {
                "efficiency": share["estimate"] * scale,
                "low": share["low"] * scale,
                "high": share["high"] * scale,
                "method": "tail_composition",
                "tail_share": share["estimate"],
                "n_events": _efficiency(b, k_thr)["n_events"],
                **{x: share[x] for x in ("n_selected", "few_events")},  # in the tail
            }
        table3[name] = {
            "rate_after_selection_pb": rate,
            "fraction_after_selection": rate / sm_rate,
            "vae_efficiency": eff,
            "events_per_month": statistics.events_per_month(rate, eff["efficiency"], lumi_fb=lumi),
            "events_per_month_low": statistics.events_per_month(rate, eff["low"], lumi_fb=lumi),
            "events_per_month_high": statistics.events_per_month(rate, eff["high"], lumi_fb=lumi),
        }
    return table3


def _signal_row(
    b: Binned,
    eff: dict,
    xsec: float,
    sm_all: Binned,
    k_check: int,
    check: float,
    *,
    sm_total_per_month: float,
    config: TriggerConfig,
    lumi: float,
) -> dict[str, Any]:
    """Table 4 row of a benchmark: efficiency, acceptance, the cross-check working point, the cross sections."""
    from cms_anomaly import stats as statistics

    sm_rate = sm_all.total
    total = sm_total_per_month
    acceptance = b.total / xsec
    row: dict[str, Any] = {
        "vae_efficiency": eff,
        "xsec_generated_pb": xsec,
        "single_lepton_acceptance": acceptance,
    }
    if b.total > 0:  # a measured cross-check at a working point this sample resolves
        wp = _efficiency(b, k_check)
        row["vae_efficiency_check"] = {
            "epsilon_sm": check,
            "bin": k_check,
            "efficiency": wp["efficiency"],
            "low": wp["low"],
            "high": wp["high"],
            "sm_efficiency": float(sm_all.w[k_check:].sum() / sm_rate),
        }
    if eff["efficiency"] > 0:
        s100 = statistics.xsec_for_events_per_month(config.events_per_month_target, eff["efficiency"], lumi_fb=lumi)
        s_sb = statistics.xsec_for_signal_to_background(
            config.signal_to_background, total, efficiency=eff["efficiency"], lumi_fb=lumi
        )
        row.update(
            xsec_eff_100_per_month_pb=s100,
            xsec_eff_sb_pb=s_sb,
            xsec_100_per_month_pb=s100 / acceptance if acceptance > 0 else float("nan"),
            events_per_month_at_generated_xsec=statistics.events_per_month(b.total, eff["efficiency"], lumi_fb=lumi),
        )
    return row


def _table5_row(eff: float, s_eff: float, *, sm_eff: float, sm_slt: float) -> dict[str, float]:
    """Table 5 row of a benchmark: VAE and single-lepton-trigger efficiencies and their S/B ratio."""
    from cms_anomaly import stats as statistics

    return {
        "vae_efficiency": eff,
        "slt_efficiency": s_eff,
        "slt_over_vae": s_eff / eff if eff > 0 else float("inf"),
        "sbr_vae_over_sbr_slt": statistics.sbr_ratio(
            sm_efficiency=sm_eff,
            sm_reference_efficiency=sm_slt,
            bsm_efficiency=eff,
            bsm_reference_efficiency=s_eff,
        )
        if s_eff > 0
        else float("nan"),
    }


def roc_table(
    sm: Binned, vae: dict[str, Binned], bdt_sm: dict[str, Binned], bdt_sig: dict[str, Binned]
) -> dict[str, Any]:
    """ROC curves and AUCs of the VAE and the BDT per benchmark (SM validation events, signal test
    halves), from the binned scores (:func:`~cms_anomaly.stats.roc_from_sums`)."""
    from cms_anomaly.stats import roc_from_sums

    def roc(bkg: Binned, sig: Binned) -> Any:
        return roc_from_sums(bkg.w, sig.w, bkg_sumw2=bkg.w2, sig_sumw2=sig.w2)

    out = {}
    for name, vae_sig in vae.items():
        # None where the signal has no test events, or no BDT (no training events: train_bdts)
        v = roc(sm, vae_sig) if vae_sig.total > 0 else None
        b = roc(bdt_sm[name], bdt_sig[name]) if name in bdt_sig and bdt_sig[name].total > 0 else None
        out[name] = {"vae": v, "bdt": b}
    return out


def sm_pvalue_hist(sm: Binned, b: Binned) -> Any:
    """Histogram of the p-value of each event's VAE loss under the SM (the SM survival function at the
    middle of its bin: flat for the SM by construction), events weighted as in ``b``."""
    import hist

    surv = np.cumsum(sm.w[::-1])[::-1] / sm.total  # fraction of the SM at or above each bin
    mid = np.clip(surv - 0.5 * sm.w / sm.total, 0.0, 0.999999)
    out = hist.Hist(
        hist.axis.Regular(20, 0.0, 1.0, name="p", label="p-value of the VAE loss under the SM cocktail"),
        storage=hist.storage.Weight(),
    )
    filled = b.w > 0
    out.fill(mid[filled], weight=b.w[filled])
    return out


# ------------------------------------------------------------------------------ plots
def make_plots(
    sh_sm: Any,
    sh_all: Any,
    sm: dict[str, Binned],
    signals: dict[str, Binned],
    rocs: dict,
    result: dict,
    report_dir: Path,
) -> list[Path]:
    """Fig. 7 (VAE loss with the threshold), Fig. 10 (ROC VAE vs BDT; SM p-values), all from the
    processor's score histograms (``sh_sm``: the SM validation part, ``sh_all``: every event)."""
    from cms_anomaly.analyses import plotting

    pngs = []
    thr = result["threshold"]["threshold"]
    first, last = sh_all.occupied_range([*sm, *signals])
    rebin = max(1, (last - first + 1) // 60)
    shapes = {f"SM {SM_LABELS.get(n, n)}": sh_sm.score_hist(n, first=first, last=last, rebin=rebin) for n in sm}
    shapes.update({SIGNAL_LABELS.get(n, n): sh_all.score_hist(n, first=first, last=last, rebin=rebin) for n in signals})
    styles = {SIGNAL_LABELS.get(n, n): {"ls": "--"} for n in signals}
    pngs.append(
        plotting.plot_shapes(
            shapes,
            report_dir / "vae_loss.png",
            styles=styles,
            cuts={rf"$\epsilon_{{SM}}$ = {result['threshold']['fpr']:.2g}": thr},
            text="Simulation",
        )
    )
    curves, styles = {}, {}
    for i, (sig, r) in enumerate(rocs.items()):
        color = plotting.PROCESS_COLORS[i % len(plotting.PROCESS_COLORS)]
        name = SIGNAL_LABELS.get(sig, sig)
        for kind, ls in (("vae", "-"), ("bdt", "--")):
            if r[kind] is not None:
                label = f"{kind.upper()} {name} (AUC {r[kind].auc():.2f})"
                curves[label], styles[label] = r[kind], {"color": color, "ls": ls}
    pngs.append(
        plotting.plot_roc(
            curves,
            report_dir / "roc_vae_bdt.png",
            styles=styles,
            text="Simulation",
            working_points=(result["threshold"]["fpr"], 1e-3),
        )
    )
    sm_all = sum(sm.values())
    pshapes = {"SM cocktail": sm_pvalue_hist(sm_all, sm_all)}
    pshapes.update({SIGNAL_LABELS.get(n, n): sm_pvalue_hist(sm_all, b) for n, b in signals.items()})
    pngs.append(plotting.plot_shapes(pshapes, report_dir / "pvalue.png", logy=True, text="Simulation"))
    return pngs


# ------------------------------------------------------------------------------ report
def config_check(result: dict) -> str:
    """The cross-check working point of a result's Table 4."""
    for r in result["table4"].values():
        if "vae_efficiency_check" in r:
            return f"{r['vae_efficiency_check']['epsilon_sm']:.2g}"
    return "n/a"


def threshold_table(meta: dict) -> list[str]:
    """The VAE threshold at each reported SM efficiency: measured where >= MIN_EVENTS_ABOVE effective SM
    events lie above it, else extrapolated; with the effective events above the (empirical) threshold."""
    production = "tail-weighted (QCD, ttbar)" if meta.get("tail_bias") else "unweighted"
    lines = [
        f"## VAE thresholds at fixed SM efficiency ({production} production)",
        "",
        "| epsilon_SM | Loss_reco > | method | effective SM events above |",
        "| --- | --- | --- | --- |",
    ]
    for fpr, th in meta.get("thresholds", {}).items():
        method = "measured" if th["method"] == "empirical" else th["method"].replace("_", " ")
        lines.append(f"| {fpr} | {th['threshold']:.4g} | {method} | {th['n_eff_above']:.3g} |")
    return [*lines, ""]


def format_report(result: dict, meta: dict, pngs: list[Path]) -> str:
    """summary.md: the sample and threshold, Tables 3-5 of Cerri et al. and the ROC table."""
    lines = [
        *_intro_lines(result, meta),
        *_table3_lines(result),
        *_table4_lines(result),
        *_table5_lines(result, meta),
        *_roc_lines(meta),
        "",
        *report_footer(pngs, meta["seconds"]),
    ]
    return "\n".join(lines) + "\n"


def _intro_lines(result: dict, meta: dict) -> list[str]:
    """Title, the SM sample, the VAE threshold and the table of thresholds."""
    th = result["threshold"]
    return [
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
        + (
            "this sample has enough."
            if th["method"] == "empirical"
            else f"this sample has {th['n_eff']:.3g}, so the SM survival function was fitted with an exponential over its "
            f"top {th.get('tail_events', 0)} populated loss bins ({fmt(th.get('tail_range', [np.nan])[0], 4)} to "
            f"{fmt(th.get('tail_range', [np.nan, np.nan])[1], 4)}) and extrapolated. The selected SM events are "
            "assumed to have the process composition of that tail (per-process efficiencies = epsilon_SM x tail share / "
            "process share, 95 % CL from the tail counts). A benchmark's efficiency is its measured efficiency at the "
            "lower edge of that tail times epsilon_SM over the SM efficiency there (its LR+ = eps_BSM / eps_SM held "
            "constant beyond the measured range; LR+ usually still grows there, so these efficiencies are conservative)."
        ),
        "",
        "Every number here is read off the processor's histograms: the second pass applied the exported VAE and BDT "
        f"files (`{meta['histograms']['file']}`, the VAE loss in {meta['score_bins']} bins), the third pass the "
        f"single-lepton trigger's cut-flow (`{meta['histograms']['slt_cutflow']}`). Thresholds and efficiencies are "
        "at loss-bin edges, rounded up.",
        "",
        *threshold_table(meta),
    ]


def _eff_text(e: dict) -> str:
    """An efficiency with its interval and how it was obtained, for the report's tables."""
    if e["method"] == "no events":
        return "no events"
    if e["method"] == "tail_ratio":
        return f"{e['efficiency']:.2g} [{e['low']:.2g}, {e['high']:.2g}] (LR+ {e['lr_plus']:.3g})"
    if e["method"] == "tail_composition":
        return f"{e['efficiency']:.2g} [{e['low']:.2g}, {e['high']:.2g}] (tail share {e['tail_share']:.0%})"
    if e["method"] == "exponential_tail_fit":
        return f"{e['efficiency']:.2g} (fit; measured < {e['upper_limit_empirical']:.2g})"
    return f"{e['efficiency']:.2g} [{e['low']:.2g}, {e['high']:.2g}]"


def _table3_lines(result: dict) -> list[str]:
    """Table 3: the SM processes after the VAE selection."""
    lines = [
        "## Table 3: SM processes after the VAE selection",
        "",
        "| process | share after single_lepton | VAE selection efficiency (95 % CL) | sample composition | events/month |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, r in result["table3"].items():
        lines.append(
            f"| {name}{few_events_mark(r['vae_efficiency']['n_selected'])} | {r['fraction_after_selection']:.1%} | {_eff_text(r['vae_efficiency'])} | "
            f"{r['selected_composition']:.0%} | {r['events_per_month']:.3g} |"
        )
    lines += [
        f"| total | | {result['sm_efficiency']:.2g} | | {result['sm_events_per_month']:.3g} |",
        *note_for(lines),
        "",
        "Paper: W 3.6e-6, QCD 6.0e-6, Z 21e-6, ttbar 400e-6; composition 32/29/21/18 %; 1204 events/month.",
        "",
    ]
    return lines


def _table4_lines(result: dict) -> list[str]:
    """Table 4: the BSM benchmarks' efficiencies and cross sections."""
    lines = [
        "## Table 4: BSM benchmarks",
        "",
        "| process | generated sigma [pb] | single_lepton acceptance | VAE efficiency | sigma_eff for 100 events/month [pb] | "
        "sigma_eff for S/B = 1/3 [pb] | sigma for 100 events/month [pb] | events/month at the generated sigma | "
        f"VAE efficiency at epsilon_SM = {config_check(result)} (measured; LR+) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in result["table4"].items():
        lines.append(
            f"| {name}{few_events_mark(r['vae_efficiency']['n_selected'])} | {r['xsec_generated_pb']:.3g} | {r['single_lepton_acceptance']:.3f} | {_eff_text(r['vae_efficiency'])} | "
            f"{fmt(r.get('xsec_eff_100_per_month_pb'))} | {fmt(r.get('xsec_eff_sb_pb'))} | "
            f"{fmt(r.get('xsec_100_per_month_pb'))} | {fmt(r.get('events_per_month_at_generated_xsec'))} | "
            + (
                f"{r['vae_efficiency_check']['efficiency']:.3g} [{r['vae_efficiency_check']['low']:.3g}, "
                f"{r['vae_efficiency_check']['high']:.3g}]; "
                f"{r['vae_efficiency_check']['efficiency'] / r['vae_efficiency_check']['sm_efficiency']:.3g} |"
                if "vae_efficiency_check" in r
                else "n/a |"
            )
        )
    lines += [
        *note_for(lines),
        "",
        "Paper (efficiency; sigma_eff for 100/month; for S/B = 1/3): A->4l 2.8e-3, 7.1 pb, 27 pb; LQ->b tau 6.7e-4, "
        "30, 110; h0->tau tau 3.6e-4, 55, 210; h+- ->tau nu 1.2e-3, 17, 65.",
        "",
    ]
    return lines


def _table5_lines(result: dict, meta: dict) -> list[str]:
    """Table 5: the single-lepton trigger against the VAE."""
    lines = [
        f"## Table 5: single-lepton trigger (a lepton with pT > {meta['slt']['pt_min']:g} GeV, Iso < "
        f"{meta['slt']['iso_max']:g}) vs VAE",
        "",
        "| | " + " | ".join(result["table5"]) + " |",
        "|---|" + "---|" * len(result["table5"]),
    ]
    t5 = result["table5"]
    lines.append("| epsilon_VAE | " + " | ".join(f"{r['vae_efficiency']:.2g}" for r in t5.values()) + " |")
    lines.append("| epsilon_SLT | " + " | ".join(f"{r['slt_efficiency']:.2f}" for r in t5.values()) + " |")
    lines.append("| epsilon_SLT / epsilon_VAE | " + " | ".join(f"{r['slt_over_vae']:.2g}" for r in t5.values()) + " |")
    lines.append(
        "| SBR_VAE / SBR_SLT | - | "
        + " | ".join(fmt(r["sbr_vae_over_sbr_slt"]) for k, r in t5.items() if k != "SM")
        + " |"
    )
    lines += [
        "",
        "Paper: SBR_VAE / SBR_SLT = 625 (A->4l), 125 (LQ), 70 (h0), 191 (h+-).",
        "",
    ]
    return lines


def _roc_lines(meta: dict) -> list[str]:
    """The AUCs of the VAE and the BDT per benchmark."""
    lines = [
        "## ROC: VAE vs BDT on the signal test halves",
        "",
        "| benchmark | AUC VAE | AUC BDT | AUC baseline (L1 distance from the median, the VAE's inputs) |",
        "| --- | --- | --- | --- |",
    ]
    for sig, r in meta["auc"].items():
        lines.append(f"| {sig} | {r['vae']:.3f} | {r['bdt']:.3f} | {r.get('baseline', float('nan')):.3f} |")
    return lines


# ------------------------------------------------------------------------------ the job
def run_trigger(
    out: str | os.PathLike, config: TriggerConfig = TriggerConfig(), *, samples_dir: str | os.PathLike | None = None
) -> Path:
    """Run the whole study into ``out`` (samples in ``samples_dir``, default ``out/samples``).

    The VAE and the BDTs are trained on the feature tables; their exported files are then applied
    inside a second processor pass (``OUT/pass2/histograms.*``: every score against N_J x N_b per
    dataset and training split), and a third pass with the ``single_lepton_slt`` selection gives the
    single-lepton trigger's cut-flow (``OUT/pass3_slt``). Every number and plot is read off those
    histograms: SM from the validation part (weights / its fraction, in the cocktail composition),
    signal efficiencies from all their events (the VAE never saw them), the BDT ROCs from the signal
    halves the BDTs were not trained on.
    """
    from cms_anomaly.analyses.cocktail import cocktail_samples, composition_scales, validation_indices
    from cms_anomaly.analyses.scorehists import ScoreHists
    from cms_anomaly.stats import MIN_EVENTS_ABOVE

    out = Path(out)
    samples_dir = Path(samples_dir) if samples_dir is not None else out / "samples"
    t0 = time.perf_counter()
    cs = cocktail_samples(samples_dir, config.cocktail, feature_set="hlf21", composition=config.composition)
    features_dir, fileset, samples, sm_names, sig_names = (
        cs.features_dir, cs.fileset, cs.samples, cs.sm_names, cs.signal_names,
    )  # fmt: skip
    times: dict[str, float] = {"samples": cs.seconds}

    options, vae, bdt_paths, scorers, output, slt_output = _train_and_score(
        config, features_dir, fileset, samples, out, times
    )
    t = time.perf_counter()
    loss = scorers["vae"].output_names[0]
    sh_val = ScoreHists(output, "vae", loss, split="validation")
    sh_all = ScoreHists(output, "vae", loss)
    lower_edges = sh_all.lower_edges()
    # SM: the validation part stands for the whole rate, in the requested process composition
    scales = composition_scales({n: float(sh_all.score_sums(n)[0].sum()) for n in sm_names}, config.composition)
    sm = {n: Binned(*sh_val.score_sums(n)).scaled(scales[n] / options.val_fraction) for n in sm_names}
    signals = {n: Binned(*sh_all.score_sums(n)) for n in sig_names}
    sm_all = sum(sm.values())
    thresholds = _thresholds(lower_edges, sm_all, config.epsilon_sm)
    threshold = thresholds[f"{config.epsilon_sm:g}"]
    slt = _slt_efficiencies(slt_output, samples)
    xsec = {n: float(fileset[n]["metadata"]["xsec_pb"]) for n in sig_names}
    result = analyse(sm, signals, lower_edges=lower_edges, xsec=xsec, threshold=threshold, slt=slt, config=config)
    bdt_sm, bdt_sig = _bdt_sums(output, bdt_paths, scales, sm_names)
    # the SM validation sums of ``sm``: their uniform 1 / val_fraction changes neither the ROC nor n_eff
    rocs = roc_table(sm_all, {n: Binned(*sh_val.score_sums(n)) for n in sig_names}, bdt_sm, bdt_sig)
    report_dir = fresh_report_dir(out)
    pngs = make_plots(sh_val, sh_all, sm, signals, rocs, result, report_dir)
    pngs += plot_model_training({"vae": vae.paths[0]}, report_dir)
    times["analysis"], times["total"] = time.perf_counter() - t, time.perf_counter() - t0
    n_validation = sum(
        len(i) for i in validation_indices(samples, seed=config.seed, val_fraction=options.val_fraction).values()
    )
    rates = {n: b.total for n, b in sm.items()}
    meta = {
        "config": asdict(config),
        "samples_dir": str(samples_dir),
        "composition": config.composition,
        "fractions": {n: r / sum(rates.values()) for n, r in rates.items()},
        "sm_training_events": sum(len(samples[n]) for n in sm_names) - n_validation,
        "sm_validation_events": n_validation,
        "min_events_above": MIN_EVENTS_ABOVE,
        "tail_bias": config.cocktail.tail_bias,
        "thresholds": thresholds,
        "models": [str(p) for p in (*vae.paths, *bdt_paths.values())],
        "auc": with_baseline_aucs(rocs, output, {n: scales[n] for n in sm_names}, split="validation"),
        "histograms": {
            "file": str(out / "pass2" / "histograms.coffea"),
            "model": "vae",
            "score": loss,
            "slt_cutflow": str(out / "pass3_slt" / "histograms.coffea"),
        },
        "slt": {"pt_min": SelectionConfig().slt_pt_min, "iso_max": SelectionConfig().slt_iso_max},
        "score_bins": f"{len(lower_edges) - 2} {'linear' if scorers['vae'].score_binning else 'log'}",
        "seconds": times,
        "unit_lumi_pb": UNIT_LUMI_PB,
    }
    markdown = format_report(result, meta, pngs)
    return write_report(report_dir, markdown=markdown, payload={**meta, "result": result}, title="VAE anomaly trigger")


def _train_and_score(
    config: TriggerConfig, features_dir: Path, fileset: dict, samples: dict, out: Path, times: dict[str, float]
) -> tuple[Any, Any, dict[str, Path], dict[str, Any], dict, dict]:
    """Train the VAE and the BDTs, apply them in the second pass, run the SLT cut-flow pass; models and outputs."""
    from cms_anomaly.analyses.analysis import processor_pass
    from cms_anomaly.models.pipeline import TrainOptions, train_and_export, train_bdts
    from cms_anomaly.models.scorers import load_scorer
    from cms_anomaly.processors.folds import EventSplit

    t = time.perf_counter()
    options = TrainOptions(epochs=config.epochs, seed=config.seed, device=config.device, progress=False)
    vae = train_and_export(
        "vae", features_dir=features_dir, out_dir=out / "models", feature_set="hlf21", options=options, samples=samples
    )
    bdt_paths = train_bdts(
        features_dir=features_dir,
        out_dir=out / "models",
        samples=samples,
        seed=config.seed,
        val_fraction=options.val_fraction,
    )
    base = fit_baseline(features_dir, out / "models", feature_set="hlf21", options=options, samples=samples)
    times["training"] = time.perf_counter() - t

    t = time.perf_counter()
    scorers = {"vae": load_scorer(vae.paths[0]), BASELINE: load_scorer(base)}
    scorers.update({f"bdt_{sig}": load_scorer(path) for sig, path in sorted(bdt_paths.items())})
    datasets = {n: fileset[n] for n in samples}
    common = {"lumi_pb": UNIT_LUMI_PB, "execution": config.cocktail.execution, "features": False}
    output = processor_pass(
        datasets,
        out=out / "pass2",
        selection="single_lepton",
        scorers=scorers,
        score_features=(),
        split=EventSplit(options.val_fraction, config.seed),
        **common,
    )
    slt_output = processor_pass(datasets, out=out / "pass3_slt", selection="single_lepton_slt", **common)
    times["passes"] = time.perf_counter() - t
    return options, vae, bdt_paths, scorers, output, slt_output


def _slt_efficiencies(slt_output: dict, samples: dict) -> dict[str, float]:
    """Single-lepton trigger efficiency of every dataset after the selection, from its cut-flow."""
    slt = {}
    for n in samples:
        sumw = slt_output[n]["cutflow"]["sumw"]
        slt[n] = sumw["slt"] / sumw["lepton_iso"] if sumw["lepton_iso"] > 0 else float("nan")
    return slt


def _bdt_sums(
    output: dict, bdt_paths: dict[str, Path], scales: dict[str, float], sm_names: list[str]
) -> tuple[dict[str, Binned], dict[str, Binned]]:
    """Per benchmark, its BDT's binned score of the SM validation events (composition scaled) and of the signal."""
    from cms_anomaly.analyses.scorehists import ScoreHists

    bdt_sm, bdt_sig = {}, {}
    for sig in bdt_paths:
        bdt = ScoreHists(output, f"bdt_{sig}", "p_signal", split="validation")
        bdt_sm[sig] = sum(Binned(*bdt.score_sums(n)).scaled(scales[n]) for n in sm_names)
        bdt_sig[sig] = Binned(*bdt.score_sums(sig))
    return bdt_sm, bdt_sig


def _thresholds(lower_edges: np.ndarray, sm_all: Binned, epsilon_sm: float) -> dict[str, dict]:
    """The VAE threshold at each reported SM efficiency and at ``epsilon_sm``, the largest efficiency first."""
    from cms_anomaly.stats import threshold_at_fpr_from_sums

    return {
        f"{fpr:g}": threshold_at_fpr_from_sums(lower_edges, sm_all.w, sm_all.w2, fpr=fpr)
        for fpr in sorted({*REPORTED_FPRS, epsilon_sm}, reverse=True)
    }


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
    p.add_argument(
        "--epsilon", type=fraction, default=EPSILON_SM, help="SM efficiency of the VAE selection (default 5.4e-6)"
    )
    p.add_argument("--epochs", type=positive_int, default=TriggerConfig.epochs, help="maximum VAE epochs")
    p.add_argument(
        "--composition",
        choices=("paper", "generated"),
        default="paper",
        help="SM process shares after the selection: the paper's (default) or Pythia's cross sections",
    )
    p.set_defaults(func=_cmd)


def _cmd(args: Any) -> int:
    config = TriggerConfig(
        cocktail=cocktail_config(args),
        epsilon_sm=args.epsilon,
        epochs=args.epochs,
        composition=args.composition,
        seed=args.seed,
        device=args.device,
    )
    summary = run_trigger(args.out, config, samples_dir=args.samples)
    return print_report(summary)
