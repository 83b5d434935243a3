"""Collections held flat: per-event counts and flat numpy columns (:class:`FlatCollection`), on which the
object cuts, the isolation, the overlap removal and the pT ordering run as numba passes; the jagged
awkward record is built once, at the end (awkward's per-call overhead was half of a chunk's processing).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numba
import numpy as np


def jagged_parts(arr: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    """(counts per event, flat values) of a jagged numeric array, as numpy.

    A NanoAOD branch is a list-offset array of numbers: its offsets and values are read off the layout
    (no awkward operation, the values not copied); any other layout goes through ``ak.num`` / ``ak.flatten``.
    """
    layout = ak.to_layout(arr)
    if isinstance(layout, ak.contents.ListOffsetArray) and isinstance(layout.content, ak.contents.NumpyArray):
        offsets = np.asarray(layout.offsets.data, dtype=np.int64)
        values = np.asarray(layout.content.data)
        if values.ndim == 1:
            return np.diff(offsets), values[offsets[0] : offsets[-1]]
    counts = np.asarray(ak.to_numpy(ak.num(arr, axis=1)), dtype=np.int64)
    values = np.asarray(ak.to_numpy(ak.flatten(arr, axis=1)))
    return counts, values


def offsets_from_counts(counts: np.ndarray) -> np.ndarray:
    """Offsets (length N + 1, from 0) of the lists whose lengths are ``counts``."""
    return np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))


@numba.njit(cache=True, nogil=True)
def _pt_order_kernel(counts: Any, pt: Any) -> Any:  # pragma: no cover - compiled
    """Permutation ordering each event's objects by descending pT, ties in their original order
    (a stable insertion sort: events hold a handful of objects)."""
    perm = np.arange(len(pt))
    a0 = 0
    for ev in range(len(counts)):
        for i in range(a0 + 1, a0 + counts[ev]):
            j = i
            while j > a0 and pt[perm[j - 1]] < pt[perm[j]]:
                perm[j - 1], perm[j] = perm[j], perm[j - 1]
                j -= 1
        a0 += counts[ev]
    return perm


@dataclass(frozen=True)
class FlatCollection:
    """One collection of a chunk as per-event counts and flat numpy columns (the objects of event
    ``i`` are rows ``offsets[i]:offsets[i + 1]``): cuts, isolation, overlap removal and the pT ordering
    run on these, and :meth:`to_awkward` builds the jagged record once, at the end."""

    counts: np.ndarray
    columns: dict[str, np.ndarray]

    @classmethod
    def from_columns(cls, columns: dict[str, Any], dtypes: dict[str, Any]) -> FlatCollection:
        """From jagged columns of one collection (same counts), each cast to its ``dtypes`` entry."""
        counts: np.ndarray | None = None
        flat = {}
        for name, col in columns.items():
            c, values = jagged_parts(col)
            counts = c if counts is None else counts
            flat[name] = values.astype(dtypes[name], copy=False)
        if counts is None:
            raise ValueError("FlatCollection.from_columns: no columns")
        return cls(counts, flat)

    def __len__(self) -> int:
        """Number of events."""
        return len(self.counts)

    def events(self, mask: np.ndarray) -> FlatCollection:
        """The objects of the events where ``mask`` (one entry per event) is true."""
        keep = np.repeat(np.asarray(mask, dtype=bool), self.counts)
        return FlatCollection(self.counts[mask], {k: v[keep] for k, v in self.columns.items()})

    @functools.cached_property
    def offsets(self) -> np.ndarray:
        """Where each event's objects start (and, last, where the objects end)."""
        return offsets_from_counts(self.counts)

    def count(self, mask: np.ndarray) -> np.ndarray:
        """Per event, the number of its objects where the flat ``mask`` is true."""
        passed = offsets_from_counts(mask)
        return passed[self.offsets[1:]] - passed[self.offsets[:-1]]

    def nth(self, name: str, n: int, default: float = 0.0) -> np.ndarray:
        """Per event, column ``name`` of its ``n``-th object (0: the leading one once pT-ordered),
        ``default`` without one."""
        has = self.counts > n
        out = np.full(len(self.counts), default, dtype=np.float64)
        out[has] = self.columns[name][self.offsets[:-1][has] + n]
        return out

    def select(self, keep: np.ndarray) -> FlatCollection:
        """The objects where the flat mask ``keep`` is true."""
        if keep.all():
            return self
        return FlatCollection(self.count(keep), {k: v[keep] for k, v in self.columns.items()})

    def with_columns(self, **columns: np.ndarray) -> FlatCollection:
        """The same objects with ``columns`` added or replaced."""
        return FlatCollection(self.counts, {**self.columns, **columns})

    def sorted_by_pt(self) -> FlatCollection:
        """Each event's objects in descending pT (stable)."""
        perm = _pt_order_kernel(self.counts, self.columns["pt"])
        return FlatCollection(self.counts, {k: v[perm] for k, v in self.columns.items()})

    def keep_isolated_from(self, *others: FlatCollection, dr: float, min_pt_fraction: float = 0.0) -> np.ndarray:
        """Flat mask of the objects with no object of any of ``others`` within ``dR < dr`` (same event).

        With ``min_pt_fraction`` > 0 only an other object carrying more than that fraction of the object's
        pT removes it. One pass of :func:`_overlap_kernel` per collection of ``others``.
        """
        keep = np.ones(len(self.columns["pt"]), dtype=bool)
        a = self.columns
        for other in others:
            b = other.columns
            keep &= _overlap_kernel(
                self.counts,
                a["eta"],
                a["phi"],
                a["pt"],
                other.counts,
                b["eta"],
                b["phi"],
                b["pt"],
                float(dr),
                float(min_pt_fraction),
            )
        return keep

    def to_awkward(self) -> ak.Array:
        """The jagged record array (fields in column order)."""
        offsets = ak.index.Index64(self.offsets)
        record = ak.contents.RecordArray(
            [ak.contents.NumpyArray(v) for v in self.columns.values()],
            list(self.columns),
            length=int(offsets[-1]),
        )
        return ak.Array(ak.contents.ListOffsetArray(offsets, record))


@numba.njit(cache=True, nogil=True)
def _overlap_kernel(
    counts: Any, eta: Any, phi: Any, pt: Any, other_counts: Any, oeta: Any, ophi: Any, opt: Any, dr: float, frac: float
) -> Any:  # pragma: no cover - compiled
    """Keep-mask of the objects with no other object of their event within ``dR < dr`` (and, for
    ``frac`` > 0, with pT above ``frac`` times theirs); dR as :func:`cms_anomaly.processors.objects.delta_r` computes it."""
    keep = np.ones(len(eta), dtype=np.bool_)
    a0 = 0
    b0 = 0
    for ev in range(len(counts)):
        for a in range(a0, a0 + counts[ev]):
            for b in range(b0, b0 + other_counts[ev]):
                dphi = (phi[a] - ophi[b] + np.pi) % (2 * np.pi) - np.pi
                if np.hypot(eta[a] - oeta[b], dphi) < dr and (frac <= 0.0 or opt[b] > frac * pt[a]):
                    keep[a] = False
                    break
        a0 += counts[ev]
        b0 += other_counts[ev]
    return keep
