"""Reruns lose nothing: staged outputs replace the previous ones only when a run finishes; a lock of a dead
process is taken over; an output directory that cannot be one is one line; readers refuse unfinished tables."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cms_anomaly.core import atomic
from cms_anomaly.processors.feature_io import FeatureTableError, read_feature_tables, table_files
from coffea.processor import ProcessorABC

BIN = Path(sys.executable).parent


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_failed_run_leaves_the_previous_outputs(tmp_path):
    with atomic.owned_directory(tmp_path, replace=("a", "b"), last="b") as stage:
        (stage / "a").write_text("first")
        (stage / "b").write_text("first")

    def interrupted_run() -> None:
        with atomic.owned_directory(tmp_path, replace=("a", "b"), last="b") as stage:
            (stage / "a").write_text("second")
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        interrupted_run()
    assert (tmp_path / "a").read_text() == (tmp_path / "b").read_text() == "first"
    assert not (tmp_path / ".staging").exists()
    with atomic.owned_directory(tmp_path, replace=("a", "b"), last="b") as stage:
        (stage / "a").write_text("third")  # b not written: the earlier b must not survive beside the new a
    assert (tmp_path / "a").read_text() == "third"
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("finished", [True, False])
def test_a_commit_killed_half_way_is_finished_or_undone_by_the_next_run(tmp_path, finished):
    for name in ("a", "b"):
        (tmp_path / name).write_text("old")
    # the state a SIGKILL leaves between two renames of a commit: a moved away, b not yet
    (tmp_path / ".previous").mkdir()
    (tmp_path / "a").replace(tmp_path / ".previous" / "a")
    (tmp_path / ".staging").mkdir()
    for name in ("a", "b"):
        (tmp_path / ".staging" / name).write_text("new")
    if finished:
        (tmp_path / ".staging" / ".committed").touch()
    with atomic.owned_directory(tmp_path, replace=()) as _:
        pass
    expect = "new" if finished else "old"
    assert (tmp_path / "a").read_text() == expect
    assert (tmp_path / "b").read_text() == expect
    assert not (tmp_path / ".previous").exists()


def test_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path, caplog):
    import socket

    (tmp_path / ".lock").write_text(f"{_dead_pid()} {socket.gethostname()}")
    with atomic.owned_directory(tmp_path, replace=("a",)) as stage:
        (stage / "a").write_text("x")
    assert "taking over the lock" in caplog.text
    assert not (tmp_path / ".lock").exists()
    (tmp_path / ".lock").write_text(f"{_dead_pid()} another-host")  # a process elsewhere: not ours to judge
    with pytest.raises(atomic.OutputLockedError, match="another-host"), atomic.owned_directory(tmp_path):
        pass


@pytest.mark.parametrize("kind", ["file", "under-file", "read-only"])
def test_unusable_output_directory_is_one_line(tmp_path, kind):
    target = tmp_path / "out"
    if kind == "file":
        target.write_text("x")
    elif kind == "under-file":
        (tmp_path / "f").write_text("x")
        target = tmp_path / "f" / "out"
    else:
        target.mkdir()
        target.chmod(0o555)
    if kind == "read-only" and os.geteuid() == 0:
        pytest.skip("root may write into a 0555 directory (a read-only file system fails its mkdir instead)")
    with pytest.raises(atomic.OutputDirectoryError) as err:
        atomic.usable_directory(target / "sub" if kind == "read-only" else target)
    assert "\n" not in str(err.value)
    assert str(target) in str(err.value)


def test_cli_out_that_is_a_file_is_one_line(tmp_path, capsys, real_nanoaod_files):
    from cms_anomaly.cli import main

    (tmp_path / "fs.json").write_text(json.dumps({"dy": [str(real_nanoaod_files["dy"])]}))
    (tmp_path / "taken").write_text("a file, not a directory")
    capsys.readouterr()
    assert (
        main(["run", str(tmp_path / "fs.json"), "--out", str(tmp_path / "taken" / "o"), "--executor", "iterative"]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"cms-anomaly run: error: output directory {tmp_path / 'taken' / 'o'} lies under the file {tmp_path / 'taken'}"
    ]


def test_readers_refuse_tables_without_a_finished_manifest(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "features" / "dy").mkdir(parents=True)
    pq.write_table(pa.table({"event": [1, 2]}), tmp_path / "features" / "dy" / "a.parquet")
    with pytest.raises(FeatureTableError, match="no finished-run manifest") as err:
        table_files(tmp_path / "features")
    assert "\n" not in str(err.value)
    from cms_anomaly.processors.feature_io import write_table_manifest

    write_table_manifest(tmp_path / "features", [tmp_path / "features" / "dy" / "a.parquet"])
    # a table a killed run left beside the finished ones is not read
    pq.write_table(pa.table({"event": [3]}), tmp_path / "features" / "dy" / "stray.parquet")
    for path in (tmp_path / "features", tmp_path / "features" / "dy", tmp_path / "features" / "dy" / "a.parquet"):
        assert read_feature_tables(path, columns=["event"], as_numpy=True)["event"].tolist() == [1, 2]


@pytest.mark.slow
def test_run_killed_at_any_point_leaves_the_previous_results_readable(tmp_path, real_nanoaod_files):
    """SIGKILL a real ``cms-anomaly run`` while it writes feature tables: the earlier finished run stays
    readable, and the next run takes the dead lock over and replaces it."""
    import shutil

    fileset = tmp_path / "fileset.json"
    files = [tmp_path / f"tt{k}.root" for k in range(4)]  # 4 x 200 events, 40 chunks of 20
    for f in files:
        shutil.copy(real_nanoaod_files["ttbar2015"], f)
    fileset.write_text(json.dumps({"tt": {"files": {str(f): "Events" for f in files}}}))
    out = tmp_path / "out"
    base = [str(BIN / "cms-anomaly"), "run", str(fileset), "--out", str(out), "--executor", "iterative"]
    base += ["--selection", "inclusive", "--features"]
    subprocess.run([*base, "--maxchunks", "1", "--chunksize", "50"], check=True, capture_output=True)
    before = read_feature_tables(out / "features", columns=["event"], as_numpy=True)["event"]
    hists = (out / "histograms.coffea").read_bytes()
    proc = subprocess.Popen([*base, "--chunksize", "20"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list((out / ".staging").rglob("*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / ".lock").exists()  # left by the killed run
    assert (out / "histograms.coffea").read_bytes() == hists
    after = read_feature_tables(out / "features", columns=["event"], as_numpy=True)["event"]
    assert after.tolist() == before.tolist()
    assert proc.returncode == -signal.SIGKILL
    done = subprocess.run([*base, "--chunksize", "20"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "taking over the lock" in done.stderr
    assert len(read_feature_tables(out / "features", columns=["event"], as_numpy=True)["event"]) == 800
    assert not (out / ".staging").exists()


@pytest.mark.slow
def test_killed_futures_run_takes_its_pool_workers_with_it(tmp_path, real_nanoaod_files):
    import shutil

    import psutil

    files = [tmp_path / f"tt{k}.root" for k in range(20)]
    for f in files:
        shutil.copy(real_nanoaod_files["ttbar2015"], f)
    fileset = tmp_path / "fileset.json"
    fileset.write_text(json.dumps({"tt": {"files": [str(f) for f in files]}}))
    command = [str(BIN / "cms-anomaly"), "run", str(fileset), "--out", str(tmp_path / "out"), "--executor", "futures"]
    proc = subprocess.Popen([*command, "--workers", "2", "--chunksize", "10"], stderr=subprocess.DEVNULL)
    main = psutil.Process(proc.pid)
    deadline = time.monotonic() + 120
    while len(main.children()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    children = main.children(recursive=True)
    assert len(children) >= 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"pool workers still running after the main process was killed: {alive}"


class _CrashingProcessor(ProcessorABC):
    """A processor whose worker process dies on every chunk (as one killed for memory would)."""

    def process(self, events):
        os._exit(1)

    def postprocess(self, accumulator):
        return accumulator


@pytest.mark.dask_client
@pytest.mark.slow
def test_a_worker_killed_again_and_again_is_one_line(real_nanoaod_files, tmp_path, monkeypatch, capsys):
    from cms_anomaly.analyses import run as run_module
    from cms_anomaly.processors import runner

    from cms_anomaly.cli import main

    fileset = {"dy": {"files": {str(real_nanoaod_files["dy"]): "Events"}, "metadata": {}}}
    with runner.make_executor("dask", workers=1) as ex, pytest.raises(RuntimeError, match="KilledWorker") as killed:
        runner.run_processor(fileset, _CrashingProcessor(), executor=ex)

    def run_processor(*args, **kwargs):
        raise killed.value

    monkeypatch.setattr(run_module, "run_processor", run_processor)
    (tmp_path / "fs.json").write_text(json.dumps({"dy": [str(real_nanoaod_files["dy"])]}))
    capsys.readouterr()
    assert main(["run", str(tmp_path / "fs.json"), "--out", str(tmp_path / "o"), "--executor", "iterative"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "Dask workers died again and again" in err[0]
    assert f"entries 0-40 of {real_nanoaod_files['dy']}" in err[0]
