"""The hunt over every final state (``cms-anomaly hunt --selection event_classes``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cms_anomaly.analyses.analysis import Execution
from cms_anomaly.analyses.hunt_classes import (
    CLASS_COCKTAIL,
    ClassHuntConfig,
    ClassHuntError,
    generation_cost,
    run_class_hunt,
    selected_classes,
)
from conftest import cocktail_cache_name

#: a few hundred events per SM card: the pseudo-data's luminosity is set by gamma + jets (the largest
#: cross section), so W and Z are oversampled and the rare processes are present at their share
SMALL_EVENTS = {
    "wjets": 150,
    "zjets": 60,
    "ttbar": 40,
    "single_top": 20,
    "ww": 20,
    "wz": 20,
    "zz": 20,
    "zz4l": 200,
    "gjets": 150,
}


def test_cocktail_lists_every_sm_card():
    cards = {c for _, c, _ in CLASS_COCKTAIL}
    for card in ("wjets", "zjets", "ttbar", "single_top", "ww", "wz", "zz", "zz4l", "gjets", "qcd_inclusive"):
        assert card in cards
        assert (Path(__file__).parents[1] / "datasets" / "cards" / f"{card}.toml").exists()
    # pseudo-data is an unweighted mixture: the tail-weighted-only QCD is in the model with real data only
    assert "qcd" not in ClassHuntConfig().roles()
    assert "qcd" in ClassHuntConfig(data_fileset="x.json").roles()


def test_generation_cost_counts_both_productions():
    config = ClassHuntConfig(events={r: 100 for r, _, _ in CLASS_COCKTAIL})
    lines, total = generation_cost(config)
    assert len(lines) == len(config.roles())
    assert "200 events" in lines[0]
    single, _ = generation_cost(ClassHuntConfig(events=config.events, data_fileset="x.json"))
    assert total > 0
    assert "100 events" in single[0]


def test_classes_patterns_and_kinds():
    names = ["1mu", "2mu", "1e_2jet", "1mu+X", "2mu+NJets", "1mu_1jet_MET"]
    assert selected_classes(names, ClassHuntConfig(classes=("*mu",))) == ["1mu", "2mu"]
    assert selected_classes(names, ClassHuntConfig(kinds=("exclusive",))) == ["1e_2jet", "1mu", "1mu_1jet_MET", "2mu"]
    assert selected_classes(names, ClassHuntConfig(classes=("1mu*",), kinds=("inclusive",))) == ["1mu+X"]
    with pytest.raises(ClassHuntError, match="kinds"):
        ClassHuntConfig(kinds=("everything",))


def test_global_p_below_the_p_tilde_resolution():
    """A huge excess in one of many classes: every class's p-tilde resolves only 1/(N + 1), and many
    pseudo-experiments reach it somewhere; their smallest local p breaks the tie."""
    from cms_anomaly.stats.classes import class_scan

    b = {f"c{i}": {"st": np.full(5, 10.0), "met": np.full(5, 10.0)} for i in range(60)}
    v = {c: {d: np.full(5, 1.0) for d in dists} for c, dists in b.items()}
    n = {c: {d: np.full(5, 10.0) for d in dists} for c, dists in b.items()}
    n["c7"]["st"] = np.array([10.0, 10.0, 200.0, 10.0, 10.0])
    r = class_scan(n, b, v, n_pe=50, seed=1)
    assert r.classes[0].name == "c7"
    assert r.p_global == pytest.approx(1 / 51)


@pytest.fixture(scope="module")
def class_samples(request: pytest.FixtureRequest) -> Path:
    """The small productions, in pytest's cache (reused while the production code is unchanged)."""
    return Path(request.config.cache.mkdir(f"class-hunt-{cocktail_cache_name()}"))


def _config(**changes) -> ClassHuntConfig:
    return ClassHuntConfig(events=SMALL_EVENTS, npe=300, seed=3, execution=Execution(executor="iterative"), **changes)


@pytest.mark.slow
def test_class_hunt_report_and_filter(class_samples, tmp_path):
    result = run_class_hunt(tmp_path / "null", _config(), samples_dir=class_samples)
    text = result.summary.read_text()
    assert "| class | observed | expected |" in text
    assert "global p =" in text
    png = result.summary.parent / "p_tilde_classes.png"
    assert png.stat().st_size > 10_000
    summary = json.loads((result.summary.parent / "summary.json").read_text())
    rows = summary["result"]["classes"]
    assert len(rows) > 10
    assert rows == sorted(rows, key=lambda r: (r["p_tilde"], r["p"]))
    assert {"class", "observed", "expected", "expected_error", "p", "p_tilde", "window_gev"} <= set(rows[0])
    # no signal: nothing significant after the look-elsewhere correction
    assert result.p_global >= 0.01
    filtered = run_class_hunt(tmp_path / "mu", _config(classes=("*mu*",)), samples_dir=class_samples)
    assert filtered.rows
    assert all("mu" in r["class"] for r in filtered.rows)
    assert len(filtered.rows) < len(rows)


