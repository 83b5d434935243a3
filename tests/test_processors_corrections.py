"""Scale factors from a correctionlib JSON through coffea's Weights, and the per-era b-tag working points.

The expected weights are computed here with numpy from the muons of the real DY file (uproot), the
scale factor looked up with ``np.digitize`` in the binning this test writes: not through the processor.
"""

from __future__ import annotations

import dataclasses
import json

import awkward as ak
import numpy as np
import pytest
import uproot
from cms_anomaly.processors import btag, runner
from cms_anomaly.processors.config import AnalysisConfig, CorrectionConfig
from cms_anomaly.processors.corrections import CorrectionError, Corrections
from cms_anomaly.processors.feature_io import read_feature_tables
from cms_anomaly.processors.histograms import nominal, variation
from cms_anomaly.processors.processor import AnomalyProcessor

ABSETA = [0.0, 0.9, 1.2, 2.1, 2.4]
PT = [15.0, 20.0, 30.0, 50.0, 120.0]
#: (|eta| bin, pT bin) scale factors; up / down are the nominal +- a bin-dependent uncertainty
SF = np.array([[0.90, 0.95, 0.98, 0.99], [0.91, 0.94, 0.97, 1.01], [0.92, 0.96, 0.99, 1.02], [0.85, 0.88, 0.93, 0.97]])
ERR = np.array([[0.05, 0.03, 0.02, 0.01], [0.06, 0.04, 0.02, 0.02], [0.07, 0.03, 0.03, 0.02], [0.08, 0.06, 0.04, 0.03]])
VALUES = {"nominal": SF, "systup": SF + ERR, "systdown": SF - ERR}


def _write_json(path, name="muon_id_test", inputs=("abseta", "pt", "scale_factors")):
    """A correctionlib JSON (schema v2 pydantic models) with one muon-ID-like correction."""
    import correctionlib.schemav2 as cs

    def binned(values):
        return cs.MultiBinning(
            nodetype="multibinning",
            inputs=["abseta", "pt"],
            edges=[ABSETA, PT],
            content=[float(v) for v in values.ravel()],  # row-major: |eta| outer, pT inner
            flow="clamp",
        )

    variables = {
        "abseta": cs.Variable(name="abseta", type="real", description="muon |eta|"),
        "pt": cs.Variable(name="pt", type="real", description="muon pT"),
        "scale_factors": cs.Variable(name="scale_factors", type="string", description="nominal/systup/systdown"),
        "eta_signed": cs.Variable(name="eta_signed", type="real", description="an input the processor does not know"),
    }
    correction = cs.Correction(
        name=name,
        version=1,
        inputs=[variables[i] for i in inputs],
        output=cs.Variable(name="weight", type="real", description="scale factor"),
        data=cs.Category(
            nodetype="category",
            input="scale_factors",
            content=[cs.CategoryItem(key=k, value=binned(v)) for k, v in VALUES.items()],
        ),
    )
    cset = cs.CorrectionSet(schema_version=2, description="test muon SFs", corrections=[correction])
    path.write_text(cset.model_dump_json(exclude_unset=True))
    return path


def _expected_factors(path):
    """Per-event products of SF, SF+err, SF-err over the file's loose, isolated muons above 15 GeV (numpy)."""
    with uproot.open(path) as f:
        m = f["Events"].arrays(
            ["Muon_pt", "Muon_eta", "Muon_pfRelIso03_all", "Muon_isPFcand", "Muon_isGlobal", "Muon_isTracker"]
        )
        genw = f["Events"]["genWeight"].array(library="np").astype(np.float64)
        event = f["Events"]["event"].array(library="np")
    # the CMS loose muon (PF and global or tracker), Iso < 0.45, pT > 15 GeV (the scale factors' lower edge)
    keep = m.Muon_isPFcand & (m.Muon_isGlobal | m.Muon_isTracker) & (m.Muon_pfRelIso03_all < 0.45) & (m.Muon_pt > 15.0)
    pt, eta = m.Muon_pt[keep], m.Muon_eta[keep]
    i = np.clip(np.digitize(np.abs(ak.to_numpy(ak.flatten(eta))), ABSETA) - 1, 0, len(ABSETA) - 2)
    j = np.clip(np.digitize(ak.to_numpy(ak.flatten(pt)), PT) - 1, 0, len(PT) - 2)
    counts = ak.to_numpy(ak.num(pt))
    out = {}
    for key, table in VALUES.items():
        out[key] = ak.to_numpy(ak.prod(ak.unflatten(table[i, j], counts), axis=1))
    return genw, event, out, counts


