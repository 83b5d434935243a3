"""The trivial baseline every detector must beat: the distance of the standardised inputs from their median.

Score ``l1`` of an event with raw inputs x (d columns)::

    l1 = sum_i |x_i - median_i| / scale_i

with ``median_i`` the median and ``scale_i`` the standard deviation of column i over the training
events of the detector it sits beside (the same events and feature set), both fitted once
(:func:`~cms_anomaly.models.preprocessing.fit_center_scale`, ``median_std``: the centring and
scaling of ALAD's continuous inputs, Knapp et al.). A constant column has standard deviation 0 and
gets scale 1, so it adds |x_i - median_i| (zero on every event like the training ones). Discrete
columns (multiplicities) are standardised like the others, not one-hot coded: the baseline has no
parameters beyond the median and the scale, and no optimiser; fitting them is its training.

The median and the scale are buffers of the module, so the exported TorchScript file carries
them and the processor applies it through ``coffea.ml_tools`` like any other scorer.
"""

from __future__ import annotations

import numpy as np
import torch
from cms_anomaly.models.base import AnomalyModel
from cms_anomaly.models.errors import TrainingError
from cms_anomaly.models.preprocessing import Standardize, fit_center_scale

#: the standardisation of the baseline (:data:`~cms_anomaly.models.preprocessing.CENTER_SCALE_METHODS`)
BASELINE_STANDARDISATION = "median_std"


class MedianDistance(AnomalyModel):
    """``forward(raw) -> (N,)``: the L1 distance of the standardised inputs from their median."""

    kind = "baseline"
    output_names = ("l1",)

    def __init__(self, standardize: Standardize) -> None:
        super().__init__()
        self.standardize = standardize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.standardize(x).abs().sum(1)

    def loss(self, x: torch.Tensor) -> torch.Tensor:  # noqa: ARG002 - the interface's signature
        raise TrainingError("the baseline has no parameters to train: fitting its median and scale is its training")

    def architecture(self) -> dict:
        return {
            "score": "l1 = sum_i |x_i - median_i| / std_i",
            "n_inputs": int(self.standardize.center.numel()),
            "parameters": 0,
        }


def build_baseline(x_train: np.ndarray) -> MedianDistance:
    """Fit the median and the standard deviation of each column of the raw training matrix ``x_train``
    (N, d); a constant column gets scale 1. Raises :class:`~cms_anomaly.models.errors.TrainingError`
    on an empty or non-finite matrix."""
    x = np.asarray(x_train)
    if x.ndim != 2 or len(x) == 0:
        raise TrainingError(f"baseline: need a non-empty (N, d) training matrix, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise TrainingError("baseline: the training matrix has non-finite values")
    center, scale = fit_center_scale(x, method=BASELINE_STANDARDISATION)
    return MedianDistance(Standardize(center, scale))
