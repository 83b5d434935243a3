"""The interface every anomaly model implements (training loop and export rely on it)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Hyper:
    """Training hyper-parameters of a model as given in its paper.

    Attributes
    ----------
    batch_size, lr : int, float
        Mini-batch size and Adam learning rate.
    betas : tuple of float
        Adam betas.
    patience, min_delta : int, float
        Early stopping: ``patience`` evaluations (one per epoch under an epoch budget) without an
        absolute improvement ``min_delta`` of the selection criterion.
    lr_patience, lr_min_delta, lr_factor : int or None, float, float
        Learning rate reduced by ``lr_factor`` on a plateau of ``lr_patience`` evaluations
        (None: no schedule).
    max_epochs : int
        Default budget in epochs (when ``max_steps`` is None).
    max_steps : int or None
        Default budget in optimiser steps (None: ``max_epochs``).
    ema_decay : float or None
        Decay of the exponential moving average of the weights that is evaluated, selected and
        exported (:class:`~cms_anomaly.models.training.WeightAverage`); None: the weights themselves.
    """

    batch_size: int
    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    patience: int = 20
    min_delta: float = 0.0
    lr_patience: int | None = None
    lr_min_delta: float = 0.0
    lr_factor: float = 0.1
    max_epochs: int = 200
    max_steps: int | None = None
    ema_decay: float | None = None


class AnomalyModel(nn.Module):
    """Base class: preprocessing + network; ``forward(raw) -> scores``.

    Subclasses define ``forward`` (raw float32 features (N, d) -> scores),
    :meth:`loss` (a scalar training loss of a raw batch) and, if they need more
    than one optimizer, :meth:`configure_optimizers` and :meth:`train_step`.
    """

    #: model type written into the model card
    kind: str = "anomaly"
    #: names of the columns returned by ``forward``
    output_names: tuple[str, ...] = ("score",)
    #: the loss has a term computed over the whole batch (not a mean of per-event losses): the
    #: validation loss is then evaluated in batches of the training size
    batch_level_loss: bool = False

    def loss(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def validation_loss(self, x: torch.Tensor) -> torch.Tensor:
        """The training loss's counterpart on validation events (default: the training loss in eval mode)."""
        return self.loss(x)

    def selection_criterion(self, x: torch.Tensor) -> torch.Tensor | None:  # noqa: ARG002 - overridden
        """Scalar on validation events whose minimum selects the weights and whose plateau stops the
        training; None (default): the validation loss."""
        return None

    def configure_optimizers(self, *, lr: float, betas: tuple[float, float]) -> list[torch.optim.Optimizer]:
        """One Adam optimizer over all parameters."""
        return [torch.optim.Adam(self.parameters(), lr=lr, betas=betas)]

    def train_step(self, x: torch.Tensor, optimizers: list[torch.optim.Optimizer]) -> float:
        """One optimisation step on the raw batch ``x``; returns the loss value."""
        (opt,) = optimizers
        opt.zero_grad(set_to_none=True)
        loss = self.loss(x)
        loss.backward()
        opt.step()
        return float(loss.detach())

    def export_modules(self) -> dict[str, nn.Module]:
        """Scriptable score modules keyed by output file suffix (default: the model itself)."""
        return {"": self}

    def architecture(self) -> dict:
        """Summary of layer sizes for the model card."""
        return {"repr": repr(self)}


def xavier_init(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every Linear layer (Knapp Table 2)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def mlp(
    sizes: list[int], *, activation: type[nn.Module] = nn.ReLU, final_activation: nn.Module | None = None
) -> nn.Sequential:
    """Dense stack ``sizes[0] -> ... -> sizes[-1]`` with ``activation`` between layers."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(activation())
    if final_activation is not None:
        layers.append(final_activation)
    return nn.Sequential(*layers)


@contextlib.contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Run layer initialisation with torch's RNG seeded to ``seed``, restoring the global state after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
