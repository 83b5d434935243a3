"""Per-event feature tables: parquet, one file per processed chunk, written atomically.

Layout: ``OUT/features/<dataset>/<dataset>__<file-stem>-<uuid8>__<entrystart>-<entrystop>.parquet``
with one column per scalar feature, ``m_lead_objects`` (14), ``objects`` (19*3 = 57, row-major)
and ``rmm`` (51*51 = 2601, row-major) as fixed-size lists of float32, and ``weight``, ``run``,
``luminosityBlock``, ``event``, ``dataset``, ``is_signal``. The schema metadata key
:data:`NEEDS_KEY` lists the feature needs (:data:`~cms_anomaly.processors.feature_spec.NEEDS`) the
input file met (JSON list; in the footer, so empty tables carry it too).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
from cms_anomaly.core.atomic import atomic_output
from cms_anomaly.processors import storage
from cms_anomaly.processors.feature_spec import ARRAY_FEATURES, FEATURES, NEEDS

log = logging.getLogger(__name__)

#: version of the table layout and naming; a cached pass (``analyses.cocktail.feature_tables``) is
#: reused only with the same version. 2: tables named after the input file's stem, read in natural order;
#: 3: the needs met in the schema metadata, the jet-content features, the isolation from pfRelIso03_*.
FEATURE_TABLE_VERSION = 3
#: parquet schema-metadata key of the needs the chunk's input file met
NEEDS_KEY = b"cms_anomaly.needs_met"


class FeatureTableError(OSError):
    """A feature table is missing, unreadable or lacks a requested column."""


def table_path(out_dir: str | Path, *, dataset: str, file_id: str, entrystart: int, entrystop: int) -> Path | str:
    """Where the table of one chunk goes: a path, or a URL (a string) when ``out_dir`` is an fsspec URL."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", file_id)
    name = f"{dataset}__{safe}__{entrystart}-{entrystop}.parquet"
    if storage.is_url(out_dir):
        return storage.join(out_dir, dataset, name)
    return Path(out_dir) / dataset / name


def feature_table(
    features: ak.Array,
    *,
    weights: np.ndarray,
    run: np.ndarray,
    lumi: np.ndarray,
    event: np.ndarray,
    dataset: str,
    is_signal: bool,
    needs_met: Sequence[str] = tuple(NEEDS),
) -> Any:
    """One chunk's selected events as a pyarrow table (the layout of the module docstring).

    Parameters
    ----------
    features
        Record array from :func:`~cms_anomaly.processors.features.compute_features` (selected events).
    weights, run, lumi, event
        Per-event arrays aligned with ``features``.
    dataset, is_signal
        Constant columns.
    needs_met
        The needs the input file met (schema metadata :data:`NEEDS_KEY`).
    """
    import pyarrow as pa

    n = len(features)
    data: dict[str, Any] = {}
    for name in FEATURES:
        data[name] = pa.array(np.asarray(ak.to_numpy(features[name])))
    for name, shape in ARRAY_FEATURES.items():
        width = int(np.prod(shape))
        flat = np.asarray(ak.to_numpy(features[name]), dtype=np.float32).reshape(n * width)
        data[name] = pa.FixedSizeListArray.from_arrays(pa.array(flat, type=pa.float32()), width)
    data["weight"] = pa.array(np.asarray(weights, dtype=np.float64))
    data["run"] = pa.array(np.asarray(run, dtype=np.int64))
    data["luminosityBlock"] = pa.array(np.asarray(lumi, dtype=np.int64))
    data["event"] = pa.array(np.asarray(event, dtype=np.int64))
    data["dataset"] = pa.array([dataset] * n, type=pa.string())
    data["is_signal"] = pa.array(np.full(n, bool(is_signal)))
    return pa.table(data, metadata={NEEDS_KEY: json.dumps(sorted(needs_met)).encode()})


def needs_met(path: str | Path) -> frozenset[str]:
    """The needs every feature table under ``path`` (see :func:`table_files`) met, from their footers.

    The processor writes the record in every table; a table without it (written by hand or by
    another program) is taken to meet every need, with a warning naming it.
    """
    import pyarrow.parquet as pq

    met = set(NEEDS)
    for file in table_files(path):
        with storage.open_input(file) as f:
            meta = pq.read_schema(f).metadata or {}
        if NEEDS_KEY not in meta:
            log.warning("%s: no record of the feature needs its input met: taken as meeting all", file)
            continue
        met &= set(json.loads(meta[NEEDS_KEY]))
    return frozenset(met)


