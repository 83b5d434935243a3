"""The hunts' k-fold detectors trained on the data (the top hunt, :mod:`~cms_anomaly.analyses.hunt`, step 4, and
the class hunt's rarity, :mod:`~cms_anomaly.analyses.hunt_classes`).

Model ``i`` is trained on the data events outside fold ``i`` (:class:`~cms_anomaly.processors.folds.KFold`, by
event identity) and scores fold ``i`` only, so no event is scored by a model that saw it. Each model's score is
calibrated to ``rarity = -log10 p`` (p: the fraction of its own validation events scoring as high), which puts
the k models on one scale (:class:`~cms_anomaly.models.scorers.KFoldScorer`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
from cms_anomaly.analyses.hunt_selections import KFOLD_SCORER
from cms_anomaly.models.registry import get_spec, neural_kinds

log = logging.getLogger(__name__)

#: detectors the hunt can train (the registry's networks, and the trivial ``baseline`` they must beat: the
#: same hunt with ``--model baseline`` gives its selections and p-values), and the output each uses (None: the first)
MODELS: dict[str, str | None] = {k: get_spec(k).score_output for k in (*neural_kinds(), "baseline")}


class HuntError(RuntimeError):
    """The hunt cannot go on; the message says which step and why."""


class DetectorSettings(Protocol):
    """What the k-fold detectors read of a hunt's settings (:class:`~cms_anomaly.analyses.hunt.HuntConfig`,
    the class hunt's :class:`~cms_anomaly.analyses.hunt_classes.ClassHuntConfig`)."""

    @property
    def model(self) -> str: ...
    @property
    def k_folds(self) -> int: ...
    @property
    def epochs(self) -> int: ...
    @property
    def seed(self) -> int: ...
    @property
    def device(self) -> str: ...
    @property
    def feature_set(self) -> str | None: ...


def detector_inputs(features_dir: Path, config: DetectorSettings) -> tuple[Any, dict[str, str]]:
    """The detector's feature set (:func:`inputs`) without the features a dataset of the job (the data
    or a simulated process) cannot compute, and the dropped ones with the reason."""
    from cms_anomaly.models.errors import ModelError
    from cms_anomaly.models.pipeline import feature_set_for_job

    try:
        return feature_set_for_job(inputs(config), features_dir=features_dir, datasets=None)
    except ModelError as err:
        raise HuntError(f"detector inputs: {err}") from None


def train_folds(
    features_dir: Path, out: Path, config: DetectorSettings, feature_set: Any = None, *, data: Any = None
) -> list[Path]:
    """k models, model i trained on the data outside fold i, each with its calibration file.

    ``feature_set``: the checked inputs (default :func:`detector_inputs`): no model trains on a feature
    a dataset of the job lacks. ``data``: the data's tables of ``features_dir`` already read with
    ``feature_set`` (default: read here).
    """
    from cms_anomaly.models.data import read_samples, validation_mask
    from cms_anomaly.models.pipeline import TrainOptions, train_and_export
    from cms_anomaly.models.scorers import load_scorer, write_calibration
    from cms_anomaly.processors.folds import KFold

    if config.model not in MODELS:
        raise HuntError(f"unknown model {config.model!r}: choose one of {', '.join(MODELS)}")
    fs = feature_set if feature_set is not None else detector_inputs(features_dir, config)[0]
    if data is None:
        data = read_samples(features_dir, feature_set=fs, datasets=["data"])["data"]
    if data.run is None or data.event is None:
        raise HuntError(f"{features_dir / 'data'}: the feature tables have no run/event columns for the folds")
    folds = KFold(config.k_folds, config.seed).fold(data.run, data.event)
    paths = []
    for i in range(config.k_folds):
        train = data.subset(folds != i)
        options = TrainOptions(epochs=config.epochs, seed=config.seed + i, device=config.device, progress=False)
        trained = train_and_export(
            config.model,
            features_dir=features_dir,
            out_dir=out / f"fold{i}",
            feature_set=fs,
            options=options,
            samples={"data": train},
            name=f"{config.model.replace('-', '_')}_fold{i}",
        )
        wanted = MODELS[config.model]
        by_score = {p.stem.rsplit("_", 1)[-1]: p for p in trained.paths}
        path = by_score.get(wanted, trained.paths[0]) if wanted else trained.paths[0]
        # calibration on the model's own validation events (early stopping only, no gradient step)
        val = train.subset(validation_mask(train, val_fraction=options.val_fraction, seed=options.seed))
        scores = np.asarray(load_scorer(path).numpy_call(val.x), dtype=np.float64).reshape(len(val), -1)[:, 0]
        write_calibration(path, scores)
        paths.append(path)
        log.info("fold %d: %s trained on %d events, calibrated on %d", i, path.name, len(train), len(val))
    return paths


