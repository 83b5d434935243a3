"""Model scorers for the processor, built on ``coffea.ml_tools`` (TorchScript and XGBoost wrappers).

A scorer is created from a model file plus its ``.card.json`` (written by
``cms-anomaly train``); it takes the selected events' feature record array (one
field per feature, list fields for ``rmm`` / ``objects``) and returns a numpy
array (N,) or (N, k). The model is loaded lazily on first use in each worker
process, so scorers pickle cleanly for Dask and futures executors. The model
file must exist under the same path on every worker.

Example
-------
>>> scorer = load_scorer("models/vae_hlf21.pt", feature_names=HLF_NAMES)  # doctest: +SKIP
>>> scores = scorer(features[selected])                                 # doctest: +SKIP
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import awkward as ak
import numpy as np
from cms_anomaly.models.errors import FeatureMismatchError, ModelCardError
from cms_anomaly.models.export import ModelCard, load_card, verify_model_file
from coffea.ml_tools.torch_wrapper import torch_wrapper
from coffea.ml_tools.xgboost_wrapper import xgboost_wrapper

log = logging.getLogger(__name__)

__all__ = [
    "RARITY_BINNING",
    "FeatureMismatchError",
    "KFoldScorer",
    "Scorer",
    "TorchScorer",
    "XGBoostScorer",
    "calibration_path",
    "load_scorer",
    "rarity",
    "write_calibration",
]


def _check_fields(features: Any, card: ModelCard, source: str) -> None:
    fields = list(ak.fields(features))
    missing = [n for n in card.feature_names if n not in fields]
    if missing:
        raise FeatureMismatchError(
            expected=card.feature_names, actual=[n for n in card.feature_names if n in fields], source=source
        )


def _feature_matrix(features: Any, card: ModelCard, lib: Any) -> Any:
    """Stack the card's feature fields into a regular float32 (N, n_inputs) awkward array."""
    cols = []
    for name in card.feature_names:
        col = features[name]
        if col.ndim == 1:
            cols.append(lib.values_astype(col, np.float32)[:, np.newaxis])
        else:
            cols.append(lib.values_astype(lib.to_regular(col, axis=1), np.float32))
    return cols[0] if len(cols) == 1 else lib.concatenate(cols, axis=1)


def _numpy_matrix(features: ak.Array, card: ModelCard, *, block: int = 16384) -> np.ndarray:
    """Raw float32 (N, n_inputs) input matrix, filled in cache-sized row blocks (5x faster than per column)."""
    n = len(features)
    cols = []
    for name in card.feature_names:
        col = features[name]
        arr = ak.to_numpy(col if col.ndim == 1 else ak.to_regular(col, axis=1))
        cols.append(arr if arr.ndim == 1 else arr.reshape(n, int(np.prod(arr.shape[1:]))))
    width = sum(1 if c.ndim == 1 else c.shape[1] for c in cols)
    if width != card.n_inputs:
        raise FeatureMismatchError(
            expected=card.feature_names,
            actual=[f"<{width} input columns>"],
            source=f"{card.file} (needs {card.n_inputs} input columns)",
        )
    if len(cols) == 1:
        return np.ascontiguousarray(cols[0].reshape(n, width), dtype=np.float32)
    out = np.empty((n, width), np.float32)
    scalar = all(c.ndim == 1 for c in cols)
    for start in range(0, n, block):
        stop = min(start + block, n)
        if scalar:
            out[start:stop] = np.stack([c[start:stop] for c in cols], axis=1)
        else:
            out[start:stop] = np.concatenate(
                [c[start:stop].reshape(stop - start, -1) if c.ndim > 1 else c[start:stop, np.newaxis] for c in cols],
                axis=1,
            )
    return out


#: linear score bins of a model whose scores reach zero or below (a log axis would drop them)
LINEAR_SCORE_BINS = 2000


#: model types whose outputs are probabilities (classifiers): a linear [0, 1] score axis
PROBABILITY_MODEL_TYPES = frozenset({"bdt", "cwola_bdt"})


