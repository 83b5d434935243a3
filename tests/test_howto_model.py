"""docs/howto/add-a-model.md, followed: a small model registered here goes through train, export and the processor."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cms_anomaly.models import registry
from cms_anomaly.models.base import AnomalyModel, Hyper, seeded_init
from cms_anomaly.models.pipeline import TrainOptions, build_model, preprocessing_summary, train_and_export
from cms_anomaly.models.preprocessing import Standardize, fit_center_scale
from cms_anomaly.models.scorers import load_scorer
from cms_anomaly.processors import runner
from cms_anomaly.processors.processor import AnomalyProcessor
from torch import nn

KIND = "linear-ae"


# --------------------------------------------------------------------------- step 1: the model
class LinearAE(AnomalyModel):
    """Linear autoencoder on standardised inputs, scored by the per-event mean squared error."""

    kind = "linear_ae"
    output_names = ("mse",)

    def __init__(self, center: np.ndarray, scale: np.ndarray, *, latent: int) -> None:
        super().__init__()
        self.standardize = Standardize(center, scale)
        self.encoder = nn.Linear(len(center), latent)
        self.decoder = nn.Linear(latent, len(center))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.standardize(x)
        return torch.mean((self.decoder(self.encoder(h)) - h) ** 2, dim=1)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x).mean()


# --------------------------------------------------------------------------- step 2: the builder
def build_linear_ae(x_train: np.ndarray, *, feature_set, seed: int, lam: float) -> LinearAE:
    center, scale = fit_center_scale(x_train, method="mean_std")
    with seeded_init(seed):
        return LinearAE(center, scale, latent=3)


# --------------------------------------------------------------------------- step 3: the registration
SPEC = registry.ModelSpec(
    KIND,
    "hlf21",
    build=build_linear_ae,
    hyper=lambda: Hyper(batch_size=256, lr=1e-2, patience=5, max_epochs=20),
    preprocessing=lambda model: {"type": "standardise_mean_std", **model.standardize.summary()},
    budget=registry.Budget(epochs=5),
)


@pytest.fixture
def linear_ae():
    registry.register(SPEC)
    yield SPEC
    registry.unregister(KIND)


def test_a_registered_model_is_known_to_every_consumer(linear_ae):
    from cms_anomaly.analyses.evaluate import EvaluateOptions

    from cms_anomaly.cli import build_parser

    assert KIND in registry.kinds()
    assert KIND in registry.neural_kinds()
    assert registry.get_spec("linear_ae") is SPEC  # by the built model's kind too
    assert EvaluateOptions().epochs[KIND] == 5
    # the command line reads the registry when it is built
    args = build_parser().parse_args(["train", KIND, "--features", "f", "--out", "o"])
    assert args.kind == KIND
    with pytest.raises(ValueError, match="already registered"):
        registry.register(SPEC)


def test_an_unknown_or_unregistered_kind_is_one_line(linear_ae):
    x = np.zeros((10, 3), np.float32)
    with pytest.raises(ValueError, match=r"unknown model kind 'nope'; choose from \(.*'linear-ae'"):
        build_model("nope", x, feature_set=None, seed=1)
    with pytest.raises(ValueError, match="unknown model kind 'bdt'"):
        build_model("bdt", x, feature_set=None, seed=1)
    registry.unregister(KIND)
    with pytest.raises(ValueError, match="unknown model kind 'linear-ae'"):
        registry.get_spec(KIND)


def test_a_registered_model_trains_exports_and_fills_the_processor_histograms(
    linear_ae, model_feature_tables, real_nanoaod_files, tmp_path
):
    # step 4: train and export (the registry gives its default inputs, builder and hyper-parameters)
    opts = TrainOptions(epochs=3, seed=2, progress=False, threads=1)
    trained = train_and_export(KIND, features_dir=model_feature_tables, out_dir=tmp_path, options=opts)
    assert [p.name for p in trained.paths] == ["linear_ae_hlf21.pt"]
    card = json.loads((tmp_path / "linear_ae_hlf21.card.json").read_text())
    assert card["model_type"] == "linear_ae"
    assert card["preprocessing"] == preprocessing_summary(trained.model)
    assert card["preprocessing"]["type"] == "standardise_mean_std"
    assert card["training"]["hyper"]["batch_size"] == 256
    assert card["training"]["epochs_run"] == 3
    history = card["training"]["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]  # it learns

    # step 5: score it in the processor, on a real CMS NanoAOD file
    scorer = load_scorer(trained.paths[0])
    fileset = {"dy": {"files": {str(real_nanoaod_files["dy"]): "Events"}, "metadata": {"is_data": True}}}
    proc = AnomalyProcessor(selection="single_lepton", scorers={"linear_ae": scorer})
    with runner.make_executor("iterative") as ex:
        out = runner.run_processor(fileset, proc, executor=ex)["dy"]
    n_selected = out["cutflow"]["events"]["lepton_iso"]
    assert n_selected > 0
    h = out["hists"]["score_linear_ae_mse"][{"dataset": "dy"}]
    assert h.values(flow=True).sum() == n_selected
