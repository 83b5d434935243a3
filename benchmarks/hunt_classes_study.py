"""The class hunt with known answers: its null rate over signal-free productions, and what it finds with a signal.

    python benchmarks/hunt_classes_study.py fpr --seeds 20 --out out/hunt-classes-fpr
    python benchmarks/hunt_classes_study.py injection --cards zprime_ssm wprime_ssm --fractions 0.02 0.05 \\
        --out out/hunt-classes-injection

``fpr``: pseudo-data of ``--seeds`` independent SM productions (seeds 1..N) against one simulation
(seed 1000), no signal: the global p-value of each and the fraction below 0.01 and 0.05. ``injection``:
one SM production (``--seed``) with each card hidden at each fraction: the top class by p-tilde, its
region and the global p-value. Each prints a markdown table (also written to OUT/study.md). Long runs:
not part of the test suite (``make hunt-classes-study``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from cms_anomaly.benchmarks import study
from cms_anomaly.benchmarks.study import null_seeds, samples_dir


def _config(args: argparse.Namespace, **changes: Any) -> Any:
    from cms_anomaly.analyses.analysis import Execution
    from cms_anomaly.analyses.hunt_classes import ClassHuntConfig

    return ClassHuntConfig(
        npe=args.npe,
        classes=tuple(args.classes or ()),
        execution=Execution(executor=args.executor, workers=args.workers),
        **changes,
    ).scaled(args.events)


def _top(result: Any) -> str:
    r = result.rows[0]
    w = r["window_gev"]
    region = "-" if w is None else f"{r['distribution']} {w[0]:.0f}-{w[1]:.0f}"
    return f"{r['class']} | {region} | {r['region_observed']:.0f} / {r['region_expected']:.3g} | {r['p_tilde']:.3g}"


def fpr(args: argparse.Namespace) -> list[str]:
    from cms_anomaly.analyses.hunt_classes import run_class_hunt

    lines = [
        f"Null rate: {args.seeds} signal-free pseudo-data productions, --events {args.events:g}, one simulation "
        f"(seed 1000), {args.npe} pseudo-experiments",
        "",
        "| seed | classes | top class | region (GeV) | obs / exp | p-tilde | global p | s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def run(seed: int) -> Any:
        config = _config(args, seed=seed, simulation_seed=1000)
        return run_class_hunt(Path(args.out) / f"seed{seed}", config, samples_dir=samples_dir(args))

    def row(seed: int, r: Any, seconds: float) -> str:
        return f"| {seed} | {len(r.rows)} | {_top(r)} | {r.p_global:.3g} | {seconds:.0f} |"

    ps = [r.p_global for r in null_seeds(args, run, row, lines)]
    lines += [
        "",
        f"global p < 0.01 in {sum(p < 0.01 for p in ps)} of {len(ps)} productions, < 0.05 in "
        f"{sum(p < 0.05 for p in ps)} (calibrated: 0.01 and 0.05 of them).",
    ]
    return lines


def injection(args: argparse.Namespace) -> list[str]:
    from cms_anomaly.analyses.hunt_classes import run_class_hunt

    lines = [
        f"Injection: --events {args.events:g}, seed {args.seed}, simulation seed 1000, {args.npe} pseudo-experiments",
        "",
        "| card | share of the events | top class | region (GeV) | obs / exp | p-tilde | global p | s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for card in args.cards:
        for f in args.fractions:
            t = time.perf_counter()
            config = _config(args, seed=args.seed, simulation_seed=1000, inject=card, signal_fraction=f)
            r = run_class_hunt(Path(args.out) / f"{card}_f{f:g}", config, samples_dir=samples_dir(args))
            lines.append(f"| {card} | {f:g} | {_top(r)} | {r.p_global:.3g} | {time.perf_counter() - t:.0f} |")
            print(lines[-1], flush=True)
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=("fpr", "injection"))
    p.add_argument("--out", required=True)
    p.add_argument("--samples", default=None, help="productions directory (default OUT/samples)")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cards", nargs="+", default=["zprime_ssm"])
    p.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.02, 0.05])
    p.add_argument("--classes", nargs="+", default=None)
    p.add_argument("--events", type=float, default=1.0)
    p.add_argument("--npe", type=int, default=2000)
    p.add_argument("--executor", default="futures")
    p.add_argument("--workers", type=int, default=2)
    study.main(p, {"fpr": fpr, "injection": injection})


if __name__ == "__main__":
    main()
