"""``cms-anomaly train``, ``cms-anomaly bench scoring`` and ``bench training``."""

from __future__ import annotations

import argparse

from cms_anomaly.datasets.argtypes import non_negative_float, positive_float, positive_int
from cms_anomaly.models.feature_sets import FEATURE_SETS

_KINDS = ("ae", "vae", "alad", "double-ae", "bdt")
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
    p.add_argument("kind", choices=_KINDS, help="model to train")
    p.add_argument("--features", required=True, help="directory with <dataset>/*.parquet feature tables")
    p.add_argument("--out", required=True, help="output model directory")
    p.add_argument("--feature-set", choices=_SETS, default=None, help="input features (default: the paper's)")
    p.add_argument("--datasets", nargs="+", default=None, help="datasets to read (default: all sub-directories)")
    p.add_argument("--signal", nargs="+", default=None, help="bdt: signal datasets (default: every is_signal dataset)")
    p.add_argument("--epochs", type=positive_int, default=None, help="maximum epochs (default: the model's)")
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


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:
    s = bench_subparsers.add_parser(
        "scoring",
        help="events/s per core of the model scorers inside the processor path",
        description=(
            "Builds VAE, ALAD, AE (RMM) and double-AE TorchScript files and an XGBoost BDT on random data "
            "(architecture and preprocessing as trained), then times the coffea.ml_tools scorer on an awkward "
            "feature record array of --events events (one whole chunk per call, threads pinned). Prints events/s "
            "per thread and the ratio to the bare TorchScript call."
        ),
    )
    s.add_argument("--events", type=int, default=1_000_000, help="events per chunk (default 1e6)")
    s.add_argument("--threads", type=int, default=1, help="threads per worker (default 1)")
    s.add_argument("--repeat", type=int, default=3, help="timed repetitions, best taken (default 3)")
    s.set_defaults(func=_bench_scoring)
    t = bench_subparsers.add_parser(
        "training",
        help="training throughput (events/s) of each model on CPU (and CUDA when present)",
        description=(
            "Times optimisation steps of each model at its paper batch size on random inputs of the right "
            "shape: CPU with 1 thread and with all cores, and a CUDA GPU when present (skipped otherwise)."
        ),
    )
    t.add_argument("--steps", type=int, default=100, help="timed steps per model (default 100)")
    t.add_argument("--models", nargs="+", default=["vae", "alad", "ae", "double-ae"], choices=_KINDS[:-1])
    t.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="one batch size for every model (default: each model's paper batch size)",
    )
    t.add_argument(
        "--agreement",
        action="store_true",
        help="also train ALAD and the double AE twice with the same seed per device pair (CPU/CPU, "
        "CUDA/CUDA, CPU/CUDA) and compare their scores on held-out events",
    )
    t.set_defaults(func=_bench_training)


def _train(args: argparse.Namespace) -> int:
    from cms_anomaly.models.pipeline import TrainOptions, train_and_export, train_bdts

    if args.kind == "bdt":
        paths = list(
            train_bdts(
                features_dir=args.features,
                out_dir=args.out,
                feature_set=args.feature_set or "hlf21",
                signals=args.signal,
                datasets=args.datasets,
                seed=args.seed,
                val_fraction=args.val_fraction,
            ).values()
        )
    else:
        opts = TrainOptions(
            epochs=args.epochs,
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
            f"{args.kind}: {r.epochs_run} epochs (best {r.best_epoch}), validation loss {r.best_val_loss:.5g}, "
            f"{r.events_per_second:.0f} training events/s on {r.device}"
        )
    from cms_anomaly.models.export import card_path

    for p in paths:
        print(f"wrote {p}  (+ {card_path(p).name})")
    return 0


def _bench_scoring(args: argparse.Namespace) -> int:
    from cms_anomaly.models.benchmark import bench_scoring

    print(bench_scoring(events=args.events, threads=args.threads, repeat=args.repeat))
    return 0


def _bench_training(args: argparse.Namespace) -> int:
    from cms_anomaly.models.benchmark import bench_training

    print(bench_training(steps=args.steps, models=args.models, batch_size=args.batch_size), flush=True)
    if args.agreement:
        from cms_anomaly.models.benchmark import bench_agreement

        print(bench_agreement())
    return 0
