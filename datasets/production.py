"""Sample production: Pythia 8 -> detector response -> NanoAOD files + a coffea fileset, on Dask.

A production is split into file jobs (process, file index). Each job has its own Pythia seed,
derived from (process, base seed, file index), and its own detector random stream, so a file's
content depends only on those three numbers: the same seed gives the same events whatever the
number of workers. A finished job leaves ``<process>_s<seed>_<index>.root`` and a JSON sidecar
with its bookkeeping (cross section, filter efficiency, events); both are written atomically, and
a job whose sidecar matches its configuration is skipped, so a killed production resumes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import awkward as ak
import numpy as np
from cms_anomaly.core.atomic import write_text_atomic, writer_alive
from cms_anomaly.core.constants import SQRT_S
from cms_anomaly.core.workers import local_cluster, pool_worker_init
from cms_anomaly.datasets.cards import PhaseSpaceBias, ProcessCard, load_card
from cms_anomaly.datasets.detector import simulate
from cms_anomaly.datasets.detector_config import DetectorConfig
from cms_anomaly.datasets.generator import PythiaGenerator, derive_seed
from cms_anomaly.datasets.nanoaod import event_branches, write_nanoaod

log = logging.getLogger(__name__)

#: bump when the file layout changes: old files are then regenerated
FORMAT_VERSION = 3


def _response_digest() -> str:
    """Digest of what turns a Pythia seed into a file besides the card: the detector configuration,
    the code of the generator, the detector response (its calorimeter too) and the NanoAOD writer, and
    Pythia's version.
    Part of every file's identity, so a changed detector never resumes onto files of the old one."""
    from importlib import metadata

    from cms_anomaly.core import fourvectors
    from cms_anomaly.datasets import (
        calorimeter,
        detector,
        detector_config,
        detector_jets,
        detector_leptons,
        detector_truth,
        flatarrays,
        generator,
        nanoaod,
        substructure,
    )

    digest = hashlib.sha256(json.dumps(asdict(DetectorConfig()), sort_keys=True).encode())
    modules = (generator, calorimeter, detector, detector_config, detector_jets, detector_leptons, detector_truth)
    for module in (*modules, flatarrays, substructure, fourvectors, nanoaod):
        digest.update(Path(str(module.__file__)).read_bytes())
    digest.update(metadata.version("pythia8mc").encode())
    return digest.hexdigest()[:16]


RESPONSE_DIGEST = _response_digest()
DEFAULT_EVENTS_PER_FILE = 5000
BATCH_SIZE = 250
#: ``local``: in the calling process, one job at a time; ``futures``: a process pool on this machine;
#: ``dask``: a local Dask cluster, or an existing one with ``scheduler``
EXECUTORS = ("dask", "futures", "local")


class ProductionError(RuntimeError):
    """One or more file jobs failed; finished files are kept and a rerun resumes."""


@dataclass(frozen=True)
class FileJob:
    """One output file: ``n_events`` events of ``card`` with file index ``index``."""

    card: ProcessCard
    index: int
    n_events: int
    base_seed: int
    out_dir: str
    first_event: int
    sqrt_s: float = SQRT_S
    #: generate with the card's phase-space bias (weighted events; files named ``..._tail_<index>``)
    tail_bias: bool = False
    #: write files like collision data (:func:`as_collision_data`; files named ``..._data_<index>``)
    data_like: bool = False

    @property
    def bias(self) -> PhaseSpaceBias | None:
        return self.card.bias if self.tail_bias else None

    @property
    def path(self) -> Path:
        tag = ("_tail" if self.tail_bias else "") + ("_data" if self.data_like else "")
        return Path(self.out_dir) / self.card.name / f"{self.card.name}_s{self.base_seed}{tag}_{self.index:04d}.root"

    @property
    def sidecar(self) -> Path:
        return self.path.with_suffix(".json")

    @property
    def pythia_seed(self) -> int:
        return derive_seed(self.card.name, self.base_seed, self.index)

    def identity(self) -> dict:
        """Everything that determines the file content (compared when resuming)."""
        return {
            "process": self.card.name,
            "card_digest": self.card.digest,
            "index": self.index,
            "n_events": self.n_events,
            "base_seed": self.base_seed,
            "pythia_seed": self.pythia_seed,
            "first_event": self.first_event,
            "format_version": FORMAT_VERSION,
            "response_digest": RESPONSE_DIGEST,
            # only when not the default, so that finished 13 TeV files of earlier versions still resume
            **({"sqrt_s": self.sqrt_s} if self.sqrt_s != SQRT_S else {}),
            **({"tail_bias": asdict(self.bias)} if self.bias is not None else {}),
            **({"data_like": True} if self.data_like else {}),
        }


