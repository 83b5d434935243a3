"""Supervised XGBoost baselines (Cerri sec. 4.2) and the CWoLa-hunting classifier (LHCO sec. 4.1)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cms_anomaly.core.atomic import atomic_output
from cms_anomaly.models.data import training_weights
from cms_anomaly.models.errors import TrainingError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BDTParams:
    """Gradient-boosting settings; defaults as in Cerri et al. (150 trees, depth 3, learning rate 0.1)."""

    n_estimators: int = 150
    max_depth: int = 3
    learning_rate: float = 0.1
    min_child_weight: float = 1e-3
    tree_method: str = "hist"
    early_stopping_rounds: int | None = None
    n_threads: int = 0

    def xgb_params(self, *, seed: int) -> dict:
        """The ``xgboost.train`` parameter dict."""
        return {
            "objective": "binary:logistic",
            "eval_metric": "logloss",
            "max_depth": self.max_depth,
            "eta": self.learning_rate,
            "min_child_weight": self.min_child_weight,
            "tree_method": self.tree_method,
            "seed": seed,
            "nthread": self.n_threads,
        }


def balance_weights(w_background: np.ndarray, w_signal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Background weights normalised to mean 1; signal up-weighted so both classes have equal total weight.

    Parameters
    ----------
    w_background, w_signal : numpy.ndarray
        Raw per-event weights (e.g. cross section x luminosity / sum of weights).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Training weights with ``sum(signal) == sum(background) == len(background)``, from ``|w|``
        (:func:`~cms_anomaly.models.data.training_weights`: negative NLO weights as their absolute value).
    """
    wb = training_weights(w_background)
    ws = training_weights(w_signal)
    if wb.sum() <= 0 or ws.sum() <= 0:
        raise TrainingError(f"BDT: non-positive total weight (background {wb.sum():.3g}, signal {ws.sum():.3g})")
    wb = wb * len(wb) / wb.sum()
    ws = ws * wb.sum() / ws.sum()
    return wb, ws


def train_classifier(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    *,
    params: BDTParams,
    seed: int,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    w_val: np.ndarray | None = None,
    feature_names: list[str] | None = None,
) -> Any:
    """Train a binary XGBoost classifier; returns ``(booster, evals_result)``."""
    import xgboost

    dtrain = xgboost.DMatrix(x, label=y, weight=w, feature_names=feature_names)
    evals = [(dtrain, "train")]
    if x_val is not None:
        evals.append((xgboost.DMatrix(x_val, label=y_val, weight=w_val, feature_names=feature_names), "val"))
    history: dict = {}
    booster = xgboost.train(
        params.xgb_params(seed=seed),
        dtrain,
        num_boost_round=params.n_estimators,
        evals=evals,
        evals_result=history,
        verbose_eval=False,
        early_stopping_rounds=params.early_stopping_rounds if x_val is not None else None,
    )
    return booster, history


def train_signal_bdt(
    x_sm: np.ndarray,
    w_sm: np.ndarray,
    x_sig: np.ndarray,
    w_sig: np.ndarray,
    *,
    seed: int,
    params: BDTParams = BDTParams(),
    feature_names: list[str] | None = None,
) -> Any:
    """One BSM benchmark vs the SM cocktail, signal up-weighted to the SM sum of weights (Cerri sec. 4.2).

    Returns
    -------
    (xgboost.Booster, dict)
        The booster and its training history.
    """
    wb, ws = balance_weights(w_sm, w_sig)
    x = np.concatenate([x_sm, x_sig]).astype(np.float32)
    y = np.concatenate([np.zeros(len(x_sm)), np.ones(len(x_sig))])
    return train_classifier(x, y, np.concatenate([wb, ws]), params=params, seed=seed, feature_names=feature_names)


def predict(booster: Any, x: np.ndarray) -> np.ndarray:
    """Classifier output (probability of the positive class) with ``inplace_predict``."""
    if len(x) == 0:
        return np.zeros(0, np.float32)
    return np.asarray(booster.inplace_predict(np.ascontiguousarray(x, np.float32)), np.float32)


def save_booster(booster: Any, path: str | Path) -> Path:
    """Save as XGBoost JSON, atomically."""
    path = Path(path)
    with atomic_output(path, suffix=".json") as tmp:  # XGBoost picks the format from the extension
        booster.save_model(str(tmp))
    return path


# ----------------------------------------------------------------------------- CWoLa hunting
def cwola_features(
    *,
    mj1: np.ndarray,
    mj2: np.ndarray,
    tau21_j1: np.ndarray,
    tau21_j2: np.ndarray,
    tau32_j1: np.ndarray,
    tau32_j2: np.ndarray,
    mjj: np.ndarray,
) -> np.ndarray:
    """Substructure inputs of the CWoLa classifier: (m_J1/m_JJ, m_J2/m_JJ, tau21 x2, tau32 x2), (N, 6).

    Jet masses are rescaled by m_JJ so the classifier cannot learn m_JJ itself (LHCO sec. 4.1).
    """
    mjj = np.asarray(mjj, np.float64)
    if np.any(mjj <= 0):
        raise ValueError("cwola_features: m_JJ must be positive")
    cols = [np.asarray(mj1) / mjj, np.asarray(mj2) / mjj, tau21_j1, tau21_j2, tau32_j1, tau32_j2]
    return np.stack([np.nan_to_num(np.asarray(c, np.float64), nan=0.0) for c in cols], axis=1).astype(np.float32)


