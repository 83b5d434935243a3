"""The main job end to end on a tiny configuration: report structure and consistent numbers."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cms_anomaly.analyses.rediscovery import ASTF_FEATURES, RediscoveryConfig, run_rediscovery

TINY = RediscoveryConfig(events={"wjets": 1500, "zjets": 200, "ttbar": 150}, epochs=3, ae_epochs=3, alpha=0.05,
                         executor="iterative", workers=2, seed=3)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("rediscover")
    summary = run_rediscovery(out, TINY)
    return summary.parent, json.loads((summary.parent / "summary.json").read_text())


def test_report_files(report):
    report_dir, _ = report
    text = (report_dir / "summary.md").read_text()
    assert "purity ratio" in text and "eps_ttbar / eps_(W+Z)" in text and "Post-processing selection" in text and "alpha = 1e-3" in text
    html = (report_dir / "index.html").read_text()
    assert "<table>" in html and "<img" in html
    pngs = sorted(p.name for p in report_dir.glob("*.png"))
    for name in ASTF_FEATURES:
        assert {f"{name}_all.png", f"{name}_selected.png", f"astf_{name}.png"} <= set(pngs)
    assert {"roc_alad.png", "score_alad.png"} <= set(pngs)
    assert all((report_dir / p).stat().st_size > 10_000 for p in pngs)
    assert not list(report_dir.glob("*.tmp-*"))


def test_numbers_are_finite_and_consistent(report):
    _, payload = report
    r = payload["result"]
    composition = payload["data_composition"]
    assert set(composition) == {"wjets", "zjets", "ttbar"}
    assert composition["wjets"] > composition["zjets"] > 0
    cutflow = payload["cutflow"]["data"]["events"]
    assert list(cutflow.values())[-1] == r["n_data"] >= 20
    assert cutflow["all"] == sum(composition.values())
    assert 0 < r["n_data_selected"] <= math.ceil(r["alpha"] * r["n_data"])
    assert math.isfinite(r["threshold"]) and 0 <= r["roc_auc_ttbar_vs_background"] <= 1
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
    assert "ae_crosscheck" in r and 0 <= r["ae_crosscheck"]["roc_auc_ttbar_vs_background"] <= 1
    assert payload["lumi_pb"] > 0 and np.isfinite(list(payload["seconds"].values())).all()


def test_external_data_fileset(report, tmp_path):
    """--data-fileset: real data (here the pseudo-data files, without their labels) replace the mixture."""
    import shutil

    from dataclasses import replace

    first_dir, payload = report
    samples = first_dir.parent / "samples"
    data_files = sorted(str(p) for p in (samples / "pseudodata").glob("*.root"))
    assert data_files
    fileset = tmp_path / "data.json"
    fileset.write_text(json.dumps({"SingleMu": {"files": {f: "Events" for f in data_files},
                                                "metadata": {"is_data": True, "lumi_pb": payload["lumi_pb"]}}}))
    out = tmp_path / "real"
    shutil.copytree(samples / "simulation", out / "samples" / "simulation")  # reused, not regenerated
    summary = run_rediscovery(out, replace(TINY, data_fileset=str(fileset)))
    real = json.loads((summary.parent / "summary.json").read_text())
    assert real["data_fileset"] == str(fileset) and real["data_composition"] == {}
    assert real["result"]["purity_ratio"] == {} and "Not measured" in summary.read_text()
    assert not (out / "samples" / "data").exists()  # no pseudo-data production
    # the same events pass the same selection whether they come labelled or not
    assert real["result"]["n_data"] == payload["result"]["n_data"]
    assert real["lumi_pb"] == pytest.approx(payload["lumi_pb"])
    y = real["result"]["pps_without_anomaly_selection"]["yields"]
    assert y["data"]["entries"] == payload["result"]["pps_without_anomaly_selection"]["yields"]["data"]["entries"]


def test_data_fileset_errors(tmp_path):
    from cms_anomaly.analyses.rediscovery import RediscoveryError, load_data_fileset

    path = tmp_path / "mc.json"
    path.write_text(json.dumps({"ttbar": {"files": {"a.root": "Events"}, "metadata": {"is_data": False}}}))
    with pytest.raises(RediscoveryError, match="is_data"):
        load_data_fileset(path)
    path.write_text(json.dumps({"SingleMu": {"files": {"a.root": "Events"}, "metadata": {"is_data": True}}}))
    with pytest.raises(RediscoveryError, match="lumi_pb"):
        load_data_fileset(path)


def test_efficiency_ratio_is_lr_plus_of_labelled_simulation():
    """eps_ttbar / eps_(W+Z) by hand: 3 of 10 ttbar and 5 of 100 (weighted 2 and 1) background events pass."""
    from cms_anomaly.analyses.rediscovery import _efficiency_ratio

    ttbar = {"score": np.arange(10.0), "weight": np.ones(10)}
    w = {"score": np.r_[np.full(5, 9.0), np.zeros(45)], "weight": np.full(50, 2.0)}
    z = {"score": np.zeros(50), "weight": np.ones(50)}
    r = _efficiency_ratio(ttbar, [w, z], threshold=6.5)
    assert r["ttbar_passed"] == 3 and r["background_passed"] == 5
    assert r["eps_ttbar"] == pytest.approx(0.3)
    assert r["eps_background"] == pytest.approx(10.0 / 150.0)
    assert r["lr_plus"] == pytest.approx(0.3 / (10.0 / 150.0))
    assert r["eps_ttbar_low"] < 0.3 < r["eps_ttbar_high"]
    assert r["lr_plus_low"] < r["lr_plus"] < r["lr_plus_high"]
