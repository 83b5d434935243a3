"""Training by a budget of optimiser steps, weight averaging, the history per evaluation, and a detector
that learns (issue 31)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from cms_anomaly.models.alad import ALAD, ALAD_HYPER
from cms_anomaly.models.base import seeded_init
from cms_anomaly.models.data import read_samples
from cms_anomaly.models.feature_sets import get_feature_set
from cms_anomaly.models.pipeline import TrainOptions, build_model, split_cocktail, train_and_export
from cms_anomaly.models.preprocessing import fit_mixed_encoding
from cms_anomaly.models.training import TrainConfig, train
from cms_anomaly.stats import roc_from_labels

HISTORY_KEYS = {"step", "epoch", "train_loss", "val_loss", "criterion", "lr"}


@pytest.fixture(scope="module")
def hlf21_split(model_feature_tables):
    fset = get_feature_set("hlf21")
    samples = read_samples(model_feature_tables, feature_set=fset)
    return fset, split_cocktail(samples, val_fraction=0.5, seed=6)


def test_the_step_budget_is_the_number_of_optimiser_steps(hlf21_split):
    """37 steps of batch 500 over some 2,200 events (5 steps an epoch): 37 optimiser steps made over
    8 epochs, evaluated every 10 steps and at the last one."""
    fset, (train_s, val_s) = hlf21_split
    model, hyper = build_model("ae", train_s.x, feature_set=fset, seed=6)
    made = []
    step = model.train_step
    model.train_step = lambda x, opts: (made.append(len(x)), step(x, opts))[1]  # type: ignore[method-assign]
    cfg = TrainConfig(hyper=replace(hyper, batch_size=500), max_steps=37, eval_every=10, seed=6, progress=False)
    result = train(model, train_s.x, val_s.x, config=cfg)
    assert len(made) == result.steps_run == 37
    assert 2000 < len(train_s) < 2500
    assert result.steps_per_epoch == 5
    assert made.count(len(train_s) - 2000) == 7  # the last batch of each of the 7 whole epochs
    assert [h["step"] for h in result.history] == [10, 20, 30, 37]
    assert [h["epoch"] for h in result.history] == [2.0, 4.0, 6.0, 7.4]
    assert all(set(h) == HISTORY_KEYS for h in result.history)
    assert result.history[-1]["criterion"] is None  # the AE selects on its validation loss


def test_an_epoch_budget_evaluates_once_an_epoch(hlf21_split):
    fset, (train_s, val_s) = hlf21_split
    model, hyper = build_model("ae", train_s.x, feature_set=fset, seed=6)
    cfg = TrainConfig(hyper=replace(hyper, batch_size=1000), epochs=3, seed=6, progress=False)
    result = train(model, train_s.x, val_s.x, config=cfg)
    assert result.steps_run == 9
    assert result.epochs_run == 3
    assert [(h["step"], h["epoch"]) for h in result.history] == [(3, 1.0), (6, 2.0), (9, 3.0)]


def test_alad_exports_its_averaged_weights_and_the_card_keeps_every_evaluation(model_feature_tables, tmp_path):
    """ALAD's weights are averaged (decay 0.999): the exported TorchScript scores are those of the
    averaged weights, which differ from the last trained ones; the card holds the whole history."""
    opts = TrainOptions(max_steps=120, eval_every=2, lr=1e-3, patience=1000, seed=2, threads=1, progress=False)
    trained = train_and_export("alad", features_dir=model_feature_tables, out_dir=tmp_path, options=opts)
    ckpt = torch.load(tmp_path / "alad_hlf21.ckpt", weights_only=True)
    raw, averaged = ckpt["model"], ckpt["average"]
    assert ckpt["average_updates"] == 120
    best = trained.train_result.best_step
    history = json.loads((tmp_path / "alad_hlf21_l1.card.json").read_text())["training"]["history"]
    assert [h["step"] for h in history] == list(range(2, 121, 2))  # 60 points, every one
    assert all(set(h) == HISTORY_KEYS and h["criterion"] is not None for h in history)
    assert min(history, key=lambda h: h["criterion"])["step"] == best

    key = "encoder.0.weight"
    assert not torch.allclose(raw[key], averaged[key], atol=1e-4)
    samples = read_samples(model_feature_tables, feature_set=get_feature_set("hlf21"))
    x = torch.as_tensor(split_cocktail(samples, val_fraction=0.5, seed=2)[1].x[:300])
    exported = torch.jit.load(str(tmp_path / "alad_hlf21_l1.pt"))
    with torch.no_grad():
        scores = exported(x)
        assert torch.allclose(scores, trained.model(x)[:, 0], rtol=1e-5, atol=1e-5)
        assert torch.allclose(scores, _alad_with(trained.model, ckpt["best_state"])(x)[:, 0], rtol=1e-5, atol=1e-5)
        assert not torch.allclose(scores, _alad_with(trained.model, raw)(x)[:, 0], rtol=1e-3)
    if best == 120:  # the selected weights are the last average
        assert all(torch.equal(ckpt["best_state"][k], v) for k, v in averaged.items())


def _alad_with(model: ALAD, state: dict) -> ALAD:
    import copy

    other = copy.deepcopy(model)
    other.load_state_dict(state)
    return other.eval()


def test_alad_resumes_its_average_and_batch_order(hlf21_split, tmp_path):
    """Stopped after 30 of 50 steps (mid-epoch) and resumed: the same history and scores as one run."""
    fset, (train_s, val_s) = hlf21_split

    def run(steps: int, ckpt, resume: bool):
        model, hyper = build_model("alad", train_s.x, feature_set=fset, seed=3)
        cfg = TrainConfig(
            hyper=replace(hyper, lr=1e-3, patience=1000), max_steps=steps, eval_every=10, seed=3, progress=False
        )
        return model, train(model, train_s.x, val_s.x, config=cfg, checkpoint=ckpt, resume=resume)

    ref_model, ref = run(50, tmp_path / "a.ckpt", False)
    run(30, tmp_path / "b.ckpt", False)
    model, res = run(50, tmp_path / "b.ckpt", True)
    assert res.steps_run == 50
    assert [h["step"] for h in res.history] == [10, 20, 30, 40, 50]
    assert [h["criterion"] for h in res.history] == pytest.approx([h["criterion"] for h in ref.history], rel=1e-5)
    x = torch.as_tensor(val_s.x[:200])
    with torch.no_grad():
        np.testing.assert_allclose(model(x).numpy(), ref_model(x).numpy(), rtol=1e-4, atol=1e-5)


def test_trained_alad_finds_what_the_untrained_network_does_not():
    """A Gaussian core on a 2-dimensional plane of 10 dimensions, and outliers with the same marginal
    distributions off that plane (each column permuted on its own): a distance from one point, which is
    what the untrained network's L1 score is, hardly separates them; 300 steps of training do."""
    rng = np.random.default_rng(7)
    plane = rng.normal(size=(2, 10))

    def core(n: int) -> np.ndarray:
        return (rng.normal(size=(n, 2)) @ plane + 0.1 * rng.normal(size=(n, 10))).astype(np.float32)

    x_train, x_val, x_test, outliers = core(1000), core(500), core(500), core(500)
    for j in range(10):
        outliers[:, j] = rng.permutation(outliers[:, j])
    enc = fit_mixed_encoding(x_train, feature_names=[f"x{i}" for i in range(10)], one_hot=(), method="median_std")
    with seeded_init(1):
        model = ALAD(enc)
    labels = np.r_[np.zeros(len(x_test)), np.ones(len(outliers))]
    x = torch.as_tensor(np.concatenate([x_test, outliers]))

    def l1_auc() -> float:
        model.eval()
        with torch.no_grad():
            return roc_from_labels(model(x)[:, 0].numpy(), labels).auc()

    untrained = l1_auc()
    cfg = TrainConfig(hyper=replace(ALAD_HYPER, lr=1e-3), max_steps=300, seed=1, progress=False, threads=1)
    train(model, x_train, x_val, config=cfg)
    trained = l1_auc()
    assert untrained < 0.7
    assert trained > 0.9, (untrained, trained)


