"""``cms-anomaly bench tail``: tail-weighted against unbiased generation at equal CPU time.

Each process is generated twice through the full chain (Pythia, detector, NanoAOD writing), with the
same card, seed and event count: unbiased, and with the card's ``[bias]`` (Pythia's
``PhaseSpace:bias2Selection``). The tail is H_T above the value that holds a fraction ``fpr`` of the
process's cross section, read off the weighted sample (the only one with events there); the unbiased
expectation at equal CPU time is ``unbiased events/s x weighted CPU seconds x fraction``. Both cross
sections and the fraction above the 1 % threshold, where both samples have events, are printed as a
check.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: jets entering H_T: pT > 30 GeV, |eta| < 2.4 (the analysis's jets, processors.config.ObjectConfig),
#: read from the raw ``Jet_*`` branches (no overlap removal: the benchmark's observable, not the analysis's)
HT_JET_PT_MIN = 30.0
HT_JET_ABS_ETA_MAX = 2.4


def weighted_ht(path: str | Path, *, xsec_pb: float, sumw: float) -> tuple[np.ndarray, np.ndarray]:
    """H_T of every event of a generated file and its cross-section weight ``xsec_pb * genWeight / sumw`` (pb)."""
    import awkward as ak
    import uproot

    with uproot.open(path) as f:
        a = f["Events"].arrays(["Jet_pt", "Jet_eta", "genWeight"])
    good = (a.Jet_pt > HT_JET_PT_MIN) & (abs(a.Jet_eta) < HT_JET_ABS_ETA_MAX)
    ht = ak.to_numpy(ak.sum(a.Jet_pt[good], axis=1)).astype(np.float64)
    return ht, ak.to_numpy(a.genWeight).astype(np.float64) * (xsec_pb / sumw)


def measure_tail(process: str, *, events: int, seed: int, workdir: str, fpr: float = 1e-4) -> dict:
    """Generate ``events`` events of ``process`` unbiased and tail-weighted and compare the effective
    events above the H_T threshold of tail fraction ``fpr`` per CPU second (see the module docstring)."""
    from cms_anomaly.benchmarks.generation import chain_seconds, warm_up
    from cms_anomaly.datasets.cards import all_cards, load_card
    from cms_anomaly.datasets.production import FileJob, run_job
    from cms_anomaly.stats import effective_entries, threshold_at_efficiency

    card = load_card(process)
    if card.bias is None:
        biased = ", ".join(c.name for c in all_cards() if c.bias is not None)
        raise ValueError(f"{process}: the card has no [bias] table (tail-weightable: {biased})")
    warm_up(card, seed=seed, workdir=workdir)
    out: dict = {"process": process, "bias": card.bias}
    for tag, tail_bias in (("unbiased", False), ("biased", True)):
        job = FileJob(
            card=card, index=0, n_events=events, base_seed=seed, out_dir=workdir, first_event=1, tail_bias=tail_bias
        )
        info = run_job(job)
        ht, w = weighted_ht(info["path"], xsec_pb=info["xsec_pb"], sumw=info["sumw"])
        out[tag] = {
            "seconds": chain_seconds(info),
            "xsec_pb": info["xsec_pb"],
            "xsec_err_pb": info["sigma_gen_err_pb"] * info["filter_efficiency"],
            "ht": ht,
            "w": w,
        }
    b, u = out["biased"], out["unbiased"]
    threshold = threshold_at_efficiency(b["ht"], b["w"], efficiency=fpr)
    above_b = b["ht"] > threshold
    frac = float(b["w"][above_b].sum() / b["w"].sum())
    expected_unbiased = events / u["seconds"] * b["seconds"] * frac
    t_1pc = threshold_at_efficiency(b["ht"], b["w"], efficiency=1e-2)
    out.update(
        threshold=threshold,
        fraction_above=frac,
        n_eff_biased=effective_entries(b["w"][above_b]) if above_b.any() else 0.0,
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


def run_tail(processes: Sequence[str], *, events: int, seed: int, fpr: float = 1e-4) -> str:
    """The report of :func:`measure_tail` for every process."""
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
