"""``cms-anomaly run`` (the processor over a fileset, optionally with model scorers) and its
benchmark ``cms-anomaly bench processor``.

Only ``argparse`` is imported at module level; coffea, dask and the processor are imported in
the command functions.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cms_anomaly.analyses.analysis import SCHEDULER_HELP
from cms_anomaly.datasets.argtypes import non_negative_int, positive_float, positive_int
from cms_anomaly.datasets.atomic import atomic_output, owned_directory, usable_directory, write_text_atomic
from cms_anomaly.processors.runner import (
    CHUNKSIZE,
    EXECUTORS,
    REMOTE_TIMEOUT_S,
    fileset_from_files,
    format_summary,
    load_fileset,
    make_executor,
    run_graph,
    run_processor,
    save_outputs,
)


# --------------------------------------------------------------------------- cms-anomaly run
def _cmd_run(args: argparse.Namespace) -> int:
    from cms_anomaly.processors.processor import AnomalyProcessor

    fileset = load_fileset(args.fileset)
    if args.lumi is not None:  # normalising to a luminosity needs the cross section (sumw: metadata or Runs trees)
        unnormalisable = [
            name
            for name, entry in fileset.items()
            if not entry["metadata"].get("is_data") and "xsec_pb" not in entry["metadata"]
        ]
        if unnormalisable:
            print(
                f"cms-anomaly run: error: --lumi {args.lumi:g}: simulated dataset(s) {unnormalisable} of "
                f"{args.fileset} have no xsec_pb in their metadata (mark data with is_data: true)",
                file=sys.stderr,
            )
            return 2
    scorers = {}
    for model in args.model or []:
        from cms_anomaly.models.scorers import load_scorer

        scorer = load_scorer(model)
        scorers[scorer.name] = scorer
    out = usable_directory(args.out)  # resolved on the client before anything is submitted
    if args.mode == "graph" and (args.skip_bad_files or args.features):
        print(
            "cms-anomaly run: error: --skip-bad-files and --features need --mode runner (feature tables are "
            "named by chunk)",
            file=sys.stderr,
        )
        return 2
    # the run owns OUT: a concurrent run is refused; its outputs are staged and replace an earlier run's
    # only once it has finished (an interrupted run leaves the previous results as they were)
    with owned_directory(out, replace=RUN_OUTPUTS, last="manifest.json") as stage:
        proc = AnomalyProcessor(
            selection=args.selection,
            config=run_config(args),
            scorers=scorers,
            features_dir=stage / "features" if args.features else None,
            lumi_pb=args.lumi,
            allow_missing=tuple(c for c in (args.allow_missing or "").split(",") if c),
        )
        if args.mode == "graph":
            with make_executor("dask", scheduler=args.scheduler, workers=args.workers) as executor:
                output = run_graph(fileset, proc, step_size=args.chunksize, client=executor.client)
        else:
            with make_executor(args.executor, scheduler=args.scheduler, workers=args.workers) as executor:
                output = run_processor(
                    fileset,
                    proc,
                    executor=executor,
                    chunksize=args.chunksize,
                    maxchunks=args.maxchunks,
                    skip_bad_files=args.skip_bad_files,
                    timeout=args.timeout,
                )
        paths = save_outputs(output, stage)
        written = [paths["coffea"], paths["root"], *sorted(stage.glob("features/**/*.parquet"))]
        manifest = {
            "command": "run",
            "fileset": str(Path(args.fileset).resolve()),
            "selection": args.selection,
            "mode": args.mode,
            "files": [str(p.relative_to(stage)) for p in written],
            "skipped_files": sorted({s for res in output.values() for s in res.get("skipped_files", [])}),
        }
        write_text_atomic(stage / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    print(format_summary(output, selection=args.selection))
    print(
        f"\nhistograms: {out / paths['coffea'].name}  {out / paths['root'].name}  (manifest: {out / 'manifest.json'})"
    )
    if args.features:
        print(f"feature tables: {out / 'features'}")
    return 0


#: what ``cms-anomaly run`` writes into its output directory (a rerun replaces all of them together)
RUN_OUTPUTS = ("features", "histograms.coffea", "histograms.root", "manifest.json")


def register(subparsers: Any) -> None:
    """Add ``cms-anomaly run``."""
    p = subparsers.add_parser(
        "run",
        help="run the anomaly-detection processor over a fileset",
        description="Apply a named selection to every dataset of a coffea fileset JSON, compute the features "
        "(HLF-21/24, m_jj, large-R, ADC2021 objects, RMM), fill weighted histograms (saved as "
        "DIR/histograms.coffea and DIR/histograms.root) and print the cut-flow per dataset. "
        "MC is normalised to --lumi with the fileset metadata (xsec_pb, and sumw, else the sum of "
        "genEventSumw over the files' Runs trees); is_data "
        "datasets are unweighted.",
    )
    p.add_argument("fileset", help="coffea fileset JSON ({dataset: {files: {path: tree}, metadata: {...}}})")
    p.add_argument(
        "--selection",
        default="single_lepton",
        help="named selection of processors/selections.py: inclusive, single_lepton, single_lepton_slt, "
        "top_rediscovery, rmm_lepton, dijet (default: single_lepton)",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--mode",
        choices=("runner", "graph"),
        default="runner",
        help="runner: coffea processor.Runner (default); graph: dask-awkward task graph "
        "(dataset_tools.apply_to_fileset + dask.compute) on a local or --scheduler cluster",
    )
    p.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="dask",
        help="dask: local Dask cluster or --scheduler (default); futures: process pool; iterative: in-process",
    )
    p.add_argument("--scheduler", default=None, help=SCHEDULER_HELP)
    p.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="local workers (default: number of cores); on a dask-gateway or configured cluster the workers to "
        "scale it to (default: 2)",
    )
    p.add_argument("--chunksize", type=positive_int, default=CHUNKSIZE, help=f"events per chunk (default: {CHUNKSIZE})")
    p.add_argument("--maxchunks", type=positive_int, default=None, help="process at most this many chunks per file")
    p.add_argument("--features", action="store_true", help="also write per-event parquet tables to DIR/features/")
    p.add_argument(
        "--allow-missing",
        default=None,
        metavar="COLLECTION[,...]",
        help="collections a skimmed file may lack (e.g. Photon): treated as empty, warned once per file "
        "and counted in the output (default: a missing collection is an error)",
    )
    p.add_argument(
        "--skip-bad-files",
        action="store_true",
        help="leave out unreadable input files (listed in the summary and the output) instead of stopping",
    )
    p.add_argument(
        "--timeout",
        type=positive_int,
        default=REMOTE_TIMEOUT_S,
        help=f"seconds to wait for a remote (root://, https://) file before it counts as unreadable "
        f"(default: {REMOTE_TIMEOUT_S})",
    )
    p.add_argument(
        "--lumi", type=positive_float, default=None, help="integrated luminosity in pb^-1 for MC normalisation"
    )
    p.add_argument("--config", default=None, help="analysis configuration TOML (object cuts, sqrt(s), thresholds)")
    p.add_argument(
        "--model", action="append", help="model file (.pt / .json with .card.json) to score events; repeatable"
    )
    p.add_argument(
        "--corrections",
        metavar="JSON",
        default=None,
        help="CMS correctionlib JSON of the scale factors of simulation (overrides [corrections] file)",
    )
    p.add_argument(
        "--muon-id-sf", metavar="NAME", default=None, help="its muon ID scale factor, e.g. NUM_LooseID_DEN_TrackerMuons"
    )
    p.add_argument(
        "--muon-iso-sf",
        metavar="NAME",
        default=None,
        help="its muon isolation scale factor, e.g. NUM_LooseRelIso_DEN_LooseID",
    )
    p.add_argument("--btag-sf", metavar="NAME", default=None, help="its b-tag shape scale factor, e.g. deepJet_shape")
    p.set_defaults(func=_cmd_run)


def run_config(args: argparse.Namespace) -> Any:
    """The ``AnalysisConfig`` of ``--config`` with the ``--corrections`` / ``--muon-*-sf`` / ``--btag-sf``
    options over its ``[corrections]`` section."""
    import dataclasses

    from cms_anomaly.processors.config import CorrectionConfig, load_config

    config = load_config(args.config)
    given = {
        key: value
        for key, value in (
            ("file", args.corrections),
            ("muon_id_sf", args.muon_id_sf),
            ("muon_iso_sf", args.muon_iso_sf),
            ("btag_sf", args.btag_sf),
        )
        if value is not None
    }
    if not given:
        return config
    corrections: CorrectionConfig = dataclasses.replace(config.corrections, **given)
    return dataclasses.replace(config, corrections=corrections)


# --------------------------------------------------------------------------- cms-anomaly bench processor
def _branches_read(fileset: Mapping[str, Any], selection: str, *, events: int = 2000) -> list[str]:
    """The branches the processor reads, from NanoEvents' access log on the first events of the first file."""
    from cms_anomaly.processors import schema
    from cms_anomaly.processors.processor import AnomalyProcessor
    from coffea.nanoevents import NanoEventsFactory

    name, entry = next(iter(fileset.items()))
    path, tree = next(iter(entry["files"].items()))
    log: list[Any] = []
    chunk = NanoEventsFactory.from_root(
        {path: tree},
        schemaclass=schema.AnalysisNanoAODSchema,
        mode="virtual",
        entry_stop=events,
        access_log=log,
        metadata={**entry.get("metadata", {}), "dataset": name, "filename": path},
    ).events()
    AnomalyProcessor(selection=selection).process(chunk)
    return sorted({access.branch for access in log})