def test_alad_cycle_term_moves_encoder_and_generator_only_and_brings_the_l1_score_down():
    """ALICE's cycle term (``cycle`` > 0) enters the encoder/generator loss only: one step from the same
    weights and random draws leaves the discriminators as without it and moves E and G otherwise; over
    200 steps it brings the mean L1 distance of validation events from their reconstruction down."""
    rng = np.random.default_rng(3)
    x_train, x_val = (rng.normal(size=(n, 6)).astype(np.float32) for n in (500, 200))
    enc = fit_mixed_encoding(x_train, feature_names=[f"x{i}" for i in range(6)], one_hot=(), method="median_std")

    def stepped(cycle: float, steps: int) -> ALAD:
        with seeded_init(2):
            model = ALAD(enc, latent=4, cycle=cycle)
        cfg = TrainConfig(hyper=replace(ALAD_HYPER, lr=1e-3), max_steps=steps, seed=2, progress=False, threads=1)
        train(model, x_train, x_val, config=replace(cfg, hyper=replace(cfg.hyper, ema_decay=None)))
        return model

    plain, cyc = stepped(0.0, 1), stepped(1.0, 1)
    networks = {n: p for n, p in plain.state_dict().items() if n.startswith(("encoder.", "generator.", "d_"))}
    assert len(networks) > 20
    for name, p in networks.items():
        assert torch.equal(p, cyc.state_dict()[name]) == name.startswith("d_"), name
    trained = {c: stepped(c, 200).eval() for c in (0.0, 1.0)}
    with torch.no_grad():
        l1 = {c: float(m.all_scores(torch.as_tensor(x_val))[:, 0].mean()) for c, m in trained.items()}
    assert l1[1.0] < 0.7 * l1[0.0], l1
