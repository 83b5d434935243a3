"""The detector's rarity per event class: one k-fold detector trained on the data of every class, with the
class-object counts among its inputs, scanned in upper tails beside S_T, M and MET.

The slow test runs the class hunt with the detector on the cached production of ``test_hunt_classes``
with the leptoquark of ``test_hunt_classes_inject`` hidden at 10 %: 38 data events are in a class, so
each of the 2 folds' models trains on 10 of them (the pipeline's minimum) for 3 epochs. That checks the
machinery (pass 1, training, scoring pass, scan, report), not the detector's sensitivity.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cms_anomaly.analyses.hunt_classes import DISTRIBUTIONS, ClassHuntConfig, ClassHuntError, run_class_hunt
from test_hunt_classes import random_memberships
from test_hunt_classes_inject import CARDS, _config, _counts


@pytest.fixture(scope="module")
def class_samples(request: pytest.FixtureRequest) -> Path:
    """The small productions of ``test_hunt_classes``, in pytest's cache (shared with it)."""
    from conftest import cocktail_cache_name

    return Path(request.config.cache.mkdir(f"class-hunt-{cocktail_cache_name()}"))


def test_rarity_histogram_is_filled_for_every_membership_with_finite_scores():
    """Each membership of an event with a finite score is one entry of its class's rarity histogram, at
    the event's weight and score; an event with a NaN score fills nothing; the class event lists carry
    the event's score."""
    from cms_anomaly.models.scorers import RARITY_BINNING
    from cms_anomaly.processors.eventclass import class_event_lists, fill_class_scores, new_class_hists

    rng = np.random.default_rng(7)
    n_events = 60
    classes = random_memberships(rng, n_events, 240, ["1e", "2mu", "1e+X", "1gamma_1jet+NJets"])
    scores = rng.uniform(0.0, 3.0, (n_events, 1))
    scores[::7] = np.nan
    ok = np.isfinite(scores[:, 0])
    weights = rng.uniform(0.5, 2.0, n_events)
    hists = new_class_hists("d", {"kfold": (["rarity"], RARITY_BINNING)})
    fill_class_scores(hists, classes, "kfold", ["rarity"], scores, ok=ok, dataset="d", weights=weights)
    h = hists["class_score_kfold_rarity"][{"dataset": "d"}]
    assert set(h.axes["event_class"]) == set(classes.name)
    for c in h.axes["event_class"]:
        rows = np.flatnonzero((classes.name == c) & ok[classes.event])
        filled = h[{"event_class": c}]
        assert filled.values(flow=True).sum() == pytest.approx(weights[classes.event[rows]].sum())
        expected, _ = np.histogram(
            scores[classes.event[rows], 0], bins=filled.axes[0].edges, weights=weights[classes.event[rows]]
        )
        np.testing.assert_allclose(filled.values(), expected)
    ids = {"run": np.ones(n_events, int), "luminosityBlock": np.ones(n_events, int), "event": np.arange(n_events)}
    lists = class_event_lists(classes, ids, np.full(n_events, "x"), scores={"kfold_rarity": scores[:, 0]})
    for top in lists.values():
        np.testing.assert_array_equal(top.columns["kfold_rarity"], scores[top.columns["event"], 0])


def test_rarity_is_scanned_in_upper_tails():
    """An excess at high rarity is found as an upper tail (a window to the last bin); the same excess in
    the middle of the rarity is no region of the rarity, while S_T scans every window."""
    from cms_anomaly.stats.classes import class_scan

    b = {f"c{i}": {"rarity": np.full(8, 5.0), "st": np.full(8, 5.0)} for i in range(4)}
    v = {c: {d: np.full(8, 0.5) for d in dists} for c, dists in b.items()}
    n = {c: {d: np.full(8, 5.0) for d in dists} for c, dists in b.items()}
    n["c1"]["rarity"] = np.array([5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 30.0, 30.0])
    n["c2"]["rarity"] = np.array([5.0, 5.0, 30.0, 30.0, 5.0, 5.0, 5.0, 5.0])
    n["c2"]["st"] = n["c2"]["rarity"].copy()
    r = class_scan(n, b, v, n_pe=200, seed=1, upper_tails=("rarity",))
    per = {c.name: c.per_distribution for c in r.classes}
    assert per["c1"]["rarity"].region == (6, 8)
    assert per["c1"]["rarity"].p < 1e-10
    assert per["c2"]["st"].region == (2, 4)
    assert per["c2"]["rarity"].region[1] == 8
    assert per["c2"]["rarity"].p > per["c2"]["st"].p * 1e6
    assert all(c.per_distribution["rarity"].region[1] == 8 for c in r.classes)


def test_model_is_checked():
    assert not ClassHuntConfig().detector
    assert not ClassHuntConfig(model=None).detector  # type: ignore[arg-type]
    assert ClassHuntConfig(model="alad_knapp").detector
    with pytest.raises(ClassHuntError, match="unknown model"):
        ClassHuntConfig(model="nonsense")
    with pytest.raises(ClassHuntError, match="k_folds"):
        ClassHuntConfig(model="alad_knapp", k_folds=1)


def test_cli_model_applies_to_the_class_hunt():
    from cms_anomaly.analyses.hunt_classes import config_from_args

    from cms_anomaly.cli import build_parser

    parse = build_parser().parse_args
    assert config_from_args(parse(["hunt", "--selection", "event_classes"])).model == "none"
    config = config_from_args(parse(["hunt", "--selection", "event_classes", "--model", "baseline", "--k-folds", "4"]))
    assert (config.model, config.k_folds) == ("baseline", 4)


@pytest.mark.slow
def test_the_rarity_is_scanned_in_the_injected_class(class_samples, tmp_path):
    from coffea.util import load

    card = "lq_eb"
    share, final_state, _ = CARDS[card]
    config = _config(inject=card, signal_fraction=share, model="alad_knapp", k_folds=2, epochs=3)
    result = run_class_hunt(tmp_path / card, config, samples_dir=class_samples)
    summary = json.loads((result.summary.parent / "summary.json").read_text())
    assert summary["detector"]["model"] == "alad_knapp"
    assert "class_n_gamma" in summary["detector"]["features"]
    assert "rarity" in summary["result"]["expected_p_tilde"]
    assert all("rarity" in r["windows_gev"] for r in result.rows)
    injected = [r for r in result.rows if final_state(_counts(r["class"]))]
    assert injected
    assert "rarity" in injected[0]["p_tildes"]
    window = injected[0]["windows_gev"]["rarity"]
    assert window is not None
    assert window[1] == 8.0  # an upper tail of the rarity
    text = result.summary.read_text()
    assert "rarity of a 2-fold alad_knapp detector" in text
    # every class membership of an event with a finite rarity is in the class's rarity histogram
    output = load(summary["histograms"])
    for dataset in ("data", "wjets", "gjets"):
        st, rarity = (output[dataset]["hists"][DISTRIBUTIONS[d]][{"dataset": sum}] for d in ("st", "rarity"))
        for c in st.axes["event_class"]:
            n_st = st[{"event_class": c}].values(flow=True).sum()
            assert rarity[{"event_class": c}].values(flow=True).sum() == pytest.approx(n_st), (dataset, c)
