"""Reference histograms of the processor (the Analysis Grand Challenge's validation pattern).

The processor's histograms on the real CMS NanoAOD samples and on the fixed-seed generated samples
of the test cocktail, stored as JSON (bin contents and variances, flow bins included) in
``processor_reference.json`` next to this file. ``tests/test_reference_histograms.py`` compares a
fresh run bin by bin: a change of physics (an object cut, the detector response, a feature) shows up
as a failing test naming the dataset, histogram and bins, and is accepted by rewriting the file::

    python tests/reference/histograms.py      # then review and commit the diff

The generated samples depend on Pythia (pinned) and the seed only, so the file is reproducible on
the machines this project is tested on.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "processor_reference.json"
#: datasets of the reference: the real samples and generated processes of the test cocktail
REAL = ("ttbar2015", "dy", "dimuon", "pfnano")
GENERATED = ("ttbar", "wjets", "zjets")
SELECTION = "inclusive"


def fileset(real_files: dict[str, Path], cocktail: Path) -> dict[str, Any]:
    """The reference fileset: real files as they are, generated files of the cocktail."""
    from cms_anomaly.processors.runner import load_fileset

    fs = {
        name: {"files": {str(real_files[name]): "Events"}, "metadata": {"is_data": name == "dimuon"}} for name in REAL
    }
    generated = load_fileset(cocktail / "fileset.json")
    fs.update({name: generated[name] for name in GENERATED})
    return fs


def run(fs: dict[str, Any]) -> dict[str, Any]:
    """The processor's output on ``fs`` (iterative executor, unit luminosity: genWeight only)."""
    from cms_anomaly.processors.processor import AnomalyProcessor
    from cms_anomaly.processors.runner import make_executor, run_processor

    with make_executor("iterative") as ex:
        return run_processor(fs, AnomalyProcessor(selection=SELECTION), executor=ex, chunksize=100_000)


def as_table(output: dict[str, Any]) -> dict[str, dict[str, dict[str, list]]]:
    """``{dataset: {histogram: {"values": [...], "variances": [...]}}}`` (flow bins, flattened; the
    nominal of a histogram with a ``systematic`` axis)."""
    from cms_anomaly.processors.histograms import nominal

    table: dict[str, dict[str, dict[str, list]]] = {}
    for dataset in sorted(output):
        table[dataset] = {}
        for name, full in sorted(output[dataset]["hists"].items()):
            h = nominal(full)
            h = h[{"dataset": dataset}] if "dataset" in h.axes.name else h
            values = np.asarray(h.values(flow=True), dtype=np.float64).ravel()
            variances = np.asarray(h.variances(flow=True), dtype=np.float64).ravel()
            table[dataset][name] = {
                "shape": list(h.values(flow=True).shape),
                "values": [float(f"{v:.10g}") for v in values],
                "variances": [float(f"{v:.10g}") for v in variances],
            }
    return table


def main() -> int:
    sys.path.insert(0, str(HERE.parent))
    from cms_anomaly.datasets import production
    from conftest import COCKTAIL_EVENTS, COCKTAIL_SEED, REAL_NANOAOD_FILES, cocktail_cache_name  # the suite's samples

    cocktail = HERE.parents[1] / ".pytest_cache" / "d" / cocktail_cache_name()
    for process in GENERATED:
        production.produce(
            [process], out=cocktail, events=COCKTAIL_EVENTS[process], seed=COCKTAIL_SEED, executor="local"
        )
    table = as_table(run(fileset(REAL_NANOAOD_FILES, cocktail)))
    REFERENCE.write_text(json.dumps(table, separators=(",", ":"), sort_keys=True) + "\n")
    print(f"wrote {REFERENCE} ({REFERENCE.stat().st_size / 1024:.0f} kB): review the diff and commit it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
