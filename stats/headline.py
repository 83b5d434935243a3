"""When a number may be a headline: the event count below which a report row is marked.

A ratio, purity or significance computed from a handful of selected events has an interval wider
than its value; the reports keep such rows but mark them. The count is the number of raw
(unweighted) selected events; for a weighted histogram it is the effective number of entries
``(sum w)^2 / sum w^2`` (:func:`~cms_anomaly.stats.effective_entries_from_sums`), which equals the
raw count for unit weights.
"""

from __future__ import annotations

import math

#: a table row computed from fewer selected events than this is marked
MIN_EVENTS_FOR_HEADLINE = 10
#: the mark of such a row in the Markdown tables
FEW_EVENTS_MARK = "\u2020"
#: the footnote under a table that has a marked row
FEW_EVENTS_NOTE = f"{FEW_EVENTS_MARK} from fewer than {MIN_EVENTS_FOR_HEADLINE} selected events."


def few_events(*counts: float | None) -> bool:
    """True when the smallest of ``counts`` (selected raw or effective events) is below
    :data:`MIN_EVENTS_FOR_HEADLINE`; a missing or non-finite count counts as few.

    Parameters
    ----------
    *counts : float or None
        The selected events of each sample a row's number is computed from (at least one).

    Returns
    -------
    bool
        Whether the row is marked.
    """
    if not counts:
        raise ValueError("few_events: give at least one count")
    return any(n is None or not math.isfinite(float(n)) or float(n) < MIN_EVENTS_FOR_HEADLINE for n in counts)


def few_events_mark(*counts: float | None) -> str:
    """:data:`FEW_EVENTS_MARK` (after a space) for a row :func:`few_events` marks, else ``""``."""
    return f" {FEW_EVENTS_MARK}" if few_events(*counts) else ""


def scale_for_events(
    selected: float, *, n_total: float, fraction: float, target: int = MIN_EVENTS_FOR_HEADLINE
) -> float:
    """The factor on the sample size that selects ``target`` events, by linear scaling.

    ``selected`` of ``n_total`` events pass a selection meant to keep ``fraction`` of them. The
    selected fraction is ``selected / n_total`` when some pass, else the nominal ``fraction``;
    the sample that selects ``target`` events is ``target / (selected fraction)`` events, i.e.
    ``target / (selected fraction * n_total)`` times this one (at least 1).

    Parameters
    ----------
    selected : float
        Events passing the selection.
    n_total : float
        Events the selection was applied to (> 0).
    fraction : float
        The selection's nominal fraction (e.g. alpha), used when none pass (> 0).
    target : int
        Wanted selected events.

    Returns
    -------
    float
        The scale factor (1.0 when ``selected >= target``).
    """
    if n_total <= 0 or fraction <= 0:
        raise ValueError(f"scale_for_events: n_total and fraction must be > 0, got {n_total}, {fraction}")
    if selected >= target:
        return 1.0
    per_event = selected / n_total if selected > 0 else fraction
    return max(1.0, target / (per_event * n_total))
