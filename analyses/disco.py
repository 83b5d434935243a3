"""DisCo double autoencoder with an ABCD background estimate (Mikuni, Nachman, Shih; seed 001).

``cms-anomaly disco`` (:func:`run_disco`):

1. the single-lepton SM cocktail and the four BSM benchmarks (the ADC2021 processes;
   :mod:`~cms_anomaly.analyses.cocktail`), ADC2021 object arrays (MET, 4 e, 4 mu, 10 jets x
   (pT, eta, phi)) of the ``single_lepton`` selection;
2. per seed, a double autoencoder (two AEs, encoder 256-128-64-32-5, loss R1 + R2 + lambda DisCo^2,
   lambda = 100) trained on half of the SM events; a lambda = 0 model of the first seed stands for the
   single autoencoder of the paper's comparison;
3. on the other half (weighted to the cocktail composition and normalised to ``reference_events``
   SM events, the paper's 800k validation events), with each benchmark injected at 0.1 % of the
   sample: SIC curves of R1, R2 and the diagonal combination; the ABCD prediction
   ``N(>,<) N(<,>) / N(<,<)`` of region A for several threshold pairs per SM efficiency (closure =
   predicted / observed, Fig. 2); the significance ``(N - B)/sqrt(N)`` with B from ABCD, without and
   with the signal-contamination correction of the control regions, and with the true background
   (Fig. 3); its spread over the seeds;
4. beside the double AE, the trivial baseline it must beat (:mod:`~cms_anomaly.models.baseline`: the L1
   distance of the standardised object array from its median, fitted on the first seed's training
   events), applied in the same pass: its max SIC beside the double AE's.

Every number is read off the processor's ABCD planes: the exported double-AE files are applied in a
second processor pass that fills R1 x R2 (100 log bins per decade) per dataset and training split of
each model's seed; thresholds are bin edges.

The injected signal counts are expected yields (weights), not Poisson draws: the closure and
significance curves show the method's bias, and the ``sum w^2`` errors the size of our simulation.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from cms_anomaly.analyses.analysis import fmt, fresh_report_dir, print_report, report_footer, write_report
from cms_anomaly.analyses.cocktail import SIGNAL_LABELS, CocktailConfig, add_cocktail_arguments, cocktail_config
from cms_anomaly.analyses.headline import with_note
from cms_anomaly.analyses.plot_training import plot_model_training
from cms_anomaly.core.argtypes import non_negative_float, positive_int
from cms_anomaly.stats.headline import few_events_mark

log = logging.getLogger(__name__)

#: SM efficiencies of region A at which closure and significance are evaluated (Mikuni Figs. 2-3)
SM_EFFICIENCIES = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
#: off-diagonal threshold choices: per-score efficiency of AE 1 relative to the diagonal one
OFF_DIAGONAL = (0.5, 2.0)


@dataclass(frozen=True)
class DiscoConfig:
    """Settings of :func:`run_disco` (defaults: ~15 min on 2 cores)."""

    cocktail: CocktailConfig = field(default_factory=CocktailConfig)
    seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    lam: float = 100.0
    epochs: int = 60
    batch_size: int = 2000
    signal_fraction: float = 1e-3
    reference_events: float = 800_000.0
    #: the double AE is decorrelated on the sample it was trained on (the generated events, unit weights);
    #: reweighting the processes mixes different loss scales and correlates R1 and R2 again
    composition: str = "unweighted"
    device: str = "auto"
    efficiencies: tuple[float, ...] = SM_EFFICIENCIES


# ------------------------------------------------------------------------------ inputs
@dataclass(frozen=True)
class Plane:
    """The ABCD plane of one sample, read off the processor's ``score2d_<model>`` histogram: sum w and
    sum w^2 per (R1 bin, R2 bin), flow bins included, and the bins' lower edges (both axes alike)."""

    w: np.ndarray
    w2: np.ndarray
    lower: np.ndarray

    @property
    def total(self) -> float:
        return float(self.w.sum())

    def scaled(self, factor: float) -> Plane:
        return Plane(self.w * factor, self.w2 * factor**2, self.lower)

    def __add__(self, other: Plane) -> Plane:
        return Plane(self.w + other.w, self.w2 + other.w2, self.lower)

    def __radd__(self, other: int | Plane) -> Plane:
        """``sum()`` of datasets (its start value 0 adds nothing)."""
        return self if isinstance(other, int) and other == 0 else self + other

    def unit(self) -> Plane:
        """The same events with unit weights (the processor's weights are one constant per generated
        sample, sigma / N: ``sum w / sum w^2`` undoes it)."""
        return self.scaled(self.total / float(self.w2.sum())) if self.total > 0 else self

    def marginal(self, axis: int) -> tuple[np.ndarray, np.ndarray]:
        """(sum w, sum w^2) per bin of R1 (``axis`` 0) or R2 (1)."""
        other = 1 - axis
        return self.w.sum(axis=other), self.w2.sum(axis=other)

    def centers(self) -> np.ndarray:
        """A representative score per bin: the middle of each bin, the edges for the flow bins."""
        edges = self.lower[1:]
        mid = 0.5 * (edges[:-1] + edges[1:])
        return np.concatenate([[edges[0]], mid, [edges[-1]]])


