"""The New Physics Learning Machine: a goodness-of-fit test of data against simulation, learnt.

D'Agnolo and Wulzer, Phys. Rev. D 99 (2019) 015014 (arXiv:1806.02350), and D'Agnolo, Grosso, Pierini,
Wulzer and Zanetti, Eur. Phys. J. C 81 (2021) 89 (arXiv:1912.12155). A network ``f(x; w)``
parametrises the log-ratio of the data density to the reference (simulation) density,
``n(x|w) = n(x|R) exp f(x; w)``; the extended likelihood ratio to the reference is maximised by
minimising

    L[f] = sum_{x in R} w_R(x) (exp f(x) - 1) - sum_{x in D} f(x)

over the network (``w_R``: the reference events' weights, their sum the expected data yield), and the
test statistic is ``t = -2 min L``. Under the null (the data drawn from the reference) ``t`` follows,
with the papers' weight clipping, a distribution close to a chi2; its p-value comes from
pseudo-experiments of the same procedure (:func:`nplm_null`, :func:`cms_anomaly.stats.gof.toy_p_value`).

Implementation choices (the papers' Keras code trains one network per toy for 10^5 epochs):

* every pseudo-experiment and the observation train **together**, as one batch of independent
  networks (batched matrix products, the parameters of network k only see the loss of sample k), so
  the null distribution of ``n`` toys costs about one training of ``n`` small networks;
* full-batch Adam for :attr:`NPLMConfig.steps` steps; after every step each weight and bias is
  clipped to ``[-clip, clip]`` (the papers clip the weights of every layer);
* the output layer starts at zero, so ``f = 0`` and ``t = 0`` at the start and ``t >= 0`` up to the
  optimiser's noise;
* inputs standardised with the reference's weighted mean and standard deviation;
* pseudo-experiments draw ``Poisson(N(R))`` events from the reference events in proportion to their
  weights (bootstrap of the reference): with ``N_R >> N_D`` (the papers use ``N_R / N_D >= 5``) the
  reference's own fluctuation is small against the data's; the calibration test
  (``tests/test_models_nplm.py``) checks this null against data drawn independently of the reference.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from cms_anomaly.models.errors import TrainingError
from cms_anomaly.stats.gof import ToyPValue, toy_p_value

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NPLMConfig:
    """The network and its training.

    Attributes
    ----------
    hidden : tuple of int
        Hidden layers (sigmoid units); D'Agnolo and Wulzer's one-dimensional study uses one layer of
        4, ``(d, 4, 1)``.
    clip : float
        Every weight and bias clipped to ``[-clip, clip]`` after each step (the regulariser of the
        papers, which keeps the null distribution of ``t`` near a chi2; measured: ndof 9.5 for the
        1-4-1 network at clip 9, 800 steps and 500 data events, docs/guide/training.md).
    steps : int
        Full-batch Adam steps.
    lr : float
        Adam learning rate.
    """

    hidden: tuple[int, ...] = (4,)
    clip: float = 9.0
    steps: int = 2000
    lr: float = 0.05

    def __post_init__(self) -> None:
        if any(h < 1 for h in self.hidden):
            raise TrainingError(f"NPLMConfig.hidden must be positive layer sizes, got {self.hidden}")
        if not self.clip > 0:
            raise TrainingError(f"NPLMConfig.clip must be > 0, got {self.clip}")
        if self.steps < 1 or not self.lr > 0:
            raise TrainingError(f"NPLMConfig needs steps >= 1 and lr > 0, got {self.steps} and {self.lr}")


@dataclass(frozen=True)
class NPLMResult:
    """The test on one data sample.

    Attributes
    ----------
    t : float
        ``-2 min L`` on the data.
    t_null : numpy.ndarray
        ``t`` of each background-only pseudo-experiment.
    p : ToyPValue
        ``t`` against ``t_null`` (empirical p-value, the chi2 fitted to the null, Z).
    n_data : int
        Data events.
    n_expected : float
        Expected yield (the reference weights' sum).
    """

    t: float
    t_null: np.ndarray
    p: ToyPValue
    n_data: int
    n_expected: float


def nplm_loss(f_ref: torch.Tensor, w_ref: torch.Tensor, f_data: torch.Tensor, data_mask: torch.Tensor) -> torch.Tensor:
    """``L`` of each sample k: ``sum_R w (exp f - 1) - sum_D f`` (shapes (k, N_R), (N_R,), (k, N_D), (k, N_D))."""
    return (w_ref * torch.expm1(f_ref)).sum(dim=1) - (f_data * data_mask).sum(dim=1)


class _Networks:
    """``k`` independent fully connected networks ``d -> hidden... -> 1`` evaluated as one batch."""

    def __init__(self, k: int, d: int, hidden: Sequence[int], gen: torch.Generator) -> None:
        sizes = [d, *hidden, 1]
        self.weights: list[torch.Tensor] = []
        self.biases: list[torch.Tensor] = []
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            last = i == len(sizes) - 2
            bound = 1.0 / math.sqrt(a)  # torch.nn.Linear's default initialisation range
            w = torch.zeros(k, a, b) if last else (torch.rand(k, a, b, generator=gen) * 2 - 1) * bound
            bias = torch.zeros(k, b) if last else (torch.rand(k, b, generator=gen) * 2 - 1) * bound
            self.weights.append(w.requires_grad_())
            self.biases.append(bias.requires_grad_())

    def parameters(self) -> list[torch.Tensor]:
        return [*self.weights, *self.biases]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``f`` of every network on ``x``: (N, d) shared by all, or (k, N, d) one sample each -> (k, N)."""
        h = x
        n_layers = len(self.weights)
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.einsum("nd,kdh->knh", h, w) if h.dim() == 2 else torch.bmm(h, w)
            h = h + b[:, None, :]
            if i < n_layers - 1:
                h = torch.sigmoid(h)
        return h[..., 0]

    @torch.no_grad()
    def clip_(self, clip: float) -> None:
        for p in self.parameters():
            p.clamp_(-clip, clip)


def _standardise(x_ref: np.ndarray, w_ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and standard deviation of the reference per feature (1 for a constant one)."""
    mean = np.average(x_ref, axis=0, weights=w_ref)
    std = np.sqrt(np.average((x_ref - mean) ** 2, axis=0, weights=w_ref))
    return mean, np.where(std > 0, std, 1.0)


def _check_inputs(x_ref: np.ndarray, w_ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x_ref = np.asarray(x_ref, dtype=np.float64)
    if x_ref.ndim == 1:
        x_ref = x_ref[:, None]
    w_ref = np.asarray(w_ref, dtype=np.float64)
    if x_ref.ndim != 2 or len(x_ref) == 0:
        raise TrainingError(f"the reference must be a non-empty (N, d) array, got shape {x_ref.shape}")
    if w_ref.shape != (len(x_ref),):
        raise TrainingError(f"w_ref must have one weight per reference event ({len(x_ref)}), got shape {w_ref.shape}")
    bad = ~np.isfinite(x_ref).all(axis=1) | ~np.isfinite(w_ref)
    if bad.any():
        raise TrainingError(f"{int(bad.sum())} reference events have a non-finite feature or weight")
    if (w_ref < 0).any() or w_ref.sum() <= 0:
        raise TrainingError("the reference weights must be >= 0 with a positive sum")
    return x_ref, w_ref


def nplm_statistics(
    samples: Sequence[np.ndarray], x_ref: np.ndarray, w_ref: np.ndarray, *, config: NPLMConfig, seed: int
) -> np.ndarray:
    """``t = -2 min L`` of each data sample against the reference, all samples trained as one batch.

    ``samples``: data samples, each (N_k, d) (or (N_k,) for one feature); ``w_ref`` sums to the expected
    data yield. Returns one ``t`` per sample.
    """
    x_ref, w_ref = _check_inputs(x_ref, w_ref)
    d = x_ref.shape[1]
    data = [np.asarray(s, dtype=np.float64).reshape(len(s), -1) for s in samples]
    for i, s in enumerate(data):
        if s.shape[1] != d or not np.isfinite(s).all():
            raise TrainingError(f"data sample {i}: needs finite (N, {d}) features, got shape {s.shape}")
    mean, std = _standardise(x_ref, w_ref)
    n_max = max((len(s) for s in data), default=0)
    k = len(data)
    xd = np.zeros((k, max(n_max, 1), d))
    mask = np.zeros((k, max(n_max, 1)))
    for i, s in enumerate(data):
        xd[i, : len(s)] = (s - mean) / std
        mask[i, : len(s)] = 1.0
    xr_t = torch.as_tensor((x_ref - mean) / std, dtype=torch.float32)
    wr_t = torch.as_tensor(w_ref, dtype=torch.float32)
    xd_t, mask_t = torch.as_tensor(xd, dtype=torch.float32), torch.as_tensor(mask, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    nets = _Networks(k, d, config.hidden, gen)
    opt = torch.optim.Adam(nets.parameters(), lr=config.lr)
    threads = torch.get_num_threads()
    # networks of a few units: one thread is faster than several (measured: 2 threads spin on a loaded machine)
    torch.set_num_threads(1)
    try:
        for _ in range(config.steps):
            opt.zero_grad()
            loss = nplm_loss(nets(xr_t), wr_t, nets(xd_t), mask_t)
            loss.sum().backward()
            opt.step()
            nets.clip_(config.clip)
        with torch.no_grad():
            final = nplm_loss(nets(xr_t), wr_t, nets(xd_t), mask_t)
    finally:
        torch.set_num_threads(threads)
    return (-2.0 * final).double().numpy()


def reference_toys(
    x_ref: np.ndarray, w_ref: np.ndarray, *, n_expected: float, n_toys: int, seed: int
) -> list[np.ndarray]:
    """Background-only data samples: ``Poisson(n_expected)`` reference events each, drawn by weight."""
    x_ref, w_ref = _check_inputs(x_ref, w_ref)
    rng = np.random.default_rng(seed)
    prob = w_ref / w_ref.sum()
    return [x_ref[rng.choice(len(x_ref), size=rng.poisson(n_expected), p=prob)] for _ in range(n_toys)]


def nplm_null(
    x_ref: np.ndarray, w_ref: np.ndarray, *, n_toys: int, config: NPLMConfig = NPLMConfig(), seed: int = 0
) -> np.ndarray:
    """``t`` of ``n_toys`` background-only pseudo-experiments (the null distribution)."""
    toys = reference_toys(x_ref, w_ref, n_expected=float(np.sum(w_ref)), n_toys=n_toys, seed=seed)
    return nplm_statistics(toys, x_ref, w_ref, config=config, seed=seed + 1)


def nplm_test(
    x_data: np.ndarray,
    x_ref: np.ndarray,
    w_ref: np.ndarray,
    *,
    n_toys: int = 200,
    config: NPLMConfig = NPLMConfig(),
    seed: int = 0,
) -> NPLMResult:
    """The NPLM test of ``x_data`` against the reference, with ``n_toys`` pseudo-experiments.

    The data and the pseudo-experiments train in one batch (the same steps, the same optimiser
    settings), so that the observation and its null distribution come from one procedure.
    """
    x_ref, w_ref = _check_inputs(x_ref, w_ref)
    n_expected = float(w_ref.sum())
    toys = reference_toys(x_ref, w_ref, n_expected=n_expected, n_toys=n_toys, seed=seed)
    t = nplm_statistics([np.asarray(x_data), *toys], x_ref, w_ref, config=config, seed=seed + 1)
    log.debug("NPLM: t = %.3g on %d data events, %d pseudo-experiments", t[0], len(x_data), n_toys)
    return NPLMResult(
        t=float(t[0]), t_null=t[1:], p=toy_p_value(float(t[0]), t[1:]), n_data=len(x_data), n_expected=n_expected
    )