#: the large-R jet columns the CWoLa classifier reads (feature-record and parquet names)
CWOLA_COLUMNS: tuple[str, ...] = ("mJ1", "mJ2", "mJJ", "tau21_j1", "tau32_j1", "tau21_j2", "tau32_j2")


def cwola_inputs(cols: Any) -> np.ndarray:
    """The CWoLa classifier inputs (:func:`cwola_features`) of events given by their
    :data:`CWOLA_COLUMNS` (a mapping or record array): the heavier large-R jet first (the LHCO
    convention), so that the classifier sees the jets in a fixed role."""
    c = {k: np.asarray(cols[k], np.float64) for k in CWOLA_COLUMNS}
    swap = c["mJ2"] > c["mJ1"]

    def ordered(a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
        return np.where(swap, c[b], c[a]), np.where(swap, c[a], c[b])

    mj1, mj2 = ordered("mJ1", "mJ2")
    t21a, t21b = ordered("tau21_j1", "tau21_j2")
    t32a, t32b = ordered("tau32_j1", "tau32_j2")
    return cwola_features(
        mj1=mj1, mj2=mj2, tau21_j1=t21a, tau21_j2=t21b, tau32_j1=t32a, tau32_j2=t32b, mjj=np.maximum(c["mJJ"], 1e-9)
    )


def cwola_labels(
    mjj: np.ndarray, *, signal_region: tuple[float, float], sidebands: tuple[tuple[float, float], tuple[float, float]]
) -> np.ndarray:
    """Label 1 in the signal region, 0 in the sidebands, -1 elsewhere (not used for training)."""
    mjj = np.asarray(mjj)
    lab = np.full(mjj.shape, -1, np.int8)
    for lo, hi in sidebands:
        lab[(mjj >= lo) & (mjj < hi)] = 0
    lo, hi = signal_region
    lab[(mjj >= lo) & (mjj < hi)] = 1
    return lab


def train_cwola(
    x: np.ndarray,
    labels: np.ndarray,
    *,
    k_folds: int = 5,
    seed: int,
    weights: np.ndarray | None = None,
    params: BDTParams = BDTParams(),
    folds: np.ndarray | None = None,
) -> tuple[np.ndarray, list]:
    """k-fold CWoLa classifier: every event is scored by a model that never saw it.

    Parameters
    ----------
    x : numpy.ndarray
        Classifier inputs (N, k), e.g. from :func:`cwola_features`.
    labels : numpy.ndarray
        1 signal region, 0 sideband, -1 outside (scored, never trained on).
    k_folds : int
        Number of folds; fold ``i`` is scored by the model trained on the others.
    seed : int
        Seed of the fold assignment and of XGBoost.
    weights : numpy.ndarray, optional
        Event weights (as ``|w|``, :func:`~cms_anomaly.models.data.training_weights`); the two classes
        are balanced to equal total weight.
    params : BDTParams
        Boosting settings.
    folds : numpy.ndarray, optional
        The fold (0 .. k-1) of every event, e.g. :class:`~cms_anomaly.processors.folds.KFold` by event
        identity, so that a processor can route each event to the model that did not see it; default a
        seeded random assignment.

    Returns
    -------
    (numpy.ndarray, list)
        Out-of-fold scores (N,) and the k boosters (booster ``i`` scores fold ``i``), each with its
        training logloss per round as the JSON attribute ``evals_result``.
    """
    labels = np.asarray(labels)
    n = len(labels)
    w = np.ones(n) if weights is None else training_weights(weights)
    fold = np.random.default_rng(seed).integers(0, k_folds, size=n) if folds is None else np.asarray(folds)
    scores = np.zeros(n, np.float32)
    boosters = []
    for k in range(k_folds):
        train = (fold != k) & (labels >= 0)
        y = labels[train].astype(np.float64)
        if y.sum() == 0 or y.sum() == len(y):
            raise TrainingError(
                f"CWoLa fold {k}: need both signal-region and sideband events, got {int(y.sum())} / {len(y)}"
            )
        wt = w[train].copy()
        wt[y == 1] *= wt[y == 0].sum() / wt[y == 1].sum()
        booster, history = train_classifier(x[train], y, wt, params=params, seed=seed + k)
        booster.set_attr(evals_result=json.dumps(history))  # the logloss per round, saved with the model
        scores[fold == k] = predict(booster, x[fold == k])
        boosters.append(booster)
    return scores, boosters
