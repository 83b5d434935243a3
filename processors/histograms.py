"""Histogram factories and columnar fill helpers (``hist``, weighted storage, dataset category axis).

Every histogram has a ``dataset`` StrCat axis first (AGC pattern; created holding the chunk's
dataset, so that a histogram with no entries still has its dataset bin) and ``Weight`` storage. The
processor creates fresh histograms per chunk with these factories and nests them under the
dataset name; coffea's accumulator adds them.

The feature histograms have a ``systematic`` StrCat axis second: ``nominal`` always, and
``<correction>Up`` / ``<correction>Down`` for every scale factor applied
(:mod:`cms_anomaly.processors.corrections`). Readers take the nominal through :func:`nominal`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import hist
import numpy as np
from cms_anomaly.processors.feature_spec import FEATURES, FeatureSpec
from cms_anomaly.processors.rmm import M_LEAD_NAMES, RMM_SIZE

#: log-spaced axis range of model scores (losses, distances, probabilities are all positive)
SCORE_RANGE = (1e-6, 1e6)
SCORE_BINS = 120


def _dataset_axis(dataset: str | None = None) -> hist.axis.StrCategory:
    return hist.axis.StrCategory([] if dataset is None else [dataset], name="dataset", label="Dataset", growth=True)


def feature_axis(spec: FeatureSpec) -> hist.axis.Integer | hist.axis.Regular:
    """The value axis of one feature (Integer for counts, Regular otherwise)."""
    if spec.integer:
        return hist.axis.Integer(int(spec.lo), int(spec.hi), name=spec.name, label=spec.label)
    return hist.axis.Regular(spec.bins, spec.lo, spec.hi, name=spec.name, label=spec.label)


#: the category of the ``systematic`` axis holding the nominal weights
NOMINAL = "nominal"


def _systematic_axis(systematics: Sequence[str] = (NOMINAL,)) -> hist.axis.StrCategory:
    return hist.axis.StrCategory(
        list(systematics), name="systematic", label="Systematic variation ('nominal', '<name>Up', ...)", growth=True
    )


def feature_hist(
    spec: FeatureSpec, *, dataset: str | None = None, systematics: Sequence[str] = (NOMINAL,)
) -> hist.Hist:
    """Weighted histogram (dataset, systematic, feature) of a scalar feature."""
    return hist.Hist(
        _dataset_axis(dataset), _systematic_axis(systematics), feature_axis(spec), storage=hist.storage.Weight()
    )


def nominal(h: hist.Hist) -> hist.Hist:
    """``h`` at its nominal weights: the ``nominal`` category of its ``systematic`` axis (``h`` itself
    for a histogram without one)."""
    if "systematic" not in h.axes.name:
        return h
    return cast(hist.Hist, h[{"systematic": NOMINAL}])  # a histogram: other axes remain


def variation(h: hist.Hist, systematic: str) -> hist.Hist:
    """``h`` at the weights of one ``systematic`` category (``nominal``, ``muon_idUp``, ...).

    Raises
    ------
    KeyError
        ``h`` has no such category (the message lists those it has).
    """
    have = list(h.axes["systematic"]) if "systematic" in h.axes.name else [NOMINAL]
    if systematic not in have:
        raise KeyError(f"histogram {h.axes[-1].name!r} has no systematic {systematic!r}; it has {have}")
    if systematic == NOMINAL:
        return nominal(h)
    return cast(hist.Hist, h[{"systematic": systematic}])


def rmm_occupancy_hist(size: int = RMM_SIZE, *, dataset: str | None = None) -> hist.Hist:
    """Sum of event weights for which each RMM cell (row, column) is non-zero."""
    return hist.Hist(
        _dataset_axis(dataset),
        hist.axis.Integer(0, size, name="row", label="RMM row index"),
        hist.axis.Integer(0, size, name="column", label="RMM column index"),
        storage=hist.storage.Weight(),
    )


def cutflow_hist(cut_names: Sequence[str], *, dataset: str | None = None) -> hist.Hist:
    """Weighted cut-flow: bin ``all`` then one bin per cut (cumulative)."""
    return hist.Hist(
        _dataset_axis(dataset),
        hist.axis.StrCategory(["all", *cut_names], name="cut", label="Cut"),
        storage=hist.storage.Weight(),
    )


#: a scorer's own score binning (``score_binning`` attribute): (bins, low, high), linear; e.g. the
#: calibrated k-fold scores of :class:`~cms_anomaly.models.scorers.KFoldScorer`, -log10 p in [0, 8)
ScoreBinning = tuple[int, float, float]


def score_hist(name: str, output: str, *, dataset: str | None = None, binning: ScoreBinning | None = None) -> hist.Hist:
    """1-D histogram of one model output (log-spaced bins, or the scorer's own ``binning``)."""
    if binning is None:
        axis = hist.axis.Regular(
            SCORE_BINS,
            *SCORE_RANGE,
            transform=hist.axis.transform.log,
            name=output,
            label=f"{name} {output} (anomaly score)",
        )
    else:
        axis = hist.axis.Regular(*binning, name=output, label=f"{name} {output}")
    return hist.Hist(_dataset_axis(dataset), axis, storage=hist.storage.Weight())


#: the ABCD plane's axes of a scorer (``score2d_binning`` attribute): (bins, low, high, "log" or "linear")
Score2dBinning = tuple[int, float, float, str]


def score2d_hist(
    name: str, outputs: Sequence[str], *, dataset: str | None = None, binning: Score2dBinning | None = None
) -> hist.Hist:
    """(dataset, split, output 1, output 2) of a double-scorer: the ABCD plane, per training split (the
    scorer's ``binning`` on both axes, else 120 log bins from 1e-6 to 1e6)."""
    bins, lo, hi, kind = binning if binning is not None else (SCORE_BINS, *SCORE_RANGE, "log")
    transform = hist.axis.transform.log if kind == "log" else None
    a, b = outputs
    return hist.Hist(
        _dataset_axis(dataset),
        _split_axis(),
        hist.axis.Regular(bins, lo, hi, transform=transform, name=a, label=f"{name} {a}"),
        hist.axis.Regular(bins, lo, hi, transform=transform, name=b, label=f"{name} {b}"),
        storage=hist.storage.Weight(),
    )


#: fine score binning of the histograms that thresholds are read from (50 log bins per decade:
#: a threshold at a bin edge selects a fraction within 4.7 % (relative) of the score of any alpha)
SCORE_FINE_BINS = 50 * 12

#: the features histogrammed against every model output (Knapp et al. sec. 4: the ASTF variables
#: H_T, M_J, N_J, N_b); with N_J x N_b also jointly, for post-processing selections on them
SCORE_VS_FEATURES: tuple[str, ...] = ("ht", "m_jets", "n_jets", "n_bjets")


#: binning of the leading-object masses against a score: log bins from 60 GeV to 4 TeV, for the
#: dijet-function fits of the outlier region (Chekanov et al.; 60 bins, any rebinning by 2 or 3)
LEAD_MASS_AXIS = (60, 60.0, 4000.0)


#: m_JJ bins of the dijet resonance hunt against a score: 40 log-spaced bins from 2.5 to 6 TeV, rounded
#: to GeV (LHC Olympics 2020: CWoLa hunting scans 2.6-6 TeV, BumpHunter uses 40 bins, Table 4); a coarser
#: scan merges whole bins
DIJET_MASS_EDGES: tuple[float, ...] = (
    2500.0, 2555.0, 2612.0, 2670.0, 2729.0, 2789.0, 2851.0, 2914.0, 2978.0, 3044.0, 3112.0, 3181.0, 3251.0, 3323.0,
    3396.0, 3472.0, 3548.0, 3627.0, 3707.0, 3789.0, 3873.0, 3959.0, 4046.0, 4136.0, 4227.0, 4321.0, 4416.0, 4514.0,
    4614.0, 4716.0, 4821.0, 4927.0, 5036.0, 5148.0, 5262.0, 5378.0, 5497.0, 5619.0, 5743.0, 5870.0, 6000.0,
)  # fmt: skip


def score_feature_axis(name: str) -> hist.axis.Integer | hist.axis.Regular | hist.axis.Variable:
    """The axis of a feature histogrammed against a score (:func:`feature_axis`, but log-binned
    60 GeV - 4 TeV for the leading-object masses m_x_y, and :data:`DIJET_MASS_EDGES` for m_JJ)."""
    spec = FEATURES[name]
    if name == "mJJ":
        return hist.axis.Variable(DIJET_MASS_EDGES, name=name, label=spec.label)
    if name in M_LEAD_NAMES:
        return hist.axis.Regular(*LEAD_MASS_AXIS, transform=hist.axis.transform.log, name=name, label=spec.label)
    return feature_axis(spec)


def _split_axis() -> hist.axis.StrCategory:
    return hist.axis.StrCategory(
        [], name="split", label="Training / validation (EventSplit; 'all' without)", growth=True
    )


def _process_axis() -> hist.axis.StrCategory:
    return hist.axis.StrCategory([], name="process", label="Process (generator truth; 'data' for data)", growth=True)


def _fine_score_axis(name: str, output: str, binning: ScoreBinning | None = None) -> hist.axis.Regular:
    if binning is not None:
        return hist.axis.Regular(*binning, name="score", label=f"{name} {output}")
    return hist.axis.Regular(
        SCORE_FINE_BINS,
        *SCORE_RANGE,
        transform=hist.axis.transform.log,
        name="score",
        label=f"{name} {output} (anomaly score)",
    )


def score_feature_hist(
    name: str, output: str, feature: str, *, dataset: str | None = None, binning: ScoreBinning | None = None
) -> hist.Hist:
    """(dataset, split, process, score, feature): any anomaly selection's ASTF, read off at any threshold."""
    return hist.Hist(
        _dataset_axis(dataset),
        _split_axis(),
        _process_axis(),
        _fine_score_axis(name, output, binning),
        score_feature_axis(feature),
        storage=hist.storage.Weight(),
    )


def score_counts_hist(
    name: str, output: str, *, dataset: str | None = None, binning: ScoreBinning | None = None
) -> hist.Hist:
    """(dataset, split, process, score, N_J, N_b): yields of object-count selections after any threshold."""
    return hist.Hist(
        _dataset_axis(dataset),
        _split_axis(),
        _process_axis(),
        _fine_score_axis(name, output, binning),
        feature_axis(FEATURES["n_jets"]),
        feature_axis(FEATURES["n_bjets"]),
        storage=hist.storage.Weight(),
    )


def add_rmm_occupancy(h: hist.Hist, sumw: np.ndarray, sumw2: np.ndarray, *, dataset: str) -> None:
    """Add per-cell sums of weights (and squared weights) to the ``rmm_occupancy`` histogram."""
    h.fill(dataset=[dataset], row=[0], column=[0], weight=[0.0])  # make sure the dataset bin exists
    view: Any = h.view(flow=False)  # a WeightedSumView (fields value, variance)
    i = h.axes["dataset"].index(dataset)
    view.value[i] += sumw
    view.variance[i] += sumw2


def fill_cutflow(h: hist.Hist, masks: dict[str, np.ndarray], *, dataset: str, weights: np.ndarray) -> None:
    """Fill the cumulative cut-flow: bin ``cut`` gets sum(w) and sum(w^2) of the events passing up to it."""
    cuts = list(masks)
    h.fill(dataset=[dataset] * len(cuts), cut=cuts, weight=np.zeros(len(cuts)))  # creates the dataset bin
    view: Any = h.view(flow=False)  # a WeightedSumView (fields value, variance)
    i = h.axes["dataset"].index(dataset)
    for cut, mask in masks.items():
        j = h.axes["cut"].index(cut)
        w = weights[mask]
        view.value[i, j] += float(w.sum())
        view.variance[i, j] += float((w * w).sum())


#: the event-class distributions and their binning (bins, low, high) in GeV: 10 GeV bins (MUSiC's
#: smallest bin width, EPJC 81 (2021) 629 sec. 5) to 6 TeV for S_T and the mass, 3 TeV for MET
CLASS_BINNING: dict[str, tuple[int, float, float]] = {
    "st": (600, 0.0, 6000.0),
    "mass": (600, 0.0, 6000.0),
    "met": (300, 0.0, 3000.0),
}
CLASS_LABELS: dict[str, str] = {
    "st": "S_T of the class objects (+ MET) [GeV]",
    "mass": "M of the class objects, M_T with MET [GeV]",
    "met": "MET [GeV]",
}


def _class_axis() -> hist.axis.StrCategory:
    return hist.axis.StrCategory([], growth=True, name="event_class", label="Event class")


def class_hist(variable: str, *, dataset: str | None = None) -> hist.Hist:
    """(dataset, event_class, ``variable``) of the event classes (:data:`CLASS_BINNING`)."""
    bins, lo, hi = CLASS_BINNING[variable]
    return hist.Hist(
        _dataset_axis(dataset),
        _class_axis(),
        hist.axis.Regular(bins, lo, hi, name=variable, label=CLASS_LABELS[variable]),
        storage=hist.storage.Weight(),
    )


#: the joint (S_T, M, MET) binning of the exclusive classes (``class_joint``), in GeV: few, roughly
#: log-spaced bins (each about 1.5-2.5 times the last), up to the :data:`CLASS_BINNING` ranges, because the
#: joint histogram has bins^3 cells per class and dataset: 10 x 10 x 6 (11 x 11 x 7 with the overflow) are
#: 13.6 kB per class and dataset (sum w and sum w^2), 16 MB for ~100 classes x 12 datasets (the exclusive
#: classes only), while a TeV-scale excess still lands in bins of its own. The first S_T bin ends at 50 GeV
#: (every class object has pT > 25 GeV); MET has an edge at the class MET threshold (100 GeV).
CLASS_JOINT_EDGES: dict[str, tuple[float, ...]] = {
    "st": (0.0, 50.0, 100.0, 150.0, 250.0, 400.0, 600.0, 1000.0, 1600.0, 2500.0, 6000.0),
    "mass": (0.0, 25.0, 50.0, 100.0, 150.0, 250.0, 400.0, 600.0, 1000.0, 2000.0, 6000.0),
    "met": (0.0, 25.0, 50.0, 100.0, 200.0, 400.0, 3000.0),
}


def class_joint_hist(*, dataset: str | None = None) -> hist.Hist:
    """(dataset, event_class, st, mass, met) of the event classes (:data:`CLASS_JOINT_EDGES`; no underflow:
    the variables are >= 0; an overflow bin above the last edge)."""
    return hist.Hist(
        _dataset_axis(dataset),
        _class_axis(),
        *(
            hist.axis.Variable(edges, name=v, label=CLASS_LABELS[v], underflow=False)
            for v, edges in CLASS_JOINT_EDGES.items()
        ),
        storage=hist.storage.Weight(),
    )


def class_score_hist(
    name: str, output: str, *, dataset: str | None = None, binning: ScoreBinning | None = None
) -> hist.Hist:
    """(dataset, event_class, score) of one model output per event class (the axis of :func:`score_hist`)."""
    score_axis = score_hist(name, output, binning=binning).axes[output]
    return hist.Hist(_dataset_axis(dataset), _class_axis(), score_axis, storage=hist.storage.Weight())
