"""``cms-anomaly bench TARGET``: the sub-parsers of the benchmarks and the functions they call.

Only ``argparse`` and the argument types are imported at module level, so that ``cms-anomaly --help``
stays fast; each benchmark module is imported when its command runs.
"""

from __future__ import annotations

import argparse

from cms_anomaly.core.argtypes import non_negative_int, positive_float, positive_int
from cms_anomaly.models.registry import neural_kinds
from cms_anomaly.processors.runner import ANALYSIS_CHUNKSIZE


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``cms-anomaly bench`` and its targets (generate, scoring, training, processor, tail)."""
    bench = subparsers.add_parser(
        "bench",
        help="benchmarks that print rates and ratios measured in one run",
        description="Benchmarks: each prints events/s and ratios to a baseline measured in the same run.",
    )
    bench_targets = bench.add_subparsers(dest="target", metavar="TARGET")
    bench_targets.required = True
    _register_generate(bench_targets)
    _register_models(bench_targets)
    _register_processor(bench_targets)
    _register_tail(bench_targets)


def _register_generate(bench_subparsers: argparse._SubParsersAction) -> None:
    """Add ``cms-anomaly bench generate``."""
    p = bench_subparsers.add_parser(
        "generate",
        help="full generation chain rate / bare Pythia rate on the same process",
        description=(
            "Times bare Pythia 8 and the full chain (Pythia + particle extraction + detector response + "
            "NanoAOD writing) on the same process, settings and seed, in one run, and prints the rates, "
            "the ratio and the per-stage breakdown."
        ),
    )
    p.add_argument(
        "processes",
        nargs="*",
        default=["wjets", "zjets", "ttbar", "qcd"],
        metavar="PROCESS",
        help="processes (default: the SM cocktail wjets zjets ttbar qcd)",
    )
    p.add_argument("--events", type=positive_int, default=300, help="events per measurement (default: 300)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--cocktail-events", type=positive_float, default=1e6, help="cocktail size for the cost estimate (default: 1e6)"
    )
    p.add_argument(
        "--repeat",
        type=positive_int,
        default=1,
        help="time the chain and bare Pythia alternately N times each and keep the fastest of each (default: 1)",
    )
    p.set_defaults(func=_bench_generate)


def _bench_generate(args: argparse.Namespace) -> int:
    """Print the report of ``cms-anomaly bench generate``."""
    from cms_anomaly.benchmarks import generation

    print(
        generation.run(
            args.processes,
            events=args.events,
            seed=args.seed,
            cocktail_events=args.cocktail_events,
            repeat=args.repeat,
        )
    )
    return 0


def _register_models(bench_subparsers: argparse._SubParsersAction) -> None:
    """Add ``cms-anomaly bench scoring`` and ``bench training``."""
    s = bench_subparsers.add_parser(
        "scoring",
        help="events/s per core of the model scorers inside the processor path",
        description=(
            "Builds VAE, ALAD, AE (RMM) and double-AE TorchScript files and an XGBoost BDT on random data "
            "(architecture and preprocessing as trained), then times the coffea.ml_tools scorer on an awkward "
            "feature record array of --events events (one whole chunk per call, threads pinned). Prints events/s "
            "per thread and the ratio to the bare TorchScript call."
        ),
    )
    s.add_argument("--events", type=int, default=1_000_000, help="events per chunk (default 1e6)")
    s.add_argument("--threads", type=int, default=1, help="threads per worker (default 1)")
    s.add_argument("--repeat", type=int, default=3, help="timed repetitions, best taken (default 3)")
    s.set_defaults(func=_bench_scoring)
    t = bench_subparsers.add_parser(
        "training",
        help="training throughput (events/s) of each model on CPU (and CUDA when present)",
        description=(
            "Times optimisation steps of each model at its paper batch size on random inputs of the right "
            "shape: CPU with 1 thread and with all cores, and a CUDA GPU when present (skipped otherwise)."
        ),
    )
    t.add_argument("--steps", type=int, default=100, help="timed steps per model (default 100)")
    t.add_argument("--models", nargs="+", default=list(neural_kinds()), choices=neural_kinds())
    t.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="one batch size for every model (default: each model's paper batch size)",
    )
    t.add_argument(
        "--agreement",
        action="store_true",
        help="also train ALAD and the double AE twice with the same seed per device pair (CPU/CPU, "
        "CUDA/CUDA, CPU/CUDA) and compare their scores on held-out events",
    )
    t.set_defaults(func=_bench_training)


def _bench_scoring(args: argparse.Namespace) -> int:
    """Print the report of ``cms-anomaly bench scoring``."""
    from cms_anomaly.benchmarks.models import bench_scoring

    print(bench_scoring(events=args.events, threads=args.threads, repeat=args.repeat))
    return 0


def _bench_training(args: argparse.Namespace) -> int:
    """Print the report of ``cms-anomaly bench training`` (and ``--agreement``)."""
    from cms_anomaly.benchmarks.models import bench_training

    print(bench_training(steps=args.steps, models=args.models, batch_size=args.batch_size), flush=True)
    if args.agreement:
        from cms_anomaly.benchmarks.models import bench_agreement

        print(bench_agreement())
    return 0


def _register_processor(bench_subparsers: argparse._SubParsersAction) -> None:
    """Add ``cms-anomaly bench processor``."""
    p = bench_subparsers.add_parser(
        "processor",
        help="processor vs bare uproot read vs RMM builder, 1 and 2 Dask workers",
        description="Measure in one run: a bare uproot read of exactly the branches the processor reads (from "
        "NanoEvents' access log on 2000 events; the floor, one core), the RMM builder alone (one core), and the "
        "full processor in-process and on a local Dask cluster with 1 and 2 workers; print events/s, ratios to "
        "the floor and the targets (processor >= 0.7 x floor and >= 30k events/s per core, RMM >= 200k events/s, "
        "N workers >= 0.8 x N x 1 worker).",
    )
    p.add_argument("inputs", nargs="+", help="a fileset JSON or NanoAOD ROOT files")
    p.add_argument(
        "--workers",
        type=non_negative_int,
        nargs="+",
        default=[0, 1, 2],
        help="Dask worker counts; 0 = in this process without Dask (default: 0 1 2)",
    )
    p.add_argument(
        "--chunksize",
        type=positive_int,
        default=ANALYSIS_CHUNKSIZE,
        help=f"events per chunk (default: {ANALYSIS_CHUNKSIZE})",
    )
    p.add_argument(
        "--selection", default="single_lepton", help="selection of the processor run (default: single_lepton)"
    )
    p.add_argument(
        "--repeat",
        type=positive_int,
        default=1,
        help="time the floor and every processor configuration N times and keep the fastest, which a "
        "shared or noisy machine disturbs least (default: 1)",
    )
    p.add_argument(
        "--replicate",
        type=positive_int,
        default=1,
        help="first copy the used branches of all inputs K times into one temporary file, to measure at a "
        "realistic chunk size (default: 1, the files as they are)",
    )
    p.add_argument(
        "--xrootd",
        default=None,
        metavar="URL",
        help="also read the same files through the XRootD server at URL (root://host:port/, exporting the "
        "files' local paths) and print the processor's rate over XRootD against its rate on the local files",
    )
    p.set_defaults(func=_bench_processor)


def _bench_processor(args: argparse.Namespace) -> int:
    """Run ``cms-anomaly bench processor``."""
    from cms_anomaly.benchmarks.processor import run_bench

    return run_bench(args)


def _register_tail(bench_subparsers: argparse._SubParsersAction) -> None:
    """Add ``cms-anomaly bench tail``."""
    p = bench_subparsers.add_parser(
        "tail",
        help="tail-weighted / unbiased generation: effective events above the 1e-4 H_T threshold per CPU s",
        description=(
            "Generates each process unbiased and with its card's [bias] (full chain, same seed and event "
            "count), finds the H_T above which a fraction --fpr of the cross section lies, and prints the "
            "effective events there per CPU second of both, their ratio, and the cross sections of both."
        ),
    )
    p.add_argument(
        "processes", nargs="*", default=["wjets_hard", "qcd"], metavar="PROCESS", help="default: wjets_hard qcd"
    )
    p.add_argument("--events", type=positive_int, default=1000, help="events per sample (default: 1000)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--fpr", type=positive_float, default=1e-4, help="tail fraction of the threshold (default: 1e-4)")
    p.set_defaults(func=_bench_tail)


def _bench_tail(args: argparse.Namespace) -> int:
    """Print the report of ``cms-anomaly bench tail``."""
    from cms_anomaly.benchmarks.tail import run_tail

    print(run_tail(args.processes, events=args.events, seed=args.seed, fpr=args.fpr))
    return 0
