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
   Higgs at large m_bb (Chekanov Fig. 6).
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from cms_anomaly.analyses.analysis import fmt, print_report, report_footer, write_report
from cms_anomaly.analyses.cocktail import SM_PROCESSES, CocktailConfig, add_cocktail_arguments, cocktail_config
from cms_anomaly.datasets.argtypes import fraction, positive_int

log = logging.getLogger(__name__)

SIGNALS = ("zprime_ssm", "wprime_ssm", "hplus_t")
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
    mass_edges: tuple[float, ...] = tuple(float(x) for x in np.round(np.geomspace(60.0, 4000.0, 31), 0))


def _mass_hist(values: np.ndarray, weights: np.ndarray, edges: tuple[float, ...], label: str):
    import hist

    h = hist.Hist(hist.axis.Variable(edges, name="m", label=label), storage=hist.storage.Weight())
    ok = values > 0  # 0: an object of the pair is missing
    h.fill(values[ok], weight=weights[ok])
    return h


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
    try:
        fit = fit_dijet(h, model="chekanov5", method="chi2", fit_range=(edges[start], edges[last + 1]))
    except FitError as err:
        return {"status": f"fit failed: {err}", "name": name}
    pulls = fit.pulls[np.isfinite(fit.pulls)]
    return {"status": "ok", "name": name, "chi2": fit.chi2, "ndf": fit.ndf, "chi2_ndf": fit.chi2_ndf,
            "p_value": fit.p_value, "max_abs_pull": float(np.max(np.abs(pulls))) if pulls.size else float("nan"),
            "n_pulls_above_2": int(np.sum(np.abs(pulls) > 2)), "n_bins": int(pulls.size),
            "fit_range": [float(edges[start]), float(edges[last + 1])], "valid": fit.valid, "_fit": fit}


def signal_to_background_gain(sm_m: np.ndarray, sm_w: np.ndarray, sm_pass: np.ndarray, sig_m: np.ndarray,
                              sig_w: np.ndarray, sig_pass: np.ndarray, *, m_min: float) -> dict[str, float]:
    """S/B before and after the outlier cut for m > m_min (and for all m): the gain is eps_S / eps_B."""
    from cms_anomaly.stats import weighted_efficiency

    out = {}
    for label, lo in (("all", -np.inf), (f"m > {m_min:g}", m_min)):
        b_in, s_in = sm_m > lo, sig_m > lo
        b0, s0 = float(sm_w[b_in].sum()), float(sig_w[s_in].sum())
        b1, s1 = float(sm_w[b_in & sm_pass].sum()), float(sig_w[s_in & sig_pass].sum())
        eb = weighted_efficiency(sm_pass[b_in], sm_w[b_in]) if b_in.any() else None
        out[label] = {"background_before_pb": b0, "signal_before_pb": s0, "background_after_pb": b1, "signal_after_pb": s1,
                      "s_over_b_before": s0 / b0 if b0 > 0 else float("inf"),
                      "s_over_b_after": s1 / b1 if b1 > 0 else float("inf"),
                      "signal_efficiency": s1 / s0 if s0 > 0 else float("nan"),
                      "background_efficiency": b1 / b0 if b0 > 0 else float("nan"),
                      "background_efficiency_high": float(eb.high) if eb is not None else float("nan"),
                      "background_entries_after": int((b_in & sm_pass).sum())}
        r = out[label]
        r["gain"] = (r["signal_efficiency"] / r["background_efficiency"]
                     if r["background_efficiency"] > 0 else float("inf"))
        r["gain_lower_limit"] = (r["signal_efficiency"] / r["background_efficiency_high"]
                                 if r["background_efficiency_high"] > 0 else float("nan"))
    return out


