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
from pathlib import Path

import numpy as np
from cms_anomaly.datasets.cards import load_card
from cms_anomaly.datasets.generator import PythiaGenerator
from cms_anomaly.datasets.production import FileJob, run_job

#: SM cocktail composition of the VAE paper (Cerri et al., Table 1, after the single-lepton selection)
CERRI_FRACTIONS = {"wjets": 0.592, "qcd": 0.338, "zjets": 0.067, "ttbar": 0.003}


def measure(process: str, *, events: int, seed: int, workdir: str) -> dict:
    """Bare-Pythia and full-chain rates for one process."""
    card = load_card(process)
    job = FileJob(card=card, index=0, n_events=events, base_seed=seed, out_dir=workdir, first_event=1)
    # warm-up: numba kernels and fastjet are compiled/loaded once per worker process
    run_job(FileJob(card=card, index=999, n_events=20, base_seed=seed, out_dir=workdir, first_event=1))

    info = run_job(job)
    s = info["seconds"]
    chain_seconds = s["total"] - s["init"]

    bare = PythiaGenerator(card, seed=job.pythia_seed)
    n_bare = min(info["n_tried"], 3000)  # a rate: a filtered process need not be rerun in full
    t0 = time.perf_counter()
    for _ in range(n_bare):
        bare.next_bare()
    bare_seconds = time.perf_counter() - t0
    return {
        "process": process,
        "bare_rate": n_bare / bare_seconds,
        "chain_rate_tried": info["n_tried"] / chain_seconds,
        "chain_rate_accepted": info["events"] / chain_seconds,
        "filter_efficiency": info["filter_efficiency"],
        "fractions": {k: s[k] / chain_seconds for k in ("pythia", "detector", "write")},
        "events": info["events"],
    }


