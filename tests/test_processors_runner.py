"""Bad input answered in one clear line naming the file; --skip-bad-files keeps the rest."""

from __future__ import annotations

import json
import shutil

import pytest
from cms_anomaly.processors import runner
from cms_anomaly.processors.processor import AnomalyProcessor
from nanoaod_events import rewrite_nanoaod


@pytest.fixture
def files(tmp_path, real_nanoaod_files):
    good = tmp_path / "good.root"
    shutil.copy(real_nanoaod_files["dy"], good)
    data = real_nanoaod_files["ttbar2015"].read_bytes()
    (tmp_path / "trunc.root").write_bytes(data[: len(data) // 2])  # a copy interrupted half-way
    (tmp_path / "empty.root").write_bytes(b"")
    (tmp_path / "text.root").write_text("hello\n")
    return tmp_path


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("trunc.root", "not a readable ROOT file"),
        ("empty.root", "empty file"),
        ("text.root", "not a readable ROOT file"),
        ("missing.root", "no such file"),
    ],
)
def test_unreadable_file_is_named_in_one_line(files, name, problem):
    fs = {"a": {"files": {str(files / "good.root"): "Events", str(files / name): "Events"}, "metadata": {}}}
    with pytest.raises(runner.InputFileError) as err:
        runner.check_files(fs)
    message = str(err.value)
    assert str(files / name) in message
    assert problem in message
    assert "\n" not in message


def test_missing_tree_is_named(files):
    fs = {"a": {"files": {str(files / "good.root"): "Runs2"}, "metadata": {}}}
    with pytest.raises(runner.InputFileError, match="no tree 'Runs2'"):
        runner.check_files(fs)


def test_skip_bad_files_processes_the_rest_and_lists_the_skipped(files):
    fs = {
        "a": {"files": {str(files / f): "Events" for f in ("good.root", "trunc.root", "text.root")}, "metadata": {}},
        "b": {"files": {str(files / "empty.root"): "Events"}, "metadata": {}},
    }
    with runner.make_executor("iterative") as ex:
        out = runner.run_processor(fs, AnomalyProcessor(selection="inclusive"), executor=ex, skip_bad_files=True)
    assert out["a"]["nevents"] == 40  # the good file, whole
    assert sorted(s.split(":")[0] for s in out["a"]["skipped_files"]) == sorted(
        str(files / f) for f in ("text.root", "trunc.root")
    )
    assert "hists" not in out["b"]
    assert any("empty.root" in s for s in out["b"]["skipped_files"])
    summary = runner.format_summary(out, selection="inclusive")
    assert summary.count("SKIPPED") == 4
    assert "b: no readable file, nothing processed" in summary
    runner.save_outputs(out, files / "out")  # a dataset without histograms is saved without error


def test_missing_branch_is_named_and_skipped(files, real_nanoaod_files):
    """A file without ``Muon_pt`` (other Muon_* present) is refused before any chunk, or skipped."""
    rewrite_nanoaod(real_nanoaod_files["dy"], files / "nomupt.root", drop=("Muon_pt",))
    fs = {"a": {"files": {str(files / f): "Events" for f in ("good.root", "nomupt.root")}, "metadata": {}}}
    with pytest.raises(runner.InputFileError) as err:
        runner.check_files(fs)
    assert str(err.value) == (
        f"{files / 'nomupt.root'} (dataset 'a'): missing branch(es) ['Muon_pt'] that the analysis needs "
        "(no fallback; see processors/schema.py)"
    )
    with runner.make_executor("iterative") as ex:
        out = runner.run_processor(fs, AnomalyProcessor(selection="inclusive"), executor=ex, skip_bad_files=True)
    assert out["a"]["nevents"] == 40
    assert [s.split(":")[0] for s in out["a"]["skipped_files"]] == [str(files / "nomupt.root")]


