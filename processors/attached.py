"""Files the client names that the workers read: a data dataset's certified-luminosity JSON (metadata
``lumimask``) and the scale factors' correctionlib JSON (``[corrections] file``).

A worker on another machine does not see the client's disk. Before a run the client reads each such
local file (:func:`collect`) and the processor carries the bytes to every worker (it is pickled with
them, a few hundred kB for a CMS certification JSON); on the worker, :func:`carry` makes them known and
:func:`local_path` gives a copy written from the carried bytes into the worker's temporary directory,
named by the content's SHA-256 (so a worker never reads an older file of the same name). A URL is not
carried: every worker reads it where it lives.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from cms_anomaly.core.atomic import atomic_output
from cms_anomaly.processors.storage import is_url

#: the contents carried to this process: the client's path -> its bytes
_CARRIED: dict[str, bytes] = {}


def collect(paths: Iterable[str]) -> dict[str, bytes]:
    """The bytes of each local file among ``paths`` (URLs and missing files are left to the readers,
    whose errors name them)."""
    out = {}
    for path in paths:
        if not is_url(path) and Path(path).is_file():
            out[path] = Path(path).read_bytes()
    return out


def carry(contents: Mapping[str, bytes]) -> None:
    """Make the client's files ``contents`` (path -> bytes) readable in this process through :func:`local_path`."""
    _CARRIED.update(contents)


def local_path(path: str) -> str:
    """Where this process reads the client's file ``path``: a copy of the carried bytes, else ``path``."""
    data = _CARRIED.get(path)
    if data is None:
        return path
    target = (
        Path(tempfile.gettempdir()) / "cms-anomaly-carried" / f"{hashlib.sha256(data).hexdigest()}-{Path(path).name}"
    )
    if not target.is_file():
        with atomic_output(target) as tmp:
            tmp.write_bytes(data)
    return str(target)