def inputs(config: DetectorSettings) -> str:
    """The feature set the hunt's detector reads (see :attr:`HuntConfig.feature_set`)."""
    return config.feature_set or ("objects" if config.model == "double-ae" else "hlf_nano")


def kfold_scorer(paths: list[Path], config: DetectorSettings) -> Any:
    """The k-fold ensemble of :func:`train_folds`'s ``paths`` (:class:`~cms_anomaly.models.scorers.KFoldScorer`)."""
    from cms_anomaly.models.scorers import KFoldScorer
    from cms_anomaly.processors.folds import KFold

    return KFoldScorer.load(paths, KFold(config.k_folds, config.seed), name=KFOLD_SCORER)


class ClassKFoldScorer:
    """k-fold detectors per exclusive event class: the event of class ``c`` is scored by ``c``'s
    :class:`~cms_anomaly.models.scorers.KFoldScorer` (the model of its fold), an event of a class without
    detectors gets NaN (unscored). The processor gives it each event's exclusive class and fills the class
    histograms of the exclusive memberships only (``exclusive_classes``)."""

    output_names: ClassVar[list[str]] = ["rarity"]

    def __init__(self, per_class: dict[str, Any]) -> None:
        if not per_class:
            raise HuntError("no event class has a detector")
        first = next(iter(per_class.values()))
        self.per_class, self.folds, self.score_binning = dict(per_class), first.folds, first.score_binning
        self.feature_names: list[str] = first.feature_names
        if any(s.feature_names != self.feature_names for s in per_class.values()):
            raise HuntError("the classes' detectors read different features")
        self.name = KFOLD_SCORER
        #: the classes it scores (the processor's ``ScorerOptions.exclusive_classes``)
        self.exclusive_classes: tuple[str, ...] = tuple(per_class)

    def fold_of(self, run: np.ndarray, event: np.ndarray) -> np.ndarray:
        return np.asarray(self.folds.fold(run, event))

    def __call__(self, features: Any, *, folds: np.ndarray, event_class: np.ndarray) -> np.ndarray:
        event_class, folds = np.asarray(event_class), np.asarray(folds)
        out = np.full(len(features), np.nan)
        for c, scorer in self.per_class.items():
            rows = np.flatnonzero(event_class == c)
            if rows.size:
                out[rows] = scorer(features[rows], folds=folds[rows])
        return out


def train_class_folds(
    features_dir: Path,
    out: Path,
    config: DetectorSettings,
    feature_set: Any,
    data: Any,
    classes: np.ndarray,
    *,
    min_events: int,
) -> tuple[dict[str, list[Path]], dict[str, str]]:
    """:func:`train_folds` per exclusive class with at least ``min_events`` data events (``classes``: each
    data event's exclusive class, ``""``: none), on that class's data events only, into ``out/<class>``:
    the model paths per class, and the classes left unscored because a fold's model had too few training
    events after the validation split (the pipeline's :class:`~cms_anomaly.models.errors.TrainingError`)."""
    from cms_anomaly.models.errors import TrainingError

    names, n = np.unique(np.asarray(classes, dtype=str), return_counts=True)
    paths, untrained = {}, {}
    for c in (str(c) for c, k in zip(names, n, strict=True) if c and k >= min_events):
        try:
            paths[c] = train_folds(features_dir, out / c, config, feature_set, data=data.subset(classes == c))
        except TrainingError as err:
            untrained[c] = str(err)
            log.info("class %s: no detector (%s)", c, err)
    if not paths:
        raise HuntError(f"no exclusive class has enough data events ({min_events}) to train its detectors on")
    return paths, untrained


def class_kfold_scorer(paths: dict[str, list[Path]], config: DetectorSettings) -> ClassKFoldScorer:
    """The per-class ensemble of :func:`train_class_folds`'s ``paths``."""
    return ClassKFoldScorer({c: kfold_scorer(p, config) for c, p in paths.items()})
