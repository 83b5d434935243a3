"""The model registry: one :class:`ModelSpec` per model kind, read by every consumer.

Training (:func:`~cms_anomaly.models.pipeline.train_and_export`), ``cms-anomaly train`` and
``bench training``, the benchmarks, ``cms-anomaly evaluate`` and the hunt look a model up here:
its builder, hyper-parameters, default inputs, the score a one-score consumer uses and its
training budget. :func:`register` adds a model (``docs/howto/add-a-model.md``).

The module imports no torch: the built-in builders import their model module when called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from cms_anomaly.models.base import AnomalyModel, Hyper
    from cms_anomaly.models.feature_sets import FeatureSet


@dataclass(frozen=True)
class Budget:
    """CPU-sized training budget of a model in ``cms-anomaly evaluate`` (the papers' values where affordable).

    Attributes
    ----------
    epochs : int
        Maximum epochs.
    overrides : Mapping
        :class:`~cms_anomaly.models.pipeline.TrainOptions` field overrides (batch size, learning rate).
    """

    epochs: int
    overrides: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    """Everything the package knows about one model kind.

    Attributes
    ----------
    kind : str
        Name on the command line and in the APIs (``ae``, ``double-ae``); output files use it with
        ``-`` as ``_``.
    feature_set : str
        Default input feature set (the paper's).
    build : callable or None
        ``build(x_train, *, feature_set, seed, lam) -> AnomalyModel``: fit the preprocessing on the raw
        training matrix and build the seeded network. None: not a network trained by
        :func:`~cms_anomaly.models.pipeline.train_and_export` (the supervised ``bdt``, one per signal,
        :func:`~cms_anomaly.models.pipeline.train_bdts`).
    hyper : callable or None
        ``hyper() -> Hyper``: the paper's training hyper-parameters (a function, so that torch is
        imported only when a model is built).
    model_kind : str
        The built model's ``kind`` (its model card's ``model_type``); default: ``kind`` with ``_``.
    preprocessing : callable or None
        ``preprocessing(model) -> dict``: the fitted preprocessing described for the model card.
    monitored_loss : str
        What the validation loss of early stopping is, for the model card.
    score_output : str or None
        The output a consumer of one score per event uses (the hunt); None: the first output.
    budget : Budget or None
        Training budget of ``cms-anomaly evaluate``.
    trainable : bool
        False: a model without parameters to optimise (the ``baseline``): ``build`` fits it, ``hyper`` is
        None, and :func:`~cms_anomaly.models.pipeline.train_and_export` exports it without a training loop.
    """

    kind: str
    feature_set: str
    build: Callable[..., AnomalyModel] | None = None
    hyper: Callable[[], Hyper] | None = None
    model_kind: str = ""
    preprocessing: Callable[[Any], dict[str, Any]] | None = None
    monitored_loss: str = "training loss"
    score_output: str | None = None
    budget: Budget | None = None
    trainable: bool = True

    def __post_init__(self) -> None:
        if not self.model_kind:
            object.__setattr__(self, "model_kind", self.kind.replace("-", "_"))
        if not self.trainable:
            if self.build is None or self.hyper is not None:
                raise ValueError(f"model {self.kind!r}: a model without training needs build and no hyper")
        elif (self.build is None) != (self.hyper is None):
            raise ValueError(f"model {self.kind!r}: give both build and hyper, or neither")

    @property
    def neural(self) -> bool:
        """A network trained by an optimiser in :func:`~cms_anomaly.models.pipeline.train_and_export`."""
        return self.build is not None and self.trainable

    @property
    def exported(self) -> bool:
        """Fitted or trained and exported as TorchScript by :func:`~cms_anomaly.models.pipeline.train_and_export`."""
        return self.build is not None


_SPECS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` to the registry (a kind registered twice is a :class:`ValueError`); returns it."""
    if spec.kind in _SPECS:
        raise ValueError(f"model kind {spec.kind!r} is already registered")
    _SPECS[spec.kind] = spec
    return spec


def unregister(kind: str) -> None:
    """Remove ``kind`` from the registry (a test's model, after the test)."""
    _SPECS.pop(kind, None)


