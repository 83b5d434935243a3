"""Statistics of the analysis: pure functions on numpy arrays and ``hist`` objects.

No files, no plots, no other package of this project. One topic per module:

================  ==================================================================
``intervals``     Agresti-Coull intervals, weighted efficiencies, ratio uncertainties
``thresholds``    thresholds at an efficiency (empirical or from an exponential tail fit)
``roc``           ROC, AUC, LR+, SIC, TPR at fixed FPR
``astf``          anomaly-selection transfer functions (Knapp et al.), data vs simulation ASTF
``abcd``          ABCD counts, prediction, closure, diagonal thresholds (Mikuni et al.)
``significance``  significance of a yield over an estimate (with its error), Z_Bi
``rates``         events per month, trigger rates, SBR (Cerri et al.)
``dcor``          distance correlation
``fits``          dijet fit functions with iminuit (Chekanov eq. 1, LHCO)
``bumphunt``      BumpHunter scans through pyBumpHunter
``compare``       data vs simulation: chi^2 with the simulation's error, sparse bins merged
``scan``          window scans over selections and variables, global significance (look-elsewhere)
``classes``       regions of interest over event classes, MUSiC's p-tilde and global significance
``nplm``          the New Physics Learning Machine (kernel form) on binned samples, calibrated by toys
``calibration``   the alphas a calibrated selection resolves; simulated acceptance vs alpha
================  ==================================================================

Score convention: larger = more anomalous; an event is selected when ``score > threshold``.
Everything but ``fits`` and ``bumphunt`` (which load iminuit and pyBumpHunter) is importable
from here directly.
"""

from __future__ import annotations

from cms_anomaly.stats._common import (
    LUMI_PER_MONTH_FB,
    ONE_SIGMA_CL,
    SM_WORKING_POINTS,
    StatisticsError,
    effective_entries,
    effective_entries_from_sums,
)
from cms_anomaly.stats.abcd import (
    AbcdCounts,
    AbcdPrediction,
    abcd_counts,
    abcd_counts_from_hist,
    abcd_counts_from_sums,
    abcd_prediction,
    abcd_signal_strength,
    abcd_trigger_prescales,
    diagonal_threshold_bins,
    diagonal_thresholds,
)
from cms_anomaly.stats.astf import (
    AstfResult,
    astf,
    astf_comparison,
)
from cms_anomaly.stats.calibration import (
    ACCEPTANCE_TOLERANCE,
    MIN_CALIBRATION_COUNT,
    THREE_SIGMA_CL,
    AcceptanceCheck,
    acceptance_check,
    calibratable,
    min_validation_events,
)
from cms_anomaly.stats.classes import (
    ClassResult,
    ClassScanResult,
    class_scan,
)
from cms_anomaly.stats.compare import (
    Comparison,
    compare_counts,
    merge_groups,
)
from cms_anomaly.stats.dcor import (
    distance_correlation,
)
from cms_anomaly.stats.intervals import (
    BinomialInterval,
    agresti_coull_interval,
    efficiency_from_sums,
    enrichment_factor,
    ratio_uncertainty,
    weighted_efficiency,
)
from cms_anomaly.stats.rates import (
    events_per_month,
    sbr_ratio,
    trigger_rate_hz,
    xsec_for_events_per_month,
    xsec_for_signal_to_background,
)
from cms_anomaly.stats.roc import (
    RocCurve,
    WorkingPoint,
    auc,
    lr_plus,
    roc_curve,
    roc_from_labels,
    roc_from_sums,
    sic,
    tpr_at_fpr,
)
from cms_anomaly.stats.scan import (
    ScanResult,
    scan,
    z_bi,
)
from cms_anomaly.stats.significance import (
    Z_MAX,
    abcd_significance,
    on_off_p,
    on_off_significance,
    poisson_significance,
    z_from_p,
)
from cms_anomaly.stats.thresholds import (
    MIN_EVENTS_ABOVE,
    efficiency_above,
    selection_efficiency,
    threshold_at_efficiency,
    threshold_at_fpr,
    threshold_at_fpr_from_sums,
    threshold_bin_at_efficiency,
    weighted_cdf,
)

__all__ = [
    "ACCEPTANCE_TOLERANCE",
    "LUMI_PER_MONTH_FB",
    "MIN_CALIBRATION_COUNT",
    "MIN_EVENTS_ABOVE",
    "ONE_SIGMA_CL",
    "SM_WORKING_POINTS",
    "THREE_SIGMA_CL",
    "Z_MAX",
    "AbcdCounts",
    "AbcdPrediction",
    "AcceptanceCheck",
    "AstfResult",
    "BinomialInterval",
    "ClassResult",
    "ClassScanResult",
    "Comparison",
    "RocCurve",
    "ScanResult",
    "StatisticsError",
    "WorkingPoint",
    "abcd_counts",
    "abcd_counts_from_hist",
    "abcd_counts_from_sums",
    "abcd_prediction",
    "abcd_signal_strength",
    "abcd_significance",
    "abcd_trigger_prescales",
    "acceptance_check",
    "agresti_coull_interval",
    "astf",
    "astf_comparison",
    "auc",
    "calibratable",
    "class_scan",
    "compare_counts",
    "diagonal_threshold_bins",
    "diagonal_thresholds",
    "distance_correlation",
    "effective_entries",
    "effective_entries_from_sums",
    "efficiency_above",
    "efficiency_from_sums",
    "enrichment_factor",
    "events_per_month",
    "lr_plus",
    "merge_groups",
    "min_validation_events",
    "on_off_p",
    "on_off_significance",
    "poisson_significance",
    "ratio_uncertainty",
    "roc_curve",
    "roc_from_labels",
    "roc_from_sums",
    "sbr_ratio",
    "scan",
    "selection_efficiency",
    "sic",
    "threshold_at_efficiency",
    "threshold_at_fpr",
    "threshold_at_fpr_from_sums",
    "threshold_bin_at_efficiency",
    "tpr_at_fpr",
    "trigger_rate_hz",
    "weighted_cdf",
    "weighted_efficiency",
    "xsec_for_events_per_month",
    "xsec_for_signal_to_background",
    "z_bi",
    "z_from_p",
]


def __dir__() -> list[str]:
    return __all__