def _bench_floor(fileset: Mapping[str, Any], branches: list[str], chunksize: int) -> tuple[int, float]:
    """Bare uproot read of ``branches`` (those the processor reads), one core, in the processor's chunks:
    (events, seconds).

    Each file is read in the ranges coffea's Runner gives the processor (``round(entries / chunksize)``
    equal ones). A whole-file read, the floor up to stop 25, allocates every column of the file at once:
    its time moved between 1.9 and 4.4 s for the same 180k events (page faults of the 4.7 GB it holds),
    the chunked read's between 1.70 and 1.79 s.
    """
    import math
    import time

    import uproot

    n, seconds = 0, 0.0
    for entry in fileset.values():
        for path, tree in entry["files"].items():
            with uproot.open(path) as f:
                t = f[tree]
                entries = t.num_entries
                step = math.ceil(entries / max(round(entries / chunksize), 1))  # coffea's FileMeta.chunks
                for start in range(0, entries, step):
                    stop = min(start + step, entries)
                    begin = time.perf_counter()
                    arrays = t.arrays(branches, entry_start=start, entry_stop=stop, library="ak")
                    seconds += time.perf_counter() - begin
                    n += len(arrays)
                    del arrays
    return n, seconds


def _bench_rmm(fileset: Mapping[str, Any], *, repeat: int = 3) -> tuple[int, float, float]:
    """RMM builder alone on the events' objects: (events, kernel seconds, padding+kernel seconds)."""
    import time

    import numpy as np
    from cms_anomaly.processors import rmm, schema
    from cms_anomaly.processors.config import AnalysisConfig
    from cms_anomaly.processors.features import rmm_collections
    from cms_anomaly.processors.objects import build_objects
    from coffea.nanoevents import NanoEventsFactory

    config = AnalysisConfig()
    n, t_kernel, t_full = 0, 0.0, 0.0
    for entry in fileset.values():
        for path, tree in entry["files"].items():
            events = NanoEventsFactory.from_root(
                {path: tree}, schemaclass=schema.AnalysisNanoAODSchema, mode="eager"
            ).events()
            era = (entry.get("metadata") or {}).get("era")
            objs = build_objects(events, config=config.objects, era=era, source=path)
            colls = rmm_collections(objs, config=config)
            first = np.arange(len(objs)) < 1
            rmm.build_rmm([c.events(first) for c in colls], objs.met_pt[:1], objs.met_phi[:1])  # compile / warm up
            best_k, best_f = float("inf"), float("inf")
            for _ in range(repeat):
                start = time.perf_counter()
                padded = rmm.pad_objects(colls)
                mid = time.perf_counter()
                rmm.rmm_from_padded(padded, objs.met_pt, objs.met_phi)
                end = time.perf_counter()
                best_k, best_f = min(best_k, end - mid), min(best_f, end - start)
            n += len(objs)
            t_kernel += best_k
            t_full += best_f
    return n, t_kernel, t_full


