"""The class hunt finds a hidden process in its own final state: one injection card per kind of class.

Each card is hidden in the small pseudo-data of ``test_hunt_classes`` (the same cached SM productions:
seed 3, simulation seed 1003, about 150 SM events at 0.8 nb^-1) at a share of the pseudo-data. The
test asserts that the hunt's global p-value is below 0.01, that a class of the card's final state is
among the most significant classes (tied at the smallest p-tilde), that its region reaches the
signal's scale, and that the report's events in that region are mostly the hidden process.

The smallest region yield is 0.01 events (:data:`MIN_YIELD`), not MUSiC's 0.1: at 0.8 nb^-1 the
e + b-jet classes expect 0.010 events, and a class whose whole expectation is below the minimum has no
region at all (p = 1, whatever it observes: 15 leptoquark events in ``1e_1bjet+X`` were unseen).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from cms_anomaly.analyses.analysis import Execution
from cms_anomaly.analyses.hunt_classes import ClassHuntConfig, run_class_hunt
from conftest import cocktail_cache_name
from test_hunt_classes import SMALL_EVENTS


def _counts(name: str) -> dict[str, int]:
    """Objects per type of a class name (``2e_1jet+X`` -> {"e": 2, "jet": 1, ...})."""
    found = dict.fromkeys(("e", "mu", "gamma", "jet", "bjet"), 0)
    for n, t in re.findall(r"(\d+)(e|mu|gamma|jet|bjet)(?=_|\+|$)", name):
        found[t] = int(n)
    return found


def _jets(c: dict[str, int]) -> int:
    return c["jet"] + c["bjet"]


#: card -> (signal share of the pseudo-data, the final state where it must be found, its scale in GeV).
#: The scale is half the resonance mass: a two-body decay puts each daughter at pT ~ M/2, so every
#: class variable of its objects (the S_T or mass of the leading one or two) reaches it.
CARDS: dict[str, tuple[float, Callable[[dict[str, int]], bool], float]] = {
    "lq_eb": (0.1, lambda c: c["e"] >= 1 and _jets(c) >= 1 and c["mu"] + c["gamma"] == 0, 500.0),
    "zprime_ll": (0.1, lambda c: (c["e"], c["mu"]) in ((2, 0), (0, 2)) and c["gamma"] == 0, 1000.0),
    "qstar_gamma": (0.1, lambda c: c["gamma"] == 1 and _jets(c) >= 1 and c["e"] + c["mu"] == 0, 1000.0),
    "h2_zz4l": (0.1, lambda c: c["e"] + c["mu"] == 4 and c["gamma"] == 0, 150.0),
    "zprime_qq": (0.1, lambda c: c["e"] + c["mu"] + c["gamma"] == 0 and _jets(c) >= 1, 1000.0),
}


#: the smallest expected yield of a region at the tests' luminosity (module docstring)
MIN_YIELD = 0.01


def _config(**changes) -> ClassHuntConfig:
    return ClassHuntConfig(
        events=SMALL_EVENTS,
        npe=300,
        seed=3,
        min_yield=MIN_YIELD,
        top_classes=100,
        execution=Execution(executor="iterative"),
        **changes,
    )


@pytest.fixture(scope="module")
def class_samples(request: pytest.FixtureRequest) -> Path:
    """The small productions of ``test_hunt_classes``, in pytest's cache (shared with it)."""
    return Path(request.config.cache.mkdir(f"class-hunt-{cocktail_cache_name()}"))


@pytest.mark.slow
@pytest.mark.parametrize("card", list(CARDS))
def test_a_hidden_process_is_found_in_its_class_and_listed(card, class_samples, tmp_path):
    share, final_state, scale = CARDS[card]
    result = run_class_hunt(tmp_path / card, _config(inject=card, signal_fraction=share), samples_dir=class_samples)
    assert result.p_global < 0.01
    best = result.rows[0]["p_tilde"]
    found = [r for r in result.rows if r["p_tilde"] <= best and final_state(_counts(r["class"]))]
    assert found, [(r["class"], r["p_tilde"]) for r in result.rows[:10]]
    row = found[0]
    windows = [w for d, w in row["windows_gev"].items() if d in ("st", "mass") and w is not None]
    assert any(lo < scale <= hi for lo, hi in windows), row
    summary = json.loads((result.summary.parent / "summary.json").read_text())
    listed = next(e for e in summary["result"]["region_events"] if e["class"] == row["class"])
    processes = [v["process"] for v in listed["events"]]
    assert len(processes) >= 2
    assert sum(p == card for p in processes) > len(processes) / 2, listed
    assert f"| {row['class']} |" in result.summary.read_text()


@pytest.mark.slow
def test_nothing_is_found_without_a_hidden_process_at_the_smaller_region_yield(class_samples, tmp_path):
    """The same pseudo-data without signal at :data:`MIN_YIELD`: more (smaller) regions, calibrated by the
    same pseudo-experiments, still no significant class."""
    result = run_class_hunt(tmp_path / "null", _config(), samples_dir=class_samples)
    assert result.p_global >= 0.01