@pytest.fixture(scope="module")
def dy_with_sf(real_nanoaod_files, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sf")
    path = _write_json(tmp / "muon_sf.json")
    config = dataclasses.replace(
        AnalysisConfig(), corrections=CorrectionConfig(file=str(path), muon_id_sf="muon_id_test")
    )
    proc = AnomalyProcessor(selection="inclusive", config=config, features_dir=tmp / "features")
    fileset = {"dy": {"files": {str(real_nanoaod_files["dy"]): "Events"}, "metadata": {"era": "2017_UL"}}}
    with runner.make_executor("iterative") as ex:
        out = runner.run_processor(fileset, proc, executor=ex, chunksize=1000)
    return out, tmp


def test_muon_scale_factors_weight_each_event(real_nanoaod_files, dy_with_sf):
    out, tmp = dy_with_sf
    genw, event, factors, counts = _expected_factors(real_nanoaod_files["dy"])
    assert (counts >= 1).sum() == 9  # 9 of the 40 DY events have a muon above 15 GeV to weight (4 with two)
    assert (counts == 2).sum() == 4
    table = read_feature_tables(tmp / "features" / "dy", columns=["event", "weight"], as_numpy=True)
    order = np.argsort(table["event"])
    np.testing.assert_array_equal(table["event"][order], np.sort(event))
    expected = (genw * factors["nominal"])[np.argsort(event)]
    np.testing.assert_allclose(table["weight"][order], expected, rtol=1e-12)
    assert out["dy"]["cutflow"]["sumw"]["all"] == pytest.approx(expected.sum(), rel=1e-12)


def test_up_and_down_fill_the_systematic_axis(real_nanoaod_files, dy_with_sf, tmp_path):
    out, _ = dy_with_sf
    genw, _, factors, _ = _expected_factors(real_nanoaod_files["dy"])
    h = out["dy"]["hists"]["met"]
    assert list(h.axes["systematic"]) == ["nominal", "muon_idUp", "muon_idDown"]
    for syst, key in (("nominal", "nominal"), ("muon_idUp", "systup"), ("muon_idDown", "systdown")):
        total = variation(h, syst)[{"dataset": "dy"}].sum(flow=True).value
        assert total == pytest.approx((genw * factors[key]).sum(), rel=1e-12), syst
    assert (genw * factors["systup"]).sum() != pytest.approx((genw * factors["nominal"]).sum(), rel=1e-4)
    assert nominal(h)[{"dataset": "dy"}].sum(flow=True).value == pytest.approx((genw * factors["nominal"]).sum())
    # ROOT: the nominal where it always was, each variation beside it (combine's naming)
    paths = runner.save_outputs(out, tmp_path)
    with uproot.open(paths["root"]) as f:
        up = f["dy/met_muon_idUp"].values(flow=True)
        np.testing.assert_allclose(up, variation(h, "muon_idUp")[{"dataset": "dy"}].values(flow=True))
        assert f["dy/met"].values(flow=True).sum() == pytest.approx((genw * factors["nominal"]).sum())


def test_no_correction_on_data(real_nanoaod_files, tmp_path):
    path = _write_json(tmp_path / "sf.json")
    corr = Corrections(CorrectionConfig(file=str(path), muon_id_sf="muon_id_test"))
    muons = type("M", (), {"columns": {"pt": np.array([40.0]), "eta": np.array([0.1])}, "counts": np.array([1, 0])})
    w = corr.event_weights(np.ones(2), muons, era="2017_UL", is_data=True)
    assert set(w) == {"nominal", "muon_idUp", "muon_idDown"}
    for values in w.values():
        np.testing.assert_array_equal(values, [1.0, 1.0])
    mc = corr.event_weights(np.full(2, 2.0), muons, era="2017_UL", is_data=False)
    np.testing.assert_allclose(mc["nominal"], [2.0 * SF[0, 2], 2.0])  # |eta| 0.1, pT 40: bin (0, 2)
    np.testing.assert_allclose(mc["muon_idDown"], [2.0 * (SF[0, 2] - ERR[0, 2]), 2.0])


def test_a_missing_correction_or_unknown_input_is_one_line(tmp_path):
    path = _write_json(tmp_path / "sf.json")
    with pytest.raises(CorrectionError) as err:
        Corrections(CorrectionConfig(file=str(path), muon_id_sf="NUM_TightID"))
    assert str(err.value) == f"{path}: no correction 'NUM_TightID' (for muon_id); the file has ['muon_id_test']"
    odd = _write_json(tmp_path / "odd.json", inputs=("abseta", "pt", "scale_factors", "eta_signed"))
    with pytest.raises(CorrectionError, match=r"odd.json: correction 'muon_id_test' \(for muon_iso\) has inputs .*"):
        Corrections(CorrectionConfig(file=str(odd), muon_iso_sf="muon_id_test"))
    with pytest.raises(CorrectionError, match="correctionlib file not found"):
        Corrections(CorrectionConfig(file=str(tmp_path / "none.json"), muon_id_sf="x"))
    (tmp_path / "bad.json").write_text(json.dumps({"schema_version": 2, "corrections": "nope"}))
    with pytest.raises(CorrectionError, match=r"bad\.json: not a correctionlib JSON"):
        Corrections(CorrectionConfig(file=str(tmp_path / "bad.json"), muon_id_sf="x"))


def test_btag_working_point_follows_the_era(real_nanoaod_files):
    """The 2015 Open Data sample: DeepJet is -3000 there, era 2015 tags with CSVv2 > 0.800 (76X medium)."""
    path = real_nanoaod_files["ttbar2015"]
    assert btag.choose("run2", era=None, level="medium").threshold == 0.2783  # 2018 UL DeepJet medium
    choice = btag.choose("run2", era="2015", level="medium")
    assert (choice.algorithm, choice.threshold) == ("CSVv2", 0.800)
    assert btag.choose("run2", era="2017_UL", level="tight").threshold == 0.7476
    assert btag.choose("run1", era=None, level="loose").threshold == 0.244

    def n_bjets(era):
        # as data: unit weights, so that the histogram counts b-jets (the sample's +-genWeight cancel)
        meta = {"era": era, "is_data": True} if era else {"is_data": True}
        fileset = {"tt": {"files": {str(path): "Events"}, "metadata": meta}}
        with runner.make_executor("iterative") as ex:
            out = runner.run_processor(fileset, AnomalyProcessor(selection="inclusive"), executor=ex)
        h = nominal(out["tt"]["hists"]["n_bjets"])[{"dataset": "tt"}]
        return (h.values() * h.axes[0].edges[:-1]).sum()

    with uproot.open(path) as f:
        j = f["Events"].arrays(["Jet_pt", "Jet_eta", "Jet_btagCSVV2", "Jet_jetId"])
    candidates = (j.Jet_pt > 30) & (abs(j.Jet_eta) < 2.4) & ((j.Jet_jetId & 2) == 2) & (j.Jet_btagCSVV2 > 0.800)
    assert n_bjets(None) == 0  # DeepJet -3000: no b-jet at the 2018 UL default
    # 6 clean jets above 0.800 (4 above the 2016 point 0.8484, 16 above the loose 0.460); no tagged jet
    # of this sample is removed by the overlap with a lepton or photon
    assert n_bjets("2015") == int(ak.sum(candidates)) == 6
    with pytest.raises(btag.BTagError, match="unknown era '2019'"):
        btag.choose("run2", era="2019", level="medium", source="x.root")
    with pytest.raises(btag.BTagError, match="no b-tag working point for era '2012' and algorithm 'DeepJet'"):
        btag.choose("run2", era="2012", level="medium", algorithm="DeepJet")
    with pytest.raises(btag.BTagError, match="variant 'run3' has no default era"):
        btag.choose("run3", era=None, level="medium")


def test_cli_names_a_missing_correction_in_one_line(tmp_path, real_nanoaod_files, capsys):
    from cms_anomaly.cli import main

    path = _write_json(tmp_path / "sf.json")
    (tmp_path / "fs.json").write_text(json.dumps({"dy": {"files": [str(real_nanoaod_files["dy"])]}}))
    argv = ["run", str(tmp_path / "fs.json"), "--out", str(tmp_path / "o"), "--executor", "iterative"]
    assert main([*argv, "--corrections", str(path), "--muon-iso-sf", "NUM_LooseRelIso_DEN_LooseID"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"cms-anomaly run: error: {path}: no correction 'NUM_LooseRelIso_DEN_LooseID' (for muon_iso); "
        "the file has ['muon_id_test']"
    ]


DISC = [0.0, 0.05, 0.3, 1.0]
#: b-tag shape factors per (flavour, discriminant bin); up_hf / down_hf exist for b and light jets only,
#: up_cferr1 / down_cferr1 for c jets only, as in BTV's files
BTAG = {
    "central": {0: [0.97, 1.05, 1.20], 4: [1.01, 0.96, 0.90], 5: [0.92, 1.03, 1.08]},
    "up_hf": {0: [0.99, 1.08, 1.30], 5: [0.95, 1.06, 1.15]},
    "down_hf": {0: [0.95, 1.02, 1.10], 5: [0.89, 1.00, 1.01]},
    "up_cferr1": {4: [1.11, 1.06, 1.00]},
    "down_cferr1": {4: [0.91, 0.86, 0.80]},
}


def _write_btag_json(path):
    import correctionlib.schemav2 as cs

    def by_flavour(table):
        return cs.Category(
            nodetype="category",
            input="flavor",
            content=[
                cs.CategoryItem(
                    key=f,
                    value=cs.Binning(nodetype="binning", input="discriminant", edges=DISC, content=v, flow="clamp"),
                )
                for f, v in table.items()
            ],
        )

    real = {"abseta": "real", "pt": "real", "discriminant": "real"}
    inputs = [
        cs.Variable(name="systematic", type="string"),
        cs.Variable(name="flavor", type="int"),
        *(cs.Variable(name=n, type=t) for n, t in real.items()),
    ]
    correction = cs.Correction(
        name="deepJet_shape_test",
        version=1,
        inputs=inputs,
        output=cs.Variable(name="weight", type="real"),
        data=cs.Category(
            nodetype="category",
            input="systematic",
            content=[cs.CategoryItem(key=k, value=by_flavour(v)) for k, v in BTAG.items()],
        ),
    )
    cset = cs.CorrectionSet(schema_version=2, description="test b-tag shape SFs", corrections=[correction])
    path.write_text(cset.model_dump_json(exclude_unset=True))
    return path


def test_btag_shape_scale_factors(real_nanoaod_files, tmp_path):
    """Per event the product over the analysis jets of SF(flavour, discriminant); an uncertainty varies
    only the flavours it belongs to (``hf``: b and light, ``cferr1``: c)."""
    from cms_anomaly.processors import schema
    from cms_anomaly.processors.objects import build_objects
    from coffea.nanoevents import NanoEventsFactory

    path = _write_btag_json(tmp_path / "btag.json")
    corrections = CorrectionConfig(file=str(path), btag_sf="deepJet_shape_test", btag_sf_variations="hf,cferr1")
    config = dataclasses.replace(AnalysisConfig(), corrections=corrections)
    proc = AnomalyProcessor(selection="inclusive", config=config, features_dir=tmp_path / "features")
    fileset = {"dy": {"files": {str(real_nanoaod_files["dy"]): "Events"}, "metadata": {}}}
    with runner.make_executor("iterative") as ex:
        out = runner.run_processor(fileset, proc, executor=ex)["dy"]

    # the analysis jets (the object tests check their selection); their factors looked up here
    events = NanoEventsFactory.from_root(
        {str(real_nanoaod_files["dy"]): "Events"}, schemaclass=schema.AnalysisNanoAODSchema, mode="eager"
    ).events()
    jets = build_objects(events, config=config.objects, jet_flavour=True).jets
    flavour, disc = ak.flatten(jets.flavour), ak.flatten(jets.btag)
    with uproot.open(real_nanoaod_files["dy"]) as f:
        file_flavours = set(np.unique(ak.flatten(f["Events"]["Jet_hadronFlavour"].array())).tolist())
    # the DY file's jets are light and c jets: hf varies the light ones, cferr1 the c ones
    assert set(np.unique(flavour).tolist()) == file_flavours == {0, 4}
    k = np.clip(np.digitize(ak.to_numpy(disc), DISC) - 1, 0, len(DISC) - 2)
    f = ak.to_numpy(flavour)

    def product(systematic, applies):
        table = {
            fl: BTAG[systematic].get(fl, BTAG["central"][fl]) if applies(fl) else BTAG["central"][fl]
            for fl in (0, 4, 5)
        }
        sf = np.array([table[fl][b] for fl, b in zip(f, k, strict=True)])
        return ak.to_numpy(ak.prod(ak.unflatten(sf, ak.num(jets.flavour)), axis=1))

    genw = ak.to_numpy(events.genWeight).astype(np.float64)
    nominal_w = genw * product("central", lambda fl: False)
    table = read_feature_tables(tmp_path / "features" / "dy", columns=["event", "weight"], as_numpy=True)
    by_event = dict(zip(ak.to_numpy(events.event).tolist(), nominal_w, strict=True))
    np.testing.assert_allclose(table["weight"], [by_event[e] for e in table["event"]], rtol=1e-12)
    h = out["hists"]["ht"]
    expected = {
        "nominal": nominal_w.sum(),
        "btag_hfUp": (genw * product("up_hf", lambda fl: fl != 4)).sum(),
        "btag_hfDown": (genw * product("down_hf", lambda fl: fl != 4)).sum(),
        "btag_cferr1Up": (genw * product("up_cferr1", lambda fl: fl == 4)).sum(),
        "btag_cferr1Down": (genw * product("down_cferr1", lambda fl: fl == 4)).sum(),
    }
    assert list(h.axes["systematic"]) == list(expected)
    for syst, total in expected.items():
        assert variation(h, syst)[{"dataset": "dy"}].sum(flow=True).value == pytest.approx(total, rel=1e-12), syst
    assert len({round(v, 3) for v in expected.values()}) == 5  # every variation moves the sum
    # coffea's graph mode reads the jets' flavour too (the projection asks for it) and gives the same
    graph = runner.run_graph(fileset, AnomalyProcessor(selection="inclusive", config=config), step_size=1000)
    g = graph["dy"]["hists"]["ht"]
    assert list(g.axes["systematic"]) == list(expected)
    np.testing.assert_allclose(g.values(flow=True), h.values(flow=True), rtol=1e-12)
