"""Steps every analysis command shares: a processor pass that writes feature tables, and the report files.

The analysis commands (``rediscover-top``, ``trigger``, ``disco``, ...) differ in their physics; they
all run the coffea processor over a fileset once (or twice, with scores) and write
``summary.md``, ``summary.json`` and ``index.html`` next to their PNG plots.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cms_anomaly.core.argtypes import positive_float, positive_int
from cms_anomaly.processors.runner import ANALYSIS_CHUNKSIZE, EXECUTORS


@dataclass(frozen=True)
class Execution:
    """Where and how the processor runs (the same fields as ``cms-anomaly run``)."""

    executor: str = "dask"
    scheduler: str | None = None
    workers: int | None = None
    chunksize: int = ANALYSIS_CHUNKSIZE
    #: leave unreadable input files out (listed in the output's ``skipped_files``) instead of stopping
    skip_bad_files: bool = False

    @property
    def production_executor(self) -> str:
        """The event-production executor matching this one (see :func:`production_executor`)."""
        return production_executor(self.executor, self.workers)


def production_executor(executor: str, workers: int | None = None) -> str:
    """The event-production executor (:data:`~cms_anomaly.datasets.production.EXECUTORS`) matching a
    processor executor: ``dask`` and ``futures`` alike; ``iterative`` generates in this process
    (``local``), or on a pool of ``workers`` processes when more than one is asked for."""
    if executor in ("dask", "futures"):
        return executor
    return "futures" if workers is not None and workers > 1 else "local"


#: ``--workers`` of every job that generates its samples (see :func:`production_executor`)
#: selected pseudo-data events below which rediscover-top stops (its detectors train on simulation; the
#: pseudo-data are scored and fitted)
MIN_PSEUDO_DATA_EVENTS = 20
#: selected data events below which the hunt stops: it trains its k-fold detectors on the data themselves
MIN_HUNT_DATA_EVENTS = 30

WORKERS_HELP = (
    "local Dask workers or futures processes (default: cores); with --executor iterative, "
    "the processes that generate the samples (default: 1); on a dask-gateway or configured cluster the "
    "workers to scale it to (default: 2)"
)

#: ``--scheduler`` of every command that runs the processor (see :mod:`cms_anomaly.processors.cluster`)
SCHEDULER_HELP = (
    "an existing Dask scheduler (tcp://host:8786) or a dask-gateway server (gateway+https://host, a new "
    "cluster there); without it the Dask config cms-anomaly.cluster (e.g. a dask-jobqueue class) or a local cluster"
)


#: ``--events`` of every job that generates its samples
EVENTS_HELP = "scale factor on the default sample sizes (default: 1)"


def add_production_arguments(
    p: Any,
    *,
    default_out: str,
    default_samples: str | None,
    samples_help: str | None,
    device: bool = True,
    events_help: str = EVENTS_HELP,
) -> None:
    """Command-line options of an analysis that generates (or reuses) its samples and runs the processor.

    ``--samples`` defaults to ``default_samples``, its help naming it after ``samples_help``; with
    ``default_samples`` None (the job's productions then go to ``OUT/samples``) ``samples_help`` is the
    whole help, and with ``samples_help`` None too the job has no ``--samples``.
    """
    p.add_argument("--out", default=default_out, help=f"output directory (default: {default_out})")
    if default_samples is not None:
        p.add_argument(
            "--samples",
            default=default_samples,
            help=f"production + feature tables directory{samples_help or ''} (default: {default_samples}); "
            "finished files and passes are reused",
        )
    elif samples_help is not None:
        p.add_argument("--samples", default=None, help=samples_help)
    p.add_argument("--events", type=positive_float, default=1.0, help=events_help)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--executor", choices=EXECUTORS, default="dask")
    p.add_argument("--scheduler", default=None, help=SCHEDULER_HELP)
    p.add_argument("--workers", type=positive_int, default=None, help=WORKERS_HELP)
    if device:
        p.add_argument("--device", default="auto", help="training device: auto, cpu or cuda")


def execution_from(args: Any) -> Execution:
    """The :class:`Execution` of parsed :func:`add_production_arguments` options."""
    return Execution(executor=args.executor, scheduler=args.scheduler, workers=args.workers)


def processor_pass(
    fileset: dict,
    *,
    out: Path,
    selection: str,
    lumi_pb: float,
    execution: Execution = Execution(),
    scorers: dict | None = None,
    features: bool,
    **options: Any,
) -> dict:
    """Run :class:`AnomalyProcessor` with ``selection`` over ``fileset``; histograms saved under ``out``.

    With ``features`` the per-event tables go to ``out/features``. The outputs are staged and replace an
    earlier run's (its tables too: their chunk names would differ and both would be read) only when the
    pass has finished; an interrupted pass leaves the previous ones as they were. ``options`` go to the
    processor (``score_features``, ``split``).
    """
    from cms_anomaly.core.atomic import staged_outputs, usable_directory
    from cms_anomaly.processors.processor import AnomalyProcessor
    from cms_anomaly.processors.runner import make_executor, run_processor, save_outputs

    out = usable_directory(out)
    names = ("histograms.coffea", "histograms.root", *(("features",) if features else ()))
    with staged_outputs(out, names=names) as stage:
        proc = AnomalyProcessor(
            selection=selection,
            scorers=scorers,
            lumi_pb=lumi_pb,
            features_dir=str(stage / "features") if features else None,
            **options,
        )
        kind = execution.executor if execution.executor in EXECUTORS else "iterative"
        with make_executor(kind, scheduler=execution.scheduler, workers=execution.workers) as executor:
            output = run_processor(
                fileset, proc, executor=executor, chunksize=execution.chunksize, skip_bad_files=execution.skip_bad_files
            )
        save_outputs(output, stage)
    return output


def fmt(x: float | None, digits: int = 3) -> str:
    """A number for a report table; ``n/a`` for None and non-finite values."""
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{digits}g}"


def json_default(o: Any) -> Any:
    """``json.dumps`` fallback for numpy scalars/arrays and paths."""
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


def html_page(markdown: str, *, title: str) -> str:
    """A minimal HTML rendering of a report (headings, tables, images, paragraphs)."""
    import html

    out, in_table = (
        [
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}td,th{border:1px solid #999;"
            "padding:3px 8px}table{border-collapse:collapse}img{max-width:48%}</style></head><body>"
        ],
        False,
    )
    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
            if set("".join(cells)) <= {"-", " "}:
                continue
            if not in_table:
                out.append("<table>")
                in_table = True
                out.append("<tr>" + "".join(f"<th>{c}</th>" for c in cells) + "</tr>")
            else:
                out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        if line.startswith("# "):
            out.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            out.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("!["):
            src = line[line.index("(") + 1 : -1]
            out.append(f"<img src='{html.escape(src)}'>")
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    if in_table:
        out.append("</table>")
    return "\n".join([*out, "</body></html>"])


def report_footer(pngs: list[Path], seconds: dict[str, float]) -> list[str]:
    """The closing lines every report shares: its plots and where the wall time went."""
    parts = ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items() if k != "total")
    return [
        "## Plots",
        "",
        *[f"![{p.stem}]({p.name})" for p in pngs],
        "",
        f"Wall time: {seconds['total']:.0f} s ({parts}).",
    ]


def print_report(summary: Path) -> int:
    """Print a report's ``summary.md`` and where its HTML page is (the analysis commands' output)."""
    print(summary.read_text())
    print(f"report: {summary.parent / 'index.html'}")
    return 0


def fresh_report_dir(out: Path) -> Path:
    """``out/report``, created, without the PNGs and summaries of an earlier run (a rerun whose plots
    differ, e.g. a fit that now has too few bins, must not leave the old figures beside the new report)."""
    report_dir = Path(out) / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    for old in [*report_dir.glob("*.png"), *(report_dir / n for n in ("summary.md", "summary.json", "index.html"))]:
        old.unlink(missing_ok=True)
    return report_dir


def write_report(report_dir: Path, *, markdown: str, payload: dict[str, Any], title: str) -> Path:
    """Write ``summary.md``, ``summary.json`` and ``index.html`` atomically; returns ``summary.md``."""
    from cms_anomaly.core.atomic import write_text_atomic

    report_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(report_dir / "summary.md", markdown)
    write_text_atomic(report_dir / "summary.json", json.dumps(payload, indent=2, default=json_default) + "\n")
    write_text_atomic(report_dir / "index.html", html_page(markdown, title=title))
    return report_dir / "summary.md"
