"""The class hunt's report: class table, global p-value, p-tilde figure, region events, ``summary.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from cms_anomaly.analyses import analysis
from cms_anomaly.analyses.hunt_selections import KFOLD_OUTPUT, KFOLD_SCORER
from cms_anomaly.processors.eventclass import EVENTS_PER_CLASS

#: the figure's name in ``OUT/report``
P_TILDE_PNG = "p_tilde_classes.png"
#: labels of the distributions
DIST_LABELS = {"st": "$S_T$", "mass": "$M$ ($M_T$ with MET)", "met": "MET", "rarity": "rarity"}


def plot_p_tilde(scan: Any, path: Path, *, lumi_pb: float, data_label: str) -> Path:
    """One panel per distribution: -log10 p-tilde of the classes, sorted, against the pseudo-experiments'
    median and 68 % / 95 % bands at each rank (:attr:`~cms_anomaly.stats.classes.ClassScanResult.expected`)."""
    from cms_anomaly.analyses.plot_style import cms_label, cms_style, save_png
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    floor = 1.0 / (scan.n_pe + 1)
    with cms_style():
        fig = Figure(figsize=(8.0 * len(scan.expected), 7.5))
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(scan.expected), sharey=True, squeeze=False)[0]
        for ax, (d, exp) in zip(axes, scan.expected.items(), strict=True):
            rank = np.arange(1, len(exp.classes) + 1)
            q = -np.log10(np.maximum(exp.quantiles, floor))
            ax.fill_between(rank, q[0], q[4], step="mid", color="gold", label="expected 95 %")
            ax.fill_between(rank, q[1], q[3], step="mid", color="limegreen", label="expected 68 %")
            ax.step(rank, q[2], where="mid", color="black", ls="--", lw=1.2, label="expected median")
            obs = -np.log10(np.maximum(exp.observed_sorted, floor))
            ax.plot(rank, obs, "o", color="black", ms=5, label=data_label)
            ax.axhline(-np.log10(floor), color="grey", lw=0.8, ls=":", label="resolution 1/(N+1)")
            ax.set_xscale("log")
            ax.set_xlabel(f"classes ranked by $\\tilde{{p}}$ in {DIST_LABELS.get(d, d)}", fontsize=18)
            ax.set_ylim(0.0, -np.log10(floor) * 1.35)
            ax.legend(loc="upper right", fontsize=13)
            cms_label(
                ax, data=data_label == "Data", text=None if data_label == "Data" else "Simulation", lumi=None, com=None
            )
        axes[0].set_ylabel("$-\\log_{10}\\tilde{p}$")
        fig.suptitle(
            f"{lumi_pb:.3g} pb$^{{-1}}$, global p = {scan.p_global:.3g} ({scan.n_pe} pseudo-experiments)",
            y=0.02,
            fontsize=16,
        )
        return save_png(fig, path)


def _fmt_window(row: dict) -> str:
    w = row["window_gev"]
    if w is not None and row["distribution"] == "rarity":
        return _fmt_rarity(w)
    return "-" if w is None else f"{row['distribution']} {w[0]:.0f}-{w[1]:.0f}"


def _fmt_rarity(window: list[float]) -> str:
    """A rarity region (an upper tail, :data:`~cms_anomaly.analyses.hunt_classes.UPPER_TAILS`): its threshold
    on -log10 p, p the fraction of the data the detector scores as high."""
    return f"rarity > {window[0]:.2f}"


def table_lines(rows: list[dict], *, limit: int = 40) -> list[str]:
    """The class table (markdown), sorted by p-tilde; ``limit`` rows, the count of the rest."""
    lines = [
        "| class | observed | expected | p (region) | p-tilde | region (GeV; rarity: -log10 p) | region obs / exp | NPLM p |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in rows[:limit]:
        few = " *" if r["expected"] < 10 and r["observed"] < 10 else ""
        nplm = "" if r.get("nplm_p") is None else f"{r['nplm_p']:.3g}"
        lines.append(
            f"| {r['class']}{few} | {r['observed']:.0f} | {r['expected']:.3g} +- {r['expected_error']:.2g} | "
            f"{r['p']:.3g} | {r['p_tilde']:.3g} | {_fmt_window(r)} | "
            f"{r['region_observed']:.0f} / {r['region_expected']:.3g}{_unsimulated(r)} | {nplm} |"
        )
    if len(rows) > limit:
        lines.append(f"\n{len(rows) - limit} more classes in summary.json.")
    lines.append("\n`*`: fewer than 10 observed and expected events in the class.")
    lines.append(
        "(u: the part of the region's expectation from background processes without a simulated event in it, one "
        "event of each one's weight.)"
    )
    return lines


def _unsimulated(row: dict) -> str:
    u = row.get("region_unsimulated", 0.0)
    return f" (u {u:.2g})" if u > 0 else ""


def nplm_line(nplm: dict[str, Any]) -> str:
    """The NPLM global p-value line (:func:`~cms_anomaly.analyses.hunt_classes.nplm_classes`)."""
    if not nplm.get("n_toys"):
        return "NPLM: not run (`nplm_toys` 0)."
    if not nplm["tested"]:
        return f"NPLM: no exclusive class with >= {nplm['min_events']:g} observed and expected events."
    best = min(nplm["classes"], key=lambda c: nplm["classes"][c]["p"])
    return (
        f"**NPLM global p = {nplm['p_global']:.4g}** (smallest p {nplm['p_min']:.4g}, {best}, of "
        f"{nplm['tested']} exclusive classes with >= {nplm['min_events']:g} observed and expected events, "
        f"Sidak 1 - (1 - p_min)^k; {nplm['n_toys']} pseudo-datasets per class)"
    )


#: the event-list column of each scanned distribution
_EVENT_COLUMN = {"st": "st", "mass": "mass", "met": "met", "rarity": f"{KFOLD_SCORER}_{KFOLD_OUTPUT}"}


def region_events(output: dict, rows: list[dict], top: int) -> list[dict[str, Any]]:
    """The events in the most significant region of each of the ``top`` classes: of the data's class
    event list (the class's highest-S_T events, :func:`~cms_anomaly.processors.eventclass.class_event_lists`),
    those whose value of the region's distribution is inside its window, highest S_T first; with their
    hidden process where the pseudo-data carry labels (``process`` ``data`` for collision data)."""
    lists = output.get("data", {}).get("class_events", {})
    out = []
    for r in rows[:top]:
        listed = lists.get(r["class"])
        cols = listed.columns if listed is not None else {}
        inside = np.zeros(len(cols.get("st", ())), dtype=bool)
        if r["window_gev"] is not None and _EVENT_COLUMN.get(r["distribution"], "") in cols:
            x = np.asarray(cols[_EVENT_COLUMN[r["distribution"]]])
            inside = (x >= r["window_gev"][0]) & (x < r["window_gev"][1])
        events = [
            {
                "run": int(cols["run"][i]),
                "luminosityBlock": int(cols["luminosityBlock"][i]),
                "event": int(cols["event"][i]),
                "st": float(cols["st"][i]),
                "mass": float(cols["mass"][i]),
                "met": float(cols["met"][i]),
                "process": str(cols["process"][i]),
                **({"rarity": float(cols[_EVENT_COLUMN["rarity"]][i])} if _EVENT_COLUMN["rarity"] in cols else {}),
            }
            for i in np.flatnonzero(inside)
        ]
        out.append(
            {
                "class": r["class"],
                "region": _fmt_window(r),
                "observed_in_region": r["region_observed"],
                "expected_in_region": r["region_expected"],
                "listed_of_class": len(inside),
                "events": events,
            }
        )
    return out


def event_lines(regions: list[dict[str, Any]], *, labelled: bool) -> list[str]:
    """The markdown table of the region events of each listed class (hidden process with ``labelled``)."""
    head = "| class | region (GeV) | run | lumi | event | S_T | M / M_T | MET |" + (" process |" if labelled else "")
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|" + ("---|" if labelled else "")]
    for e in regions:
        for v in e["events"]:
            lines.append(
                f"| {e['class']} | {e['region']} | {v['run']} | {v['luminosityBlock']} | {v['event']} | "
                f"{v['st']:.0f} | {v['mass']:.0f} | {v['met']:.0f} |" + (f" {v['process']} |" if labelled else "")
            )
    return lines


def summary_paragraph(scan: Any, rows: list[dict], meta: dict) -> str:
    best = rows[0]
    rarity = meta.get("detector") or {}
    scanned = (
        f"S_T, M (M_T with MET), MET and the rarity of a {rarity['k_folds']}-fold {rarity['model']} detector"
        + (f" per exclusive class ({len(rarity['models'])} classes)" if rarity.get("detector_per") == "class" else "")
        if rarity
        else "S_T, M (M_T with MET) and MET"
    )
    return (
        f"{len(rows)} event classes scanned in {scanned} against the SM cocktail "
        f"({', '.join(c['card'] for c in meta['cocktail'])}) at {meta['lumi_pb']:.4g} pb^-1. "
        f"The most significant class is {best['class']} ({_fmt_window(best)}"
        f"{'' if best['distribution'] == 'rarity' else ' GeV'}: {best['region_observed']:.0f} "
        f"observed, {best['region_expected']:.3g} expected; p = {best['p']:.3g}, p-tilde = {best['p_tilde']:.3g}). "
        f"Global p-value of the whole procedure ({scan.n_pe} pseudo-experiments): {scan.p_global:.3g} "
        f"(Z = {scan.z_global:.2f})."
    )


def write(
    out: Path,
    output: dict,
    inputs: dict,
    scan: Any,
    rows: list[dict],
    meta: dict,
    config: Any,
    *,
    nplm: dict[str, Any],
) -> Path:
    """``OUT/report``: summary.md, index.html, summary.json and the p-tilde figure; returns summary.md."""
    report_dir = analysis.fresh_report_dir(out)
    data_label = "Data" if config.data_fileset else "Pseudo-data"
    png = plot_p_tilde(scan, report_dir / P_TILDE_PNG, lumi_pb=meta["lumi_pb"], data_label=data_label)
    paragraph = summary_paragraph(scan, rows, meta)
    regions = region_events(output, rows, config.top_classes)
    labelled = not config.data_fileset
    md = [
        "# Anomaly hunt over every final state",
        "",
        paragraph,
        "",
        f"**global p = {scan.p_global:.4g}** (Z = {scan.z_global:.2f}; smallest p-tilde {scan.p_tilde_min:.4g}; "
        f"{scan.n_pe} pseudo-experiments of every class)",
        "",
        nplm_line(nplm),
        "",
        "## Classes by p-tilde",
        "",
        *table_lines(rows),
        "",
        "## Events of the most significant regions",
        "",
        f"Per class, its {EVENTS_PER_CLASS} data events of highest S_T (the processor's class event list) that lie "
        "in the class's most significant region"
        + (" (process: the pseudo-data's hidden label, validation only)." if labelled else "."),
        "",
        *event_lines(regions, labelled=labelled),
        "",
        f"![p-tilde over classes]({png.name})",
        "",
    ]
    payload = {
        **meta,
        "summary": paragraph,
        "result": {
            "p_global": scan.p_global,
            "z_global": scan.z_global,
            "p_tilde_min": scan.p_tilde_min,
            "n_pe": scan.n_pe,
            "classes": rows,
            "region_events": regions,
            "class_totals": inputs["totals"],
            "nplm": nplm,
            "expected_p_tilde": {
                d: {"classes": e.classes, "observed_sorted": e.observed_sorted, "quantiles": e.quantiles}
                for d, e in scan.expected.items()
            },
        },
        "figures": [png.name],
    }
    return analysis.write_report(report_dir, markdown="\n".join(md), payload=payload, title="Anomaly hunt: classes")