def specs() -> Mapping[str, ModelSpec]:
    """The registered models by kind, in registration order (read-only view)."""
    return MappingProxyType(_SPECS)


def kinds() -> tuple[str, ...]:
    """Every registered kind, in registration order."""
    return tuple(_SPECS)


def neural_kinds() -> tuple[str, ...]:
    """The kinds trained by an optimiser in :func:`~cms_anomaly.models.pipeline.train_and_export` (not ``baseline``)."""
    return tuple(k for k, s in _SPECS.items() if s.neural)


def get_spec(kind: str) -> ModelSpec:
    """The spec of ``kind`` (or of its ``model_kind``, e.g. ``double_ae``); unknown: one-line :class:`ValueError`."""
    spec = _SPECS.get(kind) or next((s for s in _SPECS.values() if s.model_kind == kind), None)
    if spec is None:
        raise ValueError(f"unknown model kind {kind!r}; choose from {kinds()}")
    return spec


def spec_of_model(model: Any) -> ModelSpec | None:
    """The spec whose built models carry ``model.kind``; None if no registered model builds it."""
    return next((s for s in _SPECS.values() if s.model_kind == getattr(model, "kind", None)), None)


# ----------------------------------------------------------------------------- the built-in models
def _build_ae(x_train: np.ndarray, *, feature_set: FeatureSet, seed: int, lam: float) -> AnomalyModel:
    """Chekanov's autoencoder (RMM cell mask, or standardised inputs)."""
    from cms_anomaly.models.ae import build_autoencoder

    return build_autoencoder(x_train, feature_set=feature_set.name, seed=seed)


def _build_vae(x_train: np.ndarray, *, feature_set: FeatureSet, seed: int, lam: float) -> AnomalyModel:
    """Cerri's VAE with a per-feature likelihood."""
    from cms_anomaly.models.vae import build_vae

    return build_vae(x_train, feature_names=list(feature_set.columns), seed=seed)


def _build_alad(x_train: np.ndarray, *, feature_set: FeatureSet, seed: int, lam: float) -> AnomalyModel:
    """ALAD with the default latent size and cycle term (:mod:`~cms_anomaly.models.alad`)."""
    from cms_anomaly.models.alad import build_alad

    return build_alad(x_train, feature_names=list(feature_set.columns), seed=seed)


def _build_double_ae(x_train: np.ndarray, *, feature_set: FeatureSet, seed: int, lam: float) -> AnomalyModel:
    """Mikuni's double autoencoder with DisCo weight ``lam``."""
    from cms_anomaly.models.double_ae import build_double_ae

    return build_double_ae(x_train, seed=seed, lam=lam)


def _build_baseline(x_train: np.ndarray, *, feature_set: FeatureSet, seed: int, lam: float) -> AnomalyModel:
    """The trivial baseline: median and standard deviation of each input (no seed, no training)."""
    from cms_anomaly.models.baseline import build_baseline

    return build_baseline(x_train)


def _ae_hyper() -> Hyper:
    """:data:`~cms_anomaly.models.ae.AE_HYPER`."""
    from cms_anomaly.models.ae import AE_HYPER

    return AE_HYPER


def _vae_hyper() -> Hyper:
    """:data:`~cms_anomaly.models.vae.VAE_HYPER`."""
    from cms_anomaly.models.vae import VAE_HYPER

    return VAE_HYPER


def _build_alad_knapp(x_train: np.ndarray, *, feature_set: FeatureSet, seed: int, lam: float) -> AnomalyModel:
    """ALAD as Knapp et al. build it: 16-dimensional latent space, no cycle term."""
    from cms_anomaly.models.alad import build_alad

    return build_alad(x_train, feature_names=list(feature_set.columns), seed=seed, latent=16, cycle=0.0)


def _alad_knapp_hyper() -> Hyper:
    """:data:`~cms_anomaly.models.alad.ALAD_KNAPP_HYPER`."""
    from cms_anomaly.models.alad import ALAD_KNAPP_HYPER

    return ALAD_KNAPP_HYPER


def _alad_hyper() -> Hyper:
    """:data:`~cms_anomaly.models.alad.ALAD_HYPER`."""
    from cms_anomaly.models.alad import ALAD_HYPER

    return ALAD_HYPER


