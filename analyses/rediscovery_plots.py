"""The main job's figures (step 6 of :mod:`~cms_anomaly.analyses.rediscovery`): data against simulation before
and after the anomaly selection, the ASTFs, the ROC of the detector and its baseline, the score distribution."""

from __future__ import annotations

from pathlib import Path

from cms_anomaly.analyses.samples import BACKGROUNDS, PROCESSES, ROLE_LABELS


def make_plots(
    result: dict,
    report_dir: Path,
    *,
    lumi_pb: float,
    output: dict,
    model: str = "alad",
    score: str = "l1",
    data_label: str = "Pseudo-data",
    real_data: bool = False,
) -> list[Path]:
    """Knapp et al. Figs 5-9 as PNGs from the processor's histograms ("CMS Open Data" with ``real_data``)."""
    from cms_anomaly.analyses import plotting
    from cms_anomaly.analyses.scorehists import ScoreHists
    from cms_anomaly.processors.feature_spec import FEATURES

    lumi_text = f"{lumi_pb:.3g} pb$^{{-1}}$"
    opendata = "Open Data, " if real_data else ""
    pngs = []
    for name, h in result["_hists"].items():
        label = FEATURES[name].label
        for stage, text in (("all", "muon + jets"), ("selected", rf"ALAD L1 $\alpha$ = {result['alpha']:g}")):
            mc = {ROLE_LABELS[r]: h[f"{r}_{stage}"] for r in BACKGROUNDS}
            pngs.append(
                plotting.plot_data_mc(
                    h[f"data_{stage}"],
                    mc,
                    report_dir / f"{name}_{stage}.png",
                    xlabel=label,
                    signals={r"$t\bar{t}$ (not in the background)": h[f"ttbar_{stage}"]},
                    data_label=data_label,
                    text=f"{opendata}{text}, {lumi_text}",
                    lumi=None,
                    com=None,
                    is_data=real_data,
                )
            )
        pngs.append(
            plotting.plot_astf(
                result["_astf"][name],
                report_dir / f"astf_{name}.png",
                reference="background MC",
                xlabel=label,
                alpha=result["alpha"],
                text=f"{opendata}ASTF, {lumi_text}",
                lumi=None,
                com=None,
                is_data=real_data,
            )
        )
    auc = result["roc_auc_ttbar_vs_background"]
    curves = {rf"ALAD L1: $t\bar{{t}}$ vs W+Z (AUC {auc:.3f})": result["_roc"]}
    if "_baseline_roc" in result:
        b_auc = result["baseline_roc_auc_ttbar_vs_background"]
        curves[f"baseline: L1 distance from the median (AUC {b_auc:.3f})"] = result["_baseline_roc"]
    pngs.append(plotting.plot_roc(curves, report_dir / "roc_alad.png", text="labelled simulation"))
    # the score distributions from the processor's histograms, over the decades the samples fill
    # (L1 scores span decades: outliers reach 1e4-1e5 x the median), 10 bins per decade
    sh = ScoreHists(output, model, score)
    first, last = sh.occupied_range([r for r in ("data", *PROCESSES) if r in output])

    def score_hist(role: str):
        return sh.score_hist(role, first=first, last=last, rebin=5)

    pngs.append(
        plotting.plot_data_mc(
            score_hist("data"),
            {ROLE_LABELS[r]: score_hist(r) for r in BACKGROUNDS},
            report_dir / "score_alad.png",
            xlabel="ALAD L1 score",
            signals={r"$t\bar{t}$": score_hist("ttbar")},
            data_label=data_label,
            text=rf"{opendata}all selected events, {lumi_text}",
            lumi=None,
            com=None,
            is_data=real_data,
            logx=True,
        )
    )
    return pngs
