"""Reading anomaly selections off the processor's score histograms.

The processor fills, for every scorer output, ``score_<model>_<output>_vs_<feature>``
(dataset, split, process, score, feature) and ``score_<model>_<output>_vs_counts`` (dataset,
split, process, score, N_J, N_b) with 50 log bins per score decade (:mod:`cms_anomaly.processors.histograms`).
An anomaly selection is then a first score bin ``k`` (flow bins included, so that no event is
lost): everything in bins ``k, k+1, ...`` is selected and the threshold is the lower edge of bin
``k``. These helpers slice those histograms; the statistics are in :mod:`cms_anomaly.stats`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import hist
import numpy as np
from cms_anomaly.stats import effective_entries_from_sums


def drawable_axis(axis: Any) -> Any:
    """Integer (count) axes as unit-width Regular axes [n, n+1), which mplhep draws (it treats Integer
    axes as categories); any other axis unchanged."""
    if isinstance(axis, hist.axis.Integer):
        return hist.axis.Regular(len(axis), axis.edges[0], axis.edges[-1], name=axis.name, label=axis.label)
    return axis


def drawable(h: hist.Hist) -> hist.Hist:
    """A 1-D weighted histogram with :func:`drawable_axis` (contents and flow bins kept)."""
    out = hist.Hist(drawable_axis(h.axes[0]), storage=hist.storage.Weight())
    out.view(flow=True)[...] = h.view(flow=True)
    return out


@dataclass(frozen=True)
class ScoreHists:
    """The score histograms of one model output in a processor output ``{dataset: {"hists": ...}}``."""

    output: Mapping[str, Any]
    model: str
    score: str
    #: the split (training / validation of :class:`~cms_anomaly.processors.folds.EventSplit`) to
    #: read; None: all events
    split: str | None = None

    def _hist(self, dataset: str, what: str) -> hist.Hist:
        name = f"score_{self.model}_{self.score}_vs_{what}"
        try:
            return self.output[dataset]["hists"][name]
        except KeyError:
            raise KeyError(
                f"dataset {dataset!r} has no histogram {name!r}: was the processor run with the {self.model!r} scorer?"
            ) from None

    def _view(self, dataset: str, what: str, processes: Iterable[str] | None) -> Any:
        """Weight view of (score, ...) with flow bins, summed over the selected processes (and the
        split ``self.split``, or all)."""
        h = self._hist(dataset, what)
        view = h.view(flow=True)[h.axes["dataset"].index(dataset)]
        splits, cats = list(h.axes["split"]), list(h.axes["process"])
        s = [splits.index(x) for x in (splits if self.split is None else [self.split]) if x in splits]
        p = [cats.index(x) for x in (cats if processes is None else processes) if x in cats]
        value = np.asarray(view["value"])[s][:, p].sum(axis=(0, 1))
        variance = np.asarray(view["variance"])[s][:, p].sum(axis=(0, 1))
        return value, variance

    def histogram(self, dataset: str, what: str) -> hist.Hist:
        """The processor's ``score_<model>_<output>_vs_<what>`` histogram of ``dataset``."""
        return self._hist(dataset, what)

    def sums(self, dataset: str, what: str, *, processes: Iterable[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(sum w, sum w^2) arrays (score, feature...) with flow bins of ``score_..._vs_<what>``."""
        return self._view(dataset, what, processes)

    def threshold(self, first_bin: int) -> float:
        """Lower edge of score bin ``first_bin``, flow bins included (0 for the underflow: the score axis
        is logarithmic, for positive scores such as losses and distances; the top edge for the overflow
        and beyond, where nothing is selected): selecting bins ``k, ...`` is ``score >= threshold(k)``."""
        edges = self._any_hist().axes["score"].edges
        return 0.0 if first_bin <= 0 else float(edges[min(first_bin, len(edges)) - 1])

    def lower_edges(self) -> np.ndarray:
        """Lower edge of every score bin, flow bins included (``-inf`` for the underflow, the top edge
        for the overflow): selecting bins ``k, ...`` is ``score >= lower_edges()[k]``."""
        edges = self._any_hist().axes["score"].edges
        return np.concatenate([[-np.inf], edges])

    def _any_hist(self) -> hist.Hist:
        for dataset in self.output:
            try:
                return self._hist(dataset, "counts")
            except KeyError:
                continue
        raise KeyError(f"no dataset has the score histograms of {self.model!r} {self.score!r}")

    def score_sums(self, dataset: str, *, processes: Iterable[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(sum w, sum w^2) per score bin (flow included) of the selected events of ``dataset``."""
        value, variance = self._view(dataset, "counts", processes)
        return value.sum(axis=(1, 2)), variance.sum(axis=(1, 2))

    def processes(self, dataset: str) -> list[str]:
        return list(self._hist(dataset, "counts").axes["process"])

    def feature(
        self, dataset: str, feature: str, *, first_bin: int = 0, processes: Iterable[str] | None = None
    ) -> hist.Hist:
        """1-D weighted histogram of ``feature`` for the events in score bins ``first_bin, ...``.

        Integer (count) axes become unit-width Regular axes [n, n+1), which mplhep can draw.
        """
        h = self._hist(dataset, feature)
        value, variance = self._view(dataset, feature, processes)
        out = hist.Hist(drawable_axis(h.axes[feature]), storage=hist.storage.Weight())
        view = out.view(flow=True)
        view["value"] = value[first_bin:].sum(axis=0)
        view["variance"] = variance[first_bin:].sum(axis=0)
        return out

    def count_yield(
        self,
        dataset: str,
        *,
        first_bin: int = 0,
        min_jets: int = 0,
        min_bjets: int = 0,
        processes: Iterable[str] | None = None,
    ) -> dict[str, float]:
        """Weighted yield (sum w, its error, effective entries) with score bin >= ``first_bin``,
        N_J >= ``min_jets`` and N_b >= ``min_bjets`` (overflow of the count axes included)."""
        h = self._hist(dataset, "counts")
        value, variance = self._view(dataset, "counts", processes)
        # flow-inclusive index of the bin holding the value n on an Integer axis starting at lo
        j = int(np.clip(min_jets - h.axes["n_jets"].edges[0] + 1, 0, value.shape[1]))
        b = int(np.clip(min_bjets - h.axes["n_bjets"].edges[0] + 1, 0, value.shape[2]))
        sumw = float(value[first_bin:, j:, b:].sum())
        sumw2 = float(variance[first_bin:, j:, b:].sum())
        return {"sumw": sumw, "error": float(np.sqrt(sumw2)), "entries": effective_entries_from_sums(sumw, sumw2)}

    def score_hist(self, dataset: str, *, first: int, last: int, rebin: int = 1) -> hist.Hist:
        """The score distribution of ``dataset`` over in-range bins ``first..last`` (0-based), merged
        ``rebin`` at a time; events below / above fold into the first / last bin (nothing is lost)."""
        edges = self._any_hist().axes["score"].edges
        value, variance = self.score_sums(dataset)
        value, variance = value.copy(), variance.copy()
        # flow-inclusive index i+1 is in-range bin i; fold the tails into first / last
        for arr in (value, variance):
            arr[first + 1] += arr[: first + 1].sum()
            arr[last + 1] += arr[last + 2 :].sum()
        starts = list(range(first, last + 1, rebin))
        new_edges = [edges[i] for i in starts] + [edges[last + 1]]
        out = hist.Hist(
            hist.axis.Variable(new_edges, name="score", label=self._any_hist().axes["score"].label),
            storage=hist.storage.Weight(),
        )
        view = out.view(flow=False)
        view["value"] = [value[i + 1 : min(i + rebin, last + 1) + 1].sum() for i in starts]
        view["variance"] = [variance[i + 1 : min(i + rebin, last + 1) + 1].sum() for i in starts]
        return out

    def occupied_range(self, datasets: Iterable[str]) -> tuple[int, int]:
        """First and last in-range score bin holding an event of any of ``datasets`` (flow folded in)."""
        total = sum(self.score_sums(d)[0] for d in datasets)
        filled = np.flatnonzero(total > 0)
        n = len(total) - 2
        if not filled.size:
            return 0, n - 1
        return int(np.clip(filled[0] - 1, 0, n - 1)), int(np.clip(filled[-1] - 1, 0, n - 1))
