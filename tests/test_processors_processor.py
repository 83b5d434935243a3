"""The processor on real CMS NanoAOD and generated files: cut-flows, executors, scorers, outputs."""

from __future__ import annotations

import json
import os
import warnings

import awkward as ak
import numpy as np
import pytest
import uproot
from cms_anomaly.core import workers
from cms_anomaly.processors import runner, selections
from cms_anomaly.processors.config import AnalysisConfig
from cms_anomaly.processors.feature_io import read_feature_tables
from cms_anomaly.processors.feature_spec import HISTOGRAMMED, HLF21, SCALAR_FEATURES
from cms_anomaly.processors.features import scalar_features
from cms_anomaly.processors.histograms import nominal
from cms_anomaly.processors.objects import build_objects
from cms_anomaly.processors.processor import AnomalyProcessor

GENERATED = ("wjets", "ttbar", "zprime_xy")


@pytest.fixture(scope="module")
def fileset(real_nanoaod_files, generated_cocktail) -> dict:
    """The four real NanoAOD files (dimuon as real data) and three generated datasets."""
    fs = {
        name: {"files": {str(path): "Events"}, "metadata": {"is_data": name == "dimuon"}}
        for name, path in real_nanoaod_files.items()
    }
    generated = runner.load_fileset(generated_cocktail / "fileset.json")
    fs.update({name: generated[name] for name in GENERATED})
    return fs


def _entries(fs: dict) -> dict[str, int]:
    out = {}
    for name, entry in fs.items():
        out[name] = sum(uproot.open(f)[t].num_entries for f, t in entry["files"].items())
    return out


@pytest.fixture(scope="module")
def iterative_output(fileset):
    proc = AnomalyProcessor(selection="single_lepton", lumi_pb=1000.0)
    with runner.make_executor("iterative") as ex:
        return runner.run_processor(fileset, proc, executor=ex, chunksize=150)


def test_every_file_is_read_completely(fileset, iterative_output):
    entries = _entries(fileset)
    assert set(iterative_output) == set(fileset)
    for name, res in iterative_output.items():
        assert res["nevents"] == entries[name]
        assert res["cutflow"]["events"]["all"] == entries[name]


def test_cutflow_adds_up_exactly(iterative_output):
    for name, res in iterative_output.items():
        flow = res["cutflow"]
        counts = list(flow["events"].values())
        assert counts == sorted(counts, reverse=True), name
        # every event fails at exactly one cut or passes all: nothing lost or double-counted
        assert sum(flow["first_failed"].values()) == flow["events"]["all"], name
        assert flow["first_failed"]["passed"] == flow["events"]["lepton_iso"], name
        # the histograms hold exactly the selected events
        assert nominal(res["hists"]["pt_lep"])[{"dataset": name}].values(flow=True).sum() == pytest.approx(
            flow["sumw"]["lepton_iso"], rel=1e-9
        )
        assert res["hists"]["cutflow"][{"dataset": name}].values()[0] == pytest.approx(flow["sumw"]["all"], rel=1e-9)


def test_data_unweighted_and_mc_normalised(fileset, iterative_output):
    dimuon = iterative_output["dimuon"]["cutflow"]
    assert dimuon["sumw"]["all"] == dimuon["events"]["all"]  # is_data: weight 1
    meta = fileset["wjets"]["metadata"]
    wj = iterative_output["wjets"]["cutflow"]
    # generated wjets: all genWeight = 1 -> sum of weights = xsec * lumi * N / sumw
    assert wj["sumw"]["all"] == pytest.approx(meta["xsec_pb"] * 1000.0 * wj["events"]["all"] / meta["sumw"], rel=1e-9)


@pytest.fixture(scope="module")
def built_objects(fileset):
    """(objects, scalar features) of every file of the fileset, built once."""
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    NanoAODSchema.warn_missing_crossrefs = False
    config = AnalysisConfig()
    out = []
    for entry in fileset.values():
        for path in entry["files"]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                events = NanoEventsFactory.from_root(
                    {path: "Events"}, schemaclass=NanoAODSchema, mode="virtual"
                ).events()
                objs = build_objects(events, config=config.objects, source=path)
            out.append((objs, scalar_features(objs, config=config)))
    return out


