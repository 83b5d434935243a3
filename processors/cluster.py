"""Facility clusters: connecting to the Dask cluster the processor's chunks run on, and making sure its
workers can run them.

* ``tcp://host:8786`` (or ``tls://``): an existing scheduler, a plain ``Client(address)``;
* ``gateway+http://host:8000`` (or ``gateway+https://``): a new cluster on the dask-gateway server at
  ``http://host:8000``, scaled to ``workers`` and shut down on exit (the prefix keeps the address apart
  from dask-gateway's own ``gateway://`` scheduler-proxy scheme). Authentication is dask-gateway's
  config: ``gateway.auth.type`` (``DASK_GATEWAY__AUTH__TYPE``) and ``gateway.auth.kwargs``, default ``basic``;
* no scheduler, but the Dask config ``cms-anomaly.cluster`` names a class, e.g. ``{"class":
  "dask_jobqueue.SLURMCluster", "options": {...}}``: imported by name (dask-jobqueue is no dependency),
  built with ``options``, scaled.

Before the first chunk :func:`check_workers` runs one small task per worker: a missing third-party
package (:data:`REQUIRED_PACKAGES`) is one :class:`WorkerEnvironmentError`; a missing (or stale uploaded)
``cms_anomaly`` is uploaded with distributed's ``UploadDirectory`` and the workers are probed again.
The probe is shipped by value: the workers may lack this module.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: third-party packages a worker imports to run the processor
REQUIRED_PACKAGES = ("coffea", "awkward", "uproot", "numba", "numpy", "hist")
PROJECT, DISTRIBUTION = "cms_anomaly", "cms-anomaly"  # the project's import and distribution names
#: the project's sub-packages, each its own folder in a source checkout (pyproject's ``package-dir``)
SUBPACKAGES = ("core", "datasets", "processors", "models", "stats", "analyses", "benchmarks")
#: package data uploaded with the sources (pyproject's ``[tool.setuptools.package-data]``)
PACKAGE_DATA: dict[str, tuple[str, ...]] = {"datasets": ("cards/*.toml", "manifests/*.toml", "lumimasks/*.txt")}
#: the uploaded copy's version, commit and source digest, next to its ``__init__.py``
BUILD_FILE = "_build.json"
#: Dask config key naming a cluster class (and its keyword arguments) to start when no scheduler is given
CLUSTER_CONFIG_KEY = "cms-anomaly.cluster"
#: schemes of a dask-gateway server address: ``gateway+http://host:port`` is the server at ``http://host:port``
GATEWAY_SCHEMES = ("gateway+http://", "gateway+https://")
#: workers started on a gateway or configured cluster when the caller names no number
DEFAULT_WORKERS = 2
#: seconds to wait for the first worker (a batch system may queue the jobs) and for restarted workers
WORKER_TIMEOUT_S = 300.0


class WorkerEnvironmentError(RuntimeError):
    """The cluster's workers lack a package the processor imports (the message names workers and packages)."""


class ClusterConfigError(ValueError):
    """The Dask config ``cms-anomaly.cluster`` names a class that cannot be imported or is malformed."""


def gateway_address(scheduler: str | None) -> str | None:
    """The dask-gateway server's HTTP address of a ``gateway+http(s)://`` scheduler, else ``None``."""
    return scheduler.removeprefix("gateway+") if scheduler and scheduler.startswith(GATEWAY_SCHEMES) else None


def external_client(stack: ExitStack, *, scheduler: str | None, workers: int | None) -> Any | None:
    """A ``dask.distributed.Client`` of a facility cluster whose workers passed :func:`check_workers`.

    Parameters
    ----------
    stack
        Receives the clean-up (client closed; a gateway or configured cluster shut down).
    scheduler
        ``tcp://``/``tls://`` scheduler address, ``gateway+http(s)://`` dask-gateway server, or ``None``.
    workers
        Workers to scale a gateway or configured cluster to (default :data:`DEFAULT_WORKERS`).

    Returns
    -------
    Client or None
        ``None`` when neither a scheduler nor the Dask config ``cms-anomaly.cluster`` names a cluster
        (the caller starts its local one).
    """
    from dask.distributed import Client

    n = workers or DEFAULT_WORKERS
    address = gateway_address(scheduler)
    if address is not None:
        client = _gateway_client(stack, address, workers=n)
    elif scheduler:
        client = Client(scheduler)
        stack.callback(client.close)
    else:
        cluster = configured_cluster()
        if cluster is None:
            return None
        stack.callback(cluster.close)
        cluster.scale(n)
        client = Client(cluster)
        stack.callback(client.close)
    check_workers(client)
    return client


