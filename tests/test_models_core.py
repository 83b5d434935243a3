"""Models (issue 4): losses go down, TorchScript round trip, DisCo hand values, thresholds, preprocessing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from cms_anomaly.models.data import read_samples
from cms_anomaly.models.double_ae import distance_correlation_squared
from cms_anomaly.models.errors import TrainingError
from cms_anomaly.models.export import ModelCard, export_torchscript, load_card
from cms_anomaly.models.feature_sets import HLF21, get_feature_set
from cms_anomaly.models.pipeline import build_model, split_cocktail
from cms_anomaly.models.training import TrainConfig, train
from cms_anomaly.models.vae import VAE, clipped_tanh, p_isrlu
from cms_anomaly.processors.feature_io import write_table_manifest
from cms_anomaly.stats import threshold_at_fpr


@pytest.fixture(scope="module")
def hlf21_samples(model_feature_tables):
    return read_samples(model_feature_tables, feature_set=get_feature_set("hlf21"))


# ----------------------------------------------------------------------------- DisCo
def test_distance_correlation_hand_values():
    # y = |x| on x = (-1, 0, 1): Pearson correlation 0, but dependent. By hand (double-centred
    # distance matrices): dCov^2 = 8/81, dVar^2(x) = 40/81, dVar^2(y) = 16/81 -> dCor^2 = 1/sqrt(10).
    x = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
    assert float(distance_correlation_squared(x, x.abs())) == pytest.approx(1 / math.sqrt(10), rel=1e-12)
    # any linear relation: exactly 1
    assert float(distance_correlation_squared(x, 3 * x - 2)) == pytest.approx(1.0, rel=1e-12)
    # constant weights change nothing
    w = torch.full((3,), 7.0, dtype=torch.float64)
    assert float(distance_correlation_squared(x, x.abs(), w)) == pytest.approx(1 / math.sqrt(10), rel=1e-12)


def test_distance_correlation_independent_vs_dependent():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2000, generator=g, dtype=torch.float64)
    y_ind = torch.randn(2000, generator=g, dtype=torch.float64)
    y_dep = x**2 + 0.1 * torch.randn(2000, generator=g, dtype=torch.float64)
    d_ind = float(distance_correlation_squared(x, y_ind))
    d_dep = float(distance_correlation_squared(x, y_dep))
    assert d_ind < 0.01  # V-statistic bias ~ 1/n
    assert d_dep > 0.2
    assert abs(float(np.corrcoef(x.numpy(), y_dep.numpy())[0, 1])) < 0.1  # Pearson is blind to it


def test_distance_correlation_is_differentiable():
    x = torch.linspace(-1, 1, 50, dtype=torch.float64, requires_grad=True)
    y = (x**2).detach()
    d = distance_correlation_squared(x, y)
    d.backward()
    assert torch.all(torch.isfinite(x.grad))
    assert float(x.grad.abs().sum()) > 0


# ----------------------------------------------------------------------------- VAE pieces
def test_vae_activations():
    x = torch.tensor([-1e6, -1.0, 0.0, 2.0])
    assert torch.all(p_isrlu(x) > 0)
    assert float(p_isrlu(torch.tensor(2.0))) == pytest.approx(3.005)
    assert float(p_isrlu(torch.tensor(-1.0))) == pytest.approx(1.005 - 1 / math.sqrt(2))
    assert float(clipped_tanh(torch.tensor(0.0))) == pytest.approx(0.5)
    assert float(clipped_tanh(torch.tensor(1e6))) == pytest.approx(0.9995)


def test_vae_likelihoods_hand_values():
    pdfs = ["lognormal", "gaussian", "truncated_gaussian", "discrete_truncated_gaussian", "binomial", "poisson"]
    d = len(pdfs)
    vae = VAE(pdfs=pdfs, center=np.zeros(d), scale=np.ones(d), like_scale=np.ones(d))
    a1 = torch.tensor([[0.0, 1.0, 0.0, 2.0, 0.0, 0.0]])
    a2 = torch.tensor([[1.0, 2.0, 1.0, 1.0]])  # lognormal, gaussian, trunc. gaussian, discrete trunc. gaussian
    a3 = torch.tensor([[0.25]])
    mu_poisson = float(p_isrlu(torch.tensor(0.0)))
    x = torch.tensor([[1.0, 1.0, 0.5, 2.0, 1.0, 3.0]])
    nll = float(vae.nll(x, a1, a2, a3)[0])
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    phi = lambda t: 0.5 * (1 + math.erf(t / math.sqrt(2)))
    expected = (
        -math.log(0.75)
        + 0.0
        + half_log_2pi  # log-normal at x=1 (ln x = 0 = mu)
        + math.log(2.0)
        + half_log_2pi  # Gaussian at its mean, sigma 2
        + half_log_2pi
        + 0.5 * 0.25
        + math.log(phi(0.0))  # truncated at mu=0: norm 1/Phi(0)
        - math.log(phi(0.5) - phi(-0.5))
        + math.log(phi(2.5))  # discrete n=2, mu=2
        - math.log(0.5)  # binomial, p = Ctanh(0)
        + mu_poisson
        - 3 * math.log(mu_poisson)
        + math.log(6.0)  # Poisson n = 3
    )
    assert nll == pytest.approx(expected, rel=1e-5)
    # the delta at zero of the log-normal
    x0 = x.clone()
    x0[0, 0] = 0.0
    delta = -math.log(0.25) - (-math.log(0.75) + half_log_2pi)
    assert float(vae.nll(x0, a1, a2, a3)[0]) - nll == pytest.approx(delta, rel=1e-5)


def test_alad_encoding_is_39_dims_for_hlf21(hlf21_samples):
    train_s, _ = split_cocktail(hlf21_samples, val_fraction=0.5, seed=1)
    model, hyper = build_model("alad", train_s.x, feature_set=get_feature_set("hlf21"), seed=1)
    # the default: ALAD + ALICE's cycle loss, 4-dim latent, lr 1e-4 over 5,000 steps (benchmarks/alad_learning.py)
    assert (model.cycle, model.latent, model.architecture()["cycle"]) == (1.0, 4, 1.0)
    assert model.architecture()["objective"].startswith("ALAD + explicit cycle loss 1 ")  # the card says so
    assert (hyper.lr, hyper.max_steps, hyper.ema_decay) == (1e-4, 5000, 0.999)
    enc = model.encoding
    n_cat = {int(o.column): int(o.categories.shape[0]) for o in enc.onehots}
    assert set(n_cat) == {HLF21.index(n) for n in ("charge_lep", "is_ele", "n_mu", "n_ele")}
    assert enc.continuous.numel() == 17
    assert enc.out_dim == 17 + sum(n_cat.values())
    out = enc(torch.as_tensor(train_s.x[:5]))
    assert out.shape == (5, enc.out_dim)
    # each one-hot block sums to one
    blocks = out[:, 17:]
    assert torch.allclose(blocks.sum(1), torch.full((5,), 4.0))


# ----------------------------------------------------------------------------- training
@pytest.mark.parametrize(
    ("kind", "fs", "batch", "lr", "steps", "epochs"),
    [
        ("ae", "rmm", 100, 1e-3, 40, 3),
        ("vae", "hlf21", 200, 1e-3, 40, 3),
        ("double-ae", "objects", 500, 1e-3, 8, 3),
        # adversarial training: the L1 score first fluctuates, a few hundred steps bring it down
        ("alad", "hlf21", 50, 1e-3, 100, 12),
    ],
)
def test_model_trains_and_exports(kind, fs, batch, lr, steps, epochs, model_feature_tables, tmp_path):
    from dataclasses import replace

    fset = get_feature_set(fs)
    samples = read_samples(model_feature_tables, feature_set=fset)
    train_s, val_s = split_cocktail(samples, val_fraction=0.3, seed=2)
    model, hyper = build_model(kind, train_s.x, feature_set=fset, seed=2, lam=10.0)
    model.eval()
    with torch.no_grad():  # the selection criterion (ALAD's mean L1 score), else the validation loss
        crit = model.selection_criterion(torch.as_tensor(val_s.x))
        before = float(crit if crit is not None else model.validation_loss(torch.as_tensor(val_s.x)))
    cfg = TrainConfig(
        hyper=replace(hyper, batch_size=batch, lr=lr, patience=100),
        epochs=epochs,
        seed=2,
        progress=False,
        max_steps_per_epoch=steps,
        threads=1,
    )
    result = train(model, train_s.x, val_s.x, config=cfg)
    assert result.epochs_run == epochs
    assert result.best_val_loss < before, (
        f"{kind}: validation loss did not go down ({before} -> {result.best_val_loss})"
    )
    for suffix, module in model.export_modules().items():
        path = tmp_path / f"{kind}{suffix}.pt"
        card = ModelCard(
            model_type=model.kind,
            feature_set=fs,
            feature_names=list(fset.columns),
            n_inputs=fset.width,
            output_names=list(getattr(module, "output_names", model.output_names)),
            score=suffix or "score",
        )
        export_torchscript(module, path, card=card)
        loaded = torch.jit.load(str(path))
        x = torch.as_tensor(val_s.x)
        with torch.no_grad():
            eager = module(x).numpy()
            scripted = loaded(x).numpy()
        assert np.all(np.isfinite(scripted))
        np.testing.assert_allclose(scripted, eager, rtol=1e-5, atol=1e-6)
        expected_shape = (len(x), 2) if kind == "double-ae" else (len(x),)
        assert scripted.shape == expected_shape
        assert load_card(path).feature_names == list(fset.columns)


def test_training_resumes_from_checkpoint(hlf21_samples, tmp_path):
    from dataclasses import replace

    fset = get_feature_set("hlf21")
    train_s, val_s = split_cocktail(hlf21_samples, val_fraction=0.3, seed=4)

    def run(epochs: int, resume: bool, ckpt):
        model, hyper = build_model("vae", train_s.x, feature_set=fset, seed=4)
        cfg = TrainConfig(hyper=replace(hyper, batch_size=500), epochs=epochs, seed=4, progress=False, threads=1)
        return model, train(model, train_s.x, val_s.x, config=cfg, checkpoint=ckpt, resume=resume)

    ref_model, ref = run(3, False, tmp_path / "a.ckpt")
    run(2, False, tmp_path / "b.ckpt")
    model, res = run(3, True, tmp_path / "b.ckpt")  # continues at epoch 3
    assert res.epochs_run == 3
    assert len(res.history) == 3
    assert [h["val_loss"] for h in res.history] == pytest.approx([h["val_loss"] for h in ref.history], rel=1e-5)
    x = torch.as_tensor(val_s.x)
    with torch.no_grad():
        np.testing.assert_allclose(model(x).numpy(), ref_model(x).numpy(), rtol=1e-5)


class _Payload:
    """A pickle that would create a file when unpickled (a stand-in for arbitrary code)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (type(self.marker).touch, (self.marker,))


