"""The ``cms-anomaly`` console command, above every layer (it registers the commands of
``datasets``, ``models``, ``analyses`` and ``benchmarks``).

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
    "cms_anomaly.benchmarks.cli",
)


#: the Dask logging levels of the command line (``-vv`` keeps Dask's own)
DASK_LOGGING = {
    "distributed": "warning",
    "distributed.worker.state_machine": "error",
    "bokeh": "error",
    "tornado": "critical",
    "tornado.application": "error",
}


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
    return parser


def _is_project_error(err: BaseException) -> bool:
    """Errors raised on purpose by this project (bad card, missing branch, no network, ...)."""
    return type(err).__module__.startswith("cms_anomaly.")


def _chain(err: BaseException | None) -> list[BaseException]:
    """``err`` and the exceptions it was raised from or while handling."""
    out: list[BaseException] = []
    while err is not None and all(err is not e for e in out):
        out.append(err)
        err = err.__cause__ or err.__context__
    return out


def _interrupted(err: BaseException) -> bool:
    """Whether ``err`` was caused by a KeyboardInterrupt (e.g. one raised inside an import)."""
    return any(isinstance(e, KeyboardInterrupt) for e in _chain(err))


def _one_line(err: BaseException) -> str | None:
    """The one line to print for an error the user can act on, ``None`` for a bug (keeps its traceback)."""
    import re

    if _is_project_error(err):
        return str(err)
    if any(type(e).__name__ == "KilledWorker" for e in _chain(err)):  # distributed.scheduler.KilledWorker
        item = re.search(r"filename='([^']+)'.*?entrystart=(\d+), entrystop=(\d+)", str(err))
        where = f" on entries {item[2]}-{item[3]} of {item[1]}" if item else ""
        return (
            f"Dask workers died again and again running the same task{where}; given up (a worker out of memory: "
            "try a smaller --chunksize; or crashing on that input: -vv for the trace)"
        )
    return None


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
        # dask reads this before that import, here and in every local worker process it spawns. The
        # worker state machine warns of every task cancelled when an interrupted run shuts its cluster
        # down: errors only from there. The other loggers keep dask's defaults.
        import os

        os.environ.setdefault("DASK_LOGGING", repr(DASK_LOGGING))
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if args.verbose >= 2:
            raise
        # finished output files are complete (written atomically); a rerun resumes or starts clean
        print(f"cms-anomaly {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if _interrupted(err) and args.verbose < 2:  # an interrupt that a library wrapped in its own error
            print(f"cms-anomaly {args.command}: interrupted", file=sys.stderr)
            return 130
        # the project's own errors carry a message naming the file/branch/value: print it, no
        # traceback (use -vv to get one); anything else is a bug and keeps its traceback
        one_line = _one_line(err)
        if one_line is None or args.verbose >= 2:
            raise
        print(f"cms-anomaly {args.command}: error: {one_line}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