def score_binning_for(card: ModelCard) -> tuple[int, float, float] | None:
    """The processor's score axis for a model card. Probabilities (the classifiers of
    :data:`PROBABILITY_MODEL_TYPES`) get :data:`LINEAR_SCORE_BINS` linear bins on [0, 1]: on the log
    axis the signal-like end, 0.9 to 1, would be two bins. Otherwise ``None`` (the default log axis,
    1e-6 to 1e6) when every output was positive on the SM validation events (losses and distances,
    also when they all lie below 1, as an autoencoder's mean squared error does), else
    :data:`LINEAR_SCORE_BINS` linear bins from half the validation range below its minimum to twice
    the range above its maximum (e.g. the VAE's reconstruction negative log-likelihood, which can
    be negative); events beyond stay in the flow bins."""
    if card.model_type in PROBABILITY_MODEL_TYPES:
        return (LINEAR_SCORE_BINS, 0.0, 1.0)
    ranges = [r for r in card.score_ranges.values() if len(r) == 2]
    if not ranges or all(lo > 0 for lo, _ in ranges):
        return None
    lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    span = hi - lo if hi > lo else 1.0
    return (LINEAR_SCORE_BINS, lo - 0.5 * span, hi + 2.0 * span)


#: bins per decade of the ABCD plane of a two-output model
SCORE2D_BINS_PER_DECADE = 100


def score2d_binning_for(card: ModelCard) -> tuple[int, float, float, str] | None:
    """The processor's ABCD plane for a two-output model card (both axes alike): ``None`` (120 log bins,
    1e-6 to 1e6) without validation score ranges; else :data:`SCORE2D_BINS_PER_DECADE` log bins per
    decade from a quarter of the smallest validation score to ten times the largest (a threshold sits
    within 2.3 % of any score; on a falling tail the efficiency it keeps moves by up to ~10 % between
    two edges), or 400 linear bins over the range, widened as in :func:`score_binning_for`, when a
    score reaches zero."""
    ranges = [r for r in card.score_ranges.values() if len(r) == 2]
    if len(card.output_names) != 2 or not ranges:
        return None
    lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    if lo > 0:
        lo, hi = lo / 4.0, hi * 10.0
        return (int(np.ceil(SCORE2D_BINS_PER_DECADE * np.log10(hi / lo))), lo, hi, "log")
    span = hi - lo if hi > lo else 1.0
    return (400, lo - 0.5 * span, hi + 2.0 * span, "linear")


class _ScorerMixin:
    """Common ``name`` / ``feature_names`` / ``output_names`` and the numpy-returning call."""

    card: ModelCard
    path: str

    @property
    def score_binning(self) -> tuple[int, float, float] | None:
        """The score axis the processor gives this model (:func:`score_binning_for`)."""
        return score_binning_for(self.card)

    @property
    def score2d_binning(self) -> tuple[int, float, float, str] | None:
        """The ABCD plane the processor gives a two-output model (:func:`score2d_binning_for`)."""
        return score2d_binning_for(self.card)

    @property
    def name(self) -> str:
        """File stem, e.g. ``alad_hlf21_l1``."""
        return Path(self.path).name.rsplit(".", 1)[0]

    @property
    def feature_names(self) -> list[str]:
        return list(self.card.feature_names)

    @property
    def output_names(self) -> list[str]:
        return list(self.card.output_names)

    @property
    def thresholds(self) -> dict[str, Any]:
        """Score thresholds at the working-point FPRs from the model card."""
        return self.card.thresholds

    def prepare_awkward(self, features: Any) -> tuple[tuple, dict]:
        _check_fields(features, self.card, self.path)
        lib = self.get_awkward_lib(features)  # type: ignore[attr-defined]  # ml_tools' nonserializable_attribute base
        if lib is ak:  # eager chunk: fill one float32 matrix column by column (no awkward concatenation)
            return (ak.from_numpy(_numpy_matrix(features, self.card)),), {}
        return (_feature_matrix(features, self.card, lib),), {}

    def _validate_matrix(self, x: np.ndarray) -> None:
        if x.ndim != 2 or x.shape[1] != self.card.n_inputs:
            raise FeatureMismatchError(
                expected=self.card.feature_names,
                actual=[f"<{x.shape[1] if x.ndim == 2 else x.shape} columns>"],
                source=f"{self.path} (input shape {x.shape}, need (N, {self.card.n_inputs}))",
            )
        if x.dtype != np.float32:
            raise TypeError(f"{self.path}: input dtype {x.dtype}, need float32")

    def __call__(self, features: Any) -> Any:
        """Scores of the events in ``features`` (awkward record array -> numpy; dask-awkward stays lazy)."""
        out = super().__call__(features)  # type: ignore[misc]  # the ml_tools wrapper's, after this mixin in the MRO
        if isinstance(out, ak.Array):
            out = ak.to_numpy(out)
        if isinstance(out, np.ndarray) and out.ndim == 2 and out.shape[1] == 1:
            out = out[:, 0]
        return out


