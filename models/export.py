"""TorchScript export with a JSON model card, score thresholds at fixed SM false-positive rates."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from cms_anomaly.core.atomic import atomic_output, write_text_atomic
from cms_anomaly.models.errors import FeatureMismatchError, ModelCardError
from cms_anomaly.stats import SM_WORKING_POINTS, threshold_at_fpr
from torch import nn

log = logging.getLogger(__name__)

#: SM false-positive rates of the working points (5.4e-6 = ~1000 SM events / month, Cerri)
WORKING_POINT_FPRS: tuple[float, ...] = SM_WORKING_POINTS
CARD_SUFFIX = ".card.json"
#: model file suffix -> the format a card records (:attr:`ModelCard.format`)
MODEL_FORMATS: dict[str, str] = {".pt": "torchscript", ".json": "xgboost"}
#: card ``model_type``s stored as XGBoost boosters (the format of a card written before ``format`` existed)
XGBOOST_MODEL_TYPES: frozenset[str] = frozenset({"bdt", "cwola_bdt"})


@dataclass
class ModelCard:
    """Metadata written next to every exported model (``<model>.card.json``).

    Attributes
    ----------
    model_type : str
        ``ae``, ``vae``, ``alad``, ``double_ae``, ``bdt``, ``cwola``.
    feature_set : str
        Feature set name (``hlf21``, ``hlf24``, ``rmm``, ``objects``).
    feature_names : list of str
        Ordered input column names.
    n_inputs : int
        Flattened input width.
    output_names : list of str
        Names of the output columns.
    score : str
        Name of the score this file returns (e.g. ``l1`` for an ALAD file).
    preprocessing : dict
        Summary of the fitted preprocessing inside the model.
    architecture : dict
        Layer sizes / hyper-parameters.
    training : dict
        Datasets, event counts, seed, epochs, validation loss, device, timing.
    thresholds : dict
        Per output name: ``{fpr: {"threshold", "method", ...}}``.
    score_ranges : dict
        Per output name: ``[min, max]`` of the finite scores of the SM validation events; the
        processor's score axis follows it (:func:`~cms_anomaly.models.scorers.score_binning_for`).
    file : str
        Model file name (relative to the card).
    framework : dict
        Library versions.
    format : str
        ``torchscript`` or ``xgboost`` (:data:`MODEL_FORMATS`); empty in cards older than the field.
    sha256 : str
        SHA-256 of the model file when the card was written: a model file is code (TorchScript runs
        what it holds), so loading refuses a file that is not the exported one. Empty in older cards.
    """

    model_type: str
    feature_set: str
    feature_names: list[str]
    n_inputs: int
    output_names: list[str]
    score: str
    preprocessing: dict[str, Any] = field(default_factory=dict)
    architecture: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=dict)
    score_ranges: dict[str, list[float]] = field(default_factory=dict)
    file: str = ""
    framework: dict[str, str] = field(default_factory=dict)
    format: str = ""
    sha256: str = ""

    def check_features(
        self, names: list[str] | tuple[str, ...], *, source: str | None = None, exact: bool = True
    ) -> None:
        """Check a caller's feature list against :attr:`feature_names`.

        With ``exact=True`` the lists must be identical (missing, extra and misordered
        names are reported); with ``exact=False`` the caller may offer a superset in any
        order (inputs are picked by name) and only missing names are an error.

        Raises
        ------
        FeatureMismatchError
        """
        names = list(names)
        expected = list(self.feature_names)
        if exact:
            if names != expected:
                raise FeatureMismatchError(expected=expected, actual=names, source=source or self.file)
        elif any(n not in names for n in expected):
            raise FeatureMismatchError(
                expected=expected, actual=[n for n in expected if n in names], source=source or self.file
            )


def card_path(model_path: str | Path) -> Path:
    """``model.pt`` -> ``model.card.json``."""
    p = Path(model_path)
    return p.with_name(p.name.rsplit(".", 1)[0] + CARD_SUFFIX)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`cms_anomaly.core.atomic.write_text_atomic`)."""
    write_text_atomic(path, text)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fin:
        for block in iter(lambda: fin.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_card(card: ModelCard, model_path: str | Path) -> Path:
    """Write ``card`` as JSON next to ``model_path`` (already written), with the file's name, format and
    SHA-256; returns the card path."""
    card.file = Path(model_path).name
    card.format = MODEL_FORMATS.get(Path(model_path).suffix, "")
    card.sha256 = file_sha256(model_path)
    path = card_path(model_path)
    atomic_write_text(path, json.dumps(asdict(card), indent=1, default=_json_default) + "\n")
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def load_card(model_path: str | Path) -> ModelCard:
    """Read the model card of ``model_path`` (the ``.pt``/``.json`` model file or the card itself)."""
    p = Path(model_path)
    path = p if p.name.endswith(CARD_SUFFIX) else card_path(p)
    if not path.exists():
        raise ModelCardError(f"model card {path} not found (expected next to {model_path})")
    try:
        data = json.loads(path.read_text())
        return ModelCard(**data)
    except (json.JSONDecodeError, TypeError) as err:
        raise ModelCardError(f"model card {path} unreadable: {err}") from err


def verify_model_file(path: str | Path, card: ModelCard) -> None:
    """Refuse a model file that its card does not describe, before the file is loaded (it is code).

    The file's format (by suffix) must be the card's (a card without ``format`` gets the one of its
    ``model_type``), and its SHA-256 the one recorded at export. The choice for cards written before
    the hash existed: accepted with a warning asking to re-export, so that trained models keep working.

    Raises
    ------
    ModelCardError
        One line naming the file and what does not match.
    """
    path = Path(path)
    fmt = MODEL_FORMATS.get(path.suffix, "")
    card_fmt = card.format or ("xgboost" if card.model_type in XGBOOST_MODEL_TYPES else "torchscript")
    if fmt != card_fmt:
        raise ModelCardError(
            f"{path}: a {fmt or path.suffix} model file, but its card {card_path(path).name} describes a {card_fmt} "
            f"{card.model_type!r} model ({card.file or 'no file named'}): use the card written with this model"
        )
    if not card.sha256:
        log.warning(
            "%s: its card records no SHA-256 (a card older than the hash): not verified; re-export (cms-anomaly train) to record it",
            path,
        )
        return
    if file_sha256(path) != card.sha256:
        raise ModelCardError(
            f"{path}: SHA-256 differs from the one its card {card_path(path).name} recorded at export: the file was "
            "changed or replaced; re-export the model (cms-anomaly train) to get a matching file and card"
        )


def thresholds_for(
    scores: np.ndarray,
    weights: np.ndarray | None,
    output_names: list[str] | tuple[str, ...],
    fprs: tuple[float, ...] = WORKING_POINT_FPRS,
) -> dict[str, dict[str, Any]]:
    """Thresholds for each output column at each FPR: ``{output: {str(fpr): {...}}}``."""
    scores = np.asarray(scores)
    cols = scores.reshape(len(scores), -1)
    return {
        name: {f"{f:g}": threshold_at_fpr(cols[:, j], weights, fpr=f) for f in fprs}
        for j, name in enumerate(output_names)
    }


def score_ranges_for(scores: np.ndarray, output_names: list[str] | tuple[str, ...]) -> dict[str, list[float]]:
    """``{output: [min, max]}`` of the finite scores of each output column (empty columns left out)."""
    cols = np.asarray(scores, dtype=np.float64).reshape(len(scores), -1)
    out = {}
    for j, name in enumerate(output_names):
        col = cols[:, j][np.isfinite(cols[:, j])]
        if col.size:
            out[name] = [float(col.min()), float(col.max())]
    return out


class InputWidthGuard(nn.Module):
    """Wraps an exported model so that a feature matrix of another width is refused, not half-used.

    A model that picks its inputs by column index would otherwise accept a wider matrix (an HLF-24
    card on an HLF-21 model) and score garbage.
    """

    def __init__(self, model: nn.Module, n_inputs: int) -> None:
        super().__init__()
        self.model = model
        self.n_inputs = int(n_inputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.n_inputs:
            raise RuntimeError(f"expected a (N, {self.n_inputs}) feature matrix, got {list(x.shape)}")
        return self.model(x)


def script_module(module: nn.Module) -> torch.jit.ScriptModule:
    """``torch.jit.script`` a CPU eval-mode copy of ``module``."""
    module = module.cpu().eval()
    return torch.jit.script(module)


def export_torchscript(
    module: nn.Module,
    path: str | Path,
    *,
    card: ModelCard,
    check_input: np.ndarray | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-6,
) -> Path:
    """Script ``module`` and save it atomically to ``path`` with its model card.

    Parameters
    ----------
    module : nn.Module
        Maps raw float32 features (N, n_inputs) to scores.
    path : str or Path
        Output ``.pt`` file.
    card : ModelCard
        Written next to it as ``<name>.card.json``.
    check_input : numpy.ndarray, optional
        Raw features on which the scripted file, re-loaded, must reproduce the eager
        module's output (raises ``ModelCardError`` otherwise).
    """
    path = Path(path)
    scripted = script_module(InputWidthGuard(module, card.n_inputs))
    with atomic_output(path) as tmp:
        scripted.save(str(tmp))
    card.framework = {"torch": torch.__version__, "numpy": np.__version__}
    write_card(card, path)
    if check_input is not None:
        x = torch.as_tensor(np.ascontiguousarray(check_input, np.float32))
        with torch.no_grad():
            ref = module(x).numpy()
            got = torch.jit.load(str(path))(x).numpy()
        if not np.allclose(ref, got, rtol=rtol, atol=atol):
            raise ModelCardError(
                f"{path}: TorchScript output differs from the eager module (max |diff| {np.max(np.abs(ref - got)):.3g})"
            )
    log.info("exported %s (%s)", path, card.model_type)
    return path


def eager_scores(module: nn.Module, x: np.ndarray, *, batch_size: int = 65536) -> np.ndarray:
    """Evaluate ``module`` on raw features in eval mode, batched, as a numpy array."""
    module.eval()
    outs = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb = torch.as_tensor(np.ascontiguousarray(x[start : start + batch_size], np.float32))
            outs.append(module(xb).cpu().numpy())
    if not outs:
        return np.zeros((0,), np.float32)
    return np.concatenate(outs)