def plan_jobs(
    cards: Sequence[ProcessCard],
    *,
    events: int | Mapping[str, int],
    events_per_file: int | None,
    seed: int,
    out: str | os.PathLike,
    sqrt_s: float = SQRT_S,
    tail_bias: bool = False,
    data_like: bool = False,
) -> list[FileJob]:
    """Split the events of each process (one number for all, or per process name) into file jobs.

    With ``tail_bias``, the processes whose card has a ``[bias]`` table are generated with it
    (weighted events); the others unbiased, as always.
    """
    jobs = []
    for card in cards:
        n_events = events if isinstance(events, int) else events[card.name]
        if n_events <= 0:
            raise ValueError(f"{card.name}: the number of events must be positive, got {n_events}")
        per_file = events_per_file or min(n_events, DEFAULT_EVENTS_PER_FILE)
        if per_file <= 0:
            raise ValueError(f"--events-per-file must be positive, got {per_file}")
        events_for_card = n_events
        n_files = -(-events_for_card // per_file)
        for index in range(n_files):
            n = min(per_file, events_for_card - index * per_file)
            jobs.append(
                FileJob(
                    card=card,
                    index=index,
                    n_events=n,
                    base_seed=seed,
                    out_dir=str(Path(out).resolve()),
                    first_event=index * per_file + 1,
                    sqrt_s=float(sqrt_s),
                    tail_bias=tail_bias and card.bias is not None,
                    data_like=data_like,
                )
            )
    return jobs


def finished(job: FileJob) -> dict | None:
    """The sidecar of a finished job, or None if the job must (re)run."""
    if not (job.path.is_file() and job.sidecar.is_file()):
        return None
    try:
        info = json.loads(job.sidecar.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if {k: info.get(k) for k in job.identity()} != job.identity() or info.get("sqrt_s", SQRT_S) != job.sqrt_s:
        log.warning("%s: exists with a different configuration; regenerating", job.path)
        return None
    # the file on disk must be the one the sidecar describes (a copy cut short keeps its sidecar)
    size = job.path.stat().st_size
    if info.get("size_bytes") != size or info.get("sha256") != _sha256(job.path):
        log.warning(
            "%s: differs from its sidecar (%d bytes on disk, %s recorded); regenerating",
            job.path,
            size,
            info.get("size_bytes"),
        )
        return None
    # where the file is now: a production directory that was moved or copied resumes in place
    info["path"] = str(job.path)
    return info


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def remove_stale_temporaries(out: Path, processes: Sequence[str]) -> list[Path]:
    """Delete the ``*.tmp-<pid>`` files a killed production left in ``out/<process>/``; returns them. A file
    whose process still runs (another production of the same directory writing it) is left alone."""
    stale = [p for name in processes for p in sorted((out / name).glob("*.tmp-*")) if not writer_alive(p)]
    for p in stale:
        p.unlink(missing_ok=True)
    if stale:
        log.info("removed %d stale temporary file(s) of an interrupted production", len(stale))
    return stale


def _write_json_atomic(path: Path, payload: object) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


#: collections collision-data NanoAOD does not have: the PF candidates (PFNano only) and the generator record
MC_ONLY_COLLECTIONS: tuple[str, ...] = ("PFCands", "JetPFCands", "GenPart")
#: fields of reconstructed objects that only simulation has (generator matching and flavour)
MC_ONLY_FIELDS: tuple[str, ...] = (
    "genPartIdx",
    "genPartFlav",
    "genJetIdx",
    "hadronFlavour",
    "partonFlavour",
    "nBHadrons",
    "nCHadrons",
)


def as_collision_data(collections: Mapping[str, ak.Array]) -> dict[str, ak.Array]:
    """The collections of one batch as collision-data NanoAOD has them: no PF candidates, no generator
    collection (:data:`MC_ONLY_COLLECTIONS`, any ``Gen*``), no generator fields of reconstructed
    objects (:data:`MC_ONLY_FIELDS`); ``genWeight`` is left out by the writer."""
    out = {}
    for name, arr in collections.items():
        if name in MC_ONLY_COLLECTIONS or name.startswith("Gen"):
            continue
        keep = [f for f in arr.fields if f not in MC_ONLY_FIELDS]
        out[name] = arr[keep] if len(keep) < len(arr.fields) else arr
    return out


def _event_batches(
    job: FileJob, generator: PythiaGenerator, config: DetectorConfig, timings: dict[str, float]
) -> Iterator[dict]:
    rng = np.random.default_rng([job.pythia_seed, FORMAT_VERSION])
    next_event = job.first_event
    it = generator.batches(job.n_events, batch_size=BATCH_SIZE)
    while True:
        t0 = time.perf_counter()
        item = next(it, None)
        t1 = time.perf_counter()
        timings["pythia"] += t1 - t0
        if item is None:
            return
        batch, weights = item
        charges = generator.charges(ak.to_numpy(ak.flatten(batch.prt.id)))  # flat, in event-record order
        collections = simulate(batch, charges, rng=rng, config=config)
        if job.data_like:
            collections = as_collision_data(collections)
        n = len(batch)
        branches = event_branches(
            run=np.ones(n),
            lumi=np.full(n, job.index + 1),
            event=np.arange(next_event, next_event + n),
            weight=None if job.data_like else weights,
            collections=collections,
        )
        next_event += n
        t2 = time.perf_counter()
        timings["detector"] += t2 - t1
        yield branches


def run_job(job: FileJob, config: DetectorConfig = DetectorConfig()) -> dict:
    """Produce one file (or return the bookkeeping of the finished file). Runs on a Dask worker."""
    done = finished(job)
    if done is not None:
        return {**done, "skipped": True}
    job.path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    timings = {"pythia": 0.0, "detector": 0.0}
    generator = PythiaGenerator(job.card, seed=job.pythia_seed, sqrt_s=job.sqrt_s, bias=job.bias)
    timings["init"] = time.perf_counter() - start

    def runs() -> dict:
        n = generator.n_accepted
        if job.data_like:  # collision data: no generator bookkeeping
            return {"run": np.array([1], dtype=np.uint32)}
        return {
            "run": np.array([1], dtype=np.uint32),
            "genEventCount": np.array([n], dtype=np.int64),
            "genEventSumw": np.array([generator.sumw_accepted]),
            "genEventSumw2": np.array([generator.sumw2_accepted]),
        }

    n_written = write_nanoaod(job.path, _event_batches(job, generator, config, timings), runs=runs)
    total = time.perf_counter() - start
    info = {
        **job.identity(),
        "path": str(job.path),
        "size_bytes": job.path.stat().st_size,
        "sha256": _sha256(job.path),
        "events": n_written,
        "sumw": generator.sumw_accepted,
        "sumw2": generator.sumw2_accepted,
        "sumw_tried": generator.sumw_tried,
        "n_tried": generator.n_tried,
        "n_accepted": generator.n_accepted,
        "filter_efficiency": generator.filter_efficiency,
        "sigma_gen_pb": generator.sigma_gen_pb,
        "sigma_gen_err_pb": generator.sigma_err_pb,
        "xsec_pb": generator.sigma_gen_pb * generator.filter_efficiency,
        "is_signal": job.card.is_signal,
        "description": job.card.description,
        "detector": asdict(config),
        "seconds": {**timings, "write": total - sum(timings.values()), "total": total},
    }
    _write_json_atomic(job.sidecar, info)
    log.info("%s: %d events in %.1f s", job.path.name, n_written, total)
    return {**info, "skipped": False}


def build_fileset(results: Sequence[dict], *, seed: int) -> dict:
    """coffea fileset ``{dataset: {"files": {path: "Events"}, "metadata": {...}}}`` from job results."""
    fileset: dict[str, dict] = {}
    for process in sorted({r["process"] for r in results}):
        rows = sorted((r for r in results if r["process"] == process), key=lambda r: r["index"])
        tried = sum(r["n_tried"] for r in rows)
        sigma_gen = sum(r["sigma_gen_pb"] * r["n_tried"] for r in rows) / tried
        sumw, sumw2 = sum(r["sumw"] for r in rows), sum(r["sumw2"] for r in rows)
        # weighted: with a phase-space bias, the accepted fraction of the cross section, not of the events
        efficiency = sumw / sum(r["sumw_tried"] for r in rows)
        fileset[process] = {
            "files": {r["path"]: "Events" for r in rows},
            "metadata": {
                "process": process,
                "description": rows[0]["description"],
                "xsec_pb": sigma_gen * efficiency,
                "sigma_gen_pb": sigma_gen,
                "filter_efficiency": efficiency,
                "nevents": sum(r["events"] for r in rows),
                "sumw": sumw,
                "sumw2": sumw2,
                # (sum w)^2 / sum w^2: the number of unweighted events with the same statistical power
                "n_eff": sumw**2 / sumw2 if sumw2 > 0 else 0.0,
                "tail_bias": rows[0].get("tail_bias"),
                "is_signal": bool(rows[0]["is_signal"]),
                # data-like files (--data-like) are analysed as data: weight 1, no genWeight
                "is_data": bool(rows[0].get("data_like", False)),
                "seed": seed,
                "sqrt_s": rows[0].get("sqrt_s", SQRT_S),
                # a data-like production's integrated luminosity: its unweighted events over the cross section
                **(
                    {"lumi_pb": sum(r["events"] for r in rows) / (sigma_gen * efficiency)}
                    if rows[0].get("data_like")
                    else {}
                ),
                "generator": "pythia8mc 8.317.2, Monash tune",
            },
        }
    return fileset


def _run_on_process_pool(jobs: Sequence[FileJob], *, workers: int | None) -> tuple[list[dict], list[str]]:
    """The file jobs on a pool of ``workers`` processes (default: cores), the longest first.

    Processes are started with ``spawn``: the parent may hold threads (torch, numba, Dask) that a
    forked child would inherit in a locked state. A job's file does not depend on where it runs.
    Only as many jobs as workers are handed to the pool at a time, so that after Ctrl-C no queued
    file starts: the running ones end (interrupted with the terminal's process group, or finished)
    and leave either a complete file or nothing under its final name.
    """
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from tqdm import tqdm

    n = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    # longest-processing-time first (popped from the end): a large file started last would leave the
    # other workers idle
    queue = sorted(jobs, key=lambda j: j.n_events * _job_cost(j.card))
    results, errors = [], []
    running: dict[Future, FileJob] = {}
    with (
        ProcessPoolExecutor(
            max_workers=n,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=pool_worker_init,
            initargs=(os.getpid(),),
        ) as pool,
        tqdm(total=len(jobs), desc="generate", unit="file") as progress,
    ):
        while queue or running:
            while queue and len(running) < n:
                job = queue.pop()
                try:
                    running[pool.submit(run_job, job)] = job
                except BrokenProcessPool as err:  # a worker died (e.g. killed for memory): the rest cannot start
                    errors += [f"{j.path.name}: not started: {err}" for j in (job, *queue)]
                    queue.clear()
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                job = running.pop(future)
                try:
                    results.append(future.result())
                except Exception as err:  # noqa: BLE001 - collected and re-raised by the caller with the file name
                    errors.append(_job_error(job, err))
                progress.update()
    return results, errors


def _job_error(job: FileJob, err: Exception) -> str:
    """One line of a :class:`ProductionError`: the file a job did not make, and why."""
    return f"{job.path.name}: {type(err).__name__}: {err}"


def _job_cost(card: ProcessCard) -> float:
    """Relative CPU time of one accepted event of ``card`` (for ordering jobs only, not a measurement).

    A generator-level filter multiplies the generated events by about 1/efficiency; the measured
    efficiency is not known before the job runs, so a filtered card counts 25x (QCD's lepton filter
    keeps ~4 %).
    """
    return 25.0 if card.filter is not None else 1.0


def _run_on_dask(
    jobs: Sequence[FileJob], *, scheduler: str | None, workers: int | None
) -> tuple[list[dict], list[str]]:
    from dask.distributed import Client, as_completed
    from tqdm import tqdm

    if scheduler:
        client = Client(scheduler)
        cluster = None
    else:
        cluster = local_cluster(workers)
        client = Client(cluster)
    results, errors = [], []
    try:
        futures = client.map(run_job, list(jobs), pure=False, key=[f"generate-{j.path.stem}" for j in jobs])
        for future in tqdm(as_completed(futures), total=len(futures), desc="generate", unit="file"):
            try:
                results.append(future.result())
            except Exception as err:  # noqa: BLE001 - collected and re-raised below with the file name
                errors.append(f"{future.key}: {type(err).__name__}: {err}")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return results, errors


def produce(
    processes: Sequence[str],
    *,
    out: str | os.PathLike,
    events: int | Mapping[str, int],
    events_per_file: int | None = None,
    seed: int = 1,
    executor: str = "dask",
    scheduler: str | None = None,
    workers: int | None = None,
    sqrt_s: float = SQRT_S,
    tail_bias: bool = False,
    data_like: bool = False,
) -> dict:
    """Generate ``events`` events of every process (or ``events[name]``) into ``out``; write ``out/fileset.json``.

    ``sqrt_s`` is the proton-proton centre-of-mass energy in GeV (13 TeV by default; 8 TeV to
    compare with the 2012 CMS Open Data). ``tail_bias`` generates the processes whose card has a
    ``[bias]`` table with Pythia's phase-space bias: hard events are sampled more often and carry
    the compensating ``genWeight``; ``sumw``, ``sumw2`` and ``n_eff`` in the fileset account for it.
    ``executor`` is one of :data:`EXECUTORS`; ``workers`` sizes the local cluster or process pool.
    ``data_like`` writes the files as collision-data NanoAOD has them (:func:`as_collision_data`: no
    PF candidates, no generator branches, no ``genWeight``), marked ``is_data`` in the fileset.

    Returns
    -------
    dict
        ``{"fileset": path, "datasets": fileset, "results": per-file bookkeeping}``.
    """
    if data_like and tail_bias:
        raise ValueError("--data-like files carry no genWeight: they cannot be generated with --tail-bias")
    cards = [load_card(p) for p in processes]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = plan_jobs(
        cards,
        events=events,
        events_per_file=events_per_file,
        seed=seed,
        out=out,
        sqrt_s=sqrt_s,
        tail_bias=tail_bias,
        data_like=data_like,
    )
    if tail_bias:
        plain = [c.name for c in cards if c.bias is None]
        if plain:
            log.info("no [bias] table (generated unbiased): %s", ", ".join(plain))
    log.info("%d file jobs for %s", len(jobs), ", ".join(c.name for c in cards))
    remove_stale_temporaries(out, [c.name for c in cards])
    if executor == "local":
        from tqdm import tqdm

        results, errors = [], []
        for job in tqdm(jobs, desc="generate", unit="file"):
            try:
                results.append(run_job(job))
            except Exception as err:  # noqa: BLE001
                errors.append(_job_error(job, err))
    elif executor == "futures":
        results, errors = _run_on_process_pool(jobs, workers=workers)
    elif executor == "dask":
        results, errors = _run_on_dask(jobs, scheduler=scheduler, workers=workers)
    else:
        raise ValueError(f"unknown executor {executor!r}: use {', '.join(repr(e) for e in EXECUTORS)}")
    if errors:
        raise ProductionError(
            f"{len(errors)} of {len(jobs)} file jobs failed (finished files are kept; rerun to resume):\n  "
            + "\n  ".join(errors)
        )
    fileset_path = out / "fileset.json"
    fileset = _merged_fileset(fileset_path, results, seed=seed)
    _write_json_atomic(fileset_path, fileset)
    return {"fileset": str(fileset_path), "datasets": fileset, "results": results}


def _merged_fileset(fileset_path: Path, results: Sequence[dict], *, seed: int) -> dict:
    """The fileset at ``fileset_path`` (if readable) updated with the datasets of this production's ``results``."""
    fileset = {}
    if fileset_path.is_file():
        try:
            fileset = json.loads(fileset_path.read_text())
        except json.JSONDecodeError as err:
            log.warning("%s is not valid JSON (%s): rewritten from this production's files only", fileset_path, err)
        if not isinstance(fileset, dict):
            fileset = {}
    fileset.update(build_fileset(results, seed=seed))
    return fileset


def summarise(result: dict) -> str:
    """A one-screen table of what a production wrote."""
    lines = [
        f"fileset: {result['fileset']}",
        f"{'dataset':14s} {'files':>5s} {'events':>8s} {'n_eff':>9s} {'xsec [pb]':>12s} {'filter eff':>10s} {'ev/s':>7s}  type",
    ]
    for name, entry in sorted(result["datasets"].items()):
        meta = entry["metadata"]
        rows = [r for r in result["results"] if r["process"] == name and not r.get("skipped")]
        secs = sum(r["seconds"]["total"] for r in rows)
        rate = f"{sum(r['events'] for r in rows) / secs:7.1f}" if secs else "   (cached)"
        kind = ("BSM" if meta["is_signal"] else "SM") + (", tail-weighted" if meta.get("tail_bias") else "")
        n_eff = meta.get("n_eff", meta["nevents"])
        lines.append(
            f"{name:14s} {len(entry['files']):5d} {meta['nevents']:8d} {n_eff:9.1f} {meta['xsec_pb']:12.4g} "
            f"{meta['filter_efficiency']:10.3g} {rate}  {kind}"
        )
    return "\n".join(lines)