class TorchScorer(_ScorerMixin, torch_wrapper):
    """A TorchScript model (raw features in, scores out) as a ``coffea.ml_tools.torch_wrapper``.

    Parameters
    ----------
    path : str or Path
        The ``.pt`` file; its model card must sit next to it.
    card : ModelCard
        The model card (read with :func:`cms_anomaly.models.export.load_card`).
    threads : int, optional
        torch intra-op threads set when the model is loaded in a worker (pin to the
        worker's share of cores).
    batch_size : int
        CPU evaluation slice (events); the whole chunk is scored in one call.
    """

    def __init__(
        self, path: str | Path, *, card: ModelCard, threads: int | None = None, batch_size: int = 8192
    ) -> None:
        k = len(card.output_names)
        torch_wrapper.__init__(self, str(path), expected_output_shape=(None,) if k == 1 else (None, k))
        self.path = str(path)
        self.card = card
        self.threads = threads
        self.batch_size = int(batch_size)

    def _create_model(self) -> Any:
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        model = torch.jit.load(self.torch_jit, map_location=self._create_device())
        model.eval()
        log.debug("loaded %s", self.torch_jit)
        return model

    def validate_numpy_input(self, x: np.ndarray) -> None:
        self._validate_matrix(x)

    def numpy_call(self, x: np.ndarray) -> np.ndarray:
        import torch

        if len(x) == 0:
            return np.zeros((0, *self.expected_output_shape[1:]), np.float32)
        t = torch.from_numpy(np.ascontiguousarray(x) if x.flags.writeable else np.array(x))
        # whole chunk in, but evaluated in cache-sized slices: 2-3x faster than one huge batch on CPU
        step = len(t) if self.device.type == "cuda" else self.batch_size
        with torch.inference_mode():
            outs = [self.model(t[i : i + step].to(self.device)).cpu() for i in range(0, len(t), step)]
        return torch.cat(outs).numpy()


