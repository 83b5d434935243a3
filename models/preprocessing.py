"""Input preprocessing fitted on training data and exported inside the TorchScript modules.

Every transform here is an ``nn.Module`` whose fitted constants are buffers, so a
scripted model carries them and a processor can feed raw features.
"""

# no `from __future__ import annotations`: TorchScript resolves the buffers' class annotations at run time
import logging
from typing import Any

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

CENTER_SCALE_METHODS = ("median_iqr", "mean_std", "median_std", "none")


def fit_center_scale(x: np.ndarray, *, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-column centre and scale of ``x`` (N, d).

    Parameters
    ----------
    x : numpy.ndarray
        Training features.
    method : str
        ``median_iqr`` (robust), ``mean_std``, ``median_std`` (Knapp: zero median,
        unit variance) or ``none`` (centre 0, scale 1).

    Returns
    -------
    center, scale : numpy.ndarray
        float32 arrays (d,). A column with zero spread gets scale 1 (constant input).
    """
    if method not in CENTER_SCALE_METHODS:
        raise ValueError(f"unknown standardisation {method!r}; choose from {CENTER_SCALE_METHODS}")
    x = np.asarray(x, dtype=np.float64)
    d = x.shape[1]
    if method == "none":
        return np.zeros(d, np.float32), np.ones(d, np.float32)
    center = np.median(x, axis=0) if method.startswith("median") else x.mean(axis=0)
    if method == "median_iqr":
        q25, q75 = np.percentile(x, [25.0, 75.0], axis=0)
        scale = q75 - q25
        std = x.std(axis=0)
        scale = np.where(scale > 0, scale, std)  # discrete / spiky columns: IQR can be 0
    else:
        scale = x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    return center.astype(np.float32), scale.astype(np.float32)


class Standardize(nn.Module):
    """``(x - center) / scale`` with fitted per-column constants."""

    center: torch.Tensor
    scale: torch.Tensor

    def __init__(self, center: np.ndarray, scale: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("center", torch.as_tensor(np.asarray(center, np.float32)))
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale, np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.center) / self.scale

    def summary(self) -> dict[str, Any]:
        return {"center": self.center.tolist(), "scale": self.scale.tolist()}


class Log1pColumns(nn.Module):
    """``log(1 + max(x, 0))`` on the given columns (momenta that span decades), identity elsewhere."""

    mask: torch.Tensor

    def __init__(self, columns: np.ndarray, n_inputs: int) -> None:
        super().__init__()
        mask = np.zeros(n_inputs, dtype=bool)
        mask[np.asarray(columns, dtype=np.int64)] = True
        self.register_buffer("mask", torch.as_tensor(mask))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(self.mask, torch.log1p(torch.clamp(x, min=0.0)), x)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """The same on a numpy array (to fit what follows on the transformed inputs)."""
        out = np.array(x, dtype=np.float32, copy=True)
        cols = self.mask.numpy()
        out[:, cols] = np.log1p(np.maximum(out[:, cols], 0.0))
        return out


class SelectColumns(nn.Module):
    """Keep a fixed subset of input columns (e.g. the non-zero RMM cells)."""

    indices: torch.Tensor

    def __init__(self, indices: np.ndarray, n_inputs: int) -> None:
        super().__init__()
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size == 0:
            raise ValueError("SelectColumns: no columns kept (every training column is constant zero?)")
        if idx.min() < 0 or idx.max() >= n_inputs:
            raise ValueError(f"SelectColumns: indices outside [0, {n_inputs})")
        self.n_inputs = int(n_inputs)
        self.register_buffer("indices", torch.as_tensor(idx))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.index_select(1, self.indices)


def fit_nonzero_mask(x: np.ndarray) -> np.ndarray:
    """Indices of the columns of ``x`` that are non-zero in at least one event (RMM cell mask)."""
    return np.flatnonzero(np.any(np.asarray(x) != 0, axis=0))


class OneHot(nn.Module):
    """One-hot code of one column against fitted categories (nearest category wins).

    Values not seen in training are assigned to the nearest category, so an event
    with more muons than any training event falls into the highest bin.
    """

    categories: torch.Tensor

    def __init__(self, column: int, categories: np.ndarray) -> None:
        super().__init__()
        cats = np.unique(np.asarray(categories, np.float32))
        if cats.size == 0:
            raise ValueError(f"OneHot: no categories for column {column}")
        self.column = int(column)
        self.register_buffer("categories", torch.as_tensor(cats))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        col = x[:, self.column].unsqueeze(1)
        idx = torch.argmin(torch.abs(col - self.categories.unsqueeze(0)), dim=1)
        return nn.functional.one_hot(idx, num_classes=self.categories.shape[0]).to(x.dtype)


class MixedEncoding(nn.Module):
    """Standardised continuous columns followed by one-hot blocks of discrete columns (ALAD input)."""

    continuous: torch.Tensor

    def __init__(self, continuous: np.ndarray, center: np.ndarray, scale: np.ndarray, onehots: list[OneHot]) -> None:
        super().__init__()
        self.register_buffer("continuous", torch.as_tensor(np.asarray(continuous, np.int64)))
        self.standardize = Standardize(center, scale)
        self.onehots = nn.ModuleList(onehots)
        self.out_dim = int(len(continuous) + sum(int(o.categories.shape[0]) for o in onehots))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [self.standardize(x.index_select(1, self.continuous))]
        for enc in self.onehots:
            parts.append(enc(x))
        return torch.cat(parts, dim=1)


def fit_mixed_encoding(
    x: np.ndarray,
    *,
    feature_names: list[str],
    one_hot: tuple[str, ...],
    method: str = "median_std",
    max_categories: int = 12,
) -> MixedEncoding:
    """Fit the ALAD encoding: ``one_hot`` columns one-hot coded, the others standardised.

    Parameters
    ----------
    x : numpy.ndarray
        Raw training features (N, d).
    feature_names : list of str
        Names of the columns of ``x``.
    one_hot : tuple of str
        Names of the discrete columns to one-hot code (absent names are ignored).
    method : str
        Standardisation of the continuous columns (see :func:`fit_center_scale`).
    max_categories : int
        A discrete column keeps at most this many categories: integer-valued
        columns are binned as ``min .. min + max_categories - 1`` (higher values
        fall into the last bin).
    """
    oh_cols = [feature_names.index(n) for n in one_hot if n in feature_names]
    cont = [i for i in range(len(feature_names)) if i not in oh_cols]
    center, scale = fit_center_scale(x[:, cont], method=method)
    encoders = []
    for c in oh_cols:
        vals = np.unique(x[:, c])
        if np.allclose(vals, np.round(vals)) and vals.size > 2:
            lo = vals.min()
            vals = np.arange(lo, min(vals.max(), lo + max_categories - 1) + 1)
        encoders.append(OneHot(c, vals[:max_categories]))
    enc = MixedEncoding(np.asarray(cont), center, scale, encoders)
    log.info(
        "mixed encoding: %d continuous + one-hot %s -> %d dims",
        len(cont),
        {feature_names[o.column]: int(o.categories.shape[0]) for o in encoders},
        enc.out_dim,
    )
    return enc
