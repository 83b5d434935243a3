"""XGBoost baselines and the CWoLa classifier (issue 4)."""

from __future__ import annotations

import numpy as np
import pytest
from cms_anomaly.models.bdt import (
    BDTParams,
    balance_weights,
    cwola_features,
    cwola_labels,
    predict,
    train_cwola,
    train_signal_bdt,
)
from cms_anomaly.models.errors import TrainingError


def test_balance_weights():
    wb, ws = balance_weights(np.array([1.0, 3.0]), np.array([0.1, 0.1, 0.2]))
    np.testing.assert_allclose(wb, [0.5, 1.5])
    assert ws.sum() == pytest.approx(wb.sum())
    assert ws.sum() == pytest.approx(2.0)
    np.testing.assert_allclose(ws, [0.5, 0.5, 1.0])
    with pytest.raises(TrainingError, match="non-positive"):
        balance_weights(np.zeros(3), np.ones(2))


def test_signal_bdt_separates_shifted_gaussians():
    rng = np.random.default_rng(1)
    bkg = rng.normal(0, 1, (4000, 3)).astype(np.float32)
    sig = rng.normal([1.5, 0, 0], 1, (400, 3)).astype(np.float32)
    booster, hist = train_signal_bdt(
        bkg, np.ones(4000), sig, np.ones(400), seed=1, params=BDTParams(n_estimators=30, n_threads=1)
    )
    assert booster.num_boosted_rounds() == 30
    assert hist["train"]["logloss"][-1] < hist["train"]["logloss"][0]
    from cms_anomaly.stats import auc

    test_b = rng.normal(0, 1, (4000, 3)).astype(np.float32)
    test_s = rng.normal([1.5, 0, 0], 1, (4000, 3)).astype(np.float32)
    # optimal AUC for a 1.5 sigma shift in one variable: Phi(1.5/sqrt 2) = 0.856
    assert auc(predict(booster, test_b), predict(booster, test_s)) == pytest.approx(0.856, abs=0.02)


def test_cwola_features_and_labels():
    x = cwola_features(
        mj1=np.array([100.0, 500.0]),
        mj2=np.array([50.0, 100.0]),
        tau21_j1=np.array([0.3, 0.5]),
        tau21_j2=np.array([0.6, np.nan]),
        tau32_j1=np.array([0.7, 0.8]),
        tau32_j2=np.array([0.9, 0.4]),
        mjj=np.array([1000.0, 3500.0]),
    )
    np.testing.assert_allclose(x[0], [0.1, 0.05, 0.3, 0.6, 0.7, 0.9], rtol=1e-6)
    assert x[1, 3] == 0.0  # NaN tau -> 0
    lab = cwola_labels(
        np.array([2500.0, 3000.0, 3400.0, 4100.0, 5000.0]),
        signal_region=(3000.0, 3800.0),
        sidebands=((2400.0, 3000.0), (3800.0, 4500.0)),
    )
    np.testing.assert_array_equal(lab, [0, 1, 1, 0, -1])


def test_cwola_finds_signal_in_signal_region_out_of_fold():
    rng = np.random.default_rng(7)
    n = 6000
    mjj = rng.uniform(2000, 5000, n)
    x = rng.normal(0, 1, (n, 2)).astype(np.float32)
    sr = (mjj > 3300) & (mjj < 3700)
    inject = sr & (rng.random(n) < 0.3)
    x[inject, 0] += 2.5  # signal: anomalous substructure only inside the signal region
    lab = cwola_labels(mjj, signal_region=(3300, 3700), sidebands=((2800, 3300), (3700, 4200)))
    scores, boosters = train_cwola(x, lab, k_folds=4, seed=3, params=BDTParams(n_estimators=40, n_threads=1))
    assert len(boosters) == 4
    assert scores.shape == (n,)
    # out-of-fold scores: the injected events rank high; outside-window events are scored too
    assert np.median(scores[inject]) > np.quantile(scores[~inject], 0.9)
    assert np.all(np.isfinite(scores[lab == -1]))
    with pytest.raises(TrainingError, match="signal-region and sideband"):
        train_cwola(x, np.zeros(n, np.int8), k_folds=2, seed=1)
