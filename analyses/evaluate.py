"""Train every model on the SM cocktail and tabulate AUC and TPR at fixed FPR per BSM benchmark.

Models: VAE (HLF-21), ALAD (HLF-21, four scores), AE (RMM), double AE (objects,
lambda = 100 and lambda = 0; combined "diagonal" score = min of the two SM
quantiles), and one supervised BDT per signal (HLF-21); beside them the trivial baseline every
detector must beat (:mod:`~cms_anomaly.models.baseline`: the L1 distance of the standardised inputs
from their median) on each input set. SM events are split in
halves (train / validation) and every signal in halves (BDT training / test);
all metrics use the SM validation half (cross-section weighted) and the signal
test half, so every model sees the same events.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import argparse

    from cms_anomaly.models.data import Sample

log = logging.getLogger(__name__)

EVAL_FPRS = (1e-3, 1e-5)


@dataclass
class EvaluateOptions:
    """Settings of :func:`evaluate` (CPU-sized defaults; the papers' values where affordable).

    Attributes
    ----------
    seed : int
        Seed of splits, initialisation and batches.
    epochs : dict
        Maximum epochs per model kind (default: the registry's
        :class:`~cms_anomaly.models.registry.Budget`).
    overrides : dict
        Per-kind :class:`TrainOptions` field overrides (batch size, learning rate; default: the budget's).
    dcor_events : int
        SM validation events used for the distance correlation (O(n^2)).
    device, threads, progress
        Passed to training.
    """

    seed: int = 1
    epochs: dict[str, int] = field(default_factory=lambda: _budgets()[0])
    overrides: dict[str, dict[str, Any]] = field(default_factory=lambda: _budgets()[1])
    dcor_events: int = 5000
    device: str = "auto"
    threads: int | None = None
    progress: bool = True


def _budgets() -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
    """Epochs and training-option overrides per model kind from the registry's budgets."""
    from cms_anomaly.models.registry import specs

    budgets = {k: s.budget for k, s in specs().items() if s.budget is not None}
    return {k: b.epochs for k, b in budgets.items()}, {k: dict(b.overrides) for k, b in budgets.items() if b.overrides}


# ----------------------------------------------------------------------------- metrics
def _metrics(s_bkg: np.ndarray, w_bkg: np.ndarray, s_sig: np.ndarray) -> dict[str, Any]:
    from cms_anomaly.stats import threshold_at_fpr

    """AUC and TPR at :data:`EVAL_FPRS` (statistics helper; extrapolated thresholds where SM statistics run out)."""
    from cms_anomaly import stats as statistics

    out: dict[str, Any] = {"auc": statistics.auc(s_bkg, s_sig, bkg_weights=w_bkg)}
    for f in EVAL_FPRS:
        th = threshold_at_fpr(s_bkg, w_bkg, fpr=f)
        if th["method"] == "empirical":
            wp = statistics.tpr_at_fpr(s_bkg, s_sig, fpr=f, bkg_weights=w_bkg)
            out[f"tpr@{f:g}"], out[f"tpr_interval@{f:g}"] = wp.tpr, list(wp.tpr_interval)
        else:  # threshold from the exponential SM tail fit (as in the model cards)
            out[f"tpr@{f:g}"] = float(np.mean(s_sig > th["threshold"]))
        out[f"method@{f:g}"] = th["method"]
    return out


# ----------------------------------------------------------------------------- driver
def _signal_test(samples: dict[str, Sample], seed: int) -> dict[str, np.ndarray]:
    from cms_anomaly.models.data import validation_mask

    return {n: s.x[validation_mask(s, val_fraction=0.5, seed=seed)] for n, s in samples.items() if s.is_signal}


def evaluate(
    features_dir: str | Path,
    out_dir: str | Path,
    *,
    options: EvaluateOptions | None = None,
    datasets: list[str] | None = None,
) -> dict[str, Any]:
    """Train all models on the SM datasets and evaluate them on every BSM benchmark.

    Parameters
    ----------
    features_dir : str or Path
        Parquet feature tables ``<dataset>/*.parquet``.
    out_dir : str or Path
        Receives ``models/`` (exported models + cards), ``evaluation.md``,
        ``evaluation.json``, ``roc_<signal>.png`` and ``training_<model>.png`` (the loss curves of the
        model cards that hold a training history).
    options : EvaluateOptions
        Training settings.
    datasets : list of str, optional
        Restrict to these datasets.

    Returns
    -------
    dict
        The JSON summary (also written to ``evaluation.json``).
    """
    from cms_anomaly.analyses.plot_training import plot_model_training
    from cms_anomaly.models.data import read_samples
    from cms_anomaly.models.export import CARD_SUFFIX, atomic_write_text
    from cms_anomaly.models.feature_sets import get_feature_set
    from cms_anomaly.models.pipeline import TrainOptions, split_cocktail

    out_dir = Path(out_dir)
    options = options if options is not None else EvaluateOptions()
    seed = options.seed
    base = TrainOptions(seed=seed, device=options.device, threads=options.threads, progress=options.progress)
    sets = {
        fs: read_samples(features_dir, feature_set=get_feature_set(fs), datasets=datasets)
        for fs in ("hlf21", "rmm", "objects")
    }
    signals = sorted(n for n, s in sets["hlf21"].items() if s.is_signal)
    if not signals:
        raise ValueError(f"no signal datasets (is_signal True) in {features_dir}")
    _, sm_val = split_cocktail(sets["hlf21"], val_fraction=base.val_fraction, seed=seed)
    job = _Job(features_dir, out_dir / "models", sets, options, base)
    scores, info = _network_scores(job, sm_val.weight)
    bdt_sm, bdt_sig, sig_test = _bdt_scores(job, sm_val)
    summary = _summary(job, scores, bdt_sm, bdt_sig, sm_val=sm_val, sig_test=sig_test, info=info)
    md = format_markdown(summary)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "evaluation.json", json.dumps(summary, indent=1, default=float) + "\n")
    atomic_write_text(out_dir / "evaluation.md", md)
    try:
        plot_roc(scores, bdt_sm, bdt_sig, sm_val.weight, signals, out_dir / "roc.png")
    except Exception as err:  # noqa: BLE001 - the table is the product; a plotting failure is logged
        log.warning("ROC plot failed: %s", err)
    cards = sorted(job.model_dir.glob(f"*{CARD_SUFFIX}"))
    plot_model_training({c.name.removesuffix(CARD_SUFFIX): c for c in cards}, out_dir)
    return summary


@dataclass
class _Job:
    """What every model of one :func:`evaluate` run shares: inputs, output, samples per feature set, options."""

    features_dir: str | Path
    model_dir: Path
    sets: dict[str, dict[str, Sample]]
    options: EvaluateOptions
    base: Any


def _train_scored(job: _Job, info: dict[str, Any], kind: str, fs: str, **extra: Any) -> tuple[Any, Any, Any]:
    """Train ``kind`` on ``fs`` and score the SM validation and signal test events; the run goes into ``info``."""
    from cms_anomaly.models.export import eager_scores
    from cms_anomaly.models.pipeline import split_cocktail, train_and_export

    options, base = job.options, job.base
    opts = replace(base, epochs=options.epochs.get(kind), **{**options.overrides.get(kind, {}), **extra})
    name = f"{kind.replace('-', '_')}_{fs}" + (f"_lambda{extra['lam']:g}" if "lam" in extra else "")
    trained = train_and_export(
        kind,
        features_dir=job.features_dir,
        out_dir=job.model_dir,
        feature_set=fs,
        options=opts,
        samples=job.sets[fs],
        name=name,
    )
    if trained.train_result is not None:  # the baseline is fitted, not trained
        info["training"][name] = {
            k: trained.cards[0].training[k]
            for k in ("n_train", "epochs_run", "best_epoch", "validation_loss", "seconds", "train_events_per_second")
        }
        info["training"][name]["settings"] = {
            "batch_size": trained.cards[0].training["hyper"]["batch_size"],
            "lr": trained.cards[0].training["hyper"]["lr"],
        }
    _, val = split_cocktail(job.sets[fs], val_fraction=base.val_fraction, seed=options.seed)
    sig = _signal_test(job.sets[fs], options.seed)
    return (
        trained.model,
        eager_scores(trained.model, val.x),
        {n: eager_scores(trained.model, x) for n, x in sig.items()},
    )


def _network_scores(
    job: _Job, w_val: np.ndarray
) -> tuple[dict[str, tuple[np.ndarray, dict[str, np.ndarray]]], dict[str, Any]]:
    """Scores of VAE, ALAD, AE and the double AE (λ 100 and 0) and of the baseline on each of their input
    sets, by column name, and the training record."""
    import torch
    from cms_anomaly.models.double_ae import distance_correlation_squared
    from cms_anomaly.stats import weighted_cdf

    seed = job.options.seed
    scores: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
    info: dict[str, Any] = {"training": {}}
    model, sv, ss = _train_scored(job, info, "vae", "hlf21")
    scores["VAE"] = (sv, ss)
    model, sv, ss = _train_scored(job, info, "alad", "hlf21")
    for j, name in enumerate(model.output_names):
        scores[f"ALAD {name}"] = (sv[:, j], {n: v[:, j] for n, v in ss.items()})
    model, sv, ss = _train_scored(job, info, "ae", "rmm")
    scores["AE (RMM)"] = (sv, ss)
    dcor = {}
    for lam in (100.0, 0.0):
        model, sv, ss = _train_scored(job, info, "double-ae", "objects", lam=lam)
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(sv), size=min(job.options.dcor_events, len(sv)), replace=False)
        r = torch.as_tensor(sv[pick], dtype=torch.float64)
        dcor[f"{lam:g}"] = float(torch.sqrt(distance_correlation_squared(r[:, 0], r[:, 1])))
        if lam == 100.0:

            def q(v: np.ndarray, sv: np.ndarray = sv) -> np.ndarray:
                return np.minimum(weighted_cdf(sv[:, 0], w_val, v[:, 0]), weighted_cdf(sv[:, 1], w_val, v[:, 1]))

            scores["double AE (λ=100)"] = (q(sv), {n: q(v) for n, v in ss.items()})
    for fs, label in (("hlf21", "HLF-21"), ("rmm", "RMM"), ("objects", "objects")):
        _, sv, ss = _train_scored(job, info, "baseline", fs)
        scores[f"baseline ({label})"] = (sv, ss)
    info["double_ae_distance_correlation"] = {"lambda=" + k: v for k, v in dcor.items()}
    info["double_ae_distance_correlation_events"] = int(min(job.options.dcor_events, len(w_val)))
    return scores, info


