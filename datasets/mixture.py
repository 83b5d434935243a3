"""Pseudo-data: a luminosity-weighted, shuffled mixture of generated samples, labels kept apart.

For an anomaly search on "data" (seed 000, sec. 4) the generated processes are mixed as collision
data would contain them: at an integrated luminosity L, process p contributes a Poisson number of
events with mean sigma_p * L (sigma_p from the fileset metadata, including filter efficiencies).
Its events are taken from the start of the process's files (generated events are i.i.d., so this is
an unbiased sample), all processes are shuffled together with a seeded permutation, renumbered
(``run = 1``, ``luminosityBlock = 1 + i // 1000``, ``event = i + 1``) and written as NanoAOD with the
generator-level branches (``GenPart_*``, ``genWeight``, ``*_genPartIdx``, jet flavours) removed, as in real data. The true process of
each event is written to a separate ``labels.parquet`` (``event -> process``), which no training
step reads; it is only used to validate the result (e.g. the ttbar enrichment of a selection).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import awkward as ak
import numpy as np
import uproot
from cms_anomaly.core.atomic import atomic_output
from cms_anomaly.core.constants import SQRT_S
from cms_anomaly.datasets.nanoaod import write_nanoaod

log = logging.getLogger(__name__)

#: generator-level content that real collision data does not have
GENERATOR_PREFIXES = ("GenPart", "nGenPart", "genWeight", "Generator", "LHE", "nLHE")
GENERATOR_SUFFIXES = ("_genPartIdx", "_genPartFlav", "_hadronFlavour", "_partonFlavour", "_nBHadrons", "_nCHadrons")


class MixtureError(ValueError):
    """The requested mixture cannot be built; the message names the process and the numbers."""


def max_luminosity(fileset: dict, processes: Sequence[str]) -> float:
    """Largest luminosity (pb^-1) for which every process has enough generated events (at the mean)."""
    lumis = {}
    for p in processes:
        if p not in fileset:
            raise MixtureError(f"process {p!r} is not in the fileset (has: {sorted(fileset)})")
        meta = fileset[p]["metadata"]
        lumis[p] = meta["nevents"] / meta["xsec_pb"]
    return min(lumis.values())


def default_luminosity(fileset: dict, processes: Sequence[str], *, n_sigma: float = 3.0) -> float:
    """Largest L with sigma_p L + n_sigma sqrt(sigma_p L) <= N_p for every process p.

    Leaves room for the Poisson fluctuation of each yield above its mean.
    """
    max_luminosity(fileset, processes)  # validates the names
    lumis = []
    for p in processes:
        meta = fileset[p]["metadata"]
        root = (-n_sigma + np.sqrt(n_sigma**2 + 4 * meta["nevents"])) / 2
        lumis.append(root**2 / meta["xsec_pb"])
    return float(min(lumis))


def _read_events(files: Sequence[str], n: int) -> ak.Array:
    """The first ``n`` events of ``files`` (all branches but the generator-level ones)."""
    parts, remaining = [], n
    for path in files:
        if remaining <= 0:
            break
        with uproot.open(path) as f:
            tree = f["Events"]
            # uproot: iterating a tree yields its branches, keys() their names
            branches = tree.keys()
            names = [b for b in branches if not b.startswith(GENERATOR_PREFIXES) and not b.endswith(GENERATOR_SUFFIXES)]
            stop = min(remaining, tree.num_entries)
            parts.append(tree.arrays(names, entry_stop=stop, library="ak"))
            remaining -= stop
    if remaining > 0:
        raise MixtureError(f"asked for {n} events but the files hold only {n - remaining}: {list(files)[:3]}...")
    return ak.concatenate(parts) if len(parts) > 1 else parts[0]


def _to_collections(flat: ak.Array) -> dict[str, object]:
    """Regroup flat NanoAOD branches (``nMuon``, ``Muon_pt``, ...) into the writer's branch dict."""
    fields = flat.fields
    counters = {f[1:] for f in fields if f.startswith("n") and f[1:] and any(g.startswith(f[1:] + "_") for g in fields)}
    branches: dict[str, object] = {}
    for coll in sorted(counters):
        members = [f for f in fields if f.startswith(coll + "_")]
        branches[coll] = ak.zip({m[len(coll) + 1 :]: flat[m] for m in members}, depth_limit=2)
    grouped = {f for coll in counters for f in fields if f.startswith(coll + "_")} | {f"n{c}" for c in counters}
    for f in fields:
        if f not in grouped:
            branches[f] = ak.to_numpy(flat[f])
    return branches


