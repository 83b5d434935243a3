"""Write NanoAOD-schema ROOT files with uproot.

Branch naming follows CMS NanoAOD (``nMuon``, ``Muon_pt``, ...): collections are written with
``mktree(..., field_name=lambda o, i: f"{o}_{i}", counter_name=lambda c: f"n{c}")`` and
``extend``. Collection branches carry the NanoAOD types (float32 kinematics, int32 ids, uint8
flags, bool ids); the counters ``n<Collection>`` are int32 (uproot writes ROOT counters as
``Int_t``; CMS writes ``UInt_t``), which NanoAODSchema and uproot read identically.

Files are written under a temporary name and moved into place only when complete.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import awkward as ak
import numpy as np
import uproot
from cms_anomaly.core.atomic import atomic_output

#: ZSTD level 5: fast to write and ~2x faster to read than LZMA (uproot's default for ROOT files is ZLIB)
COMPRESSION = uproot.ZSTD(5)


class NanoAODWriteError(RuntimeError):
    """Writing a NanoAOD file failed; the message names the file."""


def event_branches(
    *,
    run: np.ndarray,
    lumi: np.ndarray,
    event: np.ndarray,
    weight: np.ndarray | None,
    collections: Mapping[str, ak.Array],
) -> dict:
    """Assemble the ``Events`` branches of one batch: event ids, ``genWeight`` (none for ``weight=None``:
    collision data), flat ``MET_*`` and jagged collections."""
    branches: dict[str, object] = {
        "run": np.asarray(run, dtype=np.uint32),
        "luminosityBlock": np.asarray(lumi, dtype=np.uint32),
        "event": np.asarray(event, dtype=np.uint64),
    }
    if weight is not None:
        branches["genWeight"] = np.asarray(weight, dtype=np.float32)
    for name, arr in collections.items():
        if arr.ndim == 1:  # flat record, e.g. MET -> MET_pt, MET_phi
            for field in arr.fields:
                branches[f"{name}_{field}"] = ak.to_numpy(arr[field])
        else:
            branches[name] = arr
    return branches


def _branch_types(branches: Mapping[str, object]) -> dict[str, object]:
    types = {}
    for name, value in branches.items():
        if isinstance(value, np.ndarray):
            types[name] = value.dtype
        else:
            types[name] = value.type.content  # var * {fields}
    return types


def write_nanoaod(
    path: str | os.PathLike,
    batches: Iterable[Mapping[str, object]],
    *,
    runs: Mapping[str, np.ndarray] | Callable[[], Mapping[str, np.ndarray]],
) -> int:
    """Write ``Events`` (one ``extend`` per batch) and ``Runs`` to ``path`` atomically.

    Parameters
    ----------
    path : path-like
        Final file name; the data go to ``<path>.tmp-<pid>`` first and are renamed when complete.
    batches : iterable of dict
        Branch dictionaries from :func:`event_branches`, all with the same branch types.
    runs : dict or callable
        ``Runs`` tree content (``run``, ``genEventCount``, ``genEventSumw``, ``genEventSumw2``), or a
        callable returning it, called after the last batch (so counts can be final).

    Returns
    -------
    int
        number of events written.
    """
    path = Path(path)
    n_events = 0
    with atomic_output(path) as tmp, uproot.recreate(tmp, compression=COMPRESSION) as fout:
        tree = None
        for branches in batches:
            if tree is None:
                tree = fout.mktree(
                    "Events",
                    _branch_types(branches),
                    field_name=lambda outer, inner: f"{outer}_{inner}",
                    counter_name=lambda counted: f"n{counted}",
                )
            tree.extend(dict(branches))
            n_events += len(branches["event"])
        if tree is None:
            raise NanoAODWriteError(f"{path}: no events to write")
        runs_content = runs() if callable(runs) else runs
        fout["Runs"] = {key: np.asarray(value) for key, value in runs_content.items()}
    return n_events