def test_resume_refuses_a_checkpoint_that_would_run_code(hlf21_samples, tmp_path):
    from cms_anomaly.models.errors import TrainingError

    fset = get_feature_set("hlf21")
    train_s, val_s = split_cocktail(hlf21_samples, val_fraction=0.3, seed=4)
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "evil.ckpt"
    torch.save({"model": _Payload(marker)}, ckpt)
    model, hyper = build_model("vae", train_s.x, feature_set=fset, seed=4)
    cfg = TrainConfig(hyper=hyper, epochs=1, seed=4, progress=False, threads=1)
    with pytest.raises(TrainingError, match=r"evil\.ckpt: cannot resume"):
        train(model, train_s.x, val_s.x, config=cfg, checkpoint=ckpt, resume=True)
    assert not marker.exists()


# ----------------------------------------------------------------------------- thresholds
def test_threshold_empirical_and_extrapolated():
    rng = np.random.default_rng(5)
    s = rng.exponential(1.0, 200_000)
    # empirical: survival of Exp(1) at t is exp(-t)
    th = threshold_at_fpr(s, fpr=1e-3)
    assert th["method"] == "empirical"
    assert th["threshold"] == pytest.approx(-math.log(1e-3), rel=0.05)
    # too few events for 5.4e-6 -> exponential tail fit, which for Exp(1) is exact in expectation
    th = threshold_at_fpr(s[:20_000], fpr=5.4e-6)
    assert th["method"] == "exponential_tail_fit"
    assert th["threshold"] == pytest.approx(-math.log(5.4e-6), rel=0.1)
    # weights: doubling the weight of the top half moves the median
    w = np.where(s > np.median(s), 2.0, 1.0)
    assert threshold_at_fpr(s, w, fpr=0.5)["threshold"] > np.median(s)


