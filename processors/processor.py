"""The thin coffea processor: objects -> features -> selection -> scores -> histograms (+ parquet).

``process()`` only wires the pure functions of :mod:`objects`, :mod:`features`,
:mod:`selections`, :mod:`histograms` and :mod:`feature_io`; nothing is stored on ``self`` while
processing and empty chunks run through the same path.

Output per dataset::

    {dataset: {"nevents": int, "events_per_file": {file: int}, "sumw_gen": float, "cutflow": {"events", "sumw", "first_failed"},
               "hists": {name: hist.Hist}, "feature_files": [paths],
               "missing_collections": {collection: chunks}, "needs_unmet": {need: chunks}}}

(``needs_unmet``: the chunks whose file lacks what a feature needs,
:data:`~cms_anomaly.processors.feature_spec.NEEDS`;
:func:`needs_met` reads it.)

(the runner adds ``"skipped_files"`` with ``skip_bad_files``). The ``event_classes`` selection adds the
class histograms ``class_st``, ``class_mass``, ``class_met``, ``class_joint`` (S_T x M x MET; exclusive
classes only) and ``class_score_<model>_<output>``, whose
growing ``event_class`` axis holds every exclusive, inclusive and jet-inclusive class
(:mod:`~cms_anomaly.processors.eventclass`), ``"class_counts"``: {class: raw events}, and for data
``"class_events"``: {class: its highest-S_T events} (:func:`~cms_anomaly.processors.eventclass.class_event_lists`). The same processor runs through
``processor.Runner`` and, on dask-awkward NanoEvents, through ``dataset_tools.apply_to_fileset``.

Before the selection's cuts come the data-quality steps of :mod:`dataquality` that apply to the
dataset: ``lumimask`` (data with a certified-luminosity JSON in its metadata ``lumimask``) and
``trigger`` (the selection's HLT paths of the dataset's era); they are cut-flow steps like the cuts.

Weights: real data (``is_data``) 1; MC ``genWeight`` (1 if absent) times
``xsec_pb * lumi_pb / sumw`` when the fileset metadata has ``xsec_pb`` and ``sumw`` and a
luminosity is given, else the bare ``genWeight``; times the scale factors of ``config.corrections``
(:mod:`~cms_anomaly.processors.corrections`, coffea's ``Weights``), whose up and down variations fill
the ``systematic`` axis of the feature histograms. ``sumw`` is the metadata's, or the sum of
``genEventSumw`` over the dataset's ``Runs`` trees (the runner fills it in). Negative generator
weights (NLO samples) stay negative in the histograms and the cut-flow's sums of weights.

Event identity: ``run``, ``luminosityBlock``, ``event``; a file without them (a reduced derivation)
identifies its events by (file, entry): run 0, luminosityBlock 0, event = the entry number in the
file (the runner says so once per file).

Era: the dataset metadata key ``era`` (``2018_UL``, ``2016preVFP_UL``, ``2012``, ...; see
:mod:`~cms_anomaly.processors.btag`), else the NanoAOD variant's default; it chooses the b-tag
working point and is the ``year`` input of the scale factors.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, cast

import awkward as ak
import numpy as np
from cms_anomaly.processors import (
    attached,
    btag,
    dataquality,
    eventclass,
    feature_io,
    histograms,
    schema,
    selections,
    storage,
)
from cms_anomaly.processors.config import AnalysisConfig, ConfigError
from cms_anomaly.processors.corrections import Corrections, systematics_of
from cms_anomaly.processors.eventlist import TopEvents
from cms_anomaly.processors.feature_spec import (
    ADC_VARIABLES,
    FEATURES,
    JET_CONTENT,
    NEEDS,
    PFCANDS,
)
from cms_anomaly.processors.features import (
    OBJECT_SLOTS,
    CutFeatures,
    array_features,
    feature_record,
)
from cms_anomaly.processors.folds import EventSplit
from cms_anomaly.processors.objects import EventObjects, build_objects
from coffea import processor

log = logging.getLogger(__name__)


class Scorer(Protocol):
    """What the processor needs from a model (see :mod:`cms_anomaly.models.scorers`).

    A scorer may also have the attributes of :class:`ScorerOptions` (``score_binning``,
    ``score2d_binning``, ``fold_of``); :func:`scorer_options` reads them, ``None`` where absent.
    """

    name: str
    feature_names: list[str]
    output_names: list[str]

    def __call__(self, features: ak.Array) -> np.ndarray: ...


@dataclasses.dataclass(frozen=True)
class ScorerOptions:
    """The optional attributes of a :class:`Scorer`.

    Attributes
    ----------
    score_binning
        ``(bins, lo, hi)`` of its score axis (:func:`~cms_anomaly.models.scorers.score_binning_for`).
    score2d_binning
        The ABCD plane of a two-output model (:func:`~cms_anomaly.models.scorers.score2d_binning_for`).
    fold_of
        ``fold_of(run, event) -> folds`` of a k-fold ensemble: it is then called ``scorer(features, folds=...)``.
    exclusive_classes
        The exclusive event classes that models per class score: with the ``event_classes`` selection it is
        also given each event's exclusive class (``event_class=``, ``""``: none), fills the class histograms
        of the exclusive memberships only, and the events of other classes (no score) are not counted as
        non-finite.
    """

    score_binning: tuple[int, float, float] | None = None
    score2d_binning: tuple[int, float, float, str] | None = None
    fold_of: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    exclusive_classes: tuple[str, ...] | None = None


def scorer_options(scorer: Scorer) -> ScorerOptions:
    """The :class:`ScorerOptions` of ``scorer`` (``None`` for each attribute it does not have)."""
    return ScorerOptions(
        **{f.name: getattr(scorer, f.name, None) for f in dataclasses.fields(ScorerOptions)},
    )


def chunk_needs(objects: EventObjects) -> tuple[str, ...]:
    """The feature needs (:data:`~cms_anomaly.processors.feature_spec.NEEDS`) the chunk's file met."""
    have = {PFCANDS: objects.has_pfcands, JET_CONTENT: objects.has_jet_content}
    return tuple(need for need in NEEDS if have[need])


