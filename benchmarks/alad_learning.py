"""Has ALAD learnt? Its AUCs against the trivial baseline on the main job's own events.

    python benchmarks/alad_learning.py RUN_DIR [--steps N] [--lr X] [--batch-size B] [--ae-epochs E]
    python benchmarks/alad_learning.py RUN_DIR --seeds 1 2 3 [--latent K] [--cycle W] [--no-sn] [--ema D] [--lr X]

``RUN_DIR`` is the output of ``cms-anomaly rediscover`` (the main job): its pass-1 feature tables
``pass1/features/<dataset>/*.parquet`` and the hidden labels of its pseudo-data
``samples/pseudodata_s<seed>/data_labels.parquet`` (``event -> process``). ALAD and the AE are trained
as the main job trains them (:func:`~cms_anomaly.models.pipeline.train_and_export` on the pseudo-data
``data`` tables, HLF-24, its seed; the options given here override the models' defaults) on one
torch thread, and every score is compared by its ROC AUC (:func:`cms_anomaly.stats.roc_from_labels`, weighted
by the event weights; scikit-learn is not a dependency of the package), ttbar against W and Z:

* on the pseudo-data, labelled by its hidden process labels (the events the detector is trained on
  and applied to);
* on the simulation tables ``ttbar`` vs ``wjets`` + ``zjets`` (the ROC of the main job's summary).

Rows: ALAD untrained (the same seeded network before its first step) and trained, each of its four
scores; the AE; the baseline ``sum_i |x_i - median_i| / std_i`` over the inputs standardised on the
pseudo-data (median and standard deviation of every HLF-24 column with a non-zero spread). Then the
Spearman rank correlation of ALAD's L1 score with the baseline and with the untrained L1 score on the
pseudo-data, and ALAD's training time (CPU seconds of this process, one thread).

With ``--seeds`` (the sweep): ALAD alone, built with the given latent size, cycle-consistency weight and
spectral norm (:func:`~cms_anomaly.models.alad.build_alad`) and trained with the given learning rate,
steps and weight averaging once per seed on that seed's split; each score's AUC on both views per seed,
then its mean, standard deviation and margin over the baseline.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

#: the processes of the pseudo-data's hidden labels and the simulation datasets compared
SIGNAL = "ttbar"
BACKGROUND = ("wjets", "zjets")
#: ALAD's scores in the order of its output
ALAD_SCORE_NAMES = ("l1", "l2", "logits", "features")


def baseline_score(x: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``sum_i |x_i - median_i| / std_i`` with median and std of ``reference`` (columns without spread left out)."""
    med = np.median(reference, axis=0)
    std = reference.std(axis=0)
    keep = std > 0
    return (np.abs(x[:, keep] - med[keep]) / std[keep]).sum(axis=1)


