"""Outputs on a cluster: an external ``dask scheduler`` and ``dask worker`` processes started in another
working directory; ``cms-anomaly run --scheduler ... --out relout --features`` leaves the tables in the
client's ``relout/``, whether the workers share the client's disk or not (then the tables come back
through the output)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cms_anomaly.processors.feature_io import read_feature_tables

pytestmark = [pytest.mark.dask_client, pytest.mark.slow]

BIN = Path(sys.executable).parent


def _start(command, *, cwd, log):
    with log.open("w") as out:
        return subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(procs):
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


def _external_cluster(tmp_path, *, private_disk: Path | None):
    """A scheduler and one worker, started in ``tmp_path/cluster``; with ``private_disk`` the worker runs in
    its own mount namespace where that directory is an empty tmpfs (a worker on another machine)."""
    cwd = tmp_path / "cluster"
    cwd.mkdir()
    sched_file = cwd / "scheduler.json"
    procs = [
        _start(
            [
                str(BIN / "dask"),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(sched_file),
            ],
            cwd=cwd,
            log=cwd / "scheduler.log",
        )
    ]
    deadline = time.monotonic() + 60
    while not sched_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    worker = [
        str(BIN / "dask"),
        "worker",
        "--scheduler-file",
        str(sched_file),
        "--nworkers",
        "1",
        "--nthreads",
        "1",
        "--no-dashboard",
        "--local-directory",
        str(cwd / "worker-space"),
    ]
    if private_disk is not None:
        script = f"mount -t tmpfs tmpfs {private_disk} && exec {' '.join(worker)}"
        worker = ["unshare", "-m", "sh", "-c", script]
    procs.append(_start(worker, cwd=cwd, log=cwd / "worker.log"))
    address = json.loads(sched_file.read_text())["address"]
    from dask.distributed import Client

    with Client(address, timeout=60) as client:
        client.wait_for_workers(1, timeout=120)
    return address, procs


def _run_and_stop(client_dir: Path, address: str, procs, *options: str) -> subprocess.CompletedProcess:
    """``cms-anomaly run fileset.json --selection inclusive --scheduler ADDRESS OPTIONS`` from the client's
    directory; the cluster's processes are stopped after it."""
    command = [str(BIN / "cms-anomaly"), "run", "fileset.json", "--selection", "inclusive", "--scheduler", address]
    try:
        return subprocess.run(
            [*command, *options], cwd=client_dir, capture_output=True, text=True, check=False, timeout=300
        )
    finally:
        _stop(procs)


@pytest.mark.parametrize("shared_disk", [True, False], ids=["shared-disk", "private-disk"])
def test_relative_out_on_an_external_cluster_reaches_the_client(tmp_path, real_nanoaod_files, shared_disk):
    client_dir = tmp_path / "client"
    client_dir.mkdir()
    (tmp_path / "data").mkdir()
    sample = tmp_path / "data" / "dy.root"  # where every worker reads it
    shutil.copy(real_nanoaod_files["dy"], sample)
    fileset = client_dir / "fileset.json"
    fileset.write_text(json.dumps({"dy": {"files": [str(sample)], "metadata": {"is_data": True}}}))
    address, procs = _external_cluster(tmp_path, private_disk=None if shared_disk else client_dir)
    done = _run_and_stop(client_dir, address, procs, "--out", "relout", "--features", "--chunksize", "20")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert ("come back through the output" in done.stderr) is (not shared_disk)
    tables = read_feature_tables(client_dir / "relout" / "features", columns=["event"], as_numpy=True)
    assert len(tables["event"]) == 40  # every event of the file (inclusive selection), in the client's relout/
    assert not list((tmp_path / "cluster").rglob("*.parquet"))  # nothing in the workers' directory


def test_a_certification_json_on_the_client_disk_reaches_workers_that_do_not_see_it(tmp_path, real_nanoaod_files):
    """The data's certified-luminosity JSON lies in the client's directory, which the worker does not see
    (its own empty tmpfs there): the processor carries it. The 2015 ttbar file has luminosity sections
    2272915-2272920 with 34, 45, 22, 43, 45 and 11 events (uproot); 2272915-16 and 2272919 are certified."""
    client_dir = tmp_path / "client"
    client_dir.mkdir()
    (tmp_path / "data").mkdir()
    sample = tmp_path / "data" / "ttbar.root"
    shutil.copy(real_nanoaod_files["ttbar2015"], sample)
    cert = client_dir / "Cert_test_JSON.txt"
    cert.write_text(json.dumps({"1": [[2272915, 2272916], [2272919, 2272919]]}))
    meta = {"is_data": True, "lumimask": str(cert)}
    (client_dir / "fileset.json").write_text(json.dumps({"data": {"files": [str(sample)], "metadata": meta}}))
    address, procs = _external_cluster(tmp_path, private_disk=client_dir)
    done = _run_and_stop(client_dir, address, procs, "--out", "relout", "--chunksize", "50")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    rows = {
        line.split()[0]: line.split()[1]
        for line in done.stdout.splitlines()
        if line.split()[:1] in (["all"], ["lumimask"])
    }
    assert rows == {"all": "200", "lumimask": str(34 + 45 + 45)}, done.stdout
