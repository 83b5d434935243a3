"""``cms-anomaly bench generate``: full generation chain vs bare Pythia, measured in one run.

For each process, on the same card and Pythia seed:

1. bare Pythia: ``Pythia.next()`` in a loop (the reference; initialisation excluded);
2. the full chain of a production file job: ``Pythia.nextBatch`` (generation + conversion of the
   event record to awkward), the detector response and the NanoAOD writing.

The ratio chain rate / bare rate is computed per *generated* (tried) event, so a filtered process
(QCD) is compared like for like; the accepted-event rate is what a production costs.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence

from cms_anomaly.datasets.cards import ProcessCard, load_card
from cms_anomaly.datasets.generator import PythiaGenerator
from cms_anomaly.datasets.production import FileJob, run_job

#: SM cocktail composition of the VAE paper (Cerri et al., Table 1, after the single-lepton selection)
CERRI_FRACTIONS = {"wjets": 0.592, "qcd": 0.338, "zjets": 0.067, "ttbar": 0.003}


def warm_up(card: ProcessCard, *, seed: int, workdir: str) -> None:
    """One 20-event file job, untimed: numba kernels and fastjet are compiled/loaded once per process."""
    run_job(FileJob(card=card, index=999, n_events=20, base_seed=seed, out_dir=workdir, first_event=1))


def chain_seconds(info: dict) -> float:
    """A file job's time through the full chain, without Pythia's initialisation."""
    return float(info["seconds"]["total"] - info["seconds"]["init"])


def measure(process: str, *, events: int, seed: int, workdir: str, repeat: int = 1) -> dict:
    """Bare-Pythia and full-chain rates for one process.

    With ``repeat`` > 1 the chain and bare Pythia are timed alternately ``repeat`` times each on the
    same events, and the fastest of each is kept (the run a shared machine disturbed least).
    """
    card = load_card(process)
    warm_up(card, seed=seed, workdir=workdir)

    info, bare_seconds, n_bare = None, float("inf"), 0
    for k in range(repeat):
        # a directory per run: a finished file in the job's place would be returned, not made again
        job = FileJob(card=card, index=0, n_events=events, base_seed=seed, out_dir=f"{workdir}/run{k}", first_event=1)
        run = run_job(job)
        if run["skipped"]:
            raise RuntimeError(f"bench generate: {job.path} existed; the chain was not timed")
        if info is None or chain_seconds(run) < chain_seconds(info):
            info = run
        bare = PythiaGenerator(card, seed=job.pythia_seed)
        n_bare = min(run["n_tried"], 3000)  # a rate: a filtered process need not be rerun in full
        t0 = time.perf_counter()
        for _ in range(n_bare):
            bare.next_bare()
        bare_seconds = min(bare_seconds, time.perf_counter() - t0)
    assert info is not None
    s = info["seconds"]
    seconds = chain_seconds(info)
    return {
        "process": process,
        "bare_rate": n_bare / bare_seconds,
        "chain_rate_tried": info["n_tried"] / seconds,
        "chain_rate_accepted": info["events"] / seconds,
        "filter_efficiency": info["filter_efficiency"],
        "fractions": {k: s[k] / seconds for k in ("pythia", "detector", "write")},
        "ms_per_tried": {k: 1e3 * s[k] / info["n_tried"] for k in ("pythia", "detector", "write")},
        "events": info["events"],
    }


def run(processes: Sequence[str], *, events: int, seed: int, cocktail_events: float, repeat: int = 1) -> str:
    """Measure every process and format the report (rates, ratios, stage breakdown, cocktail cost)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="cms-anomaly-bench-") as workdir:
        for process in processes:
            rows.append(measure(process, events=events, seed=seed, workdir=workdir, repeat=repeat))
    lines = [
        f"generation benchmark: {events} accepted events per process, 1 core, same card and seed for both measurements"
        + (f"; each the fastest of {repeat} alternating runs" if repeat > 1 else ""),
        f"{'process':12s} {'bare ev/s':>9s} {'chain ev/s':>10s} {'ratio':>6s} {'overhead':>8s}   "
        f"{'pythia+conv':>11s} {'detector':>8s} {'write':>6s}  {'accepted ev/s':>13s}",
    ]
    for r in rows:
        ratio = r["chain_rate_tried"] / r["bare_rate"]
        f = r["fractions"]
        lines.append(
            f"{r['process']:12s} {r['bare_rate']:9.1f} {r['chain_rate_tried']:10.1f} {ratio:6.2f} {1 / ratio - 1:8.1%}   "
            f"{f['pythia']:11.1%} {f['detector']:8.1%} {f['write']:6.1%}  {r['chain_rate_accepted']:13.2f}"
        )
    lines.append(
        "ratio = chain rate / bare Pythia rate per generated event; overhead = extra time on top of bare Pythia"
    )
    lines.append(
        f"per generated event, ms: {'process':12s} {'bare':>6s} {'+convert':>8s} {'+detector':>9s} {'+write':>6s}"
        f" {'= chain':>7s}  {'bare / (bare + convert)':>23s}"
    )
    for r in rows:
        ms = r["ms_per_tried"]
        bare_ms = 1e3 / r["bare_rate"]
        convert = ms["pythia"] - bare_ms  # nextBatch's event record -> awkward conversion (and the filter)
        lines.append(
            f"{'':24s} {r['process']:12s} {bare_ms:6.2f} {convert:8.2f} {ms['detector']:9.2f} {ms['write']:6.2f}"
            f" {sum(ms.values()):7.2f}  {bare_ms / (bare_ms + convert):23.2f}"
        )
    lines.append(
        "convert = Pythia stage of the chain minus bare Pythia: nextBatch's conversion of the event record to awkward"
        " (and the lepton filter); bare / (bare + convert) is the ratio a free detector and writer would reach"
    )
    measured = {r["process"]: r for r in rows}
    if set(CERRI_FRACTIONS) <= set(measured):
        cpu_s = sum(cocktail_events * frac / measured[p]["chain_rate_accepted"] for p, frac in CERRI_FRACTIONS.items())
        lines.append(
            f"SM cocktail of {cocktail_events:.3g} events with the VAE-paper composition "
            f"({', '.join(f'{p} {f:.1%}' for p, f in CERRI_FRACTIONS.items())}): "
            f"{cpu_s / 3600:.1f} CPU-hours = {cpu_s / 3600 / 2:.1f} h on this 2-core machine"
        )
    return "\n".join(lines)
