"""The runner: filesets, executors (iterative, futures, local or remote Dask), running the
processor and saving its histograms. The command ``cms-anomaly run`` lives in
:mod:`cms_anomaly.analyses.run`, the processor benchmark in :mod:`cms_anomaly.benchmarks.processor`.

Only the standard library is imported at module level; coffea and dask are imported where used.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from cms_anomaly.core.atomic import atomic_output
from cms_anomaly.core.workers import local_cluster, pool_worker_init
from cms_anomaly.processors import attached, btag, dataquality

log = logging.getLogger(__name__)

EXECUTORS = ("dask", "futures", "iterative")


class FilesetError(ValueError):
    """A fileset JSON is unreadable or malformed (message names the file and dataset)."""


def load_fileset(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a coffea fileset JSON: ``{dataset: {"files": {path: treename} | [paths], "metadata": {...}}}``.

    Relative file paths, and a relative ``lumimask`` (certified-luminosity JSON) in a dataset's metadata,
    are resolved against the JSON's directory; a list of files gets tree name ``Events``.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise FilesetError(f"{path}: cannot read fileset: {err}") from err
    if not isinstance(raw, dict) or not raw:
        raise FilesetError(f"{path}: a fileset must be a non-empty JSON object of datasets")
    out = {}
    for dataset, entry in raw.items():
        if isinstance(entry, list):
            entry = {"files": entry}  # noqa: PLW2901 - the short form, a bare list of files
        if not isinstance(entry, dict) or "files" not in entry:
            raise FilesetError(f"{path}: dataset {dataset!r} has no 'files'")
        files = entry["files"]
        if isinstance(files, list) and all(isinstance(f, str) for f in files):
            files = dict.fromkeys(files, "Events")
        if not isinstance(files, dict) or not all(isinstance(f, str) and isinstance(t, str) for f, t in files.items()):
            raise FilesetError(
                f"{path}: dataset {dataset!r}: 'files' must be a list of paths or an object "
                f"{{path: tree name}}, got {type(entry['files']).__name__}"
            )
        if not files:
            raise FilesetError(f"{path}: dataset {dataset!r} has an empty file list")
        metadata = entry.get("metadata", {})
        if not isinstance(metadata, dict):
            raise FilesetError(
                f"{path}: dataset {dataset!r}: 'metadata' must be an object, got {type(metadata).__name__}"
            )
        resolved = {}
        for f, tree in files.items():
            p = f if "://" in f or Path(f).is_absolute() else str((path.parent / f).resolve())
            resolved[p] = tree
        metadata = dict(metadata)
        mask = metadata.get("lumimask")
        if isinstance(mask, str) and mask and "://" not in mask and not Path(mask).is_absolute():
            metadata["lumimask"] = str((path.parent / mask).resolve())
        out[dataset] = {"files": resolved, "metadata": metadata}
    return validate_fileset(out, source=str(path))


#: the fileset metadata this project reads: key -> (kind, what it must be). Checked at the edge
#: (:func:`validate_fileset`); other keys pass through unread.
METADATA_KEYS: dict[str, tuple[str, str]] = {
    "is_data": ("bool", "true or false"),
    "is_signal": ("bool", "true or false"),
    "xsec_pb": ("positive", "a finite number > 0 (the cross section in pb)"),
    "lumi_pb": ("positive", "a finite number > 0 (the integrated luminosity in pb^-1)"),
    # the sum of generator weights: xsec * lumi / sumw is the per-event normalisation
    "sumw": ("positive", "a finite number > 0 (the sum of the generator weights)"),
    "sqrt_s": ("positive", "a finite number > 0 (the centre-of-mass energy in GeV)"),
    "nevents": ("count", "an integer >= 0"),
}


def _metadata_problem(kind: str, value: Any) -> bool:
    """Whether ``value`` is not of ``kind`` (:data:`METADATA_KEYS`); numpy scalars count as their kind."""
    is_bool = isinstance(value, bool) or (
        type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_")
    )
    if kind == "bool":
        return not is_bool
    if is_bool or not isinstance(value, numbers.Real):  # JSON true is not a number
        return True
    if kind == "count":
        return not isinstance(value, numbers.Integral) or int(value) < 0
    return not (math.isfinite(float(value)) and float(value) > 0)


class CheckedFileset(dict[str, dict[str, Any]]):
    """A fileset as :func:`validate_fileset` returns it (:func:`load_fileset` too): :func:`check_files` and
    :func:`run_processor` do not check it again. A fileset built from it, or any other mapping, is a plain
    ``dict``: checked when it is run."""


def validate_fileset(fileset: Mapping[str, Any], *, source: str = "fileset") -> CheckedFileset:
    """The fileset with its metadata checked, and each data file counted once.

    Every key of :data:`METADATA_KEYS` a dataset's metadata has must have its type and sign
    (``is_data: "no"``, ``xsec_pb: -100``, ``lumi_pb: "abc"`` are refused). A file listed in two data datasets would add its events and
    its luminosity twice: a data dataset all of whose files an earlier data dataset (in the fileset's
    order) already lists is dropped with a warning, its ``lumi_pb`` with it (that luminosity is counted
    in the earlier one); one that shares only some of its files is refused, since its ``lumi_pb`` cannot
    be split by file. ``files`` may be a list or ``{path: tree}``; the result has the input's form.

    Raises
    ------
    FilesetError
        One line: ``SOURCE: dataset 'x': key 'xsec_pb': must be ..., got -100``.
    """
    out: dict[str, dict[str, Any]] = {}
    owner: dict[str, str] = {}  # data file -> the first data dataset that lists it
    for dataset, entry in fileset.items():
        metadata = entry.get("metadata") or {}
        if not isinstance(metadata, Mapping):
            raise FilesetError(
                f"{source}: dataset {dataset!r}: 'metadata' must be an object, got {type(metadata).__name__}"
            )
        for key, (kind, what) in METADATA_KEYS.items():
            if key in metadata and _metadata_problem(kind, metadata[key]):
                raise FilesetError(f"{source}: dataset {dataset!r}: key {key!r}: must be {what}, got {metadata[key]!r}")
        if "era" in metadata and metadata["era"] not in btag.ERAS:  # the eras of the b-tag and trigger tables
            raise FilesetError(
                f"{source}: dataset {dataset!r}: key 'era': must be one of {list(btag.ERAS)}, got {metadata['era']!r}"
            )
        if metadata.get("is_data"):
            files = list(entry["files"])
            shared = {f: owner[f] for f in files if f in owner}
            if shared and len(shared) == len(set(files)):
                log.warning(
                    "%s: data dataset %r: every file is already in data dataset(s) %s; dropped, with its lumi_pb "
                    "(its events and luminosity are counted once, in the earlier dataset)",
                    source,
                    dataset,
                    sorted(set(shared.values())),
                )
                continue
            if shared:
                f, first = next(iter(shared.items()))
                raise FilesetError(
                    f"{source}: dataset {dataset!r}: key 'files': {f} is also in data dataset {first!r} "
                    f"({len(shared)} of {len(set(files))} files shared); its events and lumi_pb would count twice "
                    "and a dataset's lumi_pb cannot be split by file: list each data file in one dataset"
                )
            for f in files:
                owner.setdefault(f, dataset)
        out[dataset] = dict(entry)
    return CheckedFileset(out)


class InputFileError(OSError):
    """An input file cannot be read as a ROOT file with the expected tree (message names the file)."""


def is_remote(path: str) -> bool:
    """True for a URL (``root://``, ``https://``, ``s3://``, ...), false for a local path or ``file://``."""
    return "://" in path and not path.startswith("file://")


#: seconds uproot waits for a remote file (XRootD, HTTP) before giving up on it; coffea's Runner takes it as
#: ``xrootdtimeout`` (its default, 60 s) and the file check before a run uses the same bound
REMOTE_TIMEOUT_S = 60
#: files checked at once before a run (the checks of remote files wait on the network)
CHECK_THREADS = 16


def check_files(
    fileset: Mapping[str, Any],
    *,
    skip_bad_files: bool = False,
    allow_missing: tuple[str, ...] = (),
    timeout: int = REMOTE_TIMEOUT_S,
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Open every file of ``fileset`` and read its tree's entry count and first and last event numbers.

    A missing, empty, truncated or non-ROOT file, one without the tree, one whose tree lacks a branch
    the features need without a fallback (:func:`~cms_anomaly.processors.schema.missing_branches`;
    ``allow_missing`` names collections that may be absent as a whole), or a remote file (``root://``,
    ``https://``) whose server cannot be reached within ``timeout`` seconds or does not have it, raises
    :class:`InputFileError` with one line naming the file (URL) and the problem; with ``skip_bad_files``
    such files are dropped instead and listed (``"path: problem"``) per dataset in the second return
    value. ``files`` may be ``{path: tree}`` or a list of paths (``Events`` trees); the returned fileset
    has the mapping form.

    The metadata is checked first (:func:`validate_fileset`, unless ``fileset`` is its result). A simulated dataset (not ``is_data``) without
    ``sumw`` gets the sum of ``genEventSumw`` (or the older ``genEventSumw_``) over the ``Runs`` trees of its
    readable files, as CMS normalises NanoAOD simulation, where every such file has one; a file without
    the ``run``, ``luminosityBlock`` or ``event`` branches is said once (a log line): its events are
    identified by (file, entry).

    Returns
    -------
    tuple
        (the fileset without bad files, ``{dataset: [skipped file with its problem, ...]}``)
    """
    good, skipped, _ = _check_files(
        fileset, skip_bad_files=skip_bad_files, allow_missing=allow_missing, timeout=timeout
    )
    return good, skipped


#: the ``Runs`` branch with the sum of the generator weights, in NanoAOD (``genEventSumw_`` before v6:
#: the NanoAOD documentation's ``Runs`` table, https://cms-nanoaod-integration.web.cern.ch/autoDoc/)
GEN_SUMW_BRANCHES = ("genEventSumw", "genEventSumw_")
#: the event identity of NanoAOD; files without it (reduced derivations) identify events by (file, entry)
EVENT_ID_BRANCHES = ("run", "luminosityBlock", "event")


def _runs_sumw(tree_of: Any) -> float | None:
    """The sum of ``genEventSumw`` (either spelling) over the entries of an open file's ``Runs`` tree."""
    if "Runs" not in tree_of:
        return None
    runs = tree_of["Runs"]
    keys = set(runs.keys())
    for branch in GEN_SUMW_BRANCHES:
        if branch in keys:
            return float(runs[branch].array(library="np").sum())
    return None


def _with_runs_sumw(good: dict[str, Any], gen_sumw: Mapping[str, float | None]) -> None:
    """Give each simulated dataset of ``good`` without ``sumw`` the sum of its files' ``Runs`` genEventSumw
    (in place), where every one of its files has it."""
    for dataset, entry in good.items():
        metadata = dict(entry.get("metadata") or {})
        if metadata.get("is_data") or "sumw" in metadata:
            continue
        found = [gen_sumw.get(f) for f in entry["files"]]
        sums = [x for x in found if x is not None]
        if sums and len(sums) == len(found) and sum(sums) > 0:
            metadata["sumw"] = float(sum(sums))
            metadata["sumw_from"] = "Runs.genEventSumw"
            log.info(
                "dataset %r: sumw %.6g from the Runs trees (genEventSumw) of its %d file(s)",
                dataset,
                metadata["sumw"],
                len(sums),
            )
            entry["metadata"] = metadata


def require_sumw(fileset: Mapping[str, Any]) -> None:
    """Refuse (one line) a simulated dataset with ``xsec_pb`` that cannot be normalised: no ``sumw`` in its
    metadata and not every file has a ``Runs`` tree with ``genEventSumw`` (:func:`check_files` fills it)."""
    for dataset, entry in fileset.items():
        metadata = entry.get("metadata") or {}
        if not metadata.get("is_data") and "xsec_pb" in metadata and "sumw" not in metadata:
            raise FilesetError(
                f"dataset {dataset!r}: key 'sumw': not in the metadata, and not every file has a Runs tree with "
                f"{' or '.join(GEN_SUMW_BRANCHES)}; give the sum of the generator weights as metadata sumw"
            )


def _check_files(
    fileset: Mapping[str, Any], *, skip_bad_files: bool, allow_missing: tuple[str, ...], timeout: int
) -> tuple[dict[str, Any], dict[str, list[str]], dict[str, int]]:
    """:func:`check_files`, and the entry count of every readable file."""
    from concurrent.futures import ThreadPoolExecutor

    import uproot

    if not isinstance(fileset, CheckedFileset):  # a loaded fileset was checked by load_fileset
        fileset = validate_fileset(fileset)
    good: dict[str, Any] = {}
    skipped: dict[str, list[str]] = {}
    entries: dict[str, int] = {}
    gen_sumw: dict[str, float | None] = {}
    without_ids: dict[str, list[str]] = {}
    listed_by_dataset = {
        dataset: entry["files"] if isinstance(entry["files"], Mapping) else dict.fromkeys(entry["files"], "Events")
        for dataset, entry in fileset.items()
    }
    # remote files are opened concurrently: a fileset of many root:// files waits on round trips, not on this CPU
    jobs = {(f, tree) for listed in listed_by_dataset.values() for f, tree in listed.items()}
    with ThreadPoolExecutor(max_workers=CHECK_THREADS) as pool:
        futures = {
            job: pool.submit(
                _file_problem,
                uproot,
                job[0],
                job[1],
                timeout=timeout,
                entries=entries,
                allow_missing=allow_missing,
                gen_sumw=gen_sumw,
                without_ids=without_ids,
            )
            for job in sorted(jobs)
        }
        problems = {job: future.result() for job, future in futures.items()}
    for dataset, entry in fileset.items():
        listed = listed_by_dataset[dataset]
        files, bad = {}, []
        for f, tree in listed.items():
            problem = problems[(f, tree)]
            if problem is None:
                files[f] = tree
            elif skip_bad_files:
                bad.append(f"{f}: {problem}")
            else:
                raise InputFileError(f"{f} (dataset {dataset!r}): {problem}")
        if files:
            good[dataset] = {**entry, "files": files}
        elif skip_bad_files:
            bad.append(f"dataset {dataset!r}: no readable file left")
        skipped[dataset] = bad
        for f in files:
            if f in without_ids:
                log.warning(
                    "%s (dataset %r): no %s branch(es); its events are identified by (file, entry): run 0, "
                    "luminosityBlock 0, event = the entry number in the file",
                    f,
                    dataset,
                    "/".join(without_ids[f]),
                )
    _with_runs_sumw(good, gen_sumw)
    return good, skipped, entries


def _file_problem(
    uproot: Any,
    path: str,
    tree: str,
    *,
    timeout: int,
    entries: dict[str, int],
    allow_missing: tuple[str, ...] = (),
    gen_sumw: dict[str, float | None] | None = None,
    without_ids: dict[str, list[str]] | None = None,
) -> str | None:
    """What is wrong with one input file (a local path or a URL), ``None`` if it reads (its entry count
    then goes to ``entries``, its ``Runs`` genEventSumw to ``gen_sumw``, the event-ID branches it lacks
    to ``without_ids``)."""
    from cms_anomaly.processors import schema

    remote = is_remote(path)
    if not remote:
        p = Path(path.removeprefix("file://"))
        if not p.is_file():
            return "no such file"
        if p.stat().st_size == 0:
            return "empty file (0 bytes)"
    try:
        with uproot.open(path, timeout=timeout) as fin:
            if tree not in fin:
                return f"no tree {tree!r} (has {sorted(k.split(';')[0] for k in fin.keys())[:8]})"  # noqa: SIM118 - uproot: iterating yields branches, keys() the names
            t = fin[tree]
            n = entries[path] = t.num_entries
            keys = t.keys()
            if gen_sumw is not None:
                gen_sumw[path] = _runs_sumw(fin)
            if without_ids is not None and (lacking := [b for b in EVENT_ID_BRANCHES if b not in keys]):
                without_ids[path] = lacking
            if n and "event" in t.keys():  # first and last basket: a truncated file fails here  # noqa: SIM118 - uproot: iterating yields branches, keys() the names
                t["event"].array(entry_start=0, entry_stop=1, library="np")
                t["event"].array(entry_start=n - 1, entry_stop=n, library="np")
    except Exception as err:  # noqa: BLE001 - any reader error means the file is unusable; say which
        detail = " ".join(str(err).split())[:200] if str(err) else type(err).__name__
        if remote:
            return f"cannot read the remote file (server unreachable within {timeout} s, no such file, or not ROOT: {detail})"
        return f"not a readable ROOT file: truncated, corrupt or another format ({detail})"
    try:
        missing = schema.missing_branches(keys, allow_missing=allow_missing)
    except schema.UnknownSchemaError as err:
        return str(err).removeprefix("input: ")
    if missing:
        return f"missing branch(es) {missing} that the analysis needs (no fallback; see processors/schema.py)"
    return None


def fileset_from_files(files: list[str], *, dataset: str = "files") -> dict[str, dict[str, Any]]:
    """A one-dataset fileset from ROOT file paths (``Events`` trees, no metadata)."""
    return {dataset: {"files": {str(Path(f).resolve()): "Events" for f in files}, "metadata": {}}}


@contextmanager
def make_executor(kind: str, *, scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A coffea executor, its pool or cluster closed on exit.

    For ``dask``: the cluster ``scheduler`` names (a ``tcp://``/``tls://`` scheduler or a
    ``gateway+http(s)://`` dask-gateway server), else the one the Dask config ``cms-anomaly.cluster``
    names (e.g. a dask-jobqueue cluster), else a LocalCluster of ``workers`` processes. The workers of
    a facility cluster are checked, and given the project if they lack it, before the first chunk
    (:mod:`cms_anomaly.processors.cluster`).
    """
    from coffea import processor

    if kind == "iterative":
        yield processor.IterativeExecutor()
    elif kind == "futures":
        import functools

        import loky

        # coffea's own pool (loky: fresh interpreters, not forks of this process, whose torch and XRootD
        # threads a forked child would inherit locked), with this project's worker set-up
        pool = functools.partial(loky.ProcessPoolExecutor, initializer=pool_worker_init, initargs=(os.getpid(),))
        yield processor.FuturesExecutor(workers=workers or os.cpu_count() or 1, pool=pool)
    elif kind == "dask":
        from cms_anomaly.processors.cluster import external_client

        with ExitStack() as stack:
            client = external_client(stack, scheduler=scheduler, workers=workers)
            if client is None:
                client = _local_client(stack, workers=workers)
            yield processor.DaskExecutor(client=client, status=False)
    else:
        raise ValueError(f"unknown executor {kind!r}; choose from {EXECUTORS}")


def _local_client(stack: ExitStack, *, workers: int | None) -> Any:
    """A client of the embedded LocalCluster (:func:`~cms_anomaly.core.workers.local_cluster`), closed by ``stack``."""
    from dask.distributed import Client

    cluster = local_cluster(workers)
    stack.callback(cluster.close)
    client = Client(cluster)
    stack.callback(client.close)
    return client


#: events per chunk of :func:`run_processor` and ``cms-anomaly run``
CHUNKSIZE = 100_000
#: events per chunk of the analyses' jobs (:class:`cms_anomaly.analyses.analysis.Execution`, rediscover-top)
ANALYSIS_CHUNKSIZE = 50_000


def run_processor(
    fileset: Mapping[str, Any],
    proc: Any,
    *,
    executor: Any,
    chunksize: int = CHUNKSIZE,
    maxchunks: int | None = None,
    skip_bad_files: bool = False,
    timeout: int = REMOTE_TIMEOUT_S,
    uproot_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ``proc`` over ``fileset`` with coffea's Runner (NanoAOD schema, ``Events`` trees).

    The metadata and every file are checked first (:func:`check_files`, which also takes a simulated
    dataset's ``sumw`` from its files' ``Runs`` trees where the metadata lacks it): an unreadable file stops the run with
    one line naming it, or, with ``skip_bad_files``, is left out and listed in each dataset's
    ``"skipped_files"`` of the output (coffea's ``skipbadfiles`` also skips files failing later).
    Remote files (``root://``, ``https://``) are read through uproot's fsspec sources; ``timeout``
    bounds each open (coffea's ``xrootdtimeout``) and the executor retries a failed chunk (coffea's
    ``retries``, 3 by default). ``uproot_options`` go to every ``uproot.open`` of the run (e.g.
    ``handler``, a source class other than uproot's default for the protocol).
    """
    from cms_anomaly.processors.schema import AnalysisNanoAODSchema
    from coffea import processor

    # an unreadable certified-luminosity JSON or trigger metadata the selection has no entry for: one line
    dataquality.check_fileset(fileset, selection=getattr(getattr(proc, "selection", None), "name", None))
    # the processor's collections that may be absent (--allow-missing): the check must not refuse them
    allow_missing = tuple(getattr(proc, "allow_missing", ()))
    good, skipped, entries = _check_files(
        fileset, skip_bad_files=skip_bad_files, allow_missing=allow_missing, timeout=timeout
    )
    if getattr(proc, "lumi_pb", None) is not None:
        require_sumw(good)
    _carry_client_files(fileset, proc)
    features_dir = getattr(proc, "features_dir", None)
    if features_dir is not None:
        proc.tables_in_output = not _prepare_feature_tables(executor, features_dir)
    # a fresh metadata cache: coffea's default process-wide cache keys on (dataset, file, tree) and
    # would hand a later run the user metadata (is_data, xsec) of an earlier one
    runner = processor.Runner(
        executor=executor,
        schema=AnalysisNanoAODSchema,
        chunksize=chunksize,
        maxchunks=maxchunks,
        skipbadfiles=(ReadFailure,) if skip_bad_files else False,
        metadata_cache={},
        xrootdtimeout=timeout,
    )
    options = dict(uproot_options or {})
    try:
        output = runner(good, processor_instance=proc, treename="Events", uproot_options=options) if good else {}
    finally:
        close_remote_handles()
    if skip_bad_files:
        for dataset, bad in skipped.items():
            read = output.get(dataset, {}).get("events_per_file", {})
            # coffea skips a chunk whose read fails during the run (a server gone mid-run): each file
            # that lost events is listed with how many
            lost = [
                f"{f}: {entries[f] - read.get(f, 0)} of {entries[f]} events not read (read failed during the run)"
                for f in good.get(dataset, {}).get("files", {})
                if maxchunks is None and read.get(f, 0) < entries[f]
            ]
            output.setdefault(dataset, {})["skipped_files"] = bad + lost
    if features_dir is not None:
        _finish_feature_tables(output, features_dir)
    return output


def _carry_client_files(fileset: Mapping[str, Any], proc: Any) -> None:
    """Give ``proc`` the client's files its workers read (:mod:`~cms_anomaly.processors.attached`): each data
    dataset's ``lumimask`` and the active ``[corrections] file``."""
    if not hasattr(proc, "carried_files"):
        return
    paths = [
        str(entry["metadata"]["lumimask"])
        for entry in fileset.values()
        if (entry.get("metadata") or {}).get("is_data") and (entry.get("metadata") or {}).get("lumimask")
    ]
    corrections = proc.config.corrections
    if corrections.active:
        paths.append(str(corrections.file))
    proc.carried_files = attached.collect(paths)


def _probe_shared(directory: str, token: str) -> str | None:
    """Run on a worker: ``None`` if it sees the client's ``directory`` (the file ``token`` the client wrote
    there) and can write into it (``token.<random>``, which the client then looks for), else why not."""
    import socket
    import uuid

    where = f"{socket.gethostname()} (cwd {Path.cwd()})"
    try:
        if not (Path(directory) / token).is_file():
            return f"{where} does not see {directory} of the client (another disk)"
        (Path(directory) / f"{token}.{uuid.uuid4().hex}").write_bytes(b"")
    except OSError as err:
        return f"{where}: {err.strerror or err}"
    return None


def workers_can_write(executor: Any, directory: str | Path) -> bool:
    """Whether every worker of ``executor`` writes into the client's ``directory``, checked by one small
    task per worker before the first chunk (Dask executors; the other executors run on this machine).

    The client leaves a token file there; each worker must see it (the same disk, not a directory of
    the same name on its own) and create a file beside it that the client then sees. Workers that
    cannot (a facility cluster that does not mount the client's disk) are logged once; the processor
    then returns its feature tables through the output and the client writes them.
    """
    import uuid

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    client = getattr(executor, "client", None)
    if client is None:
        return True
    token = f".probe-{uuid.uuid4().hex}"
    (directory / token).write_bytes(b"")
    try:
        answers = client.run(_probe_shared, str(directory), token)
        seen = {p.name for p in directory.glob(f"{token}.*")}
    finally:
        for probe in directory.glob(f"{token}*"):
            probe.unlink(missing_ok=True)
    refused = {worker: why for worker, why in answers.items() if why is not None}
    if len(seen) < len(answers) - len(refused):  # written, but not where the client looks
        refused = refused or {"?": f"files written by the workers do not appear in {directory}"}
    if refused:
        worker, why = next(iter(sorted(refused.items())))
        log.warning(
            "%d of %d workers cannot write %s (%s: %s); their feature tables come back through the output "
            "and are written here",
            len(refused),
            len(answers),
            directory,
            worker,
            why,
        )
    return not refused


def _prepare_feature_tables(executor: Any, features_dir: str) -> bool:
    """Whether the workers write the feature tables themselves (:func:`workers_can_write`). At an fsspec URL
    they must (:func:`~cms_anomaly.processors.storage.check_workers_write` refuses otherwise), and a previous
    run's manifest there is removed first: tables it lists may be overwritten, so until this run writes
    its own manifest readers refuse the URL rather than read a mixture."""
    from cms_anomaly.processors import feature_io, storage

    if not storage.is_url(features_dir):
        return workers_can_write(executor, features_dir)
    storage.check_workers_write(executor, features_dir)
    storage.remove(storage.join(features_dir, feature_io.FEATURE_MANIFEST))
    return True


def _finish_feature_tables(output: dict[str, Any], features_dir: str | Path) -> None:
    """Write the tables that came back through the output, then the manifest that declares them finished
    (at an fsspec URL the workers wrote every table: the client writes the manifest only)."""
    from cms_anomaly.processors import feature_io, storage

    if storage.is_url(features_dir):
        urls = [f for result in output.values() for f in result.get("feature_files", [])]
        feature_io.write_table_manifest(str(features_dir), urls)
        return
    root = Path(features_dir)
    files = []
    for result in output.values():
        for rel, data in sorted(result.pop("feature_tables", {}).items()):
            with atomic_output(root / rel) as tmp:
                tmp.write_bytes(data)
        files += result.get("feature_files", [])
    feature_io.write_table_manifest(root, files)


def close_remote_handles() -> None:
    """Close the XRootD file handles that fsspec-xrootd keeps open between reads in this process.

    Its own exit-time finalizer closes them through the server and, where the server has gone (a run
    that skipped a file whose server died), prints a traceback as the interpreter exits; here each
    close is sent without waiting for an answer, as the finalizer does without an event loop, and the
    cache is emptied, so nothing is left for it.
    """
    import contextlib
    import sys

    module = sys.modules.get("fsspec_xrootd.xrootd")
    if module is None:  # never imported: no remote file was read
        return
    for fs in list(module.XRootDFileSystem._cache.values()):
        cache = getattr(getattr(fs, "_readonly_filehandle_cache", None), "_cache", None)
        if not cache:
            continue
        for item in list(cache.values()):
            with contextlib.suppress(Exception):
                item.handle.close(callback=lambda *_: None)
        cache.clear()


class _ReadFailureType(type):
    def __instancecheck__(cls, err: object) -> bool:
        return isinstance(err, OSError) or (isinstance(err, ValueError) and "closed file" in str(err))


class ReadFailure(Exception, metaclass=_ReadFailureType):
    """What ``--skip-bad-files`` skips during a run: an ``OSError`` (unreadable, truncated, server gone), or
    the ``ValueError`` an XRootD file handle raises once its server has gone ("I/O operation on closed
    file"); a processor's own errors are not skipped."""


def run_graph(fileset: Mapping[str, Any], proc: Any, *, step_size: int = 100_000, client: Any = None) -> dict[str, Any]:
    """Run ``proc`` in coffea's dask-awkward graph mode; the output equals :func:`run_processor`'s.

    ``coffea.dataset_tools.preprocess`` splits the files into steps of ``step_size`` events,
    ``apply_to_fileset`` builds one task graph per dataset from dask-awkward NanoEvents, and
    ``dask.compute`` runs it: on ``client`` (a ``dask.distributed.Client`` of a facility's cluster)
    when given, else on the current default scheduler.
    """
    import dask
    from cms_anomaly.processors.schema import AnalysisNanoAODSchema
    from coffea.dataset_tools import DataGroupSpec, apply_to_fileset, preprocess
    from coffea.processor import accumulate

    # one clear line for an unreadable file, a missing branch or a bad lumimask before any graph is built
    dataquality.check_fileset(fileset, selection=getattr(getattr(proc, "selection", None), "name", None))
    good, _ = check_files(fileset, allow_missing=tuple(getattr(proc, "allow_missing", ())))
    if getattr(proc, "lumi_pb", None) is not None:
        require_sumw(good)
    _carry_client_files(fileset, proc)
    spec = {
        name: {"files": entry["files"], "metadata": dict(entry.get("metadata") or {})} for name, entry in good.items()
    }
    available, _ = preprocess(DataGroupSpec.model_validate(spec), step_size=step_size, skip_bad_files=False)
    graphs = apply_to_fileset(proc, available, schemaclass=AnalysisNanoAODSchema)
    try:
        if client is not None:
            computed = client.compute(graphs, sync=True)
        else:
            (computed,) = dask.compute(graphs)
    finally:
        close_remote_handles()
    return accumulate(computed.values()) if computed else {}


def save_outputs(output: Mapping[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Save histograms with ``coffea.util.save`` (``histograms.coffea``) and to ROOT (``histograms.root``).

    In the ROOT file each histogram sits at ``<dataset>/<name>``, sliced on its dataset axis; the
    cut-flow is a TH1 whose bins follow ``all`` and the cuts in order. A histogram with a
    ``systematic`` axis is written per category: the nominal at ``<dataset>/<name>``, a variation at
    ``<dataset>/<name>_<systematic>`` (``mt_muon_idUp``, the naming of CMS's combine).
    """
    import uproot
    from coffea.util import save

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    coffea_path = out_dir / "histograms.coffea"
    with atomic_output(coffea_path) as tmp:
        save(dict(output), str(tmp))

    root_path = out_dir / "histograms.root"
    with atomic_output(root_path) as tmp, uproot.recreate(tmp) as fout:
        for dataset, result in output.items():
            for hname, h in result.get("hists", {}).items():
                if dataset not in h.axes["dataset"]:
                    continue
                for name, sliced in _per_systematic(hname, h[{"dataset": dataset}]):
                    _write_root_hist(fout, dataset, name, sliced)
    return {"coffea": coffea_path, "root": root_path}


def _per_systematic(name: str, h: Any) -> list[tuple[str, Any]]:
    """``[(name, h)]``, or one entry per category of its ``systematic`` axis (``name`` for the nominal,
    ``name_<systematic>`` for the variations)."""
    if "systematic" not in h.axes.name:
        return [(name, h)]
    return [(name if s == "nominal" else f"{name}_{s}", h[{"systematic": s}]) for s in h.axes["systematic"]]


def _write_root_hist(fout: Any, dataset: str, name: str, sliced: Any) -> None:
    """One histogram of a dataset into the open ROOT file ``fout``."""
    import itertools

    import hist
    import numpy as np

    if name == "cutflow":
        values = sliced.values()
        fout[f"{dataset}/{name}"] = (
            np.asarray(values, dtype=np.float64),
            np.arange(len(values) + 1, dtype=np.float64),
        )
    elif any(isinstance(ax, hist.axis.StrCategory) for ax in sliced.axes):
        # ROOT has no string axes: one histogram per combination of their categories
        cats = [ax for ax in sliced.axes if isinstance(ax, hist.axis.StrCategory)]
        for combo in itertools.product(*(list(ax) for ax in cats)):
            key = "/".join(f"{ax.name}_{c}" for ax, c in zip(cats, combo, strict=True))
            fout[f"{dataset}/{name}/{key}"] = sliced[{ax.name: c for ax, c in zip(cats, combo, strict=True)}]
    else:
        fout[f"{dataset}/{name}"] = sliced


def format_summary(output: Mapping[str, Any], *, selection: str) -> str:
    """One screen: per dataset the cumulative cut-flow (events and weighted) and where events fail."""
    lines = [f"selection: {selection}"]
    for dataset in sorted(output):
        res = output[dataset]
        for bad in res.get("skipped_files", []):
            lines.append(f"\nSKIPPED (--skip-bad-files) {bad}")
        if "cutflow" not in res:
            lines.append(f"\n{dataset}: no readable file, nothing processed")
            continue
        flow = res["cutflow"]
        lines.append(f"\n{dataset}  ({res['nevents']} events read, {len(res['feature_files'])} feature tables)")
        for coll, chunks in sorted(res.get("missing_collections", {}).items()):
            lines.append(f"  collection {coll} absent, treated as empty (--allow-missing) in {chunks} chunk(s)")
        lines.append(f"  {'cut':<16}{'events':>10}{'eff':>9}{'weighted':>14}{'failed here':>13}")
        total = max(flow["events"]["all"], 1)
        for cut, n in flow["events"].items():
            failed = flow["first_failed"].get(cut, "")
            lines.append(f"  {cut:<16}{n:>10d}{n / total:>9.3f}{flow['sumw'][cut]:>14.4g}{failed!s:>13}")
    return "\n".join(lines)
