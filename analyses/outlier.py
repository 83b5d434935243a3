"""The RMM autoencoder and invariant masses in its outlier region (Chekanov et al., seed 003).

``cms-anomaly outlier`` (:func:`run_outlier`):

1. the SM processes of the single-lepton cocktail (W, Z, ttbar, heavy-flavour QCD) and the paper's
   heavy benchmarks (sequential-SM Z' and W' at 2 TeV, a 1 TeV charged Higgs produced with a top
   quark, H+- -> t b), through the ``rmm_lepton`` selection (an isolated lepton with pT > 30 GeV and
   two jets) with rapidity-mass matrices (T5N10, 51 x 51) in the feature tables;
2. the autoencoder of Chekanov et al. (inputs -> 20 -> 10 -> 5 -> 10 -> 20, zero cells dropped)
   trained on half of the SM events (Pythia cross-section weights for everything else);
3. the outlier region ``ln(Loss) > C``. The paper's C (-6.5, -6) belongs to its own loss
   normalisation; here C is set by the fraction of SM events it keeps (``--outlier-fraction``);
4. the two-jet and two-b-jet invariant masses of the SM validation events in the outlier region,
   fitted with the 5-parameter dijet function (chi2 with the simulation's errors: chi2/ndf and pulls
   show whether the cut sculpts a bump), and the signal-over-background gain of the cut for the charged
   Higgs at large m_bb (Chekanov Fig. 6);
5. beside the AE, the trivial baseline it must beat (:mod:`~cms_anomaly.models.baseline`: the L1
   distance of the RMM cells, standardised, from their median, fitted on the AE's training events),
   applied in the same pass: its efficiencies at the cut that keeps the same SM fraction.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from cms_anomaly.analyses.analysis import fmt, fresh_report_dir, print_report, report_footer, write_report
from cms_anomaly.analyses.cocktail import SM_PROCESSES, CocktailConfig, add_cocktail_arguments, cocktail_config
from cms_anomaly.analyses.headline import with_note
from cms_anomaly.analyses.plot_training import plot_model_training
from cms_anomaly.core.argtypes import fraction, positive_int
from cms_anomaly.stats.headline import few_events_mark

log = logging.getLogger(__name__)

SIGNAL_LABELS = {"zprime_ssm": "Z' SSM (2 TeV)", "wprime_ssm": "W' SSM (2 TeV)", "hplus_t": r"H$^\pm$t (1 TeV)"}
MASSES = {"m_j_j": r"$m_{jj}$ [GeV]", "m_b_b": r"$m_{bb}$ [GeV]"}


def _default_cocktail() -> CocktailConfig:
    sm = {k: v for k, v in CocktailConfig().events.items() if k in SM_PROCESSES}
    return replace(CocktailConfig(), events={**sm, "zprime_ssm": 3000, "wprime_ssm": 3000, "hplus_t": 3000})


@dataclass(frozen=True)
class OutlierConfig:
    """Settings of :func:`run_outlier` (the SM samples are those of ``trigger``/``disco``: one
    ``--samples`` directory serves all three)."""

    cocktail: CocktailConfig = field(default_factory=_default_cocktail)
    outlier_fraction: float = 0.1
    epochs: int = 200
    seed: int = 1
    device: str = "auto"
    #: the charged-Higgs window for the S/B gain: m_bb above this fraction of m(H+-)
    hplus_mass: float = 1000.0
    hplus_window_fraction: float = 0.4
    #: the processor's 60 log bins of m_x_y (60 GeV - 4 TeV) merged this many at a time for the fits
    mass_rebin: int = 2


def fit_outlier_mass(h, *, name: str) -> dict[str, Any]:
    """5-parameter fit from the spectrum's maximum (the jet-pT turn-on lies below) to its last
    populated bin; chi2 with the bin variances (weighted simulation)."""
    from cms_anomaly.stats.fits import FitError, fit_dijet

    values = h.values()
    edges = h.axes[0].edges
    density = values / np.diff(edges)
    if (values > 0).sum() < 8:
        return {"status": f"too few populated bins ({int((values > 0).sum())}) for a 5-parameter fit", "name": name}
    start = int(np.argmax(density))
    last = int(np.flatnonzero(values > 0)[-1])
    in_range = int((values[start : last + 1] > 0).sum())
    if in_range < 10:  # 5 parameters need >= 5 degrees of freedom to say anything about the shape
        return {
            "status": f"too few populated bins ({in_range}) in the fit range from the maximum for a 5-parameter fit",
            "name": name,
        }
    try:
        fit = fit_dijet(h, model="chekanov5", method="chi2", fit_range=(edges[start], edges[last + 1]))
    except FitError as err:
        return {"status": f"fit failed: {err}", "name": name}
    pulls = fit.pulls[np.isfinite(fit.pulls)]
    return {
        "status": "ok",
        "name": name,
        "chi2": fit.chi2,
        "ndf": fit.ndf,
        "chi2_ndf": fit.chi2_ndf,
        "p_value": fit.p_value,
        "max_abs_pull": float(np.max(np.abs(pulls))) if pulls.size else float("nan"),
        "n_pulls_above_2": int(np.sum(np.abs(pulls) > 2)),
        "n_bins": int(pulls.size),
        "fit_range": [float(edges[start]), float(edges[last + 1])],
        "valid": fit.valid,
        "_fit": fit,
    }


def signal_to_background_gain(sm_all, sm_pass, sig_all, sig_pass, *, m_min: float) -> dict[str, dict[str, float]]:
    """S/B before and after the outlier cut, for all events and for m at or above the first bin edge
    >= ``m_min``; the gain is eps_S / eps_B (95 % CL lower limit from eps_B's Agresti-Coull upper bound).

    The arguments are 1-D weighted mass histograms (``Weight`` storage, one binning): SM and signal
    before (``*_all``) and after (``*_pass``) the cut; flow bins count (``all`` includes events
    without the object pair, filled below the axis).
    """
    from cms_anomaly.stats import effective_entries_from_sums, efficiency_from_sums
    from cms_anomaly.stats.headline import few_events

    edges = sm_all.axes[0].edges
    first = int(np.searchsorted(edges, m_min * (1 - 1e-9)))  # first bin whose lower edge >= m_min
    out = {}
    for label, start in (("all", 0), (f"m > {edges[min(first, len(edges) - 1)]:.0f}", first + 1)):

        def tot(h, what: str = "value", start: int = start) -> float:
            return float(np.asarray(h.view(flow=True)[what])[start:].sum())

        b0, s0, b1, s1 = tot(sm_all), tot(sig_all), tot(sm_pass), tot(sig_pass)
        eb = efficiency_from_sums(b1, b0, tot(sm_all, "variance"), cl=0.95) if b0 > 0 else None
        r = {
            "m_min": float(edges[min(first, len(edges) - 1)]) if start else float("-inf"),
            "background_before_pb": b0,
            "signal_before_pb": s0,
            "background_after_pb": b1,
            "signal_after_pb": s1,
            "s_over_b_before": s0 / b0 if b0 > 0 else float("inf"),
            "s_over_b_after": s1 / b1 if b1 > 0 else float("inf"),
            "signal_efficiency": s1 / s0 if s0 > 0 else float("nan"),
            "background_efficiency": b1 / b0 if b0 > 0 else float("nan"),
            "background_efficiency_high": float(eb.high) if eb is not None else float("nan"),
            "background_entries_after": round(effective_entries_from_sums(b1, tot(sm_pass, "variance"))),
        }
        r["few_events"] = few_events(r["background_entries_after"])
        r["gain"] = (
            r["signal_efficiency"] / r["background_efficiency"] if r["background_efficiency"] > 0 else float("inf")
        )
        r["gain_lower_limit"] = (
            r["signal_efficiency"] / r["background_efficiency_high"]
            if r["background_efficiency_high"] > 0
            else float("nan")
        )
        out[label] = r
    return out


def format_report(result: dict, meta: dict, pngs: list[Path]) -> str:
    lines = [
        "# RMM autoencoder and the outlier region (Chekanov et al., seed 003)",
        "",
        f"`rmm_lepton` selection (isolated lepton pT > 30 GeV, >= 2 jets pT > 30 GeV): SM "
        f"{', '.join(f'{k} {v}' for k, v in meta['sm_events'].items())} events (half for training, "
        f"{meta['n_train']} events, split by event identity; the other half below), signals "
        f"{', '.join(f'{k} {v}' for k, v in meta['signal_events'].items())}. The autoencoder keeps "
        f"{meta['kept_cells']} of 2601 RMM cells. Weights: Pythia cross sections.",
        "",
        f"Outlier region: ln(Loss) > C = {result['ln_loss_cut']:.3f}, the loss-bin edge "
        f"({result['ln_bins_per_unit']:.1f} bins per unit of ln) that keeps "
        f"at most {meta['outlier_fraction']:.0%} of the SM: {result['sm_efficiency']:.1%} of the SM validation events "
        f"(paper: C in (-6.5, -6) on its own loss scale). Every number and plot here is read off the second processor "
        f"pass's histograms (`pass2/histograms.coffea`), which applied the exported AE file.",
        "",
        "## Efficiency of ln(Loss) > C",
        "",
        "| sample | efficiency | events in the outlier region |",
        "| --- | --- | --- |",
    ]
    lines += with_note(
        f"| {name}{few_events_mark(r['entries'])} | {r['efficiency']:.3g} | {r['entries']} |"
        for name, r in result["efficiencies"].items()
    )
    lines += _baseline_lines(result)
    lines += [
        "",
        "## Invariant masses of SM events in the outlier region: 5-parameter fit",
        "",
        "| mass | fit range [GeV] | chi2 / ndf | p-value | max abs pull | bins with abs pull > 2 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, f in result["fits"].items():
        if f["status"] != "ok":
            lines.append(f"| {name} | {f['status']} | | | | |")
            continue
        lines.append(
            f"| {name} | {f['fit_range'][0]:.0f}-{f['fit_range'][1]:.0f} | {f['chi2']:.1f} / {f['ndf']} | "
            f"{f['p_value']:.2f} | {f['max_abs_pull']:.2f} | {f['n_pulls_above_2']} of {f['n_bins']} |"
        )
    fitted = any(f["status"] == "ok" for f in result["fits"].values())
    lines += [
        "",
        (
            "Read the fits by their chi2/ndf and pulls: near 1 and without a run of same-sign deviations, the "
            "cut on the loss does not create a bump in the SM spectra (paper: 'Good agreement with the function "
            "was found, without significant deviations in the pulls')."
            if fitted
            else "No spectrum has enough populated bins in the outlier region for a 5-parameter fit: this sample "
            "cannot tell whether the cut sculpts the SM spectra (more events: --events)."
        ),
        "",
        "## Charged Higgs (1 TeV, H+- t): signal over background before and after the cut",
        "",
        "| region | S/B before | S/B after | eps_S | eps_B | gain eps_S / eps_B (95 % CL lower limit) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    rows = []
    for label, r in result["hplus_gain"].items():
        rows.append(
            f"| m_bb {label}{few_events_mark(r['background_entries_after'])} | {r['s_over_b_before']:.3g} | {fmt(r['s_over_b_after'])} | {r['signal_efficiency']:.3g} | "
            f"{r['background_efficiency']:.3g} ({r['background_entries_after']} effective SM events) | "
            f"{fmt(r['gain'])} (> {fmt(r['gain_lower_limit'])}) |"
        )
    lines += with_note(rows)
    lines += [
        "",
        "Paper (H+- at 0.5 TeV, ln(Loss) > -6): 'the selection cut can significantly increase the "
        "signal-over-background ratio; for large m_bb the H+- events dominate'.",
        "",
        *report_footer(pngs, meta["seconds"]),
    ]
    return "\n".join(lines) + "\n"


def _baseline_lines(result: dict) -> list[str]:
    """The trivial baseline's efficiencies beside the AE's, at its cut keeping the same SM fraction."""
    base = result.get("baseline_efficiencies", {})
    if not base:
        return []
    return [
        "",
        "The trivial baseline the AE must beat (the L1 distance of the standardised RMM cells from their "
        "median, fitted on the AE's training events), cut to keep the same SM fraction: efficiency "
        + ", ".join(f"{n} {r['efficiency']:.3g} ({r['entries']} events)" for n, r in base.items())
        + ".",
    ]


@dataclass(frozen=True)
class _LossHists:
    """The second pass's histograms: SM from the validation part (scaled to the whole rate), signals from every event."""

    sm_h: Any
    all_h: Any
    sm_names: list[str]
    sig_names: list[str]
    scale: float
    mass_rebin: int

    def of(self, name: str) -> Any:
        """The :class:`~cms_anomaly.analyses.scorehists.ScoreHists` a dataset is read from."""
        return self.sm_h if name in self.sm_names else self.all_h

    def ln_loss(self, name: str, first: int, last: int) -> Any:
        """The loss histogram of ``name`` in ln units (bins ``first`` to ``last``, merged 4 at a time)."""
        import hist

        h = self.of(name).score_hist(name, first=first, last=last, rebin=4)
        out_h = hist.Hist(
            hist.axis.Variable(np.log(h.axes[0].edges), name="lnloss", label="ln(Loss)"), storage=hist.storage.Weight()
        )
        out_h.view(flow=False)[...] = h.view(flow=False)
        return out_h

    def mass(self, name: str, key: str, first_bin: int = 0) -> Any:
        """Mass ``key`` of ``name`` for loss bins from ``first_bin`` on (SM scaled to the whole rate)."""
        import hist

        h = self.of(name).feature(name, key, first_bin=first_bin)[:: hist.rebin(self.mass_rebin)]
        return h * self.scale if name in self.sm_names else h

    def sm_mass(self, key: str, first_bin: int = 0) -> Any:
        """Mass ``key`` of the SM sum for loss bins from ``first_bin`` on."""
        names = self.sm_names
        return sum((self.mass(n, key, first_bin) for n in names[1:]), start=self.mass(names[0], key, first_bin))


def run_outlier(
    out: str | os.PathLike, config: OutlierConfig = OutlierConfig(), *, samples_dir: str | os.PathLike | None = None
) -> Path:
    """Run the whole study into ``out`` (samples in ``samples_dir``, default ``out/samples``).

    The AE is trained on the training part of the SM events (:class:`EventSplit` by event
    identity); the exported TorchScript file is then applied inside a second processor pass
    (``OUT/pass2/histograms.*``), which histograms the loss against m_jj and m_bb per dataset and
    split. Every number and plot below is read off those histograms: SM from the validation part
    (weights / its fraction), signals from all their events (never trained on).
    """
    from cms_anomaly.analyses.scorehists import ScoreHists
    from cms_anomaly.stats import threshold_bin_at_efficiency

    out = Path(out)
    samples_dir = Path(samples_dir) if samples_dir is not None else out / "samples"
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    samples, ae, val_fraction, output, loss, base_score = _train_and_score(out, config, samples_dir, times)
    t = time.perf_counter()
    sm_names = [n for n, s in samples.items() if not s.is_signal]
    sig_names = [n for n, s in samples.items() if s.is_signal]
    sm_h = ScoreHists(output, "ae", loss, split="validation")  # SM: the events the AE did not see
    all_h = ScoreHists(output, "ae", loss)  # signals: every event
    # the validation part stands for the whole SM rate
    hs = _LossHists(sm_h, all_h, sm_names, sig_names, 1.0 / val_fraction, config.mass_rebin)
    sm_w = sum(sm_h.score_sums(n)[0] for n in sm_names)
    k = threshold_bin_at_efficiency(sm_w, efficiency=config.outlier_fraction)
    cut = float(np.log(all_h.threshold(k)))
    eff = _efficiencies(hs, k)
    # the baseline at its own cut that keeps the same SM fraction, from the same pass
    b_sm = ScoreHists(output, "baseline", base_score, split="validation")
    b_hs = replace(hs, sm_h=b_sm, all_h=ScoreHists(output, "baseline", base_score))
    b_k = threshold_bin_at_efficiency(sum(b_sm.score_sums(n)[0] for n in sm_names), efficiency=config.outlier_fraction)
    report_dir = fresh_report_dir(out)
    pngs = [_plot_ln_loss(hs, report_dir, cut=cut, outlier_fraction=config.outlier_fraction)]
    fits = _mass_fits(hs, k, cut, report_dir, pngs)
    gain = _hplus_gain(hs, k, cut, config, report_dir, pngs) if "hplus_t" in sig_names else {}
    pngs += plot_model_training({"ae": ae.paths[0]}, report_dir)
    times["analysis"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - t0
    n_validation = {n: float(sm_h.score_sums(n)[0].sum()) for n in sm_names}
    result = {
        "ln_loss_cut": cut,
        # the loss axis's resolution at the cut, in bins per unit of ln(Loss)
        "ln_bins_per_unit": float(1.0 / (np.log(all_h.threshold(k + 1)) - cut)),
        "efficiencies": eff,
        "fits": {k: {a: b for a, b in f.items() if a != "_fit"} for k, f in fits.items()},
        "sm_efficiency": float(sm_w[k:].sum() / sm_w.sum()),
        "hplus_gain": gain,
        "baseline_efficiencies": _efficiencies(b_hs, b_k),
        "histograms": {
            "file": str(out / "pass2" / "histograms.coffea"),
            "model": "ae",
            "score": loss,
            "threshold_bin": k,
        },
    }
    meta = {
        "config": asdict(config),
        "samples_dir": str(samples_dir),
        "outlier_fraction": config.outlier_fraction,
        "sm_events": {n: len(samples[n]) for n in sm_names},
        "signal_events": {n: len(samples[n]) for n in sig_names},
        "n_train": ae.cards[0].training["n_train"],
        "kept_cells": int(ae.model.preprocess.indices.numel()),
        "sm_validation_sumw_pb": n_validation,
        "model": str(ae.paths[0]),
        "seconds": times,
    }
    markdown = format_report(result, meta, pngs)
    return write_report(report_dir, markdown=markdown, payload={**meta, "result": result}, title="RMM outlier region")


def _train_and_score(
    out: Path, config: OutlierConfig, samples_dir: Path, times: dict[str, float]
) -> tuple[dict[str, Any], Any, float, Any, str, str]:
    """Samples, the AE trained on them, its validation fraction, the second pass's output, the loss name and
    the baseline's score name (the baseline fitted on the AE's training events, applied in the same pass)."""
    from cms_anomaly.analyses.analysis import processor_pass
    from cms_anomaly.analyses.cocktail import UNIT_LUMI_PB, feature_tables
    from cms_anomaly.models.data import read_samples
    from cms_anomaly.models.feature_sets import get_feature_set
    from cms_anomaly.models.pipeline import TrainOptions, train_and_export
    from cms_anomaly.models.scorers import load_scorer
    from cms_anomaly.processors.folds import EventSplit

    t = time.perf_counter()
    features_dir, fileset = feature_tables(samples_dir, config.cocktail, selection="rmm_lepton")
    times["samples"] = time.perf_counter() - t
    t = time.perf_counter()
    samples = read_samples(features_dir, feature_set=get_feature_set("rmm"))
    options = TrainOptions(epochs=config.epochs, seed=config.seed, device=config.device, progress=False)
    ae = train_and_export(
        "ae", features_dir=features_dir, out_dir=out / "models", feature_set="rmm", options=options, samples=samples
    )
    base = train_and_export(
        "baseline",
        features_dir=features_dir,
        out_dir=out / "models",
        feature_set="rmm",
        options=options,
        samples=samples,
    )
    times["training"] = time.perf_counter() - t
    t = time.perf_counter()
    scorer, base_scorer = load_scorer(ae.paths[0]), load_scorer(base.paths[0])
    output = processor_pass(
        {n: fileset[n] for n in samples},
        out=out / "pass2",
        selection="rmm_lepton",
        lumi_pb=UNIT_LUMI_PB,
        execution=config.cocktail.execution,
        scorers={"ae": scorer, "baseline": base_scorer},
        features=False,
        score_features=tuple(MASSES),
        split=EventSplit(options.val_fraction, config.seed),
    )
    times["pass2"] = time.perf_counter() - t
    return samples, ae, options.val_fraction, output, scorer.output_names[0], base_scorer.output_names[0]


def _efficiencies(hs: _LossHists, k: int) -> dict[str, dict[str, float]]:
    """Per dataset, its weight fraction and effective entries in the outlier region (loss bins from ``k`` on)."""
    from cms_anomaly.stats import effective_entries_from_sums
    from cms_anomaly.stats.headline import few_events

    eff = {}
    for name in [*hs.sm_names, *hs.sig_names]:
        w, w2 = hs.of(name).score_sums(name)
        eff[name] = {
            "efficiency": float(w[k:].sum() / w.sum()) if w.sum() > 0 else float("nan"),
            "entries": round(effective_entries_from_sums(w[k:].sum(), w2[k:].sum())),
        }
        eff[name]["few_events"] = few_events(eff[name]["entries"])
    return eff


def _plot_ln_loss(hs: _LossHists, report_dir: Path, *, cut: float, outlier_fraction: float) -> Path:
    """ln(Loss) distributions with the cut (Chekanov Fig. 2): the loss histograms in ln units."""
    from cms_anomaly.analyses import plotting

    first, last = hs.all_h.occupied_range([*hs.sm_names, *hs.sig_names])
    shapes = {f"SM {n}": hs.ln_loss(n, first, last) for n in hs.sm_names}
    shapes.update({SIGNAL_LABELS.get(n, n): hs.ln_loss(n, first, last) for n in hs.sig_names})
    styles = {SIGNAL_LABELS.get(n, n): {"ls": "--"} for n in hs.sig_names}
    return plotting.plot_shapes(
        shapes,
        report_dir / "ln_loss.png",
        styles=styles,
        text="Simulation",
        cuts={f"C = {cut:.2f} ({outlier_fraction:.0%} of SM)": cut},
    )


def _mass_fits(hs: _LossHists, k: int, cut: float, report_dir: Path, pngs: list[Path]) -> dict[str, dict[str, Any]]:
    """Fit each SM mass in the outlier region; plot the fits that converged (appended to ``pngs``)."""
    from cms_anomaly.analyses import plotting

    fits = {}
    for key, label in MASSES.items():
        h = hs.sm_mass(key, k)
        h.axes[0].label = label
        fits[key] = fit_outlier_mass(h, name=key)
        # the benchmarks' Pythia cross sections are 1e-5 to 1e-9 of the SM here: drawn as shapes with the
        # SM outlier-region yield, so that where they would sit is visible
        sm_yield = float(h.values().sum())
        overlays = {}
        for n in hs.sig_names:
            h_sig = hs.mass(n, key, k)
            if h_sig.values().sum() > 0:
                overlays[f"{SIGNAL_LABELS.get(n, n)} (shape)"] = h_sig * (sm_yield / float(h_sig.values().sum()))
        if fits[key]["status"] == "ok":
            pngs.append(
                plotting.plot_fit(
                    fits[key]["_fit"],
                    report_dir / f"{key}_outlier_fit.png",
                    xlabel=label,
                    data_label=f"SM MC, ln(Loss) > {cut:.2f}",
                    text="Simulation",
                    overlays=overlays,
                )
            )
    return fits


def _hplus_gain(
    hs: _LossHists, k: int, cut: float, config: OutlierConfig, report_dir: Path, pngs: list[Path]
) -> dict[str, dict[str, float]]:
    """The charged Higgs's S/B gain in its m_bb window, with the m_bb plot before and after the cut."""
    from cms_anomaly.analyses import plotting

    m_min = config.hplus_window_fraction * config.hplus_mass
    sm_all, sm_pass = hs.sm_mass("m_b_b"), hs.sm_mass("m_b_b", k)
    hp_all, hp_pass = hs.mass("hplus_t", "m_b_b"), hs.mass("hplus_t", "m_b_b", k)
    gain = signal_to_background_gain(sm_all, sm_pass, hp_all, hp_pass, m_min=m_min)
    # H+- t normalised to 1 % of the SM rate before the cut (its Pythia cross section is ~1e-9 of it);
    # the gain eps_S / eps_B does not depend on this
    norm = 0.01 * float(sm_all.sum(flow=True).value) / float(hp_all.sum(flow=True).value)
    h_label = f"{SIGNAL_LABELS['hplus_t']} x {norm:.2g}"
    before_after = {
        "SM MC": sm_all,
        f"SM MC, ln(Loss) > {cut:.2f}": sm_pass,
        h_label: hp_all * norm,
        f"{h_label}, ln(Loss) > {cut:.2f}": hp_pass * norm,
    }
    for h in before_after.values():
        h.axes[0].label = MASSES["m_b_b"]
    m_edge = next(r["m_min"] for label, r in gain.items() if label != "all")
    styles = {
        "SM MC": {"color": "black", "ls": ":"},
        f"SM MC, ln(Loss) > {cut:.2f}": {"color": "black", "ls": "-"},
        h_label: {"color": plotting.PROCESS_COLORS[2], "ls": ":"},
        f"{h_label}, ln(Loss) > {cut:.2f}": {"color": plotting.PROCESS_COLORS[2], "ls": "-"},
    }
    pngs.append(
        plotting.plot_shapes(
            before_after,
            report_dir / "m_b_b_hplus.png",
            normalise=False,
            logx=True,
            styles=styles,
            ylabel="Cross section / bin width [pb / GeV]",
            cuts={f"m_bb > {m_edge:.0f} GeV": m_edge},
            text="Simulation",
        )
    )
    return gain


# ------------------------------------------------------------------------------ CLI
def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "outlier",
        help="RMM autoencoder: ln(Loss) distributions, dijet fits in the outlier region, S/B gain (Chekanov et al.)",
        description=(
            "Generate (or reuse) the SM processes and the Z'/W' SSM and H+- t benchmarks, run the rmm_lepton processor "
            "(rapidity-mass matrices), train the RMM autoencoder on SM events and study the outlier region "
            "ln(Loss) > C: m_jj and m_bb fitted with the 5-parameter dijet function, the charged-Higgs S/B gain. "
            "Writes OUT/report."
        ),
    )
    add_cocktail_arguments(p, default_out="out/outlier")
    p.add_argument(
        "--outlier-fraction",
        type=fraction,
        default=OutlierConfig.outlier_fraction,
        help="fraction of SM events in the outlier region (sets C; default 0.1)",
    )
    p.add_argument("--epochs", type=positive_int, default=OutlierConfig.epochs, help="maximum AE epochs")
    p.set_defaults(func=_cmd)


def _cmd(args: Any) -> int:
    config = OutlierConfig(
        cocktail=cocktail_config(args, _default_cocktail()),
        outlier_fraction=args.outlier_fraction,
        epochs=args.epochs,
        seed=args.seed,
        device=args.device,
    )
    summary = run_outlier(args.out, config, samples_dir=args.samples)
    return print_report(summary)
