"""Certified luminosity and trigger steps of the cut-flow, on copies of a real CMS NanoAOD file."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from cms_anomaly.processors import dataquality, notices, runner
from cms_anomaly.processors.processor import AnomalyProcessor

#: the jagged collections the processor reads (the real file has them all)
COLLECTIONS = ("Muon", "Electron", "Photon", "Jet", "FatJet")


def _copy_with_ids(
    src: Path, dst: Path, *, run: np.ndarray, lumi: np.ndarray, drop_hlt: bool = False, hlt: dict | None = None
) -> Path:
    """``src`` (a real NanoAOD file) rewritten with the given ``run`` / ``luminosityBlock`` per event (and the
    ``HLT_<path>`` decisions of ``hlt`` in place of the file's)."""
    tree = uproot.open(src)["Events"]
    names = [
        k
        for k in tree.keys()  # noqa: SIM118 - uproot's keys(): the flat branch names
        if k.split("_")[0] in COLLECTIONS or k.startswith("MET_") or (k.startswith("HLT_") and not drop_hlt)
    ]
    a = tree.arrays(names)
    out: dict[str, object] = {
        c: ak.zip({k[len(c) + 1 :]: a[k] for k in names if k.startswith(f"{c}_")}) for c in COLLECTIONS
    }
    out.update({k: a[k] for k in names if k.startswith(("MET_", "HLT_"))})
    out.update({f"HLT_{p}": ak.Array(np.asarray(v, bool)) for p, v in (hlt or {}).items()})
    out["run"] = ak.Array(np.asarray(run, np.uint32))
    out["luminosityBlock"] = ak.Array(np.asarray(lumi, np.uint32))
    out["event"] = ak.Array(np.arange(1, len(a) + 1, dtype=np.uint64))
    with uproot.recreate(dst) as f:
        f.mktree(
            "Events",
            {k: v.type for k, v in out.items()},
            field_name=lambda outer, inner: f"{outer}_{inner}",
            counter_name=lambda counted: f"n{counted}",
        ).extend(out)
    return dst


def _run(path: Path, metadata: dict, *, selection: str = "inclusive") -> dict:
    fs = {"data": {"files": {str(path): "Events"}, "metadata": metadata}}
    with runner.make_executor("iterative") as ex:
        return runner.run_processor(fs, AnomalyProcessor(selection=selection), executor=ex, chunksize=15)["data"]


@pytest.fixture
def known_ids(tmp_path, real_nanoaod_files):
    """The 40 events of the real dimuon file on runs 278820 / 278821 / 280000, luminosity sections 1-7."""
    n = uproot.open(real_nanoaod_files["dimuon"])["Events"].num_entries
    run = np.array([278820, 278821, 280000] * n)[:n]
    lumi = (np.arange(n) % 7) + 1
    path = _copy_with_ids(real_nanoaod_files["dimuon"], tmp_path / "ids.root", run=run, lumi=lumi)
    golden = {"278820": [[2, 4], [7, 7]], "278821": [[1, 1], [5, 6]]}  # run 280000 not certified
    json_path = tmp_path / "Cert_test_JSON.txt"
    json_path.write_text(json.dumps(golden))
    certified = {(int(r), ls) for r, ranges in golden.items() for a, b in ranges for ls in range(a, b + 1)}
    expected = np.array([(int(r), int(ls)) in certified for r, ls in zip(run, lumi, strict=True)])
    return path, json_path, expected


def test_lumimask_keeps_exactly_the_certified_events(known_ids):
    """Events whose (run, lumi) the JSON lists, counted here by set membership, are exactly the ones that
    pass the ``lumimask`` step; the masked-out ones are its first failure in the cut-flow."""
    path, json_path, expected = known_ids
    n_certified = int(expected.sum())
    assert 0 < n_certified < len(expected)
    out = _run(path, {"is_data": True, "lumimask": str(json_path)})
    flow = out["cutflow"]
    assert flow["events"] == {"all": len(expected), "lumimask": n_certified}
    assert flow["first_failed"] == {"lumimask": len(expected) - n_certified, "passed": n_certified}
    hist = out["hists"]["cutflow"][{"dataset": "data"}]
    assert list(hist.axes["cut"]) == ["all", "lumimask"]
    assert hist.values().tolist() == [len(expected), n_certified]
    # the selected events themselves: the MET histogram holds the certified ones only
    met = uproot.open(path)["Events"]["MET_pt"].array(library="np")
    assert out["hists"]["met"].values().sum() == pytest.approx(np.count_nonzero(expected & (met >= 0)))


def test_simulation_has_no_lumimask_step(known_ids):
    path, json_path, _ = known_ids
    out = _run(path, {"is_data": False, "lumimask": str(json_path)})
    assert list(out["cutflow"]["events"]) == ["all"]


def test_unreadable_lumimask_is_one_clear_error(tmp_path):
    for bad, text in ((tmp_path / "no_such_JSON.txt", None), (tmp_path / "bad_JSON.txt", "{not json")):
        if text is not None:
            bad.write_text(text)
        with pytest.raises(
            dataquality.DataQualityError, match=rf"dataset 'd': lumimask .*{bad.name}.* is not a readable"
        ):
            dataquality.certified({"dataset": "d", "lumimask": str(bad)}, np.ones(3), np.ones(3))


def test_packaged_certified_jsons_are_the_cms_files():
    """The shipped JSONs are the CMS files: their sha256 and first and last certified runs."""
    import hashlib
    from importlib import resources

    folder = resources.files("cms_anomaly.datasets") / "lumimasks"
    expected = {
        "Cert_271036-284044_13TeV_Legacy2016_Collisions16_JSON.txt": (
            "e63961f7d175746c3d1ba985d293de0a822d041094c7991c41cffa661d982e28",
            "273158",
            "284044",
        ),
        "Cert_190456-208686_8TeV_22Jan2013ReReco_Collisions12_JSON.txt": (
            "04edd6088eddc56cdaf3de335af636f988ec1e177512dd60312dcf55453719cc",
            "190645",
            "208686",
        ),
    }
    for name, (sha, first, last) in expected.items():
        data = (folder / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha, name
        runs = sorted(json.loads(data))
        assert (runs[0], runs[-1]) == (first, last), name


def test_trigger_is_the_or_of_the_era_paths_that_exist(tmp_path, real_nanoaod_files):
    """2016 single-lepton trigger on the real DY file: HLT_IsoMu24 OR HLT_IsoTkMu24 OR HLT_Ele27_WPTight_Gsf,
    of which the file has the first (6 events fire it) and the third (7 others); counted here from the raw
    branches."""
    src = real_nanoaod_files["dy"]
    tree = uproot.open(src)["Events"]
    keys = set(tree.keys())
    assert {"HLT_IsoMu24", "HLT_Ele27_WPTight_Gsf"} <= keys
    assert "HLT_IsoTkMu24" not in keys
    a = tree.arrays(["HLT_IsoMu24", "HLT_Ele27_WPTight_Gsf"], library="np")
    fired = a["HLT_IsoMu24"] | a["HLT_Ele27_WPTight_Gsf"]
    assert (a["HLT_IsoMu24"].sum(), a["HLT_Ele27_WPTight_Gsf"].sum(), fired.sum()) == (6, 7, 13)
    n = len(fired)
    path = _copy_with_ids(src, tmp_path / "t.root", run=np.full(n, 278820), lumi=np.ones(n))
    out = _run(path, {"is_data": False, "era": "2016postVFP_UL"}, selection="single_lepton")
    assert list(out["cutflow"]["events"]) == ["all", "trigger", "lepton_pt", "lepton_iso"]
    assert out["cutflow"]["events"]["trigger"] == 13


def test_data_of_a_primary_dataset_drops_the_events_of_an_earlier_one(tmp_path, real_nanoaod_files):
    """SingleElectron data keep the electron path's events that no muon path fired (counted once across
    primary datasets); SingleMuon data keep the muon paths' events. Decisions set by hand on the real file:
    IsoMu24 fires on events 0-9, IsoTkMu24 on 5-14, Ele27_WPTight_Gsf on 10-24."""
    src = real_nanoaod_files["dy"]
    n = uproot.open(src)["Events"].num_entries
    idx = np.arange(n)
    hlt = {"IsoMu24": idx < 10, "IsoTkMu24": (idx >= 5) & (idx < 15), "Ele27_WPTight_Gsf": (idx >= 10) & (idx < 25)}
    path = _copy_with_ids(src, tmp_path / "pd.root", run=np.full(n, 278820), lumi=np.ones(n), hlt=hlt)
    counts = {}
    for pd in ("SingleMuon", "SingleElectron"):
        meta = {"is_data": True, "era": "2016", "primary_dataset": pd}
        counts[pd] = _run(path, meta, selection="single_lepton")["cutflow"]["events"]["trigger"]
    assert counts == {"SingleMuon": 15, "SingleElectron": 10}  # 0-14; 15-24
    assert (
        _run(path, {"is_data": False, "era": "2016"}, selection="single_lepton")["cutflow"]["events"]["trigger"] == 25
    )


def test_trigger_without_branches_is_said_once_and_keeps_every_event(tmp_path, real_nanoaod_files, caplog):
    src = real_nanoaod_files["dimuon"]
    n = uproot.open(src)["Events"].num_entries
    path = _copy_with_ids(src, tmp_path / "nohlt.root", run=np.full(n, 1), lumi=np.ones(n), drop_hlt=True)
    notices._SAID.clear()
    with caplog.at_level(logging.WARNING, logger="cms_anomaly.processors.dataquality"):
        out = _run(path, {"is_data": False, "era": "2016"}, selection="single_lepton")
    assert out["cutflow"]["events"]["trigger"] == n
    said = [r for r in caplog.records if "none of the trigger branches" in r.getMessage()]
    assert len(said) == 1  # three chunks, one warning
    assert "HLT_IsoMu24" in said[0].getMessage()


def test_no_era_means_no_trigger_step(real_nanoaod_files, caplog):
    """A Run-2 file without metadata era (the coffea samples): no trigger step, said once."""
    notices._SAID.clear()
    with caplog.at_level(logging.WARNING, logger="cms_anomaly.processors.dataquality"):
        out = _run(real_nanoaod_files["dimuon"], {"is_data": True}, selection="single_lepton")
    assert list(out["cutflow"]["events"]) == ["all", "lepton_pt", "lepton_iso"]
    assert sum("no era" in r.getMessage() for r in caplog.records) == 1


def test_primary_dataset_outside_the_table_is_refused():
    meta = {"dataset": "d", "is_data": True, "era": "2016", "primary_dataset": "SingleElectron"}
    with pytest.raises(
        dataquality.DataQualityError,
        match="primary dataset 'SingleElectron' is not used by selection 'top_rediscovery'",
    ):
        dataquality.steps(ak.Array([{}]), meta=meta, selection="top_rediscovery", variant="run2", available=set())


def test_every_selection_has_a_trigger_entry_per_era():
    from cms_anomaly.processors.selections import SELECTIONS

    assert set(dataquality.TRIGGERS) == set(SELECTIONS)
    for name, table in dataquality.TRIGGERS.items():
        for era, groups in table.items():
            assert era in ("2012", "2016", "generated"), (name, era)
            for g in groups:
                assert g.paths
                assert g.source
                assert not any(p.startswith("HLT_") for p in g.paths)


def test_opendata_fileset_masks_and_triggers_its_data_in_both_coffea_modes(tmp_path, real_nanoaod_files):
    """``opendata fileset`` (2016) on a local copy of the real DY file placed in run 278820, luminosity sections
    1-40 (the CMS JSON certifies 17-1540 of that run): the packaged JSON keeps events 16-39, and of those the
    SingleMuon trigger (HLT_IsoMu24; no HLT_IsoTkMu24 branch) those that fired it; counted here from the JSON
    text and the raw branch. processor.Runner and dask-awkward (apply_to_fileset) give the same cut-flow."""
    from cms_anomaly.datasets import opendata

    src = real_nanoaod_files["dy"]
    n = uproot.open(src)["Events"].num_entries
    lumi = np.arange(1, n + 1)
    manifest = opendata.load_manifest("2016")
    record = next(r for r in manifest.records if r.dataset == "SingleMuon_Run2016G")
    path = _copy_with_ids(src, tmp_path / "SingleMuon.root", run=np.full(n, 278820), lumi=lumi)
    cache = tmp_path / "filelists"
    cache.mkdir()
    (cache / f"{record.recid}.txt").write_text(f"{path}\n")
    fileset = opendata.build_fileset(campaign="2016", cache=cache, datasets=["SingleMuon_Run2016G"])

    golden = json.loads(Path(fileset["SingleMuon_Run2016G"]["metadata"]["lumimask"]).read_text())
    certified = np.array([any(a <= ls <= b for a, b in golden["278820"]) for ls in lumi])
    fired = uproot.open(src)["Events"]["HLT_IsoMu24"].array(library="np")
    expected = {"all": n, "lumimask": int(certified.sum()), "trigger": int((certified & fired).sum())}
    assert expected["all"] > expected["lumimask"] > expected["trigger"] > 0

    proc = AnomalyProcessor(selection="single_lepton")
    with runner.make_executor("iterative") as ex:
        out = runner.run_processor(fileset, proc, executor=ex, chunksize=15)["SingleMuon_Run2016G"]
    flow = out["cutflow"]["events"]
    assert {k: flow[k] for k in expected} == expected
    graph = runner.run_graph(fileset, proc, step_size=15)["SingleMuon_Run2016G"]
    assert graph["cutflow"] == out["cutflow"]


def test_fileset_resolves_a_relative_lumimask_against_its_directory(tmp_path):
    (tmp_path / "masks").mkdir()
    fileset = {
        "a": {"files": ["x.root"], "metadata": {"is_data": True, "lumimask": "masks/Cert.txt"}},
        "b": {"files": ["y.root"], "metadata": {"is_data": True, "lumimask": "https://example.org/Cert.txt"}},
    }
    (tmp_path / "fs.json").write_text(json.dumps(fileset))
    loaded = runner.load_fileset(tmp_path / "fs.json")
    assert loaded["a"]["metadata"]["lumimask"] == str(tmp_path / "masks" / "Cert.txt")
    assert loaded["b"]["metadata"]["lumimask"] == "https://example.org/Cert.txt"


def test_bad_data_quality_metadata_stops_the_run_before_it_starts(tmp_path, real_nanoaod_files, capsys):
    """An unreadable lumimask, an era without a trigger table for the selection, or a primary dataset the
    selection does not use: one line from ``cms-anomaly run`` (exit status 2), before any chunk runs."""
    from cms_anomaly.cli import main

    base = {"is_data": True, "era": "2016", "primary_dataset": "SingleMuon"}
    cases = [
        ({"lumimask": "missing_JSON.txt"}, "single_lepton", r"lumimask '.*missing_JSON.txt' is not a readable"),
        ({"era": "2017_UL"}, "single_lepton", r"era '2017' has no trigger table for selection 'single_lepton'"),
        ({"primary_dataset": "SingleElectron"}, "top_rediscovery", r"primary dataset 'SingleElectron' is not used"),
    ]
    for k, (extra, selection, message) in enumerate(cases):
        fs = {"d": {"files": [str(real_nanoaod_files["dy"])], "metadata": {**base, **extra}}}
        (tmp_path / f"fs{k}.json").write_text(json.dumps(fs))
        argv = ["run", str(tmp_path / f"fs{k}.json"), "--selection", selection, "--out", str(tmp_path / f"o{k}")]
        assert main([*argv, "--executor", "iterative"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1
        assert re.search(rf"^cms-anomaly run: error: dataset 'd': {message}", err[0]), err[0]
