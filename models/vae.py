"""Variational autoencoder with per-feature likelihoods and a learnable prior (Cerri et al. sec. 4.1).

Encoder ``d -> 50 -> 50 -> (mu_z, sigma_z)`` in 4 dimensions; decoder ``4 -> 50 -> 50``
feeding three heads: ``d`` linear outputs (alpha_1 of every feature), one p-ISRLU
output per feature with a width parameter (alpha_2: 17 for HLF-21) and one
clipped-tanh output per log-normal feature (alpha_3, the weight of the delta at zero:
10 for HLF-21). Loss = NLL + beta * KL(q(z|x) || N(mu_P, sigma_P)), beta = 0.3.

Choices the paper leaves open (stated in the model card):

* the encoder sees mean/std-standardised inputs; the likelihoods of the continuous
  families are evaluated on ``x / s`` with ``s`` the training standard deviation,
  which shifts every event's NLL by the same constant ``sum log s`` and so leaves
  the ranking unchanged; counts and binary features enter unscaled.
* the normalisations of the truncated Gaussians are the exact ones (the printed
  eq. 4.8 / 4.10 contain typos): ``1/Phi(a1/a2)`` and ``1/Phi((a1+0.5)/a2)``.
* the score (Loss_reco) is evaluated at ``z = mu_z`` (deterministic).
* p-ISRLU(x) = 1 + 0.005 + (x if x > 0 else x / sqrt(1 + x^2)), strictly positive.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from cms_anomaly.models.base import AnomalyModel, Hyper, mlp, seeded_init
from cms_anomaly.models.feature_sets import VAE_PDF
from cms_anomaly.models.preprocessing import Standardize, fit_center_scale
from torch import nn

#: Cerri: batch 1000, early stopping patience 20 (delta 0.005), LR on plateau patience 8 (delta 0.01)
VAE_HYPER = Hyper(
    batch_size=1000, lr=1e-3, patience=20, min_delta=0.005, lr_patience=8, lr_min_delta=0.01, max_epochs=300
)

FAMILIES = ("lognormal", "gaussian", "truncated_gaussian", "discrete_truncated_gaussian", "binomial", "poisson")
_WITH_A2 = ("lognormal", "gaussian", "truncated_gaussian", "discrete_truncated_gaussian")
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)  # literal 0.918938... inlined below for TorchScript


def p_isrlu(x: torch.Tensor) -> torch.Tensor:
    """Positive inverse-square-root linear unit: ``1.005 + (x if x > 0 else x/sqrt(1+x^2))``."""
    return 1.005 + torch.where(x > 0, x, x * torch.rsqrt(1.0 + x * x))


def clipped_tanh(x: torch.Tensor) -> torch.Tensor:
    """Cerri eq. 4.2: ``0.5 (1 + 0.999 tanh x)``, inside (0.0005, 0.9995)."""
    return 0.5 * (1.0 + 0.999 * torch.tanh(x))


def _log_phi(t: torch.Tensor) -> torch.Tensor:
    """log of the standard normal CDF; floor 1e-30 (reached only below t = -11), ~10x faster than log_ndtr."""
    return torch.log(torch.clamp(torch.special.ndtr(t), min=1e-30))


def _gauss_nll(x: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return torch.log(sigma) + 0.9189385332046727 + 0.5 * ((x - mu) / sigma) ** 2


class VAE(AnomalyModel):
    """Cerri et al. VAE; ``forward(raw) -> Loss_reco`` per event (N,).

    Parameters
    ----------
    pdfs : list of str
        Likelihood family of each input column (see :data:`FAMILIES`).
    center, scale : numpy.ndarray
        Standardisation of the encoder input.
    like_scale : numpy.ndarray
        Divisor applied to the continuous features inside the likelihood.
    a1_bias : numpy.ndarray, optional
        Initial bias of the alpha_1 head (starting the pdfs near the data).
    latent, hidden : int
        Latent dimension (4) and hidden width (50).
    beta : float
        KL weight (0.3).
    """

    kind = "vae"
    output_names = ("loss_reco",)
    if TYPE_CHECKING:  # the buffers registered in __init__ (one index set per likelihood family); TorchScript
        # reads class annotations of a module, and with postponed evaluation it cannot resolve them
        like_scale: torch.Tensor
        idx_lognormal: torch.Tensor
        idx_gaussian: torch.Tensor
        idx_truncated_gaussian: torch.Tensor
        idx_discrete_truncated_gaussian: torch.Tensor
        idx_binomial: torch.Tensor
        idx_poisson: torch.Tensor
        a2pos_lognormal: torch.Tensor
        a2pos_gaussian: torch.Tensor
        a2pos_truncated_gaussian: torch.Tensor
        a2pos_discrete_truncated_gaussian: torch.Tensor
        a3pos_lognormal: torch.Tensor

    def __init__(
        self,
        *,
        pdfs: list[str],
        center: np.ndarray,
        scale: np.ndarray,
        like_scale: np.ndarray,
        a1_bias: np.ndarray | None = None,
        latent: int = 4,
        hidden: int = 50,
        beta: float = 0.3,
    ) -> None:
        super().__init__()
        unknown = sorted(set(pdfs) - set(FAMILIES))
        if unknown:
            raise ValueError(f"VAE: unknown likelihood families {unknown}")
        d = len(pdfs)
        self.pdfs = list(pdfs)
        self.beta = float(beta)
        self.standardize = Standardize(center, scale)
        self.register_buffer("like_scale", torch.as_tensor(np.asarray(like_scale, np.float32)))
        a2_cols = [i for i, p in enumerate(pdfs) if p in _WITH_A2]
        a3_cols = [i for i, p in enumerate(pdfs) if p == "lognormal"]
        for fam in FAMILIES:
            cols = [i for i, p in enumerate(pdfs) if p == fam]
            self.register_buffer(f"idx_{fam}", torch.as_tensor(cols, dtype=torch.long))
            if fam in _WITH_A2:
                self.register_buffer(
                    f"a2pos_{fam}", torch.as_tensor([a2_cols.index(c) for c in cols], dtype=torch.long)
                )
        self.register_buffer("a3pos_lognormal", torch.as_tensor([a3_cols.index(c) for c in a3_cols], dtype=torch.long))
        self.encoder = mlp([d, hidden, hidden], final_activation=nn.ReLU())
        self.enc_mu = nn.Linear(hidden, latent)
        self.enc_sigma = nn.Linear(hidden, latent)
        self.prior_mu = nn.Parameter(torch.zeros(latent))
        self.prior_log_sigma = nn.Parameter(torch.zeros(latent))
        self.decoder = mlp([latent, hidden, hidden], final_activation=nn.ReLU())
        self.head_a1 = nn.Linear(hidden, d)
        self.head_a2 = nn.Linear(hidden, len(a2_cols))
        self.head_a3 = nn.Linear(hidden, len(a3_cols))
        if a1_bias is not None:
            with torch.no_grad():
                self.head_a1.bias.copy_(torch.as_tensor(np.asarray(a1_bias, np.float32)))
        self._arch = {
            "inputs": d,
            "hidden": [hidden, hidden],
            "latent": latent,
            "beta": beta,
            "heads": {"linear": d, "p_isrlu": len(a2_cols), "clipped_tanh": len(a3_cols)},
            "pdfs": list(pdfs),
        }

    def encode(self, x_raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu_z, sigma_z) of q(z|x)."""
        h = self.encoder(self.standardize(x_raw))
        return self.enc_mu(h), p_isrlu(self.enc_sigma(h))

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The pdf parameters (alpha_1, alpha_2, alpha_3)."""
        h = self.decoder(z)
        return self.head_a1(h), p_isrlu(self.head_a2(h)), clipped_tanh(self.head_a3(h))

    def nll(self, x_raw: torch.Tensor, a1: torch.Tensor, a2: torch.Tensor, a3: torch.Tensor) -> torch.Tensor:
        """Per-event negative log-likelihood summed over features, (N,)."""
        xs = x_raw / self.like_scale
        total = torch.zeros(x_raw.shape[0], dtype=x_raw.dtype, device=x_raw.device)
        idx = self.idx_lognormal
        if idx.numel() > 0:
            x = xs.index_select(1, idx)
            m = a1.index_select(1, idx)
            s = a2.index_select(1, self.a2pos_lognormal)
            w0 = a3.index_select(1, self.a3pos_lognormal)
            logx = torch.log(torch.clamp(x, min=1e-4))
            nz = -torch.log(1.0 - w0) + logx + _gauss_nll(logx, m, s)
            total = total + torch.where(x < 1e-4, -torch.log(w0), nz).sum(1)
        idx = self.idx_gaussian
        if idx.numel() > 0:
            total = total + _gauss_nll(
                xs.index_select(1, idx), a1.index_select(1, idx), a2.index_select(1, self.a2pos_gaussian)
            ).sum(1)
        idx = self.idx_truncated_gaussian
        if idx.numel() > 0:
            m = a1.index_select(1, idx)
            s = a2.index_select(1, self.a2pos_truncated_gaussian)
            x = torch.clamp(xs.index_select(1, idx), min=0.0)
            total = total + (_gauss_nll(x, m, s) + _log_phi(m / s)).sum(1)
        idx = self.idx_discrete_truncated_gaussian
        if idx.numel() > 0:
            m = a1.index_select(1, idx)
            s = a2.index_select(1, self.a2pos_discrete_truncated_gaussian)
            n = torch.clamp(torch.round(x_raw.index_select(1, idx)), min=0.0)
            z_lo = (n - 0.5 - m) / s
            z_hi = (n + 0.5 - m) / s
            # above the mean, mirror (Phi(b) - Phi(a) = Phi(-a) - Phi(-b)) so the difference keeps its precision
            flip = torch.where(z_lo > 0, -torch.ones_like(z_lo), torch.ones_like(z_lo))
            p = torch.abs(torch.special.ndtr(flip * z_hi) - torch.special.ndtr(flip * z_lo))
            total = total + (-torch.log(torch.clamp(p, min=1e-30)) + _log_phi((m + 0.5) / s)).sum(1)
        idx = self.idx_binomial
        if idx.numel() > 0:
            p = clipped_tanh(a1.index_select(1, idx))
            total = total - torch.where(x_raw.index_select(1, idx) > 0, torch.log(p), torch.log(1.0 - p)).sum(1)
        idx = self.idx_poisson
        if idx.numel() > 0:
            mu = p_isrlu(a1.index_select(1, idx))
            n = torch.clamp(torch.round(x_raw.index_select(1, idx)), min=0.0)
            total = total + (mu - n * torch.log(mu) + torch.lgamma(n + 1.0)).sum(1)
        return total

    def kl(self, mu_z: torch.Tensor, sigma_z: torch.Tensor) -> torch.Tensor:
        """Per-event KL(N(mu_z, sigma_z) || N(mu_P, sigma_P)) summed over latent dimensions."""
        sigma_p = torch.exp(self.prior_log_sigma)
        return (
            torch.log(sigma_p / sigma_z) + (sigma_z**2 + (mu_z - self.prior_mu) ** 2) / (2.0 * sigma_p**2) - 0.5
        ).sum(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu_z, _ = self.encode(x)
        a1, a2, a3 = self.decode(mu_z)
        return self.nll(x, a1, a2, a3)

    def loss_terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch means of (Loss_reco, D_KL) with a reparameterised latent sample."""
        mu_z, sigma_z = self.encode(x)
        z = mu_z + sigma_z * torch.randn_like(mu_z)
        a1, a2, a3 = self.decode(z)
        return self.nll(x, a1, a2, a3).mean(), self.kl(mu_z, sigma_z).mean()

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        reco, kl = self.loss_terms(x)
        return reco + self.beta * kl

    def architecture(self) -> dict:
        return dict(self._arch)