def plane_of(output: dict, model: str, dataset: str, *, split: str | None) -> Plane:
    """The ABCD plane of ``dataset`` in a processor output (``split``: ``validation``, ``training`` or
    None for all events); for the one-score baseline a one-column plane of its ``score_baseline_l1`` histogram."""
    from cms_anomaly.analyses.baselines import BASELINE

    if model == BASELINE:
        from cms_anomaly.analyses.scorehists import ScoreHists

        sh = ScoreHists(output, BASELINE, "l1", split=split)
        w, w2 = sh.score_sums(dataset)
        return Plane(np.asarray(w)[:, None], np.asarray(w2)[:, None], sh.lower_edges())
    h = output[dataset]["hists"][f"score2d_{model}"]
    h = h[{"dataset": dataset}]
    view = h.view(flow=True)
    splits = list(h.axes["split"])
    pick = [splits.index(s) for s in (splits if split is None else [split]) if s in splits]
    w = np.asarray(view["value"])[pick].sum(axis=0)
    w2 = np.asarray(view["variance"])[pick].sum(axis=0)
    return Plane(w, w2, np.concatenate([[-np.inf], h.axes[1].edges]))


# ------------------------------------------------------------------------------ ABCD studies
def threshold_pairs(sm: Plane, *, efficiency: float) -> list[tuple[str, int, int]]:
    """Threshold pairs (first R1 bin, first R2 bin) whose region A keeps at most ``efficiency`` of the
    SM: the diagonal one and the :data:`OFF_DIAGONAL` choices (AE 1 cut at x times the diagonal
    per-score efficiency, AE 2 cut to restore the region-A efficiency); the multiple entries of
    Mikuni et al. Fig. 2. Thresholds are bin edges of the processor's ABCD plane."""
    from cms_anomaly.stats import diagonal_threshold_bins, threshold_bin_at_efficiency

    k1, k2, e = diagonal_threshold_bins(sm.w, efficiency=efficiency)
    pairs = [("diagonal", k1, k2)]
    if e <= 0.0:  # a small sample: one event already exceeds the target, region A stays empty
        return pairs
    m1, _ = sm.marginal(0)
    for x in OFF_DIAGONAL:
        c1 = threshold_bin_at_efficiency(m1, efficiency=min(1.0, e * x))
        above = sm.w[c1:, :].sum(axis=0)  # R2 of the events above the R1 cut
        if not above.sum() > 0:
            continue
        frac = efficiency * sm.total / float(above.sum())
        if not 0.0 < frac <= 1.0:
            continue
        pairs.append((f"AE1 x{x:g}", c1, threshold_bin_at_efficiency(above, efficiency=frac)))
    return pairs


def abcd_study(
    sm: Plane, signals: dict[str, Plane], *, efficiencies: tuple[float, ...], signal_events: float
) -> dict[str, Any]:
    """Closure and significance per SM efficiency for SM only and SM + each injected signal.

    ``sm`` is the ABCD plane of the SM validation events with weights summing to the reference
    sample size; each signal's plane (unit weights) is scaled to ``signal_events``.
    Significances: ``significance`` = (N - B)/sqrt(N + sigma_B^2) with B and its statistical error
    from ABCD (our simulation is smaller than the reference sample it is normalised to, so sigma_B
    counts), ``significance_paper`` = (N - B)/sqrt(N), ``significance_corrected`` with the signal
    subtracted from the control regions, ``significance_true`` with the true SM yield in region A.
    """
    from cms_anomaly.stats import (
        StatisticsError,
        abcd_counts_from_sums,
        abcd_prediction,
        abcd_significance,
        effective_entries_from_sums,
    )
    from cms_anomaly.stats.headline import few_events

    injected = {n: p.scaled(signal_events / p.total) for n, p in signals.items() if p.total > 0}
    rows = []
    for eff in efficiencies:
        for choice, k1, k2 in threshold_pairs(sm, efficiency=eff):
            counts = abcd_counts_from_sums(sm.w, sm.w2, first1=k1, first2=k2)
            try:
                pred = abcd_prediction(counts)
            except StatisticsError as err:
                log.warning("efficiency %g (%s): %s", eff, choice, err)
                continue
            row: dict[str, Any] = {
                "efficiency": eff,
                "choice": choice,
                "threshold1": float(sm.lower[k1]) if k1 < len(sm.lower) else float("inf"),
                "threshold2": float(sm.lower[k2]) if k2 < len(sm.lower) else float("inf"),
                "sm_a": counts.a,
                "sm_a_entries_w2": counts.a_w2,
                # effective simulated SM events in region A, (sum w)^2 / sum w^2
                "few_events": few_events(effective_entries_from_sums(counts.a, counts.a_w2)),
                "sm_only": {
                    "closure": pred.closure,
                    "closure_error": pred.closure_error,
                    "significance_paper": pred.significance,
                    "significance": abcd_significance(pred.observed, pred.predicted, pred.predicted_error),
                },
            }
            for name, p in injected.items():
                sig = abcd_counts_from_sums(p.w, p.w2, first1=k1, first2=k2)
                mixed = counts + sig
                raw, corrected = abcd_prediction(mixed), abcd_prediction(mixed, signal=sig)
                row[name] = {
                    "signal_a": sig.a,
                    "signal_in_controls": sig.b + sig.c + sig.d,
                    "closure": raw.predicted / counts.a if counts.a > 0 else float("nan"),
                    "closure_error": raw.predicted_error / counts.a if counts.a > 0 else float("nan"),
                    "significance_paper": raw.significance,
                    "significance": abcd_significance(mixed.a, raw.predicted, raw.predicted_error),
                    "significance_corrected": abcd_significance(
                        mixed.a, corrected.predicted, corrected.predicted_error
                    ),
                    "significance_true": abcd_significance(mixed.a, counts.a),
                }
            rows.append(row)
    return {"rows": rows}