def _gateway_client(stack: ExitStack, address: str, *, workers: int) -> Any:
    """Start a cluster on the dask-gateway server at ``address``, scaled to ``workers``; its client."""
    from dask_gateway import Gateway

    gateway = Gateway(address)  # auth=None: dask-gateway's config (gateway.auth.type, default basic)
    stack.callback(_close_once, gateway)
    cluster = gateway.new_cluster()
    stack.callback(_close_once, cluster.gateway)  # the cluster's own Gateway, closed by its shutdown
    stack.callback(cluster.shutdown)
    log.info("dask-gateway %s: cluster %s, scaling to %d workers", address, cluster.name, workers)
    cluster.scale(workers)
    client = cluster.get_client(set_as_default=False)
    stack.callback(client.close)
    return client


def _close_once(gateway: Any) -> None:
    """Close a dask-gateway ``Gateway`` for good.

    Under distributed 2025.3 a closed ``Gateway``'s ``__del__`` closes it again and asks its stopped loop
    runner for the loop, which raises ("Exception ignored in: Gateway.__del__ ... RuntimeError"). Its
    ``__del__`` skips a Gateway without a loop runner: the stopped runner is dropped after the close.
    """
    gateway.close()
    if hasattr(gateway, "_loop_runner"):
        del gateway._loop_runner


def configured_cluster() -> Any | None:
    """The cluster the Dask config ``cms-anomaly.cluster`` names (not yet scaled), or ``None``.

    The value is a class path (``"dask_jobqueue.SLURMCluster"``) or a mapping with ``class`` and
    ``options`` (the class's keyword arguments).

    Raises
    ------
    ClusterConfigError
        The class's module is not installed, the class does not exist, or the value is malformed.
    """
    import dask

    spec = dask.config.get(CLUSTER_CONFIG_KEY, default=None)
    if not spec:
        return None
    if isinstance(spec, str):
        spec = {"class": spec}
    path = spec.get("class") if isinstance(spec, Mapping) else None
    options = (spec.get("options") or {}) if isinstance(spec, Mapping) else None
    if not isinstance(path, str) or "." not in path or not isinstance(options, Mapping):
        raise ClusterConfigError(
            f"Dask config {CLUSTER_CONFIG_KEY}: expected a class path or {{class: 'module.Class', options: "
            f"{{...}}}}, got {spec!r}"
        )
    module_name, _, class_name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ClusterConfigError(
            f"Dask config {CLUSTER_CONFIG_KEY} names {path}, but {module_name!r} cannot be imported ({err}); "
            f"install it (e.g. pip install {module_name.split('.')[0].replace('_', '-')})"
        ) from err
    cls = getattr(module, class_name, None)
    if not callable(cls):
        raise ClusterConfigError(f"Dask config {CLUSTER_CONFIG_KEY}: {module_name} has no class {class_name!r}")
    log.info("starting %s from the Dask config %s", path, CLUSTER_CONFIG_KEY)
    return cls(**options)