def _peak_rss_gb() -> float:
    """Peak resident memory of this process in GB: Linux's VmHWM (reset at exec, unlike ru_maxrss,
    which a spawned worker inherits from its parent); ru_maxrss where /proc is absent."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1e6  # kB
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def _bench_processor(
    fileset: Mapping[str, Any],
    *,
    workers: int,
    chunksize: int,
    selection: str,
    repeat: int = 1,
    uproot_options: Mapping[str, Any] | None = None,
) -> tuple[int, float, float]:
    """(events, seconds of the fastest of ``repeat`` timed runs, peak RSS of the largest worker in GB).

    ``workers`` 0: coffea's IterativeExecutor in this process (no scheduler, no client, no
    serialisation), which with the 1-worker Dask figure shows the Dask overhead. The runs share one
    executor (one cluster start-up); the fastest is the least disturbed by the rest of the machine.
    """
    import time

    from cms_anomaly.processors.processor import AnomalyProcessor

    proc = AnomalyProcessor(selection=selection)
    with make_executor("iterative" if workers == 0 else "dask", workers=workers or None) as executor:
        # warm-up so that worker start-up, imports, numba loading and the growth of the heap to a
        # chunk's arrays are not timed (a long run pays them once): one chunk of the measured size in
        # every worker (a warm-up through the executor would warm only the worker it lands on)
        client = getattr(executor, "client", None)
        if client is not None:
            client.run(_warm_up, fileset, selection, chunksize)
        else:
            _warm_up(fileset, selection, chunksize)
        seconds = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            out = run_processor(fileset, proc, executor=executor, chunksize=chunksize, uproot_options=uproot_options)
            seconds = min(seconds, time.perf_counter() - start)
        peak = max(client.run(_peak_rss_gb).values()) if client is not None else _peak_rss_gb()
    return sum(r["nevents"] for r in out.values()), seconds, peak


def _warm_up(fileset: Mapping[str, Any], selection: str, chunksize: int = 2000) -> None:
    """Process one chunk of the first file in this process (imports, numba kernels, schema, heap)."""
    from cms_anomaly.processors.processor import AnomalyProcessor
    from coffea.processor import IterativeExecutor

    name, entry = next(iter(fileset.items()))
    path, tree = next(iter(entry["files"].items()))
    run_processor(
        {name: {"files": {path: tree}, "metadata": entry.get("metadata", {})}},
        AnomalyProcessor(selection=selection),
        executor=IterativeExecutor(status=False),
        chunksize=chunksize,
        maxchunks=1,
    )


#: events per basket of the benchmark's replicated file
REPLICATE_BASKET_EVENTS = 5000


def replicate_events(fileset: Mapping[str, Any], *, copies: int, out_path: str | Path) -> Path:
    """Write the branches the features use, from every file of ``fileset``, ``copies`` times into one file.

    Used by the benchmark to measure at a realistic chunk size (the generated test files hold a
    few thousand events each, where per-chunk overheads dominate). ZSTD-compressed like the
    generated files; written atomically.
    """
    import awkward as ak
    import uproot
    from cms_anomaly.processors import schema

    arrays, collections = [], set()
    for entry in fileset.values():
        for path, tree in entry["files"].items():
            with uproot.open(path) as f:
                t = f[tree]
                keys = t.keys()
                variant = schema.detect_variant(keys, source=path)
                used = [
                    b
                    for b in schema.branches_used(variant, keys)
                    if not (b.startswith("n") and b[1:] in {k.split("_")[0] for k in keys})
                ]
                used += [b for b in ("run", "luminosityBlock", "event") if b in keys and b not in used]
                collections |= {b.split("_", 1)[0] for b in used if f"n{b.split('_', 1)[0]}" in keys}
                arrays.append(t.arrays(used))
    merged = ak.concatenate(arrays * copies)
    out: dict[str, Any] = {}
    groups: dict[str, dict[str, Any]] = {}
    for name in ak.fields(merged):
        coll = name.split("_", 1)[0]
        if coll in collections:
            groups.setdefault(coll, {})[name.split("_", 1)[1]] = merged[name]
        else:
            out[name] = merged[name]
    out.update({coll: ak.zip(fields) for coll, fields in groups.items()})
    out_path = Path(out_path)
    with atomic_output(out_path) as tmp, uproot.recreate(tmp, compression=uproot.ZSTD(5)) as fout:
        tree = fout.mktree(
            "Events",
            {k: ak.type(v).content for k, v in out.items()},
            counter_name=lambda c: f"n{c}",
            field_name=lambda o, i: f"{o}_{i}",
        )
        # one basket per REPLICATE_BASKET_EVENTS events, as in real NanoAOD (a single extend would write
        # one basket per branch that every chunk has to decompress whole: a benchmark artefact)
        n = len(merged)
        for start in range(0, n, REPLICATE_BASKET_EVENTS):
            tree.extend({k: v[start : start + REPLICATE_BASKET_EVENTS] for k, v in out.items()})
    return out_path


def _cmd_bench(args: argparse.Namespace) -> int:
    import tempfile

    inputs = args.inputs
    if len(inputs) == 1 and inputs[0].endswith(".json"):
        fileset = load_fileset(inputs[0])
    else:
        fileset = fileset_from_files(inputs)
    tmpdir = None
    if args.replicate > 1:
        tmpdir = tempfile.TemporaryDirectory(prefix="cms-anomaly-bench-")
        Path(tmpdir.name).chmod(0o755)  # readable by a local XRootD server running as another user
        path = replicate_events(fileset, copies=args.replicate, out_path=Path(tmpdir.name) / "replicated.root")
        fileset = fileset_from_files([str(path)], dataset="replicated")
        print(f"input replicated {args.replicate}x into one file: {path}")
    try:
        _bench_report(fileset, args)
    finally:
        if tmpdir is not None:
            tmpdir.cleanup()
    return 0


#: issue 15's goals for the processor on one core: a fraction of the floor and an absolute rate
PROCESSOR_FLOOR_GOAL = 0.7
PROCESSOR_RATE_GOAL = 30_000


def _bench_report(fileset: Mapping[str, Any], args: argparse.Namespace) -> None:
    branches = _branches_read(fileset, args.selection)
    n_floor, t_floor = min(
        (_bench_floor(fileset, branches, args.chunksize) for _ in range(args.repeat)), key=lambda r: r[1]
    )
    floor = n_floor / t_floor
    n_rmm, t_kernel, t_rmm = _bench_rmm(fileset)
    print(
        f"events: {n_floor} in {sum(len(e['files']) for e in fileset.values())} file(s); branches read: "
        f"{len(branches)} (those the processor reads); chunksize {args.chunksize}; selection {args.selection}"
        + (f"; each rate the fastest of {args.repeat} runs" if args.repeat > 1 else "")
    )
    print(f"{'stage':<36}{'events/s':>14}{'ratio':>10}  target")
    print(f"{'bare uproot read (floor), 1 core':<36}{floor:>14.0f}{1.0:>10.2f}")
    rmm_rate, rmm_full = n_rmm / t_kernel, n_rmm / t_rmm
    print(
        f"{'RMM kernel alone, 1 core':<36}{rmm_rate:>14.0f}{rmm_rate / floor:>10.2f}  >= 200000 ev/s: "
        f"{'PASS' if rmm_rate >= 2e5 else 'MISS'}"
    )
    print(
        f"{'RMM padding + kernel, 1 core':<36}{rmm_full:>14.0f}{rmm_full / floor:>10.2f}  >= 200000 ev/s: "
        f"{'PASS' if rmm_full >= 2e5 else 'MISS'}"
    )
    rates = {}
    print(f"{'':<36}{'':>14}{'':>10}  events/s per worker, peak RSS per worker")
    for workers in args.workers:
        n, seconds, peak = _bench_processor(
            fileset, workers=workers, chunksize=args.chunksize, selection=args.selection, repeat=args.repeat
        )
        rates[workers] = n / seconds
        label = "processor, in-process (no Dask)" if workers == 0 else f"processor, Dask {workers} worker(s)"
        per = rates[workers] / max(workers, 1)
        print(
            f"{label:<36}{rates[workers]:>14.0f}{rates[workers] / floor:>10.2f}  {per:>9.0f} ev/s/worker, "
            f"{peak:.2f} GB",
            flush=True,
        )
    for workers in sorted(w for w in rates if w <= 1):
        label = "in-process" if workers == 0 else "1 Dask worker"
        ok = rates[workers] >= PROCESSOR_FLOOR_GOAL * floor and rates[workers] >= PROCESSOR_RATE_GOAL
        print(
            f"target processor ({label}) >= {PROCESSOR_FLOOR_GOAL} x floor and >= {PROCESSOR_RATE_GOAL / 1e3:.0f}k "
            f"ev/s per core: {'PASS' if ok else 'MISS'}"
        )
    if args.xrootd:
        _bench_remote(fileset, args)
    if 1 in rates:
        if 0 in rates:
            print(
                f"Dask overhead at 1 worker (scheduler, client, serialisation): 1 worker / in-process = "
                f"{rates[1] / rates[0]:.2f}"
            )
        for workers in sorted(w for w in rates if w > 1):
            eff = rates[workers] / (workers * rates[1])
            goal = "  >= 0.8 of linear" + (f": {'PASS' if eff >= 0.8 else 'MISS'}" if workers <= 8 else "")
            print(f"scaling {workers} workers / ({workers} x 1 worker) = {eff:.2f}{goal}")


#: the goal for reading through XRootD on loopback: the processor's rate over ``root://`` / on the local files
REMOTE_RATE_GOAL = 0.9


def remote_fileset(fileset: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The same fileset read through a server at ``prefix`` (``root://host:port/``) that exports the
    files' local paths: each file ``/abs/path`` becomes ``prefix + /abs/path``."""
    return {
        name: {
            **entry,
            "files": {prefix.rstrip("/") + "/" + str(Path(f).resolve()): t for f, t in entry["files"].items()},
        }
        for name, entry in fileset.items()
    }


