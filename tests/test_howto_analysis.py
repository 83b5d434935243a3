"""docs/howto/add-an-analysis.md, followed: a small analysis registered here runs through the command line."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import uproot
from cms_anomaly.analyses import analysis

from cms_anomaly import cli

MODULE = "howto_dimuon_analysis"


# --------------------------------------------------------------------------- step 1: the job
@dataclass(frozen=True)
class DimuonConfig:
    """The share of selected events with two or more muons, per dataset."""

    fileset: str
    out: Path
    selection: str = "inclusive"
    execution: analysis.Execution = field(default_factory=analysis.Execution)


def run_dimuon(config: DimuonConfig) -> Path:
    from cms_anomaly.processors.runner import load_fileset
    from cms_anomaly.stats import agresti_coull_interval

    output = analysis.processor_pass(
        load_fileset(config.fileset),
        out=config.out,
        selection=config.selection,
        lumi_pb=1.0,
        execution=config.execution,
        features=False,
    )
    rows, payload = ["| dataset | events | share with >= 2 muons |", "|---|---|---|"], {}
    for dataset, out in sorted(output.items()):
        h = out["hists"]["n_mu"][{"dataset": dataset, "systematic": "nominal"}]
        counts = h.values(flow=True)
        total, passed = counts.sum(), counts[3:].sum()  # bins: underflow, 0, 1, 2, ...
        share = agresti_coull_interval(passed, total)
        rows.append(f"| {dataset} | {total:.0f} | {analysis.fmt(float(share.estimate))} |")
        payload[dataset] = {"events": total, "passed": passed, "share": share.estimate, "low": share.low}
    report_dir = analysis.fresh_report_dir(config.out)
    return analysis.write_report(report_dir, markdown="\n".join(rows), payload=payload, title="dimuon share")


# --------------------------------------------------------------------------- step 2: the command
def register(subparsers):
    p = subparsers.add_parser("dimuon", help="share of events with two muons")
    p.add_argument("fileset", help="fileset JSON")
    p.add_argument("--out", type=Path, default=Path("out/dimuon"))
    p.add_argument("--executor", default="dask")
    p.set_defaults(func=_run)


def _run(args) -> int:
    config = DimuonConfig(args.fileset, args.out, execution=analysis.Execution(executor=args.executor))
    return analysis.print_report(run_dimuon(config))


# --------------------------------------------------------------------------- step 3: the registration
@pytest.fixture
def dimuon_command(monkeypatch):
    monkeypatch.setitem(sys.modules, MODULE, sys.modules[__name__])
    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", (*cli.SUBCOMMAND_MODULES, MODULE))


def _two_muons_by_hand(path: Path) -> tuple[int, int]:
    """Events and events with >= 2 muons of the analysis's muon definition, read with uproot (the fields of
    processors.config.ObjectConfig: pT > lepton_pt_min, the Muon_<muon_id>Id flag, pfRelIso03_all < lepton_iso_max)."""
    import awkward as ak
    from cms_anomaly.processors.config import ObjectConfig

    c = ObjectConfig()
    flag = f"Muon_{c.muon_id}Id"
    with uproot.open(path) as f:
        m = f["Events"].arrays(["Muon_pt", flag, "Muon_pfRelIso03_all"], library="ak")
    good = (m.Muon_pt > c.lepton_pt_min) & m[flag] & (m.Muon_pfRelIso03_all < c.lepton_iso_max)
    n = ak.to_numpy(ak.sum(good, axis=1))
    return len(n), int((n >= 2).sum())


def test_a_registered_analysis_runs_from_the_command_line(dimuon_command, real_nanoaod_files, tmp_path, capsys):
    dy = real_nanoaod_files["dy"]
    fileset = tmp_path / "fileset.json"
    fileset.write_text(json.dumps({"dy": {"files": [str(dy)], "metadata": {"is_data": True}}}))
    out = tmp_path / "dimuon"
    assert cli.main(["dimuon", str(fileset), "--out", str(out), "--executor", "iterative"]) == 0
    assert "| dy |" in capsys.readouterr().out
    summary = json.loads((out / "report" / "summary.json").read_text())["dy"]
    assert (out / "report" / "index.html").is_file()
    assert (out / "histograms.root").is_file()
    total, passed = _two_muons_by_hand(dy)
    assert summary["events"] == total
    assert summary["passed"] == passed
    assert 0 < passed < total
    assert np.isclose(summary["share"], passed / total)
    assert summary["low"] < summary["share"]
