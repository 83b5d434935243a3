"""Adversarially Learned Anomaly Detection (Knapp et al., Table 2), with ALICE's cycle consistency.

Networks (x = 39-dim encoded HLF-21, z = latent, 4-dim by default; Knapp's is 16-dim):

* E: x -> 64 -> 64 -> z, LeakyReLU(0.2); G: z -> 64 -> 64 -> x, ReLU.
* D_xz: x-branch Dense 128 + BatchNorm + LeakyReLU; z-branch Dense 128 + LeakyReLU +
  Dropout 0.5; joint Dense 128 + LeakyReLU + Dropout 0.5 -> 1.
* D_xx, D_zz: concatenation -> Dense 128 + LeakyReLU + Dropout 0.2 -> 1.
* spectral norm on every discriminator layer, Xavier init, zero biases;
  Adam(beta1 0.5), batch 50; the scores are those of the exponential moving average of the
  weights (decay 0.999), as in the reference implementation.

The default is ALAD + an explicit cycle loss: the encoder and generator descend the adversarial loss
plus ``cycle`` times the mean L1 distance |x - G(E(x))| (the cycle consistency of ALICE, Li et al. 2017,
"ALICE: Towards Understanding Adversarial Learning for Joint Distribution Matching"), with ``cycle`` 1,
a 4-dim latent, lr 1e-4 and 5,000 steps (:data:`ALAD_HYPER`). On the main job's default events (about
1,200 training events, 9 % ttbar) it is the configuration of ``benchmarks/alad_learning.py`` that beats
the trivial baseline over three training seeds (``benchmarks/results/alad_learning.md``). ALAD as Knapp
et al. train it: ``build_alad(..., latent=16, cycle=0)`` with :data:`ALAD_KNAPP_HYPER`.

Scores (higher = more anomalous): ``logits`` = -log D_xx(x, G(E(x))) (the paper
writes log D_xx; the sign is flipped so that all four scores rank anomalies high),
``features`` = L1 distance of the last D_xx hidden layer on (x, x) vs (x, G(E(x))),
``l1`` and ``l2`` = distance between x and G(E(x)) in the encoded space. ``l1`` is
the default.
"""

from __future__ import annotations

import copy
from typing import Any, cast

import numpy as np
import torch
from cms_anomaly.models.base import AnomalyModel, Hyper, seeded_init, xavier_init
from cms_anomaly.models.feature_sets import ALAD_ONE_HOT
from cms_anomaly.models.preprocessing import MixedEncoding, OneHot, fit_mixed_encoding
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits as bce_logits
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

#: Knapp Table 2 and the reference configuration (github oliverkn/alad-for-lhc, benchmark/model/config.py):
#: Adam(lr 1e-5, beta1 0.5), batch 50, EMA of the weights with decay 0.999, some 10^7 steps over 3.4M events.
#: The budget here is 15,000 steps (~150 s on one CPU core, ``benchmarks/alad_learning.py``), evaluated
#: every 60 steps; ``patience`` 100 evaluations of the mean L1 score of the averaged weights.
ALAD_KNAPP_HYPER = Hyper(
    batch_size=50, lr=1e-5, betas=(0.5, 0.999), patience=100, max_epochs=100, max_steps=15_000, ema_decay=0.999
)
#: The default (ALAD + cycle loss, :data:`ALAD_LATENT`, :data:`ALAD_CYCLE`): Knapp's batch, Adam betas and
#: weight averaging, lr 1e-4 over 5,000 steps (~50 s on one CPU core), evaluated every 20 steps.
ALAD_HYPER = Hyper(
    batch_size=50, lr=1e-4, betas=(0.5, 0.999), patience=100, max_epochs=100, max_steps=5_000, ema_decay=0.999
)
#: Latent size of the default (Knapp's: 16).
ALAD_LATENT = 4
#: Weight of the cycle-consistency term |x - G(E(x))| in the encoder/generator loss (0: ALAD alone).
ALAD_CYCLE = 1.0

