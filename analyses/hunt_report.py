"""The hunt's report (step 7 of :mod:`~cms_anomaly.analyses.hunt`): the event list, the paragraph saying
what was found, the warnings, the plots and ``summary.md``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from cms_anomaly.analyses import analysis
from cms_anomaly.analyses.analysis import fmt
from cms_anomaly.analyses.headline import with_note
from cms_anomaly.analyses.hunt_selections import KFOLD_OUTPUT, KFOLD_SCORER, MASS_FEATURES
from cms_anomaly.analyses.plot_training import plot_model_training
from cms_anomaly.analyses.samples import ROLE_LABELS
from cms_anomaly.stats.headline import few_events, few_events_mark


def event_list(output: dict, analysed: dict, report_dir: Path) -> tuple[Any, dict[str, Path]]:
    """The data's highest-rarity events as CSV, parquet and an HTML table; the selection each passes."""
    import pandas as pd
    from cms_anomaly.core.atomic import atomic_output, write_text_atomic

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


def summary_paragraph(check: dict, analysed: dict, events: Any, config: Any) -> str:
    """What was found, in words, with the numbers (``config``: the :class:`~cms_anomaly.analyses.hunt.HuntConfig`)."""
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
    output: dict,
    check: dict,
    analysed: dict,
    report_dir: Path,
    *,
    lumi_pb: float,
    data_label: str,
    models: list[Path] | None = None,
) -> list[Path]:
    """The worst-described features before the selection, the rarity, the best mass window and feature after
    it, and the training curves of the fold ``models``.

    Collision data (no hidden labels in ``analysed``) are labelled "CMS Open Data", pseudo-data "CMS Simulation".
    """
    from cms_anomaly.analyses import plotting
    from cms_anomaly.analyses.scorehists import ScoreHists, drawable
    from cms_anomaly.processors.histograms import nominal

    roles = [d for d in output if d != "data"]
    real = not analysed["labelled"]
    lumi_text = f"{lumi_pb:.3g} pb$^{{-1}}$"
    prefix = "Open Data, " if real else ""
    label = {r: ROLE_LABELS.get(r, r) for r in roles}
    style = {"data_label": data_label, "lumi": None, "com": None, "is_data": real}
    pngs = []
    for row in check["features"][:2]:
        f = row["feature"]
        data = drawable(nominal(output["data"]["hists"][f])[{"dataset": "data"}])
        mc = {label[r]: drawable(nominal(output[r]["hists"][f])[{"dataset": r}]) for r in roles}
        pngs.append(
            plotting.plot_data_mc(
                data, mc, report_dir / f"check_{f}.png", **style, text=f"{prefix}no anomaly selection, {lumi_text}"
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
            text=f"{prefix}simulation x {norm:.3g}, {lumi_text}",
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
                text=rf"{prefix}$\alpha$ = {alpha:g}, {lumi_text}",
            )
        )
    return pngs + plot_model_training({p.stem: p for p in models or []}, report_dir)


def mark_few_events(analysed: dict) -> None:
    """Set ``few_events`` on every selection, scan window and ranking row of ``analysed`` (its selected
    data events, unit weights: raw counts, :func:`~cms_anomaly.stats.headline.few_events`)."""
    for s in analysed["selections"]:
        s["few_events"] = few_events(s.get("observed"))
    for r in [*analysed["scan"]["per_variable"], *analysed["ranking"]]:
        r["few_events"] = few_events(r["observed"])


def _dropped_lines(title: str, dropped: dict[str, str] | None) -> list[str]:
    """A report paragraph naming each left-out feature with its reason (none when nothing was left out)."""
    if not dropped:
        return []
    return ["", f"{title}: " + "; ".join(f"`{k}` ({v})" for k, v in dropped.items()) + "."]


def format_report(paragraph: str, check: dict, analysed: dict, meta: dict, pngs: list[Path], classifier: dict) -> str:
    """``summary.md``: the warnings, the paragraph, the background-model check, the classifier, the
    selections, the mass scan, the feature ranking and the plots."""
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
    lines += _check_rows(check)
    lines += _classifier_lines(classifier)
    lines += _selection_lines(analysed)
    lines += _scan_lines(analysed)
    lines += _ranking_lines(analysed)
    lines += _skipped_lines(meta)
    lines += ["", *analysis.report_footer(pngs, meta["seconds"])]
    return "\n".join(lines) + "\n"