# ----------------------------------------------------------------------------- what the losses do
def test_disco_lambda_decorrelates_the_two_losses(model_feature_tables):
    """Mikuni et al.: the DisCo term makes R1 and R2 independent. Trained alike, lambda = 100 gives a
    much smaller distance correlation of the two losses on validation events than lambda = 0
    (measured: 0.05 vs 0.98 on these synthetic tables)."""
    from dataclasses import replace

    from cms_anomaly.stats import distance_correlation

    fset = get_feature_set("objects")
    samples = {k: v for k, v in read_samples(model_feature_tables, feature_set=fset).items() if not v.is_signal}
    train_s, val_s = split_cocktail(samples, val_fraction=0.3, seed=2)
    dcor = {}
    for lam in (0.0, 100.0):
        model, hyper = build_model("double-ae", train_s.x, feature_set=fset, seed=2, lam=lam)
        cfg = TrainConfig(
            hyper=replace(hyper, batch_size=500, patience=100), epochs=6, seed=2, progress=False, threads=1
        )
        train(model, train_s.x, val_s.x, config=cfg)
        with torch.no_grad():
            r = model(torch.as_tensor(val_s.x)).numpy()
        dcor[lam] = distance_correlation(r[:, 0], r[:, 1])
    assert dcor[0.0] > 0.9
    assert dcor[100.0] < 0.3


