"""Columnar helpers of the detector response on flat numpy arrays with per-event (or per-jet) offsets."""

from __future__ import annotations

import awkward as ak
import numba
import numpy as np


def kinematics(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pT, eta, phi) from Cartesian momenta; eta of a particle along the beam is +-20."""
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.where(pt > 0, np.arcsinh(pz / np.where(pt > 0, pt, 1.0)), np.sign(pz) * 20.0)
    return pt, eta, np.arctan2(py, px)


def _offsets(counts: np.ndarray) -> np.ndarray:
    """``[0, c0, c0 + c1, ...]`` (int64) of per-event counts."""
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def _unflatten(flat: dict[str, np.ndarray], counts: np.ndarray) -> ak.Array:
    """A jagged record array (events x objects) from flat numpy fields and per-event counts.

    Built from the awkward layout directly: ``ak.unflatten(ak.zip(flat, depth_limit=1), counts)`` gives
    the same array at ~10x the cost (it is called ~15 times per batch).
    """
    offsets = _offsets(np.asarray(counts))
    n = int(offsets[-1])
    for name, values in flat.items():
        if len(values) != n:
            raise ValueError(f"field {name!r} has {len(values)} entries, the counts sum to {n}")
    record = ak.contents.RecordArray(
        [ak.contents.NumpyArray(np.ascontiguousarray(v)) for v in flat.values()], list(flat), length=n
    )
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), record))


def _group_sum(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    return np.bincount(group, weights=values, minlength=n_groups)


@numba.njit(cache=True)
def _descending_within(values, offsets):
    """Indices ordering ``values`` by decreasing value inside each segment ``[offsets[k], offsets[k+1])``.

    Stable (ties keep their order), so equal to ``np.lexsort((-values, segment))`` at a third of its cost.
    """
    out = np.empty(len(values), dtype=np.int64)
    for k in range(len(offsets) - 1):
        lo, hi = offsets[k], offsets[k + 1]
        out[lo:hi] = lo + np.argsort(-values[lo:hi], kind="mergesort")
    return out
