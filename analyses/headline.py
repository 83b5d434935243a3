"""What a report may headline: the paper's alpha on this run's sample, the job's measured cost.

Rows from fewer than :data:`~cms_anomaly.stats.headline.MIN_EVENTS_FOR_HEADLINE` selected events are
marked by :func:`~cms_anomaly.stats.headline.few_events_mark`; this module says whether the main
job's sample is large enough for the paper's alpha = 1e-3 and, if not, which ``--events`` would be,
with the time that takes extrapolated linearly from the measured run.
"""

from __future__ import annotations

import math
import resource
from collections.abc import Iterable
from typing import Any

from cms_anomaly.stats.headline import FEW_EVENTS_MARK, FEW_EVENTS_NOTE, MIN_EVENTS_FOR_HEADLINE, scale_for_events

#: Knapp et al.'s working point (the "factor 20" of their Fig. 4)
PAPER_ALPHA = 1e-3


def cpu_seconds() -> float:
    """User + system CPU time of this process and its waited-for children (workers, generators) so far."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def paper_alpha(
    *, n_data: int, data_fraction: float, events_scale: float, wall_seconds: float, cpu_seconds: float
) -> dict[str, Any]:
    """The ``paper_alpha`` block: pseudo-data events the paper's alpha selects, and what would select enough.

    Parameters
    ----------
    n_data : int
        (Pseudo-)data events after the selection, before the anomaly selection.
    data_fraction : float
        Fraction of them above the threshold of alpha = :data:`PAPER_ALPHA` (a score-bin edge).
    events_scale : float
        The run's ``--events``.
    wall_seconds, cpu_seconds : float
        The run's measured wall and CPU time.

    Returns
    -------
    dict
        ``selected``, ``enough`` and, by linear scaling of the selected fraction and of the
        measured times, the ``--events`` that selects :data:`MIN_EVENTS_FOR_HEADLINE` and its times.
    """
    selected = round(data_fraction * n_data)
    factor = scale_for_events(selected, n_total=max(n_data, 1), fraction=PAPER_ALPHA)
    events = math.ceil(events_scale * factor * 10) / 10
    ratio = events / events_scale
    return {
        "alpha": PAPER_ALPHA,
        "n_data": n_data,
        "selected": selected,
        "min_events": MIN_EVENTS_FOR_HEADLINE,
        "enough": selected >= MIN_EVENTS_FOR_HEADLINE,
        "events_scale": events_scale,
        "events_needed": events_scale if selected >= MIN_EVENTS_FOR_HEADLINE else events,
        "wall_seconds_measured": round(wall_seconds, 1),
        "cpu_seconds_measured": round(cpu_seconds, 1),
        "wall_seconds_needed": round(wall_seconds * ratio, 1),
        "cpu_seconds_needed": round(cpu_seconds * ratio, 1),
        "extrapolation": "linear in the number of events, from this run's measured times and selected fraction",
    }


def paper_alpha_sentence(block: dict[str, Any]) -> str:
    """The report's sentence on the paper's alpha (:func:`paper_alpha`)."""
    head = (
        f"At the paper's alpha = {block['alpha']:g} this run selects {block['selected']} of its "
        f"{block['n_data']} (pseudo-)data events"
    )
    if block["enough"]:
        return f"{head}: at least {block['min_events']}, enough for the efficiency ratio at 1e-3 to be a headline."
    return (
        f"{head}: fewer than {block['min_events']}, so its row is no headline. `--events {block['events_needed']:g}` "
        f"would select about {block['min_events']} (linear scaling of the selected fraction); that run takes about "
        f"{block['wall_seconds_needed'] / 3600:.2g} h wall and {block['cpu_seconds_needed'] / 3600:.2g} h CPU on this "
        f"machine, an extrapolation (linear in the events) from this run's measured {block['wall_seconds_measured']:.0f} s "
        f"wall and {block['cpu_seconds_measured']:.0f} s CPU."
    )


def note_for(rows: Iterable[str]) -> list[str]:
    """``["", footnote]`` when one of the table ``rows`` carries the few-events mark, else ``[]``."""
    return ["", FEW_EVENTS_NOTE] if any(FEW_EVENTS_MARK in r for r in rows) else []


def with_note(rows: Iterable[str]) -> list[str]:
    """Table ``rows`` followed by the few-events footnote when one of them carries the mark."""
    rows = list(rows)
    return [*rows, *note_for(rows)]
