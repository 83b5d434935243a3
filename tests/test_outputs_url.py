"""Feature tables at an fsspec URL (``cms-anomaly run --features-to URL``): written by external Dask workers
started in another directory (``file://``) or through the tests' XRootD server (``root://``), read by
``train``'s loader; a URL a worker cannot write is refused in one line before the first chunk."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cms_anomaly.models.data import list_datasets, read_samples
from cms_anomaly.models.feature_sets import get_feature_set
from cms_anomaly.processors.feature_io import FeatureTableError, read_feature_tables, table_files
from servers import world_readable_dir, xrootd_server
from test_cluster_outputs import _external_cluster, _stop

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
COLUMNS = ["event", "run", "ht", "n_jets", "weight"]


def _fileset(tmp_path: Path, source: Path) -> Path:
    """A one-dataset fileset of a copy of ``source`` in ``tmp_path/data`` (where every worker reads it)."""
    (tmp_path / "data").mkdir(exist_ok=True)
    sample = tmp_path / "data" / "dy.root"
    shutil.copy(source, sample)
    sample.chmod(0o644)
    fileset = tmp_path / "fileset.json"
    fileset.write_text(json.dumps({"dy": {"files": [str(sample)], "metadata": {"is_data": True}}}))
    return fileset


def _run(fileset: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [str(BIN / "cms-anomaly"), "run", str(fileset), "--selection", "inclusive", "--chunksize", "20"]
    return subprocess.run([*command, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=300)


def _local_tables(tmp_path: Path, fileset: Path) -> dict[str, np.ndarray]:
    done = _run(fileset, "--executor", "iterative", "--out", str(tmp_path / "local"), "--features", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return read_feature_tables(tmp_path / "local" / "features", columns=COLUMNS, as_numpy=True)


def _error_line(done: subprocess.CompletedProcess) -> str:
    """The one error line of a refused run (INFO lines of the workers' versions may precede it)."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if " INFO " not in line and line.strip()]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith("cms-anomaly run: error: ")
    return errors[0]


def _assert_same_tables(url: str, local: dict[str, np.ndarray], local_dir: Path) -> None:
    remote = read_feature_tables(url, columns=COLUMNS, as_numpy=True)
    assert len(local["event"]) == 40  # every event of the file (inclusive selection)
    for name in COLUMNS:
        np.testing.assert_array_equal(remote[name], local[name], err_msg=name)
    # train's loader reads the URL as it reads the local directory
    fs = get_feature_set("hlf_nano")
    assert list_datasets(url) == list_datasets(local_dir) == ["dy"]
    from_url = read_samples(url, feature_set=fs)["dy"]
    from_disk = read_samples(local_dir, feature_set=fs)["dy"]
    np.testing.assert_array_equal(from_url.x, from_disk.x)
    np.testing.assert_array_equal(from_url.event, from_disk.event)


@pytest.mark.dask_client
def test_file_url_written_by_external_workers_equals_a_local_run(tmp_path, real_nanoaod_files):
    fileset = _fileset(tmp_path, real_nanoaod_files["dy"])
    local = _local_tables(tmp_path, fileset)
    client_dir = tmp_path / "client"
    client_dir.mkdir()
    address, procs = _external_cluster(tmp_path, private_disk=None)
    try:
        url = f"file://{tmp_path}/shared/feat"
        done = _run(fileset, "--scheduler", address, "--out", "relout", "--features-to", url, cwd=client_dir)
    finally:
        _stop(procs)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert f"feature tables: {url}" in done.stdout
    _assert_same_tables(url, local, tmp_path / "local" / "features")
    assert not list((tmp_path / "cluster").rglob("*.parquet"))  # nothing in the workers' directory
    assert not list((tmp_path / "shared").rglob("*.tmp-*"))
    assert not list((tmp_path / "shared").rglob(".probe-*"))


@pytest.mark.dask_client
def test_file_url_a_worker_cannot_see_is_one_line_naming_it(tmp_path, real_nanoaod_files):
    fileset = _fileset(tmp_path, real_nanoaod_files["dy"])
    client_dir = tmp_path / "client"
    client_dir.mkdir()
    # the worker runs where client/ is an empty disk of its own: it cannot write the client's URL there
    address, procs = _external_cluster(tmp_path, private_disk=client_dir)
    try:
        url = f"file://{client_dir}/feat"
        done = _run(fileset, "--scheduler", address, "--out", "relout", "--features-to", url, cwd=client_dir)
    finally:
        _stop(procs)
    line = _error_line(done)
    assert url in line
    assert "worker tcp://" in line
    assert "does not see" in line
    assert not (client_dir / "relout" / "histograms.coffea").exists()  # refused before the first chunk


def test_root_url_on_a_writable_xrootd_export_equals_a_local_run(tmp_path, real_nanoaod_files):
    fileset = _fileset(tmp_path, real_nanoaod_files["dy"])
    local = _local_tables(tmp_path, fileset)
    export = world_readable_dir("cms-anomaly-xrootd-out-")
    try:
        with xrootd_server(export, writable=True) as server:
            url = f"{server.url(export)}/feat"
            done = _run(fileset, "--executor", "iterative", "--out", "out", "--features-to", url, cwd=tmp_path)
            assert done.returncode == 0, done.stderr
            assert "Traceback" not in done.stderr
            _assert_same_tables(url, local, tmp_path / "local" / "features")
            assert sorted(p.name for p in (export / "feat").iterdir()) == ["dy", "manifest.json"]
            # an unfinished set (no manifest) is refused through the URL as on disk
            (export / "feat" / "manifest.json").unlink()
            with pytest.raises(FeatureTableError, match="no finished-run manifest"):
                table_files(url)
    finally:
        shutil.rmtree(export, ignore_errors=True)


def test_root_url_on_a_read_only_export_is_one_line_naming_it(tmp_path, real_nanoaod_files):
    fileset = _fileset(tmp_path, real_nanoaod_files["dy"])
    export = world_readable_dir("cms-anomaly-xrootd-ro-")
    try:
        with xrootd_server(export) as server:
            url = f"{server.url(export)}/feat"
            done = _run(fileset, "--executor", "iterative", "--out", "out", "--features-to", url, cwd=tmp_path)
    finally:
        shutil.rmtree(export, ignore_errors=True)
    line = _error_line(done)
    assert url in line
    assert "read/only" in line
    assert not (tmp_path / "out" / "histograms.coffea").exists()


def test_file_url_under_a_file_is_one_line(tmp_path, real_nanoaod_files):
    fileset = _fileset(tmp_path, real_nanoaod_files["dy"])
    (tmp_path / "afile").write_text("")
    url = f"file://{tmp_path}/afile/feat"
    done = _run(fileset, "--executor", "iterative", "--out", "out", "--features-to", url, cwd=tmp_path)
    assert url in _error_line(done)