def test_vae_kl_to_the_learnable_prior():
    """Cerri et al.: KL(q(z|x) || N(mu_P, sigma_P)) with a trainable prior. By hand for one latent
    dimension (sigma_P = 2, sigma_z = 1, mu_z - mu_P = 1): ln 2 + (1 + 1) / 8 - 1/2; against
    torch.distributions for random values; and the prior's parameters receive gradients."""
    from cms_anomaly.models.vae import build_vae

    rng = np.random.default_rng(3)
    x = rng.lognormal(3.0, 0.7, (400, len(HLF21))).astype(np.float32)
    for name in ("charge_lep",):
        x[:, HLF21.index(name)] = rng.choice([-1.0, 1.0], 400)
    for name in ("is_ele",):
        x[:, HLF21.index(name)] = rng.integers(0, 2, 400)
    for name in ("n_mu", "n_ele", "n_jets", "n_bjets", "n_ch_had", "n_neu_had"):
        x[:, HLF21.index(name)] = rng.poisson(2.0, 400)
    vae = build_vae(x, feature_names=list(HLF21), seed=1)
    latent = vae.prior_mu.numel()
    with torch.no_grad():
        vae.prior_mu.zero_()
        vae.prior_log_sigma.fill_(float(np.log(2.0)))
    kl = vae.kl(torch.ones(1, latent), torch.ones(1, latent))
    assert float(kl) == pytest.approx(latent * (np.log(2.0) + 2.0 / 8.0 - 0.5), rel=1e-6)
    with torch.no_grad():
        vae.prior_mu.copy_(torch.as_tensor(rng.normal(0, 1, latent), dtype=torch.float32))
        vae.prior_log_sigma.copy_(torch.as_tensor(rng.normal(0, 0.3, latent), dtype=torch.float32))
    mu_z = torch.as_tensor(rng.normal(0, 1, (5, latent)), dtype=torch.float32)
    sigma_z = torch.as_tensor(rng.uniform(0.2, 2.0, (5, latent)), dtype=torch.float32)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu_z, sigma_z), torch.distributions.Normal(vae.prior_mu, vae.prior_log_sigma.exp())
    ).sum(1)
    torch.testing.assert_close(vae.kl(mu_z, sigma_z), ref, rtol=1e-5, atol=1e-6)
    vae.zero_grad()
    vae.loss(torch.as_tensor(x[:64])).backward()
    assert float(vae.prior_mu.grad.abs().sum()) > 0
    assert float(vae.prior_log_sigma.grad.abs().sum()) > 0


