"""Atomic outputs: every file this project writes appears complete under its final name or not at all.

A writer gets a temporary sibling path (``<name>.tmp-<pid>[suffix]``), and only a writer that
returns without an exception has its file renamed (``Path.replace``) onto the final path; after a
failure the temporary file is removed. Readers that scan directories skip ``*.tmp-*`` names.

A run's output directory is owned (:func:`owned_directory`): a lock, and outputs staged in
``.staging`` that replace the previous run's only when the run has finished (:func:`staged_outputs`).
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


class OutputDirectoryError(OSError):
    """The output directory cannot be used: it is a file, lies under a file, or cannot be written."""


def usable_directory(path: str | os.PathLike) -> Path:
    """``path`` resolved to an absolute path and created, or one line saying why it cannot be an output
    directory (a file, under a file, not writable)."""
    path = Path(path).expanduser().resolve()
    for parent in [path, *path.parents]:
        if parent.exists():
            if not parent.is_dir():
                where = "is a file" if parent == path else f"lies under the file {parent}"
                raise OutputDirectoryError(f"output directory {path} {where}")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise OutputDirectoryError(f"output directory {path}: {parent} is not writable")
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputDirectoryError(f"output directory {path}: {err.strerror or err}") from err
    return path


def writer_alive(temporary: str | os.PathLike) -> bool:
    """Whether the process that writes the temporary file ``temporary`` (``<name>.tmp-<pid>[suffix]``, as
    :func:`atomic_output` names it) still runs on this host; ``False`` for a name without a PID."""
    import re

    match = re.search(r"\.tmp-(\d+)", Path(temporary).name)
    return match is not None and _pid_alive(int(match.group(1)))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _take_lock(path: Path) -> Path:
    """Create ``path/.lock`` (``pid host``); a lock of a dead process on this host is taken over with a warning."""
    import logging
    import socket

    lock = path / ".lock"
    host = socket.gethostname()
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            owner = lock.read_text().split() if lock.is_file() else []
            pid = int(owner[0]) if owner and owner[0].isdigit() else None
            same_host = len(owner) < 2 or owner[1] == host
            if pid is not None and same_host and not _pid_alive(pid):
                logging.getLogger(__name__).warning(
                    "%s: taking over the lock of process %d, which is gone (an interrupted run)", path, pid
                )
                lock.unlink(missing_ok=True)
                continue
            raise OutputLockedError(
                f"{path} is in use by another run (lock {lock}, pid {' on '.join(owner) or '?'}); "
                "remove the lock file if no run is active"
            ) from None
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()} {host}")
        return lock
    raise OutputLockedError(f"{path}: cannot take the lock {lock}")


#: where a run stages its outputs, where a commit keeps the previous ones until it is done, and the mark of
#: a staged run that finished (its commit may be completed by the next run)
_STAGING, _PREVIOUS, _COMMITTED = ".staging", ".previous", ".committed"


def _recover(path: Path) -> None:
    """Finish or undo a commit that was interrupted (see :func:`staged_outputs`); remove stale staging."""
    import shutil

    previous = path / _PREVIOUS
    staging = path / _STAGING
    if previous.is_dir():
        if (staging / _COMMITTED).exists():  # roll forward: the new run had finished
            for entry in sorted(staging.iterdir()):
                if entry.name != _COMMITTED:
                    _remove(path / entry.name)
                    entry.replace(path / entry.name)
        else:  # roll back: the previous results, unchanged
            for entry in sorted(previous.iterdir()):
                if not (path / entry.name).exists():
                    entry.replace(path / entry.name)
        shutil.rmtree(previous, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)


def _remove(entry: Path) -> None:
    import shutil

    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    else:
        entry.unlink(missing_ok=True)


def _commit(path: Path, staging: Path, names: tuple[str, ...], *, last: str | None) -> None:
    """Move the staged entries onto ``path``; the previous ones are kept in ``.previous`` until the end."""
    previous = path / _PREVIOUS
    previous.mkdir()
    (staging / _COMMITTED).touch()  # from here on an interrupted commit is finished by the next run
    order = [n for n in names if n != last] + ([last] if last in names else [])
    if last is not None and (path / last).exists():  # readers see "unfinished" while the entries move
        (path / last).replace(previous / last)
    for name in order:
        if (path / name).exists():
            (path / name).replace(previous / name)
        if (staging / name).exists():
            (staging / name).replace(path / name)
    _remove(previous)
    _remove(staging)


@contextmanager
def staged_outputs(path: str | os.PathLike, *, names: tuple[str, ...], last: str | None = None) -> Iterator[Path]:
    """Write a run's outputs into a staging directory; they replace the previous ones only when it succeeds.

    Yields ``path/.staging`` (fresh): write the entries ``names`` there. When the block returns they are
    moved onto ``path`` (``last``, e.g. the manifest, after all others); an earlier run's entries of
    those names are removed only then, and entries the new run did not write are removed as well, so
    outputs of two runs never mix. When the block raises (an error, an interrupt) the staging directory
    is removed and ``path`` keeps the previous results, untouched. A process killed during the moves
    leaves ``path/.previous``; the next run (:func:`owned_directory`) finishes the move if the new run had
    completed, else restores the previous entries.
    """
    path = Path(path)
    staging = path / _STAGING
    _remove(staging)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        _remove(staging)
        raise
    _commit(path, staging, names, last=last)


@contextmanager
def owned_directory(
    path: str | os.PathLike, *, replace: tuple[str, ...] = (), last: str | None = None
) -> Iterator[Path]:
    """Own the output directory ``path`` for one run: a lock against a concurrent run, staged outputs.

    The lock is ``path/.lock`` created exclusively (holding the PID and host), removed on exit; the lock
    of a process that no longer runs on this host is taken over with a warning. The run writes the
    entries ``replace`` into the yielded staging directory; see :func:`staged_outputs` for how they
    replace an earlier run's only once the run has finished (``last`` moved last).

    Raises
    ------
    OutputLockedError
        ``path/.lock`` is held by a running process (or one on another host).
    OutputDirectoryError
        ``path`` is a file, lies under one or cannot be written.
    """
    path = usable_directory(path)
    lock = _take_lock(path)
    try:
        _recover(path)
        with staged_outputs(path, names=replace, last=last) as staging:
            yield staging
    finally:
        lock.unlink(missing_ok=True)
