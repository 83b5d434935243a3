"""``cms-anomaly run``: the processor over a fileset, optionally with model scorers.

Only ``argparse`` is imported at module level; coffea, dask and the processor are imported in
the command functions.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cms_anomaly.analyses.analysis import SCHEDULER_HELP
from cms_anomaly.core.argtypes import positive_float, positive_int
from cms_anomaly.core.atomic import owned_directory, usable_directory, write_text_atomic
from cms_anomaly.processors.runner import (
    CHUNKSIZE,
    EXECUTORS,
    REMOTE_TIMEOUT_S,
    format_summary,
    load_fileset,
    make_executor,
    run_graph,
    run_processor,
    save_outputs,
)


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
    features_to = _features_location(args.features_to)
    if args.mode == "graph" and (args.skip_bad_files or args.features or features_to):
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
            features_dir=features_to or (stage / "features" if args.features else None),
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
            **({"feature_tables": features_to} if features_to else {}),
            "skipped_files": sorted({s for res in output.values() for s in res.get("skipped_files", [])}),
        }
        write_text_atomic(stage / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    print(format_summary(output, selection=args.selection))
    print(
        f"\nhistograms: {out / paths['coffea'].name}  {out / paths['root'].name}  (manifest: {out / 'manifest.json'})"
    )
    if features_to or args.features:
        print(f"feature tables: {features_to or out / 'features'}")
    return 0


def _features_location(given: str | None) -> str | None:
    """``--features-to`` as the workers will use it: an fsspec URL, a local path as its ``file://`` URL;
    resolved on the client (a relative path against its working directory)."""
    from cms_anomaly.processors import storage

    if given is None:
        return None
    resolved = storage.resolve(given)
    return resolved if storage.is_url(resolved) else f"file://{resolved}"


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
    _add_execution_arguments(p)
    p.add_argument("--features", action="store_true", help="also write per-event parquet tables to DIR/features/")
    p.add_argument(
        "--features-to",
        metavar="URL",
        default=None,
        help="write the per-event parquet tables to this fsspec URL instead of DIR/features/ (file:///abs/dir, "
        "root://host:port//abs/dir, s3://... with its fsspec package installed; a path is taken as file://); "
        "every worker must write there (checked before the first chunk)",
    )
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
    _add_correction_arguments(p)
    p.set_defaults(func=_cmd_run)


def _add_execution_arguments(p: argparse.ArgumentParser) -> None:
    """The options of where and in what chunks ``cms-anomaly run`` executes."""
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


def _add_correction_arguments(p: argparse.ArgumentParser) -> None:
    """The options of the scale factors of simulation, over the config's ``[corrections]``."""
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