def test_double_ae_preprocessing_survives_a_rare_object():
    """A column nearly always zero in training (a second muon) must not blow up an event that has the
    object: log(1 + pT) and the standard deviation floored at 1 keep its standardised inputs O(10),
    where a plain mean/std standardisation gives O(1e3) (and a reconstruction error 1e5 x the median)."""
    from cms_anomaly.models.double_ae import build_double_ae

    rng = np.random.default_rng(1)
    x = np.zeros((2000, 57), np.float32)
    x[:, 0::3] = rng.lognormal(3.5, 0.8, (2000, 19))  # pT
    x[:, 1::3] = rng.normal(0, 1.2, (2000, 19))  # eta
    x[:, 2::3] = rng.uniform(-np.pi, np.pi, (2000, 19))  # phi
    x[:, 18:21] = 0.0
    x[0, 18:21] = (40.0, 0.4, 2.6)  # one training event has the rare object
    model = build_double_ae(x, seed=1)
    probe = x[1:2].copy()
    probe[0, 18:21] = (3000.0, 2.0, -3.0)  # a validation event with a multi-TeV rare object
    h = model.preprocess(torch.as_tensor(probe)).detach().numpy()
    assert np.abs(h).max() < 15
    std = x[:, 18:21].std(axis=0)
    assert np.abs((probe[0, 18:21] - x[:, 18:21].mean(axis=0)) / std).max() > 1000  # what it replaces


def test_weighted_training_learns_the_weighted_distribution(hlf21_samples):
    """Weight-aware sampling: training events drawn in proportion to their weights. With the events of
    high S_T (the upper half) at weight 1e-6, an AE trained weighted has not seen them, and reconstructs
    them worse, relative to the low-S_T half, than the same AE trained unweighted (ratio of the two
    halves' mean losses measured 1.32 against 1.10). Events of weight 0 are never drawn: made NaN, they
    break unweighted training and leave weighted training untouched."""
    from dataclasses import replace

    fset = get_feature_set("hlf21")
    train_s, val_s = split_cocktail(hlf21_samples, val_fraction=0.3, seed=5)
    st = list(fset.columns).index("st")
    high_t = train_s.x[:, st] > np.median(train_s.x[:, st])
    high_v = val_s.x[:, st] > np.median(train_s.x[:, st])
    w_t, w_v = np.where(high_t, 1e-6, 1.0), np.where(high_v, 1e-6, 1.0)

    def ratio(weighted: bool) -> float:
        model, hyper = build_model("ae", train_s.x, feature_set=fset, seed=5)
        cfg = TrainConfig(hyper=replace(hyper, batch_size=100), epochs=20, seed=5, progress=False, threads=1)
        train(model, train_s.x, val_s.x, config=cfg, **({"w_train": w_t, "w_val": w_v} if weighted else {}))
        with torch.no_grad():
            loss = model(torch.as_tensor(val_s.x)).numpy()
        return float(loss[high_v].mean() / loss[~high_v].mean())

    unweighted, weighted = ratio(False), ratio(True)
    assert weighted > 1.1 * unweighted

    x_bad = train_s.x.copy()
    x_bad[high_t] = np.nan
    model, hyper = build_model("ae", train_s.x[~high_t], feature_set=fset, seed=5)
    cfg = TrainConfig(hyper=replace(hyper, batch_size=100), epochs=2, seed=5, progress=False, threads=1)
    train(model, x_bad, val_s.x, config=cfg, w_train=np.where(high_t, 0.0, 1.0))
    with pytest.raises(TrainingError, match="non-finite"):
        train(model, x_bad, val_s.x, config=cfg)


