"""Worker processes of this project's pools and local Dask clusters: interrupts and the death of the parent.

A Ctrl-C reaches the whole process group: the workers ignore it, and the main process (the one that
started them) ends the run and prints one line. A worker of a pool dies with the process that started it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


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
