"""Same seed -> same events; a killed production resumes without partial files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from cms_anomaly.datasets import production

BRANCHES = [
    "event",
    "nMuon",
    "Muon_pt",
    "Jet_pt",
    "Jet_btagDeepFlavB",
    "FatJet_tau2",
    "PFCands_pt",
    "MET_pt",
    "GenPart_pdgId",
]


def _read(path: Path) -> dict[str, np.ndarray]:
    with uproot.open(path) as f:
        arrays = f["Events"].arrays(BRANCHES, library="ak")
    return {b: arrays[b] for b in BRANCHES}


def test_same_seed_gives_identical_events_and_other_seed_differs(tmp_path):
    kwargs = {"events": 40, "events_per_file": 20, "executor": "local"}
    a = production.produce(["ttbar"], out=tmp_path / "a", seed=5, **kwargs)
    b = production.produce(["ttbar"], out=tmp_path / "b", seed=5, **kwargs)
    c = production.produce(["ttbar"], out=tmp_path / "c", seed=6, **kwargs)
    files = [sorted(r["datasets"]["ttbar"]["files"]) for r in (a, b, c)]
    assert len(files[0]) == 2
    for fa, fb in zip(files[0], files[1], strict=True):
        ra, rb = _read(Path(fa)), _read(Path(fb))
        for branch in BRANCHES:
            assert ra[branch].tolist() == rb[branch].tolist(), branch
    assert a["datasets"]["ttbar"]["metadata"]["xsec_pb"] == b["datasets"]["ttbar"]["metadata"]["xsec_pb"]
    assert _read(Path(files[0][0]))["Muon_pt"].tolist() != _read(Path(files[2][0]))["Muon_pt"].tolist()
    # the second file continues the event numbering of the first
    assert _read(Path(files[0][1]))["event"][0] == 21


@pytest.mark.parametrize("executor", ["futures", "dask"])
def test_files_do_not_depend_on_the_executor(tmp_path, executor):
    kwargs = {"events": 30, "events_per_file": 15, "seed": 9}
    local = production.produce(["zjets"], out=tmp_path / "local", executor="local", **kwargs)
    other = production.produce(["zjets"], out=tmp_path / executor, executor=executor, workers=2, **kwargs)
    files = [sorted(r["datasets"]["zjets"]["files"]) for r in (local, other)]
    assert len(files[0]) == 2
    for fa, fb in zip(*files, strict=True):
        ra, rb = _read(Path(fa)), _read(Path(fb))
        for branch in BRANCHES:
            assert ra[branch].tolist() == rb[branch].tolist(), branch
    assert local["datasets"]["zjets"]["metadata"] == other["datasets"]["zjets"]["metadata"]


def test_the_command_line_offers_every_production_executor():
    import argparse

    from cms_anomaly.datasets import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    generate = parser._subparsers._group_actions[0].choices["generate"]
    executor = next(a for a in generate._actions if a.dest == "executor")
    assert tuple(sorted(executor.choices)) == tuple(sorted(production.EXECUTORS))


def _wait_for_a_finished_file(out: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    """Until the production in ``out`` has finished a W file (its sidecar exists) or ``proc`` ended."""
    deadline = time.time() + timeout
    while not list(out.glob("wjets/*.json")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)


def test_killed_production_resumes(tmp_path):
    out = tmp_path / "prod"
    cmd = [
        sys.executable,
        "-m",
        "cms_anomaly.cli",
        "generate",
        "wjets",
        "--events",
        "90",
        "--events-per-file",
        "30",
        "--seed",
        "3",
        "--out",
        str(out),
        "--executor",
        "local",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    _wait_for_a_finished_file(out, proc)
    assert (out / "wjets" / "wjets_s3_0000.json").exists(), "the first file never finished"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    names = sorted(p.name for p in (out / "wjets").iterdir())
    finals = [n for n in names if n.endswith(".root")]
    # nothing half-written carries a final name: a ROOT file exists only with its sidecar
    assert all((out / "wjets" / n).with_suffix(".json").exists() for n in finals)
    assert not (out / "fileset.json").exists()
    mtime = (out / "wjets" / "wjets_s3_0000.root").stat().st_mtime_ns

    result = production.produce(["wjets"], out=out, events=90, events_per_file=30, seed=3, executor="local")
    skipped = {Path(r["path"]).name: r["skipped"] for r in result["results"]}
    assert skipped["wjets_s3_0000.root"] is True
    assert (out / "wjets" / "wjets_s3_0000.root").stat().st_mtime_ns == mtime
    assert result["datasets"]["wjets"]["metadata"]["nevents"] == 90
    fileset = json.loads((out / "fileset.json").read_text())
    assert len(fileset["wjets"]["files"]) == 3

    # a file produced with another configuration is not silently reused
    changed = production.produce(["wjets"], out=out, events=60, events_per_file=20, seed=3, executor="local")
    assert not any(r["skipped"] for r in changed["results"])


def test_ctrl_c_stops_the_process_pool_promptly_and_keeps_finished_files(tmp_path):
    """SIGINT to the terminal's process group (Ctrl-C) during ``--executor futures``: the command ends
    within seconds with one line and status 130, starts no queued file, leaves no half-written file
    under a final name, and a rerun resumes."""
    out = tmp_path / "prod"
    # a test runner may start its children with SIGINT ignored: the command line restores Python's handler
    entry = "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    entry += "from cms_anomaly.cli import main; sys.exit(main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", entry, "generate", "wjets", "--events", "600", "--events-per-file", "75"]
    cmd += ["--seed", "3", "--out", str(out), "--executor", "futures", "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for_a_finished_file(out, proc)
    finished_before = len(list(out.glob("wjets/*.json")))
    assert finished_before, "no file finished"
    os.killpg(proc.pid, signal.SIGINT)
    t0 = time.time()
    _, stderr = proc.communicate(timeout=60)
    assert time.time() - t0 < 10  # a file takes ~0.5 s per 75 events; the 8 files would take longer
    assert proc.returncode == 130
    assert stderr.strip().splitlines()[-1] == "cms-anomaly generate: interrupted"
    names = sorted(p.name for p in (out / "wjets").iterdir())
    finals = [n for n in names if n.endswith(".root")]
    # the two running files are interrupted (or just finishing); none of the queued ones starts
    assert finished_before <= len(finals) <= finished_before + 2
    assert not [n for n in names if ".tmp-" in n]
    assert all((out / "wjets" / n).with_suffix(".json").exists() for n in finals)
    result = production.produce(["wjets"], out=out, events=600, events_per_file=75, seed=3, executor="local")
    assert sum(r["skipped"] for r in result["results"]) == len(finals)
    assert result["datasets"]["wjets"]["metadata"]["nevents"] == 600


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the processes whose parent is ``pid``, from /proc."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                out.append((int(stat.parent.name), (stat.parent / "cmdline").read_text()))
        except (OSError, IndexError, ValueError):  # a process that ended meanwhile
            continue
    return out


def test_a_pool_worker_killed_mid_production_fails_the_run_and_keeps_the_finished_files(tmp_path):
    """A worker process of ``--executor futures`` killed (as by the out-of-memory killer): the command ends
    with status 2 naming every file it did not make, and the finished files stay complete."""
    out = tmp_path / "prod"
    cmd = [sys.executable, "-m", "cms_anomaly.cli", "generate", "wjets", "--events", "1200"]
    cmd += ["--events-per-file", "150", "--seed", "3", "--out", str(out), "--executor", "futures", "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for_a_finished_file(out, proc)
    workers = [pid for pid, cmdline in _children(proc.pid) if "spawn_main" in cmdline]
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2
    finals = sorted(p.name for p in (out / "wjets").glob("*.root"))
    assert 0 < len(finals) < 8
    missing = {f"wjets_s3_{i:04d}.root" for i in range(8)} - set(finals)
    assert all(name in stderr for name in missing), stderr
    assert all((out / "wjets" / n).with_suffix(".json").exists() for n in finals)


def test_moved_production_resumes_in_its_new_place(tmp_path):
    first = production.produce(["zjets"], out=tmp_path / "old", events=20, seed=4, executor="local")
    assert not any(r["skipped"] for r in first["results"])
    shutil.move(tmp_path / "old", tmp_path / "new")
    again = production.produce(["zjets"], out=tmp_path / "new", events=20, seed=4, executor="local")
    assert all(r["skipped"] for r in again["results"])
    files = list(json.loads((tmp_path / "new" / "fileset.json").read_text())["zjets"]["files"])
    assert files
    assert all(Path(f).is_file() and Path(f).is_relative_to(tmp_path / "new") for f in files)


@pytest.mark.parametrize("executor", ["local", "futures"])
def test_failed_job_names_the_file_and_keeps_the_others(tmp_path, executor):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\ndescription = "typo"\nis_signal = false\nsettings = ["Top:gg2ttbarr = on"]\n')
    with pytest.raises(production.ProductionError, match=r"bad_s1_0000.root: GeneratorError: .*gg2ttbarr"):
        production.produce([str(bad), "zjets"], out=tmp_path / "p", events=10, seed=1, executor=executor, workers=2)
    assert (tmp_path / "p" / "zjets" / "zjets_s1_0000.root").exists()


def test_centre_of_mass_energy_is_part_of_the_configuration(tmp_path):
    eight = production.produce(["zjets"], out=tmp_path, events=20, seed=4, executor="local", sqrt_s=8000.0)
    meta8 = eight["datasets"]["zjets"]["metadata"]
    assert meta8["sqrt_s"] == 8000.0
    assert not eight["results"][0]["skipped"]
    # the same production at 13 TeV is a different configuration: regenerated, larger cross section
    thirteen = production.produce(["zjets"], out=tmp_path, events=20, seed=4, executor="local")
    meta13 = thirteen["datasets"]["zjets"]["metadata"]
    assert meta13["sqrt_s"] == 13000.0
    assert not thirteen["results"][0]["skipped"]
    assert meta13["sigma_gen_pb"] > 1.2 * meta8["sigma_gen_pb"]


def _dead_pid() -> int:
    """The PID of a process that has ended."""
    import subprocess

    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def test_resume_checks_the_cached_files_and_cleans_up(tmp_path):
    """A finished file cut short on disk is regenerated, not reused; stale temporaries and a broken
    fileset.json do not survive a rerun."""
    out = tmp_path / "p"
    first = production.produce(["zjets"], out=out, events=20, seed=8, executor="local")
    path = Path(first["results"][0]["path"])
    with uproot.open(path) as f:
        muon_pt = f["Events"]["Muon_pt"].array()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the sidecar still says "finished"
    stale = out / "zjets" / f"zjets_s8_0001.root.tmp-{_dead_pid()}"
    stale.write_bytes(b"partial")
    # a temporary file of a production that still runs (another one writing the same directory) stays
    running = out / "zjets" / f"zjets_s8_0002.root.tmp-{os.getpid()}"
    running.write_bytes(b"being written")
    (out / "fileset.json").write_text("{ not json")
    again = production.produce(["zjets"], out=out, events=20, seed=8, executor="local")
    assert [r["skipped"] for r in again["results"]] == [False]
    with uproot.open(path) as f:  # regenerated with the same events (same seed)
        assert f["Events"].num_entries == 20
        assert ak.all(f["Events"]["Muon_pt"].array() == muon_pt)
    assert not stale.exists()
    assert running.read_bytes() == b"being written"
    fileset = json.loads((out / "fileset.json").read_text())
    assert fileset["zjets"]["metadata"]["nevents"] == 20
    # an intact file is reused
    third = production.produce(["zjets"], out=out, events=20, seed=8, executor="local")
    assert [r["skipped"] for r in third["results"]] == [True]


def test_files_of_another_detector_response_are_not_resumed(tmp_path, monkeypatch):
    """The file identity holds a digest of the detector configuration and code: after a change of the
    response, a rerun regenerates instead of mixing old and new events."""
    out = tmp_path / "p"
    first = production.produce(["zjets"], out=out, events=10, seed=2, executor="local")
    sidecar = json.loads(Path(first["results"][0]["path"]).with_suffix(".json").read_text())
    assert sidecar["response_digest"] == production.RESPONSE_DIGEST
    assert production.produce(["zjets"], out=out, events=10, seed=2, executor="local")["results"][0]["skipped"]
    monkeypatch.setattr(production, "RESPONSE_DIGEST", "another-detector")
    again = production.produce(["zjets"], out=out, events=10, seed=2, executor="local")
    assert again["results"][0]["skipped"] is False
