"""The main job end to end on a tiny configuration: report structure, consistent numbers, and the top quark found."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from cms_anomaly.analyses.analysis import Execution
from cms_anomaly.analyses.rediscovery import ASTF_FEATURES, RediscoveryConfig, run_rediscovery

#: the command line below: 4 % of the default productions, 3 epochs, alpha = 0.05
TINY = RediscoveryConfig(
    epochs=3, ae_epochs=3, alpha=0.05, execution=Execution(executor="iterative", workers=2), seed=3
).scaled(0.04)
TINY_ARGS = ["--events", "0.04", "--epochs", "3", "--alpha", "0.05", "--executor", "iterative", "--seed", "3"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """``cms-anomaly rediscover-top`` through the command line (the user's entry point)."""
    from cms_anomaly.cli import main

    out = tmp_path_factory.mktemp("rediscover")
    assert main(["rediscover-top", "--out", str(out), *TINY_ARGS]) == 0
    summary = out / "report" / "summary.md"
    return summary.parent, json.loads((summary.parent / "summary.json").read_text())


def test_report_files(report):
    report_dir, _ = report
    text = (report_dir / "summary.md").read_text()
    assert "purity ratio" in text
    assert "eps_ttbar / eps_(W+Z)" in text
    assert "Post-processing selection" in text
    assert "alpha = 1e-3" in text
    assert "trivial baseline" in text
    # the report names ALAD's objective from its model card (the default adds ALICE's cycle term)
    assert "ALAD (L1 score; ALAD + explicit cycle loss 1 * |x - G(E(x))| (ALICE, Li et al. 2017))" in text
    assert ("The detector does not beat the trivial baseline (AUC" in text) != (
        "The detector beats the trivial" in text
    )
    html = (report_dir / "index.html").read_text()
    assert "<table>" in html
    assert "<img" in html
    pngs = sorted(p.name for p in report_dir.glob("*.png"))
    for name in ASTF_FEATURES:
        assert {f"{name}_all.png", f"{name}_selected.png", f"astf_{name}.png"} <= set(pngs)
    assert {"roc_alad.png", "score_alad.png"} <= set(pngs)
    assert {"training_alad.png", "training_ae.png"} <= set(pngs)
    assert all((report_dir / p).stat().st_size > 10_000 for p in pngs)
    assert not list(report_dir.glob("*.tmp-*"))


def test_paper_alpha_block_and_sentence(report):
    report_dir, summary = report
    block = summary["result"]["paper_alpha"]
    assert block["alpha"] == 1e-3
    assert block["enough"] == (block["selected"] >= 10)
    assert block["events_needed"] >= block["events_scale"] == pytest.approx(0.04)
    text = (report_dir / "summary.md").read_text()
    assert f"At the paper's alpha = 0.001 this run selects {block['selected']} of its" in text
    if not block["enough"]:
        assert f"`--events {block['events_needed']:g}`" in text
        assert "extrapolation" in text


def test_numbers_are_finite_and_consistent(report):
    _, payload = report
    r = payload["result"]
    composition = payload["data_composition"]
    assert set(composition) == {"wjets", "zjets", "ttbar"}
    assert composition["wjets"] > composition["zjets"] > 0
    cutflow = payload["cutflow"]["data"]["events"]
    assert list(cutflow.values())[-1] == r["n_data"] >= 20
    assert cutflow["all"] == sum(composition.values())
    assert 0 < r["n_data_selected"] <= r["alpha"] * r["n_data"]  # the bin edge keeps at most alpha
    assert math.isfinite(r["threshold"])
    # the physics: ALAD trained 3 epochs on ~1950 events still finds the top quark (measured AUC 0.67, LR+
    # 3.4 at alpha = 0.1, on 74 selected data events); a score at random gives 0.5 and 1
    assert r["roc_auc_ttbar_vs_background"] > 0.6
    assert r["efficiency_ratio"]["0.1"]["lr_plus"] > 1.5
    for alpha, e in r["purity_ratio"].items():
        assert e["selected"] <= max(1, math.ceil(float(alpha) * r["n_data"]))
        assert 0 <= e["ttbar_selected"] <= e["selected"]
        assert 0 < e["fraction_all"] < 1
        if e["selected"]:
            assert e["fraction_selected"] == pytest.approx(e["ttbar_selected"] / e["selected"])
            assert e["purity_ratio_low"] <= e["purity_ratio"] <= e["purity_ratio_high"]
    assert set(r["efficiency_ratio"]) == set(r["purity_ratio"])
    for e in r["efficiency_ratio"].values():
        assert e["lr_plus"] == pytest.approx(e["eps_ttbar"] / e["eps_background"])
        assert e["lr_plus_low"] <= e["lr_plus"] <= e["lr_plus_high"]
    for block in ("pps_after_anomaly_selection", "pps_without_anomaly_selection"):
        y = r[block]["yields"]
        assert y["background"]["sumw"] == pytest.approx(y["wjets"]["sumw"] + y["zjets"]["sumw"])
        assert y["background + ttbar"]["sumw"] == pytest.approx(y["background"]["sumw"] + y["ttbar"]["sumw"])
        assert y["data"]["sumw"] == y["data"]["entries"]  # data are unweighted
    after, before = r["pps_after_anomaly_selection"]["yields"], r["pps_without_anomaly_selection"]["yields"]
    for role in ("data", "wjets", "zjets", "ttbar"):
        assert after[role]["entries"] <= before[role]["entries"]
    assert r["anomaly_selected_yields"]["data"]["entries"] == r["n_data_selected"]
    assert "ae_crosscheck" in r
    assert 0 <= r["ae_crosscheck"]["roc_auc_ttbar_vs_background"] <= 1
    # the trivial baseline beside ALAD: on 3 epochs ALAD need not beat it, but the baseline finds the top too
    assert 0.55 < r["baseline_roc_auc_ttbar_vs_background"] <= 1
    assert r["baseline"]["beats_baseline"] == (
        r["roc_auc_ttbar_vs_background"] > r["baseline_roc_auc_ttbar_vs_background"] + 0.02
    )
    assert set(r["baseline"]["efficiency_ratio"]) == set(r["efficiency_ratio"])
    assert payload["models"]["baseline"].endswith("baseline_hlf24.pt")
    assert payload["lumi_pb"] > 0
    assert np.isfinite(list(payload["seconds"].values())).all()


def test_external_data_fileset(report, tmp_path):
    """--data-fileset: real data (here the pseudo-data files, without their labels) replace the mixture."""
    import shutil
    from dataclasses import replace

    first_dir, payload = report
    samples = first_dir.parent / "samples"
    data_files = sorted(str(p) for p in (samples / "pseudodata_s3").glob("*.root"))
    assert data_files
    fileset = tmp_path / "data.json"
    fileset.write_text(
        json.dumps(
            {
                "SingleMu": {
                    "files": dict.fromkeys(data_files, "Events"),
                    "metadata": {"is_data": True, "lumi_pb": payload["lumi_pb"]},
                }
            }
        )
    )
    out = tmp_path / "real"
    shutil.copytree(samples / "simulation", out / "samples" / "simulation")  # reused, not regenerated
    summary = run_rediscovery(out, replace(TINY, data_fileset=str(fileset)))
    real = json.loads((summary.parent / "summary.json").read_text())
    assert real["data_fileset"] == str(fileset)
    assert real["data_composition"] == {}
    assert real["result"]["purity_ratio"] == {}
    assert "Not measured" in summary.read_text()
    assert not (out / "samples" / "data").exists()  # no pseudo-data production
    # the same events pass the same selection whether they come labelled or not
    assert real["result"]["n_data"] == payload["result"]["n_data"]
    assert real["lumi_pb"] == pytest.approx(payload["lumi_pb"])
    y = real["result"]["pps_without_anomaly_selection"]["yields"]
    assert y["data"]["entries"] == payload["result"]["pps_without_anomaly_selection"]["yields"]["data"]["entries"]


def test_data_fileset_errors(tmp_path):
    from cms_anomaly.analyses.samples import SamplesError, load_data_fileset

    path = tmp_path / "mc.json"
    path.write_text(json.dumps({"ttbar": {"files": {"a.root": "Events"}, "metadata": {"is_data": False}}}))
    with pytest.raises(SamplesError, match="is_data"):
        load_data_fileset(path)
    path.write_text(json.dumps({"SingleMu": {"files": {"a.root": "Events"}, "metadata": {"is_data": True}}}))
    with pytest.raises(SamplesError, match="lumi_pb"):
        load_data_fileset(path)


def test_efficiency_ratio_is_lr_plus_of_labelled_simulation():
    """eps_ttbar / eps_(W+Z) by hand: 3 of 10 ttbar and 5 of 100 (weighted 2 and 1) background events pass."""
    from cms_anomaly.analyses.rediscovery import _efficiency_ratio

    # per score bin (sum w, sum w^2): ttbar one unit-weight event in each of bins 0..9; background
    # 45 W events (w = 2) and 50 Z events (w = 1) in bin 0, 5 W events in bin 9; selection: bins >= 7
    ttbar = (np.ones(10), np.ones(10))
    bkg_w = np.zeros(10)
    bkg_w[0], bkg_w[9] = 45 * 2.0 + 50, 5 * 2.0
    bkg_w2 = np.zeros(10)
    bkg_w2[0], bkg_w2[9] = 45 * 4.0 + 50, 5 * 4.0
    r = _efficiency_ratio(ttbar, (bkg_w, bkg_w2), first_bin=7)
    assert r["ttbar_passed"] == 3
    assert r["background_passed"] == 5
    assert r["eps_ttbar"] == pytest.approx(0.3)
    assert r["eps_background"] == pytest.approx(10.0 / 150.0)
    assert r["lr_plus"] == pytest.approx(0.3 / (10.0 / 150.0))
    assert r["eps_ttbar_low"] < 0.3 < r["eps_ttbar_high"]
    assert r["lr_plus_low"] < r["lr_plus"] < r["lr_plus_high"]


def test_report_numbers_equal_the_saved_histograms(report):
    """Every report number is read off pass2/histograms.coffea: recompute a few with plain numpy and
    sklearn from the saved file (the threshold from the data's score counts, the selected and PPS
    yields, the ttbar purity from the process axis, the AUC of labelled simulation)."""
    from coffea.util import load

    _report_dir, payload = report
    r = payload["result"]
    saved = load(r["histograms"]["file"])
    name = f"score_alad_{r['histograms']['score']}_vs_counts"

    def view(ds):  # (process, score, n_jets, n_bjets) sum w with flow bins, all splits
        h = saved[ds]["hists"][name]
        assert list(h.axes["split"]) == ["all"]  # no training / validation split in this job
        return h.view(flow=True)["value"][h.axes["dataset"].index(ds)].sum(axis=0), list(h.axes["process"]), h

    data, processes, h = view("data")
    per_score = data.sum(axis=(0, 2, 3))
    n = per_score.sum()
    tail = np.cumsum(per_score[::-1])[::-1]
    k = int(np.argmax(tail <= r["alpha"] * n))  # first bin whose tail holds at most alpha
    assert r["n_data"] == round(n)
    assert r["n_data_selected"] == round(tail[k]) > 0
    assert r["threshold"] == pytest.approx(np.concatenate([[0.0], h.axes["score"].edges])[k])
    nj = 6 - int(h.axes["n_jets"].edges[0]) + 1
    nb = 2 - int(h.axes["n_bjets"].edges[0]) + 1
    assert r["pps_after_anomaly_selection"]["vs_background"]["observed"] == pytest.approx(data[:, k:, nj:, nb:].sum())
    assert r["pps_without_anomaly_selection"]["vs_background"]["observed"] == pytest.approx(data[:, :, nj:, nb:].sum())
    a = f"{r['alpha']:g}"
    ttbar = data[processes.index("ttbar")].sum(axis=(1, 2))
    assert r["purity_ratio"][a]["ttbar_selected"] == round(ttbar[k:].sum())
    assert r["purity_ratio"][a]["fraction_all"] == pytest.approx(ttbar.sum() / n)
    # AUC of ttbar vs W+Z simulation = P(s_ttbar > s_bkg) + P(tie) / 2, events of one score bin tied
    sig = view("ttbar")[0].sum(axis=(0, 2, 3))
    bkg = view("wjets")[0].sum(axis=(0, 2, 3)) + view("zjets")[0].sum(axis=(0, 2, 3))
    below = np.concatenate([[0.0], np.cumsum(bkg)[:-1]])
    auc = float(np.sum(sig * (below + 0.5 * bkg)) / (sig.sum() * bkg.sum()))
    assert r["roc_auc_ttbar_vs_background"] == pytest.approx(auc, abs=1e-9)
    # the baseline's AUC from its own histograms, filled by the same processor pass
    name = f"score_baseline_{r['histograms']['baseline_score']}_vs_counts"
    sig = view("ttbar")[0].sum(axis=(0, 2, 3))
    bkg = view("wjets")[0].sum(axis=(0, 2, 3)) + view("zjets")[0].sum(axis=(0, 2, 3))
    below = np.concatenate([[0.0], np.cumsum(bkg)[:-1]])
    auc = float(np.sum(sig * (below + 0.5 * bkg)) / (sig.sum() * bkg.sum()))
    assert r["baseline_roc_auc_ttbar_vs_background"] == pytest.approx(auc, abs=1e-9)