@pytest.mark.parametrize(
    "name", ["inclusive", "single_lepton", "single_lepton_slt", "top_rediscovery", "rmm_lepton", "dijet"]
)
def test_selections_on_real_and_generated_events(name, built_objects):
    config = AnalysisConfig()
    sel = selections.get_selection(name)
    total_passed = 0
    for objs, feats in built_objects:
        n = len(objs)
        packed = selections.evaluate(sel, objs, feats, config=config.selections)
        mask = selections.passing(packed, sel, n)
        flow = selections.cutflow(packed, sel, weights=np.ones(n))
        assert sum(flow["first_failed"].values()) == n
        assert (
            flow["first_failed"]["passed"] == mask.sum() == flow["events"].get(sel.cut_names[-1] if sel.cuts else "all")
        )
        total_passed += int(mask.sum())
        if name == "top_rediscovery" and mask.any():
            assert np.all(feats["n_jets"][mask] >= 2)
            assert np.all(
                ak.to_numpy(
                    ak.any((objs.muons.pt > 23) & (objs.muons.iso < 0.1) & (abs(objs.muons.eta) < 1.4), axis=1)
                )[mask]
            )
        if name == "dijet" and mask.any():
            assert np.all(feats["mJJ"][mask] > 0)
    assert total_passed > 0  # each selection keeps some events of this fileset (zprime_xy for dijet)


def _profiler_on() -> bool:
    import dask

    return bool(dask.config.get("distributed.worker.profile.enabled"))


@pytest.mark.dask_client
def test_iterative_and_dask_executors_agree(fileset, iterative_output):
    proc = AnomalyProcessor(selection="single_lepton", lumi_pb=1000.0)
    with runner.make_executor("dask", workers=2) as ex:
        dask_output = runner.run_processor(fileset, proc, executor=ex, chunksize=150)
        malloc = ex.client.run(lambda: {k: os.environ.get(k) for k in workers.WORKER_MALLOC_ENV})
        profiling = ex.client.run(_profiler_on)
    # the local cluster's workers run with the heap-reusing malloc settings (see workers.WORKER_MALLOC_ENV)
    # and without the statistical profiler (workers.WORKER_PROFILE_CONFIG)
    assert list(malloc.values()) == [{k: str(v) for k, v in workers.WORKER_MALLOC_ENV.items()}] * 2
    assert list(profiling.values()) == [False, False]
    assert set(dask_output) == set(iterative_output)
    for name, res in iterative_output.items():
        other = dask_output[name]
        assert other["cutflow"]["events"] == res["cutflow"]["events"]
        assert other["cutflow"]["first_failed"] == res["cutflow"]["first_failed"]
        for hname, h in res["hists"].items():
            np.testing.assert_allclose(
                other["hists"][hname].values(flow=True), h.values(flow=True), rtol=1e-12, err_msg=f"{name}/{hname}"
            )
            np.testing.assert_allclose(other["hists"][hname].variances(flow=True), h.variances(flow=True), rtol=1e-12)


