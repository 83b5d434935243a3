"""EventSplit: the training / validation split by event identity, the same in training and in the processor."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
from cms_anomaly.processors import runner
from cms_anomaly.processors.feature_io import read_feature_tables
from cms_anomaly.processors.folds import EventSplit, _splitmix64, event_uniform
from cms_anomaly.processors.processor import AnomalyProcessor


def test_splitmix64_reference_values():
    """The first outputs of the splitmix64 generator from state 0 (Vigna's reference C code): the
    state advances by the golden gamma and each output is the finaliser of the new state."""
    gamma = np.uint64(0x9E3779B97F4A7C15)
    states = np.array([0, 1, 2], dtype=np.uint64) * gamma  # the finaliser adds one gamma itself
    with np.errstate(over="ignore"):
        out = _splitmix64(states)
    assert [hex(int(v)) for v in out] == ["0xe220a8397b1dcdaf", "0x6e789e6aa1b965f4", "0x6c45d188009454f"]


def test_event_uniform_is_uniform_deterministic_and_seeded():
    event = np.arange(1, 200_001, dtype=np.uint64)
    run = np.ones_like(event)
    u = event_uniform(run, event, seed=1)
    assert np.all((u >= 0) & (u < 1))
    assert np.array_equal(u, event_uniform(run, event, seed=1))
    # uniform: the fraction below 0.3 and the mean within 5 sigma of a uniform variable's
    assert abs(np.mean(u < 0.3) - 0.3) < 5 * np.sqrt(0.3 * 0.7 / u.size)
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / u.size)
    # consecutive event numbers are not split in a pattern (parity, blocks): no serial correlation
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.01
    # another seed or another run: an independent split
    for other in (event_uniform(run, event, seed=2), event_uniform(run + 1, event, seed=1)):
        assert abs(np.corrcoef(u, other)[0, 1]) < 0.01
        assert 0.45 < np.mean((u < 0.5) == (other < 0.5)) < 0.55


def test_event_split_labels_and_bounds():
    split = EventSplit(0.25, seed=3)
    run, event = np.ones(10, np.uint64), np.arange(10, dtype=np.uint64)
    labels = split.labels(run, event)
    assert set(labels) <= {"training", "validation"}
    assert np.array_equal(labels == "validation", event_uniform(run, event, seed=3) < 0.25)
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="fraction"):
            EventSplit(bad)


def test_validation_mask_follows_the_event_identity():
    from cms_anomaly.models.data import Sample, validation_mask

    n = 5000
    event = np.arange(10, 10 + n, dtype=np.uint64)
    with_ids = Sample("a", np.zeros((n, 2), np.float32), np.ones(n), False, np.ones(n, np.uint64), event)
    mask = validation_mask(with_ids, val_fraction=0.5, seed=7)
    assert np.array_equal(mask, EventSplit(0.5, 7).is_validation(np.ones(n), event))
    # the same events in another order (another file order): each keeps its role
    perm = np.random.default_rng(0).permutation(n)
    assert np.array_equal(validation_mask(with_ids.subset(perm), val_fraction=0.5, seed=7), mask[perm])
    without = Sample("a", np.zeros((n, 2), np.float32), np.ones(n), False)
    m = validation_mask(without, val_fraction=0.5, seed=7)
    assert m.sum() == n // 2


class _Sum:
    """A scorer of the processor protocol: H_T + 1 (positive, so it lands on the log score axis)."""

    name = "sum"
    feature_names: ClassVar[list[str]] = ["ht"]
    output_names: ClassVar[list[str]] = ["score"]

    def __call__(self, features):
        return np.asarray(features["ht"], dtype=np.float64) + 1.0


def test_processor_split_axis_matches_the_training_split(generated_cocktail, tmp_path):
    """The events the processor files under 'validation' are exactly those the training split
    (validation_mask on the written feature tables) calls validation."""
    from cms_anomaly.models.data import read_samples, validation_mask
    from cms_anomaly.models.feature_sets import get_feature_set

    fileset = runner.load_fileset(generated_cocktail / "fileset.json")
    fileset = {"wjets": fileset["wjets"]}
    split = EventSplit(0.5, seed=11)
    proc = AnomalyProcessor(
        selection="single_lepton", scorers={"sum": _Sum()}, split=split, features_dir=tmp_path / "features"
    )
    with runner.make_executor("iterative") as ex:
        out = runner.run_processor(fileset, proc, executor=ex, chunksize=100)
    h = out["wjets"]["hists"]["score_sum_score_vs_counts"]
    counts = {s: h[{"dataset": "wjets", "split": s}].sum(flow=True).value for s in h.axes["split"]}
    sample = read_samples(tmp_path / "features", feature_set=get_feature_set("hlf21"))["wjets"]
    expected = validation_mask(sample, val_fraction=0.5, seed=11)
    weights = read_feature_tables(tmp_path / "features" / "wjets", columns=["weight"], as_numpy=True)["weight"]
    assert len(expected) > 20
    assert counts["validation"] == pytest.approx(float(weights[expected].sum()))
    assert counts["training"] == pytest.approx(float(weights[~expected].sum()))
