"""Pseudo-data: luminosity-weighted, shuffled, generator information removed, labels kept apart."""

from __future__ import annotations

import json
import warnings

import awkward as ak
import numpy as np
import pandas as pd
import pytest
import uproot
from cms_anomaly.datasets import mixture
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory


def test_pseudo_data_mixture(generated_cocktail, tmp_path):
    fileset = json.loads((generated_cocktail / "fileset.json").read_text())
    processes = ["wjets", "zjets", "ttbar"]
    lumi_max = mixture.max_luminosity(fileset, processes)
    w = fileset["wjets"]["metadata"]
    assert lumi_max == pytest.approx(w["nevents"] / w["xsec_pb"])  # W+jets limits the luminosity
    entry = mixture.build_pseudo_data(fileset, processes=processes, out=tmp_path, seed=4, events_per_file=150)["data"]
    meta = entry["metadata"]
    assert meta["is_data"]
    assert meta["lumi_pb"] == pytest.approx(mixture.default_luminosity(fileset, processes))
    mu_w = w["xsec_pb"] * meta["lumi_pb"]
    assert mu_w + 3 * np.sqrt(mu_w) == pytest.approx(w["nevents"])
    labels = pd.read_parquet(meta["labels"])
    assert len(labels) == meta["nevents"]
    assert list(labels["event"]) == list(range(1, meta["nevents"] + 1))
    counts = labels["process"].value_counts()
    for p in processes:  # Poisson yields around sigma * L
        mu = fileset[p]["metadata"]["xsec_pb"] * meta["lumi_pb"]
        assert abs(counts.get(p, 0) - mu) < 5 * np.sqrt(mu) + 2
    assert counts["wjets"] > counts["zjets"]
    # shuffled: the W events are not all at the start
    first = labels["process"].iloc[: counts["wjets"]]
    assert (first != "wjets").any()
    assert len(entry["files"]) == -(-meta["nevents"] // 150)

    files = sorted(entry["files"])
    with uproot.open(files[0]) as f:
        names = f["Events"].keys()
    assert not [
        b for b in names if b.startswith("GenPart") or b.endswith(("genPartIdx", "hadronFlavour")) or b == "genWeight"
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        per_file = [
            NanoEventsFactory.from_root({p: "Events"}, schemaclass=NanoAODSchema, mode="eager").events() for p in files
        ]
    assert not [w for w in caught if "cross-reference target" in str(w.message)]
    assert sum(len(e) for e in per_file) == meta["nevents"]
    numbers = np.concatenate([ak.to_numpy(e.event) for e in per_file])
    assert (numbers == np.arange(1, meta["nevents"] + 1)).all()
    events = per_file[0]
    assert ak.sum(ak.num(events.Muon)) > 0
    assert ak.sum(ak.num(events.Jet)) > 0
    # the events are the first sigma*L events of each source, unchanged: same MET values
    met = np.sort(np.concatenate([ak.to_numpy(e.MET.pt) for e in per_file]))
    sources = []
    for p in processes:
        n = int(counts.get(p, 0))
        arrays = [uproot.open(f)["Events"]["MET_pt"].array(library="np") for f in sorted(fileset[p]["files"])]
        sources.append(np.concatenate(arrays)[:n])
    np.testing.assert_array_equal(met, np.sort(np.concatenate(sources)))

    # same seed, same data
    again = mixture.build_pseudo_data(
        fileset, processes=processes, out=tmp_path / "again", seed=4, events_per_file=150
    )["data"]
    assert pd.read_parquet(again["metadata"]["labels"])["process"].tolist() == labels["process"].tolist()


def test_too_little_mc_names_the_process(generated_cocktail, tmp_path):
    fileset = json.loads((generated_cocktail / "fileset.json").read_text())
    with pytest.raises(mixture.MixtureError, match=r"wjets: \d+ events needed"):
        mixture.build_pseudo_data(fileset, processes=["wjets", "ttbar"], out=tmp_path, seed=1, lumi_pb=10.0)
    with pytest.raises(mixture.MixtureError, match="not in the fileset"):
        mixture.max_luminosity(fileset, ["wjets", "singletop"])
