"""Fileset metadata checked at the edge, each data file counted once, sumw from the files' Runs trees
(issue 29)."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
import uproot
from cms_anomaly.processors import runner
from cms_anomaly.processors.processor import AnomalyProcessor


def _write(tmp_path, fileset, name="fileset.json"):
    path = tmp_path / name
    path.write_text(json.dumps(fileset))
    return path


@pytest.mark.parametrize(
    ("key", "value", "what"),
    [
        ("xsec_pb", -100, "must be a finite number > 0 (the cross section in pb), got -100"),
        ("xsec_pb", "abc", "must be a finite number > 0 (the cross section in pb), got 'abc'"),
        ("lumi_pb", "abc", "must be a finite number > 0 (the integrated luminosity in pb^-1), got 'abc'"),
        ("lumi_pb", -5, "must be a finite number > 0 (the integrated luminosity in pb^-1), got -5"),
        ("lumi_pb", 0, "got 0"),
        ("is_data", "no", "must be true or false, got 'no'"),
        ("is_data", 0, "must be true or false, got 0"),
        ("is_signal", "yes", "must be true or false, got 'yes'"),
        ("sumw", 0.0, "the sum of the generator weights), got 0.0"),
        ("xsec_pb", True, "got True"),
        ("nevents", 1.5, "must be an integer >= 0, got 1.5"),
        ("sqrt_s", -13000, "got -13000"),
        (
            "era",
            "2017",
            "must be one of ['2012', '2015', '2016', '2016preVFP_UL', '2016postVFP_UL', '2017_UL', '2018_UL'], got '2017'",
        ),
        ("era", 2016, "got 2016"),
    ],
)
def test_bad_metadata_is_one_line_naming_dataset_and_key(tmp_path, real_nanoaod_files, key, value, what):
    """The values the issue names (negative cross section, 'no' as a boolean, strings as numbers, a
    negative luminosity) are refused when the fileset is read, by load_fileset and by the Python API
    entries that take a fileset dict, and by the command line in one line."""
    from cms_anomaly.cli import main

    fileset = {"dy": {"files": [str(real_nanoaod_files["dy"])], "metadata": {key: value}}}
    path = _write(tmp_path, fileset)
    with pytest.raises(runner.FilesetError) as err:
        runner.load_fileset(path)
    assert f"{path}: dataset 'dy': key {key!r}: " in str(err.value)
    assert what in str(err.value)
    assert "\n" not in str(err.value)
    with runner.make_executor("iterative") as ex, pytest.raises(runner.FilesetError, match=f"key {key!r}"):
        runner.run_processor(fileset, AnomalyProcessor(selection="inclusive"), executor=ex)
    with pytest.raises(runner.FilesetError, match=f"dataset 'dy': key {key!r}"):
        runner.check_files(fileset)
    rc = main(["run", str(path), "--out", str(tmp_path / "o"), "--executor", "iterative"])
    assert rc == 2


def test_cli_prints_the_metadata_error_in_one_line(tmp_path, real_nanoaod_files, capsys):
    from cms_anomaly.cli import main

    path = _write(tmp_path, {"dy": {"files": [str(real_nanoaod_files["dy"])], "metadata": {"xsec_pb": "abc"}}})
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--executor", "iterative"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"cms-anomaly run: error: {path}: dataset 'dy': key 'xsec_pb': must be a finite number > 0 "
        "(the cross section in pb), got 'abc'"
    ]


def test_good_metadata_passes_unchanged(tmp_path, real_nanoaod_files):
    meta = {"is_data": False, "is_signal": False, "xsec_pb": 5.5, "lumi_pb": 10, "sumw": 3.0, "nevents": 40}
    path = _write(tmp_path, {"dy": {"files": [str(real_nanoaod_files["dy"])], "metadata": {**meta, "x": "y"}}})
    assert runner.load_fileset(path)["dy"]["metadata"] == {**meta, "x": "y"}
    # a fileset dict built in Python may hold numpy scalars (an event count, a mixture's luminosity)
    numpy_meta = {"is_data": np.bool_(True), "lumi_pb": np.float32(2.5), "nevents": np.int64(40)}
    fileset = {"d": {"files": [str(real_nanoaod_files["dimuon"])], "metadata": numpy_meta}}
    assert runner.validate_fileset(fileset)["d"]["metadata"] == numpy_meta
    with pytest.raises(runner.FilesetError, match="dataset 'd': key 'nevents': must be an integer >= 0, got "):
        runner.validate_fileset({"d": {**fileset["d"], "metadata": {"nevents": np.float64(1.5)}}})


def test_a_loaded_fileset_is_checked_once_a_dict_each_time(tmp_path, real_nanoaod_files, monkeypatch):
    """load_fileset checks the metadata and check_files (run_processor's check) does not check its result
    again; a fileset dict, even one built from a loaded fileset, is checked."""
    calls = []
    check = runner.validate_fileset
    monkeypatch.setattr(runner, "validate_fileset", lambda fs, **kw: calls.append(sorted(fs)) or check(fs, **kw))
    path = _write(tmp_path, {"dy": {"files": [str(real_nanoaod_files["dy"])], "metadata": {"xsec_pb": 5.5}}})
    fileset = runner.load_fileset(path)
    good, _ = runner.check_files(fileset)
    assert calls == [["dy"]]
    assert good["dy"]["metadata"]["xsec_pb"] == 5.5
    built = {**fileset, "dy2": {**fileset["dy"], "metadata": {"xsec_pb": -1}}}
    with pytest.raises(runner.FilesetError, match="dataset 'dy2': key 'xsec_pb'"):
        runner.check_files(built)
    assert calls == [["dy"], ["dy", "dy2"]]


def test_a_data_file_in_two_data_datasets_counts_once(tmp_path, real_nanoaod_files, caplog):
    """The later data dataset whose every file is in an earlier one is dropped with a warning: the file's
    40 events are read once and its luminosity (the earlier dataset's 10 pb^-1) is not added again."""
    from cms_anomaly.analyses.samples import load_data_fileset

    f = str(real_nanoaod_files["dimuon"])
    data = {"is_data": True, "lumi_pb": 10.0}
    path = _write(
        tmp_path,
        {
            "mu_A": {"files": [f], "metadata": data},
            "mu_A_again": {"files": [f], "metadata": {**data, "lumi_pb": 4.0}},
            "dy": {"files": [f], "metadata": {}},  # simulation may share files (e.g. systematic variations)
        },
    )
    with caplog.at_level(logging.WARNING, logger="cms_anomaly"):
        fileset = runner.load_fileset(path)
    assert sorted(fileset) == ["dy", "mu_A"]
    [warning] = [r.getMessage() for r in caplog.records if "mu_A_again" in r.getMessage()]
    assert "every file is already in data dataset(s) ['mu_A']" in warning
    assert load_data_fileset(path)[1] == 10.0  # not 14
    with runner.make_executor("iterative") as ex:
        out = runner.run_processor(fileset, AnomalyProcessor(selection="inclusive"), executor=ex)
    assert out["mu_A"]["nevents"] == 40
    assert "mu_A_again" not in out


def test_a_data_dataset_sharing_some_files_is_refused(tmp_path, real_nanoaod_files):
    shutil.copy(real_nanoaod_files["dimuon"], tmp_path / "other.root")
    f, g = str(real_nanoaod_files["dimuon"]), str(tmp_path / "other.root")
    data = {"is_data": True, "lumi_pb": 10.0}
    path = _write(tmp_path, {"A": {"files": [f], "metadata": data}, "B": {"files": [g, f], "metadata": data}})
    with pytest.raises(runner.FilesetError) as err:
        runner.load_fileset(path)
    assert str(err.value).startswith(f"{path}: dataset 'B': key 'files': {f} is also in data dataset 'A' (1 of 2")
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------ sumw from the Runs trees
def _gen_weights(path):
    with uproot.open(path) as f:
        return f["Events"]["genWeight"].array(library="np").astype(np.float64)


def test_simulation_without_sumw_is_normalised_by_genEventSumw_(tmp_path, real_nanoaod_files):
    """nano_dy.root (CMS DY, aMC@NLO: 9 of its 40 genWeights negative) has the older spelling
    ``genEventSumw_`` = 1.51666867e10 in its Runs tree. With xsec 2000 pb and 10 pb^-1 every event's
    weight is genWeight x 2000 x 10 / 1.51666867e10; the cut-flow's total is the signed sum (the negative
    weights stay negative in histograms)."""
    dy = real_nanoaod_files["dy"]
    fileset = {"dy": {"files": {str(dy): "Events"}, "metadata": {"xsec_pb": 2000.0}}}
    with uproot.open(dy) as f:
        runs_sumw = float(f["Runs"]["genEventSumw_"].array(library="np").sum())
    assert runs_sumw == pytest.approx(1.51666867e10)
    good, _ = runner.check_files(fileset)
    assert good["dy"]["metadata"]["sumw"] == runs_sumw
    assert "sumw" not in fileset["dy"]["metadata"]  # the caller's dict is not changed
    gw = _gen_weights(dy)
    assert (gw < 0).sum() == 9
    with runner.make_executor("iterative") as ex:
        out = runner.run_processor(fileset, AnomalyProcessor(selection="inclusive", lumi_pb=10.0), executor=ex)
    expected = gw.sum() * 2000.0 * 10.0 / runs_sumw
    assert out["dy"]["cutflow"]["sumw"]["all"] == pytest.approx(expected, rel=1e-6)
    assert expected < np.abs(gw).sum() * 2000.0 * 10.0 / runs_sumw * 0.7  # signed, not |w|
    h = out["dy"]["hists"]["cutflow"]
    assert h[{"dataset": "dy"}].values()[0] == pytest.approx(expected, rel=1e-6)


def test_sumw_sums_genEventSumw_over_runs_and_files(tmp_path, real_nanoaod_files):
    """pfnano.root has the current spelling ``genEventSumw`` (10.0); a file this test writes has a Runs tree
    of two runs (3.0 + 4.5); the dataset of both: 17.5. Metadata sumw, where given, is kept."""
    from nanoaod_events import rewrite_nanoaod

    small = tmp_path / "two_runs.root"
    shutil.copy(real_nanoaod_files["pfnano"], tmp_path / "pfnano.root")
    rewrite_nanoaod(real_nanoaod_files["dy"], small)  # the Events the analysis reads, no Runs tree
    with uproot.update(small) as fout:
        fout["Runs"] = {"run": np.array([1, 2], np.uint32), "genEventSumw": np.array([3.0, 4.5])}
    gen_sumw: dict = {}
    runner._file_problem(uproot, str(small), "Events", timeout=5, entries={}, gen_sumw=gen_sumw)
    assert gen_sumw == {str(small): 7.5}
    fileset = {
        "both": {
            "files": {str(tmp_path / "pfnano.root"): "Events", str(small): "Events"},
            "metadata": {"xsec_pb": 1.0},
        },
        "given": {"files": {str(tmp_path / "pfnano.root"): "Events"}, "metadata": {"xsec_pb": 1.0, "sumw": 99.0}},
        "data": {"files": {str(tmp_path / "pfnano.root"): "Events"}, "metadata": {"is_data": True}},
    }
    good, _ = runner.check_files(fileset)
    assert good["both"]["metadata"]["sumw"] == 17.5
    assert good["given"]["metadata"]["sumw"] == 99.0
    assert "sumw" not in good["data"]["metadata"]


def test_simulation_without_sumw_or_runs_is_one_line(tmp_path, real_nanoaod_files, capsys):
    """The 2015 Open Data ttbar conversion has no Runs tree: normalising it to a luminosity needs sumw."""
    from cms_anomaly.cli import main

    f = str(real_nanoaod_files["ttbar2015"])
    path = _write(tmp_path, {"tt": {"files": [f], "metadata": {"xsec_pb": 832.0}}})
    fileset = runner.load_fileset(path)
    with runner.make_executor("iterative") as ex, pytest.raises(runner.FilesetError, match="dataset 'tt': key 'sumw'"):
        runner.run_processor(fileset, AnomalyProcessor(selection="inclusive", lumi_pb=1.0), executor=ex)
    rc = main(["run", str(path), "--out", str(tmp_path / "o"), "--executor", "iterative", "--lumi", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1
    assert "dataset 'tt': key 'sumw': not in the metadata, and not every file has a Runs tree" in err[0]


def test_graph_mode_normalises_from_runs_as_the_runner_does(real_nanoaod_files):
    """run_graph (dask-awkward, coffea's preprocess) gets the same sumw from the Runs tree: its cut-flow's
    weighted total equals the Runner's."""
    fileset = {"dy": {"files": {str(real_nanoaod_files["dy"]): "Events"}, "metadata": {"xsec_pb": 2000.0}}}
    proc = AnomalyProcessor(selection="inclusive", lumi_pb=10.0)
    graph = runner.run_graph(fileset, proc, step_size=15)
    with runner.make_executor("iterative") as ex:
        eager = runner.run_processor(fileset, proc, executor=ex)
    gw = _gen_weights(real_nanoaod_files["dy"])
    assert graph["dy"]["cutflow"]["sumw"]["all"] == pytest.approx(eager["dy"]["cutflow"]["sumw"]["all"], rel=1e-9)
    assert graph["dy"]["cutflow"]["sumw"]["all"] == pytest.approx(gw.sum() * 2000.0 * 10.0 / 1.51666867e10, rel=1e-6)


def test_cli_run_with_lumi_normalises_simulation_from_runs(tmp_path, real_nanoaod_files, capsys):
    """`cms-anomaly run --lumi` on simulation with xsec_pb but no sumw (it printed 'have no xsec_pb and
    sumw'): the cut-flow's weighted total is genWeight x xsec x lumi / genEventSumw_, summed."""
    from cms_anomaly.cli import main

    path = _write(tmp_path, {"dy": {"files": [str(real_nanoaod_files["dy"])], "metadata": {"xsec_pb": 2000.0}}})
    argv = ["run", str(path), "--out", str(tmp_path / "o"), "--executor", "iterative", "--selection", "inclusive"]
    assert main([*argv, "--lumi", "10"]) == 0
    expected = _gen_weights(real_nanoaod_files["dy"]).sum() * 2000.0 * 10.0 / 1.51666867e10
    [line] = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("all ")]
    assert float(line.split()[3]) == pytest.approx(expected, rel=1e-3)