def sic_curves(sm: Plane, signals: dict[str, Plane], *, single: tuple[Plane, dict[str, Plane]] | None = None) -> dict:
    """ROC curves (for SIC) of R1, R2 and the diagonal combination per signal, from the binned planes;
    with ``single`` = (SM plane, {signal: plane}) of a lambda = 0 model, its R1 as the single autoencoder."""
    from cms_anomaly.stats import roc_from_sums

    def roc(bkg: tuple[np.ndarray, np.ndarray], sig: tuple[np.ndarray, np.ndarray]) -> Any:
        return roc_from_sums(bkg[0], sig[0], bkg_sumw2=bkg[1], sig_sumw2=sig[1])

    # the diagonal cut at per-score SM efficiency e keeps the events whose SM survival fractions are both
    # <= e: the score of a cell is the smaller of its two SM quantiles (the middle of its bins)
    def quantile(m: np.ndarray) -> np.ndarray:
        return (np.cumsum(m) - 0.5 * m) / m.sum()

    diag = np.minimum.outer(quantile(sm.marginal(0)[0]), quantile(sm.marginal(1)[0])).ravel()
    order = np.argsort(diag, kind="stable")

    def cells(p: Plane) -> tuple[np.ndarray, np.ndarray]:
        return p.w.ravel()[order], p.w2.ravel()[order]

    curves: dict[str, dict[str, Any]] = {}
    for name, p in signals.items():
        if p.total <= 0:
            continue
        c = {
            "AE 1": roc(sm.marginal(0), p.marginal(0)),
            "AE 2": roc(sm.marginal(1), p.marginal(1)),
            "diagonal": roc(cells(sm), cells(p)),
        }
        if single is not None and single[1][name].total > 0:
            c["single AE"] = roc(single[0].marginal(0), single[1][name].marginal(0))
        curves[name] = c
    return curves


def plane_dcor(p: Plane) -> float:
    """Distance correlation of (R1, R2) from the binned plane: every populated cell a point at its bin
    centres, weighted by its events (100 bins per score decade: a score moves by 1.2 % at most)."""
    from cms_anomaly.stats import distance_correlation

    i, j = np.nonzero(p.w > 0)
    c = p.centers()
    return distance_correlation(c[i], c[j], weights=p.w[i, j])


def seed_spread(per_seed: dict[int, dict], signals: list[str]) -> dict[str, Any]:
    """Mean and standard deviation over seeds of the diagonal-cut significance averaged over the
    SM efficiencies where the SM-only closure holds (the paper's stability test: < 6 %), and the
    largest SM-only closure deviation per seed."""
    out: dict[str, Any] = {}

    def validated(s: dict) -> list[dict]:
        # working points where ABCD closes on SM only (within 2 sigma): a significance elsewhere measures
        # the non-closure, not the signal
        return [
            r
            for r in s["abcd"]["rows"]
            if r["choice"] == "diagonal" and abs(r["sm_only"]["closure"] - 1.0) <= 2.0 * r["sm_only"]["closure_error"]
        ]

    out["validated_efficiencies"] = {seed: [r["efficiency"] for r in validated(s)] for seed, s in per_seed.items()}
    for name in signals:
        avg = [
            float(np.mean([r[name]["significance"] for r in validated(s)])) if validated(s) else float("nan")
            for s in per_seed.values()
        ]
        finite = [a for a in avg if np.isfinite(a)]
        out[name] = {
            "mean": float(np.mean(finite)) if finite else float("nan"),
            "std": float(np.std(finite, ddof=1)) if len(finite) > 1 else float("nan"),
            "per_seed": avg,
        }
    dev = [max(abs(r["sm_only"]["closure"] - 1.0) for r in s["abcd"]["rows"]) for s in per_seed.values()]
    out["sm_only_max_closure_deviation"] = {"mean": float(np.mean(dev)), "max": float(np.max(dev)), "per_seed": dev}
    return out