def test_cocktail_draw_weights_undo_generator_weights_only():
    """Cross-section weights differ between datasets and are constant within one: no draw weights (the
    unweighted training, unchanged). A tail-weighted dataset gets its weights over their mean (1, 3 -> 0.5,
    1.5); the other datasets 1."""
    from cms_anomaly.models.data import Sample, sm_cocktail

    x = np.zeros((2, 1), np.float32)
    flat = {"a": Sample("a", x, np.array([2.0, 2.0]), False), "b": Sample("b", x, np.array([7.0, 7.0]), False)}
    assert sm_cocktail(flat).draw_weight is None
    tail = {**flat, "c": Sample("c", x, np.array([1.0, 3.0]), False), "s": Sample("s", x, np.array([1.0, 9.0]), True)}
    np.testing.assert_allclose(sm_cocktail(tail).draw_weight, [1, 1, 1, 1, 0.5, 1.5])


def test_non_finite_features_are_refused_by_file_and_column_name(model_feature_tables, tmp_path):
    """NaN / inf in the model inputs: one line naming the table and the columns, not their indices."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from cms_anomaly.models.data import read_dataset
    from cms_anomaly.models.errors import FeatureTableError

    table = pq.read_table(model_feature_tables / "wjets" / "wjets_0.parquet")
    st = table.column("st").to_numpy().copy()
    st[3] = np.inf
    rmm = table.column("rmm").to_pylist()
    rmm[5][52] = float("nan")
    table = table.set_column(table.schema.get_field_index("st"), "st", pa.array(st))
    table = table.set_column(
        table.schema.get_field_index("rmm"), "rmm", pa.array(rmm, type=table.schema.field("rmm").type)
    )
    (tmp_path / "wjets").mkdir()
    pq.write_table(table, tmp_path / "wjets" / "wjets_0.parquet")
    path = tmp_path / "wjets" / "wjets_0.parquet"
    write_table_manifest(tmp_path, [path])
    with pytest.raises(FeatureTableError) as err:
        read_dataset(tmp_path, "wjets", feature_set=get_feature_set("hlf21"))
    assert str(err.value) == f"{path}: 1 event(s) with non-finite values in column(s) st: refusing to use them"
    with pytest.raises(FeatureTableError, match=r"wjets_0.parquet: 1 event\(s\) .* column\(s\) rmm\[52\]: refusing"):
        read_dataset(tmp_path, "wjets", feature_set=get_feature_set("rmm"))


def test_resume_with_another_models_checkpoint_is_one_line(hlf21_samples, tmp_path):
    """A VAE checkpoint resumed by an AE: one line naming the checkpoint and what does not match."""
    from dataclasses import replace

    from cms_anomaly.models.errors import TrainingError

    fset = get_feature_set("hlf21")
    train_s, val_s = split_cocktail(hlf21_samples, val_fraction=0.3, seed=4)
    ckpt = tmp_path / "m.ckpt"

    def run(kind: str, resume: bool):
        model, hyper = build_model(kind, train_s.x, feature_set=fset, seed=4)
        cfg = TrainConfig(hyper=replace(hyper, batch_size=500), epochs=1, seed=4, progress=False, threads=1)
        return train(model, train_s.x[:1000], val_s.x[:500], config=cfg, checkpoint=ckpt, resume=resume)

    run("vae", False)
    with pytest.raises(TrainingError) as err:
        run("ae", True)
    assert str(err.value) == (
        f"{ckpt}: cannot resume: it is a checkpoint of a 'vae' model, this is a 'ae' model; "
        "delete it or train without --resume"
    )
    state = torch.load(ckpt, weights_only=True)  # a checkpoint written before the kind was recorded
    del state["kind"]
    torch.save(state, ckpt)
    with pytest.raises(
        TrainingError, match=r"m\.ckpt: cannot resume: its weights do not fit this 'ae' model \("
    ) as err:
        run("ae", True)
    assert "\n" not in str(err.value)
