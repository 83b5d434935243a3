"""The 2012 RNTuple sample: read through uproot's RNTuple support and coffea's Runner; without event IDs
an event is identified by (file, entry), said once per file (issue 29)."""

from __future__ import annotations

import logging

import awkward as ak
import numpy as np
import pytest
import uproot
from cms_anomaly.processors import runner
from cms_anomaly.processors.processor import event_ids
from coffea import processor
from conftest import SAMPLES

RNTUPLE = SAMPLES / "Run2012BC_DoubleMuParked_Muons_1000evts_rntuple_v1-0-0-0.root"


class _MuonProbe(processor.ProcessorABC):
    """Reads what a chunk of the RNTuple has (muons) and the identity the analysis gives its events."""

    def process(self, events):
        meta = events.metadata
        ids = event_ids(events, np.ones(len(events), bool), entrystart=int(meta["entrystart"]))
        return {
            "n": len(events),
            "muon_pt_sum": float(ak.sum(events.Muon.pt)),
            "event": ids["event"].tolist(),
            "run": ids["run"].tolist(),
        }

    def postprocess(self, accumulator):
        return accumulator


def test_the_sample_is_an_rntuple_without_event_ids():
    with uproot.open(RNTUPLE) as f:
        assert f.classnames() == {"Events;1": "ROOT::RNTuple"}
        fields = set(f["Events"].keys())
    assert {"nMuon", "Muon_pt"} <= fields
    assert not fields & {"run", "luminosityBlock", "event"}


def test_the_file_check_reads_it_and_says_once_per_file_that_events_are_file_and_entry(caplog):
    """The check before a run opens the RNTuple (1000 entries) and logs one line per file and dataset,
    however many chunks follow; the analysis then refuses the file in one line: a muon-only derivation
    has no jets, MET or isolation (no NanoAOD variant)."""
    entries: dict = {}
    without: dict = {}
    problem = runner._file_problem(uproot, str(RNTUPLE), "Events", timeout=5, entries=entries, without_ids=without)
    assert entries == {str(RNTUPLE): 1000}
    assert without == {str(RNTUPLE): ["run", "luminosityBlock", "event"]}
    assert problem.startswith("no NanoAOD variant matches (the file has the collections ['Muon']")
    with caplog.at_level(logging.WARNING, logger="cms_anomaly"):
        good, skipped = runner.check_files({"mu": {"files": [str(RNTUPLE)], "metadata": {}}}, skip_bad_files=True)
    assert not good
    lines = [r.getMessage() for r in caplog.records if "identified by (file, entry)" in r.getMessage()]
    assert lines == []  # a file the analysis cannot use is skipped, not announced
    assert "no NanoAOD variant matches" in skipped["mu"][0]


def test_the_cli_refuses_it_in_one_line(tmp_path, capsys):
    import json

    from cms_anomaly.cli import main

    fs = tmp_path / "fs.json"
    fs.write_text(json.dumps({"mu2012": {"files": [str(RNTUPLE)], "metadata": {"is_data": True, "lumi_pb": 1.0}}}))
    assert main(["run", str(fs), "--out", str(tmp_path / "o"), "--executor", "iterative"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"{RNTUPLE} (dataset 'mu2012'): no NanoAOD variant matches (the file has the collections ['Muon'])" in err[0]


@pytest.mark.parametrize("chunksize", [1000, 300])
def test_coffea_runner_reads_the_rntuple_with_file_entry_identity(chunksize):
    """coffea's Runner with the analysis schema builds NanoEvents from the RNTuple (it raised 'There are
    missing event ID fields'); the muon pT sum equals uproot's own read of the file, and the events are
    numbered by their entry, 0..999, across chunks."""
    from cms_anomaly.processors.schema import AnalysisNanoAODSchema

    with uproot.open(RNTUPLE) as f:
        expected = float(ak.sum(f["Events"].arrays(["Muon_pt"])["Muon_pt"]))
    run = processor.Runner(
        executor=processor.IterativeExecutor(),
        schema=AnalysisNanoAODSchema,
        chunksize=chunksize,
        metadata_cache={},
    )
    out = run({"mu": {"files": {str(RNTUPLE): "Events"}}}, processor_instance=_MuonProbe(), treename="Events")
    assert out["n"] == 1000
    assert out["muon_pt_sum"] == pytest.approx(expected, rel=1e-6)
    assert sorted(out["event"]) == list(range(1000))
    assert set(out["run"]) == {0}


def test_a_file_without_event_ids_is_said_once_and_numbered_by_entry(tmp_path, real_nanoaod_files, caplog):
    """A reduced copy of nano_dy.root that this test writes without run/luminosityBlock/event, run in 3
    chunks: one log line for the file, and its feature tables number the events 0..39 by entry."""
    import pyarrow.parquet as pq
    from cms_anomaly.processors.processor import AnomalyProcessor
    from nanoaod_events import rewrite_nanoaod

    reduced = tmp_path / "reduced.root"
    rewrite_nanoaod(real_nanoaod_files["dy"], reduced, drop=("run", "luminosityBlock", "event"))
    with uproot.open(reduced) as f:
        assert not set(f["Events"].keys()) & {"run", "luminosityBlock", "event"}
    proc = AnomalyProcessor(selection="inclusive", features_dir=tmp_path / "features")
    with caplog.at_level(logging.WARNING, logger="cms_anomaly"), runner.make_executor("iterative") as ex:
        out = runner.run_processor(
            {"dy": {"files": {str(reduced): "Events"}, "metadata": {}}}, proc, executor=ex, chunksize=15
        )
    assert out["dy"]["nevents"] == 40
    assert len(out["dy"]["feature_files"]) == 3
    lines = [r.getMessage() for r in caplog.records if "identified by (file, entry)" in r.getMessage()]
    assert lines == [
        f"{reduced} (dataset 'dy'): no run/luminosityBlock/event branch(es); its events are identified by "
        "(file, entry): run 0, luminosityBlock 0, event = the entry number in the file"
    ]
    tables = [pq.read_table(p, columns=["run", "event"]) for p in sorted(out["dy"]["feature_files"])]
    events = np.concatenate([t.column("event").to_numpy() for t in tables])
    assert sorted(events.tolist()) == sorted(set(events.tolist()))  # distinct
    assert set(events.tolist()) <= set(range(40))
    assert len(events) == out["dy"]["cutflow"]["events"][list(out["dy"]["cutflow"]["events"])[-1]]
    assert {int(r) for t in tables for r in t.column("run").to_numpy()} == {0}
