"""The NanoAOD schema map and the configuration loader."""

from __future__ import annotations

import pytest
import uproot
from cms_anomaly.processors import schema
from cms_anomaly.processors.config import AnalysisConfig, ConfigError, load_config


@pytest.mark.parametrize(
    ("name", "variant"), [("ttbar2015", "run2"), ("dy", "run2"), ("dimuon", "run2"), ("pfnano", "pfnano")]
)
def test_real_files_map_to_their_variant(real_nanoaod_files, name, variant):
    with uproot.open(real_nanoaod_files[name]) as f:
        keys = f["Events"].keys()
    v = schema.detect_variant(keys)
    assert v.name == variant
    used = schema.branches_used(v, keys)
    assert {"Muon_pt", "nMuon", "Jet_btagDeepFlavB", "MET_pt", "Electron_pfRelIso03_chg"} <= set(used)
    assert ("PFCands_pt" in used) == (name == "pfnano")
    assert ("genWeight" in used) == (name != "dimuon")


def test_generated_files_map_to_generated(generated_cocktail):
    path = next(generated_cocktail.glob("wjets/*.root"))
    with uproot.open(path) as f:
        assert schema.detect_variant(f["Events"].keys()).name == "generated"


def test_run1_and_run3_branch_maps():
    run1 = schema.detect_variant(["Jet_btag", "Jet_pt", "Muon_pt", "MET_pt", "Muon_pfRelIso03_all"])
    assert run1.name == "run1"
    assert run1.branch_name("jet.btag") == "Jet_btag"
    assert run1.branch_name("muon.iso_chg") is None
    v15 = schema.detect_variant(["Jet_btagPNetB", "Jet_btagDeepFlavB", "PFMET_pt"])
    assert v15.name == "run3"
    assert v15.branch_name("met.pt") == "PFMET_pt"
    assert schema.detect_variant(["Jet_btagPNetB", "MET_pt"]).name == "run3_v12"
    with pytest.raises(schema.UnknownSchemaError, match="no NanoAOD variant"):
        schema.detect_variant(["Muon_pt"], source="odd.root")


def test_missing_branch_error_message():
    err = schema.MissingBranchError("Jet_btagDeepFlavB", feature="n_bjets", variant="run2", source="x.root")
    assert str(err) == (
        "branch 'Jet_btagDeepFlavB' needed by feature 'n_bjets' is missing in x.root "
        "(NanoAOD variant 'run2', no fallback)"
    )


def test_config_from_toml(tmp_path):
    path = tmp_path / "cfg.toml"
    path.write_text("[objects]\njet_pt_min = 40\n[features]\nsqrt_s = 8000\n")
    cfg = load_config(path)
    assert cfg.objects.jet_pt_min == 40.0
    assert cfg.features.sqrt_s == 8000.0
    assert cfg.selections == AnalysisConfig().selections
    path.write_text("[objects]\njet_ptmin = 40\n")
    with pytest.raises(ConfigError, match=r"cfg.toml: unknown key\(s\) \['jet_ptmin'\] in \[objects\]"):
        load_config(path)
    path.write_text("[objects]\nrecluster_jets = 1\n")
    with pytest.raises(ConfigError, match="recluster_jets must be true/false"):
        load_config(path)
