"""The trivial baseline (distance of the standardised inputs from their median): score, fit, export, scorer."""

from __future__ import annotations

from dataclasses import replace

import awkward as ak
import numpy as np
import pytest
import torch
from cms_anomaly.models import registry
from cms_anomaly.models.baseline import build_baseline
from cms_anomaly.models.data import read_samples
from cms_anomaly.models.errors import TrainingError
from cms_anomaly.models.export import eager_scores, load_card
from cms_anomaly.models.feature_sets import HLF24, get_feature_set
from cms_anomaly.models.pipeline import TrainOptions, split_cocktail, train_and_export
from cms_anomaly.models.scorers import load_scorer


def _hand_l1(x_fit: np.ndarray, x: np.ndarray) -> np.ndarray:
    """sum_i |x_i - median_i| / std_i with the median and the (population) std of ``x_fit``; std 0 -> 1."""
    x_fit = np.asarray(x_fit, np.float64)
    med = np.median(x_fit, axis=0)
    std = np.sqrt(np.mean((x_fit - x_fit.mean(axis=0)) ** 2, axis=0))
    std[std == 0] = 1.0
    return np.sum(np.abs(np.asarray(x, np.float64) - med) / std, axis=1)


def test_baseline_score_equals_a_hand_computation():
    # column 0: median 3, std sqrt(10); column 1: median 30, std 10 sqrt(10); column 2 constant: scale 1
    x_fit = np.array([[1, 10, 5], [2, 20, 5], [3, 30, 5], [4, 40, 5], [10, 100, 5]], np.float32)
    model = build_baseline(x_fit)
    x = np.array([[3, 30, 5], [3, 30, 7], [1, 10, 5], [13, 130, 4]], np.float32)
    got = eager_scores(model, x)
    root10 = np.sqrt(10.0)
    by_hand = np.array([0.0, 2.0, 2 / root10 + 20 / (10 * root10), 10 / root10 + 100 / (10 * root10) + 1.0])
    np.testing.assert_allclose(got, by_hand, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got, _hand_l1(x_fit, x), rtol=1e-6, atol=1e-6)
    with pytest.raises(TrainingError, match="no parameters"):
        model.loss(torch.as_tensor(x))
    with pytest.raises(TrainingError, match="non-finite"):
        build_baseline(np.array([[1.0, np.nan]]))


def test_baseline_is_fitted_not_trained_and_its_torchscript_equals_the_eager_scores(model_feature_tables, tmp_path):
    opts = TrainOptions(seed=4, progress=False, threads=1)
    trained = train_and_export(
        "baseline", features_dir=model_feature_tables, out_dir=tmp_path, feature_set="hlf24", options=opts
    )
    assert trained.train_result is None
    assert [p.name for p in trained.paths] == ["baseline_hlf24.pt"]
    assert not list(tmp_path.glob("*.ckpt"))
    card = load_card(trained.paths[0])
    assert (card.model_type, card.output_names, card.score) == ("baseline", ["l1"], "l1")
    assert card.feature_names == list(HLF24)
    assert card.training["fit_only"] is True
    assert card.architecture["parameters"] == 0
    assert set(card.thresholds["l1"]) == {"5.4e-06", "1e-05", "0.001"}

    fs = get_feature_set("hlf24")
    samples = read_samples(model_feature_tables, feature_set=fs)
    train_s, _ = split_cocktail(samples, val_fraction=opts.val_fraction, seed=opts.seed)
    x_all = np.concatenate([s.x for s in samples.values()])
    # fitted on the training half only, scored on every event (signals too)
    by_hand = _hand_l1(train_s.x, x_all)
    eager = eager_scores(trained.model, x_all)
    scripted = torch.jit.load(str(trained.paths[0]))(torch.as_tensor(x_all)).numpy()
    np.testing.assert_allclose(eager, by_hand, rtol=1e-5)
    np.testing.assert_allclose(scripted, eager, rtol=1e-6)
    # the processor's scorer (coffea.ml_tools) on a feature record array gives the same scores
    rec = ak.zip({n: x_all[:, i] for i, n in enumerate(HLF24)})
    np.testing.assert_allclose(load_scorer(trained.paths[0])(rec), eager, rtol=1e-6)


def test_baseline_spec_is_exported_without_an_optimiser():
    spec = registry.get_spec("baseline")
    assert spec.exported
    assert not spec.neural
    assert not spec.trainable
    assert "baseline" in registry.kinds()
    assert "baseline" not in registry.neural_kinds()
    with pytest.raises(ValueError, match="without training"):
        registry.ModelSpec("x", "hlf21", build=spec.build, hyper=lambda: None, trainable=False)  # type: ignore[arg-type,return-value]


def test_the_main_job_says_when_the_detector_does_not_beat_the_baseline():
    from cms_anomaly.analyses.baselines import BASELINE_AUC_MARGIN, baseline_sentence

    assert BASELINE_AUC_MARGIN == 0.02
    assert baseline_sentence(0.806, 0.806).startswith(
        "The detector does not beat the trivial baseline (AUC 0.806 vs 0.806"
    )
    # within the margin: not beaten either
    assert "does not beat" in baseline_sentence(0.82, 0.806)
    assert baseline_sentence(0.85, 0.80) == "The detector beats the trivial baseline by 0.050 in AUC (0.850 vs 0.800)."
    assert "does not beat" in baseline_sentence(0.70, 0.74)
    assert "cannot be compared" in baseline_sentence(float("nan"), 0.7)


def test_the_hunt_trains_calibrated_baseline_folds(model_feature_tables, tmp_path):
    """``hunt --model baseline``: k baselines, each fitted outside its fold and calibrated on its own
    validation events, as the networks are."""
    from cms_anomaly.analyses.hunt import MODELS, HuntConfig, train_folds
    from cms_anomaly.models.scorers import KFoldScorer, calibration_path
    from cms_anomaly.processors.folds import KFold

    assert MODELS["baseline"] == "l1"
    fs = get_feature_set("hlf21")
    wjets = read_samples(model_feature_tables, feature_set=fs, datasets=["wjets"])["wjets"]
    data = replace(wjets, name="data", run=np.ones(len(wjets), np.int64), event=np.arange(len(wjets)))
    paths = train_folds(tmp_path, tmp_path / "models", HuntConfig(model="baseline", k_folds=3), fs, data=data)
    assert [p.name for p in paths] == [f"baseline_fold{i}.pt" for i in range(3)]
    assert all(calibration_path(p).exists() for p in paths)
    kfold = KFoldScorer.load(paths, KFold(3, HuntConfig().seed))
    rec = ak.zip({n: data.x[:, i] for i, n in enumerate(fs.columns)})
    rarity = kfold(rec, folds=kfold.fold_of(data.run, data.event))
    assert np.all(np.isfinite(rarity))
    assert rarity.max() > 1  # the least typical events are rarer than one in ten
