"""``cms-anomaly bench scoring`` and ``bench training``: scorer throughput inside the processor path,
training throughput per device and same-seed agreement between devices."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from cms_anomaly.models.feature_sets import get_feature_set
from cms_anomaly.processors.feature_spec import HLF21

log = logging.getLogger(__name__)


def synthetic_columns(n: int, *, seed: int, with_rmm: bool = False) -> dict[str, np.ndarray]:
    """Random raw features with the right types and ranges (counts >= 0, charges +-1), for timing only."""
    rng = np.random.default_rng(seed)
    cols = {name: rng.lognormal(3.0, 0.7, n).astype(np.float32) for name in HLF21}
    for name in ("n_jets", "n_bjets", "n_mu", "n_ele", "n_ch_had", "n_neu_had"):
        cols[name] = rng.poisson(2.0 if name.startswith("n_") and "had" not in name else 50.0, n).astype(np.float32)
    cols["charge_lep"] = rng.choice(np.array([-1.0, 1.0], np.float32), n)
    cols["is_ele"] = (rng.random(n) < 0.4).astype(np.float32)
    cols["met_par"] = rng.normal(0, 30, n).astype(np.float32)
    cols["met_perp"] = rng.normal(0, 30, n).astype(np.float32)
    cols["objects"] = np.abs(rng.normal(0, 50, (n, 57))).astype(np.float32)
    if with_rmm:
        rmm = np.zeros((n, 2601), np.float32)
        cells = np.arange(0, 2601, 3)[:750]  # Chekanov keeps ~750 non-zero cells
        rmm[:, cells] = rng.random((n, cells.size), dtype=np.float32)
        cols["rmm"] = rmm
    return cols


def _matrix(cols: dict[str, np.ndarray], fs_name: str) -> np.ndarray:
    fs = get_feature_set(fs_name)
    if fs.is_array:
        return cols[fs.columns[0]]
    return np.stack([cols[c] for c in fs.columns], axis=1)


def _record_array(cols: dict[str, np.ndarray]) -> Any:
    import awkward as ak

    return ak.zip(
        {k: (ak.from_numpy(v) if v.ndim == 1 else ak.to_regular(ak.from_numpy(v), axis=1)) for k, v in cols.items()},
        depth_limit=1,
    )


def bench_scoring(*, events: int = 1_000_000, threads: int = 1, repeat: int = 3, rmm_events: int | None = None) -> str:
    """Time each exported model through :func:`cms_anomaly.models.scorers.load_scorer`.

    The RMM autoencoder (a 400-wide input) is timed on ``rmm_events`` events (default: ``events``, at
    most 50 000, which keeps the random RMM matrix under 100 MB).

    Returns a printable report with events/s per thread for the whole scorer call
    (awkward record array -> numpy, i.e. what the processor pays) and for the bare
    TorchScript / XGBoost call on a ready float32 matrix.
    """
    import torch

    torch.set_num_threads(threads)
    fit = synthetic_columns(20_000, seed=1, with_rmm=True)
    data = synthetic_columns(events, seed=2)
    rmm_data = synthetic_columns(min(events, 50_000) if rmm_events is None else rmm_events, seed=3, with_rmm=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = _export_networks(fit, Path(tmp))
        booster, bpath = _export_bdt(fit, Path(tmp), threads=threads)
        paths.append(("bdt", "hlf21", bpath))
        for kind, fs_name, path in paths:
            cols = rmm_data if fs_name == "rmm" else data
            n, t_full, t_bare = _time_scorer(path, cols, fs_name, booster, threads=threads, repeat=repeat)
            rows.append((f"{kind} ({fs_name})", n, n / t_full / threads, n / t_bare / threads))
    lines = [
        f"scoring benchmark: {threads} thread(s), one whole chunk per call, best of {repeat}",
        f"{'model':22s} {'events':>9s} {'scorer ev/s/thread':>19s} {'bare call ev/s/thread':>22s} {'scorer/bare':>11s}",
    ]
    for name, n, full, bare in rows:
        lines.append(f"{name:22s} {n:9d} {full:19,.0f} {bare:22,.0f} {full / bare:11.2f}")
    lines.append(
        "scorer = awkward record array -> float32 matrix -> model -> numpy (what the processor pays); "
        "bare = the TorchScript module on a ready tensor in the same slices / XGBoost inplace_predict"
    )
    lines.append("target: >= 1,000,000 events/s per core for the VAE-size networks (processor path)")
    return "\n".join(lines)


def _export_networks(fit: dict[str, np.ndarray], tmp: Path) -> list[tuple[str, str, Path]]:
    """Build each network on ``fit`` and export it as TorchScript with its card: (kind, feature set, path)."""
    from cms_anomaly.models.export import ModelCard, export_torchscript
    from cms_anomaly.models.pipeline import build_model

    specs = [("vae", "hlf21"), ("alad", "hlf21"), ("ae", "hlf21"), ("ae", "rmm"), ("double-ae", "objects")]
    paths = []
    for kind, fs_name in specs:
        fs = get_feature_set(fs_name)
        model, _ = build_model(kind, _matrix(fit, fs_name), feature_set=fs, seed=1)
        modules = model.export_modules()
        suffix, module = ("l1", modules["l1"]) if kind == "alad" else next(iter(modules.items()))
        path = tmp / f"{kind}_{fs_name}{'_' + suffix if suffix else ''}.pt"
        card = ModelCard(
            model_type=model.kind,
            feature_set=fs_name,
            feature_names=list(fs.columns),
            n_inputs=fs.width,
            output_names=list(getattr(module, "output_names", model.output_names)),
            score=suffix or "score",
        )
        export_torchscript(module, path, card=card)
        paths.append((kind, fs_name, path))
    return paths


def _export_bdt(fit: dict[str, np.ndarray], tmp: Path, *, threads: int) -> tuple[Any, Path]:
    """Train an XGBoost BDT on the two halves of ``fit`` and save it with its card: (booster, path)."""
    from cms_anomaly.models.bdt import BDTParams, save_booster, train_signal_bdt
    from cms_anomaly.models.export import ModelCard, write_card

    sm = {k: v[:10_000] for k, v in fit.items()}
    sig = {k: v[10_000:] * 1.3 for k, v in fit.items()}
    booster, _ = train_signal_bdt(
        _matrix(sm, "hlf21"),
        np.ones(10_000),
        _matrix(sig, "hlf21"),
        np.ones(10_000),
        seed=1,
        params=BDTParams(n_threads=threads),
    )
    bpath = save_booster(booster, tmp / "bdt_hlf21.json")
    write_card(
        ModelCard(
            model_type="bdt",
            feature_set="hlf21",
            feature_names=list(HLF21),
            n_inputs=21,
            output_names=["p_signal"],
            score="p_signal",
        ),
        bpath,
    )
    return booster, bpath


def _time_scorer(
    path: Path, cols: dict[str, np.ndarray], fs_name: str, booster: Any, *, threads: int, repeat: int
) -> tuple[int, float, float]:
    """(events, seconds of the scorer call, seconds of the bare model call), each the fastest of ``repeat``."""
    import torch
    from cms_anomaly.models.scorers import load_scorer

    fs = get_feature_set(fs_name)
    rec = _record_array({c: cols[c] for c in fs.columns})
    n = len(rec)
    scorer = load_scorer(path, threads=threads)
    scorer(rec[:10])  # lazy load + warm-up
    t_full = min(_timed(lambda scorer=scorer, rec=rec: scorer(rec)) for _ in range(repeat))
    x = _matrix(cols, fs_name)
    if path.suffix == ".pt":
        jit = torch.jit.load(str(path))
        xt = torch.from_numpy(np.ascontiguousarray(x))
        step = scorer.batch_size
        with torch.inference_mode():
            jit(xt[:10])
            t_bare = min(
                _timed(lambda jit=jit, xt=xt, step=step: [jit(xt[i : i + step]) for i in range(0, len(xt), step)])
                for _ in range(repeat)
            )
    else:
        t_bare = min(_timed(lambda x=x: booster.inplace_predict(x)) for _ in range(repeat))
    del rec
    return n, t_full, t_bare


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_training(
    *, steps: int = 100, models: list[str] | None = None, max_seconds: float = 20.0, batch_size: int | None = None
) -> str:
    """Training events/s of each model: 1 CPU thread, all CPU cores, CUDA if present.

    ``batch_size`` None: each model's paper batch size; else that batch size for every model.
    """
    import torch
    from cms_anomaly.models.pipeline import build_model
    from cms_anomaly.models.registry import get_spec, neural_kinds

    models = models or list(neural_kinds())
    cols = synthetic_columns(20_000, seed=1, with_rmm=True)
    n_cores = os.cpu_count() or 1
    targets = [("cpu", 1), ("cpu", n_cores)]
    cuda = torch.cuda.is_available()
    if cuda:
        targets.append(("cuda", n_cores))
    sizes = "paper batch sizes" if batch_size is None else f"batch size {batch_size}"
    lines = [f"training benchmark: up to {steps} steps or {max_seconds:.0f} s per measurement, {sizes}"]
    if not cuda:
        lines.append("CUDA: skipped (no CUDA device on this machine)")
    header = f"{'model':12s} {'batch':>6s} " + " ".join(f"{d + '/' + str(t) + 'thr':>14s}" for d, t in targets)
    if cuda:
        header += f" {'cuda/1 core':>12s}"
    lines.append(header + "   (events/s)")
    for kind in models:
        fs_name = get_spec(kind).feature_set
        x = _matrix(cols, fs_name)
        rates = []
        batch = None
        for device, threads in targets:
            torch.set_num_threads(threads)
            model, hyper = build_model(kind, x, feature_set=get_feature_set(fs_name), seed=1)
            batch = min(batch_size or hyper.batch_size, len(x))
            model.to(device).train()
            opts = model.configure_optimizers(lr=hyper.lr, betas=hyper.betas)
            xt = torch.as_tensor(x, device=device)
            g = torch.Generator().manual_seed(1)
            model.train_step(xt[:batch], opts)  # warm-up
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            done = 0
            for _ in range(steps):
                idx = torch.randint(0, len(x), (batch,), generator=g).to(device)
                model.train_step(xt[idx], opts)
                done += 1
                if time.perf_counter() - t0 > max_seconds and done >= 3:
                    break
            if device == "cuda":
                torch.cuda.synchronize()
            rates.append(done * batch / (time.perf_counter() - t0))
        line = f"{kind:12s} {batch:6d} " + " ".join(f"{r:14,.0f}" for r in rates)
        if cuda:
            line += f" {rates[-1] / rates[0]:11.1f}x"
        lines.append(line)
    return "\n".join(lines)


def training_agreement(
    kind: str,
    *,
    devices: tuple[str, str] = ("cpu", "cuda"),
    seed: int = 1,
    events: int = 20_000,
    epochs: int = 3,
    max_steps_per_epoch: int = 100,
) -> dict[str, float]:
    """Train ``kind`` twice with the same seed, once per device, and compare the scores of held-out events.

    The batch order comes from a CPU generator and the weights are initialised on the CPU, so the
    two runs differ only by the devices' arithmetic and, for models drawing noise during training
    (ALAD's z, the VAE's sampling, dropout), by the devices' random streams: the same device twice
    must give identical scores, two devices scores that agree within the training noise.
    Returns the median and 99th percentile of |s_a - s_b| / s_a, the Spearman rank correlation and
    the overlap of the 1 % highest-score sets, per output.
    """
    import torch
    from cms_anomaly.models.pipeline import build_model
    from cms_anomaly.models.registry import get_spec
    from cms_anomaly.models.training import TrainConfig, train
    from scipy.stats import spearmanr

    fs_name = get_spec(kind).feature_set
    cols = synthetic_columns(events + 10_000, seed=seed, with_rmm=fs_name == "rmm")
    x = _matrix(cols, fs_name)
    x_train, x_val, x_test = x[:events], x[events : events + 5000], x[events + 5000 :]
    scores = []
    for device in devices:
        model, hyper = build_model(kind, x_train, feature_set=get_feature_set(fs_name), seed=seed)
        train(
            model,
            x_train,
            x_val,
            config=TrainConfig(
                hyper=hyper,
                epochs=epochs,
                seed=seed,
                device=device,
                max_steps_per_epoch=max_steps_per_epoch,
                progress=False,
            ),
        )
        modules = model.export_modules()
        module = modules.get("l1", next(iter(modules.values())))
        with torch.inference_mode():
            out = module.cpu().eval()(torch.from_numpy(np.ascontiguousarray(x_test)))
        scores.append(np.asarray(out, dtype=np.float64).reshape(len(x_test), -1))
    a, b = scores
    result: dict[str, float] = {}
    k = max(1, len(a) // 100)
    for j in range(a.shape[1]):
        rel = np.abs(a[:, j] - b[:, j]) / np.maximum(np.abs(a[:, j]), 1e-12)
        top_a, top_b = set(np.argsort(a[:, j])[-k:]), set(np.argsort(b[:, j])[-k:])
        result[f"out{j}_median_rel_diff"] = float(np.median(rel))
        result[f"out{j}_p99_rel_diff"] = float(np.quantile(rel, 0.99))
        result[f"out{j}_spearman"] = float(spearmanr(a[:, j], b[:, j]).statistic)
        result[f"out{j}_top1pct_overlap"] = len(top_a & top_b) / k
    return result


def bench_agreement(*, models: list[str] | None = None, seed: int = 1) -> str:
    """Same-seed reproducibility: CPU twice, CUDA twice (when present) and CPU against CUDA."""
    import torch

    models = models or ["alad", "double-ae"]
    pairs = [("cpu", "cpu")]
    if torch.cuda.is_available():
        pairs += [("cuda", "cuda"), ("cpu", "cuda")]
    lines = [
        f"same-seed agreement (seed {seed}, 20k synthetic training events, 3 epochs x 100 steps, 5k scored)",
        f"{'model':10s} {'devices':10s} {'output':>6s} {'median |ds|/s':>14s} {'p99 |ds|/s':>11s} "
        f"{'Spearman':>9s} {'top-1% overlap':>15s}",
    ]
    if len(pairs) == 1:
        lines.append("CUDA: skipped (no CUDA device on this machine)")
    for kind in models:
        for pair in pairs:
            r = training_agreement(kind, devices=pair, seed=seed)
            for j in range(len(r) // 4):
                lines.append(
                    f"{kind:10s} {'/'.join(pair):10s} {j:6d} {r[f'out{j}_median_rel_diff']:14.2e} "
                    f"{r[f'out{j}_p99_rel_diff']:11.2e} {r[f'out{j}_spearman']:9.4f} "
                    f"{r[f'out{j}_top1pct_overlap']:15.2f}"
                )
    return "\n".join(lines)
