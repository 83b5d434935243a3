"""docs/howto/add-a-selection.md: a selection registered the way the page says runs through the processor."""

from __future__ import annotations

import dataclasses

import awkward as ak
import pytest
import uproot
from cms_anomaly.processors import dataquality, runner, selections
from cms_anomaly.processors.config import AnalysisConfig
from cms_anomaly.processors.processor import AnomalyProcessor
from cms_anomaly.processors.selections import Cut, Selection, register_selection


def two_muons(objects, features, config):
    muons = objects.flat["muons"]
    return muons.count(muons.columns["pt"] > config.top_muon_pt_min) >= 2


@pytest.fixture
def dimuon():
    """The page's ``dimuon`` selection, registered for one test."""
    register_selection(
        Selection(
            "dimuon",
            "two muons above the top selection's muon pT",
            (Cut("two_muons", "two muons with pT > {top_muon_pt_min:g} GeV", two_muons),),
        ),
        triggers=None,
    )
    yield selections.SELECTIONS["dimuon"]
    selections.unregister_selection("dimuon")


def _raw_dimuon_events(path, pt_min: float) -> int:
    """Events with two loose-ID muons of pT > ``pt_min`` and Iso < 0.45 (the object cuts), from the raw branches."""
    a = uproot.open(path)["Events"].arrays(["Muon_pt", "Muon_looseId", "Muon_pfRelIso03_all"])
    good = (a.Muon_pt > pt_min) & a.Muon_looseId & (a.Muon_pfRelIso03_all < 0.45)
    return int(ak.sum(ak.sum(good, axis=1) >= 2))


def test_a_registered_selection_fills_its_cutflow_step(dimuon, real_nanoaod_files):
    path = real_nanoaod_files["dy"]
    base = AnalysisConfig()
    moved = dataclasses.replace(base, selections=dataclasses.replace(base.selections, top_muon_pt_min=40.0))
    fs = {"dy": {"files": {str(path): "Events"}, "metadata": {"is_data": True}}}
    counts = {}
    for config in (base, moved):
        with runner.make_executor("iterative") as ex:
            out = runner.run_processor(fs, AnomalyProcessor(selection="dimuon", config=config), executor=ex)["dy"]
        n = out["cutflow"]["events"]["two_muons"]
        assert n == _raw_dimuon_events(path, config.selections.top_muon_pt_min)
        assert out["hists"]["cutflow"][{"dataset": "dy", "cut": "two_muons"}].value == n
        counts[config.selections.top_muon_pt_min] = n
    assert 0 < counts[40.0] < counts[23.0] < 40
    assert dataquality.TRIGGERS["dimuon"] == {}


def test_cut_labels_follow_the_config(dimuon):
    """A moved cut changes its label: the labels are built from the config values."""
    base = AnalysisConfig().selections
    assert dimuon.cut_labels(base) == {"all": "all events", "two_muons": "two muons with pT > 23 GeV"}
    moved = dataclasses.replace(base, top_muon_pt_min=40.0, single_lepton_iso_max=0.2)
    assert dimuon.cut_labels(moved)["two_muons"] == "two muons with pT > 40 GeV"
    single = selections.get_selection("single_lepton")
    assert single.cut_labels(moved)["lepton_iso"] == "... that has Iso < 0.2"
    assert single.label(moved) == "Cerri et al.: one isolated lepton (pT > 23 GeV, Iso < 0.2)"


def test_register_selection_refuses_a_taken_name_and_an_unknown_field(dimuon):
    with pytest.raises(selections.SelectionRegistryError, match="already registered"):
        register_selection(dimuon)
    bad = Selection("bad", "x", (Cut("c", "pT > {no_such_field:g}", two_muons),))
    with pytest.raises(selections.SelectionRegistryError, match="no config field"):
        register_selection(bad)
    assert "bad" not in selections.SELECTIONS
