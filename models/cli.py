"""``cms-anomaly train``."""

from __future__ import annotations

import argparse

from cms_anomaly.core.argtypes import non_negative_float, positive_float, positive_int
from cms_anomaly.models.feature_sets import FEATURE_SETS
from cms_anomaly.models.registry import get_spec, kinds

_SETS = tuple(FEATURE_SETS)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train an anomaly-detection model (or the BDT baselines) and export it with a model card",
        description=(
            "Train a model on the SM datasets (is_signal False) of a directory of processor feature tables "
            "(FEATURES/<dataset>/*.parquet) and export it as TorchScript (.pt, raw features in, scores out; "
            "preprocessing fitted on the training data is inside) or XGBoost JSON, each with a <name>.card.json "
            "model card (features, preprocessing, training data, seed, validation loss, thresholds at SM FPR "
            "5.4e-6, 1e-5, 1e-3). Defaults follow the papers: AE on the RMM (Chekanov), VAE and ALAD on HLF-21 "
            "(Cerri, Knapp), double AE on the (19,3) objects (Mikuni), BDT per signal on HLF-21 (Cerri)."
        ),
    )
    p.add_argument("kind", choices=kinds(), help="model to train")
    p.add_argument(
        "--features",
        required=True,
        help="directory or fsspec URL (root://, file://, s3://...) with <dataset>/*.parquet feature tables",
    )
    p.add_argument("--out", required=True, help="output model directory")
    p.add_argument("--feature-set", choices=_SETS, default=None, help="input features (default: the paper's)")
    p.add_argument("--datasets", nargs="+", default=None, help="datasets to read (default: all sub-directories)")
    p.add_argument("--signal", nargs="+", default=None, help="bdt: signal datasets (default: every is_signal dataset)")
    p.add_argument(
        "--steps",
        type=positive_int,
        default=None,
        help="budget in optimiser steps (default: the model's step budget, else its epochs)",
    )
    p.add_argument("--epochs", type=positive_int, default=None, help="budget in epochs, when --steps is not given")
    p.add_argument(
        "--eval-every",
        type=positive_int,
        default=None,
        help="optimiser steps between evaluations (default: 1 epoch"
        " under an epoch budget, the budget / 250 under a step budget)",
    )
    p.add_argument("--batch-size", type=positive_int, default=None, help="override the paper's batch size")
    p.add_argument("--lr", type=positive_float, default=None, help="override the paper's learning rate")
    p.add_argument("--patience", type=positive_int, default=None, help="override the early-stopping patience")
    p.add_argument(
        "--lambda", dest="lam", type=non_negative_float, default=100.0, help="double-ae: DisCo weight (default 100)"
    )
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--val-fraction", type=float, default=0.5, help="SM validation fraction (default 0.5)")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/<name>.ckpt")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from cms_anomaly.models.pipeline import TrainOptions, train_and_export, train_bdts

    spec = get_spec(args.kind)
    if not spec.exported:
        paths = list(
            train_bdts(
                features_dir=args.features,
                out_dir=args.out,
                feature_set=args.feature_set or spec.feature_set,
                signals=args.signal,
                datasets=args.datasets,
                seed=args.seed,
                val_fraction=args.val_fraction,
            ).values()
        )
    else:
        opts = TrainOptions(
            epochs=args.epochs,
            max_steps=args.steps,
            eval_every=args.eval_every,
            batch_size=args.batch_size,
            lr=args.lr,
            patience=args.patience,
            seed=args.seed,
            val_fraction=args.val_fraction,
            device=args.device,
            resume=args.resume,
            lam=args.lam,
            threads=args.threads,
            progress=not args.no_progress,
        )
        trained = train_and_export(
            args.kind,
            features_dir=args.features,
            out_dir=args.out,
            feature_set=args.feature_set,
            datasets=args.datasets,
            options=opts,
        )
        paths = trained.paths
        r = trained.train_result
        print(
            f"{args.kind}: fitted on {trained.cards[0].training['n_train']} events (no training loop)"
            if r is None
            else f"{args.kind}: {r.steps_run} steps ({r.epochs_run:g} epochs), selected step {r.best_step} "
            f"(epoch {r.best_epoch:g}), validation {r.best_val_loss:.5g}, "
            f"{r.events_per_second:.0f} training events/s on {r.device}"
        )
    from cms_anomaly.models.export import card_path

    for p in paths:
        print(f"wrote {p}  (+ {card_path(p).name})")
    return 0
