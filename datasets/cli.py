"""``cms-anomaly generate`` and ``cms-anomaly opendata``."""

from __future__ import annotations

import argparse

from cms_anomaly.core.argtypes import positive_float, positive_int
from cms_anomaly.core.constants import SQRT_S


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "generate",
        help="generate NanoAOD-schema samples with Pythia 8 + a CMS-like detector response",
        description=(
            "Generate events with Pythia 8 (13 TeV), pass them through a parametric CMS-like "
            "detector response and write NanoAOD-schema ROOT files plus a coffea fileset JSON. "
            "Jobs run on a local Dask cluster by default (or --scheduler); finished files are "
            "skipped, so an interrupted production resumes where it stopped."
        ),
    )
    p.add_argument("processes", nargs="*", metavar="PROCESS", help="process names (see --list) or paths to card files")
    p.add_argument("--list", action="store_true", help="list the available process cards and exit")
    p.add_argument("--events", type=positive_int, default=1000, help="events per process (default: 1000)")
    p.add_argument(
        "--events-per-file",
        type=positive_int,
        default=None,
        help="events per output file (default: 5000, or --events if smaller)",
    )
    p.add_argument("--seed", type=int, default=1, help="base random seed (default: 1)")
    p.add_argument("--out", default="out/samples", help="output directory (default: out/samples)")
    p.add_argument(
        "--executor",
        choices=("dask", "futures", "local"),  # production.EXECUTORS, not imported: it loads Pythia and fastjet
        default="dask",
        help="dask: local Dask cluster or --scheduler (default); futures: a pool of --workers processes; "
        "local: in this process, one job at a time",
    )
    p.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler, e.g. tcp://host:8786")
    p.add_argument(
        "--workers", type=positive_int, default=None, help="local cluster or pool workers (default: number of cores)"
    )
    p.add_argument(
        "--sqrt-s",
        type=positive_float,
        default=SQRT_S,
        help=f"pp centre-of-mass energy in GeV (default: {SQRT_S:g}; 8000 for 2012)",
    )
    p.add_argument(
        "--tail-bias",
        action="store_true",
        help="generate the processes whose card has a [bias] table (--list marks them) with Pythia's "
        "phase-space bias: hard events sampled more often, each with its compensating genWeight",
    )
    p.add_argument(
        "--data-like",
        action="store_true",
        help="write the files as collision-data NanoAOD has them: no PFCands_*, no generator branches "
        "(GenPart_*, genWeight, generator matching of the objects), marked is_data with its lumi_pb in the fileset",
    )
    p.set_defaults(func=_generate)
    register_opendata(subparsers)


def register_opendata(subparsers: argparse._SubParsersAction) -> None:
    campaigns = ("2012", "2016")  # opendata.MANIFESTS, not imported: the CLI stays light
    p = subparsers.add_parser(
        "opendata",
        help="CMS Open Data manifests (2012, 2016): list the records, build a coffea fileset",
        description=(
            "Real CMS Open Data: 2012 (8 TeV, NanoAODRun1) for the top rediscovery and 2016 (13 TeV, NanoAODv9: "
            "SingleMuon / SingleElectron Run2016G-H, W, Z/gamma*, ttbar, single top, dibosons). 'list' shows the "
            "records and which of them are readable (NanoAOD) or AOD-only; 'fileset' resolves the readable "
            "records' files from the CERN Open Data portal (network needed once; lists are cached per record id) "
            "and writes a coffea fileset JSON whose metadata carry the era, and for data the certified-luminosity "
            "JSON (lumimask) and the primary dataset."
        ),
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    p_list = actions.add_parser("list", help="list the records of the manifest")
    p_list.add_argument("--campaign", choices=campaigns, default="2012")
    p_list.set_defaults(func=_opendata_list)
    p_fs = actions.add_parser("fileset", help="write a coffea fileset of the readable records")
    p_fs.add_argument("--campaign", choices=campaigns, default="2012")
    p_fs.add_argument(
        "--out", default=None, help="fileset JSON to write (default: out/opendata<campaign>/fileset.json)"
    )
    p_fs.add_argument("--cache", default=None, help="directory of per-record file lists (default: next to --out)")
    p_fs.add_argument("--datasets", nargs="*", default=None, help="restrict to these datasets")
    p_fs.set_defaults(func=_opendata_fileset)


def _opendata_list(args: argparse.Namespace) -> int:
    from cms_anomaly.datasets import opendata

    manifest = opendata.load_manifest(args.campaign)
    print(
        f"{manifest.campaign} (sqrt(s) = {manifest.sqrt_s:g} GeV, era {manifest.era}, data certified by {manifest.lumimask})"
    )
    print(f"{'dataset':24s} {'recid':>6s} {'format':12s} {'xsec [pb]':>10s} {'lumi [fb-1]':>11s}  usable")
    for r in manifest.records:
        usable = "yes" if r.readable else "needs AOD -> NanoAOD (CMSSW_5_3_32)"
        xsec = f"{r.xsec_pb:10.6g}" if r.xsec_pb is not None else " " * 10
        lumi = f"{r.lumi_fb:11.3f}" if r.lumi_fb is not None else " " * 11
        print(f"{r.dataset:24s} {r.recid:6d} {r.format:12s} {xsec} {lumi}  {usable}")
    return 0


def _opendata_fileset(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from cms_anomaly.core.atomic import write_text_atomic
    from cms_anomaly.datasets import opendata

    out = Path(args.out or f"out/opendata{args.campaign}/fileset.json")
    fileset = opendata.build_fileset(
        campaign=args.campaign, cache=args.cache or out.parent / "filelists", datasets=args.datasets
    )
    write_text_atomic(out, json.dumps(fileset, indent=2) + "\n")
    print(f"wrote {out}: " + ", ".join(f"{k} ({len(v['files'])} files)" for k, v in fileset.items()))
    return 0


def _generate(args: argparse.Namespace) -> int:
    from cms_anomaly.datasets import cards, production

    if args.list:
        for card in cards.all_cards():
            kind = "BSM" if card.is_signal else "SM "
            bias = f"  [bias: pTHat^{card.bias.power:g} / {card.bias.reference:g} GeV]" if card.bias else ""
            print(f"{card.name:14s} {kind}  {card.description}{bias}")
        return 0
    if not args.processes:
        raise SystemExit("cms-anomaly generate: give at least one PROCESS (see --list)")
    result = production.produce(
        args.processes,
        out=args.out,
        events=args.events,
        events_per_file=args.events_per_file,
        seed=args.seed,
        executor=args.executor,
        scheduler=args.scheduler,
        workers=args.workers,
        sqrt_s=args.sqrt_s,
        tail_bias=args.tail_bias,
        data_like=args.data_like,
    )
    print(production.summarise(result))
    return 0