def needs_met(output: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    """``{dataset: needs met by every chunk}`` of a processor output (``needs_unmet``)."""
    return {d: frozenset(NEEDS) - set(r.get("needs_unmet", {})) for d, r in output.items() if "hists" in r}


def event_weights(genweight: np.ndarray, metadata: Mapping[str, Any], *, lumi_pb: float | None) -> np.ndarray:
    """Per-event weights from the generator weight and the fileset metadata (see module docstring)."""
    if metadata.get("is_data", False):
        return np.ones(len(genweight))
    xsec, sumw = metadata.get("xsec_pb"), metadata.get("sumw")
    if lumi_pb is not None and xsec is not None and sumw:
        return genweight * (float(xsec) * float(lumi_pb) / float(sumw))
    return np.asarray(genweight, dtype=np.float64)


def event_ids(events: Any, mask: np.ndarray, *, entrystart: int = 0) -> dict[str, np.ndarray]:
    """``run``, ``luminosityBlock``, ``event`` of the selected events (``mask``) of a chunk that starts at
    entry ``entrystart`` of its file. A file without the ``event`` branch: (file, entry) identity, with
    ``event`` the entry number in the file; ``run`` and ``luminosityBlock`` 0 where absent."""
    fields = set(events.fields)
    n = len(mask)
    out = {}
    for f in ("run", "luminosityBlock", "event"):
        if f in fields:
            out[f] = np.asarray(ak.to_numpy(events[f]))[mask]
        elif f == "event":
            out[f] = np.arange(entrystart, entrystart + n, dtype=np.int64)[mask]
        else:
            out[f] = np.zeros(int(np.count_nonzero(mask)), np.int64)
    return out


@functools.lru_cache(maxsize=8)
def _label_table(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(sorted event numbers, their process) of a pseudo-data ``labels.parquet`` (read once per worker)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["event", "process"])
    events = np.asarray(table["event"].to_numpy(), dtype=np.uint64)
    order = np.argsort(events, kind="stable")
    return events[order], np.asarray(table["process"].to_numpy(zero_copy_only=False), dtype=object)[order]


def event_processes(metadata: Mapping[str, Any], event_numbers: np.ndarray) -> np.ndarray:
    """The true process of each event, for the ``process`` axis of the score histograms.

    Pseudo-data (metadata ``labels``: the mixture's ``event -> process`` table, which no
    training reads) get each event's hidden process, ``unknown`` where the table lacks it; real
    data ``data``; simulation its metadata ``process`` (else the dataset name).
    """
    n = len(event_numbers)
    if metadata.get("labels"):
        events, processes = _label_table(str(metadata["labels"]))
        if not len(events):
            return np.full(n, "unknown")
        ev = np.asarray(event_numbers, dtype=np.uint64)
        idx = np.minimum(np.searchsorted(events, ev), len(events) - 1)
        return np.where(events[idx] == ev, processes[idx], "unknown").astype(str)
    if metadata.get("is_data", False):
        return np.full(n, "data")
    return np.full(n, str(metadata.get("process", metadata.get("dataset", "unknown"))))


def _constant_cut(mask: np.ndarray) -> selections.CutFunction:
    """A cut whose mask was computed before the cuts (a data-quality step of the chunk)."""
    return lambda _o, _f, _c: mask


def _is_dask_collection(events: Any) -> bool:
    """True for dask-awkward NanoEvents (``apply_to_fileset``), false for eager/virtual arrays."""
    return type(events).__module__.startswith("dask_awkward")


def _scores_2d(scores: np.ndarray, n: int, name: str, k: int) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64).reshape(n, -1) if n else np.zeros((0, k))
    if scores.shape[1] != k:
        raise ValueError(f"scorer {name!r} returned {scores.shape[1]} outputs per event, its output_names has {k}")
    return scores


