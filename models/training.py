"""Generic mini-batch training loop: validation split, early stopping, LR on plateau, resumable checkpoints."""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from cms_anomaly.core.atomic import atomic_output
from cms_anomaly.models.base import AnomalyModel, Hyper
from cms_anomaly.models.errors import TrainingError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Training run settings (defaults come from the model's :class:`Hyper`).

    Attributes
    ----------
    hyper : Hyper
        Batch size, learning rate, early stopping and plateau settings.
    epochs : int
        Maximum number of epochs.
    seed : int
        Seed of the batch order, dropout and latent sampling.
    device : str
        ``cpu``, ``cuda`` or ``auto`` (CUDA when available).
    max_steps_per_epoch : int, optional
        Cap on optimisation steps per epoch (quick tests and benchmarks).
    threads : int, optional
        torch intra-op threads (None: leave torch's default).
    progress : bool
        Show a tqdm progress bar per epoch.
    """

    hyper: Hyper
    epochs: int = 100
    seed: int = 1
    device: str = "auto"
    max_steps_per_epoch: int | None = None
    threads: int | None = None
    progress: bool = True


@dataclass
class TrainResult:
    """What :func:`train` returns: per-epoch history and the best validation loss."""

    history: list[dict] = field(default_factory=list)
    best_val_loss: float = math.inf
    best_epoch: int = -1
    epochs_run: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    events_per_second: float = 0.0
    device: str = "cpu"


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; otherwise ``torch.device(device)``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"device {device!r} requested but CUDA is not available")
    return dev


def atomic_torch_save(obj: object, path: Path) -> None:
    """``torch.save`` to ``path.tmp-<pid>`` then ``os.replace`` onto ``path``."""
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)


def _draw_probabilities(weights: np.ndarray, n: int, name: str) -> torch.Tensor:
    """Weights as the drawing probabilities of :func:`torch.multinomial` (checked: n, finite, >= 0)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise TrainingError(f"{name}: {w.shape[0] if w.ndim else 0} weights for {n} events")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
        raise TrainingError(f"{name}: weights must be finite, non-negative and not all zero")
    if n > 2**24:
        raise TrainingError(f"{name}: weighted drawing supports at most 2^24 events, got {n}")
    return torch.as_tensor(w / w.sum())


def _batched_validation(model: AnomalyModel, x: torch.Tensor, batch_size: int) -> float:
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size]
            if len(xb) < 2:  # a batch-level term (DisCo) is undefined on one event
                continue
            total += float(model.validation_loss(xb)) * len(xb)
            n += len(xb)
    return total / max(n, 1)


def _validation_batch_size(model: AnomalyModel, hyper: Hyper) -> int:
    """The training batch size for a loss with a batch-level term (the DisCo distance correlation of a
    batch, which the validation must estimate the same way: over the whole validation set one extreme
    event sets it to ~1); else at least 4096 (per-event losses: the mean does not depend on it)."""
    return hyper.batch_size if model.batch_level_loss else max(hyper.batch_size, 4096)


#: what a checkpoint of :func:`train` holds (``kind`` since the model kind is recorded)
_CHECKPOINT_KEYS = ("model", "optimizers", "schedulers", "batch_rng", "torch_rng", "best_state", "since_best", "result")


def _checkpoint_mismatch(state: Any, model: AnomalyModel, n_optimizers: int) -> str | None:
    """What makes ``state`` a checkpoint of another model than ``model``, ``None`` if it fits."""
    if not isinstance(state, dict) or any(k not in state for k in _CHECKPOINT_KEYS):
        have = sorted(state) if isinstance(state, dict) else type(state).__name__
        return f"not a training checkpoint (has {have})"
    if state.get("kind", model.kind) != model.kind:
        return f"it is a checkpoint of a {state['kind']!r} model, this is a {model.kind!r} model"
    saved, want = state["model"], model.state_dict()
    missing = [k for k in want if k not in saved]
    extra = [k for k in saved if k not in want]
    shapes = [
        f"{k} {tuple(saved[k].shape)} != {tuple(v.shape)}"
        for k, v in want.items()
        if k in saved and saved[k].shape != v.shape
    ]
    if missing or extra or shapes:
        parts = [f"missing {missing[:3]}" if missing else "", f"unexpected {extra[:3]}" if extra else ""]
        parts.append(f"shapes {'; '.join(shapes[:3])}" if shapes else "")
        return f"its weights do not fit this {model.kind!r} model ({', '.join(p for p in parts if p)})"
    if len(state["optimizers"]) != n_optimizers:
        return f"it has {len(state['optimizers'])} optimizer(s), this {model.kind!r} model {n_optimizers}"
    return None


def _resume(
    ckpt_path: Path, *, model: AnomalyModel, optimizers: list[Any], schedulers: list[Any], gen: Any, device: Any
) -> tuple[dict[str, Any], int, TrainResult]:
    """Restore model, optimizers, schedulers and random state from a checkpoint of :func:`train`.

    Returns
    -------
    tuple
        (best state dict, epochs since the best, the result so far)

    Raises
    ------
    TrainingError
        One line naming the checkpoint and what does not match (another model kind, other weights).
    """
    # weights_only: a checkpoint is user-given input and must not run code when loaded
    try:
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
    except Exception as err:
        raise TrainingError(
            f"{ckpt_path}: cannot resume from this checkpoint "
            f"({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''})"
        ) from err
    problem = _checkpoint_mismatch(state, model, len(optimizers))
    if problem is None:
        try:
            model.load_state_dict(state["model"])
            for opt, s in zip(optimizers, state["optimizers"], strict=True):
                opt.load_state_dict(s)
            for sch, s in zip(schedulers, state["schedulers"], strict=True):
                sch.load_state_dict(s)
            gen.set_state(state["batch_rng"])
            torch.set_rng_state(state["torch_rng"])
            return state["best_state"], state["since_best"], TrainResult(**state["result"])
        except (RuntimeError, ValueError, TypeError, KeyError) as err:
            problem = f"{type(err).__name__}: {str(err).strip().splitlines()[0][:200] if str(err).strip() else ''}"
    raise TrainingError(f"{ckpt_path}: cannot resume: {problem}; delete it or train without --resume")


def train(
    model: AnomalyModel,
    x_train: np.ndarray,
    x_val: np.ndarray,
    *,
    config: TrainConfig,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    w_train: np.ndarray | None = None,
    w_val: np.ndarray | None = None,
) -> TrainResult:
    """Train ``model`` in place on raw features; the best-validation weights are restored at the end.

    Parameters
    ----------
    model : AnomalyModel
        Model with fitted preprocessing.
    x_train, x_val : numpy.ndarray
        Raw float32 features (N, d) for training and for the validation loss.
    w_train, w_val : numpy.ndarray, optional
        Non-negative event weights (a tail-weighted sample's generator weights). Every epoch then
        draws its N training events with replacement in proportion to ``w_train`` (weight-aware
        sampling: every model's loss stays an unweighted mean), and the validation loss is computed
        on one seeded weighted draw of the validation events. Without them, the epoch is a
        permutation of the events (the unweighted case, unchanged).
    config : TrainConfig
        Settings.
    checkpoint : str or Path, optional
        File written atomically after every epoch (model, optimizers, scheduler,
        RNG state, history, best weights).
    resume : bool
        Continue from ``checkpoint`` if it exists.

    Returns
    -------
    TrainResult
    """
    if len(x_train) == 0 or len(x_val) == 0:
        raise TrainingError(f"need training and validation events, got {len(x_train)} and {len(x_val)}")
    hyper = config.hyper
    device = resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    model.to(device)
    xt, xv, draw = _device_inputs(x_train, x_val, w_train, w_val, seed=config.seed, device=device)
    optimizers = model.configure_optimizers(lr=hyper.lr, betas=hyper.betas)
    schedulers = _plateau_schedulers(optimizers, hyper)
    result = TrainResult(device=str(device))
    best_state = copy.deepcopy(model.state_dict())
    ckpt_path = Path(checkpoint) if checkpoint is not None else None

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(config.seed)
        gen = torch.Generator(device="cpu").manual_seed(config.seed)
        state = _State(optimizers, schedulers, gen, best_state, 0, result)
        if resume and ckpt_path is not None and ckpt_path.exists():
            _resume_state(state, ckpt_path, model=model, device=device)
        start_epoch = state.result.epochs_run
        t0 = time.perf_counter()
        n_seen = 0
        for epoch in range(start_epoch, config.epochs):
            if state.result.stopped_early:
                break
            model.train()
            order = _epoch_order(draw, len(xt), gen, device)
            running, n_steps, seen = _run_epoch(model, xt, order, optimizers, config=config, epoch=epoch)
            n_seen += seen
            val = _batched_validation(model, xv, _validation_batch_size(model, hyper))
            _close_epoch(model, state, val, hyper=hyper, epoch=epoch, train_loss=running / max(n_steps, 1))
            if ckpt_path is not None:
                _save_checkpoint(ckpt_path, model, state)
        elapsed = time.perf_counter() - t0
    result = state.result
    result.seconds += elapsed
    result.events_per_second = n_seen / elapsed if elapsed > 0 else 0.0
    model.load_state_dict(state.best_state)
    model.cpu().eval()
    return result


def _resume_state(state: _State, ckpt_path: Path, *, model: AnomalyModel, device: torch.device) -> None:
    """Restore ``state`` and the model from the checkpoint of an earlier :func:`train`."""
    state.best_state, state.since_best, state.result = _resume(
        ckpt_path, model=model, optimizers=state.optimizers, schedulers=state.schedulers, gen=state.gen, device=device
    )
    log.info(
        "resumed from %s at epoch %d (best val %.5g)", ckpt_path, state.result.epochs_run, state.result.best_val_loss
    )


@dataclass
class _State:
    """What a checkpoint of :func:`train` holds besides the model: optimizers, schedulers, the batch RNG,
    the best weights, the epochs since the best and the result so far."""

    optimizers: list[Any]
    schedulers: list[Any]
    gen: torch.Generator
    best_state: dict[str, Any]
    since_best: int
    result: TrainResult


def _device_inputs(
    x_train: np.ndarray,
    x_val: np.ndarray,
    w_train: np.ndarray | None,
    w_val: np.ndarray | None,
    *,
    seed: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Training and validation tensors on ``device`` (the validation one weighted-drawn when ``w_val`` is given),
    and the training events' drawing probabilities (None: unweighted)."""
    xt = torch.as_tensor(np.ascontiguousarray(x_train, np.float32), device=device)
    xv = torch.as_tensor(np.ascontiguousarray(x_val, np.float32), device=device)
    draw = None if w_train is None else _draw_probabilities(w_train, len(xt), "w_train")
    if w_val is not None:
        # the validation loss of the weighted sample: one fixed weighted draw (its own seed stream)
        picks = torch.multinomial(
            _draw_probabilities(w_val, len(xv), "w_val"),
            len(xv),
            replacement=True,
            generator=torch.Generator().manual_seed(seed + 1),
        )
        xv = xv[picks.to(device)]
    return xt, xv, draw


def _plateau_schedulers(optimizers: list[Any], hyper: Hyper) -> list[Any]:
    """One learning-rate-on-plateau scheduler per optimizer (none when ``hyper.lr_patience`` is None)."""
    if hyper.lr_patience is None:
        return []
    return [
        torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt,
            mode="min",
            factor=hyper.lr_factor,
            patience=hyper.lr_patience,
            threshold=hyper.lr_min_delta,
            threshold_mode="abs",
        )
        for opt in optimizers
    ]


def _epoch_order(draw: torch.Tensor | None, n: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """The epoch's event order: a permutation, or ``n`` weighted draws with replacement."""
    if draw is None:
        return torch.randperm(n, generator=gen).to(device)
    return torch.multinomial(draw, n, replacement=True, generator=gen).to(device)


def _close_epoch(
    model: AnomalyModel, state: _State, val: float, *, hyper: Hyper, epoch: int, train_loss: float
) -> None:
    """After an epoch with validation loss ``val``: LR schedule, history, best weights and early stopping."""
    result = state.result
    if not math.isfinite(val):
        raise TrainingError(f"{model.kind}: non-finite validation loss at epoch {epoch + 1}")
    for sch in state.schedulers:
        sch.step(val)
    lr = state.optimizers[0].param_groups[0]["lr"]
    result.history.append({"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val, "lr": lr})
    if val < result.best_val_loss - hyper.min_delta:
        result.best_val_loss, result.best_epoch = val, epoch + 1
        state.best_state = copy.deepcopy(model.state_dict())
        state.since_best = 0
    else:
        state.since_best += 1
    result.epochs_run = epoch + 1
    if state.since_best >= hyper.patience:
        result.stopped_early = True
        log.info("%s: early stop at epoch %d (best %d)", model.kind, epoch + 1, result.best_epoch)
    log.info(
        "%s epoch %d: train %.5g val %.5g lr %.2g", model.kind, epoch + 1, result.history[-1]["train_loss"], val, lr
    )


def _run_epoch(
    model: AnomalyModel,
    xt: torch.Tensor,
    order: torch.Tensor,
    optimizers: list[Any],
    *,
    config: TrainConfig,
    epoch: int,
) -> tuple[float, int, int]:
    """The optimisation steps of one epoch over ``order``; returns (summed loss, steps, events seen)."""
    from tqdm.auto import tqdm

    hyper = config.hyper
    n_steps = math.ceil(len(xt) / hyper.batch_size)
    if config.max_steps_per_epoch is not None:
        n_steps = min(n_steps, config.max_steps_per_epoch)
    running = 0.0
    n_seen = 0
    bar = tqdm(
        range(n_steps),
        desc=f"{model.kind} epoch {epoch + 1}/{config.epochs}",
        leave=False,
        disable=not config.progress,
        unit="batch",
    )
    for step in bar:
        idx = order[step * hyper.batch_size : (step + 1) * hyper.batch_size]
        if len(idx) < 2:  # BatchNorm / DisCo need >= 2 events
            continue
        loss = model.train_step(xt[idx], optimizers)
        if not math.isfinite(loss):
            raise TrainingError(f"{model.kind}: non-finite training loss at epoch {epoch + 1} step {step}")
        running += loss
        n_seen += len(idx)
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss:.4g}")
    return running, n_steps, n_seen


def _save_checkpoint(path: Path, model: AnomalyModel, state: _State) -> None:
    """Write the training state after an epoch (:data:`_CHECKPOINT_KEYS` and the model kind) atomically."""
    atomic_torch_save(
        {
            "kind": model.kind,
            "model": model.state_dict(),
            "optimizers": [o.state_dict() for o in state.optimizers],
            "schedulers": [s.state_dict() for s in state.schedulers],
            "batch_rng": state.gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "best_state": state.best_state,
            "since_best": state.since_best,
            # plain Python numbers only, so that the checkpoint loads with weights_only=True
            "result": json.loads(json.dumps(asdict(state.result), default=float)),
        },
        path,
    )
