"""Training curves: training and validation loss of a detector (from its model card) or of a BDT.

A history is a list of dicts with ``train_loss`` and ``val_loss`` (either may be missing or NaN in
an entry: validation every few steps), x the ``step`` when present, else the ``epoch``; an optional
``criterion`` (the stopping criterion) goes on a second axis. Model cards hold it as
``training["history"]`` with the selected point as ``training["best_step"]`` or
``training["best_epoch"]``; XGBoost's ``evals_result`` becomes one with :func:`xgboost_history`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from cms_anomaly.analyses.plot_style import PROCESS_COLORS, PlotError, cms_label, cms_style, new_figure, save_png


def _column(history: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    """``history[i][key]`` as floats, NaN where an entry lacks it."""
    return np.array([math.nan if e.get(key) is None else float(e[key]) for e in history], dtype=np.float64)


def plot_training(
    history: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    *,
    best: float | None = None,
    title: str | None = None,
    loss_label: str = "Loss",
    xlabel: str | None = None,
    criterion_label: str = "Stopping criterion",
    text: str | None = None,
) -> Path:
    """Training and validation loss against step (or epoch), the criterion on a second axis.

    Parameters
    ----------
    history : sequence of dict
        Entries with ``train_loss`` / ``val_loss`` and ``step`` or ``epoch`` (optional ``criterion``).
    path : str or path-like
        Output PNG.
    best : float, optional
        The selected step (or epoch), marked by a vertical line.
    title : str, optional
        Extra text in the plot (e.g. the model name).
    loss_label, criterion_label : str
        Axis labels.
    xlabel : str, optional
        The x axis label (default "Step" or "Epoch").
    text : str, optional
        CMS label text (default "Private Work", without "Simulation").

    Returns
    -------
    pathlib.Path
        The written PNG.
    """
    if not history:
        raise PlotError("plot_training: empty history")
    xkey = "step" if any("step" in e for e in history) else "epoch"
    x = _column(history, xkey)
    series = {"Training": _column(history, "train_loss"), "Validation": _column(history, "val_loss")}
    if not any(np.isfinite(y).any() for y in series.values()):
        raise PlotError("plot_training: no entry of the history has a train_loss or val_loss")
    criterion = _column(history, "criterion")
    with cms_style():
        fig, ax, _ = new_figure(ratio=False)
        finite = np.concatenate([y[np.isfinite(y)] for y in series.values()])
        for i, (label, y) in enumerate(series.items()):
            ok = np.isfinite(y) & np.isfinite(x)
            if ok.any():
                ax.plot(
                    x[ok],
                    y[ok],
                    color=PROCESS_COLORS[i],
                    lw=2,
                    label=f"{label} loss",
                    marker="o" if ok.sum() < 30 else None,
                )
        if finite.min() > 0 and finite.max() > 20 * finite.min():
            ax.set_yscale("log")
        if best is not None and math.isfinite(best):
            ax.axvline(best, color="grey", ls="--", lw=1.5, label=f"selected {xkey} {best:g}")
        ax.set_xlabel(xlabel or xkey.capitalize())
        ax.set_ylabel(loss_label)
        handles, labels = ax.get_legend_handles_labels()
        top = ax
        ok = np.isfinite(criterion) & np.isfinite(x)
        if ok.any():
            top = ax.twinx()  # drawn above ax: the legend goes on it
            top.plot(x[ok], criterion[ok], color=PROCESS_COLORS[2], lw=2, ls=":", label=criterion_label)
            top.set_ylabel(criterion_label, color=PROCESS_COLORS[2])
            h2, l2 = top.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        top.legend(handles, labels, loc="upper right", title=title, frameon=True, framealpha=0.9)
        # a detector may have trained on collision data: no "Simulation" in the label
        cms_label(ax, data=True, text=text or "Private Work", lumi=None, com=None)
        return save_png(fig, path)


def xgboost_history(evals_result: Mapping[str, Mapping[str, Sequence[float]]], metric: str = "logloss") -> list[dict]:
    """XGBoost's ``evals_result`` (``{"train": {metric: [...]}, "val": {...}}``) as a history, one entry per round."""
    train = list(evals_result.get("train", {}).get(metric, []))
    val = list(evals_result.get("val", {}).get(metric, []))
    return [
        {
            "step": i + 1,
            "train_loss": train[i] if i < len(train) else None,
            "val_loss": val[i] if i < len(val) else None,
        }
        for i in range(max(len(train), len(val)))
    ]


def card_history(training: Mapping[str, Any]) -> tuple[list[dict], float | None]:
    """(history, selected step or epoch) of a model card's ``training`` block; ``([], None)`` without one.

    A card with an XGBoost ``evals_result`` (``training["evals_result"]``) gives its logloss per round.
    """
    history = training.get("history")
    if not history and training.get("evals_result"):
        return xgboost_history(training["evals_result"]), training.get("best_iteration")
    if not history:
        return [], None
    history = list(history)
    if any("step" in e for e in history):
        best = training.get("best_step", training.get("selected_step"))
    else:
        best = training.get("best_epoch")
    return history, None if best is None or best < 0 else float(best)


def plot_model_training(
    models: Mapping[str, str | os.PathLike], report_dir: Path, *, text: str | None = None
) -> list[Path]:
    """``training_<name>.png`` in ``report_dir`` for each ``{name: model file}`` whose card has a history."""
    from cms_anomaly.models.export import load_card

    pngs = []
    for name, model_path in models.items():
        card = load_card(model_path)
        history, best = card_history(card.training or {})
        if history:
            title = f"{card.model_type} ({card.score})"
            boosted = {"loss_label": "Log loss", "xlabel": "Boosting round"} if "evals_result" in card.training else {}
            path = Path(report_dir) / f"training_{name}.png"
            pngs.append(plot_training(history, path, best=best, title=title, text=text, **boosted))
    return pngs
