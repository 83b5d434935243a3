"""The hunt with known answers: its false-positive rate without a signal, and what it finds with one.

    python benchmarks/hunt_study.py fpr --seeds 20 --events 0.2 --out out/hunt-fpr
    python benchmarks/hunt_study.py injection --fractions 0 0.005 0.01 0.02 --out out/hunt-injection

``fpr``: pseudo-data of ``--seeds`` independent SM productions (seeds 1..N), one simulation
(seed 1000) as background model, no signal: the fraction of seeds whose global significance
exceeds 2 sigma. ``injection``: one SM production, the ``--card`` process hidden at each fraction of
the pseudo-data events: its share of the selected sample, of the alpha = 1 % selection, and the
global significance. Each prints a markdown table (and writes it to OUT/study.md). Long runs: not
part of the test suite (``make hunt-study``).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from cms_anomaly.benchmarks import study
from cms_anomaly.benchmarks.study import null_seeds, samples_dir


def _config(args: argparse.Namespace, **changes: Any) -> Any:
    from cms_anomaly.analyses.analysis import Execution
    from cms_anomaly.analyses.hunt import HuntConfig

    base = HuntConfig(
        model=args.model,
        epochs=args.epochs,
        npe=args.npe,
        execution=Execution(executor=args.executor, workers=args.workers),
    )
    return replace(base, **changes).scaled(args.events)


def fpr(args: argparse.Namespace) -> list[str]:
    from cms_anomaly.analyses.hunt import run_hunt

    lines = [
        f"False-positive rate: {args.seeds} pseudo-data seeds, no signal, --events {args.events:g}, "
        f"{args.model}, one simulation (seed 1000)",
        "",
        "| seed | data events | background model ok | best (mass, alpha, window) | local Z | global Z | p global | s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def run(seed: int) -> Any:
        return run_hunt(
            Path(args.out) / f"seed{seed}",
            _config(args, seed=seed, simulation_seed=1000),
            samples_dir=samples_dir(args),
        )

    def row(seed: int, r: Any, seconds: float) -> str:
        return (
            f"| {seed} | {_n_data(r)} | {r.background_ok} | {_best(r)} | {r.z_local:.2f} | "
            f"{r.z_global:.2f} | {r.p_global:.3g} | {seconds:.0f} |"
        )

    zs = [r.z_global for r in null_seeds(args, run, row, lines)]
    above = sum(z > 2 for z in zs)
    lines += [
        "",
        f"Global significance > 2 sigma in {above} of {len(zs)} seeds (false-positive rate "
        f"{above / len(zs):.2f}; a calibrated test gives 0.023).",
    ]
    return lines


def _best(result: Any) -> str:
    """The best window as 'mass, alpha, window', or why none is quoted (no selection passed the checks)."""
    b = result.best
    if not b:
        return "not quoted"
    return f"{b['variable']}, {b['alpha']:g}, {b['window_gev'][0]:.0f}-{b['window_gev'][1]:.0f}"


def _n_data(result: Any) -> str:
    import json

    payload = json.loads(result.summary.with_name("summary.json").read_text())
    return f"{payload['result']['n_data']:.0f}"


def injection(args: argparse.Namespace) -> list[str]:
    from cms_anomaly.analyses.hunt import run_hunt

    lines = [
        f"Injection of {args.card}: --events {args.events:g}, {args.model}, seed {args.seed}",
        "",
        "| injected share of the events | share of the selected sample | share at alpha = 1e-2 | share of the top 10 events | "
        "best (mass, alpha, window) | local Z | global Z | top-ranked features |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in args.fractions:
        changes = {"seed": args.seed, "inject": args.card if f > 0 else None, "signal_fraction": f}
        r = run_hunt(Path(args.out) / f"f{f:g}", _config(args, **changes), samples_dir=samples_dir(args))
        import pandas as pd

        top = pd.read_csv(r.events).head(10)
        in_top = float((top.get("true_process", pd.Series(dtype=str)) == args.card).mean()) if len(top) else 0.0
        lines.append(
            f"| {f:g} | {r.composition.get(args.card, 0.0):.3f} | {r.selected_composition.get('0.01', {}).get(args.card, 0.0):.2f} | "
            f"{in_top:.1f} | {_best(r)} | "
            f"{r.z_local:.2f} | {r.z_global:.2f}{'+' if r.z_global >= 3.0 and r.p_global < 2 / args.npe else ''} | "
            f"{', '.join(r.ranked_features[:3])} |"
        )
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=("fpr", "injection"))
    p.add_argument("--out", required=True)
    p.add_argument(
        "--samples", default=None, help="productions directory (default OUT/samples; e.g. out/rediscover-top/samples)"
    )
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--fractions", type=float, nargs="+", default=[0.0, 0.005, 0.01, 0.02])
    p.add_argument("--card", default="hplus_t")
    p.add_argument("--events", type=float, default=1.0)
    p.add_argument("--model", default="alad")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--npe", type=int, default=1000)
    p.add_argument("--executor", default="futures")
    p.add_argument("--workers", type=int, default=2)
    study.main(p, {"fpr": fpr, "injection": injection})


if __name__ == "__main__":
    main()
