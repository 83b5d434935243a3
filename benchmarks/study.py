"""What the known-answer studies of the hunts share: where their productions live, the loop over
signal-free seeds, and the command line's run-print-write (``hunt_study.py``, ``hunt_classes_study.py``)."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def samples_dir(args: argparse.Namespace) -> Path:
    """The productions' directory: ``--samples``, else ``OUT/samples``."""
    return Path(args.samples) if args.samples else Path(args.out) / "samples"


def null_seeds(
    args: argparse.Namespace, run: Callable[[int], Any], row: Callable[[int, Any, float], str], lines: list[str]
) -> list[Any]:
    """``run(seed)`` for the signal-free pseudo-data seeds 1..``--seeds``; each result's table row
    ``row(seed, result, seconds)`` is appended to ``lines`` and printed as it comes. The results, in order."""
    results = []
    for seed in range(1, args.seeds + 1):
        t = time.perf_counter()
        results.append(run(seed))
        lines.append(row(seed, results[-1], time.perf_counter() - t))
        print(lines[-1], flush=True)
    return results


def main(parser: argparse.ArgumentParser, modes: dict[str, Callable[[argparse.Namespace], list[str]]]) -> None:
    """Parse the study's arguments, run the mode named by ``mode``, print its table and write it to OUT/study.md."""
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    t = time.perf_counter()
    lines = modes[args.mode](args)
    lines.append(f"\nWall time {time.perf_counter() - t:.0f} s.")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "study.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