def run(processes: Sequence[str], *, events: int, seed: int, cocktail_events: float) -> str:
    """Measure every process and format the report (rates, ratios, stage breakdown, cocktail cost)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="cms-anomaly-bench-") as workdir:
        for process in processes:
            rows.append(measure(process, events=events, seed=seed, workdir=workdir))
    lines = [
        f"generation benchmark: {events} accepted events per process, 1 core, same card and seed for both measurements",
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
    measured = {r["process"]: r for r in rows}
    if set(CERRI_FRACTIONS) <= set(measured):
        cpu_s = sum(cocktail_events * frac / measured[p]["chain_rate_accepted"] for p, frac in CERRI_FRACTIONS.items())
        lines.append(
            f"SM cocktail of {cocktail_events:.3g} events with the VAE-paper composition "
            f"({', '.join(f'{p} {f:.1%}' for p, f in CERRI_FRACTIONS.items())}): "
            f"{cpu_s / 3600:.1f} CPU-hours = {cpu_s / 3600 / 2:.1f} h on this 2-core machine"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# cms-anomaly bench tail: tail-weighted against unbiased generation at equal CPU time
# ----------------------------------------------------------------------------------------------
#: jets entering H_T: pT > 30 GeV, |eta| < 2.4 (the analysis's jets, processors.config.ObjectConfig)
HT_JET_PT_MIN = 30.0
HT_JET_ABS_ETA_MAX = 2.4


def weighted_ht(path: str | Path, *, xsec_pb: float, sumw: float) -> tuple[np.ndarray, np.ndarray]:
    """H_T (scalar sum of the pT of jets with pT > 30 GeV, |eta| < 2.4) of every event of a generated
    file and its cross-section weight ``xsec_pb * genWeight / sumw`` (pb)."""
    import awkward as ak
    import uproot

    with uproot.open(path) as f:
        a = f["Events"].arrays(["Jet_pt", "Jet_eta", "genWeight"])
    good = (a.Jet_pt > HT_JET_PT_MIN) & (abs(a.Jet_eta) < HT_JET_ABS_ETA_MAX)
    ht = ak.to_numpy(ak.sum(a.Jet_pt[good], axis=1)).astype(np.float64)
    return ht, ak.to_numpy(a.genWeight).astype(np.float64) * (xsec_pb / sumw)


def tail_threshold(values: np.ndarray, weights: np.ndarray, *, fraction: float) -> float:
    """The value above which the weighted ``fraction`` of a sample lies (the largest value whose
    upper tail, strictly above it, holds at most ``fraction`` of the weight)."""
    order = np.argsort(values)[::-1]
    above = np.cumsum(weights[order]) / weights.sum()  # weight at or above each value, descending
    k = int(np.searchsorted(above, fraction, side="right"))  # values [0, k) hold <= fraction
    return float(values[order][min(k, len(values) - 1)])


def kish(weights: np.ndarray) -> float:
    """(sum w)^2 / sum w^2 (0 for no events)."""
    return float(weights.sum() ** 2 / np.square(weights).sum()) if weights.size else 0.0


def measure_tail(process: str, *, events: int, seed: int, workdir: str, fpr: float = 1e-4) -> dict:
    """Generate ``events`` events of ``process`` unbiased and tail-weighted (same seed, full chain) and
    compare the effective events above the H_T threshold of tail fraction ``fpr`` per CPU second.

    The threshold and the tail fraction come from the weighted sample (the only one with events
    there); the unbiased expectation at equal CPU time is ``rate_unbiased x seconds_biased x fpr``.
    The unbiased sample's own count above it is printed beside it. Both cross sections and the
    fraction above the 1 % threshold (where both have events) are compared as a check.
    """
    card = load_card(process)
    if card.bias is None:
        raise ValueError(f"{process}: the card has no [bias] table (tail-weightable: {', '.join(_biased_cards())})")
    run_job(FileJob(card=card, index=999, n_events=20, base_seed=seed, out_dir=workdir, first_event=1))  # warm-up
    out = {"process": process, "bias": card.bias}
    for tag, biased in (("unbiased", False), ("biased", True)):
        job = FileJob(
            card=card, index=0, n_events=events, base_seed=seed, out_dir=workdir, first_event=1, tail_bias=biased
        )
        info = run_job(job)
        ht, w = weighted_ht(info["path"], xsec_pb=info["xsec_pb"], sumw=info["sumw"])
        out[tag] = {
            "seconds": info["seconds"]["total"] - info["seconds"]["init"],
            "xsec_pb": info["xsec_pb"],
            "xsec_err_pb": info["sigma_gen_err_pb"] * info["filter_efficiency"],
            "ht": ht,
            "w": w,
        }
    b, u = out["biased"], out["unbiased"]
    threshold = tail_threshold(b["ht"], b["w"], fraction=fpr)
    above_b = b["ht"] > threshold
    frac = float(b["w"][above_b].sum() / b["w"].sum())
    expected_unbiased = events / u["seconds"] * b["seconds"] * frac
    t_1pc = tail_threshold(b["ht"], b["w"], fraction=1e-2)
    out.update(
        threshold=threshold,
        fraction_above=frac,
        n_eff_biased=kish(b["w"][above_b]),
        n_above_unbiased=int(np.count_nonzero(u["ht"] > threshold)),
        expected_unbiased_same_cpu=expected_unbiased,
        check_1pc={
            "threshold": t_1pc,
            "unbiased": float(u["w"][u["ht"] > t_1pc].sum() / u["w"].sum()),
            "unbiased_n": int(np.count_nonzero(u["ht"] > t_1pc)),
            "biased": float(b["w"][b["ht"] > t_1pc].sum() / b["w"].sum()),
        },
    )
    out["gain"] = out["n_eff_biased"] / expected_unbiased if expected_unbiased > 0 else float("inf")
    return out


def _biased_cards() -> list[str]:
    from cms_anomaly.datasets.cards import all_cards

    return [c.name for c in all_cards() if c.bias is not None]


def run_tail(processes: Sequence[str], *, events: int, seed: int, fpr: float = 1e-4) -> str:
    """``cms-anomaly bench tail``: the report of :func:`measure_tail` for every process."""
    with tempfile.TemporaryDirectory(prefix="cms-anomaly-bench-tail-") as workdir:
        rows = [measure_tail(p, events=events, seed=seed, workdir=workdir, fpr=fpr) for p in processes]
    lines = [
        f"tail-weighted generation: {events} events unbiased and {events} tail-weighted per process, full chain, "
        f"1 core, seed {seed}; threshold = H_T above which a fraction {fpr:g} of the cross section lies",
        f"{'process':11s} {'bias':>13s} {'CPU s unb/bias':>15s} {'H_T thr':>8s} {'n_eff above':>11s} "
        f"{'unbiased, same CPU':>18s} {'gain':>7s}   {'xsec unb / bias [pb]':>26s}   1 % tail unb / bias",
    ]
    for r in rows:
        u, b, c = r["unbiased"], r["biased"], r["check_1pc"]
        bias = f"^{r['bias'].power:g} / {r['bias'].reference:g}"
        lines.append(
            f"{r['process']:11s} {bias:>13s} {u['seconds']:7.1f}/{b['seconds']:<7.1f} {r['threshold']:8.0f} "
            f"{r['n_eff_biased']:11.1f} {r['expected_unbiased_same_cpu']:11.3f} ({r['n_above_unbiased']} seen) "
            f"{r['gain']:6.0f}x   {u['xsec_pb']:.4g}+-{u['xsec_err_pb']:.2g} / {b['xsec_pb']:.4g}+-{b['xsec_err_pb']:.2g}"
            f"   {c['unbiased']:.4f} ({c['unbiased_n']} ev) / {c['biased']:.4f}"
        )
    lines.append(
        "n_eff above = Kish effective events of the weighted sample above the threshold; unbiased, same CPU = "
        "(unbiased events/s) x (weighted sample's CPU s) x fraction; gain = their ratio"
    )
    return "\n".join(lines)
