"""Facility clusters: a real dask-gateway server, an external scheduler whose worker lacks the project
(uploaded before the first chunk), a configured cluster class, and the one-line error of a worker that
lacks a package. Every component is started here, on loopback, and stopped after its test."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import dask
import pytest
from cms_anomaly.processors import cluster as facility
from cms_anomaly.processors import runner
from cms_anomaly.processors.processor import AnomalyProcessor

BIN = Path(sys.executable).parent
START_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(condition, what: str, procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not condition():
        dead = [p for p in procs if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start (exited: {[p.args for p in dead]})")
        time.sleep(0.2)


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in reversed(procs):  # workers before their scheduler
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in reversed(procs):
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _start(cmd: list[str], *, cwd: Path, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture
def dy_fileset(real_nanoaod_files):
    return {"dy": {"files": {str(real_nanoaod_files["dy"]): "Events"}, "metadata": {}}}


@pytest.fixture
def iterative_output(dy_fileset):
    with runner.make_executor("iterative") as ex:
        return runner.run_processor(dy_fileset, AnomalyProcessor(selection="inclusive"), executor=ex, chunksize=15)


def _assert_same(out, reference) -> None:
    """The cut-flow and every histogram of the Dask run equal the iterative run's."""
    assert out["dy"]["cutflow"] == reference["dy"]["cutflow"]
    assert out["dy"]["nevents"] == reference["dy"]["nevents"] == 40
    assert sorted(out["dy"]["hists"]) == sorted(reference["dy"]["hists"])
    for name, h in reference["dy"]["hists"].items():
        assert out["dy"]["hists"][name].values(flow=True).tolist() == h.values(flow=True).tolist(), name


@pytest.fixture
def gateway(tmp_path):
    """A dask-gateway server on loopback (local backend, simple auth): its ``gateway+http://`` address."""
    api, proxy = _free_port(), _free_port()
    config = tmp_path / "gateway_config.py"
    config.write_text(
        f'c.DaskGateway.address = "127.0.0.1:{api}"\n'
        f'c.Proxy.address = "127.0.0.1:{proxy}"\n'
        'c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"\n'
        'c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"\n'
        f'c.LocalBackend.clusters_directory = "{tmp_path / "clusters"}"\n'
        f'c.ClusterConfig.scheduler_cmd = "{BIN / "dask-scheduler"}"\n'
        f'c.ClusterConfig.worker_cmd = "{BIN / "dask-worker"}"\n'
        "c.ClusterConfig.worker_threads = 1\n"
    )
    server = _start([str(BIN / "dask-gateway-server"), "-f", str(config)], cwd=tmp_path, log=tmp_path / "gateway.log")

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{proxy}/api/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        _wait_for(healthy, "dask-gateway-server", [server])
        yield f"gateway+http://127.0.0.1:{proxy}"
    finally:
        _stop([server])


def _isolated_worker_env() -> dict[str, str]:
    """An environment whose Python sees the venv's packages but not the project: ``-S`` skips the ``.pth``
    files, among them the editable install's finder for ``cms_anomaly``."""
    return {**os.environ, "PYTHONNOUSERSITE": "1", "PYTHONPATH": sysconfig.get_paths()["purelib"]}


def _scheduler_address(file: Path) -> str | None:
    """The address in a scheduler file, ``None`` until the scheduler has written it whole."""
    try:
        return json.loads(file.read_text())["address"]
    except (OSError, ValueError, KeyError):
        return None


