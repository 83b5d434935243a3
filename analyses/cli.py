"""The ``cms-anomaly`` console command.

Each subcommand lives in the module that owns it; that module exposes
``register(subparsers)`` which adds an ``argparse`` sub-parser and sets
``func`` (a callable taking the parsed namespace and returning an exit code).
Registration modules import only ``argparse`` at module level so that
``cms-anomaly --help`` stays fast; heavy imports happen inside ``func``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

#: modules providing ``register(subparsers)``, in the order shown by ``--help``
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "cms_anomaly.datasets.cli",
    "cms_anomaly.models.cli",
    "cms_anomaly.analyses.evaluate",
    "cms_anomaly.analyses.run",
    "cms_anomaly.analyses.rediscovery",
    "cms_anomaly.analyses.trigger",
    "cms_anomaly.analyses.disco",
    "cms_anomaly.analyses.outlier",
    "cms_anomaly.analyses.dijet",
    "cms_anomaly.analyses.hunt",
)

#: modules providing ``register_bench(bench_subparsers)`` for ``cms-anomaly bench TARGET``
BENCH_MODULES: tuple[str, ...] = (
    "cms_anomaly.datasets.cli",
    "cms_anomaly.models.cli",
    "cms_anomaly.analyses.run",
    "cms_anomaly.analyses.tailbench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cms-anomaly",
        description="Columnar anomaly detection on CMS (Open Data) NanoAOD.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    bench = subparsers.add_parser(
        "bench",
        help="benchmarks that print rates and ratios measured in one run",
        description="Benchmarks: each prints events/s and ratios to a baseline measured in the same run.",
    )
    bench_targets = bench.add_subparsers(dest="target", metavar="TARGET")
    bench_targets.required = True
    for name in BENCH_MODULES:
        importlib.import_module(name).register_bench(bench_targets)
    return parser


def _is_project_error(err: BaseException) -> bool:
    """Errors raised on purpose by this project (bad card, missing branch, no network, ...)."""
    return type(err).__module__.startswith("cms_anomaly.")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # our own progress messages at INFO; -v: ours at DEBUG; -vv: everything (dask, coffea) at DEBUG
    logging.basicConfig(
        level=logging.DEBUG if args.verbose >= 2 else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("cms_anomaly").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if args.verbose < 2:
        # distributed installs its own INFO handlers on import (scheduler/worker start-up chatter);
        # dask reads this before that import, here and in every local worker process it spawns
        import os

        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if args.verbose >= 2:
            raise
        # finished output files are complete (written atomically); a rerun resumes or starts clean
        print(f"cms-anomaly {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        # the project's own errors carry a message naming the file/branch/value: print it, no
        # traceback (use -vv to get one); anything else is a bug and keeps its traceback
        if not _is_project_error(err) or args.verbose >= 2:
            raise
        print(f"cms-anomaly {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
