"""Histogram factories and columnar fill helpers (``hist``, weighted storage, dataset category axis).

Every histogram has a ``dataset`` StrCat axis first (AGC pattern) and ``Weight`` storage. The
processor creates fresh histograms per chunk with these factories and nests them under the
dataset name; coffea's accumulator adds them.
"""
from __future__ import annotations

from collections.abc import Sequence

import hist
import numpy as np

from cms_anomaly.processors.feature_spec import FeatureSpec

#: log-spaced axis range of model scores (losses, distances, probabilities are all positive)
SCORE_RANGE = (1e-6, 1e6)
SCORE_BINS = 120


def _dataset_axis() -> hist.axis.StrCategory:
    return hist.axis.StrCategory([], name="dataset", label="Dataset", growth=True)


def feature_axis(spec: FeatureSpec) -> hist.axis.AxesMixin:
    """The value axis of one feature (Integer for counts, Regular otherwise)."""
    if spec.integer:
        return hist.axis.Integer(int(spec.lo), int(spec.hi), name=spec.name, label=spec.label)
    return hist.axis.Regular(spec.bins, spec.lo, spec.hi, name=spec.name, label=spec.label)


def feature_hist(spec: FeatureSpec) -> hist.Hist:
    """Weighted 1-D histogram of a scalar feature with a dataset axis."""
    return hist.Hist(_dataset_axis(), feature_axis(spec), storage=hist.storage.Weight())


def rmm_occupancy_hist(size: int = 51) -> hist.Hist:
    """Sum of event weights for which each RMM cell (row, column) is non-zero."""
    return hist.Hist(
        _dataset_axis(),
        hist.axis.Integer(0, size, name="row", label="RMM row index"),
        hist.axis.Integer(0, size, name="column", label="RMM column index"),
        storage=hist.storage.Weight(),
    )


def cutflow_hist(cut_names: Sequence[str]) -> hist.Hist:
    """Weighted cut-flow: bin ``all`` then one bin per cut (cumulative)."""
    return hist.Hist(
        _dataset_axis(),
        hist.axis.StrCategory(["all", *cut_names], name="cut", label="Cut"),
        storage=hist.storage.Weight(),
    )


def score_hist(name: str, output: str) -> hist.Hist:
    """1-D histogram of one model output (log-spaced bins)."""
    return hist.Hist(
        _dataset_axis(),
        hist.axis.Regular(SCORE_BINS, *SCORE_RANGE, transform=hist.axis.transform.log, name=output,
                          label=f"{name} {output} (anomaly score)"),
        storage=hist.storage.Weight(),
    )


def score2d_hist(name: str, outputs: Sequence[str]) -> hist.Hist:
    """2-D histogram of the two outputs of a double-scorer (ABCD plane)."""
    a, b = outputs
    return hist.Hist(
        _dataset_axis(),
        hist.axis.Regular(SCORE_BINS, *SCORE_RANGE, transform=hist.axis.transform.log, name=a, label=f"{name} {a}"),
        hist.axis.Regular(SCORE_BINS, *SCORE_RANGE, transform=hist.axis.transform.log, name=b, label=f"{name} {b}"),
        storage=hist.storage.Weight(),
    )


def fill_rmm_occupancy(h: hist.Hist, rmm: np.ndarray, *, dataset: str, weights: np.ndarray) -> None:
    """Fill each non-zero cell of every event's RMM with the event weight (columnar)."""
    ev, row, col = np.nonzero(rmm)
    h.fill(dataset=dataset, row=row, column=col, weight=weights[ev])


def fill_cutflow(h: hist.Hist, masks: dict[str, np.ndarray], *, dataset: str, weights: np.ndarray) -> None:
    """Fill the cumulative cut-flow: bin ``cut`` gets sum(w) and sum(w^2) of the events passing up to it."""
    cuts = list(masks)
    h.fill(dataset=[dataset] * len(cuts), cut=cuts, weight=np.zeros(len(cuts)))  # creates the dataset bin
    view = h.view(flow=False)
    i = h.axes["dataset"].index(dataset)
    for cut, mask in masks.items():
        j = h.axes["cut"].index(cut)
        w = weights[mask]
        view.value[i, j] += float(w.sum())
        view.variance[i, j] += float((w * w).sum())