def _labelled_data(run_dir: Path, samples: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pseudo-data (x, weight, is_ttbar) of the events whose hidden label is ttbar, W or Z."""
    import pyarrow.parquet as pq

    paths = sorted(run_dir.glob("samples/pseudodata_s*/data_labels.parquet"))
    if not paths:
        raise SystemExit(f"{run_dir}: no samples/pseudodata_s*/data_labels.parquet (a pseudo-data main job?)")
    table = pq.read_table(paths[0], columns=["event", "process"])
    label = dict(zip(table["event"].to_numpy().tolist(), table["process"].to_pylist(), strict=True))
    data = samples["data"]
    process = np.array([label.get(int(e), "unknown") for e in data.event])
    keep = np.isin(process, (SIGNAL, *BACKGROUND))
    return data.x[keep], data.weight[keep], process[keep] == SIGNAL


def _simulation(samples: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simulation (x, weight, is_ttbar) of the ttbar, W and Z tables."""
    parts = [samples[n] for n in (SIGNAL, *BACKGROUND) if n in samples]
    x = np.concatenate([s.x for s in parts])
    w = np.concatenate([s.weight for s in parts])
    y = np.concatenate([np.full(len(s), s.name == SIGNAL) for s in parts])
    return x, w, y


def _scores(model: Any, x: np.ndarray) -> np.ndarray:
    """The model's eager scores (N, k) of raw ``x``."""
    import torch

    model.cpu().eval()
    with torch.no_grad():
        return np.asarray(model(torch.as_tensor(np.ascontiguousarray(x, np.float32))), np.float64).reshape(len(x), -1)


def _train(kind: str, features: Path, out: Path, samples: dict[str, Any], fs: Any, options: Any) -> tuple[Any, float]:
    """``kind`` trained as the main job trains it; returns the trained model and its CPU seconds."""
    from cms_anomaly.models.pipeline import train_and_export

    cpu = time.process_time()
    trained = train_and_export(
        kind,
        features_dir=features,
        out_dir=out,
        feature_set=fs,
        datasets=["data"],
        options=options,
        samples={"data": samples["data"]},
    )
    return trained, time.process_time() - cpu


def _load(run_dir_arg: str) -> tuple[Path, Path, Any, list[str], dict[str, Any]]:
    """One torch thread; the run's pass-1 tables: (run dir, features dir, HLF-24 feature set, the simulated
    datasets present, the samples of the data and of them)."""
    import torch
    from cms_anomaly.models.data import read_samples
    from cms_anomaly.models.pipeline import feature_set_for_job

    torch.set_num_threads(1)
    run_dir = Path(run_dir_arg)
    features = run_dir / "pass1" / "features"
    fs, _ = feature_set_for_job("hlf24", features_dir=features, datasets=["data"])
    simulated = [n for n in (SIGNAL, *BACKGROUND) if (features / n).is_dir()]
    samples = read_samples(features, feature_set=fs, datasets=["data", *simulated])
    return run_dir, features, fs, simulated, samples


def measure(args: argparse.Namespace) -> list[str]:
    """The table of AUCs, the rank correlations and the training time."""
    from cms_anomaly.models.pipeline import TrainOptions, build_model, split_cocktail
    from cms_anomaly.stats import roc_from_labels
    from scipy.stats import spearmanr

    run_dir, features, fs, simulated, samples = _load(args.run_dir)
    views = {"pseudo-data": _labelled_data(run_dir, samples)}
    if SIGNAL in simulated and len(simulated) > 1:
        views["simulation"] = _simulation(samples)
    train_s, _ = split_cocktail({"data": samples["data"]}, val_fraction=0.5, seed=args.seed)
    untrained, _ = build_model("alad", train_s.x, feature_set=fs, seed=args.seed)
    alad_opts = TrainOptions(
        max_steps=args.steps,
        lr=args.lr,
        batch_size=args.batch_size,
        patience=args.patience,
        seed=args.seed,
        threads=1,
        progress=False,
    )
    ae_opts = TrainOptions(epochs=args.ae_epochs, seed=args.seed, threads=1, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        alad, alad_cpu = _train("alad", features, Path(tmp), samples, fs, alad_opts)
        ae, _ = _train("ae", features, Path(tmp), samples, fs, ae_opts)
    names = list(untrained.output_names)
    rows: dict[str, dict[str, float]] = {}
    l1 = {}
    for view, (x, w, y) in views.items():
        cols = {
            **{f"ALAD untrained {n}": s for n, s in zip(names, _scores(untrained, x).T, strict=True)},
            **{f"ALAD trained {n}": s for n, s in zip(names, _scores(alad.model, x).T, strict=True)},
            "AE (mse)": _scores(ae.model, x)[:, 0],
            "baseline": baseline_score(x, samples["data"].x),
        }
        for name, s in cols.items():
            rows.setdefault(name, {})[view] = roc_from_labels(s, y, weights=w).auc()
        if view == "pseudo-data":
            l1 = {"trained": cols["ALAD trained l1"], "untrained": cols["ALAD untrained l1"], "base": cols["baseline"]}
    r = alad.train_result
    lines = [
        f"ALAD: {r.steps_run} steps ({r.epochs_run:g} epochs of {r.steps_per_epoch}), batch "
        f"{alad.cards[0].training['hyper']['batch_size']}, lr {alad.cards[0].training['hyper']['lr']:g}, "
        f"weights {alad.cards[0].training['weights']}, selected step {r.best_step} (mean L1 {r.best_val_loss:.4g}); "
        f"training {alad_cpu:.0f} s CPU ({r.seconds:.0f} s wall), one thread",
        "ALAD selection criterion (validation mean L1 of the averaged weights) by step: "
        + ", ".join(f"{h['step']}: {h['criterion']:.3g}" for h in r.history[:: max(1, len(r.history) // 12)]),
        "events: " + ", ".join(f"{v} {len(views[v][0])} (ttbar {int(views[v][2].sum())})" for v in views),
        "",
        "| score | " + " | ".join(f"AUC {v}" for v in views) + " |",
        "| --- |" + " --- |" * len(views),
    ]
    lines += [f"| {n} | " + " | ".join(f"{v[view]:.3f}" for view in views) + " |" for n, v in rows.items()]
    lines += [
        "",
        f"Spearman (pseudo-data): ALAD L1 vs baseline {spearmanr(l1['trained'], l1['base']).statistic:.3f}, "
        f"ALAD L1 vs untrained L1 {spearmanr(l1['trained'], l1['untrained']).statistic:.3f}",
    ]
    return lines


def _train_variant(samples: dict[str, Any], fs: Any, args: argparse.Namespace, seed: int) -> tuple[Any, Any, float]:
    """ALAD of the options (latent size, spectral norm, cycle weight, learning rate, steps, averaging) trained
    on the main job's split of the pseudo-data for ``seed``; returns the model, its result and CPU seconds."""
    from dataclasses import replace

    from cms_anomaly.models.alad import ALAD_HYPER, build_alad
    from cms_anomaly.models.pipeline import split_cocktail
    from cms_anomaly.models.training import TrainConfig, train

    train_s, val_s = split_cocktail({"data": samples["data"]}, val_fraction=0.5, seed=seed)
    model = build_alad(
        train_s.x, feature_names=list(fs.columns), seed=seed, latent=args.latent, sn=not args.no_sn, cycle=args.cycle
    )
    hyper = replace(
        ALAD_HYPER,
        **{k: v for k, v in (("lr", args.lr), ("batch_size", args.batch_size), ("patience", args.patience)) if v},
        ema_decay=None if args.ema == 0 else (args.ema or ALAD_HYPER.ema_decay),
    )
    config = TrainConfig(hyper=hyper, max_steps=args.steps or hyper.max_steps, seed=seed, threads=1, progress=False)
    cpu = time.process_time()
    result = train(model, train_s.x, val_s.x, config=config)
    return model, result, time.process_time() - cpu


def sweep(args: argparse.Namespace) -> list[str]:
    """Per seed of ``args.seeds``: ALAD of the options trained on the pseudo-data, each score's AUC on both
    views; then every score's mean and standard deviation over the seeds beside the baseline."""
    from cms_anomaly.stats import roc_from_labels

    run_dir, _, fs, _, samples = _load(args.run_dir)
    views = {"pseudo-data": _labelled_data(run_dir, samples), "simulation": _simulation(samples)}
    base = {
        v: roc_from_labels(baseline_score(x, samples["data"].x), y, weights=w).auc() for v, (x, w, y) in views.items()
    }
    aucs: dict[tuple[str, str], list[float]] = {}
    lines = [f"options: {vars(args)}", f"baseline: {base}"]
    for seed in args.seeds:
        model, r, cpu = _train_variant(samples, fs, args, seed)
        for v, (x, w, y) in views.items():
            for n, s in zip(ALAD_SCORE_NAMES, _scores(model, x).T, strict=True):
                aucs.setdefault((v, n), []).append(roc_from_labels(s, y, weights=w).auc())
        lines.append(
            f"seed {seed}: {r.steps_run} steps, selected {r.best_step}, {cpu:.0f} s CPU; "
            + ", ".join(f"{v}/{n} {a[-1]:.3f}" for (v, n), a in aucs.items())
        )
        print(lines[-1], flush=True)
    lines += [
        f"| {v} | {n} | {np.mean(a):.3f} +- {np.std(a, ddof=1) if len(a) > 1 else 0:.3f} | "
        + " / ".join(f"{x:.3f}" for x in a)
        + f" | {np.mean(a) - base[v]:+.3f} |"
        for (v, n), a in aucs.items()
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    from cms_anomaly.models.alad import ALAD_CYCLE, ALAD_LATENT

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", help="output directory of cms-anomaly rediscover")
    p.add_argument("--steps", type=int, default=None, help="ALAD step budget (default: the model's)")
    p.add_argument("--lr", type=float, default=None, help="ALAD learning rate (default: the model's)")
    p.add_argument("--batch-size", type=int, default=None, help="ALAD batch size (default: the model's)")
    p.add_argument("--patience", type=int, default=None, help="ALAD early-stopping patience in evaluations")
    p.add_argument("--ae-epochs", type=int, default=60, help="AE epochs (default 60, the main job's)")
    p.add_argument("--seed", type=int, default=1, help="the main job's seed (default 1)")
    p.add_argument("--seeds", type=int, nargs="+", help="sweep mode: ALAD alone, trained once per seed")
    p.add_argument("--latent", type=int, default=ALAD_LATENT, help=f"sweep: latent size (default {ALAD_LATENT})")
    p.add_argument("--no-sn", action="store_true", help="sweep: no spectral norm in the discriminators")
    p.add_argument(
        "--cycle", type=float, default=ALAD_CYCLE, help=f"sweep: ALICE cycle weight (default {ALAD_CYCLE:g})"
    )
    p.add_argument("--ema", type=float, default=None, help="sweep: weight-average decay (0: none)")
    args = p.parse_args(argv)
    print("\n".join(sweep(args) if args.seeds else measure(args)), flush=True)


if __name__ == "__main__":
    main()
