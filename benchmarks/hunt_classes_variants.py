"""The class hunt's detector variants compared: one k-fold detector on the data of every class (``all``) against
k-fold detectors per exclusive class (``class``), on the same productions.

    nice -n 5 python benchmarks/hunt_classes_variants.py --samples /work/runs/s32/samples1 \\
        --cards qstar_gamma lq_eb --fraction 0.01 --out out/hunt-classes-variants

For the null (``--seed``, no signal) and each card hidden at ``--fraction`` of the pseudo-data, the hunt runs with
each variant (``alad_knapp``, ``--epochs``, ``--k-folds``, ``--npe``; simulation seed 1000; no NPLM test). Per run:
the classes with a detector, the injected card's class (the exclusive class of the data holding most of the card's
events among its listed highest-S_T events), its rarity p-tilde and overall p-tilde, the smallest rarity p-tilde of
any class, the global p and the wall time. A markdown table, also written to OUT/study.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from cms_anomaly.benchmarks import study
from cms_anomaly.benchmarks.study import samples_dir


def _config(args: argparse.Namespace, variant: str, **changes: Any) -> Any:
    from cms_anomaly.analyses.analysis import Execution
    from cms_anomaly.analyses.hunt_classes import ClassHuntConfig

    return ClassHuntConfig(
        seed=args.seed,
        simulation_seed=1000,
        npe=args.npe,
        model=args.model,
        detector_per=variant,
        k_folds=args.k_folds,
        epochs=args.epochs,
        nplm_toys=0,
        execution=Execution(executor=args.executor, workers=args.workers),
        **changes,
    ).scaled(args.events)


def injected_class(histograms: str, card: str) -> tuple[str | None, int]:
    """The data's exclusive class with most of ``card``'s events among its listed (highest-S_T) events, and their
    number."""
    from cms_anomaly.analyses.hunt_classes import _kind_of
    from coffea.util import load

    lists = load(histograms)["data"].get("class_events", {})
    counts = {c: int((top.columns["process"] == card).sum()) for c, top in lists.items() if _kind_of(c) == "exclusive"}
    best = max(counts, key=lambda c: counts[c], default=None)
    return (best, counts[best]) if best is not None and counts[best] else (None, 0)


def row(name: str, variant: str, result: Any, card: str | None, seconds: float) -> str:
    summary = json.loads((result.summary.parent / "summary.json").read_text())
    detector = summary["detector"]
    n_models = len(detector["models"]) if variant == "class" else 1
    rarity = [r["p_tildes"].get("rarity") for r in result.rows]
    smallest = min((p for p in rarity if p is not None), default=None)
    cls, n_signal, p_rarity, p_class = "-", 0, None, None
    if card is not None:
        found, n_signal = injected_class(summary["histograms"], card)
        match = [r for r in result.rows if r["class"] == found]
        if match:
            cls, p_rarity, p_class = str(found), match[0]["p_tildes"].get("rarity"), match[0]["p_tilde"]

    def f(p: float | None) -> str:
        return "-" if p is None else f"{p:.3g}"

    return (
        f"| {name} | {variant} | {n_models} | {cls} ({n_signal}) | {f(p_rarity)} | {f(p_class)} | {f(smallest)} "
        f"| {result.p_global:.3g} | {seconds:.0f} |"
    )


def compare(args: argparse.Namespace) -> list[str]:
    from cms_anomaly.analyses.hunt_classes import run_class_hunt

    lines = [
        f"Detector variants: --events {args.events:g}, seed {args.seed}, simulation seed 1000, {args.model}, "
        f"{args.k_folds} folds, {args.epochs} epochs, {args.npe} pseudo-experiments, signals at {args.fraction:g}",
        "",
        "| pseudo-data | detector per | classes with a detector | injected class (signal events listed) "
        "| its rarity p-tilde | its p-tilde | smallest rarity p-tilde | global p | s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for card in ([None] if args.null else []) + list(args.cards):
        name = "null" if card is None else f"{card} {args.fraction:g}"
        changes = {} if card is None else {"inject": card, "signal_fraction": args.fraction}
        for variant in args.variants:
            t = time.perf_counter()
            out = Path(args.out) / f"{card or 'null'}_{variant}"
            result = run_class_hunt(out, _config(args, variant, **changes), samples_dir=samples_dir(args))
            lines.append(row(name, variant, result, card, time.perf_counter() - t))
            print(lines[-1], flush=True)
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", nargs="?", choices=("compare",), default="compare")
    p.add_argument("--out", required=True)
    p.add_argument("--samples", default=None, help="productions directory (default OUT/samples)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cards", nargs="+", default=["qstar_gamma", "lq_eb"])
    p.add_argument("--fraction", type=float, default=0.01)
    p.add_argument("--null", action=argparse.BooleanOptionalAction, default=True, help="the signal-free run too")
    p.add_argument("--variants", nargs="+", choices=("all", "class"), default=["all", "class"])
    p.add_argument("--model", default="alad_knapp")
    p.add_argument("--k-folds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--events", type=float, default=1.0)
    p.add_argument("--npe", type=int, default=500)
    p.add_argument("--executor", default="iterative")
    p.add_argument("--workers", type=int, default=1)
    study.main(p, {"compare": compare})


if __name__ == "__main__":
    main()
