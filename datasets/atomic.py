"""Atomic outputs: every file this project writes appears complete under its final name or not at all.

A writer gets a temporary sibling path (``<name>.tmp-<pid>[suffix]``), and only a writer that
returns without an exception has its file renamed (``Path.replace``) onto the final path; after a
failure the temporary file is removed. Readers that scan directories skip ``*.tmp-*`` names.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_output(path: str | os.PathLike, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path to write; rename it onto ``path`` when the block succeeds.

    ``suffix`` is appended to the temporary name for writers that choose the format from the
    extension (XGBoost: ``.json``). The parent directory is created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}{suffix}")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_output(path) as tmp:
        tmp.write_text(text)
    return Path(path)


class OutputLockedError(RuntimeError):
    """Another run is writing into the same output directory (message names the lock file)."""


@contextmanager
def owned_directory(path: str | os.PathLike, *, replace: tuple[str, ...] = ()) -> Iterator[Path]:
    """Own the output directory ``path`` for one run: a lock against a concurrent run, and a fresh start.

    The lock is ``path/.lock`` created exclusively (holding the PID), removed on exit. The entries
    ``replace`` (e.g. ``"features"``) left by an earlier run are deleted first, so outputs of two
    runs never mix.

    Raises
    ------
    OutputLockedError
        ``path/.lock`` exists: another run is writing there (remove the file if none is).
    """
    import shutil

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    lock = path / ".lock"
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        owner = lock.read_text().strip() if lock.is_file() else "?"
        raise OutputLockedError(
            f"{path} is in use by another run (lock {lock}, pid {owner}); remove the lock file if no run is active"
        ) from None
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    try:
        for name in replace:
            stale = path / name
            if stale.is_dir():
                shutil.rmtree(stale)
            elif stale.exists():
                stale.unlink()
        yield path
    finally:
        lock.unlink(missing_ok=True)