def _top_events(
    n: int,
    score: np.ndarray,
    *,
    ids: Mapping[str, np.ndarray],
    folds: np.ndarray | None,
    process: np.ndarray,
    weights: np.ndarray,
    selected: ak.Array,
) -> TopEvents:
    """The chunk's ``n`` highest-scoring events: identity, score, fold, process, weight, scalar
    features and the ADC object array (MET, 4 e, 4 mu, 10 jets x pT, eta, phi), one column each."""
    keep = np.argsort(-np.where(np.isnan(score), -np.inf, score), kind="stable")[:n]
    cols: dict[str, np.ndarray] = {
        "run": np.asarray(ids["run"])[keep].astype(np.int64),
        "luminosityBlock": np.asarray(ids["luminosityBlock"])[keep].astype(np.int64),
        "event": np.asarray(ids["event"])[keep].astype(np.int64),
        "score": score[keep],
        "fold": (np.asarray(folds)[keep] if folds is not None else np.full(len(keep), -1)).astype(np.int64),
        "process": np.asarray(process)[keep].astype(str),
        "weight": weights[keep],
    }
    sub = selected[keep]
    for f in FEATURES:
        cols[f] = np.asarray(ak.to_numpy(sub[f]), dtype=np.float64)
    objects = np.asarray(ak.to_numpy(sub["objects"]), dtype=np.float64).reshape(len(keep), -1, len(ADC_VARIABLES))
    for i, label in enumerate(OBJECT_SLOTS):
        for j, var in enumerate(ADC_VARIABLES):
            cols[f"{label}_{var}"] = objects[:, i, j]
    return TopEvents(n, cols)


def _fill_features(
    hists: dict[str, Any],
    selected: ak.Array,
    *,
    dataset: str,
    weights: np.ndarray,
    variations: Mapping[str, np.ndarray],
    mask: np.ndarray,
) -> None:
    """Fill each histogrammed feature's nominal and (scale-factor) variation histograms of the selected events."""
    for name in FEATURES:
        column = ak.to_numpy(selected[name])
        hists[name].fill(dataset=dataset, systematic=histograms.NOMINAL, **{name: column}, weight=weights)
        for syst, w in variations.items():
            hists[name].fill(dataset=dataset, systematic=syst, **{name: column}, weight=w[mask])


