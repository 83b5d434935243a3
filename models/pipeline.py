"""Train a model on the SM feature tables and export it (TorchScript / XGBoost JSON + model card)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from cms_anomaly.models.data import (
    Sample,
    cocktail_validation_mask,
    dataset_needs,
    list_datasets,
    read_samples,
    sm_cocktail,
    validation_mask,
)
from cms_anomaly.models.errors import TrainingError
from cms_anomaly.models.feature_sets import FeatureSet, checked_feature_set, get_feature_set
from cms_anomaly.models.registry import get_spec, kinds, spec_of_model

log = logging.getLogger(__name__)


@dataclass
class TrainOptions:
    """User-facing training options (None = the paper's value).

    Attributes
    ----------
    epochs, batch_size, lr : int, int, float or None
        Override the model's :class:`~cms_anomaly.models.base.Hyper`; ``epochs`` sets a budget in
        epochs (when ``max_steps`` is None).
    max_steps : int or None
        Budget in optimiser steps (default: the model's ``Hyper.max_steps`` unless ``epochs`` is given,
        then ``Hyper.max_epochs``).
    eval_every : int or None
        Optimiser steps between evaluations (default: :class:`~cms_anomaly.models.training.TrainConfig`'s).
    patience : int or None
        Early-stopping patience override.
    seed : int
        Seed of the split, the initialisation and the batches.
    val_fraction : float
        Fraction of the SM events kept for validation (papers: one half).
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    resume : bool
        Continue from ``<out>/<name>.ckpt``.
    lam : float
        DisCo weight of the double AE.
    max_steps_per_epoch : int or None
        Cap on steps per epoch.
    threads : int or None
        torch threads.
    progress : bool
        tqdm bars.
    """

    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    patience: int | None = None
    max_steps: int | None = None
    eval_every: int | None = None
    seed: int = 1
    val_fraction: float = 0.5
    device: str = "auto"
    resume: bool = False
    lam: float = 100.0
    max_steps_per_epoch: int | None = None
    threads: int | None = None
    progress: bool = True


@dataclass
class TrainedModel:
    """Result of :func:`train_and_export`."""

    kind: str
    paths: list[Path]
    model: Any
    cards: list[Any] = field(default_factory=list)
    train_result: Any = None


def feature_set_for_job(
    feature_set: str | FeatureSet, *, features_dir: str | Path, datasets: list[str] | None
) -> tuple[FeatureSet, dict[str, str]]:
    """The feature set without the features a dataset of the job lacks (every dataset of
    ``features_dir`` when ``datasets`` is None), and the dropped ones with the reason
    (:func:`~cms_anomaly.models.feature_sets.checked_feature_set`, from the tables' record of the needs met)."""
    fs = feature_set if isinstance(feature_set, FeatureSet) else get_feature_set(feature_set)
    names = list(datasets) if datasets is not None else list_datasets(features_dir)
    return checked_feature_set(fs, dataset_needs(features_dir, names))


def split_cocktail(samples: dict[str, Sample], *, val_fraction: float, seed: int) -> tuple[Sample, Sample]:
    """SM cocktail split into (train, validation) samples (:func:`~cms_anomaly.models.data.cocktail_validation_mask`:
    by event identity where the tables carry it, so the processor knows each event's role)."""
    sm = sm_cocktail(samples)
    val = cocktail_validation_mask(samples, val_fraction=val_fraction, seed=seed)
    return sm.subset(~val), sm.subset(val)


def build_model(kind: str, x_train: np.ndarray, *, feature_set: FeatureSet, seed: int, lam: float = 100.0) -> Any:
    """Fit preprocessing and build the model of ``kind`` (a registered network or the fitted ``baseline``,
    not ``bdt``); returns ``(model, hyper)``, hyper None for a kind without training
    (:mod:`~cms_anomaly.models.registry`)."""
    spec = get_spec(kind)
    if spec.build is None:
        raise ValueError(f"unknown model kind {kind!r}; choose from {kinds()}")
    hyper = spec.hyper() if spec.hyper is not None else None
    return spec.build(x_train, feature_set=feature_set, seed=seed, lam=lam), hyper


def preprocessing_summary(model: Any) -> dict[str, Any]:
    """Human-readable description of the fitted preprocessing stored inside ``model``."""
    spec = spec_of_model(model)
    return spec.preprocessing(model) if spec is not None and spec.preprocessing is not None else {}


def train_and_export(
    kind: str,
    *,
    features_dir: str | Path,
    out_dir: str | Path,
    feature_set: str | FeatureSet | None = None,
    datasets: list[str] | None = None,
    options: TrainOptions | None = None,
    samples: dict[str, Sample] | None = None,
    name: str | None = None,
) -> TrainedModel:
    """Train ``kind`` on the SM datasets of ``features_dir`` and export it to ``out_dir``.

    Parameters
    ----------
    kind : str
        A network of the registry (:mod:`~cms_anomaly.models.registry`): ``ae``, ``vae``, ``alad``,
        ``double-ae`` or a registered one (``bdt``: see :func:`train_bdts`); or ``baseline``, fitted
        (median and scale of the training events) and exported without a training loop
        (``train_result`` None).
    features_dir : str or Path
        Parquet feature tables ``<dataset>/*.parquet``.
    out_dir : str or Path
        Output directory for ``<name>.pt``, ``<name>.card.json`` and the checkpoint.
    feature_set : str or FeatureSet, optional
        Input set (default: the paper's, the registry's
        :attr:`~cms_anomaly.models.registry.ModelSpec.feature_set`). Read from ``features_dir``, it
        loses the features a dataset read lacks (:func:`feature_set_for_job`; the card's
        ``training["dropped_features"]`` says which and why); a caller passing ``samples`` checks first.
    datasets : list of str, optional
        Datasets to read (default: all); only SM ones (is_signal False) are used.
    options : TrainOptions
        Epochs, seed, device, resume ...
    samples : dict, optional
        Already-read samples (skip reading).
    name : str, optional
        Output file stem (default: ``<kind>_<feature_set>``).

    Returns
    -------
    TrainedModel
    """
    from cms_anomaly.models.training import train

    options = options if options is not None else TrainOptions()
    spec = get_spec(kind)
    requested = feature_set or spec.feature_set
    fs = requested if isinstance(requested, FeatureSet) else get_feature_set(requested)
    dropped: dict[str, str] = {}
    if samples is None:
        fs, dropped = feature_set_for_job(fs, features_dir=features_dir, datasets=datasets)
        samples = read_samples(features_dir, feature_set=fs, datasets=datasets)
    train_s, val_s = split_cocktail(samples, val_fraction=options.val_fraction, seed=options.seed)
    if len(train_s) < 10:
        raise TrainingError(f"{kind}: only {len(train_s)} SM training events in {features_dir}")
    model, hyper = _fitted_model(kind, train_s, feature_set=fs, options=options)
    out_dir = Path(out_dir)
    stem = name or f"{kind.replace('-', '_')}_{fs.name}"
    if not spec.trainable:  # the fit of the preprocessing is the whole training (the baseline)
        result = None
        training = {**_data_record(samples, train_s, val_s, options=options), "fit_only": True}
    else:
        result = train(
            model,
            train_s.x,
            val_s.x,
            config=_train_config(options, hyper),
            checkpoint=out_dir / f"{stem}.ckpt",
            resume=options.resume,
            w_train=train_s.draw_weight,
            w_val=val_s.draw_weight,
        )
        training = _training_record(
            samples, train_s, val_s, options=options, hyper=hyper, result=result, monitored=spec.monitored_loss
        )
    training["dropped_features"] = dropped
    paths, cards = _export(model, fs, val_s, training=training, out_dir=out_dir, stem=stem)
    return TrainedModel(kind=kind, paths=paths, model=model, cards=cards, train_result=result)


def _fitted_model(kind: str, train_s: Sample, *, feature_set: FeatureSet, options: TrainOptions) -> tuple[Any, Any]:
    """The model of ``kind`` with preprocessing fitted on the training events, and its hyper-parameters
    with the options' overrides."""
    x_fit = train_s.x
    if train_s.draw_weight is not None:  # preprocessing fitted on the physical (weighted) distribution too
        rng = np.random.default_rng(options.seed)
        x_fit = x_fit[rng.choice(len(x_fit), len(x_fit), p=train_s.draw_weight / train_s.draw_weight.sum())]
    model, hyper = build_model(kind, x_fit, feature_set=feature_set, seed=options.seed, lam=options.lam)
    if hyper is None:
        return model, None
    overrides = {
        k: v
        for k, v in (("batch_size", options.batch_size), ("lr", options.lr), ("patience", options.patience))
        if v is not None
    }
    return model, replace(hyper, **overrides)


def _train_config(options: TrainOptions, hyper: Any) -> Any:
    """The training loop's settings: ``hyper`` and the options' budget (steps, else epochs, else the
    model's default), evaluation interval, seed, device, threads."""
    from cms_anomaly.models.training import TrainConfig

    max_steps = options.max_steps if options.max_steps is not None or options.epochs is not None else hyper.max_steps
    return TrainConfig(
        hyper=hyper,
        epochs=options.epochs or hyper.max_epochs,
        max_steps=max_steps,
        eval_every=options.eval_every,
        seed=options.seed,
        device=options.device,
        max_steps_per_epoch=options.max_steps_per_epoch,
        threads=options.threads,
        progress=options.progress,
    )


def _training_record(
    samples: dict[str, Sample],
    train_s: Sample,
    val_s: Sample,
    *,
    options: TrainOptions,
    hyper: Any,
    result: Any,
    monitored: str,
) -> dict[str, Any]:
    """The model card's ``training`` entry: data, settings and the training run's outcome."""
    import torch

    return {
        **_data_record(samples, train_s, val_s, options=options),
        "hyper": dict(vars(hyper).items()),
        "steps_run": result.steps_run,
        "epochs_run": result.epochs_run,
        "steps_per_epoch": result.steps_per_epoch,
        "eval_every": result.eval_every,
        "best_step": result.best_step,
        "best_epoch": result.best_epoch,
        "weights": "exponential moving average" if hyper.ema_decay is not None else "trained",
        "stopped_early": result.stopped_early,
        "validation_loss": result.best_val_loss,
        "device": result.device,
        # float sums depend on the intra-op thread count: the same seed reproduces bit for bit only with it
        "torch_threads": torch.get_num_threads(),
        "seconds": round(result.seconds, 2),
        "train_events_per_second": round(result.events_per_second, 1),
        # one point per evaluation (at most a few hundred: TrainConfig.eval_every)
        "history": result.history,
        "monitored_validation_loss": monitored,
    }


def _data_record(
    samples: dict[str, Sample], train_s: Sample, val_s: Sample, *, options: TrainOptions
) -> dict[str, Any]:
    """The training data of the model card's ``training`` entry: datasets, event counts, seed, split."""
    from cms_anomaly.stats import effective_entries

    return {
        "datasets": sorted(n for n, s in samples.items() if not s.is_signal),
        "n_train": len(train_s),
        "n_validation": len(val_s),
        # a tail-weighted cocktail: events drawn in proportion to their generator weights (n_eff drawn from)
        "weighted_draw": train_s.draw_weight is not None,
        "n_eff_train": effective_entries(train_s.draw_weight)
        if train_s.draw_weight is not None
        else float(len(train_s)),
        "seed": options.seed,
        "val_fraction": options.val_fraction,
    }


def _export(
    model: Any, fs: FeatureSet, val_s: Sample, *, training: dict[str, Any], out_dir: Path, stem: str
) -> tuple[list[Path], list[Any]]:
    """TorchScript files and model cards of the trained model's score modules (thresholds on ``val_s``)."""
    from cms_anomaly.models.export import ModelCard, eager_scores, export_torchscript, score_ranges_for, thresholds_for

    val_scores = eager_scores(model, val_s.x)
    all_thresholds = thresholds_for(val_scores, val_s.weight, model.output_names)
    all_ranges = score_ranges_for(val_scores, model.output_names)
    paths, cards = [], []
    check = val_s.x[:256]
    for suffix, module in model.export_modules().items():
        outputs = list(getattr(module, "output_names", model.output_names))
        card = ModelCard(
            model_type=model.kind,
            feature_set=fs.name,
            feature_names=list(fs.columns),
            n_inputs=fs.width,
            output_names=outputs,
            score=(suffix or outputs[0]) if len(outputs) == 1 else ",".join(outputs),
            preprocessing=preprocessing_summary(model),
            architecture=model.architecture(),
            training=training,
            thresholds={o: all_thresholds[o] for o in outputs},
            score_ranges={o: all_ranges[o] for o in outputs if o in all_ranges},
        )
        path = out_dir / (f"{stem}_{suffix}.pt" if suffix else f"{stem}.pt")
        export_torchscript(module, path, card=card, check_input=check)
        paths.append(path)
        cards.append(card)
    return paths, cards


def train_bdts(
    *,
    features_dir: str | Path,
    out_dir: str | Path,
    feature_set: str = "hlf21",
    signals: list[str] | None = None,
    datasets: list[str] | None = None,
    seed: int = 1,
    val_fraction: float = 0.5,
    samples: dict[str, Sample] | None = None,
) -> dict[str, Path]:
    """One XGBoost classifier per BSM benchmark vs the SM cocktail, saved as JSON + model card.

    Signal and SM events are both split by event identity (``val_fraction`` held out); thresholds on
    the SM validation half. Returns ``{signal: path}``; a signal without events on both sides of the
    split gets no BDT (a warning says so).
    """
    from cms_anomaly.models.bdt import BDTParams, predict, save_booster, train_signal_bdt
    from cms_anomaly.models.export import ModelCard, score_ranges_for, thresholds_for, write_card

    fs = get_feature_set(feature_set)
    if samples is None:
        fs, _ = feature_set_for_job(fs, features_dir=features_dir, datasets=datasets)
        samples = read_samples(features_dir, feature_set=fs, datasets=datasets)
    sm_train, sm_val = split_cocktail(samples, val_fraction=val_fraction, seed=seed)
    sig_names = signals or sorted(n for n, s in samples.items() if s.is_signal)
    if not sig_names:
        raise TrainingError(f"no signal (is_signal True) dataset in {features_dir}; give --signal")
    params = BDTParams()
    paths: dict[str, Path] = {}
    for sig in sig_names:
        if sig not in samples:
            raise TrainingError(f"signal dataset {sig!r} not found in {features_dir} (have {sorted(samples)})")
        s = samples[sig]
        tr = ~validation_mask(s, val_fraction=val_fraction, seed=seed)
        if tr.sum() == 0 or tr.all():
            # a handful of selected events can all fall on one side of the event-identity split
            log.warning(
                "BDT for %s skipped: %d of its %d selected events are training events (need some on "
                "each side of the split)",
                sig,
                int(tr.sum()),
                len(tr),
            )
            continue
        booster, history = train_signal_bdt(
            sm_train.x, sm_train.weight, s.x[tr], s.weight[tr], seed=seed, params=params, feature_names=list(fs.columns)
        )
        path = save_booster(booster, Path(out_dir) / f"bdt_{sig}_{fs.name}.json")
        sm_scores = predict(booster, sm_val.x)
        card = ModelCard(
            model_type="bdt",
            feature_set=fs.name,
            feature_names=list(fs.columns),
            n_inputs=fs.width,
            output_names=["p_signal"],
            score="p_signal",
            preprocessing={"type": "none (raw features)"},
            architecture={"library": "xgboost", **vars(params)},
            training={
                "signal": sig,
                "background_datasets": sorted(n for n, x in samples.items() if not x.is_signal),
                "n_background_train": len(sm_train),
                "n_signal_train": int(tr.sum()),
                "seed": seed,
                "weighting": "SM weights normalised to mean 1; signal up-weighted to the SM sum of weights",
                "final_train_logloss": history["train"]["logloss"][-1],
            },
            thresholds=thresholds_for(sm_scores, sm_val.weight, ["p_signal"]),
            score_ranges=score_ranges_for(sm_scores, ["p_signal"]),
        )
        import xgboost

        card.framework = {"xgboost": xgboost.__version__}
        write_card(card, path)
        paths[sig] = path
    return paths


def train_cwola_region(
    cols: dict[str, np.ndarray],
    labels: np.ndarray,
    folds: np.ndarray,
    *,
    k_folds: int,
    out_dir: str | Path,
    name: str,
    seed: int,
    params: Any = None,
) -> list[Path]:
    """Train and export one CWoLa signal region's k-fold classifiers (LHCO sec. 4.1).

    ``cols`` holds the :data:`~cms_anomaly.models.bdt.CWOLA_COLUMNS` of the sample, ``labels`` the
    region labels (1 signal region, 0 sidebands, -1 elsewhere), ``folds`` each event's fold (by event
    identity, :class:`~cms_anomaly.processors.folds.KFold`; ``k_folds`` the number of folds, given, not
    read off ``folds``, in which a small sample may leave the last fold empty). Booster ``i`` is trained outside fold
    ``i`` and saved as ``<name>_fold<i>.json`` with a ``cwola_bdt`` model card and the calibration of
    its held-out signal-region and sideband events (:func:`~cms_anomaly.models.scorers.write_calibration`):
    :meth:`KFoldScorer.load <cms_anomaly.models.scorers.KFoldScorer.load>` applies them in the processor.
    """
    import json

    import xgboost
    from cms_anomaly.models.bdt import CWOLA_COLUMNS, BDTParams, cwola_inputs, predict, save_booster, train_cwola
    from cms_anomaly.models.export import ModelCard, score_ranges_for, write_card
    from cms_anomaly.models.scorers import write_calibration

    params = params if params is not None else BDTParams()
    folds = np.asarray(folds)
    x = cwola_inputs(cols)
    _, boosters = train_cwola(x, labels, k_folds=k_folds, seed=seed, params=params, folds=folds)
    out_dir = Path(out_dir)
    paths = []
    for i, booster in enumerate(boosters):
        held_out = (folds == i) & (np.asarray(labels) >= 0)
        scores = predict(booster, x[held_out])
        path = save_booster(booster, out_dir / f"{name}_fold{i}.json")
        write_card(
            ModelCard(
                model_type="cwola_bdt",
                feature_set="cwola",
                feature_names=list(CWOLA_COLUMNS),
                n_inputs=x.shape[1],
                output_names=["p_sr"],
                score="p_sr",
                preprocessing={"type": "m_J1 / m_JJ, m_J2 / m_JJ, tau21 x2, tau32 x2, heavier jet first"},
                architecture={"library": "xgboost", **vars(params)},
                training={
                    "fold": i,
                    "k_folds": k_folds,
                    "seed": seed,
                    "n_signal_region": int(np.sum((labels == 1) & (folds != i))),
                    "n_sidebands": int(np.sum((labels == 0) & (folds != i))),
                    "evals_result": json.loads(booster.attr("evals_result") or "{}"),
                },
                score_ranges=score_ranges_for(scores, ["p_sr"]),
                framework={"xgboost": xgboost.__version__},
            ),
            path,
        )
        write_calibration(path, scores)
        paths.append(path)
    return paths