def _assert_same_output(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for name, res in a.items():
        other = b[name]
        assert other["nevents"] == res["nevents"]
        assert other["cutflow"]["events"] == res["cutflow"]["events"], name
        assert other["cutflow"]["first_failed"] == res["cutflow"]["first_failed"], name
        assert set(other["hists"]) == set(res["hists"])
        for hname, h in res["hists"].items():
            np.testing.assert_array_equal(
                other["hists"][hname].values(flow=True), h.values(flow=True), err_msg=f"{name}/{hname}"
            )
            np.testing.assert_allclose(other["hists"][hname].variances(flow=True), h.variances(flow=True), rtol=1e-12)


def test_rmm_matrices_are_kept_only_for_a_consumer_and_change_no_histogram(fileset, iterative_output, tmp_path):
    """Without a consumer of the (N, 51, 51) matrices (the module fixture's run) the processor reads their
    leading masses and occupancy off one scratch matrix per event; with the feature tables, which store
    them, it builds them all. Every histogram is the same, ``rmm_occupancy`` and the masses bit for bit."""
    from cms_anomaly.processors.feature_spec import HISTOGRAMMED
    from cms_anomaly.processors.rmm import M_LEAD_NAMES

    later = AnomalyProcessor(selection="single_lepton")
    assert not later._keep_rmm
    later.features_dir = str(tmp_path / "set-later")  # decided per chunk, not at construction
    assert later._keep_rmm
    proc = AnomalyProcessor(selection="single_lepton", lumi_pb=1000.0, features_dir=tmp_path / "features")
    assert proc._keep_rmm
    with runner.make_executor("iterative") as ex:
        kept = runner.run_processor(fileset, proc, executor=ex, chunksize=150)
    _assert_same_output(iterative_output, kept)
    exact = ["rmm_occupancy", *(m for m in M_LEAD_NAMES if m in HISTOGRAMMED)]
    assert len(exact) > 1
    for name, res in kept.items():
        for hname in exact:
            a, b = res["hists"][hname], iterative_output[name]["hists"][hname]
            np.testing.assert_array_equal(a.variances(flow=True), b.variances(flow=True), err_msg=f"{name}/{hname}")
    assert kept["ttbar"]["hists"]["rmm_occupancy"].sum().value > 0


def test_runner_and_dask_awkward_graph_mode_agree(fileset, iterative_output, tmp_path):
    """The same processor through processor.Runner and through dataset_tools.apply_to_fileset + dask.compute
    (dask-awkward NanoEvents), with a coffea.ml_tools scorer and an EventSplit in both: identical histograms
    (the graph mode reads the event identity too, so the split axis is the same)."""
    from cms_anomaly.processors.folds import EventSplit

    scorer, _ = _scorer(tmp_path, 2)
    proc = AnomalyProcessor(
        selection="single_lepton", lumi_pb=1000.0, scorers={scorer.name: scorer}, split=EventSplit(0.5, seed=3)
    )
    with runner.make_executor("iterative") as ex:
        runner_output = runner.run_processor(fileset, proc, executor=ex, chunksize=150)
    graph_output = runner.run_graph(fileset, proc, step_size=150)
    _assert_same_output(runner_output, graph_output)
    assert graph_output["ttbar"]["hists"]["score2d_linear2"].sum().value > 0
    split_axis = graph_output["ttbar"]["hists"]["score_linear2_r1_vs_counts"].axes["split"]
    assert set(split_axis) == {"training", "validation"}
    # the scorer does not change what the processor fills without it (the module fixture's run)
    for name, res in iterative_output.items():
        for hname, h in res["hists"].items():
            np.testing.assert_array_equal(graph_output[name]["hists"][hname].values(flow=True), h.values(flow=True))


@pytest.mark.slow
def test_runner_and_dask_awkward_graph_mode_agree_on_event_classes(tmp_path, real_nanoaod_files):
    """The ``event_classes`` selection (class trigger per kind, HLT of 2016 on the DY file; class histograms with
    a growing event_class axis, per-class scores, raw counts) through processor.Runner and through
    apply_to_fileset: identical histograms and counts."""
    scorer, _ = _scorer(tmp_path, 1)
    fs = {
        name: {
            "files": {str(path): "Events"},
            "metadata": {"is_data": False} | ({"era": "2016"} if name == "dy" else {}),
        }
        for name, path in real_nanoaod_files.items()
    }
    proc = AnomalyProcessor(selection="event_classes", lumi_pb=1000.0, scorers={scorer.name: scorer})
    with runner.make_executor("iterative") as ex:
        runner_output = runner.run_processor(fs, proc, executor=ex, chunksize=100)
    graph_output = runner.run_graph(fs, proc, step_size=100)
    _assert_same_output(runner_output, graph_output)
    for name, res in runner_output.items():
        assert graph_output[name]["class_counts"] == res["class_counts"], name
        h = res["hists"]["class_st"]
        assert set(h.axes["event_class"]) == set(res["class_counts"])
        for c, n in res["class_counts"].items():  # one entry per member event, inside the axis range
            assert h[{"dataset": name, "event_class": c}].sum(flow=True).value == pytest.approx(
                res["hists"]["class_met"][{"dataset": name, "event_class": c}].sum(flow=True).value
            )
            assert n > 0
    dy = runner_output["dy"]
    assert dy["cutflow"]["events"]["trigger_object"] == sum(n for c, n in dy["class_counts"].items() if "+" not in c)
    assert dy["hists"]["class_score_linear1_score"].sum(flow=True).value > 0


def _scorer(tmp_path, n_out: int, module=None):
    """A real TorchScript model (linear, or ``module``) wrapped with coffea.ml_tools.torch_wrapper."""
    import torch
    from coffea.ml_tools.torch_wrapper import torch_wrapper

    names = ["pt_lep", "met", "n_jets"]
    lin = torch.nn.Linear(len(names), n_out) if module is None else module
    if module is None:
        with torch.no_grad():
            lin.weight.copy_(torch.arange(1, 1 + n_out * len(names), dtype=torch.float32).reshape(n_out, -1) * 0.01)
            lin.bias.fill_(1.0)
    path = tmp_path / f"linear{n_out}.pt"
    torch.jit.script(lin).save(str(path))

    class LinearScorer(torch_wrapper):
        name = f"linear{n_out}"
        feature_names = names
        output_names = ["r1", "r2"][:n_out] if n_out == 2 else ["score"]

        def prepare_awkward(self, features):
            cols = [ak.to_numpy(features[n]).astype(np.float32)[:, None] for n in names]
            return (np.concatenate(cols, axis=1) if len(features) else np.zeros((0, len(names)), np.float32),), {}

        def validate_numpy_input(self, x):
            if x.ndim != 2 or x.shape[1] != len(names) or x.dtype != np.float32:
                raise ValueError(f"expected (N, {len(names)}) float32, got {x.shape} {x.dtype}")

    return LinearScorer(str(path)), lin


def _linear_inputs(path):
    """(events, the (pt_lep, met, n_jets) inputs of the linear scorers, the single_lepton + pT > 23 mask)
    of a real NanoAOD file, computed here without the processor."""
    from cms_anomaly.processors.features import compute_features

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

        ev = NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema, mode="eager").events()
    feats = compute_features(ev, config=AnalysisConfig())
    x = np.stack([ak.to_numpy(feats[n]).astype(np.float32) for n in ("pt_lep", "met", "n_jets")], axis=1)
    return ev, x, ak.to_numpy(feats["has_lepton"]) & (x[:, 0] > 23)


