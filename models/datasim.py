"""A classifier of data against simulation: does the simulation describe the data it models?

Before any anomaly selection, a k-fold XGBoost classifier (:func:`~cms_anomaly.models.bdt.train_classifier`)
learns to tell the data events from the simulated ones on the detector's own inputs. Its out-of-fold
ROC AUC is 0.5 where the simulation describes the data in every correlation of those inputs; a
process hidden in the data at a share ``f`` of its events raises it by at most ``f / 2`` (a perfectly
separable share), so an AUC well above 0.5 means that much of the data looks unlike the simulation.
The features that drive it are ranked by their own (single-variable) AUC, ``|AUC_f - 0.5|``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from cms_anomaly.models.bdt import BDTParams, predict, train_classifier
from cms_anomaly.models.errors import TrainingError
from cms_anomaly.stats import auc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataSimulationClassifier:
    """What the data-vs-simulation classifier found (data = class 1, simulation = class 0).

    Attributes
    ----------
    auc : float
        Weighted ROC AUC of the out-of-fold classifier outputs of all events (each event scored by
        the model that did not train on it).
    auc_folds : tuple of float
        The same on each fold's events alone.
    auc_spread : float
        Standard deviation of ``auc_folds`` (ddof = 1): how much the AUC moves between folds.
    feature_auc : dict of str to float
        Each feature's own weighted AUC of data against simulation (> 0.5: the data lie higher).
    ranking : list of str
        The features by ``|feature_auc - 0.5|``, largest first: those that tell data from simulation.
    n_data, n_simulation : int
        Events of each class.
    negative_weights : int
        Simulated (or data) events with a negative weight; the classifier uses ``|w|``.
    k_folds : int
        Number of folds.
    """

    auc: float
    auc_folds: tuple[float, ...]
    auc_spread: float
    feature_auc: dict[str, float]
    ranking: list[str]
    n_data: int
    n_simulation: int
    negative_weights: int
    k_folds: int


def _class_weights(w_data: np.ndarray, w_sim: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """``|w|`` of each class scaled to an equal total, both summing to half the events (mean weight 1)."""
    negative = int(np.sum(w_data < 0) + np.sum(w_sim < 0))
    wd, ws = np.abs(w_data), np.abs(w_sim)
    if not (wd.sum() > 0 and ws.sum() > 0):
        raise TrainingError(
            f"data vs simulation: non-positive total weight (data {wd.sum():.3g}, simulation {ws.sum():.3g})"
        )
    half = 0.5 * (len(wd) + len(ws))
    return wd * half / wd.sum(), ws * half / ws.sum(), negative


def _check_inputs(x_data: np.ndarray, x_sim: np.ndarray, feature_names: list[str], k_folds: int) -> None:
    """Raise :class:`TrainingError` for inputs of the wrong shape, fewer than 2 folds or too few events per fold."""
    if x_data.ndim != 2 or x_sim.ndim != 2 or not x_data.shape[1] == x_sim.shape[1] == len(feature_names):
        raise TrainingError(
            f"data vs simulation: inputs of shape {x_data.shape} and {x_sim.shape} for {len(feature_names)} features"
        )
    if k_folds < 2:
        raise TrainingError(f"data vs simulation: k_folds must be >= 2, got {k_folds}")
    if min(len(x_data), len(x_sim)) < 2 * k_folds:
        raise TrainingError(
            f"data vs simulation: {len(x_data)} data and {len(x_sim)} simulated events are too few for "
            f"{k_folds} folds (>= {2 * k_folds} of each)"
        )


def classify_data_vs_simulation(
    x_data: np.ndarray,
    w_data: np.ndarray,
    x_sim: np.ndarray,
    w_sim: np.ndarray,
    *,
    feature_names: list[str],
    k_folds: int = 3,
    seed: int,
    params: BDTParams | None = None,
) -> DataSimulationClassifier:
    """k-fold XGBoost classifier of data (class 1) against simulation (class 0).

    Parameters
    ----------
    x_data, x_sim : numpy.ndarray
        Inputs (N, F) of the data and of the simulated events, columns in ``feature_names`` order.
    w_data, w_sim : numpy.ndarray
        Event weights; ``|w|`` is used (a negative generator weight counts as its size), each class
        scaled to the same total weight so that the classifier compares shapes, not normalisations.
    feature_names : list of str
        Names of the F columns.
    k_folds : int
        Folds (a seeded random assignment of every event); fold ``i`` is scored by the model
        trained on the others.
    seed : int
        Seed of the folds and of XGBoost (model ``i``: ``seed + i``).
    params : BDTParams, optional
        Boosting settings (default :class:`BDTParams`: Cerri et al.'s 150 trees of depth 3).

    Returns
    -------
    DataSimulationClassifier
    """
    params = params or BDTParams()
    x_data = np.asarray(x_data, np.float32)
    x_sim = np.asarray(x_sim, np.float32)
    _check_inputs(x_data, x_sim, feature_names, k_folds)
    wd, ws, negative = _class_weights(np.asarray(w_data, np.float64), np.asarray(w_sim, np.float64))
    x = np.concatenate([x_data, x_sim])
    y = np.concatenate([np.ones(len(x_data)), np.zeros(len(x_sim))])
    w = np.concatenate([wd, ws])
    fold = np.random.default_rng(seed).integers(0, k_folds, size=len(x))
    out = np.zeros(len(x), np.float64)
    per_fold = []
    for i in range(k_folds):
        train, test = fold != i, fold == i
        if len(np.unique(y[train])) < 2 or len(np.unique(y[test])) < 2:
            raise TrainingError(f"data vs simulation: fold {i} lacks data or simulated events")
        booster, _ = train_classifier(x[train], y[train], w[train], params=params, seed=seed + i)
        out[test] = predict(booster, x[test])
        t = test & (y == 1), test & (y == 0)
        per_fold.append(auc(out[t[1]], out[t[0]], bkg_weights=w[t[1]], sig_weights=w[t[0]]))
    total = auc(out[y == 0], out[y == 1], bkg_weights=ws, sig_weights=wd)
    feature_auc = {
        name: float(auc(x_sim[:, j], x_data[:, j], bkg_weights=ws, sig_weights=wd))
        for j, name in enumerate(feature_names)
    }
    ranking = sorted(feature_names, key=lambda f: (-abs(feature_auc[f] - 0.5), f))
    result = DataSimulationClassifier(
        auc=float(total),
        auc_folds=tuple(float(a) for a in per_fold),
        auc_spread=float(np.std(per_fold, ddof=1)),
        feature_auc=feature_auc,
        ranking=ranking,
        n_data=len(x_data),
        n_simulation=len(x_sim),
        negative_weights=negative,
        k_folds=k_folds,
    )
    log.info("data vs simulation: AUC %.3f +- %.3f, led by %s", result.auc, result.auc_spread, ", ".join(ranking[:3]))
    return result
