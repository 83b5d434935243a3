"""TorchScript export with a JSON model card, score thresholds at fixed SM false-positive rates."""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cms_anomaly.datasets.atomic import atomic_output, write_text_atomic
from cms_anomaly.models.errors import FeatureMismatchError, ModelCardError

log = logging.getLogger(__name__)

#: SM false-positive rates of the working points (5.4e-6 = ~1000 SM events / month, Cerri)
WORKING_POINT_FPRS: tuple[float, ...] = (5.4e-6, 1e-5, 1e-3)
CARD_SUFFIX = ".card.json"
#: an empirical quantile needs at least this many (effective) SM events above it
MIN_EVENTS_ABOVE = 10.0


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
    file : str
        Model file name (relative to the card).
    framework : dict
        Library versions.
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
    file: str = ""
    framework: dict[str, str] = field(default_factory=dict)

    def check_features(self, names: list[str] | tuple[str, ...], *, source: str | None = None,
                       exact: bool = True) -> None:
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
            raise FeatureMismatchError(expected=expected, actual=[n for n in expected if n in names],
                                       source=source or self.file)


def card_path(model_path: str | Path) -> Path:
    """``model.pt`` -> ``model.card.json``."""
    p = Path(model_path)
    return p.with_name(p.name.rsplit(".", 1)[0] + CARD_SUFFIX)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`cms_anomaly.datasets.atomic.write_text_atomic`)."""
    write_text_atomic(path, text)


def write_card(card: ModelCard, model_path: str | Path) -> Path:
    """Write ``card`` as JSON next to ``model_path``; returns the card path."""
    card.file = Path(model_path).name
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


def _finite_weighted(scores, weights, where: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Finite scores with their weights (default 1) and the effective number of entries."""
    scores = np.asarray(scores, np.float64)
    w = np.ones_like(scores) if weights is None else np.asarray(weights, np.float64)
    ok = np.isfinite(scores)
    scores, w = scores[ok], w[ok]
    if scores.size == 0:
        raise ValueError(f"{where}: no finite scores")
    return scores, w, float(w.sum() ** 2 / np.sum(w * w))