def test_scorer_slot_fills_score_histograms(tmp_path, real_nanoaod_files):
    s1, lin1 = _scorer(tmp_path, 1)
    s2, _ = _scorer(tmp_path, 2)
    fs = {"dy": {"files": {str(real_nanoaod_files["dy"]): "Events"}, "metadata": {"is_data": True}}}
    proc = AnomalyProcessor(selection="single_lepton", scorers={s1.name: s1, s2.name: s2})
    with runner.make_executor("iterative") as ex:
        out = runner.run_processor(fs, proc, executor=ex)["dy"]
    n_sel = out["cutflow"]["events"]["lepton_iso"]
    assert n_sel > 0
    assert out["hists"]["score_linear1_score"][{"dataset": "dy"}].values(flow=True).sum() == n_sel
    h2 = out["hists"]["score2d_linear2"][{"dataset": "dy"}]
    assert h2.values(flow=True).sum() == n_sel
    # the filled bin of the 1-output model agrees with the model evaluated here
    import torch

    _, x, sel = _linear_inputs(real_nanoaod_files["dy"])
    with torch.no_grad():
        expected = lin1(torch.from_numpy(x[sel])).numpy()[:, 0]
    h1 = out["hists"]["score_linear1_score"][{"dataset": "dy"}]
    ref = h1.copy().reset()
    ref.fill(expected)
    np.testing.assert_array_equal(h1.values(flow=True), ref.values(flow=True))


def test_each_scorer_gets_its_own_training_split(tmp_path, real_nanoaod_files):
    """Models trained with different seeds: a split per scorer name; the 2-D plane has the split axis too."""
    import uproot
    from cms_anomaly.processors.folds import EventSplit

    s1, _ = _scorer(tmp_path, 1)
    s2, _ = _scorer(tmp_path, 2)
    splits = {s1.name: EventSplit(0.5, seed=3), s2.name: EventSplit(0.3, seed=8)}
    fs = {"dy": {"files": {str(real_nanoaod_files["dy"]): "Events"}, "metadata": {"is_data": True}}}
    proc = AnomalyProcessor(selection="single_lepton", scorers={s1.name: s1, s2.name: s2}, split=splits)
    with runner.make_executor("iterative") as ex:
        out = runner.run_processor(fs, proc, executor=ex)["dy"]
    # the selected events' identity, and each split's validation count computed here
    _, _, sel = _linear_inputs(real_nanoaod_files["dy"])
    with uproot.open(real_nanoaod_files["dy"]) as f:
        ids = f["Events"].arrays(["run", "event"], library="np")
    run, event = ids["run"][sel], ids["event"][sel]
    for scorer, hist_name in ((s1, "score_linear1_score_vs_counts"), (s2, "score2d_linear2")):
        expected = int((splits[scorer.name].labels(run, event) == "validation").sum())
        h = out["hists"][hist_name][{"dataset": "dy", "split": "validation"}]
        assert h.values(flow=True).sum() == expected
    assert 0 < expected < len(run)
    # a mapping that leaves a scorer out gives it the split "all"
    proc = AnomalyProcessor(selection="single_lepton", scorers={s1.name: s1}, split={"other": splits[s1.name]})
    with runner.make_executor("iterative") as ex:
        out = runner.run_processor(fs, proc, executor=ex)["dy"]
    assert list(out["hists"]["score_linear1_score_vs_counts"].axes["split"]) == ["all"]


