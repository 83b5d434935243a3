"""Per-event feature tables: parquet, one file per processed chunk, written atomically.

Layout: ``OUT/features/<dataset>/<dataset>__<file-stem>-<uuid8>__<entrystart>-<entrystop>.parquet``
with one column per scalar feature, ``m_lead_objects`` (14), ``objects`` (19*3 = 57, row-major)
and ``rmm`` (51*51 = 2601, row-major) as fixed-size lists of float32, and ``weight``, ``run``,
``luminosityBlock``, ``event``, ``dataset``, ``is_signal``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
from cms_anomaly.datasets.atomic import atomic_output
from cms_anomaly.processors.feature_spec import ARRAY_FEATURES, SCALAR_FEATURES

#: version of the table layout and naming; a cached pass (``analyses.cocktail.feature_tables``) is
#: reused only with the same version. 2: tables named after the input file's stem, read in natural order.
FEATURE_TABLE_VERSION = 2


class FeatureTableError(OSError):
    """A feature table is missing, unreadable or lacks a requested column."""


def table_path(out_dir: str | Path, *, dataset: str, file_id: str, entrystart: int, entrystop: int) -> Path:
    """Where the table of one chunk goes."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", file_id)
    return Path(out_dir) / dataset / f"{dataset}__{safe}__{entrystart}-{entrystop}.parquet"


def write_feature_table(
    features: ak.Array,
    *,
    path: str | Path,
    weights: np.ndarray,
    run: np.ndarray,
    lumi: np.ndarray,
    event: np.ndarray,
    dataset: str,
    is_signal: bool,
) -> Path:
    """Write one chunk's selected events to ``path`` (``path.tmp-<pid>`` then ``os.replace``).

    Parameters
    ----------
    features
        Record array from :func:`~cms_anomaly.processors.features.compute_features` (selected events).
    path
        Target file.
    weights, run, lumi, event
        Per-event arrays aligned with ``features``.
    dataset, is_signal
        Constant columns.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = len(features)
    data: dict[str, Any] = {}
    for name in SCALAR_FEATURES:
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
    path = Path(path)
    with atomic_output(path) as tmp:
        pq.write_table(pa.table(data), tmp, compression="zstd")
    return path


def _natural_key(file: Path, root: Path) -> list[Any]:
    """Sort key of a table path: its parts under ``root``, numbers compared as numbers (chunk 5000-10000
    before 10000-15000)."""
    text = file.relative_to(root).as_posix()
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", text)]


def table_files(path: str | Path) -> list[Path]:
    """The feature tables under ``path`` (a file, or a directory searched recursively), in a
    reproducible order: by dataset, input file name and first entry (numbers as numbers), the order
    in which the models read events (``max_events`` takes the first ones). Files still being written
    (``.tmp-``) are skipped. Raises :class:`FeatureTableError` when there is none."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FeatureTableError(f"feature tables not found: {path}")
    files = sorted((p for p in path.rglob("*.parquet") if ".tmp-" not in p.name), key=lambda p: _natural_key(p, path))
    if not files:
        raise FeatureTableError(f"no *.parquet feature tables under {path}")
    return files


def read_table(path: Path, *, columns: Sequence[str] | None = None, optional: Sequence[str] = ()) -> Any:
    """One feature table as a pyarrow table, only ``columns`` (all by default) and those of
    ``optional`` the file has (e.g. the event identity, which older tables lack).

    Raises
    ------
    FeatureTableError
        A requested column is missing (the message names the file).
    """
    import pyarrow.parquet as pq

    if columns is None:
        return pq.read_table(path)
    names = pq.read_schema(path).names
    missing = [c for c in columns if c not in names]
    if missing:
        raise FeatureTableError(f"{path}: missing column(s) {missing}")
    return pq.read_table(path, columns=list(dict.fromkeys([*columns, *(c for c in optional if c in names)])))


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


def summarize(tables: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Events per dataset of an ``as_numpy`` read."""
    names, counts = np.unique(np.asarray(tables["dataset"], dtype=object).astype(str), return_counts=True)
    return dict(zip(names.tolist(), counts.tolist(), strict=True))