ALAD_SCORES = ("l1", "l2", "logits", "features")


def _sn(layer: nn.Linear, enabled: bool) -> nn.Module:
    return spectral_norm(layer) if enabled else layer


class DiscriminatorXZ(nn.Module):
    """D_xz(x, z) -> logit."""

    def __init__(self, x_dim: int, z_dim: int, *, sn: bool = True) -> None:
        super().__init__()
        self.x_branch = nn.Sequential(_sn(nn.Linear(x_dim, 128), sn), nn.BatchNorm1d(128), nn.LeakyReLU(0.2))
        self.z_branch = nn.Sequential(_sn(nn.Linear(z_dim, 128), sn), nn.LeakyReLU(0.2), nn.Dropout(0.5))
        self.joint = nn.Sequential(_sn(nn.Linear(256, 128), sn), nn.LeakyReLU(0.2), nn.Dropout(0.5))
        self.out = _sn(nn.Linear(128, 1), sn)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = self.joint(torch.cat([self.x_branch(x), self.z_branch(z)], dim=1))
        return self.out(h).squeeze(1)


class PairDiscriminator(nn.Module):
    """D_xx / D_zz: concat(a, b) -> 128 -> logit; ``features`` gives the hidden layer."""

    def __init__(self, dim: int, *, sn: bool = True) -> None:
        super().__init__()
        self.hidden = nn.Sequential(_sn(nn.Linear(2 * dim, 128), sn), nn.LeakyReLU(0.2), nn.Dropout(0.2))
        self.out = _sn(nn.Linear(128, 1), sn)

    def features(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.hidden(torch.cat([a, b], dim=1))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(a, b)).squeeze(1)