def _check_rows(check: dict) -> list[str]:
    """The background-model check's table rows, one per feature."""
    lines: list[str] = []
    for r in check["features"]:
        lines.append(
            f"| {r['feature']} | {r['n_data']:.0f} | {r['n_simulation']:.4g} | {r['norm_ratio']:.3g} +- "
            f"{r['norm_ratio_error']:.2g} | {fmt(r['chi2'])} / {r['ndf']} | {r['p_value']:.2g} | "
            f"{fmt(r['shape_chi2'])} / {r['shape_ndf']} | {r['shape_p_value']:.2g} |"
        )
    return lines


def _classifier_lines(classifier: dict) -> list[str]:
    """The data-vs-simulation classifier's section."""
    c = classifier
    negative = f"; {c['negative_weights']} negative weights taken as |w|" if c["negative_weights"] else ""
    return [
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
    ]


def _selection_lines(analysed: dict) -> list[str]:
    """The anomaly selections' section, one table row per alpha."""
    lines = [
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
    rows = []
    for s in analysed["selections"]:
        comp = ", ".join(f"{p} {f:.0%}" for p, f in sorted(s.get("composition", {}).items(), key=lambda x: -x[1]))
        if not s["calibratable"]:  # nothing to show but why
            rows.append(f"| {s['alpha']:g} | - | - | - | - | not quoted: {s['not_quoted']} | |")
            continue
        acc = s["acceptance"]
        z = f"{s['z_local']:.2f}" if s["quoted"] else f"not quoted: {s['not_quoted']}"
        rows.append(
            f"| {s['alpha']:g}{few_events_mark(s['observed'])} | {s['threshold']:.3g} | {s['observed']:.0f} | {s['expected']:.3g} +- "
            f"{s['expected_error']:.2g} | {acc['acceptance']:.3g} ({acc['low']:.2g}-{acc['high']:.2g}) | {z} | {comp} |"
        )
    return [*lines, *with_note(rows)]


def _scan_lines(analysed: dict) -> list[str]:
    """The mass scan's section: its twelve most significant windows."""
    sc = analysed["scan"]
    lines = [
        "",
        f"## Mass scan (global: {sc['tests']} tests over alpha = {', '.join(f'{a:g}' for a in sc['alphas'])}, "
        f"{sc['npe']} pseudo-experiments)"
        if sc["best"] is not None
        else "## Mass scan: not run (no selection quoted)",
        "",
        "| mass | alpha | window [GeV] | observed | expected | local Z |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    rows = []
    for r in sc["per_variable"][:12]:
        rows.append(
            f"| {r['variable']}{few_events_mark(r['observed'])} | {r['alpha']:g} | {r['window_gev'][0]:.0f}-{r['window_gev'][1]:.0f} | "
            f"{r['observed']:.0f} | {r['expected']:.3g} | {r['z_local']:.2f} |"
        )
    return [*lines, *with_note(rows)]


def _ranking_lines(analysed: dict) -> list[str]:
    """The feature ranking's section at the leading alpha."""
    lines = [
        "",
        f"## What differs after the selection (alpha = {analysed['leading_alpha']:g})",
        "",
        "Selected data against the data before the selection times the simulation's ASTF; ranked by p-value.",
        "",
        "| feature | selected data | expected | chi2 / ndf | p | largest pull (range: observed vs expected) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    rows = []
    for r in analysed["ranking"]:
        rows.append(
            f"| {r['feature']}{few_events_mark(r['observed'])} | {r['observed']:.0f} | {r['expected']:.3g} | {fmt(r['chi2'])} / {r['ndf']} | "
            f"{r['p_value']:.2g} | {r['largest_pull_range'][0]:.4g}-{r['largest_pull_range'][1]:.4g}: "
            f"{r['largest_pull_observed']:.0f} vs {r['largest_pull_expected']:.2g} |"
        )
    return [*lines, *with_note(rows)]


def _skipped_lines(meta: dict) -> list[str]:
    """The input files left out (``--skip-bad-files``), if any."""
    if not meta.get("skipped_files"):
        return []
    return [
        "",
        "## Input files left out (unreadable; --skip-bad-files)",
        "",
        *(f"- {d}: {f}" for d, files in meta["skipped_files"].items() for f in files),
        "",
        "A data file left out still counts in the fileset's lumi_pb: the normalisation check is off by its share.",
    ]
