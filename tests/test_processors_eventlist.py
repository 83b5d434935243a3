"""The k-fold assignment and the top-events accumulator of the processor."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest
from cms_anomaly.processors.eventlist import TopEvents
from cms_anomaly.processors.folds import EventSplit, KFold
from coffea.processor import accumulate


def _chunk(rng, n, start):
    return {
        "run": np.ones(n, np.int64),
        "event": np.arange(start, start + n, dtype=np.int64),
        "score": rng.exponential(size=n).round(2),
        "ht": rng.uniform(0, 1000, n),
    }


def test_top_events_is_the_top_of_the_union_in_any_order():
    rng = np.random.default_rng(3)
    chunks = [_chunk(rng, n, s) for n, s in ((50, 0), (7, 1000), (0, 2000), (80, 3000))]
    union = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    # by hand: highest score first, ties (rounded scores) by the lower event number
    order = sorted(range(len(union["score"])), key=lambda i: (-union["score"][i], union["event"][i]))[:10]
    for perm in itertools.permutations(range(4)):
        total = accumulate([TopEvents(10, chunks[i]) for i in perm])
        assert total.columns["event"].tolist() == union["event"][order].tolist()
        np.testing.assert_array_equal(total.columns["ht"], union["ht"][order])
    assert len(total) == 10


def test_top_events_nan_scores_rank_last_and_it_pickles():
    cols = {"run": np.ones(4, np.int64), "event": np.arange(4), "score": np.array([np.nan, 1.0, 3.0, 2.0])}
    t = TopEvents(3, cols)
    assert t.columns["event"].tolist() == [2, 3, 1]
    assert pickle.loads(pickle.dumps(t)).columns["event"].tolist() == [2, 3, 1]
    with pytest.raises(ValueError, match="different lengths"):
        TopEvents(3, {"score": np.ones(2), "event": np.ones(3)})
    with pytest.raises(ValueError, match="columns"):
        t + TopEvents(3, {"score": np.ones(1), "x": np.ones(1)})


def test_kfold_is_uniform_deterministic_and_independent_of_the_event_split():
    run = np.ones(30000, np.int64)
    event = np.arange(1, 30001)
    folds = KFold(3, seed=1).fold(run, event)
    counts = np.bincount(folds, minlength=3)
    assert counts.sum() == 30000
    assert np.all(np.abs(counts - 10000) < 4 * np.sqrt(10000 * 2 / 9))
    np.testing.assert_array_equal(folds, KFold(3, seed=1).fold(run, event))
    assert np.mean(folds != KFold(3, seed=2).fold(run, event)) > 0.5
    # the early-stopping split inside each fold's training set must not be empty: with the same seed
    # and no salt, fold 0 would be exactly the events with u < 1/3, and so hold the whole validation half
    val = EventSplit(0.5, seed=1).is_validation(run, event)
    for i in range(3):
        assert 0.4 < val[folds != i].mean() < 0.6
    with pytest.raises(ValueError, match="k must be >= 2"):
        KFold(1)