def format_report(result: dict, meta: dict, pngs: list[Path]) -> str:
    lines = [
        "# RMM autoencoder and the outlier region (Chekanov et al., seed 003)",
        "",
        f"`rmm_lepton` selection (isolated lepton pT > 30 GeV, >= 2 jets pT > 30 GeV): SM "
        f"{', '.join(f'{k} {v}' for k, v in meta['sm_events'].items())} events (half for training, "
        f"{meta['n_train']} events; the other half below), signals "
        f"{', '.join(f'{k} {v}' for k, v in meta['signal_events'].items())}. The autoencoder keeps "
        f"{meta['kept_cells']} of 2601 RMM cells. Weights: Pythia cross sections.",
        "",
        f"Outlier region: ln(Loss) > C = {result['ln_loss_cut']:.3f}, keeping {meta['outlier_fraction']:.0%} of the SM "
        f"(paper: C in (-6.5, -6) on its own loss scale).",
        "",
        "## Efficiency of ln(Loss) > C",
        "",
        "| sample | efficiency | events in the outlier region |",
        "| --- | --- | --- |",
    ]
    for name, r in result["efficiencies"].items():
        lines.append(f"| {name} | {r['efficiency']:.3g} | {r['entries']} |")
    lines += ["", "## Invariant masses of SM events in the outlier region: 5-parameter fit", "",
              "| mass | fit range [GeV] | chi2 / ndf | p-value | max abs pull | bins with abs pull > 2 |",
              "| --- | --- | --- | --- | --- | --- |"]
    for name, f in result["fits"].items():
        if f["status"] != "ok":
            lines.append(f"| {name} | {f['status']} | | | | |")
            continue
        lines.append(f"| {name} | {f['fit_range'][0]:.0f}-{f['fit_range'][1]:.0f} | {f['chi2']:.1f} / {f['ndf']} | "
                     f"{f['p_value']:.2f} | {f['max_abs_pull']:.2f} | {f['n_pulls_above_2']} of {f['n_bins']} |")
    lines += ["", "A chi2/ndf near 1 and pulls without a run of same-sign deviations: the cut on the loss does not "
                  "create a bump in the SM spectra (paper: 'Good agreement with the function was found, without "
                  "significant deviations in the pulls').", "",
              "## Charged Higgs (1 TeV, H+- t): signal over background before and after the cut", "",
              "| region | S/B before | S/B after | eps_S | eps_B | gain eps_S / eps_B (95 % CL lower limit) |",
              "| --- | --- | --- | --- | --- | --- |"]
    for label, r in result["hplus_gain"].items():
        lines.append(f"| m_bb {label} | {r['s_over_b_before']:.3g} | {fmt(r['s_over_b_after'])} | {r['signal_efficiency']:.3g} | "
                     f"{r['background_efficiency']:.3g} ({r['background_entries_after']} SM events) | "
                     f"{fmt(r['gain'])} (> {fmt(r['gain_lower_limit'])}) |")
    lines += ["", "Paper (H+- at 0.5 TeV, ln(Loss) > -6): 'the selection cut can significantly increase the "
                  "signal-over-background ratio; for large m_bb the H+- events dominate'.", "", *report_footer(pngs, meta["seconds"])]
    return "\n".join(lines) + "\n"