def _finite_scores(
    scores: np.ndarray, *, name: str, meta: Mapping[str, Any], scored: np.ndarray | None = None
) -> np.ndarray:
    """Events whose every score of scorer ``name`` is finite; a warning line counts the others among the
    events it ``scored`` (default: all)."""
    # a NaN score would land in the overflow bin, i.e. count as the most anomalous event: left out
    ok = np.isfinite(scores).all(axis=1)
    checked = ok if scored is None else ok[np.asarray(scored, dtype=bool)]
    if not checked.all():
        log.warning(
            "%s (dataset %s): %d of %d selected events have a non-finite %s score; left out of its "
            "histograms (and last in its event list)",
            meta.get("filename", "?"),
            meta["dataset"],
            int((~checked).sum()),
            len(checked),
            name,
        )
    return np.asarray(ok)


class AnomalyProcessor(processor.ProcessorABC):
    """Selection, features, model scores and histograms for every dataset of a fileset.

    Parameters
    ----------
    selection
        Name of a selection in :data:`~cms_anomaly.processors.selections.SELECTIONS`.
    config
        Analysis configuration (``sqrt_s`` is taken from the dataset metadata when present).
    scorers
        Optional ``{name: Scorer}``; each adds a score histogram (and a 2-D one for two outputs).
    features_dir
        If given, write the selected events' feature table per chunk under this directory or fsspec URL
        (:mod:`~cms_anomaly.processors.storage`).
    tables_in_output
        With ``features_dir``: return each chunk's table (parquet bytes) in the output's ``feature_tables``
        instead of writing it, for workers that cannot reach ``features_dir``; :func:`~cms_anomaly.
        processors.runner.run_processor` sets it when its probe finds such workers and writes them.
    lumi_pb
        Integrated luminosity (pb^-1) to normalise MC to.
    allow_missing
        Collections (e.g. ``("Photon",)``) that a skimmed file may lack: treated as empty and
        counted per dataset in the output's ``missing_collections`` ({collection: chunks}).
    score_features
        Features histogrammed against every score, ``score_<model>_<output>_vs_<feature>``
        (dataset, split, process, score, feature); N_J x N_b always (``..._vs_counts``).
    split
        The training / validation split of the models' training (:class:`EventSplit`): fills the
        ``split`` axis, so that a model's own training events are not counted as its evaluation
        sample (``all`` without a split). A mapping ``{scorer name: EventSplit}`` gives each model its
        own split (models trained with different seeds); scorers it does not name get ``all``.
    top_events
        If > 0, keep per dataset and scorer the ``top_events`` highest-scoring selected events (first
        output) with their identity, fold, true process, weight, scalar features and the ADC object
        array (:class:`~cms_anomaly.processors.eventlist.TopEvents`, output key ``top_events``).

    Notes
    -----
    A scorer with a ``fold_of(run, event)`` method (a k-fold ensemble) is called with the events'
    folds, ``scorer(features, folds=...)``; one with a ``score_binning`` attribute gets that score axis.
    """

    def __init__(
        self,
        *,
        selection: str = "single_lepton",
        config: AnalysisConfig | None = None,
        scorers: Mapping[str, Scorer] | None = None,
        features_dir: str | Path | None = None,
        tables_in_output: bool = False,
        lumi_pb: float | None = None,
        allow_missing: tuple[str, ...] = (),
        score_features: tuple[str, ...] = histograms.SCORE_VS_FEATURES,
        split: EventSplit | Mapping[str, EventSplit] | None = None,
        top_events: int = 0,
    ) -> None:
        self.selection = selections.get_selection(selection)
        #: the ``event_classes`` selection fills the class histograms and counts (:mod:`eventclass`)
        self.event_classes = self.selection.name == eventclass.SELECTION
        self.allow_missing = tuple(allow_missing)
        self.config = config or AnalysisConfig()
        # the scale factors' file and names are checked here, on the client, before any chunk is read
        self.corrections = Corrections(self.config.corrections) if self.config.corrections.active else None
        if self.corrections is not None and self.corrections.needs_jet_flavour and self.config.objects.recluster_jets:
            raise ConfigError(
                "[corrections] btag_sf needs the NanoAOD jets' flavour and discriminator: not with recluster_jets"
            )
        self.scorers = dict(scorers or {})
        self.features_dir = None if features_dir is None else str(features_dir)
        self.tables_in_output = bool(tables_in_output)
        #: the client's files the workers read (certification and correctionlib JSONs), path -> bytes:
        #: set by :func:`~cms_anomaly.processors.runner.run_processor` before the run (:mod:`attached`)
        self.carried_files: dict[str, bytes] = {}
        self.lumi_pb = lumi_pb
        unknown = [f for f in score_features if f not in FEATURES]
        if unknown:
            raise ValueError(f"score_features {unknown} are not scalar features (see processors/feature_spec.py)")
        self.score_features = tuple(score_features)
        self.split = dict(split) if isinstance(split, Mapping) else split
        if top_events < 0:
            raise ValueError(f"top_events must be >= 0, got {top_events}")
        self.top_events = int(top_events)

    @property
    def _keep_rmm(self) -> bool:
        """Whether a chunk's (N, 51, 51) RMMs are kept: for a scorer that reads them and for the feature tables."""
        return self.features_dir is not None or any("rmm" in scorer.feature_names for scorer in self.scorers.values())

    def _new_hists(self, dataset: str, cut_names: tuple[str, ...]) -> dict[str, Any]:
        hists: dict[str, Any] = {
            name: histograms.feature_hist(FEATURES[name], dataset=dataset, systematics=systematics_of(self.corrections))
            for name in FEATURES
        }
        hists["rmm_occupancy"] = histograms.rmm_occupancy_hist(dataset=dataset)
        hists["cutflow"] = histograms.cutflow_hist(cut_names, dataset=dataset)
        for name, scorer in self.scorers.items():
            options = scorer_options(scorer)
            binning = options.score_binning
            for out in scorer.output_names:
                hists[f"score_{name}_{out}"] = histograms.score_hist(name, out, dataset=dataset, binning=binning)
            if len(scorer.output_names) == 2:
                hists[f"score2d_{name}"] = histograms.score2d_hist(
                    name, scorer.output_names, dataset=dataset, binning=options.score2d_binning
                )
            for out in scorer.output_names:
                for feat in self.score_features:
                    hists[f"score_{name}_{out}_vs_{feat}"] = histograms.score_feature_hist(
                        name, out, feat, dataset=dataset, binning=binning
                    )
                hists[f"score_{name}_{out}_vs_counts"] = histograms.score_counts_hist(
                    name, out, dataset=dataset, binning=binning
                )
        if self.event_classes:
            outputs = {n: (s.output_names, scorer_options(s).score_binning) for n, s in self.scorers.items()}
            hists.update(eventclass.new_class_hists(dataset, outputs))
        return hists

    def _split_labels(self, ids: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        """Each scorer's ``split`` labels of the selected events (``all`` without a split)."""
        if self.split is None or isinstance(self.split, EventSplit):
            labels = self.split.labels(ids["run"], ids["event"]) if self.split is not None else np.full(n, "all")
            return dict.fromkeys(self.scorers, labels)
        return {
            name: self.split[name].labels(ids["run"], ids["event"]) if name in self.split else np.full(n, "all")
            for name in self.scorers
        }

    def process(self, events: Any) -> Any:
        """The output of one chunk (see the module docstring).

        ``events`` are eager NanoEvents (``processor.Runner``, virtual arrays) or dask-awkward
        NanoEvents (``coffea.dataset_tools.apply_to_fileset``): then a dask collection of the same
        output is returned, to be computed with ``dask.compute``.
        """
        if _is_dask_collection(events):
            return self._process_dask(events)
        return self.process_chunk(events, dict(events.metadata))

    def process_chunk(self, events: Any, meta: Mapping[str, Any]) -> dict[str, Any]:
        """The output of one eager chunk of events (any record array with the NanoAOD layout)."""
        attached.carry(self.carried_files)
        dataset = meta["dataset"]
        config = self.config.with_sqrt_s(meta["sqrt_s"]) if "sqrt_s" in meta else self.config
        objects = build_objects(
            events,
            config=config.objects,
            era=meta.get("era"),
            jet_flavour=self.corrections is not None and self.corrections.needs_jet_flavour,
            source=meta.get("filename", ""),
            allow_missing=self.allow_missing,
        )
        weights, variations = self._weights(objects, meta)

        selection = self._chunk_selection(events, meta, objects.variant)
        cut_features = CutFeatures(objects, config=config)
        packed = selections.evaluate(selection, objects, cut_features, config=config.selections)
        mask = selections.passing(packed, selection, len(objects))
        flow = selections.cutflow(packed, selection, weights=weights)
        # the features, the RMM and the object arrays are computed for the selected events only; the
        # (N, 51, 51) matrices are kept only for a consumer that reads them (an RMM model, the feature
        # tables): their leading masses and occupancy come from the same pass either way (without the
        # 520 MB of a 50k chunk otherwise)
        sel_w = weights[mask]
        sel_objects = objects.subset(mask)
        arrays = array_features(sel_objects, config=config, weights=sel_w, keep_rmm=self._keep_rmm)
        selected = feature_record(cut_features.of_selected(mask, sel_objects), arrays)

        hists = self._new_hists(dataset, selection.cut_names)
        _fill_features(hists, selected, dataset=dataset, weights=sel_w, variations=variations, mask=mask)
        histograms.add_rmm_occupancy(
            hists["rmm_occupancy"], arrays["rmm_occupancy_sumw"], arrays["rmm_occupancy_sumw2"], dataset=dataset
        )
        names = selection.cut_names
        cum = {"all": np.ones(len(objects), bool)} | {
            c: np.asarray(packed.all(*names[: k + 1]), bool) for k, c in enumerate(names)
        }
        histograms.fill_cutflow(hists["cutflow"], cum, dataset=dataset, weights=weights)
        ids = (
            event_ids(events, mask, entrystart=int(meta.get("entrystart", 0)))
            if self.scorers or self.features_dir is not None or self.event_classes
            else {}
        )
        classes = eventclass.memberships(sel_objects, config.selections) if self.event_classes else None
        if classes is not None:
            eventclass.fill_class_hists(hists, classes, dataset=dataset, weights=sel_w)
        event_scores: dict[str, np.ndarray] = {}  # per selected event, ``<scorer>_<output>`` (NaN: not finite)
        top = self._fill_scores(
            hists, selected, ids=ids, meta=meta, weights=sel_w, classes=classes, event_scores=event_scores
        )

        met = chunk_needs(objects)
        files, tables = self._feature_tables(
            selected, weights=sel_w, ids=ids, meta=meta, n_events=len(events), needs_met=met
        )
        result = {
            "nevents": len(objects),
            "events_per_file": {str(meta.get("filename", "?")): len(objects)},
            "sumw_gen": float(objects.genweight.sum()),
            "cutflow": flow,
            "hists": hists,
            "feature_files": files,
            "missing_collections": dict.fromkeys(objects.missing_collections, 1),
            "needs_unmet": {need: 1 for need in NEEDS if need not in met},
        }
        if tables:
            result["feature_tables"] = tables
        if classes is not None:
            result["class_counts"] = classes.counts()
            if meta.get("is_data", False):
                result["class_events"] = eventclass.class_event_lists(
                    classes, ids, event_processes(meta, ids["event"]), scores=event_scores
                )
        if self.top_events and self.scorers:
            result["top_events"] = top
        return {dataset: result}

    def _weights(self, objects: EventObjects, meta: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The chunk's nominal event weights and the scale factors' variations (none without corrections)."""
        weights = event_weights(objects.genweight, meta, lumi_pb=self.lumi_pb)
        if self.corrections is None:
            return weights, {}
        era = meta.get("era") or btag.VARIANT_ERAS.get(objects.variant, "")
        variations = self.corrections.event_weights(
            weights,
            objects.flat["muons"],
            objects.flat["jets"],
            era=era,
            is_data=bool(meta.get("is_data", False)),
            source=str(meta.get("filename", meta["dataset"])),
        )
        return variations.pop(histograms.NOMINAL), variations

    def _fill_scores(
        self,
        hists: dict[str, Any],
        selected: ak.Array,
        *,
        ids: Mapping[str, np.ndarray],
        meta: Mapping[str, Any],
        weights: np.ndarray,
        classes: eventclass.EventClasses | None = None,
        event_scores: dict[str, np.ndarray] | None = None,
    ) -> dict[str, TopEvents]:
        """Score every scorer on the selected events, fill its histograms (and per event class, with
        ``classes``); its top events (``top_events``); each output's scores into ``event_scores``."""
        if not self.scorers:
            return {}
        dataset = meta["dataset"]
        process = event_processes(meta, ids["event"])
        splits = self._split_labels(ids, len(selected))
        values = {f: ak.to_numpy(selected[f]) for f in {*self.score_features, "n_jets", "n_bjets"}}
        top: dict[str, TopEvents] = {}
        for name, scorer in self.scorers.items():
            options = scorer_options(scorer)
            folds = options.fold_of(ids["run"], ids["event"]) if options.fold_of is not None else None
            by_class = options.exclusive_classes is not None and classes is not None
            extra: dict[str, Any] = {"folds": folds} if folds is not None else {}
            scored = None
            if options.exclusive_classes is not None and classes is not None:
                extra["event_class"] = classes.exclusive
                scored = np.isin(classes.exclusive, list(options.exclusive_classes))
            raw = cast(Any, scorer)(selected, **extra) if extra else scorer(selected)
            scores = _scores_2d(raw, len(selected), name, len(scorer.output_names))
            ok = _finite_scores(scores, name=name, meta=meta, scored=scored)
            if event_scores is not None:
                for k, out in enumerate(scorer.output_names):
                    event_scores[f"{name}_{out}"] = np.where(ok, scores[:, k], np.nan)
            if self.top_events:
                top[name] = _top_events(
                    self.top_events,
                    np.where(ok, scores[:, 0], np.nan),
                    ids=ids,
                    folds=folds,
                    process=process,
                    weights=weights,
                    selected=selected,
                )
            self._fill_scorer(
                hists,
                name,
                scorer.output_names,
                scores[ok],
                weights=weights[ok],
                split=splits[name][ok],
                process=process[ok],
                values={f: x[ok] for f, x in values.items()},
                dataset=dataset,
            )
            if classes is not None:
                eventclass.fill_class_scores(
                    hists,
                    classes,
                    name,
                    scorer.output_names,
                    scores,
                    ok=ok,
                    dataset=dataset,
                    weights=weights,
                    kinds=("exclusive",) if by_class else None,
                )
        return top

    def _fill_scorer(
        self,
        hists: dict[str, Any],
        name: str,
        outs: list[str],
        s: np.ndarray,
        *,
        weights: np.ndarray,
        split: np.ndarray,
        process: np.ndarray,
        values: Mapping[str, np.ndarray],
        dataset: str,
    ) -> None:
        """Fill one scorer's score, score-vs-feature, score-vs-counts and (two outputs) 2-D histograms."""
        w, sp, pr, v = weights, split, process, values
        for k, out in enumerate(outs):
            hists[f"score_{name}_{out}"].fill(dataset=dataset, **{out: s[:, k]}, weight=w)
            for feat in self.score_features:
                hists[f"score_{name}_{out}_vs_{feat}"].fill(
                    dataset=dataset, split=sp, process=pr, score=s[:, k], **{feat: v[feat]}, weight=w
                )
            hists[f"score_{name}_{out}_vs_counts"].fill(
                dataset=dataset,
                split=sp,
                process=pr,
                score=s[:, k],
                n_jets=v["n_jets"],
                n_bjets=v["n_bjets"],
                weight=w,
            )
        if len(outs) == 2:
            hists[f"score2d_{name}"].fill(dataset=dataset, split=sp, **{outs[0]: s[:, 0], outs[1]: s[:, 1]}, weight=w)

    def _chunk_selection(self, events: Any, meta: Mapping[str, Any], variant: str) -> selections.Selection:
        """The selection with the dataset's data-quality steps (:mod:`dataquality`: certified luminosity,
        trigger) before its cuts; the masks of this chunk are computed here, once."""
        available = schema.flat_branch_names(events)
        pre = dataquality.steps(events, meta=meta, selection=self.selection.name, variant=variant, available=available)
        selection = self.selection
        if self.event_classes:  # the class trigger: per kind, its paths and its offline threshold
            fired = dataquality.class_trigger_fired(events, meta=meta, variant=variant, available=available)
            selection = selections.with_class_triggers(selection, fired)
        if not pre:
            return selection
        cuts = tuple(selections.Cut(name, text, _constant_cut(mask)) for name, text, mask in pre)
        return dataclasses.replace(selection, cuts=cuts + selection.cuts)

    def _feature_tables(
        self,
        selected: ak.Array,
        *,
        weights: np.ndarray,
        ids: Mapping[str, np.ndarray],
        meta: Mapping[str, Any],
        n_events: int,
        needs_met: tuple[str, ...],
    ) -> tuple[list[str], dict[str, bytes]]:
        """The chunk's feature table: written under ``features_dir``, or returned as parquet bytes by its path
        relative to it (``tables_in_output``); (table paths, returned tables). Nothing without ``features_dir``."""
        if self.features_dir is None:
            return [], {}
        # the input file's name first: tables are read in name order (models, analyses), which must not
        # depend on the TFile UUID a regenerated file gets; the UUID's first 8 digits keep two inputs of
        # one name in different directories apart
        stem = Path(meta["filename"]).stem if meta.get("filename") else ""
        uuid = str(meta.get("fileuuid") or "")[:8]
        file_id = "-".join(part for part in (stem, uuid) if part) or "unknown"
        path = feature_io.table_path(
            self.features_dir,
            dataset=meta["dataset"],
            file_id=file_id,
            entrystart=int(meta.get("entrystart", 0)),
            entrystop=int(meta.get("entrystop", n_events)),
        )
        table = feature_io.feature_table(
            selected,
            weights=weights,
            run=ids["run"],
            lumi=ids["luminosityBlock"],
            event=ids["event"],
            dataset=meta["dataset"],
            is_signal=bool(meta.get("is_signal", False)),
            needs_met=needs_met,
        )
        if self.tables_in_output:  # workers that cannot reach features_dir: the client writes them
            return [str(path)], {storage.relative(path, self.features_dir): feature_io.table_bytes(table)}
        feature_io.write_table(table, path)
        return [str(path)], {}

    def _process_dask(self, events: Any) -> Any:
        """dask-awkward NanoEvents -> a ``dask.delayed`` output equal to the Runner's.

        The events are projected onto the branches the features read (the schema map), so only
        those columns are read; each partition then runs :meth:`process_chunk` (numba kernels and
        the ``coffea.ml_tools`` scorers work on eager arrays) and the partition outputs are added
        up in a tree, like the Runner's accumulation. Feature tables are a Runner feature (they
        need the chunk's entry range for their file name); so is the (file, entry) identity of a file
        without event IDs: here a partition does not know its entry range, and such events are numbered
        from 0 within each partition.
        """
        import dask
        import dask_awkward as dak
        from coffea.processor import accumulate

        if self.features_dir is not None:
            raise ValueError(
                "feature tables are written by the processor.Runner path; run apply_to_fileset without features_dir"
            )
        meta = dict(events.metadata)
        available = schema.flat_branch_names(events)
        variant = schema.detect_variant(available, source=str(meta.get("dataset", "")))
        objects = self.config.objects
        tagging = btag.choose(
            variant.name,
            era=meta.get("era"),
            level=objects.btag_level,
            algorithm=objects.btag_algorithm,
            source=str(meta.get("dataset", "")),
        )
        variant = btag.with_algorithm(variant, tagging)  # the era's b-tag branch is among those read
        columns = {}
        flavour = self.corrections is not None and self.corrections.needs_jet_flavour
        requested = ("jet.hadronFlavour",) if flavour else ()
        for coll, fields in schema.fields_used(variant, available, requested=requested).items():
            columns[coll] = events[coll] if not fields else dak.zip({f: events[coll][f] for f in fields})
        hlt = sorted(p for p in dataquality.hlt_paths(self.selection.name) if f"HLT_{p}" in available)
        if hlt:
            columns["HLT"] = dak.zip({p: events["HLT"][p] for p in hlt})
        projected = dak.zip(columns, depth_limit=1)
        parts = [dask.delayed(self.process_chunk)(part, meta) for part in projected.to_delayed()]
        while len(parts) > 1:  # pairwise tree reduction
            parts = [dask.delayed(accumulate)(parts[i : i + 2]) for i in range(0, len(parts), 2)]
        return parts[0]

    def postprocess(self, accumulator: Any) -> Any:
        return accumulator
