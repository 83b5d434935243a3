"""The one local Dask cluster set-up (``core.workers.local_cluster``), shared by event production and the
processor runner: its workers' malloc settings, profiler and Ctrl-C handling."""

from __future__ import annotations

import os
import signal

import pytest
from cms_anomaly.core import workers


def _worker_state() -> dict:
    import dask

    return {
        "malloc": {k: os.environ.get(k) for k in workers.WORKER_MALLOC_ENV},
        "profiling": bool(dask.config.get("distributed.worker.profile.enabled")),
        "sigint_ignored": signal.getsignal(signal.SIGINT) is signal.SIG_IGN,
    }


@pytest.mark.dask_client
def test_local_cluster_workers_get_the_project_worker_settings():
    from dask.distributed import Client

    cluster = workers.local_cluster(1)
    try:
        with Client(cluster) as client:
            state = list(client.run(_worker_state).values())
        assert len(cluster.workers) == 1
    finally:
        cluster.close()
    malloc = {k: str(v) for k, v in workers.WORKER_MALLOC_ENV.items()}
    assert state == [{"malloc": malloc, "profiling": False, "sigint_ignored": True}]


def test_worker_malloc_settings_respect_the_users_dask_configuration():
    """Dask's default trim threshold (64 kB) is replaced; a value the user configured is kept."""
    import dask
    import distributed  # noqa: F401 - registers the distributed.* configuration defaults

    key = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
    with dask.config.set({key: 65536}):
        assert workers._worker_malloc_config() == {
            key: 256 * 2**20,
            "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 32 * 2**20,
        }
    with dask.config.set({key: 1_000_000, "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 4096}):
        assert workers._worker_malloc_config() == {}


def _exit_slowly() -> None:
    """Run on a worker: its process takes 6 s to exit (a finalizer of multiprocessing, which runs as a
    worker process ends), longer than the 4 s its nanny waits before killing it."""
    import multiprocessing.util
    import time

    multiprocessing.util.Finalize(None, time.sleep, args=(6,), exitpriority=10)


@pytest.mark.dask_client
def test_a_worker_killed_as_the_local_cluster_closes_is_not_logged(caplog):
    import logging

    from dask.distributed import Client

    cluster = workers.local_cluster(1)
    try:
        with Client(cluster) as client:
            client.run(_exit_slowly)
    finally:
        with caplog.at_level(logging.INFO, logger="distributed.nanny"):
            cluster.close()
    messages = [r.getMessage() for r in caplog.records if r.name == "distributed.nanny"]
    assert messages, "the nanny logs its closing"
    assert not [m for m in messages if "still alive" in m], messages
