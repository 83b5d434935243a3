"""Worker processes of this project's pools and local Dask clusters: interrupts, the death of the parent,
and the one local Dask cluster set-up (:func:`local_cluster`).

A Ctrl-C reaches the whole process group: the workers ignore it, and the main process (the one that
started them) ends the run and prints one line. A worker of a pool dies with the process that started it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def pool_worker_init(parent: int) -> None:
    """Pool-worker initializer: the worker ignores interrupts (the main process answers Ctrl-C, once, and
    ends the pool) and is killed when the process that started it dies (Linux's ``PR_SET_PDEATHSIG``), so
    a killed run leaves no pool process behind."""
    import ctypes
    import signal
    import sys

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the call above
        os._exit(1)


@contextmanager
def interrupts_ignored() -> Iterator[None]:
    """Ignore SIGINT while worker processes are started, so that they inherit it: a Ctrl-C (sent to the
    whole process group) then reaches only the main process, which shuts the cluster down and prints one
    line, instead of every worker printing its own ``KeyboardInterrupt`` traceback."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


#: glibc malloc settings for the local cluster's worker processes. Dask's default
#: ``MALLOC_TRIM_THRESHOLD_=65536`` (hand freed memory back to the OS at once) also fixes glibc's
#: mmap threshold at 128 kB, so every array of a chunk (10-50 MB at the default chunk size) is a
#: fresh mmap whose pages fault in again: one worker ran 25 % slower than the same code in-process,
#: with 2.5 s of system time against 1.1 s per 180k events (``bench processor``). A 256 MB trim and
#: a 32 MB mmap threshold (glibc's maximum) let the heap reuse them, for ~0.1 GB more peak RSS per worker.
#: Only where the user's Dask configuration still has Dask's default; a ``--scheduler`` cluster's
#: workers keep their own.
WORKER_MALLOC_ENV = {"MALLOC_TRIM_THRESHOLD_": 256 * 2**20, "MALLOC_MMAP_THRESHOLD_": 32 * 2**20}
_DASK_DEFAULT_TRIM = 65536


def _worker_malloc_config() -> dict[str, Any]:
    """The ``distributed.nanny.pre-spawn-environ`` entries of :data:`WORKER_MALLOC_ENV` to set."""
    import dask

    current = dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {}
    out = {}
    for key, value in WORKER_MALLOC_ENV.items():
        if key not in current or (key == "MALLOC_TRIM_THRESHOLD_" and int(current[key]) == _DASK_DEFAULT_TRIM):
            out[f"distributed.nanny.pre-spawn-environ.{key}"] = value
    return out


#: the local cluster's workers run without Dask's statistical profiler (the dashboard's "Profile" page),
#: which samples the worker thread's stack every 10 ms (its cost, measured, is in the CHANGELOG). A
#: ``--scheduler`` cluster's workers keep their own setting.
WORKER_PROFILE_CONFIG = {"distributed.worker.profile.enabled": False}


class _QuietNannyKill:
    """Drops the nanny's "Worker process still alive after N seconds, killing" of a local cluster being
    closed: Dask gives a closing worker 4 s, a loaded machine's worker (torch and numba in memory) takes
    longer to exit and is killed, which loses nothing after the run; other nanny messages pass."""

    def filter(self, record: Any) -> bool:
        return not str(record.msg).startswith("Worker process still alive after")


#: the filter on this process's ``distributed.nanny`` logger: the nannies of a local cluster run here,
#: a ``--scheduler`` cluster's elsewhere
QUIET_NANNY_KILL = _QuietNannyKill()


def local_cluster(workers: int | None = None) -> Any:
    """A started ``dask.distributed.LocalCluster`` of ``workers`` single-threaded processes (default: one
    per CPU), without a dashboard; the caller closes it.

    Its workers ignore Ctrl-C (:func:`interrupts_ignored`), a worker killed as the cluster closes is not
    logged (:data:`QUIET_NANNY_KILL`), its workers get :data:`WORKER_MALLOC_ENV` where the Dask
    configuration has Dask's default, and run without the statistical profiler (:data:`WORKER_PROFILE_CONFIG`).
    """
    import logging

    import dask
    from dask.distributed import LocalCluster

    logging.getLogger("distributed.nanny").addFilter(QUIET_NANNY_KILL)
    with dask.config.set({**_worker_malloc_config(), **WORKER_PROFILE_CONFIG}), interrupts_ignored():
        return LocalCluster(
            n_workers=workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