@pytest.mark.parametrize(
    ("object_iso", "selection_iso", "n_expected"),
    [(0.45, 0.45, 17), (0.05, 0.45, 14), (0.45, 0.05, 14), (0.01, 0.01, 12)],
)
def test_single_lepton_cutflow_counts_the_leptons_of_the_raw_branches(
    real_nanoaod_files, object_iso, selection_iso, n_expected
):
    """On the real DY NanoAOD file: events with a loose-ID muon (``Muon_looseId``) or an MVA-loose electron
    (``Electron_mvaFall17V2noIso_WPL``) of pT > 23 GeV and ``pfRelIso03_all`` below the isolation cut,
    counted here from the raw branches with uproot, are the events the processor's cut-flow passes. At
    the default 0.45 every such lepton is isolated (17 of 40); tightening the object or the selection
    isolation to 0.05 removes three events whose only lepton is an electron of Iso 0.060-0.079 (14 left),
    to 0.01 two more of Iso 0.011 and 0.017 (12 left)."""
    import dataclasses

    path = real_nanoaod_files["dy"]
    names = ["Muon_pt", "Muon_looseId", "Muon_pfRelIso03_all"]
    names += ["Electron_pt", "Electron_mvaFall17V2noIso_WPL", "Electron_pfRelIso03_all"]
    a = uproot.open(path)["Events"].arrays(names)
    iso_max = min(object_iso, selection_iso)
    mu = (a.Muon_pt > 23) & a.Muon_looseId & (a.Muon_pfRelIso03_all < iso_max)
    ele = (a.Electron_pt > 23) & a.Electron_mvaFall17V2noIso_WPL & (a.Electron_pfRelIso03_all < iso_max)
    expected = int(ak.sum(ak.any(mu, axis=1) | ak.any(ele, axis=1)))
    assert expected == n_expected
    base = AnalysisConfig()
    config = dataclasses.replace(
        base,
        objects=dataclasses.replace(base.objects, lepton_iso_max=object_iso),
        selections=dataclasses.replace(base.selections, single_lepton_iso_max=selection_iso),
    )
    fs = {"dy": {"files": {str(path): "Events"}, "metadata": {"is_data": True}}}
    with runner.make_executor("iterative") as ex:
        out = runner.run_processor(fs, AnomalyProcessor(selection="single_lepton", config=config), executor=ex)["dy"]
    assert out["cutflow"]["events"]["lepton_iso"] == expected
    assert 0 < expected < out["cutflow"]["events"]["all"]


