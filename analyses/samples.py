"""The muon + jets samples of ``rediscover-top`` and ``hunt``: the SM productions, pseudo-data and real data.

Both jobs compare (pseudo-)data with an independent simulation of the same processes: W(mu nu)+jet,
Z/gamma*(mu mu)+jet and ttbar (QCD optionally), generated at the data's sqrt(s). Without a data
fileset a second production is mixed into pseudo-data (:mod:`~cms_anomaly.datasets.mixture`), with
an injected BSM card when asked.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from cms_anomaly.analyses.analysis import Execution
from cms_anomaly.core.constants import SQRT_S

#: role in the analysis -> process card
PROCESSES: dict[str, str] = {"wjets": "wmunu_jets", "zjets": "zmumu_jets", "ttbar": "ttbar"}
#: the roles of the background model without the rare process
BACKGROUNDS = ("wjets", "zjets")
#: legend labels of the roles
ROLE_LABELS: dict[str, str] = {
    "wjets": r"W($\mu\nu$)+jets",
    "zjets": r"Z/$\gamma^*$($\mu\mu$)+jets",
    "ttbar": r"$t\bar{t}$",
}


class SamplesError(RuntimeError):
    """The samples cannot be built; the message says which file or setting and why."""


def load_data_fileset(path: str | os.PathLike) -> tuple[dict, float, float]:
    """The ``is_data`` datasets of a fileset JSON merged into one ``data`` entry; (entry, lumi_pb, sqrt_s)."""
    from cms_anomaly.processors.runner import load_fileset

    fileset = load_fileset(path)
    data = {name: e for name, e in fileset.items() if e.get("metadata", {}).get("is_data")}
    if not data:
        raise SamplesError(f"{path}: no dataset with metadata is_data = true (datasets: {sorted(fileset)})")
    lumi, energies = 0.0, set()
    for name, entry in data.items():
        meta = entry["metadata"]
        if not meta.get("lumi_pb"):
            raise SamplesError(f"{path}: data set {name!r} has no lumi_pb in its metadata")
        lumi += float(meta["lumi_pb"])
        energies.add(float(meta.get("sqrt_s", SQRT_S)))
    if len(energies) != 1:
        raise SamplesError(f"{path}: data sets at different sqrt(s) {sorted(energies)}")
    sqrt_s = energies.pop()
    files = {f: tree for entry in data.values() for f, tree in entry["files"].items()}
    entry = {
        "files": files,
        "metadata": {
            "process": "data",
            "is_data": True,
            "is_signal": False,
            "lumi_pb": lumi,
            "sqrt_s": sqrt_s,
            "datasets": sorted(data),
        },
    }
    return {"data": entry}, lumi, sqrt_s


def make_samples(
    samples_dir: Path,
    *,
    events: dict[str, int],
    seed: int,
    execution: Execution,
    ttbar_scale: float,
    data_fileset: str | None = None,
    qcd_events: int | None = None,
    inject: str | None = None,
    signal_fraction: float = 0.0,
    simulation_seed: int | None = None,
    roles: dict[str, str] | None = None,
    tail_bias: bool = False,
) -> tuple[dict, dict]:
    """Generate (or reuse) the productions in ``samples_dir``; return (simulation fileset, data fileset entry).

    ``events``: generated events per role (:data:`PROCESSES`) of each production; ``qcd_events``
    adds QCD with that many. Without ``data_fileset`` two productions: one mixed into pseudo-data,
    one the simulation; with it, the simulation only, at the data's centre-of-mass energy.
    ``ttbar_scale``: the ttbar cross section in units of Pythia's, in (pseudo-)data and simulation alike.
    ``inject``: a BSM card generated too and hidden in the pseudo-data as ``signal_fraction`` of its
    events (before any selection; the SM yields keep their luminosity). ``simulation_seed`` (default
    ``seed + 1000``): one simulation can serve pseudo-data of many seeds. ``roles`` (default
    :data:`PROCESSES`): role -> card of another background model (the SM cocktail of the class hunt);
    ``tail_bias``: the simulation generated with the cards' phase-space bias (the pseudo-data
    production stays unweighted: :mod:`~cms_anomaly.datasets.mixture` needs it).
    """
    from cms_anomaly.datasets import production

    roles = dict(PROCESSES if roles is None else roles)
    events = dict(events)
    if qcd_events is not None:
        roles["qcd"] = "qcd"
        events["qcd"] = qcd_events
    real = load_data_fileset(data_fileset) if data_fileset else None
    sqrt_s = real[2] if real else production.SQRT_S
    sim_seed = seed + 1000 if simulation_seed is None else int(simulation_seed)
    run = {
        "executor": execution.production_executor,
        "scheduler": execution.scheduler,
        "workers": execution.workers,
        "sqrt_s": sqrt_s,
    }
    productions = (("simulation", sim_seed),) if real else (("data", seed), ("simulation", sim_seed))
    filesets = {}
    for label, production_seed in productions:
        result = production.produce(
            list(roles.values()),
            out=samples_dir / label,
            events={card: events[role] for role, card in roles.items()},
            seed=production_seed,
            tail_bias=tail_bias and label == "simulation",
            **run,
        )
        filesets[label] = {role: result["datasets"][card] for role, card in roles.items()}
    for fs in filesets.values():  # the rare-process normalisation, the same in (pseudo-)data and simulation
        if "ttbar" in fs and ttbar_scale != 1.0:
            meta = fs["ttbar"]["metadata"] = dict(fs["ttbar"]["metadata"])
            meta["xsec_pb"] = float(meta["xsec_pb"]) * ttbar_scale
    if real:
        return filesets["simulation"], real[0]
    return filesets["simulation"], _pseudo_data(
        samples_dir, filesets["data"], seed=seed, run=run, inject=inject, signal_fraction=signal_fraction
    )


def _pseudo_data(
    samples_dir: Path, pool: dict, *, seed: int, run: dict, inject: str | None, signal_fraction: float
) -> dict:
    """The pseudo-data fileset entry mixed from the ``pool`` production, with ``inject`` hidden in it."""
    from cms_anomaly.datasets import mixture, production

    pool = dict(pool)
    lumi = mixture.default_luminosity(pool, list(pool))
    name = f"pseudodata_s{seed}"
    if inject and signal_fraction > 0:
        n_sm = sum(float(e["metadata"]["xsec_pb"]) * lumi for e in pool.values())
        n_sig = signal_fraction / (1.0 - signal_fraction) * n_sm
        needed = int(np.ceil(n_sig + 3.0 * np.sqrt(n_sig) + 5))  # room for a 3 sigma upward fluctuation
        signal = production.produce(
            [inject], out=samples_dir / f"signal_{inject}", events={inject: needed}, seed=seed + 2000, **run
        )
        entry = dict(signal["datasets"][inject])
        entry["metadata"] = {**entry["metadata"], "xsec_pb": n_sig / lumi}
        pool[inject] = entry
        name = f"pseudodata_s{seed}_{inject}_{signal_fraction:g}"
    return mixture.build_pseudo_data(pool, processes=list(pool), out=samples_dir / name, seed=seed, lumi_pb=lumi)
