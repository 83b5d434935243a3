"""Feature tables at an fsspec URL (``cms-anomaly run --features-to URL``): written by external Dask workers
started in another directory (``file://``) or through the tests' XRootD server (``root://``), read by
``train``'s loader; a URL a worker cannot write is refused in one line before the first chunk; the tables at
a URL are read only once the manifest is written, and a run starting there removes the previous one."""

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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_file_url_under_a_file_is_one_line(tmp_path, real_nanoaod_files):
    fileset = _fileset(tmp_path, real_nanoaod_files["dy"])
    (tmp_path / "afile").write_text("")
    url = f"file://{tmp_path}/afile/feat"
    done = _run(fileset, "--executor", "iterative", "--out", "out", "--features-to", url, cwd=tmp_path)
    assert url in _error_line(done)


def _chunk_table(events: list[int]):
    import pyarrow as pa

    return pa.table({"event": pa.array(events, type=pa.int64())}, metadata={b"cms_anomaly.needs_met": b"[]"})


def test_tables_at_a_file_url_are_read_only_with_the_manifest_written_last(tmp_path):
    from cms_anomaly.processors import feature_io, runner

    url = f"file://{tmp_path}/feat"
    paths = [
        feature_io.table_path(url, dataset="dy", file_id="f", entrystart=a, entrystop=b) for a, b in ((20, 40), (0, 20))
    ]
    assert all(isinstance(p, str) and p.startswith(f"{url}/dy/dy__f__") for p in paths)
    for k, path in enumerate(paths):
        feature_io.write_table(_chunk_table([2 * k, 2 * k + 1]), path)
    assert not list((tmp_path / "feat").rglob("*.tmp-*"))  # each moved onto its name
    with pytest.raises(FeatureTableError, match="no finished-run manifest"):
        table_files(url)
    runner._finish_feature_tables({"dy": {"feature_files": paths}}, url)
    assert table_files(url) == [paths[1], paths[0]]  # chunks in entry order
    assert table_files(f"{url}/dy") == table_files(url)
    assert list(read_feature_tables(url, columns=["event"], as_numpy=True)["event"]) == [2, 3, 0, 1]
    assert feature_io.needs_met(url) == frozenset()
    assert list_datasets(url) == ["dy"]
    # a run starting at the URL removes the previous manifest: readers refuse until it finishes
    runner._prepare_feature_tables(None, url)
    with pytest.raises(FeatureTableError, match="no finished-run manifest"):
        read_feature_tables(url)


def test_features_to_is_resolved_on_the_client(tmp_path, monkeypatch):
    from cms_anomaly.analyses.run import _features_location
    from cms_anomaly.processors import storage

    monkeypatch.chdir(tmp_path)
    assert _features_location("rel/feat") == f"file://{tmp_path}/rel/feat"
    assert _features_location("file://rel/feat") == f"file://{tmp_path}/rel/feat"
    assert _features_location("root://host:1094//eos/feat/") == "root://host:1094//eos/feat"
    assert storage.join("root://host:1094//eos/feat", "dy", "a.parquet") == "root://host:1094//eos/feat/dy/a.parquet"
    assert storage.relative("root://h:1//eos/feat/dy/a.parquet", "root://h:1//eos/feat") == "dy/a.parquet"
    assert not storage.is_url("C://x")
    assert not storage.is_url(tmp_path)
