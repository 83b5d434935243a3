"""The NPLM test in the class hunt: which classes it runs on, its Sidak global p, its report lines (fast),
and the report and summary.json of a hunt on the cached small productions of ``test_hunt_classes`` (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cms_anomaly.analyses.hunt_classes import ClassHuntConfig, ClassHuntError, nplm_classes, run_class_hunt
from cms_anomaly.analyses.hunt_classes_report import nplm_line, table_lines
from cms_anomaly.processors.histograms import class_joint_hist
from conftest import cocktail_cache_name
from test_hunt_classes import _config


def _output(rng: np.random.Generator) -> dict:
    """Data and a simulation (two roles, weights 0.5 and 1) of ``class_joint``: ``1mu`` (400 expected, a
    40-event excess at S_T 1-1.6 TeV), ``1e`` (300 expected, data as simulated), ``2mu`` (30 expected, 12
    observed: below the 20-event minimum), ``3jet`` (30 observed, not simulated)."""

    def events(n: int, excess: int = 0) -> dict[str, np.ndarray]:
        st = np.concatenate([rng.exponential(150.0, n) + 60.0, rng.uniform(1000.0, 1600.0, excess)])
        return {"st": st, "mass": 0.5 * st * rng.uniform(0.5, 1.0, st.size), "met": rng.exponential(30.0, st.size)}

    data, sim_a, sim_b = (class_joint_hist(dataset=d) for d in ("data", "wjets", "zjets"))
    for c, n_data, n_sim, excess in (
        ("1mu", 400, 400, 40),
        ("1e", 300, 300, 0),
        ("2mu", 12, 30, 0),
        ("3jet", 30, 0, 0),
    ):
        data.fill(dataset="data", event_class=c, **events(n_data, excess))
        if n_sim:
            sim_a.fill(dataset="wjets", event_class=c, **events(n_sim), weight=0.5)
            sim_b.fill(dataset="zjets", event_class=c, **events(n_sim // 2), weight=1.0)
    return {
        "data": {"hists": {"class_joint": data}},
        "wjets": {"hists": {"class_joint": sim_a}},
        "zjets": {"hists": {"class_joint": sim_b}},
    }


def test_nplm_runs_on_the_qualifying_exclusive_classes_with_a_sidak_global_p():
    output = _output(np.random.default_rng(2))
    config = ClassHuntConfig(nplm_toys=100, seed=5)
    nplm = nplm_classes(output, config)
    assert set(nplm["classes"]) == {"1mu", "1e"}  # 2mu: 12 observed; 3jet: not simulated
    assert nplm["classes"]["1mu"]["p"] < 0.02
    assert nplm["classes"]["1e"]["p"] > 0.02
    assert nplm["classes"]["1mu"]["observed"] == 440.0
    assert nplm["p_min"] == nplm["classes"]["1mu"]["p"]
    assert nplm["p_global"] == pytest.approx(1 - (1 - nplm["p_min"]) ** 2)
    assert nplm_classes(output, config) == nplm  # seeded
    assert "**NPLM global p" in nplm_line(nplm)
    assert "1mu" in nplm_line(nplm)
    assert set(nplm_classes(output, ClassHuntConfig(nplm_toys=100, classes=("1e",)))["classes"]) == {"1e"}
    off = nplm_classes(output, ClassHuntConfig(nplm_toys=0))
    assert (off["tested"], off["p_global"]) == (0, None)
    assert "not run" in nplm_line(off)
    assert "no exclusive class" in nplm_line(nplm_classes(output, ClassHuntConfig(nplm_min_events=1e4)))
    with pytest.raises(ClassHuntError, match="nplm"):
        ClassHuntConfig(nplm_toys=-1)
    with pytest.raises(ClassHuntError, match="class_joint"):
        nplm_classes({"data": {"hists": {}}, **{k: v for k, v in output.items() if k != "data"}}, config)


def test_the_class_table_has_an_nplm_column_blank_where_not_tested():
    row = {
        "class": "1mu",
        "observed": 9.0,
        "expected": 6.7,
        "expected_error": 0.5,
        "p": 0.2,
        "p_tilde": 0.3,
        "distribution": "st",
        "window_gev": [0.0, 100.0],
        "region_observed": 5.0,
        "region_expected": 3.0,
    }
    lines = table_lines([{**row, "nplm_p": 0.0123}, {**row, "class": "2mu", "nplm_p": None}])
    assert lines[0].endswith("| NPLM p |")
    assert lines[2].endswith("| 0.0123 |")
    assert lines[3].endswith("|  |")


@pytest.fixture(scope="module")
def class_samples(request: pytest.FixtureRequest) -> Path:
    """The small productions of ``test_hunt_classes``, in pytest's cache (the same folder)."""
    return Path(request.config.cache.mkdir(f"class-hunt-{cocktail_cache_name()}"))


@pytest.mark.slow
def test_class_hunt_report_carries_the_nplm_tests(class_samples, tmp_path):
    """The tests' production (its largest exclusive class, 1mu, holds 9 events): with a 5-event minimum the
    NPLM p of the tested classes is in the class table, the global NPLM p in summary.md and summary.json."""
    result = run_class_hunt(tmp_path / "null", _config(nplm_min_events=5, nplm_toys=100), samples_dir=class_samples)
    text = result.summary.read_text()
    assert "| NPLM p |" in text
    assert "**NPLM global p" in text
    nplm = json.loads((result.summary.parent / "summary.json").read_text())["result"]["nplm"]
    assert nplm["tested"] >= 1
    assert set(nplm["classes"]) == {r["class"] for r in result.rows if r["nplm_p"] is not None}
    for c, v in nplm["classes"].items():
        assert "+" not in c
        assert min(v["observed"], v["expected"]) >= 5
        assert {"t", "p", "n_toys"} <= set(v)
        assert v["n_toys"] == 100
    assert nplm["p_global"] == pytest.approx(1 - (1 - nplm["p_min"]) ** nplm["tested"])
    assert nplm["p_global"] > 0.01  # no signal


def test_cli_nplm_options():
    from cms_anomaly.analyses.hunt_classes import config_from_args

    from cms_anomaly.cli import build_parser

    parse = build_parser().parse_args
    config = config_from_args(
        parse(["hunt", "--selection", "event_classes", "--nplm-toys", "50", "--nplm-min-events", "30"])
    )
    assert (config.nplm_toys, config.nplm_min_events) == (50, 30.0)
    default = config_from_args(parse(["hunt", "--selection", "event_classes"]))
    assert (default.nplm_toys, default.nplm_min_events) == (ClassHuntConfig.nplm_toys, ClassHuntConfig.nplm_min_events)
