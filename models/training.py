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


#: the most evaluation points of a default training run (the model card keeps every one)
MAX_EVALUATIONS = 250


@dataclass(frozen=True)
class TrainConfig:
    """Training run settings (defaults come from the model's :class:`Hyper`).

    Attributes
    ----------
    hyper : Hyper
        Batch size, learning rate, weight averaging, early stopping and plateau settings.
    epochs : int
        Budget in epochs (passes over the training events), used when ``max_steps`` is None.
    max_steps : int, optional
        Budget in optimiser steps: exactly this many steps are run (fewer only on an early stop),
        the epochs continuing as long as it takes.
    eval_every : int, optional
        Optimiser steps between two evaluations (validation loss, selection criterion, history point,
        checkpoint). Default: one epoch under an epoch budget (every k-th epoch beyond
        :data:`MAX_EVALUATIONS` epochs), ``max_steps / MAX_EVALUATIONS`` under a step budget. The
        last step is always evaluated.
    seed : int
        Seed of the batch order, dropout and latent sampling.
    device : str
        ``cpu``, ``cuda`` or ``auto`` (CUDA when available).
    max_steps_per_epoch : int, optional
        Cap on optimisation steps per epoch (quick tests and benchmarks).
    threads : int, optional
        torch intra-op threads (None: leave torch's default).
    progress : bool
        A tqdm progress bar over the steps (the evaluation lines are then logged at DEBUG only).
    """

    hyper: Hyper
    epochs: int = 100
    max_steps: int | None = None
    eval_every: int | None = None
    seed: int = 1
    device: str = "auto"
    max_steps_per_epoch: int | None = None
    threads: int | None = None
    progress: bool = True


@dataclass
class TrainResult:
    """What :func:`train` returns: the history per evaluation point and the selected (best) one.

    ``history`` entries are ``{"step", "epoch", "train_loss", "val_loss", "criterion", "lr"}``: the
    optimiser steps so far, the epochs they make (a float), the mean training loss of the steps since
    the previous point, the validation loss and the selection criterion of the evaluated weights
    (the averaged ones when the model averages its weights; ``criterion`` None when the validation
    loss is the criterion) and the learning rate. ``best_val_loss`` is the selection value (the
    criterion, else the validation loss) at the selected point ``best_step``.
    """

    history: list[dict] = field(default_factory=list)
    best_val_loss: float = math.inf
    best_epoch: float = -1.0
    best_step: int = -1
    epochs_run: float = 0.0
    steps_run: int = 0
    steps_per_epoch: int = 0
    eval_every: int = 0
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


def _batched_validation(model: AnomalyModel, x: torch.Tensor, batch_size: int) -> tuple[float, float | None]:
    """The validation loss and the selection criterion (None: the model has none) of ``model`` on ``x``."""
    model.eval()
    total, total_crit, n = 0.0, 0.0, 0
    has_crit = True
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size]
            if len(xb) < 2:  # a batch-level term (DisCo) is undefined on one event
                continue
            total += float(model.validation_loss(xb)) * len(xb)
            crit = model.selection_criterion(xb)
            has_crit = has_crit and crit is not None
            total_crit += float(crit) * len(xb) if crit is not None else 0.0
            n += len(xb)
    return total / max(n, 1), (total_crit / max(n, 1) if has_crit else None)


def _validation_batch_size(model: AnomalyModel, hyper: Hyper) -> int:
    """The training batch size for a loss with a batch-level term (the DisCo distance correlation of a
    batch, which the validation must estimate the same way: over the whole validation set one extreme
    event sets it to ~1); else at least 4096 (per-event losses: the mean does not depend on it)."""
    return hyper.batch_size if model.batch_level_loss else max(hyper.batch_size, 4096)


