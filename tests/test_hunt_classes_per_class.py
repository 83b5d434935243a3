"""The class hunt's detectors per exclusive class (``ClassHuntConfig(detector_per="class")``): k-fold models
trained on one class's events each, which score that class's events only and fill its exclusive
memberships' rarity.

The slow test trains them on the selected simulated events of the cached production of ``test_hunt_classes``
(the SM cocktail's tables together: the tests' pseudo-data have no class with the events a model needs;
``1mu`` and ``1e`` have >= 30, and only ``1mu`` leaves each fold's model the pipeline's 10 training events), scores every dataset in the processor pass and compares each class's rarity
histogram with its own models applied to its feature rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cms_anomaly.analyses.hunt_classes import (
    DISTRIBUTIONS,
    ClassHuntConfig,
    ClassHuntError,
    class_pass,
    config_from_args,
    data_classes,
    make_samples,
)
from test_hunt_classes_inject import _config

#: the fewest training events of a class in the slow test (2 folds: >= 10 per model, the pipeline's minimum)
MIN_EVENTS = 30


@pytest.fixture(scope="module")
def class_samples(request: pytest.FixtureRequest) -> Path:
    """The small productions of ``test_hunt_classes``, in pytest's cache (shared with it)."""
    from conftest import cocktail_cache_name

    return Path(request.config.cache.mkdir(f"class-hunt-{cocktail_cache_name()}"))


def test_detector_per_is_checked():
    assert ClassHuntConfig().detector_per == "all"
    with pytest.raises(ClassHuntError, match="detector_per"):
        ClassHuntConfig(detector_per="event")
    with pytest.raises(ClassHuntError, match="class_min_events"):
        ClassHuntConfig(detector_per="class", class_min_events=0)


def test_cli_detector_per():
    from cms_anomaly.cli import build_parser

    parse = build_parser().parse_args
    args = ["hunt", "--selection", "event_classes", "--model", "baseline"]
    assert config_from_args(parse(args)).detector_per == ClassHuntConfig.detector_per
    assert config_from_args(parse([*args, "--detector-per", "class"])).detector_per == "class"


@pytest.mark.slow
def test_per_class_models_score_only_their_class(class_samples, tmp_path, caplog):
    from cms_anomaly.analyses import hunt_detectors as kfold
    from cms_anomaly.analyses.hunt_selections import KFOLD_SCORER
    from cms_anomaly.models.data import read_samples, sm_cocktail
    from cms_anomaly.models.scorers import rarity

    config = _config(model="baseline", k_folds=2, epochs=1, detector_per="class", class_min_events=MIN_EVENTS)
    simulation, data = make_samples(config, class_samples)
    fileset, lumi = {**data, **simulation}, float(data["data"]["metadata"]["lumi_pb"])
    features = tmp_path / "pass1" / "features"
    class_pass(fileset, tmp_path / "pass1", config, lumi, features=True)
    fs, _ = kfold.detector_inputs(features, config)
    roles = sorted(simulation)
    train = sm_cocktail(read_samples(features, feature_set=fs, datasets=roles))
    classes = np.concatenate([data_classes(features, r) for r in roles])
    per_class, untrained = kfold.train_class_folds(
        features, tmp_path / "models", config, fs, train, classes, min_events=MIN_EVENTS
    )
    names, counts = np.unique(classes[classes != ""], return_counts=True)
    assert sorted([*per_class, *untrained]) == sorted(names[counts >= MIN_EVENTS].tolist())
    # seed 3: 1mu (52 events) trains; 1e (36) leaves a fold's model 8 training events: unscored
    assert sorted(per_class) == ["1mu"]
    assert sorted(untrained) == ["1e"]
    caplog.clear()
    output = class_pass(
        fileset, tmp_path / "pass", config, lumi, scorers={KFOLD_SCORER: kfold.class_kfold_scorer(per_class, config)}
    )
    # the events of classes without models are unscored by design, not non-finite scores
    assert "non-finite" not in caplog.text
    for dataset, result in output.items():
        if "hists" not in result:
            continue
        st, rar = (result["hists"][DISTRIBUTIONS[d]][{"dataset": sum}] for d in ("st", "rarity"))
        filled = {c for c in rar.axes["event_class"] if rar[{"event_class": c}].values(flow=True).sum() > 0}
        assert filled <= set(per_class), dataset  # exclusive memberships of the modelled classes only
        for c in set(per_class) & set(st.axes["event_class"]):
            n_st = st[{"event_class": c}].values(flow=True).sum()
            assert rar[{"event_class": c}].values(flow=True).sum() == pytest.approx(n_st), (dataset, c)
    # each class's rarity is its own models' (model i on fold i), calibrated on their validation events
    hists = [output[r]["hists"][DISTRIBUTIONS["rarity"]][{"dataset": sum}] for r in roles]
    for c, paths in per_class.items():
        ensemble = kfold.kfold_scorer(paths, config)
        x = train.subset(classes == c)
        folds = ensemble.fold_of(x.run, x.event)
        expected = np.full(len(x), np.nan)
        for i, (model, cal) in enumerate(zip(ensemble.scorers, ensemble.calibrations, strict=True)):
            rows = folds == i
            raw = np.asarray(model.numpy_call(x.x[rows]), dtype=np.float64).reshape(int(rows.sum()), -1)
            expected[rows] = rarity(raw[:, 0], cal)
        filled = sum(h[{"event_class": c}].values() for h in hists if c in h.axes["event_class"])
        edges = hists[0].axes[-1].edges
        np.testing.assert_allclose(filled, np.histogram(expected, bins=edges, weights=x.weight)[0], rtol=1e-9)