class XGBoostScorer(_ScorerMixin, xgboost_wrapper):
    """An XGBoost JSON model as a ``coffea.ml_tools.xgboost_wrapper`` (``inplace_predict``)."""

    def __init__(self, path: str | Path, *, card: ModelCard, threads: int | None = None) -> None:
        xgboost_wrapper.__init__(self, str(path))
        self.path = str(path)
        self.card = card
        self.threads = threads

    def _create_xgbooster(self) -> Any:
        booster = super()._create_xgbooster()
        if self.threads:
            booster.set_param({"nthread": self.threads})
        return booster

    def validate_numpy_input(self, x: np.ndarray) -> None:
        self._validate_matrix(x)
        if x.shape[1] != self.xgbooster.num_features():
            raise ModelCardError(
                f"{self.path}: booster has {self.xgbooster.num_features()} features, card {x.shape[1]}"
            )

    def numpy_call(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros(0, np.float32)
        return np.asarray(self.xgbooster.inplace_predict(np.ascontiguousarray(x)), np.float32)


class CwolaScorer(XGBoostScorer):
    """A CWoLa-hunting classifier (card ``model_type`` ``cwola_bdt``): reads the large-R jet columns
    of the card and computes its inputs, m_J / m_JJ and the N-subjettiness ratios with the heavier jet
    first (:func:`~cms_anomaly.models.bdt.cwola_inputs`), inside ``prepare_awkward``."""

    def prepare_awkward(self, features: Any) -> tuple[tuple, dict]:
        from cms_anomaly.models.bdt import cwola_inputs

        _check_fields(features, self.card, self.path)
        if self.get_awkward_lib(features) is not ak:
            raise NotImplementedError(f"{self.path}: CWoLa inputs are computed on eager chunks")
        cols = {c: ak.to_numpy(features[c]) for c in self.card.feature_names}
        return (ak.from_numpy(cwola_inputs(cols)),), {}


Scorer = TorchScorer | XGBoostScorer


def load_scorer(
    path: str | Path, *, feature_names: list[str] | None = None, exact: bool = False, threads: int | None = None
) -> Scorer:
    """Create the scorer of a model file (``.pt`` TorchScript or ``.json`` XGBoost) from its model card.

    Parameters
    ----------
    path : str or Path
        Model file; ``<stem>.card.json`` must be next to it.
    feature_names : list of str, optional
        The processor's feature list. Every model feature must be in it (inputs are
        picked by name); with ``exact=True`` it must equal the model's list, order
        included.
    exact : bool
        Also reject extra and misordered names.
    threads : int, optional
        Threads per worker for inference.

    Raises
    ------
    FeatureMismatchError
        Naming the missing / extra / misordered features.
    ModelCardError
        If the file or its card is missing or unreadable.
    """
    path = Path(path)
    if not path.exists():
        raise ModelCardError(f"model file {path} not found")
    card = load_card(path)
    if feature_names is not None:
        card.check_features(feature_names, source=str(path), exact=exact)
    if path.suffix not in (".pt", ".json"):
        raise ModelCardError(f"{path}: unknown model file type {path.suffix!r} (expected .pt or .json)")
    verify_model_file(path, card)  # before the file is loaded and run: a model file is code
    check_model_file(path, card)
    if path.suffix == ".pt":
        return TorchScorer(path, card=card, threads=threads)
    if card.model_type == "cwola_bdt":
        return CwolaScorer(path, card=card, threads=threads)
    return XGBoostScorer(path, card=card, threads=threads)


def check_model_file(path: Path, card: Any) -> None:
    """Load ``path`` once and evaluate it on two rows of zeros of the card's width, before any chunk.

    A truncated ``.pt``, a corrupt XGBoost JSON or a card whose input width or output count does not
    fit the file raises :class:`ModelCardError` naming the model (the workers would otherwise fail
    at the first chunk with a message that names only the data file).
    """
    n_in, n_out = int(card.n_inputs), len(card.output_names)
    x = np.zeros((2, n_in), dtype=np.float32)
    try:
        if path.suffix == ".pt":
            import torch

            with torch.no_grad():
                out = torch.jit.load(str(path), map_location="cpu")(torch.from_numpy(x)).numpy()
        else:
            import xgboost

            booster = xgboost.Booster(model_file=str(path))
            if booster.num_features() != n_in:
                raise ModelCardError(
                    f"{path}: the booster takes {booster.num_features()} features, its card {n_in} ({card.feature_set})"
                )
            out = booster.inplace_predict(x)
    except ModelCardError:
        raise
    except Exception as err:
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise ModelCardError(
            f"{path}: cannot load or evaluate the model with its card's {n_in} inputs ({type(err).__name__}: {first})"
        ) from err
    out = np.asarray(out).reshape(2, -1)
    if out.shape[1] != n_out:
        raise ModelCardError(
            f"{path}: the model gives {out.shape[1]} outputs per event, its card names {n_out} ({card.output_names})"
        )


#: score axis of calibrated k-fold scores (:class:`KFoldScorer`): -log10 p in [0, 8) in steps of
#: 0.05, so that alpha = 10^-1, 10^-2, ... (and 10^(-k/20)) are bin edges
RARITY_BINNING: tuple[int, float, float] = (160, 0.0, 8.0)


def calibration_path(model_path: str | Path) -> Path:
    """``<stem>.calibration.npy`` next to a model file: the sorted scores of its training events."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name.rsplit(".", 1)[0] + ".calibration.npy")


def write_calibration(model_path: str | Path, training_scores: np.ndarray) -> Path:
    """Store the sorted training scores of a model (plain ``.npy``, loaded without pickle)."""
    from cms_anomaly.core.atomic import atomic_output

    scores = np.sort(np.asarray(training_scores, dtype=np.float64).ravel())
    scores = scores[np.isfinite(scores)]
    if scores.size == 0:
        raise ModelCardError(f"{model_path}: no finite training score to calibrate with")
    path = calibration_path(model_path)
    with atomic_output(path) as tmp, tmp.open("wb") as f:
        np.save(f, scores, allow_pickle=False)
    return path


def rarity(scores: np.ndarray, sorted_training: np.ndarray) -> np.ndarray:
    """-log10 p of each score, p = (1 + training scores >= s) / (N_training + 1).

    A monotone map of one model's score onto the fraction of its training sample that scores as
    high; the models of a k-fold ensemble, each on its own scale, become comparable. NaN stays NaN.
    """
    s = np.asarray(scores, dtype=np.float64)
    n = len(sorted_training)
    above = n - np.searchsorted(sorted_training, s, side="left")
    out = -np.log10((1.0 + above) / (n + 1.0))
    return np.where(np.isnan(s), np.nan, out)


class KFoldScorer:
    """A k-fold ensemble: model ``i`` scores the events of fold ``i`` (:class:`KFold`), the models it
    was not trained on; scores calibrated to a common scale (:func:`rarity`, output ``rarity``).

    The processor calls it as ``scorer(features, folds=scorer.fold_of(run, event))``; it pickles
    (its members load their model lazily on each worker).
    """

    output_names: ClassVar[list[str]] = ["rarity"]
    score_binning = RARITY_BINNING

    def __init__(
        self,
        scorers: list[Any],
        calibrations: list[np.ndarray],
        folds: Any,
        *,
        output: str | None = None,
        name: str = "kfold",
    ) -> None:
        if len(scorers) != folds.k or len(calibrations) != folds.k:
            raise ValueError(
                f"KFoldScorer: {len(scorers)} models and {len(calibrations)} calibrations for k = {folds.k}"
            )
        features = {tuple(s.feature_names) for s in scorers}
        if len(features) != 1:
            raise FeatureMismatchError(
                expected=list(scorers[0].feature_names),
                actual=list(scorers[-1].feature_names),
                source="KFoldScorer: the fold models read different features",
            )
        outputs = list(scorers[0].output_names)
        self.output_index = outputs.index(output) if output is not None else 0
        self.scorers, self.calibrations, self.folds, self._name = list(scorers), list(calibrations), folds, name

    @classmethod
    def load(
        cls,
        paths: list[str | Path],
        folds: Any,
        *,
        output: str | None = None,
        name: str = "kfold",
        threads: int | None = None,
    ) -> KFoldScorer:
        """The ensemble of the model files ``paths`` (fold order) and their calibration files."""
        cals = []
        for p in paths:
            cal = calibration_path(p)
            if not cal.exists():
                raise ModelCardError(f"{p}: no calibration file {cal.name} (written by write_calibration)")
            cals.append(np.load(cal, allow_pickle=False))
        return cls([load_scorer(p, threads=threads) for p in paths], cals, folds, output=output, name=name)

    @property
    def name(self) -> str:
        return self._name

    @property
    def feature_names(self) -> list[str]:
        return list(self.scorers[0].feature_names)

    def fold_of(self, run: np.ndarray, event: np.ndarray) -> np.ndarray:
        return self.folds.fold(run, event)

    def __call__(self, features: Any, *, folds: np.ndarray | None = None) -> np.ndarray:
        if folds is None:
            raise ValueError("KFoldScorer needs the events' folds: scorer(features, folds=scorer.fold_of(run, event))")
        folds = np.asarray(folds)
        out = np.full(len(features), np.nan)
        for i, (scorer, cal) in enumerate(zip(self.scorers, self.calibrations, strict=True)):
            rows = np.flatnonzero(folds == i)
            if rows.size:
                raw = np.asarray(scorer(features[rows]), dtype=np.float64).reshape(rows.size, -1)
                out[rows] = rarity(raw[:, self.output_index], cal)
        return out