def build_vae(x_train: np.ndarray, *, feature_names: list[str], seed: int, beta: float = 0.3) -> VAE:
    """Fit the VAE preprocessing on raw training features and build a seeded model.

    Raises
    ------
    KeyError
        If a feature has no likelihood family in :data:`VAE_PDF`.
    """
    missing = [n for n in feature_names if n not in VAE_PDF]
    if missing:
        raise KeyError(f"VAE: no likelihood family for features {missing}")
    pdfs = [VAE_PDF[n] for n in feature_names]
    x = np.asarray(x_train, np.float64)
    center, scale = fit_center_scale(x, method="mean_std")
    continuous = np.array([p in ("lognormal", "gaussian", "truncated_gaussian") for p in pdfs])
    like_scale = np.where(continuous, x.std(axis=0), 1.0)
    like_scale = np.where(like_scale > 0, like_scale, 1.0).astype(np.float32)
    xs = x / like_scale
    a1_bias = np.zeros(len(pdfs))
    for j, p in enumerate(pdfs):
        col = xs[:, j]
        if p == "lognormal":
            pos = col[col >= 1e-4]
            a1_bias[j] = np.log(pos).mean() if pos.size else 0.0
        elif p in ("gaussian", "truncated_gaussian", "discrete_truncated_gaussian"):
            a1_bias[j] = col.mean()
        elif p == "poisson":
            a1_bias[j] = max(col.mean() - 1.005, 0.0)  # p-ISRLU is linear above 0
    with seeded_init(seed):
        return VAE(pdfs=pdfs, center=center, scale=scale, like_scale=like_scale, a1_bias=a1_bias, beta=beta)