# ------------------------------------------------------------------------------ plots
def make_plots(first: dict, sics: dict, report_dir: Path, *, signals: list[str]) -> list[Path]:
    """Mikuni et al. Fig. 1 (SIC), Fig. 2 (closure) and Fig. 3 (significance), for the first seed."""
    rows = first["abcd"]["rows"]
    return [
        *_plot_sics(sics, report_dir, signals=signals),
        _plot_closure(rows, report_dir, signals=signals),
        _plot_significance(rows, report_dir, signals=signals),
    ]


def _plot_sics(sics: dict, report_dir: Path, *, signals: list[str]) -> list[Path]:
    """SIC of each AE score and of the diagonal cut against the single AE (Mikuni et al. Fig. 1) and the baseline."""
    from cms_anomaly.analyses import plotting

    pngs = []
    styles = {}
    curves = {}
    for i, name in enumerate(signals):
        color = plotting.PROCESS_COLORS[i % len(plotting.PROCESS_COLORS)]
        for kind, ls in (("AE 1", "-"), ("AE 2", "--")):
            label = f"{kind}, {SIGNAL_LABELS.get(name, name)}"
            curves[label], styles[label] = sics[name][kind], {"color": color, "ls": ls}
    pngs.append(
        plotting.plot_sic(
            curves,
            report_dir / "sic_single.png",
            styles=styles,
            text="Simulation",
            title=r"DisCo double AE, $\lambda$ = 100",
        )
    )
    curves, styles = {}, {}
    for i, name in enumerate(signals):
        color = plotting.PROCESS_COLORS[i % len(plotting.PROCESS_COLORS)]
        for kind, ls in (("diagonal", "-"), ("single AE", "--"), ("baseline", ":")):
            if kind in sics[name]:
                label = f"{kind}, {SIGNAL_LABELS.get(name, name)}"
                curves[label], styles[label] = sics[name][kind], {"color": color, "ls": ls}
    pngs.append(
        plotting.plot_sic(
            curves, report_dir / "sic_diagonal.png", styles=styles, text="Simulation", title="diagonal cut vs single AE"
        )
    )
    return pngs


def _plot_closure(rows: list[dict], report_dir: Path, *, signals: list[str]) -> Path:
    """ABCD closure against the SM efficiency of region A, every threshold choice (Mikuni et al. Fig. 2)."""
    from cms_anomaly.analyses import plotting

    series, styles = {}, {}
    samples = ["sm_only", *signals]
    for i, name in enumerate(samples):
        color = "black" if name == "sm_only" else plotting.PROCESS_COLORS[(i - 1) % len(plotting.PROCESS_COLORS)]
        label = "SM only" if name == "sm_only" else f"SM + {SIGNAL_LABELS.get(name, name)} (0.1 %)"
        for j, choice in enumerate(dict.fromkeys(r["choice"] for r in rows)):
            sel = [r for r in rows if r["choice"] == choice]
            x = np.array([r["efficiency"] for r in sel]) * (1.0 + 0.04 * (j - 1) + 0.015 * i)  # side by side
            # one legend entry per sample (the diagonal choice); matplotlib hides labels starting with "_"
            key = label if choice == "diagonal" else f"_{label}, {choice}"
            series[key] = (x, [r[name]["closure"] for r in sel], [r[name]["closure_error"] for r in sel])
            styles[key] = {
                "color": color,
                "ls": "-" if choice == "diagonal" else "none",
                "marker": ("o", "^", "v")[min(j, 2)],
            }
    return plotting.plot_lines(
        series,
        report_dir / "closure.png",
        xlabel="SM efficiency of region A",
        ylabel="ABCD predicted / observed background",
        logx=True,
        hline=1.0,
        styles=styles,
        text="Simulation",
    )