class WeightAverage:
    """Exponential moving average of a model's parameters, updated after every optimiser step.

    ALAD's reference implementation (Knapp et al., github oliverkn/alad-for-lhc, after Zenati et al.)
    scores events with TensorFlow's ``ExponentialMovingAverage`` of the weights (decay 0.999). The
    decay of update ``t`` is ``min(decay, (1 + t) / (10 + t))`` (that class's ``num_updates`` form),
    so that an average taken early in a run is not dominated by the random initial weights. Buffers
    (batch-norm statistics, spectral-norm singular vectors) are those of the trained model, copied
    when the average is read (:meth:`synced`).
    """

    def __init__(self, model: AnomalyModel, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise TrainingError(f"{model.kind}: weight-average decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        self.model.requires_grad_(False)
        self._averaged: list[torch.Tensor] = list(self.model.parameters())

    def update(self, model: AnomalyModel) -> None:
        """Fold the current parameters of ``model`` into the average."""
        self.updates += 1
        decay = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        with torch.no_grad():
            torch._foreach_lerp_(self._averaged, [p.detach() for p in model.parameters()], 1.0 - decay)

    def synced(self, model: AnomalyModel) -> AnomalyModel:
        """The averaged model, with the buffers of ``model``."""
        with torch.no_grad():
            for mine, theirs in zip(self.model.buffers(), model.buffers(), strict=True):
                mine.copy_(theirs)
        return self.model


#: what a checkpoint of :func:`train` holds (``kind`` since the model kind is recorded)
_CHECKPOINT_KEYS = (
    "model",
    "optimizers",
    "schedulers",
    "batch_rng",
    "torch_rng",
    "best_state",
    "since_best",
    "result",
    "order",
    "position",
    "average",
    "average_updates",
)


def _checkpoint_mismatch(state: Any, model: AnomalyModel, n_optimizers: int) -> str | None:
    """What makes ``state`` a checkpoint of another model than ``model``, ``None`` if it fits."""
    if not isinstance(state, dict) or any(k not in state for k in _CHECKPOINT_KEYS):
        have = sorted(state) if isinstance(state, dict) else type(state).__name__
        return f"not a training checkpoint of this version (has {have})"
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


def _resume(ckpt_path: Path, *, model: AnomalyModel, state: _State, device: Any) -> None:
    """Restore the model and ``state`` (optimizers, schedulers, random state, batch order, weight
    average, best weights, result so far) from a checkpoint of :func:`train`.

    Raises
    ------
    TrainingError
        One line naming the checkpoint and what does not match (another model kind, other weights).
    """
    # weights_only: a checkpoint is user-given input and must not run code when loaded
    try:
        saved = torch.load(ckpt_path, map_location=device, weights_only=True)
    except Exception as err:
        raise TrainingError(
            f"{ckpt_path}: cannot resume from this checkpoint "
            f"({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''})"
        ) from err
    problem = _checkpoint_mismatch(saved, model, len(state.optimizers))
    if problem is None and (saved["average"] is None) != (state.average is None):
        problem = "it was trained with" + ("out" if saved["average"] is None else "") + " weight averaging"
    if problem is None:
        try:
            model.load_state_dict(saved["model"])
            for opt, s in zip(state.optimizers, saved["optimizers"], strict=True):
                opt.load_state_dict(s)
            for sch, s in zip(state.schedulers, saved["schedulers"], strict=True):
                sch.load_state_dict(s)
            state.gen.set_state(saved["batch_rng"])
            torch.set_rng_state(saved["torch_rng"])
            if state.average is not None:
                state.average.model.load_state_dict(saved["average"])
                state.average.updates = int(saved["average_updates"])
            state.best_state, state.since_best = saved["best_state"], int(saved["since_best"])
            state.order, state.position = saved["order"], int(saved["position"])
            state.result = TrainResult(**saved["result"])
            return
        except (RuntimeError, ValueError, TypeError, KeyError) as err:
            problem = f"{type(err).__name__}: {str(err).strip().splitlines()[0][:200] if str(err).strip() else ''}"
    raise TrainingError(f"{ckpt_path}: cannot resume: {problem}; delete it or train without --resume")


@dataclass(frozen=True)
class _Plan:
    """A run's optimiser steps per epoch, its step budget and its evaluation interval."""

    steps_per_epoch: int
    total: int
    eval_every: int


def _plan(config: TrainConfig, n_train: int) -> _Plan:
    """The steps of one epoch (the last batch dropped when it would hold one event: BatchNorm and DisCo
    need two), the budget (``max_steps``, else ``epochs`` epochs) and the evaluation interval."""
    bs = config.hyper.batch_size
    per_epoch = n_train // bs + (1 if n_train % bs >= 2 else 0)
    if per_epoch == 0:
        raise TrainingError(f"need at least 2 training events, got {n_train}")
    if config.max_steps_per_epoch is not None:
        per_epoch = min(per_epoch, config.max_steps_per_epoch)
    for name in ("max_steps", "eval_every", "max_steps_per_epoch"):
        if getattr(config, name) is not None and getattr(config, name) < 1:
            raise TrainingError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.max_steps is not None:
        total = config.max_steps
        every = config.eval_every or math.ceil(total / MAX_EVALUATIONS)
    else:
        total = config.epochs * per_epoch
        every = config.eval_every or per_epoch * math.ceil(config.epochs / MAX_EVALUATIONS)
    return _Plan(steps_per_epoch=per_epoch, total=total, eval_every=every)


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
    """Train ``model`` in place on raw features; the selected weights are loaded into it at the end.

    The run makes the budget's optimiser steps (``config.max_steps``, else ``config.epochs`` epochs)
    and evaluates every ``eval_every`` steps: the validation loss and the model's selection criterion
    (:meth:`~cms_anomaly.models.base.AnomalyModel.selection_criterion`; the validation loss when it
    has none) of the evaluated weights, which are the exponential moving average of the weights
    (:class:`WeightAverage`) for a model whose :class:`Hyper` has ``ema_decay``, else the weights
    themselves. The weights of the evaluation with the lowest criterion are selected; ``patience``
    evaluations without improvement stop the run early.

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
        permutation of the events.
    config : TrainConfig
        Settings.
    checkpoint : str or Path, optional
        File written atomically after every evaluation (model, optimizers, schedulers, RNG state,
        the epoch's batch order, weight average, history, selected weights).
    resume : bool
        Continue from ``checkpoint`` if it exists.

    Returns
    -------
    TrainResult
    """
    if len(x_train) == 0 or len(x_val) == 0:
        raise TrainingError(f"need training and validation events, got {len(x_train)} and {len(x_val)}")
    hyper = config.hyper
    plan = _plan(config, len(x_train))
    device = resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    model.to(device)
    xt, xv, draw = _device_inputs(x_train, x_val, w_train, w_val, seed=config.seed, device=device)
    optimizers = model.configure_optimizers(lr=hyper.lr, betas=hyper.betas)
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(config.seed)
        state = _initial_state(model, optimizers, config=config, device=device)
        if resume and ckpt_path is not None and ckpt_path.exists():
            _resume(ckpt_path, model=model, state=state, device=device)
            log.info("resumed from %s at step %d", ckpt_path, state.result.steps_run)
        state.result.steps_per_epoch, state.result.eval_every = plan.steps_per_epoch, plan.eval_every
        t0 = time.perf_counter()
        n_seen = _run_steps(model, xt, xv, draw, state, config=config, plan=plan, ckpt_path=ckpt_path)
        elapsed = time.perf_counter() - t0
    r = state.result
    r.seconds, r.events_per_second = r.seconds + elapsed, (n_seen / elapsed if elapsed > 0 else 0.0)
    log.info(
        "%s: %d steps in %.1f s, selected step %d (%.5g)",
        model.kind,
        r.steps_run,
        r.seconds,
        r.best_step,
        r.best_val_loss,
    )
    model.load_state_dict(state.best_state)
    model.cpu().eval()
    return r


def _initial_state(model: AnomalyModel, optimizers: list[Any], *, config: TrainConfig, device: torch.device) -> _State:
    """The state of a run before its first step (schedulers, seeded batch RNG, weight average)."""
    hyper = config.hyper
    return _State(
        optimizers=optimizers,
        schedulers=_plateau_schedulers(optimizers, hyper),
        gen=torch.Generator(device="cpu").manual_seed(config.seed),
        best_state=copy.deepcopy(model.state_dict()),
        result=TrainResult(device=str(device)),
        average=WeightAverage(model, hyper.ema_decay) if hyper.ema_decay is not None else None,
    )


@dataclass
class _State:
    """What a checkpoint of :func:`train` holds besides the model: optimizers, schedulers, the batch RNG,
    the current epoch's batch order and the next batch in it, the weight average, the selected weights,
    the evaluations since the selected one and the result so far."""

    optimizers: list[Any]
    schedulers: list[Any]
    gen: torch.Generator
    best_state: dict[str, Any]
    result: TrainResult
    average: WeightAverage | None = None
    since_best: int = 0
    order: torch.Tensor | None = None
    position: int = 0


def _run_steps(
    model: AnomalyModel,
    xt: torch.Tensor,
    xv: torch.Tensor,
    draw: torch.Tensor | None,
    state: _State,
    *,
    config: TrainConfig,
    plan: _Plan,
    ckpt_path: Path | None,
) -> int:
    """The optimiser steps of the budget left, evaluating every ``plan.eval_every``; returns the events seen."""
    from tqdm.auto import tqdm

    bs = config.hyper.batch_size
    result = state.result
    val_batch = _validation_batch_size(model, config.hyper)
    running, n_run, n_seen = 0.0, 0, 0
    model.train()
    with tqdm(
        total=plan.total, initial=result.steps_run, desc=model.kind, disable=not config.progress, unit="step"
    ) as bar:
        while result.steps_run < plan.total and not result.stopped_early:
            if state.order is None or state.position >= plan.steps_per_epoch:
                state.order, state.position = _epoch_order(draw, len(xt), state.gen, xt.device), 0
            idx = state.order[state.position * bs : (state.position + 1) * bs]
            state.position += 1
            loss = model.train_step(xt[idx], state.optimizers)
            result.steps_run += 1
            if not math.isfinite(loss):
                raise TrainingError(f"{model.kind}: non-finite training loss at step {result.steps_run}")
            if state.average is not None:
                state.average.update(model)
            running, n_run, n_seen = running + loss, n_run + 1, n_seen + len(idx)
            bar.update(1)
            if result.steps_run % plan.eval_every == 0 or result.steps_run == plan.total:
                _evaluate(model, xv, state, config=config, plan=plan, train_loss=running / n_run, val_batch=val_batch)
                running, n_run = 0.0, 0
                bar.set_postfix(best=f"{result.best_val_loss:.4g}", at=result.best_step)
                if ckpt_path is not None:
                    _save_checkpoint(ckpt_path, model, state)
                model.train()
    return n_seen


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


def _evaluate(
    model: AnomalyModel,
    xv: torch.Tensor,
    state: _State,
    *,
    config: TrainConfig,
    plan: _Plan,
    train_loss: float,
    val_batch: int,
) -> None:
    """One evaluation point: validation loss and criterion of the evaluated weights, LR schedule,
    history, selection and early stopping."""
    result, hyper = state.result, config.hyper
    evaluated = state.average.synced(model) if state.average is not None else model
    val, crit = _batched_validation(evaluated, xv, val_batch)
    step = result.steps_run
    epoch = round(step / plan.steps_per_epoch, 4)
    select = crit if crit is not None else val
    if not (math.isfinite(val) and math.isfinite(select)):
        raise TrainingError(f"{model.kind}: non-finite validation loss at step {step} (epoch {epoch:g})")
    for sch in state.schedulers:
        sch.step(select)
    lr = state.optimizers[0].param_groups[0]["lr"]
    result.history.append(
        {"step": step, "epoch": epoch, "train_loss": train_loss, "val_loss": val, "criterion": crit, "lr": lr}
    )
    result.epochs_run = epoch
    if select < result.best_val_loss - hyper.min_delta:
        result.best_val_loss, result.best_step, result.best_epoch = select, step, epoch
        state.best_state = copy.deepcopy(evaluated.state_dict())
        state.since_best = 0
    else:
        state.since_best += 1
    if state.since_best >= hyper.patience:
        result.stopped_early = True
        log.info("%s: early stop at step %d (selected step %d)", model.kind, step, result.best_step)
    log.debug(
        "%s step %d (epoch %g): train %.5g val %.5g criterion %s lr %.2g",
        model.kind,
        step,
        epoch,
        train_loss,
        val,
        "-" if crit is None else f"{crit:.5g}",
        lr,
    )


def _save_checkpoint(path: Path, model: AnomalyModel, state: _State) -> None:
    """Write the training state after an evaluation (:data:`_CHECKPOINT_KEYS` and the model kind) atomically."""
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
            "order": state.order,
            "position": state.position,
            "average": state.average.model.state_dict() if state.average is not None else None,
            "average_updates": state.average.updates if state.average is not None else 0,
            # plain Python numbers only, so that the checkpoint loads with weights_only=True
            "result": json.loads(json.dumps(asdict(state.result), default=float)),
        },
        path,
    )