@pytest.fixture
def project_less_cluster(tmp_path_factory):
    """An external scheduler and one worker (with a nanny) that cannot import ``cms_anomaly``."""
    home = tmp_path_factory.mktemp("scheduler")
    elsewhere = tmp_path_factory.mktemp("worker-cwd")
    env = _isolated_worker_env()
    check = [
        sys.executable,
        "-S",
        "-c",
        "import coffea, hist\ntry:\n import cms_anomaly\nexcept ImportError: print('ok')",
    ]
    assert (
        subprocess.run(check, check=False, env=env, cwd=elsewhere, capture_output=True, text=True).stdout.strip()
        == "ok"
    )
    file = home / "scheduler.json"
    scheduler = [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
    procs = [
        _start(
            [*scheduler, "--scheduler-file", str(file)],
            cwd=home,
            log=home / "scheduler.log",
        )
    ]
    try:
        _wait_for(lambda: _scheduler_address(file) is not None, "dask scheduler", procs)
        worker = [sys.executable, "-S", str(BIN / "dask"), "worker", "--scheduler-file", str(file)]
        worker += ["--nworkers", "1", "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"]
        procs.append(_start(worker, cwd=elsewhere, log=elsewhere / "worker.log", env=env))
        yield _scheduler_address(file)
    finally:
        _stop(procs)


@pytest.mark.dask_client
def test_gateway_cluster_gives_the_iterative_cutflow(gateway, dy_fileset, iterative_output, caplog):
    with runner.make_executor("dask", scheduler=gateway, workers=1) as executor:
        workers = executor.client.scheduler_info()["workers"]
        out = runner.run_processor(dy_fileset, AnomalyProcessor(selection="inclusive"), executor=executor, chunksize=15)
    assert len(workers) == 1
    from dask_gateway import Gateway

    gateway_client = Gateway(facility.gateway_address(gateway))
    try:
        assert gateway_client.list_clusters() == []  # shut down on exit
    finally:
        facility._close_once(gateway_client)
    _assert_same(out, iterative_output)
    assert "dask-gateway http://127.0.0.1" in caplog.text
    assert "cms_anomaly 0.1.0" in caplog.text  # the probe reported the workers' project


@pytest.mark.dask_client
def test_project_is_uploaded_to_workers_that_lack_it(
    project_less_cluster, dy_fileset, iterative_output, monkeypatch, caplog
):
    from dask.distributed import Client

    with Client(project_less_cluster) as client:
        client.wait_for_workers(1, timeout=START_TIMEOUT_S)
        before = facility._probe(client, facility.REQUIRED_PACKAGES)
    assert [set(r["missing"]) for r in before.values()] == [{"cms_anomaly"}]  # the worker really lacks it

    with runner.make_executor("dask", scheduler=project_less_cluster) as executor:
        after = facility._probe(executor.client, facility.REQUIRED_PACKAGES)
        out = runner.run_processor(dy_fileset, AnomalyProcessor(selection="inclusive"), executor=executor, chunksize=15)
    (report,) = after.values()
    assert report["missing"] == {}
    assert "cms_anomaly_upload" in report["project"]["path"]  # the uploaded copy, not the checkout
    assert report["project"]["version"] == "0.1.0"
    assert report["project"]["digest"] == facility.source_digest()
    _assert_same(out, iterative_output)

    # a later run with other code on the client replaces the earlier run's copy; the same code keeps it
    monkeypatch.setattr(facility, "source_digest", lambda: "edited-on-the-client")
    with runner.make_executor("dask", scheduler=project_less_cluster) as executor:
        (again,) = facility._probe(executor.client, facility.REQUIRED_PACKAGES).values()
        assert again["project"]["digest"] == "edited-on-the-client"
        with caplog.at_level(logging.INFO, logger=facility.__name__):
            caplog.clear()
            facility.check_workers(executor.client)
    assert "uploading" not in caplog.text


@pytest.mark.dask_client
def test_a_worker_lacking_a_package_is_named_before_anything_runs(project_less_cluster):
    from dask.distributed import Client

    with Client(project_less_cluster) as client:
        with pytest.raises(facility.WorkerEnvironmentError) as err:
            facility.check_workers(client, required=(*facility.REQUIRED_PACKAGES, "no_such_pkg_xyz"))
        message = str(err.value)
        (worker,) = client.scheduler_info()["workers"]
        plugins = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.plugins))
    assert not [p for p in plugins if p.startswith("upload-directory")]  # nothing uploaded, nothing run
    assert "\n" not in message
    assert worker in message
    assert "no_such_pkg_xyz (client: not installed)" in message
    assert "cms_anomaly" not in message.split("cannot import")[1]  # the project is uploaded, not an error


@pytest.mark.dask_client
def test_the_dask_config_names_the_cluster_class(dy_fileset, iterative_output, caplog):
    spec = {
        "class": "distributed.LocalCluster",
        "options": {"name": "configured", "n_workers": 0, "threads_per_worker": 1, "dashboard_address": None},
    }
    with dask.config.set({facility.CLUSTER_CONFIG_KEY: spec}), runner.make_executor("dask", workers=1) as executor:
        assert executor.client.cluster.name == "configured"
        out = runner.run_processor(dy_fileset, AnomalyProcessor(selection="inclusive"), executor=executor, chunksize=15)
        assert len(executor.client.scheduler_info()["workers"]) == 1
    _assert_same(out, iterative_output)
    assert "starting distributed.LocalCluster from the Dask config cms-anomaly.cluster" in caplog.text


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_jobqueue_xyz.SLURMCluster", "'no_such_jobqueue_xyz' cannot be imported"),
        ("distributed.NoSuchCluster", "distributed has no class 'NoSuchCluster'"),
        ({"options": {"cores": 4}}, "expected a class path"),
    ],
)
def test_a_configured_cluster_that_cannot_start_is_named(spec, message):
    with (
        dask.config.set({facility.CLUSTER_CONFIG_KEY: spec}),
        pytest.raises(facility.ClusterConfigError) as err,
        runner.make_executor("dask", workers=1),
    ):
        pass  # pragma: no cover - entering raises
    assert message in str(err.value)
    assert facility.CLUSTER_CONFIG_KEY in str(err.value)


def test_gateway_addresses():
    assert facility.gateway_address("gateway+http://host:8000") == "http://host:8000"
    assert facility.gateway_address("gateway+https://host/") == "https://host/"
    assert facility.gateway_address("gateway://host:8786") is None  # dask-gateway's scheduler proxy scheme
    assert facility.gateway_address("tcp://host:8786") is None


def test_the_uploaded_tree_is_the_installed_package(tmp_path):
    """Every module and the package data of pyproject's package-data; no caches; the client's version."""
    import tomllib

    tree = facility.build_package_tree(tmp_path / "up")
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"]
    for package, folder in pyproject["package-dir"].items():
        relative = package.replace(".", "/")
        expected = {p.name for p in (Path(__file__).parents[1] / folder).glob("*.py")}
        assert {p.name for p in (tree / relative).glob("*.py")} == expected, package
        for pattern in pyproject["package-data"].get(package, []):
            assert sorted(p.name for p in (tree / relative).glob(pattern)) == sorted(
                p.name for p in (Path(__file__).parents[1] / folder).glob(pattern)
            )
            assert list((tree / relative).glob(pattern))
    assert not list(tree.rglob("__pycache__"))
    build = json.loads((tree / "cms_anomaly" / facility.BUILD_FILE).read_text())
    assert build["version"] == "0.1.0"
    assert build["digest"] == facility.source_digest()