def _plot_significance(rows: list[dict], report_dir: Path, *, signals: list[str]) -> Path:
    """Significance with the ABCD, corrected and true background, diagonal thresholds (Mikuni et al. Fig. 3)."""
    from cms_anomaly.analyses import plotting

    series, styles = {}, {}
    diag = [r for r in rows if r["choice"] == "diagonal"]
    x = np.array([r["efficiency"] for r in diag])
    for i, name in enumerate(signals):
        color = plotting.PROCESS_COLORS[i % len(plotting.PROCESS_COLORS)]
        lab = SIGNAL_LABELS.get(name, name)
        for key, text, ls in (
            ("significance", "ABCD", "-"),
            ("significance_corrected", "ABCD, corrected", "--"),
            ("significance_true", "true background", ":"),
        ):
            series[f"{lab}, {text}"] = (x, [r[name][key] for r in diag])
            styles[f"{lab}, {text}"] = {"color": color, "ls": ls}
    series["SM only, ABCD"] = (x, [r["sm_only"]["significance"] for r in diag])
    styles["SM only, ABCD"] = {"color": "black", "ls": "-"}
    return plotting.plot_lines(
        series,
        report_dir / "significance.png",
        xlabel="SM efficiency of region A",
        ylabel=r"$(N - B)/\sqrt{N}$",
        logx=True,
        styles=styles,
        text="Simulation",
        yscale="symlog",
        ylim=(0.0, None),
    )


# ------------------------------------------------------------------------------ report
def format_report(result: dict, meta: dict, pngs: list[Path]) -> str:
    """summary.md: the set-up, SIC, ABCD closure and significance of the first seed, the spread over seeds."""
    first = result["per_seed"][str(meta["seeds"][0])]
    rows = first["abcd"]["rows"]
    signals = meta["signals"]
    lines = [
        *_intro_and_sic_lines(result, meta, first, signals),
        *_closure_lines(result, meta, rows, signals),
        *_significance_lines(meta, rows, signals),
        *_stability_lines(result, signals),
        *report_footer(pngs, meta["seconds"]),
    ]
    return "\n".join(lines) + "\n"