def test_cli_run_writes_histograms_and_feature_tables(tmp_path, real_nanoaod_files, capsys):
    from cms_anomaly.cli import main

    fs_path = tmp_path / "fileset.json"
    fs_path.write_text(
        json.dumps(
            {
                "dy": {
                    "files": {str(real_nanoaod_files["dy"]): "Events"},
                    "metadata": {"xsec_pb": 6000.0, "sumw": 40.0},
                },
                "ttbar2015": {
                    "files": [str(real_nanoaod_files["ttbar2015"])],
                    "metadata": {"xsec_pb": 830.0, "sumw": 200.0},
                },
            }
        )
    )
    out = tmp_path / "out"
    rc = main(
        [
            "run",
            str(fs_path),
            "--selection",
            "single_lepton",
            "--out",
            str(out),
            "--executor",
            "iterative",
            "--features",
            "--lumi",
            "10",
            "--chunksize",
            "100",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "dy" in printed
    assert "lepton_iso" in printed
    from coffea.util import load

    saved = load(str(out / "histograms.coffea"))
    with uproot.open(out / "histograms.root") as f:
        np.testing.assert_allclose(f["dy/mt"].values(), nominal(saved["dy"]["hists"]["mt"])[{"dataset": "dy"}].values())
        np.testing.assert_allclose(
            f["ttbar2015/cutflow"].values(), saved["ttbar2015"]["hists"]["cutflow"][{"dataset": "ttbar2015"}].values()
        )
    tables = read_feature_tables(out / "features", as_numpy=True)
    n_sel = sum(saved[d]["cutflow"]["events"]["lepton_iso"] for d in saved)
    assert len(tables["weight"]) == n_sel
    assert tables["objects"].shape == (n_sel, 19, 3)
    assert tables["rmm"].shape == (n_sel, 51, 51)
    assert set(HLF21) <= set(tables)
    assert set(SCALAR_FEATURES) <= set(tables)
    files = sorted((out / "features" / "ttbar2015").glob("*.parquet"))
    assert [f.name.split("__")[-1] for f in files] == ["0-100.parquet", "100-200.parquet"]
    # named after the input file (then 8 digits of its UUID): the read order does not change when a
    # production is regenerated (new UUIDs) or moved
    stem = real_nanoaod_files["ttbar2015"].stem
    assert all(f.name.startswith(f"ttbar2015__{stem}-") for f in files), [f.name for f in files]
    assert not list((out / "features").rglob("*.tmp-*"))
    df = read_feature_tables(out / "features" / "dy", columns=["pt_lep", "weight", "dataset"])
    assert (df["dataset"] == "dy").all()
    assert (df["pt_lep"] > 23).all()


def test_mc_weights_are_signed_generator_weights_in_tables_cutflow_and_histograms(tmp_path, real_nanoaod_files):
    """Simulation with signed generator weights (DY, ttbar 2015): each selected event's weight is its
    ``genWeight`` x xsec x lumi / sumw, and every feature histogram holds the sum of those weights."""
    lumi, xsec = 10.0, {"dy": 6000.0, "ttbar2015": 830.0}
    gen = {d: uproot.open(real_nanoaod_files[d])["Events"].arrays(["event", "genWeight"], library="np") for d in xsec}
    sumw = {d: float(np.abs(g["genWeight"]).sum()) for d, g in gen.items()}
    fs = {
        d: {"files": {str(real_nanoaod_files[d]): "Events"}, "metadata": {"xsec_pb": xsec[d], "sumw": sumw[d]}}
        for d in xsec
    }
    proc = AnomalyProcessor(selection="single_lepton", lumi_pb=lumi, features_dir=tmp_path / "features")
    with runner.make_executor("iterative") as ex:
        out = runner.run_processor(fs, proc, executor=ex, chunksize=100)
    for d, g in gen.items():
        norm = xsec[d] * lumi / sumw[d]
        flow = out[d]["cutflow"]
        assert flow["sumw"]["all"] == pytest.approx(g["genWeight"].sum() * norm, rel=1e-9)
        table = read_feature_tables(tmp_path / "features" / d, columns=["event", "weight"], as_numpy=True)
        by_event = dict(zip(g["event"].tolist(), g["genWeight"].tolist(), strict=True))
        expected = np.array([by_event[e] for e in table["event"].tolist()]) * norm
        assert len(expected) == flow["events"]["lepton_iso"] > 0
        assert np.unique(np.sign(expected)).tolist() == [-1.0, 1.0], d  # both signs selected: a count is not a sum
        np.testing.assert_allclose(table["weight"], expected, rtol=1e-6)
        assert flow["sumw"]["lepton_iso"] == pytest.approx(expected.sum(), rel=1e-6)
        for name in HISTOGRAMMED:
            filled = nominal(out[d]["hists"][name])[{"dataset": d}].values(flow=True).sum()
            assert filled == pytest.approx(expected.sum(), rel=1e-6), (d, name)


def test_empty_chunk_runs_through_the_same_path(real_nanoaod_files):
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        events = NanoEventsFactory.from_root(
            {str(real_nanoaod_files["pfnano"]): "Events"},
            schemaclass=NanoAODSchema,
            mode="virtual",
            entry_start=0,
            entry_stop=0,
            metadata={"dataset": "empty"},
        ).events()
    out = AnomalyProcessor(selection="dijet").process(events)["empty"]
    assert out["nevents"] == 0
    assert out["cutflow"]["events"] == {"all": 0, "fatjet_pt": 0, "two_fatjets": 0}
    assert out["hists"]["mJJ"].values(flow=True).sum() == 0


def test_event_processes_from_labels_data_and_simulation(tmp_path):
    """The process axis: pseudo-data events get their hidden label (unknown if absent), data 'data',
    simulation its metadata process."""
    import pandas as pd
    from cms_anomaly.processors.processor import event_processes

    path = tmp_path / "labels.parquet"
    pd.DataFrame({"event": np.array([3, 1, 2], np.uint64), "process": ["ttbar", "wjets", "zjets"]}).to_parquet(path)
    got = event_processes({"labels": str(path)}, np.array([1, 2, 5, 3]))
    assert got.tolist() == ["wjets", "zjets", "unknown", "ttbar"]
    assert event_processes({"is_data": True}, np.arange(2)).tolist() == ["data", "data"]
    assert event_processes({"process": "ttbar", "dataset": "tt"}, np.arange(1)).tolist() == ["ttbar"]


def test_kfold_scorer_scores_each_fold_with_its_model_and_lists_the_top_events(tmp_path, real_nanoaod_files):
    """Through the processor on real NanoAOD: fold i is scored by model i, calibrated by its own
    training scores; the rarity histogram and the top-event list equal a direct evaluation."""
    import torch
    from cms_anomaly.models.scorers import RARITY_BINNING, KFoldScorer, rarity
    from cms_anomaly.processors.folds import KFold

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, lin_a = _scorer(tmp_path / "a", 1)
    b, lin_b = _scorer(tmp_path / "b", 1)
    with torch.no_grad():  # a different second model (the saved file is re-written)
        lin_b.weight.mul_(-3.0)
        torch.jit.script(lin_b).save(b.torch_jit)
    cals = [np.linspace(0.0, 10.0, 101), np.linspace(-60.0, 0.0, 61)]
    folds = KFold(2, seed=5)
    scorer = KFoldScorer([a, b], cals, folds)
    fs = {"dy": {"files": {str(real_nanoaod_files["dy"]): "Events"}, "metadata": {"is_data": True}}}
    proc = AnomalyProcessor(selection="single_lepton", scorers={"kfold": scorer}, score_features=("ht",), top_events=5)
    with runner.make_executor("iterative") as ex:
        out = runner.run_processor(fs, proc, executor=ex, chunksize=20)["dy"]

    ev, x, sel = _linear_inputs(real_nanoaod_files["dy"])
    fold = folds.fold(ak.to_numpy(ev.run)[sel], ak.to_numpy(ev.event)[sel])
    assert set(fold.tolist()) == {0, 1}
    with torch.no_grad():
        raw = [m(torch.from_numpy(x[sel])).numpy()[:, 0] for m in (lin_a, lin_b)]
    expected = np.where(fold == 0, rarity(raw[0], cals[0]), rarity(raw[1], cals[1]))

    h = out["hists"]["score_kfold_rarity"][{"dataset": "dy"}]
    assert (len(h.axes[0]), h.axes[0].edges[0], h.axes[0].edges[-1]) == RARITY_BINNING
    ref = h.copy().reset()
    ref.fill(expected)
    np.testing.assert_array_equal(h.values(flow=True), ref.values(flow=True))
    top = out["top_events"]["kfold"]
    order = np.lexsort((ak.to_numpy(ev.event)[sel], -expected))[:5]
    assert top.columns["event"].tolist() == ak.to_numpy(ev.event)[sel][order].tolist()
    np.testing.assert_allclose(top.columns["score"], expected[order])
    assert top.columns["fold"].tolist() == fold[order].tolist()
    np.testing.assert_allclose(top.columns["pt_lep"], x[sel][order, 0], rtol=1e-6)
    # the dask-awkward graph mode gives the same histograms and the same event list
    graph = runner.run_graph(fs, proc, step_size=20)
    _assert_same_output({"dy": out}, graph)
    for column, values in top.columns.items():
        np.testing.assert_array_equal(graph["dy"]["top_events"]["kfold"].columns[column], values, err_msg=column)
    with pytest.raises(ValueError, match="folds"):
        scorer(ak.Array([{"pt_lep": 1.0, "met": 1.0, "n_jets": 1}]))


def test_non_finite_scores_are_left_out_of_the_histograms_with_a_warning(tmp_path, real_nanoaod_files, caplog):
    """A model giving NaN (log of a negative number) for some events: those events would otherwise sit in the
    overflow bin, the most anomalous; they are left out of the histograms, last in the event list, and said."""
    import logging

    import torch

    class LogPt(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.log(x[:, :1] - 40.0)  # NaN below pT = 40 GeV, -inf at 40

    scorer, _model = _scorer(tmp_path, 1, module=LogPt())
    fs = {"dy": {"files": {str(real_nanoaod_files["dy"]): "Events"}, "metadata": {"is_data": True}}}
    proc = AnomalyProcessor(selection="single_lepton", scorers={"log": scorer}, score_features=("ht",), top_events=50)
    with (
        caplog.at_level(logging.WARNING, logger="cms_anomaly.processors.processor"),
        runner.make_executor("iterative") as ex,
    ):
        out = runner.run_processor(fs, proc, executor=ex)["dy"]
    _, x, sel = _linear_inputs(real_nanoaod_files["dy"])
    finite = int((x[sel, 0] > 40.0).sum())
    assert 0 < finite < int(sel.sum())  # some of each
    for name in ("score_log_score", "score_log_score_vs_ht", "score_log_score_vs_counts"):
        assert out["hists"][name].values(flow=True).sum() == finite, name
    assert out["hists"]["score_log_score"].values(flow=True)[0, -1] == 0  # nothing in the overflow
    assert any(
        "non-finite log score" in r.getMessage() and f"{int(sel.sum()) - finite} of {int(sel.sum())}" in r.getMessage()
        for r in caplog.records
    )
    listed = out["top_events"]["log"].columns["score"]
    assert np.all(np.isfinite(listed[:finite]))
    assert np.all(np.isnan(listed[finite:]))


def test_dijet_selection_counts_and_mjj_from_the_raw_branches(generated_cocktail):
    """The dijet branch on generated files equals a count made here from the raw ``FatJet_*`` branches
    with uproot and vector: tight ID (``FatJet_jetId`` bit value 2), pT > 150 GeV, |eta| < 2.5, not a
    photon or lepton, the leading one above 1.2 TeV, two of them, and m_JJ of the two leading filled bin for bin. For the
    Z' -> XY signal (m_Z' = 3.5 TeV) the m_JJ peak lies at 3-3.7 TeV."""
    import vector

    process = "zprime_xy"
    files = runner.load_fileset(generated_cocktail / "fileset.json")[process]["files"]
    names = ["FatJet_pt", "FatJet_eta", "FatJet_phi", "FatJet_mass", "FatJet_jetId"]
    others = ("Photon", "Electron", "Muon")
    names += [f"{o}_{v}" for o in others for v in ("pt", "eta", "phi")]
    a = ak.concatenate([uproot.open(f)[t].arrays(names) for f, t in files.items()])
    good = ((a.FatJet_jetId & 2) == 2) & (a.FatJet_pt > 150) & (abs(a.FatJet_eta) < 2.5)
    # the overlap removal: a fat jet within dR < 1.0 of a photon or lepton carrying more than half its pT is
    # that object (SelectionConfig.fatjet_overlap_dr / _pt_fraction; the objects' ID is not applied here:
    # such an object inside a 1.5 TeV jet passes it, as in the one event of this sample that has one)
    for o in others:
        pair = ak.cartesian(
            {
                "j": ak.zip({v: a[f"FatJet_{v}"] for v in ("pt", "eta", "phi")}),
                "o": ak.zip({v: a[f"{o}_{v}"] for v in ("pt", "eta", "phi")}),
            },
            nested=True,
        )
        dphi = (pair.j.phi - pair.o.phi + np.pi) % (2 * np.pi) - np.pi
        dr = np.hypot(pair.j.eta - pair.o.eta, dphi)
        good = good & ~ak.any((dr < 1.0) & (pair.o.pt > 0.5 * pair.j.pt), axis=-1)
    fat = a[[n for n in names if n.startswith("FatJet_")]][good]
    fat = fat[ak.argsort(fat.FatJet_pt, axis=1, ascending=False)]
    lead_pt = ak.fill_none(ak.firsts(fat.FatJet_pt), 0.0)
    n_pass_pt = int(ak.sum(lead_pt > 1200))
    two = fat[(lead_pt > 1200) & (ak.num(fat.FatJet_pt) >= 2)]
    j = [
        vector.array(
            {
                "pt": ak.to_numpy(two.FatJet_pt[:, i]),
                "eta": ak.to_numpy(two.FatJet_eta[:, i]),
                "phi": ak.to_numpy(two.FatJet_phi[:, i]),
                "mass": ak.to_numpy(two.FatJet_mass[:, i]),
            }
        )
        for i in (0, 1)
    ]
    mjj = (j[0] + j[1]).mass
    expected, _ = np.histogram(mjj, bins=70, range=(0, 7000))

    with runner.make_executor("iterative") as ex:
        out = runner.run_processor({process: {"files": files}}, AnomalyProcessor(selection="dijet"), executor=ex)[
            process
        ]
    flow = out["cutflow"]["events"]
    assert flow["fatjet_pt"] == n_pass_pt
    assert flow["two_fatjets"] == len(mjj)
    np.testing.assert_array_equal(nominal(out["hists"]["mJJ"])[{"dataset": process}].values(), expected)
    assert 0.4 * flow["all"] < len(mjj) <= n_pass_pt < flow["all"]
    assert 3000 < np.median(mjj) < 3700


def test_feature_tables_are_read_by_file_name_then_entry_number(tmp_path):
    """Numbers compare as numbers (entry 5000 before 10000) and the file's name decides before its UUID."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from cms_anomaly.processors.feature_io import table_files, write_table_manifest

    names = [
        "qcd__qcd_s1_0001-00aa0000__0-5000.parquet",
        "qcd__qcd_s1_0000-ffff0000__10000-15000.parquet",
        "qcd__qcd_s1_0000-ffff0000__5000-10000.parquet",
        "qcd__qcd_s1_0000-ffff0000__0-5000.parquet",
    ]
    (tmp_path / "qcd").mkdir()
    for name in names:
        pq.write_table(pa.table({"x": [1.0]}), tmp_path / "qcd" / name)
    write_table_manifest(tmp_path, [tmp_path / "qcd" / n for n in names])
    assert [f.name for f in table_files(tmp_path)] == [names[3], names[2], names[1], names[0]]
