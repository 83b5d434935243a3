"""Reading the processors' parquet feature tables into model inputs.

Layout (written by the processor, issue 3): ``FEATURES/<dataset>/*.parquet`` with one
column per scalar feature, the list columns ``objects`` (57 floats) and ``rmm``
(2601 floats), and ``weight``, ``dataset``, ``is_signal``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cms_anomaly.models.errors import FeatureNeedsError, FeatureTableError
from cms_anomaly.models.feature_sets import FeatureSet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    """The events of one dataset as model inputs.

    Attributes
    ----------
    name : str
        Dataset name (the sub-directory of the feature directory).
    x : numpy.ndarray
        float32 array (N, width) of raw features in feature-set order.
    weight : numpy.ndarray
        float64 per-event weights (N,).
    is_signal : bool
        True for BSM benchmark datasets.
    run, event : numpy.ndarray, optional
        Event identity (the tables' ``run`` and ``event`` columns): what the training / validation
        split of :class:`~cms_anomaly.processors.folds.EventSplit` is computed from.
    draw_weight : numpy.ndarray, optional
        Of a cocktail (:func:`sm_cocktail`): each event's weight over the mean weight of its dataset,
        the probability with which training draws it (a tail-weighted production's generator
        weights); ``None`` when every dataset's events have equal weights.
    """

    name: str
    x: np.ndarray
    weight: np.ndarray
    is_signal: bool
    run: np.ndarray | None = None
    event: np.ndarray | None = None
    draw_weight: np.ndarray | None = None

    def subset(self, rows: np.ndarray) -> Sample:
        """The events ``rows`` (indices or a mask) of this sample."""
        pick = lambda a: None if a is None else a[rows]
        return Sample(
            self.name,
            self.x[rows],
            self.weight[rows],
            self.is_signal,
            pick(self.run),
            pick(self.event),
            pick(self.draw_weight),
        )

    def __len__(self) -> int:
        return len(self.x)


def list_datasets(features_dir: str | Path) -> list[str]:
    """Names of the dataset sub-directories holding parquet files, sorted (at an fsspec URL: those its
    finished-run manifest lists)."""
    from cms_anomaly.processors import feature_io, storage

    if storage.is_url(features_dir):
        try:
            files = feature_io.table_files(features_dir)
        except feature_io.FeatureTableError as err:
            raise FeatureTableError(str(err)) from err
        return sorted({storage.relative(f, features_dir).split("/")[0] for f in files})
    root = Path(features_dir)
    if not root.is_dir():
        raise FeatureTableError(f"feature directory {root} does not exist")
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.parquet")))
    if not names:
        raise FeatureTableError(f"no <dataset>/*.parquet files under {root}")
    return names


def _column_to_numpy(table: Any, column: str, *, width: int, path: Path) -> np.ndarray:
    import pyarrow as pa

    if column not in table.column_names:
        raise FeatureTableError(f"{path}: column {column!r} missing (have {table.column_names})")
    col = table.column(column).combine_chunks()
    n = len(col)
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type):
        flat = col.flatten()
        values = flat.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        if values.size != n * width:
            raise FeatureTableError(
                f"{path}: list column {column!r} has {values.size} values for {n} events, expected {width} per event"
            )
        return values.reshape(n, width)
    if width != 1:
        raise FeatureTableError(f"{path}: column {column!r} is scalar but {width} floats per event are needed")
    return col.to_numpy(zero_copy_only=False).astype(np.float32).reshape(n, 1)


def _refuse_non_finite(x: np.ndarray, feature_set: FeatureSet, *, path: Path) -> None:
    """Raise :class:`FeatureTableError` naming the file and the columns (``rmm[52]`` for an array
    column's entry) where the model inputs ``x`` of one table hold NaN or inf."""
    bad = ~np.isfinite(x)
    if not bad.any():
        return
    per_col = feature_set.width // len(feature_set.columns)
    names = [
        feature_set.columns[j // per_col] + (f"[{j % per_col}]" if per_col > 1 else "")
        for j in np.unique(np.nonzero(bad)[1])
    ]
    more = f" and {len(names) - 8} more" if len(names) > 8 else ""
    raise FeatureTableError(
        f"{path}: {int(bad.any(axis=1).sum())} event(s) with non-finite values in column(s) "
        f"{', '.join(names[:8])}{more}: refusing to use them"
    )


def read_dataset(
    features_dir: str | Path, dataset: str, *, feature_set: FeatureSet, max_events: int | None = None
) -> Sample:
    """Read one dataset's parquet files into a :class:`Sample`.

    Parameters
    ----------
    features_dir : str or Path
        Directory holding ``<dataset>/*.parquet``.
    dataset : str
        Dataset name.
    feature_set : FeatureSet
        Which columns to read and how wide the flattened input is.
    max_events : int, optional
        Keep only the first ``max_events`` events (files in sorted order).

    Returns
    -------
    Sample
    """
    from cms_anomaly.processors import feature_io

    per_col_width = feature_set.width // len(feature_set.columns)
    xs, ws, sig, runs, evs = [], [], [], [], []
    n_read = 0
    try:  # the one reader of feature tables (processors/feature_io.py), with the models' error class
        files = feature_io.table_files(_dataset_dir(features_dir, dataset))
    except feature_io.FeatureTableError as err:
        raise FeatureTableError(str(err)) from err
    for path in files:
        try:
            table = feature_io.read_table(
                path, columns=[*feature_set.columns, "weight", "is_signal"], optional=("run", "event")
            )
        except feature_io.FeatureTableError as err:
            raise FeatureTableError(str(err)) from err
        ids = [c for c in ("run", "event") if c in table.column_names]
        if table.num_rows == 0:
            continue
        x_file = np.concatenate(
            [_column_to_numpy(table, c, width=per_col_width, path=path) for c in feature_set.columns], axis=1
        )
        _refuse_non_finite(x_file[: None if max_events is None else max_events - n_read], feature_set, path=path)
        xs.append(x_file)
        weight = table.column("weight").to_numpy().astype(np.float64)
        if not np.all(np.isfinite(weight)):
            raise FeatureTableError(
                f"{path}: column 'weight' has {int(np.sum(~np.isfinite(weight)))} non-finite "
                f"value(s) (e.g. {weight[~np.isfinite(weight)][0]}): refusing to train on them"
            )
        ws.append(weight)
        sig.append(bool(np.any(table.column("is_signal").to_numpy(zero_copy_only=False))))
        if len(ids) == 2:
            runs.append(table.column("run").to_numpy().astype(np.uint64))
            evs.append(table.column("event").to_numpy().astype(np.uint64))
        n_read += table.num_rows
        if max_events is not None and n_read >= max_events:
            break
    if not xs:
        raise FeatureTableError(f"all parquet files of dataset {dataset!r} in {features_dir} are empty")
    x = np.concatenate(xs)[:max_events]
    w = np.concatenate(ws)[:max_events]
    log.info("read %d events of %s (%s)", len(x), dataset, feature_set.name)
    has_ids = len(runs) == len(xs)  # every table carries the event identity
    return Sample(
        name=dataset,
        x=x,
        weight=w,
        is_signal=any(sig),
        run=np.concatenate(runs)[:max_events] if has_ids else None,
        event=np.concatenate(evs)[:max_events] if has_ids else None,
    )


def dataset_needs(features_dir: str | Path, datasets: Iterable[str]) -> dict[str, frozenset[str]]:
    """``{dataset: feature needs its input met}`` from the feature tables' footers
    (:func:`cms_anomaly.processors.feature_io.needs_met`)."""
    from cms_anomaly.processors import feature_io

    try:
        return {d: feature_io.needs_met(_dataset_dir(features_dir, d)) for d in datasets}
    except feature_io.FeatureTableError as err:
        raise FeatureTableError(str(err)) from err


def read_samples(
    features_dir: str | Path,
    *,
    feature_set: FeatureSet,
    datasets: list[str] | None = None,
    max_events: int | None = None,
) -> dict[str, Sample]:
    """Read several datasets (all sub-directories when ``datasets`` is None)."""
    if datasets is None:
        # a dataset of which no event passed the selection has only empty tables: nothing to read
        names = [n for n in list_datasets(features_dir) if _n_rows(_dataset_dir(features_dir, n)) > 0]
        skipped = sorted(set(list_datasets(features_dir)) - set(names))
        if skipped:
            log.warning("no events in dataset(s) %s of %s: skipped", ", ".join(skipped), features_dir)
    else:
        names = list(datasets)
    refuse_unmet_needs(features_dir, names, feature_set)
    return {n: read_dataset(features_dir, n, feature_set=feature_set, max_events=max_events) for n in names}


def refuse_unmet_needs(features_dir: str | Path, datasets: Iterable[str], feature_set: FeatureSet) -> None:
    """Raise :class:`FeatureNeedsError` if a column of ``feature_set`` needs what a dataset's input lacked
    (its value there is a placeholder, no measurement): no model reads such a column.
    :func:`cms_anomaly.models.pipeline.feature_set_for_job` gives the set without them."""
    from cms_anomaly.processors.feature_spec import usable_features

    if feature_set.is_array:
        return
    _, dropped = usable_features(feature_set.columns, dataset_needs(features_dir, datasets))
    if dropped:
        raise FeatureNeedsError(
            f"{features_dir}: feature set {feature_set.name!r} has features a dataset lacks: "
            + "; ".join(f"{k} ({v})" for k, v in dropped.items())
        )


def _dataset_dir(features_dir: str | Path, dataset: str) -> str | Path:
    """The directory (or fsspec URL) of one dataset's tables."""
    from cms_anomaly.processors import storage

    return storage.join(features_dir, dataset) if storage.is_url(features_dir) else Path(features_dir) / dataset


def _n_rows(directory: str | Path) -> int:
    """Events in a dataset directory's parquet files (from the footers, no data read)."""
    import pyarrow.parquet as pq
    from cms_anomaly.processors import feature_io, storage

    if storage.is_url(directory):
        total = 0
        for url in feature_io.table_files(directory):
            with storage.open_input(url) as f:
                total += pq.ParquetFile(f).metadata.num_rows
        return total
    return sum(pq.read_metadata(f).num_rows for f in Path(directory).glob("*.parquet"))


def train_val_split(n: int, *, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random split of ``range(n)`` into (train, validation) index arrays."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(n * val_fraction))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def validation_mask(sample: Sample, *, val_fraction: float, seed: int) -> np.ndarray:
    """Which events of ``sample`` are validation events.

    With the event identity (tables written by the processor): :class:`EventSplit`, the split the
    processor's ``split`` axis reproduces on any worker. Without it (arrays made in memory): a
    seeded random permutation (:func:`train_val_split`).
    """
    return _validation_mask(len(sample), sample.run, sample.event, val_fraction=val_fraction, seed=seed)


def cocktail_validation_mask(samples: dict[str, Sample], *, val_fraction: float, seed: int) -> np.ndarray:
    """:func:`validation_mask` of the SM cocktail (:func:`sm_cocktail` order), from the event
    identities alone (the feature matrices are not concatenated)."""
    sm = [s for s in samples.values() if not s.is_signal]
    ids = all(s.run is not None and s.event is not None for s in sm)
    return _validation_mask(
        sum(len(s) for s in sm),
        np.concatenate([s.run for s in sm]) if ids else None,
        np.concatenate([s.event for s in sm]) if ids else None,
        val_fraction=val_fraction,
        seed=seed,
    )


def _validation_mask(
    n: int, run: np.ndarray | None, event: np.ndarray | None, *, val_fraction: float, seed: int
) -> np.ndarray:
    from cms_anomaly.processors.folds import EventSplit

    if run is not None and event is not None:
        return EventSplit(val_fraction, seed).is_validation(run, event)
    mask = np.zeros(n, bool)
    mask[train_val_split(n, val_fraction=val_fraction, seed=seed)[1]] = True
    return mask


def training_weights(weight: np.ndarray) -> np.ndarray:
    """The weights training uses: ``|w|``.

    NLO samples (MC@NLO) carry a few percent of negative generator weights, which can be neither
    drawing probabilities nor XGBoost weights (it refuses them). Their absolute values keep every
    event and, where the negative-weight events have the kinematics of the positive ones, the shape of
    the distribution (negative weights in machine learning: arXiv:2007.11586, sec. 1); histograms, cut-flows and
    thresholds keep the signed weights.
    """
    return np.abs(np.asarray(weight, dtype=np.float64))


def relative_weights(weight: np.ndarray) -> np.ndarray:
    """A dataset's training weights (:func:`training_weights`, ``|w|``) over their mean: its generator
    weights (a tail-weighted production), exactly 1 where all are equal (one cross-section weight per
    unweighted sample, or an NLO sample's +-w)."""
    w = training_weights(weight)
    if w.size == 0 or np.ptp(w) <= 1e-9 * np.abs(w).max():
        return np.ones(len(w))
    return w / w.mean()


def sm_cocktail(samples: dict[str, Sample]) -> Sample:
    """Concatenate the non-signal samples into one SM cocktail (weights and event identities kept)."""
    sm = [s for s in samples.values() if not s.is_signal]
    if not sm:
        raise FeatureTableError(f"no SM (is_signal False) dataset among {sorted(samples)}")
    ids = all(s.run is not None and s.event is not None for s in sm)
    # within a dataset, unequal weights are generator weights (a tail-biased production): training
    # draws events in proportion to them, so that it sees each dataset's physical distribution. The
    # datasets' relative weights (cross sections) are not applied: the composition stays the tables'.
    relative = [relative_weights(s.weight) for s in sm]
    weighted = any(np.any(r != 1.0) for r in relative)
    return Sample(
        name="+".join(s.name for s in sm),
        x=np.concatenate([s.x for s in sm]),
        weight=np.concatenate([s.weight for s in sm]),
        is_signal=False,
        run=np.concatenate([s.run for s in sm]) if ids else None,
        event=np.concatenate([s.event for s in sm]) if ids else None,
        draw_weight=np.concatenate(relative) if weighted else None,
    )