def _bench_remote(fileset: Mapping[str, Any], args: argparse.Namespace) -> None:
    """The processor in-process on the local files and through ``args.xrootd`` (uproot's default source,
    fsspec-xrootd), alternating, the fastest of ``args.repeat`` runs each: events/s and their ratio."""
    sources = {"local files": fileset, "over XRootD": remote_fileset(fileset, args.xrootd)}
    best = dict.fromkeys(sources, 0.0)
    for _ in range(args.repeat):
        for label, files in sources.items():
            n, seconds, _ = _bench_processor(files, workers=0, chunksize=args.chunksize, selection=args.selection)
            best[label] = max(best[label], n / seconds)
    ratio = best["over XRootD"] / best["local files"]
    for label, rate in best.items():
        print(f"{'processor in-process, ' + label:<36}{rate:>14.0f}{rate / best['local files']:>10.2f}")
    print(
        f"target XRootD / local >= {REMOTE_RATE_GOAL} ({args.xrootd}): {'PASS' if ratio >= REMOTE_RATE_GOAL else 'MISS'}"
    )


def register_bench(bench_subparsers: Any) -> None:
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
    p.add_argument("--chunksize", type=positive_int, default=50_000, help="events per chunk (default: 50000)")
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
    p.set_defaults(func=_cmd_bench)