def _intro_and_sic_lines(result: dict, meta: dict, first: dict, signals: list[str]) -> list[str]:
    """Title, set-up, distance correlations and the max-SIC table of the report."""
    lines = [
        "# DisCo double autoencoder and ABCD background estimate (Mikuni, Nachman, Shih; seed 001)",
        "",
        f"SM cocktail after `single_lepton`: {meta['sm_training_events']} training and {meta['sm_validation_events']} "
        f"validation events per seed (composition `{meta['composition']}`), the validation events weighted to "
        f"{meta['reference_events']:.3g} SM events; each benchmark injected at {meta['signal_fraction']:.2g} of the "
        f"sample ({meta['signal_events']:.0f} events, spread over all the selected generated events: "
        f"{', '.join(f'{s} {n}' for s, n in meta['signal_counts'].items())}). Double AE lambda = {meta['lambda']:g}, seeds {list(meta['seeds'])}.",
        "",
        "Every number below is read off the ABCD planes (R1 x R2 per dataset and training split) that the second "
        f"processor pass filled with the exported double-AE files (`{result['histograms']['file']}`); thresholds are "
        "bin edges of those planes.",
        "",
        "Distance correlation of (R1, R2) on SM validation events: "
        + ", ".join(f"seed {s} {result['per_seed'][str(s)]['dcor']:.3f}" for s in meta["seeds"])
        + (f"; lambda = 0: {result['dcor_lambda0']:.3f}." if result.get("dcor_lambda0") is not None else "."),
        "",
        f"## SIC (seed {meta['seeds'][0]})",
        "",
        "| benchmark | max SIC AE 1 | AE 2 | diagonal | single AE (lambda = 0) | baseline |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in signals:
        m = first["max_sic"][name]
        lines.append(
            f"| {name} | {fmt(m['AE 1'])} | {fmt(m['AE 2'])} | {fmt(m['diagonal'])} | {fmt(m.get('single AE'))} | "
            f"{fmt(m.get('baseline'))} |"
        )
    lines += [
        "",
        "Max SIC over points with >= 10 effective SM events selected. Baseline: the trivial one the double AE "
        "must beat, the L1 distance of the standardised objects from their median (first seed's training events).",
    ]
    return lines


def _closure_lines(result: dict, meta: dict, rows: list[dict], signals: list[str]) -> list[str]:
    """The ABCD closure table (diagonal thresholds) and the largest SM-only deviation of the report."""
    lines = [
        "",
        f"## ABCD closure, predicted / observed in region A (seed {meta['seeds'][0]}, diagonal thresholds)",
        "",
        "| SM efficiency | SM events in A | SM only | " + " | ".join(f"SM + {s}" for s in signals) + " |",
        "|---|---|---|" + "---|" * len(signals),
    ]
    table = []
    for r in rows:
        if r["choice"] != "diagonal":
            continue
        n_a = r["sm_a"] ** 2 / r["sm_a_entries_w2"] if r["sm_a_entries_w2"] > 0 else 0.0
        table.append(
            f"| {r['efficiency']:g}{few_events_mark(n_a)} | {r['sm_a']:.0f} ({n_a:.0f} simulated) | "
            f"{r['sm_only']['closure']:.3f} +- {r['sm_only']['closure_error']:.3f} | "
            + " | ".join(f"{r[s]['closure']:.3f}" for s in signals)
            + " |"
        )
    lines += with_note(table)
    dev = result["spread"]["sm_only_max_closure_deviation"]
    lines += [
        "",
        f"Largest SM-only deviation from closure over all threshold choices: {dev['max']:.1%} "
        f"(mean over seeds of the per-seed maximum {dev['mean']:.1%}); paper: 2.5 %, 'compatible with the "
        "statistical uncertainty of the sample'. Off-diagonal threshold choices (AE 1 cut at 0.5x and 2x the "
        "diagonal per-score efficiency) are in `summary.json` and drawn as triangles in closure.png.",
    ]
    return lines


def _significance_lines(meta: dict, rows: list[dict], signals: list[str]) -> list[str]:
    """The significance table (diagonal thresholds) of the report."""
    lines = [
        "",
        f"## Significance (seed {meta['seeds'][0]}, diagonal thresholds)",
        "",
        "| SM efficiency | " + " | ".join(f"{s}: ABCD / corrected / true" for s in signals) + " | SM only |",
        "|---|" + "---|" * (len(signals) + 1),
    ]
    table = []
    for r in rows:
        if r["choice"] != "diagonal":
            continue
        table.append(
            f"| {r['efficiency']:g}{few_events_mark(r['sm_a'] ** 2 / r['sm_a_entries_w2'] if r['sm_a_entries_w2'] > 0 else 0)} | "
            + " | ".join(
                f"{r[s]['significance']:.2f} / {r[s]['significance_corrected']:.2f} / {r[s]['significance_true']:.2f}"
                for s in signals
            )
            + f" | {r['sm_only']['significance']:.2f} |"
        )
    return [*lines, *with_note(table)]


def _stability_lines(result: dict, signals: list[str]) -> list[str]:
    """The significance averaged over SM efficiencies, its spread over seeds."""
    lines = [
        "",
        "ABCD: (N - B)/sqrt(N + sigma_B^2), sigma_B the statistical error of the ABCD prediction from our "
        "simulation scaled to the reference sample (the paper's (N - B)/sqrt(N), in `significance_paper` of "
        "summary.json, treats a 2 % non-closure of 80k events as a 6 sigma excess). True: the true SM yield "
        "in region A as B.",
        "",
        "Paper: 1-4 for the benchmarks, < 1 for SM only; the uncorrected significance is lower than the corrected "
        "one above 1.5 % SM efficiency.",
        "",
        "## Stability over seeds",
        "",
        "Averaged over the SM efficiencies at which the SM-only closure of that seed is within 2 sigma of 1: "
        + "; ".join(
            f"seed {k}: {', '.join(f'{e:g}' for e in v) or 'none'}"
            for k, v in result["spread"]["validated_efficiencies"].items()
        )
        + ".",
        "",
        "| benchmark | significance averaged over SM efficiencies: mean +- std over seeds | relative std | per seed |",
        "| --- | --- | --- | --- |",
    ]
    for name in signals:
        s = result["spread"][name]
        lines.append(
            f"| {name} | {s['mean']:.2f} +- {fmt(s['std'], 2)} | {fmt(s['std'] / s['mean'] if s['mean'] else np.nan, 2)} | "
            f"{', '.join(f'{v:.2f}' for v in s['per_seed'])} |"
        )
    lines += [
        "",
        "Paper: standard deviation of the average significance below 6 % for all benchmarks (five trainings). "
        "Here each seed also draws its own training / validation split.",
        "",
    ]
    return lines


# ------------------------------------------------------------------------------ the job
def run_disco(
    out: str | os.PathLike, config: DiscoConfig = DiscoConfig(), *, samples_dir: str | os.PathLike | None = None
) -> Path:
    """Run the whole study into ``out`` (samples in ``samples_dir``, default ``out/samples``).

    The double autoencoders (one per seed, and lambda = 0 for the first seed) are trained on the
    feature tables; their exported TorchScript files are then applied inside a second processor pass
    (``OUT/pass2/histograms.*``), each with the training split of its own seed, filling its ABCD plane
    (R1 x R2 per dataset and split, ``score2d_<model>``). Every number and plot is read off those
    planes: the SM from each model's validation part, the signals from all their events.
    """
    from cms_anomaly.analyses.analysis import processor_pass
    from cms_anomaly.analyses.cocktail import UNIT_LUMI_PB, cocktail_samples, validation_indices
    from cms_anomaly.models.pipeline import TrainOptions
    from cms_anomaly.models.scorers import load_scorer
    from cms_anomaly.processors.folds import EventSplit

    out = Path(out)
    samples_dir = Path(samples_dir) if samples_dir is not None else out / "samples"
    t0 = time.perf_counter()
    if config.cocktail.tail_bias and config.composition == "unweighted":
        raise ValueError(
            "disco: a tail-weighted production (--tail-bias) has event weights; the 'unweighted' composition "
            "would drop them: use --composition generated or paper"
        )
    cs = cocktail_samples(samples_dir, config.cocktail, feature_set="objects", composition=config.composition)
    features_dir, fileset, samples, sm_names, signals = (
        cs.features_dir, cs.fileset, cs.samples, cs.sm_names, cs.signal_names,
    )  # fmt: skip
    times: dict[str, float] = {"samples": cs.seconds}
    signal_events = config.signal_fraction * config.reference_events

    t = time.perf_counter()
    val_fraction = TrainOptions().val_fraction
    trained = _train_double_aes(config, features_dir, samples, out / "models", val_fraction=val_fraction)
    times["training"] = time.perf_counter() - t

    t = time.perf_counter()
    output = processor_pass(
        {n: fileset[n] for n in samples},
        out=out / "pass2",
        selection="single_lepton",
        lumi_pb=UNIT_LUMI_PB,
        execution=config.cocktail.execution,
        scorers={name: load_scorer(path) for name, (path, _) in trained.items()},
        features=False,
        score_features=(),
        split={name: EventSplit(val_fraction, seed) for name, (_, seed) in trained.items()},
    )
    times["pass2"] = time.perf_counter() - t

    t = time.perf_counter()
    planes = _Planes(output, config, sm_names, signals)
    result, sics = _analyse(planes, signal_events=signal_events, histograms_file=out / "pass2" / "histograms.coffea")
    first = result["per_seed"][str(config.seeds[0])]
    report_dir = fresh_report_dir(out)
    pngs = make_plots(first, sics, report_dir, signals=[s for s in signals if s in sics])
    pngs += plot_model_training({name: path for name, (path, _) in trained.items()}, report_dir)
    times["analysis"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - t0
    n_val = sum(len(i) for i in validation_indices(samples, seed=config.seeds[0], val_fraction=val_fraction).values())
    meta = {
        "config": asdict(config),
        "samples_dir": str(samples_dir),
        "seeds": list(config.seeds),
        "signals": signals,
        "lambda": config.lam,
        "composition": config.composition,
        "reference_events": config.reference_events,
        "signal_fraction": config.signal_fraction,
        "signal_events": signal_events,
        "signal_counts": {n: len(samples[n]) for n in signals},
        "sm_validation_events": n_val,
        "sm_training_events": sum(len(samples[n]) for n in sm_names) - n_val,
        "models": {name: str(path) for name, (path, _) in trained.items()},
        "seconds": times,
    }
    markdown = format_report(result, meta, pngs)
    return write_report(report_dir, markdown=markdown, payload={**meta, "result": result}, title="DisCo ABCD")


def _train_double_aes(
    config: DiscoConfig, features_dir: Path, samples: dict, models_dir: Path, *, val_fraction: float
) -> dict[str, tuple[Path, int]]:
    """Train and export a double AE per seed and one with lambda = 0, and fit the trivial baseline on the
    first seed's training events; processor name -> (file, seed of its split)."""
    from cms_anomaly.analyses.baselines import BASELINE, fit_baseline
    from cms_anomaly.models.pipeline import TrainOptions, train_and_export

    trained: dict[str, tuple[Path, int]] = {}
    for seed, lam in [*((s, config.lam) for s in config.seeds), (config.seeds[0], 0.0)]:
        options = TrainOptions(
            epochs=config.epochs,
            batch_size=config.batch_size,
            seed=seed,
            lam=lam,
            device=config.device,
            progress=False,
            val_fraction=val_fraction,
        )
        model = train_and_export(
            "double-ae",
            features_dir=features_dir,
            out_dir=models_dir,
            feature_set="objects",
            options=options,
            samples=samples,
            name=f"double_ae_lambda{lam:g}_seed{seed}",
        )
        trained["dae_lambda0" if lam == 0.0 else f"dae_s{seed}"] = (model.paths[0], seed)
        log.info("seed %d, lambda %g trained", seed, lam)
    first = replace(options, seed=config.seeds[0], lam=config.lam)  # the first seed's split
    trained[BASELINE] = (
        fit_baseline(features_dir, models_dir, feature_set="objects", options=first, samples=samples),
        first.seed,
    )
    return trained


@dataclass(frozen=True)
class _Planes:
    """The ABCD planes of the second pass, per model: the SM in the configured composition, the signals."""

    output: Any
    config: DiscoConfig
    sm_names: list[str]
    signal_names: list[str]

    def sm(self, model: str) -> Plane:
        """The model's SM validation events in the configured composition, normalised to the reference size."""
        from cms_anomaly.analyses.cocktail import composition_scales

        output, config, sm_names = self.output, self.config, self.sm_names
        parts = {n: plane_of(output, model, n, split="validation") for n in sm_names}
        if config.composition == "unweighted":
            parts = {n: p.unit() for n, p in parts.items()}
        else:
            rates = {n: plane_of(output, model, n, split=None).total for n in sm_names}
            scales = composition_scales(rates, config.composition)
            parts = {n: p.scaled(scales[n]) for n, p in parts.items()}
        total = sum(parts.values())
        return total.scaled(config.reference_events / total.total)

    def signals(self, model: str) -> dict[str, Plane]:
        """Every event of each signal in the model's plane, unit weights."""
        return {n: plane_of(self.output, model, n, split=None).unit() for n in self.signal_names}


def _analyse(planes: _Planes, *, signal_events: float, histograms_file: Path) -> tuple[dict, dict]:
    """The ABCD study and distance correlation per seed, the first seed's SIC curves and the spread over seeds."""
    config, signals = planes.config, planes.signal_names
    per_seed: dict[str, dict] = {}
    for seed in config.seeds:
        sm = planes.sm(f"dae_s{seed}")
        study = abcd_study(
            sm, planes.signals(f"dae_s{seed}"), efficiencies=config.efficiencies, signal_events=signal_events
        )
        per_seed[str(seed)] = {"abcd": study, "dcor": plane_dcor(sm)}
    first_model = f"dae_s{config.seeds[0]}"
    single = (planes.sm("dae_lambda0"), planes.signals("dae_lambda0"))
    sics = sic_curves(planes.sm(first_model), planes.signals(first_model), single=single)
    _add_baseline_curves(sics, planes)
    first = per_seed[str(config.seeds[0])]
    first["max_sic"] = {name: {kind: _max_sic(c) for kind, c in sics[name].items()} for name in sics}
    spread = seed_spread(per_seed, signals)
    result = {
        "per_seed": per_seed,
        "spread": spread,
        "dcor_lambda0": plane_dcor(single[0]),
        "histograms": {"file": str(histograms_file), "first_model": first_model},
    }
    return result, sics


def _add_baseline_curves(sics: dict, planes: _Planes) -> None:
    """The trivial baseline's ROC (for SIC) beside each signal's curves, on the same SM validation events."""
    from cms_anomaly.analyses.baselines import BASELINE
    from cms_anomaly.stats import roc_from_sums

    sm, sig = planes.sm(BASELINE).marginal(0), planes.signals(BASELINE)
    for name, curves in sics.items():
        if sig[name].total > 0:
            s = sig[name].marginal(0)
            curves["baseline"] = roc_from_sums(sm[0], s[0], bkg_sumw2=sm[1], sig_sumw2=s[1])


def _max_sic(curve: Any, min_bkg_events: float = 10.0) -> float:
    keep = (curve.fpr * curve.n_bkg_eff >= min_bkg_events) & (curve.fpr > 0)
    return float(np.max(curve.sic()[keep])) if keep.any() else float("nan")


# ------------------------------------------------------------------------------ CLI
def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "disco",
        help="DisCo double autoencoder + ABCD background estimate on the single-lepton cocktail (Mikuni et al.)",
        description=(
            "Generate (or reuse) the single-lepton SM cocktail and four BSM benchmarks, train the double autoencoder "
            "(lambda DisCo) with several seeds and write SIC curves, the ABCD closure vs SM efficiency for SM only and "
            "SM + each benchmark at 0.1 %, the significance with and without the contamination correction, and the "
            "spread over seeds to OUT/report."
        ),
    )
    add_cocktail_arguments(p, default_out="out/disco")
    p.add_argument("--seeds", type=int, nargs="+", default=list(DiscoConfig.seeds), help="training seeds (default 1-5)")
    p.add_argument(
        "--lambda", dest="lam", type=non_negative_float, default=DiscoConfig.lam, help="DisCo weight (default 100)"
    )
    p.add_argument("--epochs", type=positive_int, default=DiscoConfig.epochs, help="maximum epochs per training")
    p.add_argument(
        "--composition",
        choices=("unweighted", "paper", "generated"),
        default="unweighted",
        help="SM sample: the generated events with unit weights (default, the training sample's own "
        "composition), or reweighted to the paper's shares or to Pythia's cross sections",
    )
    p.set_defaults(func=_cmd)


def _cmd(args: Any) -> int:
    config = DiscoConfig(
        cocktail=cocktail_config(args),
        seeds=tuple(args.seeds),
        lam=args.lam,
        epochs=args.epochs,
        composition=args.composition,
        device=args.device,
    )
    summary = run_disco(args.out, config, samples_dir=args.samples)
    return print_report(summary)
