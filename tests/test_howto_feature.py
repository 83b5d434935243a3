"""docs/howto/add-a-feature.md: a feature registered the way the page says is histogrammed and written."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot
from cms_anomaly.processors import feature_spec, runner
from cms_anomaly.processors.feature_io import read_feature_tables
from cms_anomaly.processors.feature_spec import FeatureSpec, register_feature
from cms_anomaly.processors.processor import AnomalyProcessor


@pytest.fixture
def pt_mu1():
    """The page's ``pt_mu1`` feature, registered for one test."""
    register_feature(
        FeatureSpec(
            "pt_mu1",
            r"$p_T^{\mu_1}$ [GeV]",
            50,
            0,
            500,
            description="leading selected muon pT (0: no muon)",
            compute=lambda objects, config: objects.flat["muons"].nth("pt", 0),
        )
    )
    yield feature_spec.FEATURES["pt_mu1"]
    feature_spec.unregister_feature("pt_mu1")


def test_a_registered_feature_is_histogrammed_and_written(pt_mu1, real_nanoaod_files, tmp_path):
    path = real_nanoaod_files["dy"]
    fs = {"dy": {"files": {str(path): "Events"}, "metadata": {"is_data": True}}}
    proc = AnomalyProcessor(selection="single_lepton", features_dir=tmp_path / "features")
    with runner.make_executor("iterative") as ex:
        out = runner.run_processor(fs, proc, executor=ex)["dy"]
    n_sel = out["cutflow"]["events"]["lepton_iso"]
    assert n_sel > 0
    h = out["hists"]["pt_mu1"][{"dataset": "dy", "systematic": "nominal"}]
    assert h.values(flow=True).sum() == n_sel
    table = read_feature_tables(tmp_path / "features", columns=["pt_mu1", "event"], as_numpy=True)
    # the leading muon of the object definition (loose ID, Iso < 0.45, pT > 0.5), from the raw branches
    a = uproot.open(path)["Events"].arrays(["event", "Muon_pt", "Muon_looseId", "Muon_pfRelIso03_all"])
    good = a.Muon_pt[(a.Muon_pt > 0.5) & a.Muon_looseId & (a.Muon_pfRelIso03_all < 0.45)]
    lead = dict(zip(ak.to_list(a.event), ak.to_list(ak.fill_none(ak.max(good, axis=1), 0.0)), strict=True))
    expected = np.array([lead[e] for e in table["event"]])
    assert len(expected) == n_sel
    assert np.any(expected > 0)
    np.testing.assert_allclose(table["pt_mu1"], expected, rtol=1e-6)


def test_register_feature_refuses_a_taken_name_and_a_missing_compute(pt_mu1):
    with pytest.raises(feature_spec.FeatureRegistryError, match="already registered"):
        register_feature(pt_mu1)
    with pytest.raises(feature_spec.FeatureRegistryError, match="compute"):
        register_feature(FeatureSpec("no_compute", "x", 10, 0, 1))
    with pytest.raises(feature_spec.FeatureRegistryError, match="not a registered one"):
        feature_spec.unregister_feature("ht")