def _weighted_survival(scores: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(scores)[::-1]
    s = scores[order]
    cw = np.cumsum(weights[order]) / weights.sum()
    return s, cw  # fraction of weight with score >= s[i]


def threshold_at_fpr(scores: np.ndarray, weights: np.ndarray | None = None, *, fpr: float,
                     tail_fraction: float = 0.01) -> dict[str, Any]:
    """Score threshold above which a fraction ``fpr`` of the (weighted) SM events lies.

    When fewer than :data:`MIN_EVENTS_ABOVE` effective events would lie above the
    empirical threshold, the survival function is extrapolated: ``log S(t)`` is
    fitted linearly in ``t`` over the top ``tail_fraction`` of the SM scores (an
    exponential tail) and solved for ``S(t) = fpr``.

    Parameters
    ----------
    scores : numpy.ndarray
        SM validation scores (N,).
    weights : numpy.ndarray, optional
        Per-event weights (default 1).
    fpr : float
        Target false-positive rate.
    tail_fraction : float
        Fraction of the distribution used for the tail fit.

    Returns
    -------
    dict
        ``threshold``, ``method`` (``empirical`` or ``exponential_tail_fit``),
        ``n_events``, ``n_eff_above`` and for a fit its slope and range.
    """
    scores, w, n_eff = _finite_weighted(scores, weights, "threshold_at_fpr")
    s, surv = _weighted_survival(scores, w)
    out: dict[str, Any] = {"fpr": fpr, "n_events": int(scores.size), "n_eff": float(n_eff)}
    if fpr * n_eff >= MIN_EVENTS_ABOVE:
        i = int(np.searchsorted(surv, fpr, side="left"))
        out.update(threshold=float(s[min(i, s.size - 1)]), method="empirical", n_eff_above=float(fpr * n_eff))
        return out
    fit = _tail_fit(s, surv, tail_fraction)
    if isinstance(fit, str):
        out.update(threshold=float(s[0]), method=f"max_score ({fit})")
        return out
    slope, intercept, k, lo, hi = fit
    out.update(threshold=float((np.log(fpr) - intercept) / slope), method="exponential_tail_fit",
               tail_events=k, tail_range=[lo, hi], slope=float(slope),
               note=f"only {fpr * n_eff:.2g} effective SM events expected above; log-survival fitted "
                    f"linearly over the top {k} scores and extrapolated")
    return out


def _tail_fit(s: np.ndarray, surv: np.ndarray, tail_fraction: float) -> tuple[float, float, int, float, float] | str:
    """Straight-line fit of ``log S(t)`` over the top ``tail_fraction`` of the scores (at least 50).

    ``s`` and ``surv`` come from :func:`_weighted_survival`. Returns (slope, intercept, events,
    low, high end of the fitted range) or, when no falling tail can be fitted, the reason.
    """
    k = max(int(tail_fraction * s.size), min(50, s.size))
    ts, ls = s[:k], np.log(surv[:k])
    if k < 5 or np.ptp(ts) == 0:
        return "too few events to extrapolate"
    slope, intercept = np.polyfit(ts, ls, 1)
    if slope >= 0:
        return "tail not falling"
    return float(slope), float(intercept), k, float(ts[-1]), float(ts[0])


def efficiency_above(scores: np.ndarray, weights: np.ndarray | None = None, *, threshold: float,
                     tail_fraction: float = 0.01, cl: float = 0.95) -> dict[str, Any]:
    """Weighted fraction of events with ``score > threshold``, extrapolated beyond the sample.

    Measured (with an Agresti-Coull interval at ``cl`` on effective counts) when at least
    :data:`MIN_EVENTS_ABOVE` effective events pass; otherwise read off the same exponential fit
    of the sample's own survival tail that :func:`threshold_at_fpr` uses (no interval then: the
    fit's assumption, not counting, dominates).
    """
    from cms_anomaly.processors.statistics import weighted_efficiency

    scores, w, n_eff = _finite_weighted(scores, weights, "efficiency_above")
    passed = scores > threshold
    measured = weighted_efficiency(passed, w, cl=cl)
    out: dict[str, Any] = {"n_events": int(scores.size), "n_eff": float(n_eff), "n_passed": int(passed.sum())}
    if measured.estimate * n_eff >= MIN_EVENTS_ABOVE:
        out.update(efficiency=float(measured.estimate), low=float(measured.low), high=float(measured.high),
                   method="empirical")
        return out
    s, surv = _weighted_survival(scores, w)
    fit = _tail_fit(s, surv, tail_fraction)
    if isinstance(fit, str) or threshold <= fit[3]:
        out.update(efficiency=float(measured.estimate), low=float(measured.low), high=float(measured.high),
                   method="empirical (few events)" if isinstance(fit, str) else "empirical")
        return out
    slope, intercept = fit[0], fit[1]
    out.update(efficiency=float(np.exp(slope * threshold + intercept)), low=float("nan"), high=float("nan"),
               method="exponential_tail_fit", upper_limit_empirical=float(measured.high))
    return out


def thresholds_for(scores: np.ndarray, weights: np.ndarray | None, output_names: list[str] | tuple[str, ...],
                   fprs: tuple[float, ...] = WORKING_POINT_FPRS) -> dict[str, dict[str, Any]]:
    """Thresholds for each output column at each FPR: ``{output: {str(fpr): {...}}}``."""
    scores = np.asarray(scores)
    cols = scores.reshape(len(scores), -1)
    return {name: {f"{f:g}": threshold_at_fpr(cols[:, j], weights, fpr=f) for f in fprs}
            for j, name in enumerate(output_names)}


def script_module(module: nn.Module) -> torch.jit.ScriptModule:
    """``torch.jit.script`` a CPU eval-mode copy of ``module``."""
    module = module.cpu().eval()
    return torch.jit.script(module)


def export_torchscript(module: nn.Module, path: str | Path, *, card: ModelCard,
                       check_input: np.ndarray | None = None, rtol: float = 1e-5, atol: float = 1e-6) -> Path:
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
    scripted = script_module(module)
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
            raise ModelCardError(f"{path}: TorchScript output differs from the eager module "
                                 f"(max |diff| {np.max(np.abs(ref - got)):.3g})")
    log.info("exported %s (%s)", path, card.model_type)
    return path


def eager_scores(module: nn.Module, x: np.ndarray, *, batch_size: int = 65536) -> np.ndarray:
    """Evaluate ``module`` on raw features in eval mode, batched, as a numpy array."""
    module.eval()
    outs = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb = torch.as_tensor(np.ascontiguousarray(x[start:start + batch_size], np.float32))
            outs.append(module(xb).cpu().numpy())
    if not outs:
        return np.zeros((0,), np.float32)
    return np.concatenate(outs)
