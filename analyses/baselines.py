"""The trivial baseline beside every detector of the analyses (issue 31): fit, AUC from binned scores, report text.

The baseline (:mod:`~cms_anomaly.models.baseline`) is the L1 distance of the standardised inputs
from their median, fitted on the training events of the detector it sits beside, on its inputs. The
analyses export it, apply it in the same processor pass as the detector (``score_baseline_l1_*``
histograms) and read its AUC or efficiency off those histograms at the detector's working point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: the AUC by which a detector must exceed the trivial baseline's to be said to beat it
BASELINE_AUC_MARGIN = 0.02
#: the baseline's name in the processor's scorers and histograms (``score_baseline_l1_*``)
BASELINE = "baseline"
#: what the baseline is, for reports
BASELINE_TEXT = "the L1 distance of the standardised inputs from their median, fitted on the detector's training events"


def fit_baseline(features_dir: Path, out_dir: Path, *, feature_set: str, options: Any, **kwargs: Any) -> Path:
    """Fit and export the baseline on the events and inputs a detector is trained on (the same
    :class:`~cms_anomaly.models.pipeline.TrainOptions`: split and seed); returns its TorchScript file."""
    from cms_anomaly.models.pipeline import train_and_export

    trained = train_and_export(
        BASELINE, features_dir=features_dir, out_dir=out_dir, feature_set=feature_set, options=options, **kwargs
    )
    return trained.paths[0]


def binned_auc(bkg: tuple[np.ndarray, np.ndarray], sig: tuple[np.ndarray, np.ndarray]) -> float:
    """AUC of (sum w, sum w^2) per score bin of background and signal (:func:`~cms_anomaly.stats.roc_from_sums`);
    NaN when either is empty."""
    from cms_anomaly.stats import roc_from_sums

    if not (np.sum(bkg[0]) > 0 and np.sum(sig[0]) > 0):
        return float("nan")
    return float(roc_from_sums(bkg[0], sig[0], bkg_sumw2=bkg[1], sig_sumw2=sig[1]).auc())


def baseline_sentence(auc: float, baseline_auc: float, *, margin: float = BASELINE_AUC_MARGIN) -> str:
    """Whether the detector (AUC ``auc``) beats the trivial baseline (``baseline_auc``): it does when its
    AUC exceeds the baseline's by more than ``margin``."""
    if not (np.isfinite(auc) and np.isfinite(baseline_auc)):
        return f"The detector and the trivial baseline cannot be compared (AUC {auc:.3f} vs {baseline_auc:.3f})."
    if auc <= baseline_auc + margin:
        return (
            f"The detector does not beat the trivial baseline (AUC {auc:.3f} vs {baseline_auc:.3f}; it must exceed "
            f"the baseline's by more than {margin:g})."
        )
    return (
        f"The detector beats the trivial baseline by {auc - baseline_auc:.3f} in AUC ({auc:.3f} vs {baseline_auc:.3f})."
    )


def beats_baseline(auc: float, baseline_auc: float, *, margin: float = BASELINE_AUC_MARGIN) -> bool:
    """The detector's AUC exceeds the baseline's by more than ``margin``."""
    return bool(auc > baseline_auc + margin)


def baseline_aucs(
    output: dict, sm_scales: dict[str, float], signals: list[str], *, split: str | None = None
) -> dict[str, float]:
    """AUC of the baseline per signal against the SM datasets of ``sm_scales`` (each scaled by its
    value: the cocktail composition), read off the baseline's histograms in ``output`` (``split``:
    the events of one training split, e.g. ``validation``)."""
    from cms_anomaly.analyses.scorehists import ScoreHists

    sh = ScoreHists(output, BASELINE, "l1", split=split)
    sums = {n: sh.score_sums(n) for n in sm_scales}
    w = sum(sums[n][0] * f for n, f in sm_scales.items())
    w2 = sum(sums[n][1] * f**2 for n, f in sm_scales.items())
    return {s: binned_auc((np.asarray(w), np.asarray(w2)), sh.score_sums(s)) for s in signals}


def with_baseline_aucs(
    rocs: dict[str, dict[str, Any]], output: dict, sm_scales: dict[str, float], *, split: str | None = None
) -> dict[str, dict[str, float]]:
    """The AUCs of ``rocs`` ({signal: {detector: ROC curve or None}}; None: NaN) with the baseline's beside
    them (:func:`baseline_aucs` on the same SM datasets, scales and split)."""
    b_auc = baseline_aucs(output, sm_scales, list(rocs), split=split)
    nan = float("nan")
    return {
        s: {**{k: (c.auc() if c is not None else nan) for k, c in r.items()}, "baseline": b_auc[s]}
        for s, r in rocs.items()
    }