@pytest.mark.dask_client
def test_missing_collection_on_dask_is_one_line_not_retried(files, real_nanoaod_files, capsys):
    """A file without Photon run on Dask: one line before submission (a deterministic error is not retried);
    with ``--allow-missing Photon`` the same file runs."""
    from cms_anomaly.cli import main

    rewrite_nanoaod(real_nanoaod_files["dy"], files / "nophoton.root", drop=("Photon",))
    fs = files / "fs.json"
    fs.write_text(json.dumps({"a": {"files": ["nophoton.root"]}}))
    argv = ["run", str(fs), "--executor", "dask", "--workers", "1", "--selection", "inclusive"]
    assert main([*argv, "--out", str(files / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "nophoton.root" in err[0]
    assert "'Photon_pt'" in err[0]
    assert "Traceback" not in err[0]
    assert main([*argv, "--out", str(files / "o2"), "--executor", "iterative", "--allow-missing", "Photon"]) == 0


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"files": "/abs/a.root"}, "'files' must be a list of paths or an object"),
        ({"files": ["a.root"], "metadata": [1, 2]}, "'metadata' must be an object"),
        ({"files": []}, "empty file list"),
        ({"metadata": {}}, "has no 'files'"),
    ],
)
def test_malformed_fileset_shapes_name_the_dataset(tmp_path, entry, message):
    path = tmp_path / "fileset.json"
    path.write_text(json.dumps({"ttbar": entry}))
    with pytest.raises(runner.FilesetError, match=message) as err:
        runner.load_fileset(path)
    assert "'ttbar'" in str(err.value)
    assert str(path) in str(err.value)


def test_cli_exit_status_and_one_line(files, capsys):
    from cms_anomaly.cli import main

    fs = files / "fs.json"
    fs.write_text(json.dumps({"a": {"files": ["good.root", "trunc.root"]}}))
    rc = main(["run", str(fs), "--out", str(files / "o"), "--executor", "iterative", "--selection", "inclusive"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1
    assert "trunc.root" in err[0]
    assert "not a readable ROOT file" in err[0]


def test_a_run_owns_its_output_directory(files, capsys):
    """A rerun replaces the earlier feature tables (no double counting); a concurrent run is refused."""
    import pyarrow.parquet as pq

    from cms_anomaly.cli import main

    fs = files / "fs.json"
    fs.write_text(json.dumps({"dy": {"files": ["good.root"]}}))
    out = files / "o"
    args = ["run", str(fs), "--out", str(out), "--executor", "iterative", "--selection", "inclusive", "--features"]

    def rows() -> int:
        return sum(pq.read_metadata(p).num_rows for p in out.glob("features/*/*.parquet"))

    assert main(args) == 0
    first = rows()
    assert first == 40
    assert main([*args[:-1], "--chunksize", "15", "--features"]) == 0  # other chunking: other file names
    assert rows() == first
    manifest = json.loads((out / "manifest.json").read_text())
    assert "histograms.coffea" in manifest["files"]
    assert sum(f.endswith(".parquet") for f in manifest["files"]) == 3
    assert not (out / ".lock").exists()
    import os
    import socket

    (out / ".lock").write_text(f"{os.getpid()} {socket.gethostname()}")  # a live process holds it
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "in use by another run" in err[0]
    assert str(os.getpid()) in err[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "FS", "--out", "O", "--chunksize", "0"], "argument --chunksize: must be a positive integer, got '0'"),
        (["run", "FS", "--out", "O", "--lumi", "-100"], "argument --lumi: must be a positive number, got '-100'"),
        (["generate", "wjets", "--events", "-5", "--out", "O"], "argument --events: must be a positive integer"),
        (["generate", "wjets", "--events", "10", "--events-per-file", "0", "--out", "O"], "argument --events-per-file"),
        (["rediscover-top", "--alpha", "2"], "argument --alpha: must be in (0, 1]"),
    ],
)
def test_meaningless_numbers_are_refused_at_the_edge(argv, message, capsys):
    from cms_anomaly.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_config_and_lumi_checks_name_the_value(files, tmp_path, capsys):
    from cms_anomaly.cli import main

    fs = files / "fs.json"
    fs.write_text(json.dumps({"dy": {"files": ["good.root"]}}))
    bad = tmp_path / "bad.toml"
    bad.write_text("[objects]\njet_eta_max = -1\n")
    assert main(["run", str(fs), "--out", str(tmp_path / "o"), "--executor", "iterative", "--config", str(bad)]) == 2
    assert "jet_eta_max must be a finite number > 0, got -1.0" in capsys.readouterr().err
    # simulation without a cross section cannot be normalised to a luminosity
    assert main(["run", str(fs), "--out", str(tmp_path / "o"), "--executor", "iterative", "--lumi", "1000"]) == 2
    assert "have no xsec_pb in their metadata" in capsys.readouterr().err