def _double_ae_hyper() -> Hyper:
    """:data:`~cms_anomaly.models.double_ae.DOUBLE_AE_HYPER`."""
    from cms_anomaly.models.double_ae import DOUBLE_AE_HYPER

    return DOUBLE_AE_HYPER


def _ae_preprocessing(model: Any) -> dict[str, Any]:
    """The AE's RMM zero-cell mask or standardisation."""
    pre = model.preprocess
    if hasattr(pre, "indices"):
        return {
            "type": "rmm_zero_cell_mask",
            "n_inputs_raw": pre.n_inputs,
            "n_kept": int(pre.indices.numel()),
            "kept_indices": pre.indices.tolist(),
        }
    return {"type": "standardise_mean_std", **pre.summary()}


def _vae_preprocessing(model: Any) -> dict[str, Any]:
    """The VAE's encoder standardisation, likelihood scales and per-feature pdfs."""
    return {
        "encoder_input": {"type": "standardise_mean_std", **model.standardize.summary()},
        "likelihood_scale": model.like_scale.tolist(),
        "pdfs": model.pdfs,
    }


def _alad_preprocessing(model: Any) -> dict[str, Any]:
    """ALAD's median/std standardisation and one-hot coding."""
    enc = model.encoding
    return {
        "type": "standardise_median_std + one_hot",
        "continuous_columns": enc.continuous.tolist(),
        **enc.standardize.summary(),
        "one_hot": [{"column": o.column, "categories": o.categories.tolist()} for o in enc.onehots],
        "out_dim": enc.out_dim,
    }


def _baseline_preprocessing(model: Any) -> dict[str, Any]:
    """The baseline's median and standard deviation."""
    return {"type": "standardise_median_std", **model.standardize.summary()}


def _double_ae_preprocessing(model: Any) -> dict[str, Any]:
    """The double AE's log1p of the pT columns and standardisation."""
    log_pt, standardize = model.preprocess
    return {
        "type": "log1p on the pT columns + standardise_mean_std",
        "log1p_columns": np.flatnonzero(log_pt.mask.numpy()).tolist(),
        **standardize.summary(),
    }


register(
    ModelSpec(
        "ae",
        "rmm",
        build=_build_ae,
        hyper=_ae_hyper,
        preprocessing=_ae_preprocessing,
        budget=Budget(epochs=100),
    )
)
register(
    ModelSpec(
        "vae",
        "hlf21",
        build=_build_vae,
        hyper=_vae_hyper,
        preprocessing=_vae_preprocessing,
        budget=Budget(epochs=100),
    )
)
_ALAD = register(
    ModelSpec(
        "alad",
        "hlf21",
        build=_build_alad,
        hyper=_alad_hyper,
        preprocessing=_alad_preprocessing,
        monitored_loss="mean L1 score of the averaged weights (selection criterion)",
        # the L1 score of Knapp et al.
        score_output="l1",
        # Knapp trains 3.4M events at lr 1e-5 (68k steps per epoch); with O(10^4) events we take 10x the
        # rate to reach a comparable number of effective updates
        budget=Budget(epochs=40, overrides={"lr": 1e-4}),
    )
)
# Knapp et al.'s ALAD: the same specification with its own network and hyper-parameters
register(replace(_ALAD, kind="alad_knapp", model_kind="", build=_build_alad_knapp, hyper=_alad_knapp_hyper))
register(
    ModelSpec(
        "double-ae",
        "objects",
        build=_build_double_ae,
        hyper=_double_ae_hyper,
        preprocessing=_double_ae_preprocessing,
        # the first output, R1: the loss of the autoencoder that the DisCo term decorrelates from R2
        score_output=None,
        # DisCo is O(batch^2); batch 10k costs ~12 s per step on one CPU core
        budget=Budget(epochs=60, overrides={"batch_size": 2000}),
    )
)
register(ModelSpec("bdt", "hlf21"))
register(
    ModelSpec(
        "baseline",
        # the inputs of the detector it sits beside: callers give that detector's feature set
        "hlf21",
        build=_build_baseline,
        preprocessing=_baseline_preprocessing,
        monitored_loss="none (fitted: median and standard deviation of the training events)",
        score_output="l1",
        trainable=False,
    )
)