def _bdt_scores(job: _Job, sm_val: Sample) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    """One supervised BDT per signal: its SM validation and signal test scores, and the signal test events."""
    import xgboost
    from cms_anomaly.models.bdt import predict
    from cms_anomaly.models.pipeline import train_bdts

    seed = job.options.seed
    bdt_paths = train_bdts(
        features_dir=job.features_dir,
        out_dir=job.model_dir,
        samples=job.sets["hlf21"],
        seed=seed,
        val_fraction=job.base.val_fraction,
    )
    sig_test = _signal_test(job.sets["hlf21"], seed)
    bdt_sm, bdt_sig = {}, {}
    for sig, path in bdt_paths.items():
        booster = xgboost.Booster(model_file=str(path))
        bdt_sm[sig] = predict(booster, sm_val.x)
        bdt_sig[sig] = predict(booster, sig_test[sig])
    return bdt_sm, bdt_sig, sig_test


def _summary(
    job: _Job,
    scores: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]],
    bdt_sm: dict[str, Any],
    bdt_sig: dict[str, Any],
    *,
    sm_val: Sample,
    sig_test: dict[str, np.ndarray],
    info: dict[str, Any],
) -> dict[str, Any]:
    """The JSON summary: metrics per signal and model, event counts, training record and notes."""
    w_val = sm_val.weight
    hlf21 = job.sets["hlf21"]
    table: dict[str, dict[str, Any]] = {}
    for sig in sorted(n for n, s in hlf21.items() if s.is_signal):
        table[sig] = {m: _metrics(sv, w_val, ss[sig]) for m, (sv, ss) in scores.items()}
        if sig in bdt_sig:  # no BDT for a signal without training events (train_bdts)
            table[sig]["BDT (supervised)"] = _metrics(bdt_sm[sig], w_val, bdt_sig[sig])
    n_eff = float(w_val.sum() ** 2 / np.sum(w_val**2))
    return {
        "features_dir": str(job.features_dir),
        "seed": job.options.seed,
        "events": {
            "sm_train": sum(len(s) for s in hlf21.values() if not s.is_signal) - len(sm_val),
            "sm_validation": len(sm_val),
            "sm_validation_n_eff": n_eff,
            "signal_test": {n: len(x) for n, x in sig_test.items()},
            "per_dataset": {n: len(s) for n, s in hlf21.items()},
        },
        "metrics": table,
        **info,
        "notes": [
            f"TPR at FPR 1e-5 needs > 1e6 SM events for an empirical threshold; with n_eff = {n_eff:.3g} SM "
            "validation events the threshold comes from an exponential fit to the top 1% of SM scores "
            "(method column), so those TPRs are extrapolations.",
            "double AE (λ=100) score: min of the SM-validation quantiles of R1 and R2 (the 'diagonal' cut).",
            "baseline (X): sum_i |x_i - median_i| / std_i of the X inputs, median and std of the SM training "
            "events (the same as the detectors'); a detector on X must beat it.",
        ],
    }