def project_identity() -> dict[str, str | None]:
    """Version, commit and location of the importable ``cms_anomaly`` (on the client or a worker).

    An uploaded copy carries its client's version, commit and source digest in ``_build.json``; an
    installed one has its distribution's version and, from a git checkout, the checkout's commit.
    """
    root = Path(importlib.import_module(PROJECT).__file__ or "").parent
    build = root / BUILD_FILE
    if build.is_file():
        info = json.loads(build.read_text())
        return {
            "version": info.get("version"),
            "commit": info.get("commit"),
            "path": str(root),
            "digest": info["digest"],
        }
    try:
        version: str | None = importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        version = None
    commit = None
    if (root.parent / ".git").exists():  # the checkout itself, not a repository the copy happens to sit in
        done = subprocess.run(
            ["git", "-C", str(root.parent), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
        )
        commit = done.stdout.strip() or None
    return {"version": version, "commit": commit, "path": str(root), "digest": None}


def probe_environment(required: tuple[str, ...]) -> dict[str, Any]:
    """Import ``required`` and the project where this runs; the report one worker sends back.

    Returns
    -------
    dict
        ``versions`` {package: version}, ``missing`` {package: import error}, ``project``
        (:func:`project_identity`, ``None`` when the project does not import).
    """
    versions: dict[str, str] = {}
    missing: dict[str, str] = {}
    for name in (*required, PROJECT):
        try:
            module = importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 - any import failure makes the package unusable; report it
            missing[name] = f"{type(err).__name__}: {err}"
        else:
            versions[name] = str(getattr(module, "__version__", "?"))
    project = project_identity() if PROJECT not in missing else None
    return {"versions": versions, "missing": missing, "project": project}


def _probe(client: Any, required: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """:func:`probe_environment` on every worker, shipped by value: the workers may lack this module."""
    import sys

    import cloudpickle

    module = sys.modules[__name__]
    registered = module.__name__ in cloudpickle.list_registry_pickle_by_value()
    if not registered:
        cloudpickle.register_pickle_by_value(module)
    try:
        reports = client.run(probe_environment, required, on_error="return")
    finally:
        if not registered:
            cloudpickle.unregister_pickle_by_value(module)
    return {
        worker: report if isinstance(report, dict) else {"versions": {}, "missing": {"probe": repr(report)}}
        for worker, report in reports.items()
    }


def check_workers(
    client: Any,
    *,
    required: tuple[str, ...] = REQUIRED_PACKAGES,
    upload: bool = True,
    timeout: float = WORKER_TIMEOUT_S,
) -> dict[str, dict[str, Any]]:
    """Check that every worker of ``client`` can run the processor; upload the project where it lacks it.

    Parameters
    ----------
    client
        A ``dask.distributed.Client``; at least one worker must join within ``timeout`` seconds.
    required
        Third-party packages the workers must import (default :data:`REQUIRED_PACKAGES`).
    upload
        Upload ``cms_anomaly`` (:func:`upload_project`) to workers that cannot import it.
    timeout
        Seconds to wait for the first worker and, after an upload, for the restarted workers.

    Returns
    -------
    dict
        {worker address: :func:`probe_environment` report}.

    Raises
    ------
    WorkerEnvironmentError
        No worker joined, a worker lacks a required package, or the project still does not import after
        the upload. Nothing has been submitted then.
    """
    _wait_for_workers(client, 1, timeout)
    reports = _probe(client, required)
    raise_for_missing(reports, ignore=(PROJECT,) if upload else ())
    lacking = sorted(w for w, r in reports.items() if PROJECT in r["missing"])
    uploaded = {r["project"]["digest"] for r in reports.values() if r["project"] and r["project"]["digest"]}
    stale = upload and bool(uploaded) and uploaded != {source_digest()}  # an earlier run's copy, other code
    if lacking or stale:
        log.info("%d of %d workers lack %s or run a stale upload: uploading it", len(lacking), len(reports), PROJECT)
        upload_project(client)
        _wait_for_workers(client, len(reports), timeout)
        reports = _probe(client, required)
        raise_for_missing(reports)
    client_identity = project_identity()
    for worker, report in sorted(reports.items()):
        identity = report["project"]
        log.info("worker %s: %s %s (commit %s)", worker, PROJECT, identity["version"], identity["commit"])
        if (identity["version"], identity["commit"]) != (client_identity["version"], client_identity["commit"]):
            log.warning(
                "worker %s runs %s %s (commit %s) from %s; the client has %s (commit %s)",
                *(worker, PROJECT, identity["version"], identity["commit"], identity["path"]),
                *(client_identity["version"], client_identity["commit"]),
            )
    return reports


def _wait_for_workers(client: Any, n: int, timeout: float) -> None:
    """Wait for ``n`` workers; a :class:`WorkerEnvironmentError` naming the scheduler if they do not come."""
    try:
        client.wait_for_workers(n, timeout=timeout)
    except TimeoutError as err:
        raise WorkerEnvironmentError(
            f"{client.scheduler.address}: fewer than {n} worker(s) joined within {timeout:g} s"
        ) from err


def raise_for_missing(reports: Mapping[str, Mapping[str, Any]], *, ignore: tuple[str, ...] = ()) -> None:
    """One :class:`WorkerEnvironmentError` naming the workers that lack packages, the packages and the
    client's versions of them; nothing if every worker imports all but ``ignore``."""
    lacking: dict[tuple[str, ...], list[str]] = {}
    for worker, report in sorted(reports.items()):
        names = tuple(sorted(set(report["missing"]) - set(ignore)))
        if names:
            lacking.setdefault(names, []).append(worker)
    if not lacking:
        return
    parts = []
    for names, workers in lacking.items():
        packages = ", ".join(f"{name} (client: {_client_version(name)})" for name in names)
        parts.append(f"{', '.join(workers)} cannot import {packages}")
    raise WorkerEnvironmentError(
        f"{sum(len(w) for w in lacking.values())} of {len(reports)} Dask workers lack packages the processor "
        f"imports: {'; '.join(parts)}; install them in the workers' environment"
    )


def _client_version(name: str) -> str:
    """The client's version of package ``name``, or ``not installed``."""
    if importlib.util.find_spec(name) is None:
        return "not installed"
    try:
        return importlib.metadata.version(DISTRIBUTION if name == PROJECT else name)
    except importlib.metadata.PackageNotFoundError:
        return str(getattr(importlib.import_module(name), "__version__", "?"))


def _package_files() -> list[tuple[Path, str]]:
    """(client file, path in the uploaded tree) of every source and package-data file of the project, as
    the client imports them (a source checkout maps ``cms_anomaly.processors`` to ``processors/``)."""
    files = []
    for sub in ("", *SUBPACKAGES):
        name, relative = (f"{PROJECT}.{sub}", f"{PROJECT}/{sub}") if sub else (PROJECT, PROJECT)
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError(f"{name} is not importable on the client: nothing to upload")
        source = Path(next(iter(spec.submodule_search_locations)))
        for pattern in ("*.py", *PACKAGE_DATA.get(sub, ())):
            files += [(path, f"{relative}/{path.relative_to(source)}") for path in sorted(source.glob(pattern))]
    return files


def source_digest() -> str:
    """SHA-256 of the client's project files (paths and contents): an uploaded copy is stale when it differs."""
    digest = hashlib.sha256()
    for path, relative in _package_files():
        digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def build_package_tree(target: Path) -> Path:
    """Lay the client's ``cms_anomaly`` out under ``target`` as an importable package; returns ``target``.

    The sources (``*.py``) and package data of each sub-package are copied (no ``__pycache__``), and
    ``_build.json`` records the client's version, commit and :func:`source_digest`.
    """
    identity = project_identity()
    for path, relative in _package_files():
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target / relative)
    build = {"version": identity["version"], "commit": identity["commit"], "digest": source_digest()}
    (target / PROJECT / BUILD_FILE).write_text(json.dumps(build, indent=1) + "\n")
    return target


def upload_project(client: Any) -> None:
    """Upload the client's ``cms_anomaly`` to every worker (and any that joins later) and restart them.

    ``UploadDirectory`` zips the tree of :func:`build_package_tree`; each worker's nanny unpacks it into
    its local directory, puts it on ``sys.path`` (``update_path``) and restarts its worker process
    (``restart_workers``), which inherits the path. Workers without a nanny do not get it (the probe that
    follows says so).
    """
    from distributed.diagnostics.plugin import UploadDirectory

    with tempfile.TemporaryDirectory(prefix="cms-anomaly-upload-") as staging:
        tree = build_package_tree(Path(staging) / "cms_anomaly_upload")
        # skip_words=(): the default skips any path with a "tests" or "docs" component, of the staging path too
        plugin = UploadDirectory(str(tree), restart_workers=True, update_path=True, skip_words=(), skip=())
    client.register_plugin(plugin)