def _poisson_counts(fileset: dict, processes: Sequence[str], lumi: float, rng: np.random.Generator) -> dict[str, int]:
    """Events of each process in the pseudo-data: a Poisson draw around cross section x ``lumi``, in process order."""
    counts = {}
    for p in processes:
        meta = fileset[p]["metadata"]
        if meta.get("tail_bias"):
            raise MixtureError(
                f"{p}: the sample is tail-weighted (generate --tail-bias, genWeight varies): pseudo-data takes "
                "events as they come and needs an unweighted production of it"
            )
        counts[p] = int(rng.poisson(meta["xsec_pb"] * lumi))
        if counts[p] > meta["nevents"]:
            raise MixtureError(
                f"{p}: {counts[p]} events needed at L = {lumi:.4g} pb^-1 but only {meta['nevents']} generated; "
                f"generate more or ask for L <= {meta['nevents'] / meta['xsec_pb']:.4g} pb^-1"
            )
    return counts


def build_pseudo_data(
    fileset: dict,
    *,
    processes: Sequence[str],
    out: str | os.PathLike,
    seed: int,
    lumi_pb: float | None = None,
    name: str = "data",
    events_per_file: int = 50_000,
) -> dict:
    """Write a pseudo-data sample and return its fileset entry.

    Parameters
    ----------
    fileset : dict
        coffea fileset with ``xsec_pb`` and ``nevents`` metadata (from ``cms-anomaly generate``).
    processes : sequence of str
        datasets to mix (e.g. ``["wjets", "zjets", "ttbar"]``).
    out : path-like
        output directory; files ``<name>_<k>.root`` and ``<name>_labels.parquet``.
    seed : int
        seed of the Poisson yields and of the shuffle.
    lumi_pb : float, optional
        integrated luminosity; default: :func:`default_luminosity` (the largest the samples allow with
        room for 3 sigma upward Poisson fluctuations).

    Returns
    -------
    dict
        ``{name: {"files": ..., "metadata": {"is_data": True, "lumi_pb": ..., ...}}}``
    """
    rng = np.random.default_rng(seed)
    lumi = default_luminosity(fileset, processes) if lumi_pb is None else float(lumi_pb)
    counts = _poisson_counts(fileset, processes, lumi, rng)
    log.info("pseudo-data at L = %.4g pb^-1: %s", lumi, counts)
    parts = [_read_events(sorted(fileset[p]["files"]), counts[p]) for p in processes if counts[p] > 0]
    labels = np.concatenate([np.full(counts[p], p, dtype=object) for p in processes if counts[p] > 0])
    events = ak.concatenate(parts)
    order = rng.permutation(len(events))
    events, labels = events[order], labels[order]
    n = len(events)
    events = ak.with_field(events, np.ones(n, dtype=np.uint32), "run")
    events = ak.with_field(events, (1 + np.arange(n) // 1000).astype(np.uint32), "luminosityBlock")
    events = ak.with_field(events, np.arange(1, n + 1, dtype=np.uint64), "event")

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for k, start in enumerate(range(0, n, events_per_file)):
        chunk = events[start : start + events_per_file]
        path = out / f"{name}_{k:04d}.root"
        runs = {"run": np.array([1], dtype=np.uint32)}
        write_nanoaod(path, [_to_collections(chunk)], runs=runs)
        files.append(str(path.resolve()))

    import pandas as pd

    label_path = out / f"{name}_labels.parquet"
    with atomic_output(label_path) as tmp:
        pd.DataFrame({"event": np.arange(1, n + 1, dtype=np.uint64), "process": labels.astype(str)}).to_parquet(tmp)
    return {
        name: {
            "files": dict.fromkeys(files, "Events"),
            "metadata": {
                "process": name,
                "is_data": True,
                "is_signal": False,
                "lumi_pb": lumi,
                "nevents": n,
                "seed": seed,
                "sqrt_s": fileset[processes[0]]["metadata"].get("sqrt_s", SQRT_S),
                "mixed_from": list(processes),
                "labels": str(label_path.resolve()),
            },
        }
    }