def run_outlier(out: str | os.PathLike, config: OutlierConfig = OutlierConfig(), *,
                samples_dir: str | os.PathLike | None = None) -> Path:
    """Run the whole study into ``out`` (samples in ``samples_dir``, default ``out/samples``)."""
    import hist

    from cms_anomaly.models.data import read_samples
    from cms_anomaly.models.export import eager_scores
    from cms_anomaly.models.feature_sets import get_feature_set
    from cms_anomaly.models.pipeline import TrainOptions, train_and_export
    from cms_anomaly.analyses import plotting
    from cms_anomaly.analyses.cocktail import feature_tables, validation_indices
    from cms_anomaly.processors.feature_io import read_feature_tables
    from cms_anomaly.processors.rmm import M_LEAD_NAMES
    from cms_anomaly.stats import threshold_at_efficiency

    out = Path(out)
    samples_dir = Path(samples_dir) if samples_dir is not None else out / "samples"
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    features_dir, _ = feature_tables(samples_dir, config.cocktail, selection="rmm_lepton")
    times["samples"] = time.perf_counter() - t0
    t = time.perf_counter()
    samples = read_samples(features_dir, feature_set=get_feature_set("rmm"))
    options = TrainOptions(epochs=config.epochs, seed=config.seed, device=config.device, progress=False)
    ae = train_and_export("ae", features_dir=features_dir, out_dir=out / "models", feature_set="rmm", options=options,
                          samples=samples)
    times["training"] = time.perf_counter() - t
    t = time.perf_counter()
    idx = validation_indices(samples, seed=config.seed, val_fraction=options.val_fraction)
    masses = {}
    for name in samples:
        table = read_feature_tables(features_dir / name, columns=["m_lead_objects"], as_numpy=True)
        m = np.asarray(table["m_lead_objects"], dtype=np.float64).reshape(len(samples[name]), -1)
        masses[name] = {k: m[:, M_LEAD_NAMES.index(k)] for k in MASSES}
    sm, sig = {}, {}
    for name, s in samples.items():
        rows = idx[name] if name in idx else np.arange(len(s))
        # SM: the validation half (weights x 2 for the full rate); signals: all events (never trained on)
        w = s.weight[rows] / (options.val_fraction if name in idx else 1.0)
        entry = {"ln_loss": np.log(np.maximum(eager_scores(ae.model, s.x[rows]), 1e-30)), "weight": w,
                 **{k: v[rows] for k, v in masses[name].items()}}
        (sm if name in idx else sig)[name] = entry
    sm_ln = np.concatenate([e["ln_loss"] for e in sm.values()])
    sm_w = np.concatenate([e["weight"] for e in sm.values()])
    cut = float(threshold_at_efficiency(sm_ln, sm_w, efficiency=config.outlier_fraction))
    eff = {}
    for name, e in {**sm, **sig}.items():
        passed = e["ln_loss"] > cut
        eff[name] = {"efficiency": float(e["weight"][passed].sum() / e["weight"].sum()), "entries": int(passed.sum())}
    sm_all = {k: np.concatenate([e[k] for e in sm.values()]) for k in MASSES}
    sm_pass = sm_ln > cut
    report_dir = out / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    pngs: list[Path] = []
    # ln(Loss) distributions (Chekanov Fig. 2)
    all_ln = np.concatenate([e["ln_loss"] for e in {**sm, **sig}.values()])
    lo, hi = float(np.quantile(all_ln, 1e-3)), float(all_ln.max()) + 0.5
    axis = hist.axis.Regular(50, lo, hi, name="lnloss", label="ln(Loss)")

    def h_ln(e: dict):  # noqa: ANN202
        h = hist.Hist(axis, storage=hist.storage.Weight())
        h.fill(np.clip(e["ln_loss"], lo, hi - 1e-9), weight=e["weight"])
        return h

    shapes = {f"SM {n}": h_ln(e) for n, e in sm.items()}
    shapes.update({SIGNAL_LABELS.get(n, n): h_ln(e) for n, e in sig.items()})
    styles = {SIGNAL_LABELS.get(n, n): {"ls": "--"} for n in sig}
    pngs.append(plotting.plot_shapes(shapes, report_dir / "ln_loss.png", styles=styles, text="Simulation",
                                     cuts={f"C = {cut:.2f} ({config.outlier_fraction:.0%} of SM)": cut}))
    fits = {}
    for key, label in MASSES.items():
        h = _mass_hist(sm_all[key][sm_pass], sm_w[sm_pass], config.mass_edges, label)
        fits[key] = fit_outlier_mass(h, name=key)
        # the benchmarks' Pythia cross sections are 1e-5 to 1e-9 of the SM here: drawn as shapes with the
        # SM outlier-region yield, so that where they would sit is visible
        sm_yield = float(h.values().sum())
        overlays = {}
        for n, e in sig.items():
            passed = e["ln_loss"] > cut
            hs = _mass_hist(e[key][passed], e["weight"][passed], config.mass_edges, label)
            if hs.values().sum() > 0:
                overlays[f"{SIGNAL_LABELS.get(n, n)} (shape)"] = hs * (sm_yield / float(hs.values().sum()))
        if fits[key]["status"] == "ok":
            pngs.append(plotting.plot_fit(fits[key]["_fit"], report_dir / f"{key}_outlier_fit.png", xlabel=label,
                                          data_label=f"SM MC, ln(Loss) > {cut:.2f}", text="Simulation",
                                          overlays=overlays))
    hplus = sig.get("hplus_t")
    gain = {}
    if hplus is not None:
        m_min = config.hplus_window_fraction * config.hplus_mass
        gain = signal_to_background_gain(sm_all["m_b_b"], sm_w, sm_pass, hplus["m_b_b"], hplus["weight"],
                                         hplus["ln_loss"] > cut, m_min=m_min)
        # H+- t normalised to 1 % of the SM rate before the cut (its Pythia cross section is ~1e-9 of it);
        # the gain eps_S / eps_B does not depend on this
        k = 0.01 * float(sm_w.sum()) / float(hplus["weight"].sum())
        h_label = f"{SIGNAL_LABELS['hplus_t']} x {k:.2g}"
        before_after = {"SM MC": _mass_hist(sm_all["m_b_b"], sm_w, config.mass_edges, MASSES["m_b_b"]),
                        f"SM MC, ln(Loss) > {cut:.2f}": _mass_hist(sm_all["m_b_b"][sm_pass], sm_w[sm_pass], config.mass_edges, MASSES["m_b_b"]),
                        h_label: _mass_hist(hplus["m_b_b"], hplus["weight"] * k, config.mass_edges, MASSES["m_b_b"]),
                        f"{h_label}, ln(Loss) > {cut:.2f}": _mass_hist(
                            hplus["m_b_b"][hplus["ln_loss"] > cut], hplus["weight"][hplus["ln_loss"] > cut] * k,
                            config.mass_edges, MASSES["m_b_b"])}
        styles = {"SM MC": {"color": "black", "ls": ":"}, f"SM MC, ln(Loss) > {cut:.2f}": {"color": "black", "ls": "-"},
                  h_label: {"color": plotting.PROCESS_COLORS[2], "ls": ":"},
                  f"{h_label}, ln(Loss) > {cut:.2f}": {"color": plotting.PROCESS_COLORS[2], "ls": "-"}}
        pngs.append(plotting.plot_shapes(before_after, report_dir / "m_b_b_hplus.png", normalise=False, logx=True,
                                         styles=styles, ylabel="Cross section / bin width [pb / GeV]",
                                         cuts={f"m_bb > {m_min:g} GeV": m_min}, text="Simulation"))
    times["analysis"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - t0
    result = {"ln_loss_cut": cut, "efficiencies": eff, "fits": {k: {a: b for a, b in f.items() if a != "_fit"} for k, f in fits.items()},
              "hplus_gain": gain}
    meta = {"config": asdict(config), "samples_dir": str(samples_dir), "outlier_fraction": config.outlier_fraction,
            "sm_events": {n: len(samples[n]) for n in idx}, "signal_events": {n: len(samples[n]) for n in sig},
            "n_train": sum(len(samples[n]) for n in idx) - len(sm_ln), "kept_cells": int(ae.model.preprocess.indices.numel()),
            "model": str(ae.paths[0]), "seconds": times}
    markdown = format_report(result, meta, pngs)
    return write_report(report_dir, markdown=markdown, payload={**meta, "result": result}, title="RMM outlier region")


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
    p.add_argument("--outlier-fraction", type=fraction, default=OutlierConfig.outlier_fraction,
                   help="fraction of SM events in the outlier region (sets C; default 0.1)")
    p.add_argument("--epochs", type=positive_int, default=OutlierConfig.epochs, help="maximum AE epochs")
    p.set_defaults(func=_cmd)


def _cmd(args: Any) -> int:
    config = OutlierConfig(cocktail=cocktail_config(args, _default_cocktail()), outlier_fraction=args.outlier_fraction,
                           epochs=args.epochs, seed=args.seed, device=args.device)
    summary = run_outlier(args.out, config, samples_dir=args.samples)
    return print_report(summary)