@pytest.mark.slow
def test_class_hunt_finds_a_hidden_zprime(class_samples, tmp_path):
    """A 2 TeV Z' (all decays) at 10 % of the pseudo-data: most of it decays to quarks, outside the muon +
    jets selection of top_rediscovery; the top class by p-tilde has its TeV-scale region."""
    result = run_class_hunt(
        tmp_path / "zprime", _config(inject="zprime_ssm", signal_fraction=0.1), samples_dir=class_samples
    )
    top = result.rows[0]
    assert result.p_global < 0.01
    assert top["window_gev"] is not None
    assert top["window_gev"][1] > 1000.0, top


def test_cli_selection_event_classes_builds_the_class_hunt():
    from cms_anomaly.analyses.hunt_classes import config_from_args

    from cms_anomaly.cli import build_parser

    args = build_parser().parse_args(
        ["hunt", "--selection", "event_classes", "--classes", "*mu*", "2e*", "--events", "0.5", "--npe", "100"]
    )
    assert args.selection == "event_classes"
    config = config_from_args(args)
    assert config.classes == ("*mu*", "2e*")
    assert config.npe == 100
    assert config.events["gjets"] == ClassHuntConfig().events["gjets"] // 2
    assert build_parser().parse_args(["hunt"]).selection == "top_rediscovery"


def random_memberships(rng: np.random.Generator, n_events: int, m: int, names: list[str]):
    """``m`` class memberships of ``n_events`` events: random events and class names, exponential S_T, M, MET."""
    from cms_anomaly.processors.eventclass import EventClasses

    return EventClasses(
        exclusive=np.full(n_events, ""),
        event=rng.integers(0, n_events, m),
        name=rng.choice(names, m),
        kind=np.full(m, "exclusive"),
        st=rng.exponential(200.0, m),
        mass=rng.exponential(300.0, m),
        met=rng.exponential(30.0, m),
    )


def test_class_event_lists_keep_each_class_highest_st_events_across_chunks():
    """Per class the n memberships of highest S_T, as a sort per class would give, and the same list from
    two chunks added up (the accumulator's exactness)."""
    from cms_anomaly.processors.eventclass import EventClasses, class_event_lists

    m = 400
    classes = random_memberships(np.random.default_rng(5), 150, m, ["1e", "2mu", "1e+X", "1gamma_1jet"])
    event = classes.event
    ids = {"run": np.full(150, 1), "luminosityBlock": np.arange(150) // 10, "event": np.arange(150) + 1000}
    process = np.where(np.arange(150) % 3 == 0, "signal", "wjets")
    lists = class_event_lists(classes, ids, process, n=7)
    assert set(lists) == set(classes.name)
    for c, top in lists.items():
        rows = np.flatnonzero(classes.name == c)
        best = rows[np.argsort(-classes.st[rows])[:7]]
        np.testing.assert_array_equal(top.columns["st"], classes.st[best])
        np.testing.assert_array_equal(top.columns["mass"], classes.mass[best])
        np.testing.assert_array_equal(top.columns["event"], event[best] + 1000)
        np.testing.assert_array_equal(top.columns["process"], process[event[best]])
    half = m // 2
    parts = [
        class_event_lists(
            EventClasses(
                **{f: getattr(classes, f)[sl] for f in ("event", "name", "kind", "st", "mass", "met")},
                exclusive=classes.exclusive,
            ),
            ids,
            process,
            n=7,
        )
        for sl in (slice(0, half), slice(half, m))
    ]
    for c, top in lists.items():
        added = (
            parts[0].get(c, parts[1].get(c)) if c not in parts[0] or c not in parts[1] else parts[0][c] + parts[1][c]
        )
        np.testing.assert_array_equal(added.columns["st"], top.columns["st"])


def test_a_class_below_the_minimum_region_yield_is_one_region():
    """A class the simulation barely fills (0.02 expected in all, below min_yield) with 8 observed events is
    scanned as one region, the whole class, and is the most significant; an unfilled class stays p = 1."""
    from cms_anomaly.stats.classes import class_scan

    b = {f"c{i}": {"st": np.full(6, 2.0)} for i in range(10)}
    b["rare"] = {"st": np.array([0.0, 0.01, 0.01, 0.0, 0.0, 0.0])}
    b["empty"] = {"st": np.zeros(6)}
    v = {c: {"st": 0.1 * d["st"]} for c, d in b.items()}
    n = {c: {"st": np.round(d["st"])} for c, d in b.items()}
    n["rare"]["st"] = np.array([0.0, 0.0, 3.0, 5.0, 0.0, 0.0])
    n["empty"]["st"] = np.array([0.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    r = class_scan(n, b, v, n_pe=200, seed=2, min_yield=0.1)
    best = r.classes[0]
    assert best.name == "rare"
    assert best.region == (0, 6)
    assert best.per_distribution["st"].observed == 8.0
    assert best.p < 1e-8
    assert r.p_global < 0.01
    assert next(c for c in r.classes if c.name == "empty").p == 1.0