def format_markdown(summary: dict[str, Any]) -> str:
    """Markdown tables (AUC, TPR@1e-3, TPR@1e-5) with signals as rows and models as columns."""
    table = summary["metrics"]
    signals = list(table)
    models = list(next(iter(table.values())))
    lines = [f"# Anomaly-detection models on {summary['features_dir']}", ""]
    ev = summary["events"]
    lines.append(
        f"SM training events {ev['sm_train']}, SM validation {ev['sm_validation']} "
        f"(n_eff {ev['sm_validation_n_eff']:.3g}), signal test events {ev['signal_test']}."
    )
    lines.append("")
    for metric, label in (("auc", "AUC"), ("tpr@0.001", "TPR at FPR 1e-3"), ("tpr@1e-05", "TPR at FPR 1e-5")):
        lines += [f"## {label}", "", "| signal | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
        for sig in signals:
            cells = []
            for m in models:
                v = table[sig][m][metric]
                flag = "*" if metric == "tpr@1e-05" and table[sig][m]["method@1e-05"] != "empirical" else ""
                cells.append(f"{v:.3f}{flag}" if metric == "auc" else f"{v:.2e}{flag}")
            lines.append(f"| {sig} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("`*`: threshold extrapolated from an exponential fit to the SM score tail.")
    lines.append("")
    lines.append("## Double AE: distance correlation of (R1, R2) on SM validation events")
    lines.append("")
    for k, v in summary["double_ae_distance_correlation"].items():
        lines.append(f"- {k}: dCor = {v:.4f}")
    lines.append("")
    lines.append("## Training")
    lines.append("")
    lines.append("| model | train events | epochs | best epoch | val loss | batch | lr | s | events/s |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for n, t in summary["training"].items():
        lines.append(
            f"| {n} | {t['n_train']} | {t['epochs_run']} | {t['best_epoch']} | {t['validation_loss']:.4g} | "
            f"{t['settings']['batch_size']} | {t['settings']['lr']:g} | {t['seconds']:.0f} | "
            f"{t['train_events_per_second']:.0f} |"
        )
    lines.append("")
    lines += [f"- {n}" for n in summary["notes"]]
    return "\n".join(lines) + "\n"


def plot_roc(scores, bdt_sm, bdt_sig, w_val, signals, path: Path) -> list[Path]:
    """One ROC PNG per signal (``roc_<signal>.png`` next to ``path``) with every model, CMS style."""
    from cms_anomaly.analyses.plotting import plot_roc as _plot

    from cms_anomaly import stats as statistics

    written = []
    for sig in signals:
        curves = {m: (sv, ss[sig]) for m, (sv, ss) in scores.items()}
        curves["BDT (supervised)"] = (bdt_sm[sig], bdt_sig[sig])
        rocs = {}
        for m, (sb, st) in curves.items():
            c = statistics.roc_curve(sb, st, bkg_weights=w_val)
            rocs[f"{m} (AUC {c.auc():.2f})"] = c
        written.append(_plot(rocs, path.with_name(f"roc_{sig}.png"), title=f"SM vs {sig}", text="Simulation"))
    return written


# ----------------------------------------------------------------------------- cms-anomaly evaluate
def register(subparsers: Any) -> None:
    """Add ``cms-anomaly evaluate``."""
    e = subparsers.add_parser(
        "evaluate",
        help="train all models on SM and tabulate AUC / TPR at FPR 1e-3, 1e-5 per BSM benchmark",
        description=(
            "Train VAE, ALAD (4 scores), AE, double AE (lambda 100 and 0) on the SM datasets and one BDT per "
            "signal, fit the trivial baseline (L1 distance from the median) on each input set, then write OUT/evaluation.md, OUT/evaluation.json and OUT/roc.png with AUC and TPR at "
            "FPR 1e-3 and 1e-5 per BSM benchmark, and the distance correlation of the double-AE losses."
        ),
    )
    e.add_argument("--features", required=True, help="directory with <dataset>/*.parquet feature tables")
    e.add_argument("--out", required=True, help="output directory")
    e.add_argument("--datasets", nargs="+", default=None, help="datasets to use (default: all)")
    e.add_argument("--seed", type=int, default=1)
    e.add_argument("--epochs-scale", type=float, default=1.0, help="multiply every model's epoch limit (quick runs)")
    e.add_argument("--device", default="auto")
    e.add_argument("--threads", type=int, default=None)
    e.add_argument("--no-progress", action="store_true")
    e.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    opts = EvaluateOptions(seed=args.seed, device=args.device, threads=args.threads, progress=not args.no_progress)
    opts.epochs = {k: max(1, round(v * args.epochs_scale)) for k, v in opts.epochs.items()}
    summary = evaluate(args.features, args.out, options=opts, datasets=args.datasets)
    print(format_markdown(summary))
    print(f"wrote {args.out}/evaluation.md, evaluation.json, roc_<signal>.png and models/")
    return 0
