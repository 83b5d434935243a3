"""Rapidity-mass matrix (Chekanov et al., T5N10) built with numba over padded object arrays.

Object types, in order: jets that are not b-tagged, b-jets, muons, electrons, photons; up to
``n`` (default 10) of each, pT-ordered. Index 0 is MET; object ``k`` of type ``t`` sits at
``1 + t*n + k``; the matrix is ``(1 + T*n)^2`` (51 x 51 for T5N10), float32. Cells (Chekanov et al., sec. 2):

- (0,0): ET_miss / sqrt(s)
- (0,i): transverse mass of object i with MET / sqrt(s)
- (i,0): cosh(y_i) - 1
- (i,i): ET_i / sqrt(s) for the leading object of a type, else (ET_{k-1} - ET_k) / (ET_{k-1} + ET_k)
- (i,j), i < j: m_ij / sqrt(s)
- (i,j), i > j: cosh((y_i - y_j) / 2) - 1

with E_T = sqrt(pT^2 + m^2) and y the rapidity. Empty cells are 0.

The kernel loops over events inside numba (compiled), touching only the filled slots of
the padded ``(N, T*n)`` arrays: this is the columnar form of a per-event matrix.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numba
import numpy as np
from cms_anomaly.core.constants import SQRT_S
from cms_anomaly.processors.config import RMM_N_PER_TYPE
from cms_anomaly.processors.flat import FlatCollection

#: the RMM object types in matrix order
RMM_TYPES: tuple[str, ...] = ("jet", "bjet", "muon", "electron", "photon")
#: the 14 leading-object invariant masses read off the RMM (type pairs; same type = the two leading
#: objects). The paper counts 14 from five types without listing them; we take the 15 type pairs
#: and drop photon-photon (a diphoton resonance is not among the benchmark signals).
M_LEAD_PAIRS: tuple[tuple[str, str], ...] = tuple(
    (a, b) for i, a in enumerate(RMM_TYPES) for b in RMM_TYPES[i:] if (a, b) != ("photon", "photon")
)
_SHORT = {"jet": "j", "bjet": "b", "muon": "mu", "electron": "e", "photon": "gamma"}
#: names of the 14 masses, e.g. ``m_j_j``, ``m_j_b``, ``m_mu_mu``
M_LEAD_NAMES: tuple[str, ...] = tuple(f"m_{_SHORT[a]}_{_SHORT[b]}" for a, b in M_LEAD_PAIRS)


def rmm_size(n_types: int = len(RMM_TYPES), n_per_type: int = RMM_N_PER_TYPE) -> int:
    """Matrix dimension 1 + T*N."""
    return 1 + n_types * n_per_type


#: the matrix dimension of T5N10, the shape of the feature tables' ``rmm`` column and of the models' input
RMM_SIZE: int = rmm_size()


@numba.njit(cache=True, nogil=True)
def _pad_kernel(counts: Any, values: Any, n: Any, out: Any, col0: Any) -> Any:  # pragma: no cover - compiled
    k = 0
    for ev in range(len(counts)):
        c = counts[ev]
        for j in range(c):
            if j < n:
                out[ev, col0 + j] = values[k + j]
        k += c


def pad_objects(
    collections: Sequence[ak.Array | FlatCollection], *, n_per_type: int = RMM_N_PER_TYPE
) -> dict[str, np.ndarray]:
    """Pad ``T`` collections (fields pt, eta, phi, mass; flat or jagged) into (N, T*n) float64 arrays.

    Objects beyond ``n_per_type`` are dropped; empty slots have pt = 0. Collections must
    already be pT-ordered.
    """
    n_events = len(collections[0]) if collections else 0
    width = len(collections) * n_per_type
    out = {k: np.zeros((n_events, width)) for k in ("pt", "eta", "phi", "mass")}
    for t, given in enumerate(collections):
        coll = (
            given
            if isinstance(given, FlatCollection)
            else FlatCollection.from_columns({k: given[k] for k in out}, dict.fromkeys(out, np.float64))
        )
        for key, arr in out.items():
            _pad_kernel(coll.counts, np.asarray(coll.columns[key], dtype=np.float64), n_per_type, arr, t * n_per_type)
    return out


@numba.njit(cache=True, nogil=True)
def _rmm_event(
    pt: Any,
    eta: Any,
    phi: Any,
    mass: Any,
    met: Any,
    met_phi: Any,
    ev: Any,
    n_per_type: Any,
    inv_s: Any,
    work: Any,
    idx: Any,
    cells: Any,
) -> Any:  # pragma: no cover - compiled
    """Write event ``ev``'s non-empty cells into ``cells`` (2-D, zero elsewhere); return the number of
    filled slots, whose indices are ``idx[:n]`` (the cells written: (0, 0), row and column 0 and the
    (r, c) of filled slots r, c >= 1)."""
    n_slots = pt.shape[1]
    px, py, pz, en, et, rap = work[0], work[1], work[2], work[3], work[4], work[5]
    mx = met[ev] * math.cos(met_phi[ev])
    my = met[ev] * math.sin(met_phi[ev])
    cells[0, 0] = met[ev] * inv_s
    n_valid = 0
    for i in range(n_slots):
        p = pt[ev, i]
        if p <= 0.0:
            continue
        px[i] = p * math.cos(phi[ev, i])
        py[i] = p * math.sin(phi[ev, i])
        pz[i] = p * math.sinh(eta[ev, i])
        m = mass[ev, i]
        en[i] = math.sqrt(px[i] * px[i] + py[i] * py[i] + pz[i] * pz[i] + m * m)
        et[i] = math.sqrt(p * p + m * m)
        rap[i] = 0.5 * math.log((en[i] + pz[i]) / (en[i] - pz[i])) if en[i] > abs(pz[i]) else 0.0
        idx[n_valid] = i
        n_valid += 1
    for a in range(n_valid):
        i = idx[a]
        r = i + 1
        # MET row: transverse mass; MET column: longitudinal (h_L) term
        etsum = et[i] + met[ev]
        qx = px[i] + mx
        qy = py[i] + my
        cells[0, r] = math.sqrt(max(etsum * etsum - qx * qx - qy * qy, 0.0)) * inv_s
        cells[r, 0] = math.cosh(rap[i]) - 1.0
        k = i % n_per_type
        if k == 0:
            cells[r, r] = et[i] * inv_s
        else:
            prev = et[i - 1]
            cells[r, r] = (prev - et[i]) / (prev + et[i])
        for b in range(a + 1, n_valid):
            j = idx[b]
            c = j + 1
            e2 = en[i] + en[j]
            sx = px[i] + px[j]
            sy = py[i] + py[j]
            sz = pz[i] + pz[j]
            cells[r, c] = math.sqrt(max(e2 * e2 - sx * sx - sy * sy - sz * sz, 0.0)) * inv_s
            cells[c, r] = math.cosh(0.5 * (rap[i] - rap[j])) - 1.0
    return n_valid


@numba.njit(cache=True, nogil=True)
def _count_cell(cells: Any, u: Any, v: Any, w: Any, sumw: Any, sumw2: Any, clear: Any) -> Any:  # pragma: no cover
    """Add ``w`` (and ``w**2``) to the occupancy of cell (u, v) if it is non-zero; zero it if ``clear``."""
    if cells[u, v] != 0:
        sumw[u, v] += w
        sumw2[u, v] += w * w
        if clear:
            cells[u, v] = 0.0


@numba.njit(cache=True, nogil=True)
def _rmm_kernel(
    pt: Any,
    eta: Any,
    phi: Any,
    mass: Any,
    met: Any,
    met_phi: Any,
    n_per_type: Any,
    sqrt_s: Any,
    weights: Any,
    lead_rows: Any,
    lead_cols: Any,
    out: Any,
    lead: Any,
    sumw: Any,
    sumw2: Any,
) -> Any:  # pragma: no cover - compiled
    """Every event's matrix, into ``out[ev]`` when ``out`` holds one per event, else into one float32
    scratch matrix whose written cells are zeroed again; the leading masses and the weighted occupancy of
    the non-zero cells are read off it in the same pass."""
    n_events, n_slots = pt.shape
    keep = out.shape[0] == n_events
    scratch = np.zeros((n_slots + 1, n_slots + 1), dtype=np.float32)
    work = np.empty((6, n_slots))
    idx = np.empty(n_slots, dtype=np.int64)
    inv_s = 1.0 / sqrt_s
    for ev in range(n_events):
        cells = out[ev] if keep else scratch
        n_valid = _rmm_event(pt, eta, phi, mass, met, met_phi, ev, n_per_type, inv_s, work, idx, cells)
        for k in range(len(lead_rows)):
            lead[ev, k] = np.float64(cells[lead_rows[k], lead_cols[k]]) * sqrt_s
        # the cells _rmm_event wrote: (0, 0), row and column 0 and the pairs of filled slots
        w = weights[ev]
        _count_cell(cells, 0, 0, w, sumw, sumw2, not keep)
        for a in range(n_valid):
            r = idx[a] + 1
            _count_cell(cells, r, 0, w, sumw, sumw2, not keep)
            _count_cell(cells, 0, r, w, sumw, sumw2, not keep)
            _count_cell(cells, r, r, w, sumw, sumw2, not keep)
            for b in range(a + 1, n_valid):
                c = idx[b] + 1
                _count_cell(cells, r, c, w, sumw, sumw2, not keep)
                _count_cell(cells, c, r, w, sumw, sumw2, not keep)


@dataclass(frozen=True)
class RMMSummary:
    """What the processor reads off the RMMs of a chunk.

    ``leading``: :func:`leading_masses` (N, 14); ``sumw``, ``sumw2``: per cell, the sum of the weights
    (and squared weights) of the events in which the cell is non-zero (the ``rmm_occupancy`` histogram);
    ``rmm``: the (N, S, S) float32 matrices when kept, else None.
    """

    leading: np.ndarray
    sumw: np.ndarray
    sumw2: np.ndarray
    rmm: np.ndarray | None = None


def _rmm_pass(
    padded: dict[str, np.ndarray],
    met: np.ndarray,
    met_phi: np.ndarray,
    weights: np.ndarray | None,
    *,
    keep: bool,
    n_per_type: int,
    sqrt_s: float,
) -> RMMSummary:
    """:func:`_rmm_kernel` on padded objects (see :func:`pad_objects`); ``weights`` None: 1 per event."""
    pt, eta, phi, mass, met64, met_phi64 = (
        np.ascontiguousarray(a, dtype=np.float64)
        for a in (padded["pt"], padded["eta"], padded["phi"], padded["mass"], met, met_phi)
    )
    n_events, n_slots = pt.shape
    if n_slots % n_per_type:
        raise ValueError(f"padded arrays have {n_slots} slots, not a multiple of n_per_type={n_per_type}")
    size = 1 + n_slots
    rows, cols = _leading_cells(n_per_type)
    w = np.ones(n_events) if weights is None else np.ascontiguousarray(weights, dtype=np.float64)
    rmm = np.zeros((n_events if keep else 0, size, size), dtype=np.float32)
    out = RMMSummary(np.zeros((n_events, len(rows))), np.zeros((size, size)), np.zeros((size, size)))
    if n_events:
        _rmm_kernel(
            pt, eta, phi, mass, met64, met_phi64, n_per_type, float(sqrt_s), w, rows, cols, rmm, out.leading,
            out.sumw, out.sumw2,
        )  # fmt: skip
    return dataclasses.replace(out, rmm=rmm) if keep else out


def rmm_from_padded(
    padded: dict[str, np.ndarray],
    met: np.ndarray,
    met_phi: np.ndarray,
    *,
    n_per_type: int = RMM_N_PER_TYPE,
    sqrt_s: float = SQRT_S,
) -> np.ndarray:
    """RMM (N, 1+T*n, 1+T*n) float32 from padded object arrays (see :func:`pad_objects`).

    Parameters
    ----------
    padded
        ``pt, eta, phi, mass`` arrays of shape (N, T*n); pt = 0 marks an empty slot.
    met, met_phi
        Missing transverse momentum magnitude and direction, shape (N,).
    n_per_type
        Slots per object type.
    sqrt_s
        Centre-of-mass energy (GeV) used to make the cells dimensionless.
    """
    rmm = _rmm_pass(padded, met, met_phi, None, keep=True, n_per_type=n_per_type, sqrt_s=sqrt_s).rmm
    assert rmm is not None
    return rmm


def build_rmm(
    collections: Sequence[ak.Array | FlatCollection],
    met: np.ndarray,
    met_phi: np.ndarray,
    *,
    n_per_type: int = RMM_N_PER_TYPE,
    sqrt_s: float = SQRT_S,
) -> np.ndarray:
    """RMM from the ``T`` pT-ordered jagged collections in :data:`RMM_TYPES` order (N, 51, 51 for T5N10)."""
    padded = pad_objects(collections, n_per_type=n_per_type)
    return rmm_from_padded(padded, met, met_phi, n_per_type=n_per_type, sqrt_s=sqrt_s)


def rmm_summary(
    collections: Sequence[ak.Array | FlatCollection],
    met: np.ndarray,
    met_phi: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    keep_matrices: bool = False,
    n_per_type: int = RMM_N_PER_TYPE,
    sqrt_s: float = SQRT_S,
) -> RMMSummary:
    """Leading masses and weighted cell occupancy (``weights`` None: 1 per event) of the RMMs of the ``T``
    pT-ordered collections in :data:`RMM_TYPES` order, in one pass; the matrices only with ``keep_matrices``.

    Without the matrices one scratch matrix serves every event, so a chunk of 50k events saves the 520 MB
    array (its allocation and page faults); the numbers are the same, bit for bit, either way.
    """
    padded = pad_objects(collections, n_per_type=n_per_type)
    return _rmm_pass(padded, met, met_phi, weights, keep=keep_matrices, n_per_type=n_per_type, sqrt_s=sqrt_s)


def _leading_cells(n_per_type: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of each of the :data:`M_LEAD_PAIRS` masses in the upper triangle."""
    rows, cols = [], []
    for a, b in M_LEAD_PAIRS:
        rows.append(1 + RMM_TYPES.index(a) * n_per_type)
        cols.append(1 + RMM_TYPES.index(b) * n_per_type + (1 if a == b else 0))
    return np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)


def leading_masses(rmm: np.ndarray, *, n_per_type: int = RMM_N_PER_TYPE, sqrt_s: float = SQRT_S) -> np.ndarray:
    """The 14 leading-object invariant masses (GeV), shape (N, 14), in :data:`M_LEAD_NAMES` order.

    Read from the upper triangle: for types a != b the leading objects, for a == b the two
    leading objects of that type. 0 where an object is missing.
    """
    rows, columns = _leading_cells(n_per_type)
    return rmm[:, rows, columns].astype(np.float64) * sqrt_s


def occupied_cells(rmm: np.ndarray) -> np.ndarray:
    """Boolean (51, 51) mask of cells that are non-zero in at least one event."""
    return np.any(rmm != 0, axis=0)


def apply_cell_mask(rmm: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Keep only the masked cells: (N, 51, 51) -> (N, n_kept), row-major cell order."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != rmm.shape[1:]:
        raise ValueError(f"cell mask shape {mask.shape} does not match RMM cells {rmm.shape[1:]}")
    return rmm.reshape(len(rmm), -1)[:, mask.ravel()]