class ALAD(AnomalyModel):
    """ALAD with fitted input encoding; ``forward(raw) -> (N, 4)`` scores (l1, l2, logits, features)."""

    kind = "alad"
    output_names = ALAD_SCORES

    def __init__(
        self, encoding: MixedEncoding, *, latent: int = 16, hidden: int = 64, sn: bool = True, cycle: float = 0.0
    ) -> None:
        super().__init__()
        x_dim = encoding.out_dim
        self.encoding = encoding
        self.latent = latent
        self.cycle = float(cycle)
        self.encoder = nn.Sequential(
            nn.Linear(x_dim, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, latent),
        )
        self.generator = nn.Sequential(
            nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, x_dim)
        )
        self.d_xz = DiscriminatorXZ(x_dim, latent, sn=sn)
        self.d_xx = PairDiscriminator(x_dim, sn=sn)
        self.d_zz = PairDiscriminator(latent, sn=sn)
        xavier_init(self)
        self._arch: dict[str, Any] = {
            "x_dim": x_dim,
            "latent": latent,
            "hidden": hidden,
            "spectral_norm": sn,
            "cycle": self.cycle,
            "objective": (
                f"ALAD + explicit cycle loss {self.cycle:g} * |x - G(E(x))| (ALICE, Li et al. 2017)"
                if self.cycle > 0
                else "ALAD (Zenati et al. 2018)"
            ),
            "encoding": {
                "continuous": int(encoding.continuous.numel()),
                "one_hot": [int(cast(OneHot, o).categories.shape[0]) for o in encoding.onehots],
            },
        }

    def all_scores(self, x_raw: torch.Tensor) -> torch.Tensor:
        """(N, 4) scores in :data:`ALAD_SCORES` order."""
        x = self.encoding(x_raw)
        rec = self.generator(self.encoder(x))
        diff = x - rec
        l1 = diff.abs().sum(1)
        l2 = torch.sqrt((diff * diff).sum(1))
        logits = nn.functional.softplus(-self.d_xx(x, rec))  # -log sigmoid(logit)
        feats = (self.d_xx.features(x, x) - self.d_xx.features(x, rec)).abs().sum(1)
        return torch.stack([l1, l2, logits, feats], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.all_scores(x)

    def _discriminator_params(self) -> list[nn.Parameter]:
        return [*self.d_xz.parameters(), *self.d_xx.parameters(), *self.d_zz.parameters()]

    def configure_optimizers(self, *, lr: float, betas: tuple[float, float]) -> list[torch.optim.Optimizer]:
        ge = [*self.encoder.parameters(), *self.generator.parameters()]
        return [
            torch.optim.Adam(self._discriminator_params(), lr=lr, betas=betas, foreach=True),
            torch.optim.Adam(ge, lr=lr, betas=betas, foreach=True),
        ]

    def _adversarial_terms(self, x: torch.Tensor, z: torch.Tensor, *, detach: bool) -> dict[str, torch.Tensor]:
        ex = self.encoder(x)
        gz = self.generator(z)
        rec = self.generator(ex)
        egz = self.encoder(gz)
        if detach:
            ex, gz, rec, egz = ex.detach(), gz.detach(), rec.detach(), egz.detach()
        return {
            "xz_real": self.d_xz(x, ex),
            "xz_fake": self.d_xz(gz, z),
            "xx_real": self.d_xx(x, x),
            "xx_fake": self.d_xx(x, rec),
            "zz_real": self.d_zz(z, z),
            "zz_fake": self.d_zz(z, egz),
        }

    @staticmethod
    def _gan_loss(t: dict[str, torch.Tensor], *, flip: bool) -> torch.Tensor:
        loss = torch.zeros((), device=t["xz_real"].device)
        for pair in ("xz", "xx", "zz"):
            real, fake = t[f"{pair}_real"], t[f"{pair}_fake"]
            one, zero = torch.ones_like(real), torch.zeros_like(real)
            loss = loss + bce_logits(real, zero if flip else one) + bce_logits(fake, one if flip else zero)
        return loss

    def loss(self, x_raw: torch.Tensor) -> torch.Tensor:
        """Discriminator loss (eq. 6) of a raw batch, with latent samples z ~ N(0, 1)."""
        x = self.encoding(x_raw)
        z = torch.randn(x.shape[0], self.latent, device=x.device)
        return self._gan_loss(self._adversarial_terms(x, z, detach=True), flip=False)

    def validation_loss(self, x_raw: torch.Tensor) -> torch.Tensor:
        """The adversarial losses of a raw batch, discriminators' plus encoder's and generator's, and the
        cycle term when ``cycle`` > 0 (the training loss :meth:`train_step` reports), with latent samples
        z ~ N(0, 1)."""
        x = self.encoding(x_raw)
        z = torch.randn(x.shape[0], self.latent, device=x.device)
        terms = self._adversarial_terms(x, z, detach=True)
        return self._gan_loss(terms, flip=False) + self._gan_loss(terms, flip=True) + self._cycle_loss(x)

    def _cycle_loss(self, x: torch.Tensor) -> torch.Tensor:
        """``cycle`` times the mean L1 distance of encoded ``x`` from G(E(x)) (ALICE's explicit cycle
        consistency on x, Li et al. 2017); zero when ``cycle`` is 0."""
        if self.cycle <= 0:
            return torch.zeros((), device=x.device)
        return self.cycle * (x - self.generator(self.encoder(x))).abs().sum(1).mean()

    def selection_criterion(self, x: torch.Tensor) -> torch.Tensor:
        """Mean L1 score of a raw batch: the reconstruction distance in the encoded space that the L1
        score ranks events by.

        The adversarial losses measure a balance between networks and stay flat while the score
        changes; the L1 score's mean over (SM) validation events falls as G(E(x)) learns to
        reconstruct the bulk of the events, the condition for a reconstruction distance to single out
        events unlike it. The untrained network's G(E(x)) is nearly one point, so its L1 score is
        the distance of the encoded input from that point, which a plain distance of the
        standardised inputs from their median already ranks alike.
        """
        return self.all_scores(x)[:, 0].mean()

    def train_step(self, x_raw: torch.Tensor, optimizers: list[torch.optim.Optimizer]) -> float:
        """Simultaneous discriminator and encoder/generator updates from one forward pass.

        The discriminators descend eq. (6) with true labels, E and G descend it with
        flipped labels (the non-saturating form used by ALAD); each gradient is taken
        only with respect to its own parameter group.
        """
        opt_d, opt_ge = optimizers
        x = self.encoding(x_raw)
        z = torch.randn(x.shape[0], self.latent, device=x.device)
        with parametrize.cached():  # one spectral-norm power iteration per layer and step
            terms = self._adversarial_terms(x, z, detach=False)
        loss_d = self._gan_loss(terms, flip=False)
        loss_ge = self._gan_loss(terms, flip=True) + self._cycle_loss(x)
        d_params = [p for g in opt_d.param_groups for p in g["params"]]
        ge_params = [p for g in opt_ge.param_groups for p in g["params"]]
        grads_d = torch.autograd.grad(loss_d, d_params, retain_graph=True, allow_unused=True)
        grads_ge = torch.autograd.grad(loss_ge, ge_params, allow_unused=True)
        for params, grads in ((d_params, grads_d), (ge_params, grads_ge)):
            for p, g in zip(params, grads, strict=True):
                p.grad = g
        opt_d.step()
        opt_ge.step()
        return float(loss_d.detach() + loss_ge.detach())

    def export_modules(self) -> dict[str, nn.Module]:
        """One scriptable module per score, spectral norm frozen into plain weights."""
        was_training = self.training
        self.eval()  # spectral norm: eval mode uses the stored singular vectors, no power iteration
        frozen = ALAD(copy.deepcopy(self.encoding).cpu(), latent=self.latent, hidden=self._arch["hidden"], sn=False)
        src = dict(self.named_modules())
        with torch.no_grad():
            for name, dst in frozen.named_modules():
                if isinstance(dst, nn.Linear):
                    dst.weight.copy_(src[name].weight.detach().cpu())  # W / sigma(W) for normalised layers
                    dst.bias.copy_(src[name].bias.detach().cpu())
                elif isinstance(dst, nn.BatchNorm1d):
                    dst.load_state_dict({k: v.cpu() for k, v in src[name].state_dict().items()})
        self.train(was_training)
        frozen.eval()
        return {name: ALADScore(frozen, index=i) for i, name in enumerate(ALAD_SCORES)}

    def architecture(self) -> dict:
        return dict(self._arch)


class ALADScore(nn.Module):
    """One ALAD score as a (N,) output (a coffea torch_wrapper needs one tensor)."""

    def __init__(self, alad: ALAD, *, index: int) -> None:
        super().__init__()
        self.alad = alad
        self.index = int(index)
        self.output_names = (ALAD_SCORES[index],)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.alad
        h = a.encoding(x)
        rec = a.generator(a.encoder(h))
        if self.index == 0:
            return (h - rec).abs().sum(1)
        if self.index == 1:
            d = h - rec
            return torch.sqrt((d * d).sum(1))
        if self.index == 2:
            return nn.functional.softplus(-a.d_xx(h, rec))
        return (a.d_xx.features(h, h) - a.d_xx.features(h, rec)).abs().sum(1)


def build_alad(
    x_train: np.ndarray,
    *,
    feature_names: list[str],
    seed: int,
    latent: int = ALAD_LATENT,
    sn: bool = True,
    cycle: float = ALAD_CYCLE,
) -> ALAD:
    """Fit the one-hot + standardisation encoding (Knapp: zero median, unit variance) and build ALAD."""
    enc = fit_mixed_encoding(x_train, feature_names=feature_names, one_hot=ALAD_ONE_HOT, method="median_std")
    with seeded_init(seed):
        return ALAD(enc, latent=latent, sn=sn, cycle=cycle)
