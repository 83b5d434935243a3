"""Negative generator weights (NLO samples): signed in histograms, |w| in training (issue 29)."""

from __future__ import annotations

import numpy as np
from cms_anomaly.models.data import Sample, read_samples, relative_weights, sm_cocktail
from cms_anomaly.models.feature_sets import get_feature_set


def _nlo_tables(model_feature_tables, tmp_path, *, negative_every=20):
    """A copy of the feature tables whose wjets weights are +-2 as in an NLO sample: every 20th event -2."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from cms_anomaly.processors.feature_io import write_table_manifest

    paths = []
    for src in sorted(model_feature_tables.glob("*/*.parquet")):
        table = pq.read_table(src)
        if src.parent.name == "wjets":
            w = table.column("weight").to_numpy().copy()
            w[::negative_every] *= -1.0
            table = table.set_column(table.schema.get_field_index("weight"), "weight", pa.array(w))
        (tmp_path / src.parent.name).mkdir(parents=True, exist_ok=True)
        pq.write_table(table, tmp_path / src.parent.name / src.name)
        paths.append(tmp_path / src.parent.name / src.name)
    write_table_manifest(tmp_path, paths)
    return tmp_path


def test_nlo_weights_train_as_their_absolute_value(model_feature_tables, tmp_path):
    """A cocktail with 5 % negative weights trains (it ended in 'Probabilities are not non-negative'): the
    +-2 weights of one dataset are all equal in |w|, so training draws without weights; the samples keep
    the signed weights, which the thresholds use."""
    from cms_anomaly.models.pipeline import TrainOptions, train_and_export

    features = _nlo_tables(model_feature_tables, tmp_path / "features")
    samples = read_samples(features, feature_set=get_feature_set("hlf21"))
    w = samples["wjets"].weight
    assert (w < 0).sum() == 150  # every 20th of two tables of 1500 events
    assert np.unique(np.abs(w)).tolist() == [2.0]
    assert sm_cocktail(samples).draw_weight is None  # |w| equal within each dataset: an unweighted draw
    trained = train_and_export(
        "ae",
        features_dir=features,
        out_dir=tmp_path / "models",
        feature_set="hlf21",
        samples=samples,
        options=TrainOptions(epochs=1, seed=3, max_steps_per_epoch=5, threads=1, progress=False),
    )
    card = trained.cards[0]
    assert card.training["weighted_draw"] is False
    assert np.isfinite(card.training["validation_loss"])


def test_training_weights_are_absolute_and_unequal_ones_draw_by_magnitude():
    """Within a dataset of unequal weights the draw probability is |w| / mean |w|: -1, 1, 2 -> 0.75, 0.75,
    1.5 (by hand); a sample of +-w draws without weights."""
    x = np.zeros((3, 1), np.float32)
    np.testing.assert_allclose(relative_weights(np.array([-1.0, 1.0, 2.0])), [0.75, 0.75, 1.5])
    nlo = {"dy": Sample("dy", x, np.array([5.0, -5.0, 5.0]), False)}
    assert sm_cocktail(nlo).draw_weight is None
    tail = {**nlo, "w": Sample("w", x, np.array([-1.0, 1.0, 2.0]), False)}
    np.testing.assert_allclose(sm_cocktail(tail).draw_weight, [1, 1, 1, 0.75, 0.75, 1.5])
    assert (sm_cocktail(tail).weight < 0).sum() == 2  # the sample's own weights stay signed


def test_bdt_trains_on_negative_weights():
    """XGBoost refuses negative weights ('Weights must be positive values'); the classes are balanced on |w|:
    background -1, 1, 1, 1 -> 1 each; signal 2, -2 -> 2 each (sum 4 = background's)."""
    from cms_anomaly.models.bdt import balance_weights, train_signal_bdt

    wb, ws = balance_weights(np.array([-1.0, 1.0, 1.0, 1.0]), np.array([2.0, -2.0]))
    np.testing.assert_allclose(wb, [1, 1, 1, 1])
    np.testing.assert_allclose(ws, [2, 2])
    rng = np.random.default_rng(1)
    x_sm, x_sig = rng.normal(0, 1, (200, 2)), rng.normal(2, 1, (100, 2))
    w_sm = np.where(np.arange(200) % 10 == 0, -1.0, 1.0)
    booster, _ = train_signal_bdt(x_sm, w_sm, x_sig, np.ones(100), seed=1)
    from cms_anomaly.models.bdt import predict

    assert predict(booster, x_sig).mean() > predict(booster, x_sm).mean() + 0.3


def test_cwola_trains_on_negative_weights():
    from cms_anomaly.models.bdt import train_cwola

    negative_every = 7
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (300, 2))
    labels = (np.arange(300) % 2).astype(int)
    w = np.where(np.arange(300) % negative_every == 0, -1.0, 1.0)
    scores, boosters = train_cwola(x, labels, k_folds=3, seed=1, weights=w)
    assert len(boosters) == 3
    assert np.all(np.isfinite(scores))