def write_table(table: Any, path: str | Path) -> Path | str:
    """Write a feature table to ``path`` (``path.tmp-<pid>`` then ``os.replace``), zstd-compressed; to a URL
    through fsspec (a temporary name moved onto ``path``, :func:`~cms_anomaly.processors.storage.write_bytes`)."""
    import pyarrow.parquet as pq

    if storage.is_url(path):
        return storage.write_bytes(str(path), table_bytes(table))
    path = Path(path)
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return path


def table_bytes(table: Any) -> bytes:
    """A feature table as the bytes of its parquet file (for tables sent back through the output)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue().to_pybytes())


#: the file, in a feature-table directory, that lists its tables; written last, by the run that made them
FEATURE_MANIFEST = "manifest.json"
_MANIFEST_KIND = "cms-anomaly feature tables"


def write_table_manifest(root: str | Path, tables: Sequence[str | Path]) -> Path | str:
    """Declare the tables under ``root`` finished: ``root/manifest.json`` lists them (paths relative to ``root``).

    Readers (:func:`table_files`) read only tables of a directory with a manifest, so the tables of an
    interrupted run (no manifest) are never taken for a finished set. ``root`` may be an fsspec URL.
    """
    import json

    from cms_anomaly.core.atomic import write_text_atomic

    rel = sorted(storage.relative(t, root) for t in tables)
    payload = {"kind": _MANIFEST_KIND, "version": FEATURE_TABLE_VERSION, "tables": rel}
    text = json.dumps(payload, indent=1) + "\n"
    if storage.is_url(root):
        return storage.write_bytes(storage.join(root, FEATURE_MANIFEST), text.encode())
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(root / FEATURE_MANIFEST, text)


def _manifest_root(path: Path) -> tuple[Path, list[str]] | None:
    """The feature-table directory holding ``path`` (itself, its parent or grandparent) and its table list."""
    import json

    for root in [path, *list(path.parents)[:2]] if path.is_dir() else list(path.parents)[:3]:
        manifest = root / FEATURE_MANIFEST
        if manifest.is_file():
            try:
                payload = json.loads(manifest.read_text())
            except (OSError, json.JSONDecodeError) as err:
                raise FeatureTableError(f"{manifest}: unreadable feature-table manifest ({err})") from err
            if isinstance(payload, dict) and payload.get("kind") == _MANIFEST_KIND:
                return root, [str(t) for t in payload.get("tables", [])]
    return None


def _natural_key(file: Path, root: Path) -> list[Any]:
    """Sort key of a table path: its parts under ``root``, numbers compared as numbers (chunk 5000-10000
    before 10000-15000)."""
    text = file.relative_to(root).as_posix()
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", text)]


def table_files(path: str | Path) -> list[Any]:
    """The feature tables under ``path`` (a file, or a directory searched recursively), in a
    reproducible order: by dataset, input file name and first entry (numbers as numbers), the order
    in which the models read events (``max_events`` takes the first ones).

    Only tables of a finished run are read: those its ``manifest.json`` lists (in ``path`` or up to two
    levels above it, see :func:`write_table_manifest`). Raises :class:`FeatureTableError` (one line naming
    the path) when there is no table, no manifest, or a listed table is missing. ``path`` may be an fsspec
    URL (``root://``, ``file://``, an object store): the tables are then URLs (strings), else paths.
    """
    if storage.is_url(path):
        return _url_table_files(str(path))
    path = Path(path)
    if not path.exists():
        raise FeatureTableError(f"feature tables not found: {path}")
    found = _manifest_root(path)
    if found is None:
        raise FeatureTableError(
            f"{path}: no finished-run manifest ({FEATURE_MANIFEST}) beside the feature tables: they come from an "
            "interrupted or unfinished run; rerun the command that writes them"
        )
    root, listed = found
    files = [root / t for t in listed]
    inside = [f for f in files if f == path or path in f.parents] if path != root else files
    missing = [f for f in inside if not f.is_file()]
    if missing:
        raise FeatureTableError(f"{missing[0]}: listed in {root / FEATURE_MANIFEST} but missing")
    if not inside:
        raise FeatureTableError(f"no *.parquet feature tables under {path}")
    return sorted(inside, key=lambda p: _natural_key(p, root))


def _url_table_files(url: str) -> list[str]:
    """:func:`table_files` of an fsspec URL: the manifest at ``url`` or up to two levels above it."""
    import posixpath

    if not storage.exists(url):
        raise FeatureTableError(f"feature tables not found: {url}")
    found = None
    for root in (url, posixpath.dirname(url), posixpath.dirname(posixpath.dirname(url))):
        manifest = storage.join(root, FEATURE_MANIFEST)
        if "://" in root and storage.is_file(manifest):
            try:
                payload = json.loads(storage.read_bytes(manifest))
            except (OSError, json.JSONDecodeError) as err:
                raise FeatureTableError(f"{manifest}: unreadable feature-table manifest ({err})") from err
            if isinstance(payload, dict) and payload.get("kind") == _MANIFEST_KIND:
                found = root, [str(t) for t in payload.get("tables", [])]
                break
    if found is None:
        raise FeatureTableError(
            f"{url}: no finished-run manifest ({FEATURE_MANIFEST}) beside the feature tables: they come from an "
            "interrupted or unfinished run; rerun the command that writes them"
        )
    root, listed = found
    inside = [storage.join(root, t) for t in listed if root == url or storage.join(root, t).startswith(url + "/")]
    missing = [f for f in inside if not storage.is_file(f)]
    if missing:
        raise FeatureTableError(f"{missing[0]}: listed in {storage.join(root, FEATURE_MANIFEST)} but missing")
    if not inside:
        raise FeatureTableError(f"no *.parquet feature tables under {url}")
    return sorted(inside, key=lambda f: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", f)])


def read_table(path: str | Path, *, columns: Sequence[str] | None = None, optional: Sequence[str] = ()) -> Any:
    """One feature table as a pyarrow table, only ``columns`` (all by default) and those of
    ``optional`` the file has (e.g. the event identity, which older tables lack).

    Raises
    ------
    FeatureTableError
        A requested column is missing (the message names the file).
    """
    import pyarrow.parquet as pq

    if storage.is_url(path):  # through fsspec: one file object for the footer and the columns
        with storage.open_input(path) as f:
            return _read_table(pq.ParquetFile(f), path, columns=columns, optional=optional)
    if columns is None:
        return pq.read_table(path)
    names = pq.read_schema(path).names
    missing = [c for c in columns if c not in names]
    if missing:
        raise FeatureTableError(f"{path}: missing column(s) {missing}")
    return pq.read_table(path, columns=list(dict.fromkeys([*columns, *(c for c in optional if c in names)])))


def _read_table(file: Any, path: str | Path, *, columns: Sequence[str] | None, optional: Sequence[str]) -> Any:
    """:func:`read_table` of an open ``pyarrow.parquet.ParquetFile``."""
    if columns is None:
        return file.read()
    names = file.schema_arrow.names
    missing = [c for c in columns if c not in names]
    if missing:
        raise FeatureTableError(f"{path}: missing column(s) {missing}")
    return file.read(columns=list(dict.fromkeys([*columns, *(c for c in optional if c in names)])))


def read_feature_tables(
    path: str | Path,
    *,
    columns: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    as_numpy: bool = False,
) -> Any:
    """Read feature tables (a file, a ``<dataset>/`` directory or the whole ``features/`` tree).

    Parameters
    ----------
    path
        Parquet file or directory (searched recursively).
    columns
        Columns to read (default: all).
    datasets
        Keep only these datasets (by the ``dataset`` column).
    as_numpy
        Return ``{column: ndarray}`` with ``objects`` (N, 19, 3), ``rmm`` (N, 51, 51) and
        ``m_lead_objects`` (N, 14) reshaped; otherwise a pandas DataFrame (list columns as arrays).

    Raises
    ------
    FeatureTableError
        No tables, or a requested column is missing (the message names the file).
    """
    import pyarrow as pa

    tables = []
    # read only what is asked for: the rmm column alone is 2601 floats per event
    want = None if columns is None else [*columns, *(["dataset"] if datasets is not None else [])]
    for f in table_files(path):
        table = read_table(f, columns=want)
        if datasets is not None:
            keep = np.isin(np.asarray(table.column("dataset").to_pylist(), dtype=object), list(datasets))
            table = table.filter(pa.array(keep))
        if columns is not None:
            table = table.select(list(columns))
        tables.append(table)
    table = pa.concat_tables(tables)
    if not as_numpy:
        return table.to_pandas()
    out: dict[str, np.ndarray] = {}
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        if name in ARRAY_FEATURES:
            values = col.flatten().to_numpy(zero_copy_only=False) if len(col) else np.zeros(0, np.float32)
            out[name] = values.reshape((len(col), *ARRAY_FEATURES[name]))
        else:
            out[name] = col.to_numpy(zero_copy_only=False)
    return out
