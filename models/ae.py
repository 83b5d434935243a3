"""Plain autoencoder (Chekanov et al. sec. 3.2): inputs -> 20 -> 10 -> 5 -> 10 -> 20 -> inputs."""

from __future__ import annotations

import numpy as np
import torch
from cms_anomaly.models.base import AnomalyModel, Hyper, mlp, seeded_init
from cms_anomaly.models.preprocessing import SelectColumns, Standardize, fit_center_scale, fit_nonzero_mask
from torch import nn

#: Chekanov: Adam, MSE, batch 100, stop after 30 epochs without improvement
AE_HYPER = Hyper(batch_size=100, lr=1e-3, patience=30, max_epochs=300)


class Autoencoder(AnomalyModel):
    """Dense autoencoder scored by the per-event mean squared reconstruction error.

    Parameters
    ----------
    preprocess : nn.Module
        Fitted raw -> network-input transform (RMM cell mask, or standardisation).
    n_inputs : int
        Width after ``preprocess``.
    hidden : tuple of int
        Encoder hidden sizes; the decoder mirrors them.
    latent : int
        Bottleneck size.
    relu_output : bool
        ReLU on the output layer (Chekanov uses ReLU everywhere; correct for the
        non-negative RMM cells, not for standardised inputs).
    """

    kind = "ae"
    output_names = ("mse",)

    def __init__(
        self,
        preprocess: nn.Module,
        *,
        n_inputs: int,
        hidden: tuple[int, ...] = (20, 10),
        latent: int = 5,
        relu_output: bool = True,
    ) -> None:
        super().__init__()
        self.preprocess = preprocess
        sizes = [n_inputs, *hidden, latent]
        self.encoder = mlp(sizes, final_activation=nn.ReLU())
        self.decoder = mlp(sizes[::-1], final_activation=nn.ReLU() if relu_output else None)
        self._arch = {"n_inputs": n_inputs, "hidden": list(hidden), "latent": latent, "relu_output": relu_output}

    def reconstruction_error(self, h: torch.Tensor) -> torch.Tensor:
        """Per-event MSE between the network input ``h`` and its reconstruction."""
        return torch.mean((self.decoder(self.encoder(h)) - h) ** 2, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reconstruction_error(self.preprocess(x))

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x).mean()

    def architecture(self) -> dict:
        return dict(self._arch)


def build_autoencoder(x_train: np.ndarray, *, feature_set: str, seed: int) -> Autoencoder:
    """Fit the preprocessing on ``x_train`` and build a seeded :class:`Autoencoder`.

    For the RMM the all-zero cells are dropped (Chekanov: 750 of 2601 kept) and the
    cells are used unscaled with a ReLU output; for any other set the inputs are
    standardised (mean/std) and the output layer is linear.
    """
    with seeded_init(seed):
        if feature_set == "rmm":
            keep = fit_nonzero_mask(x_train)
            pre: nn.Module = SelectColumns(keep, x_train.shape[1])
            return Autoencoder(pre, n_inputs=len(keep), relu_output=True)
        center, scale = fit_center_scale(x_train, method="mean_std")
        return Autoencoder(Standardize(center, scale), n_inputs=x_train.shape[1], relu_output=False)
