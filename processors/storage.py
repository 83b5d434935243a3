"""Outputs at an fsspec URL: where every worker and the client write and read feature tables.

A location is a local path or a URL with a scheme fsspec knows: ``file:///abs/dir``,
``root://host:port//abs/dir`` (fsspec-xrootd, installed with the project), or an object store
(``s3://bucket/dir`` and the like, once the user installs its fsspec filesystem, e.g. ``s3fs``).
A file is written under a temporary name and moved onto its final name (:func:`write_bytes`); on
object stores the move is a copy, so the finished state is declared by a manifest the client writes
last (:func:`~cms_anomaly.processors.feature_io.write_table_manifest`), which readers require.
"""

from __future__ import annotations

import posixpath
import re
import uuid
from pathlib import Path
from typing import Any

#: a URL: a scheme of two or more letters, then ``://`` (one letter is a Windows drive)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")


class OutputURLError(OSError):
    """An output URL that cannot be used: unknown protocol, unreachable, or a worker cannot write it."""


def is_url(location: str | Path) -> bool:
    """Whether ``location`` is a URL (``scheme://...``) rather than a local path."""
    return isinstance(location, str) and _URL.match(location) is not None


def resolve(location: str | Path) -> str:
    """``location`` as the client resolves it before anything is submitted: a local path made absolute,
    a ``file://`` URL with its path made absolute, any other URL unchanged (trailing ``/`` removed)."""
    if not is_url(location):
        return str(Path(location).expanduser().resolve())
    text = str(location)
    if text.startswith("file://"):
        return "file://" + str(Path(text[len("file://") :]).expanduser().resolve())
    return text.rstrip("/")


def join(base: str | Path, *parts: str) -> str:
    """``base/part/...`` for a path or a URL (URLs joined with ``/``, keeping ``//`` after the host)."""
    if not is_url(base):
        return str(Path(base, *parts))
    return posixpath.join(str(base), *parts)


def relative(path: str | Path, root: str | Path) -> str:
    """``path`` relative to ``root`` (both paths, or both URLs), ``/``-separated."""
    if not is_url(root):
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    prefix = str(root).rstrip("/") + "/"
    if not str(path).startswith(prefix):
        raise ValueError(f"{path} is not under {root}")
    return str(path)[len(prefix) :]


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem of ``url`` and the path on it; :class:`OutputURLError` when fsspec lacks
    the protocol (its message names the package to install)."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as err:
        raise OutputURLError(f"{url}: {err}") from err


def exists(location: str | Path) -> bool:
    """Whether a file or directory exists at ``location``."""
    if not is_url(location):
        return Path(location).exists()
    fs, path = filesystem(str(location))
    return bool(fs.exists(path))


def is_file(location: str | Path) -> bool:
    """Whether a file exists at ``location``."""
    if not is_url(location):
        return Path(location).is_file()
    fs, path = filesystem(str(location))
    return bool(fs.isfile(path))


def read_bytes(location: str | Path) -> bytes:
    """The bytes of the file at ``location``."""
    if not is_url(location):
        return Path(location).read_bytes()
    fs, path = filesystem(str(location))
    with fs.open(path, "rb") as f:
        return bytes(f.read())


def open_input(location: str | Path) -> Any:
    """A binary file object of ``location`` (for pyarrow's parquet readers); close it after use."""
    if not is_url(location):
        return Path(location).open("rb")
    fs, path = filesystem(str(location))
    return fs.open(path, "rb")


def write_bytes(url: str, data: bytes) -> str:
    """Write ``data`` to ``url``: into ``<name>.tmp-<random>`` beside it, then moved onto ``url`` (a rename
    on ``file://`` and XRootD, a copy on object stores, where the manifest written last decides)."""
    fs, path = filesystem(url)
    parent = posixpath.dirname(path)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        with fs.open(tmp, "wb") as f:
            f.write(data)
        fs.mv(tmp, path)
    finally:
        if fs.exists(tmp):
            fs.rm(tmp)
    return url


def remove(url: str) -> None:
    """Remove the file at ``url`` if it exists."""
    fs, path = filesystem(url)
    if fs.exists(path):
        fs.rm(path)


def _probe_url(url: str, token: str) -> str | None:
    """Run on a worker: ``None`` if it sees the token file the client wrote at ``url`` and writes
    ``token.<random>`` beside it, else why not (one line)."""
    import socket

    where = f"{socket.gethostname()} (cwd {Path.cwd()})"
    try:
        if not is_file(join(url, token)):
            return f"{where} does not see the client's {join(url, token)}"
        write_bytes(join(url, f"{token}.{uuid.uuid4().hex}"), b"")
    except (OSError, ValueError) as err:  # the worker's filesystem failure is the answer the client reports
        return f"{where}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return None


def check_workers_write(executor: Any, url: str) -> None:
    """Before the first chunk: the client writes a token file at ``url``, one small task per worker
    (Dask executors; the other executors run on this machine) writes a file beside it, and the client
    sees them all; else :class:`OutputURLError` in one line naming ``url`` and the first worker that
    cannot write there."""
    token = f".probe-{uuid.uuid4().hex}"
    try:
        write_bytes(join(url, token), b"")
    except OutputURLError:
        raise
    except (OSError, ValueError) as err:
        raise OutputURLError(f"cannot write the feature tables to {url} from the client: {_first_line(err)}") from err
    fs, path = filesystem(url)
    try:
        client = getattr(executor, "client", None)
        answers = {} if client is None else client.run(_probe_url, url, token)
        seen = _names(fs, path, token)
    finally:
        for name in _names(fs, path, token):
            fs.rm(posixpath.join(path, name))
    refused = {worker: why for worker, why in answers.items() if why is not None}
    if not refused and len(seen) < len(answers) + 1:
        refused = {"?": f"files written by the workers do not appear at {url}"}
    if refused:
        worker, why = next(iter(sorted(refused.items())))
        raise OutputURLError(
            f"worker {worker} cannot write the feature tables to {url} ({why}); "
            f"{len(refused)} of {len(answers)} workers refused"
        )


def _names(fs: Any, path: str, prefix: str) -> set[str]:
    """Names of the entries of directory ``path`` that start with ``prefix`` (some filesystems list full
    paths, XRootD bare names)."""
    names = (posixpath.basename(str(p).rstrip("/")) for p in fs.ls(path, detail=False))
    return {n for n in names if n.startswith(prefix)}


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"
