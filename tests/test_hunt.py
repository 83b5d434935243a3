"""``cms-anomaly hunt`` end to end with known answers, on a small production (slow: ~2.5 min on 2 cores).

Pseudo-data without a signal must give no significant excess and a background model that
describes the data; with the ``hplus_t`` card hidden in 5 % of the events, the hidden process must
dominate the most anomalous events, and the ranked features must name what tells it apart (derived
independently below, from the labelled events before any anomaly selection). The same files, given as
an unlabelled real-data fileset (with a truncated file) through the command line, run the unlabelled
path, ``--skip-bad-files`` and ``--strict``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cms_anomaly.analyses.analysis import Execution
from cms_anomaly.analyses.hunt import HuntConfig, run_hunt
from cms_anomaly.models.scorers import calibration_path

#: a fifth of the default productions: ~9 pb^-1, ~500 events after the top_rediscovery selection
SMALL = {"wjets": 8000, "zjets": 1000, "ttbar": 750}
SIGNAL, FRACTION = "hplus_t", 0.05


def _config(**changes) -> HuntConfig:
    return HuntConfig(
        events=SMALL, epochs=40, npe=2000, seed=7, execution=Execution(executor="futures", workers=2), **changes
    )


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hunt")


@pytest.fixture(scope="module")
def null(work):
    return run_hunt(work / "null", _config(), samples_dir=work / "samples")


@pytest.fixture(scope="module")
def injected(work, null):  # after the null run: the same SM productions, reused
    return run_hunt(work / "injected", _config(inject=SIGNAL, signal_fraction=FRACTION), samples_dir=work / "samples")


def test_without_a_signal_nothing_is_found(null):
    assert null.background_ok
    assert null.z_global < 2.0
    assert 0.02 < null.p_global <= 1.0
    text = null.summary.read_text()
    assert "no significant excess" in text or "compatible with a fluctuation" in text
    assert "describes the data" in text
    report = null.summary.parent
    for name in ("index.html", "summary.json", "events.csv", "events.parquet", "events.html", "rarity.png"):
        assert (report / name).stat().st_size > 0, name
    events = pd.read_parquet(report / "events.parquet")
    assert len(events) == 100
    assert events["rarity"].is_monotonic_decreasing
    for column in (
        "id",
        "run",
        "luminosityBlock",
        "event",
        "fold",
        "selected_at_alpha",
        "ht",
        "met",
        "mu1_pt",
        "jet1_pt",
        "jet1_eta",
        "jet1_phi",
        "n_bjets",
    ):
        assert column in events.columns, column
    assert set(events["fold"]) <= {0, 1, 2}
    payload = json.loads((report / "summary.json").read_text())
    for s in payload["result"]["selections"]:  # each threshold keeps at most alpha of the data
        assert s["observed"] <= s["alpha"] * payload["result"]["n_data"] + 1e-9
    assert payload["result"]["selections"][0]["observed"] > 0.05 * payload["result"]["n_data"]
    # the simulation describes the pseudo-data (another production of the same processes): the classifier
    # of data against simulation is near 0.5, and no selection passes the simulation far more than alpha
    assert null.simulation_ok
    assert abs(null.classifier_auc - 0.5) < 0.05
    assert "Warning" not in text
    # ~460 events in 3 folds, half of the training events for validation: ~150 per fold (the calibration
    # files), which calibrate alpha = 0.1 (15 above the threshold >= 5) but not 0.01 (1.5) nor 0.001
    n_val = [len(np.load(calibration_path(m))) for m in payload["models"]]
    assert 100 < min(n_val) <= max(n_val) < 250
    selections = payload["result"]["selections"]
    assert [s["calibratable"] for s in selections] == [True, False, False]
    for s in selections[1:]:
        assert s["z_local"] is None
        assert f"alpha = {s['alpha']:g} cannot be calibrated with 3 folds of ~{round(np.mean(n_val))}" in text
    assert payload["result"]["scan"]["alphas"] == [0.1]


def _distinguishing_features(work: Path, top: int = 6) -> list[str]:
    """The features whose distributions differ most (Kolmogorov-Smirnov) between the hidden signal and the
    SM events of the pseudo-data after the event selection, from the pass-1 tables and the labels."""
    from cms_anomaly.analyses.hunt_selections import EVENT_FEATURES, MASS_FEATURES
    from cms_anomaly.processors.feature_io import read_feature_tables
    from scipy.stats import ks_2samp

    table = pd.DataFrame(
        read_feature_tables(
            work / "injected" / "pass1" / "features" / "data",
            columns=["event", *EVENT_FEATURES, *MASS_FEATURES],
            as_numpy=True,
        )
    )
    labels_file = next((work / "samples").glob(f"pseudodata_s7_{SIGNAL}_*/data_labels.parquet"))
    labels = pd.read_parquet(labels_file).set_index("event")["process"]
    is_signal = labels.reindex(table["event"].to_numpy()).to_numpy() == SIGNAL
    assert 20 < is_signal.sum() < len(is_signal) / 2
    ks = {f: ks_2samp(table[f][is_signal], table[f][~is_signal]).statistic for f in (*EVENT_FEATURES, *MASS_FEATURES)}
    return sorted(ks, key=lambda f: -ks[f])[:top]


def test_a_hidden_signal_is_found_listed_and_characterised(injected, work):
    share = injected.composition[SIGNAL]
    assert 0.03 < share < 0.5
    # the anomaly selection enriches the hidden process
    assert injected.selected_composition["0.01"][SIGNAL] > 3 * share
    top = pd.read_csv(injected.events).head(10)
    assert (top["true_process"] == SIGNAL).mean() >= 0.5
    assert injected.z_global >= 3.0
    # a hidden process of ~9 % of the selected events raises the classifier's AUC by at most ~0.045 and
    # lowers the simulated acceptance below alpha: neither check may silence the excess
    assert injected.simulation_ok
    assert injected.classifier_auc < 0.6
    assert (
        "evidence for an excess" in injected.summary.read_text() or "significant excess" in injected.summary.read_text()
    )
    # the ranking names what distinguishes the signal (derived from the labels, independently of the hunt)
    truth = _distinguishing_features(work)
    assert set(injected.ranked_features[:3]) & set(truth), (injected.ranked_features[:5], truth)


def test_unlabelled_data_fileset_and_strict_through_the_command_line(injected, work, capsys):
    from cms_anomaly.cli import main

    data_dir = next((work / "samples").glob(f"pseudodata_s7_{SIGNAL}_*"))
    files = sorted(str(p) for p in data_dir.glob("*.root"))
    payload = json.loads((injected.summary.parent / "summary.json").read_text())
    corrupt = work / "truncated.root"
    corrupt.write_bytes(Path(files[0]).read_bytes()[:5000])  # a copy cut short
    fileset = work / "data.json"
    fileset.write_text(
        json.dumps(
            {
                "Run2026X": {
                    "files": dict.fromkeys([*files, str(corrupt)], "Events"),
                    "metadata": {"is_data": True, "lumi_pb": payload["lumi_pb"]},
                }
            }
        )
    )
    out = work / "real"
    code = main(
        [
            "hunt",
            "--data-fileset",
            str(fileset),
            "--out",
            str(out),
            "--samples",
            str(work / "samples"),
            "--events",
            "0.2",
            "--epochs",
            "40",
            "--npe",
            "2000",
            "--seed",
            "7",
            "--executor",
            "futures",
            "--workers",
            "2",
            "--strict",
            "--skip-bad-files",
        ]
    )
    printed = capsys.readouterr().out
    # the hidden process shifts H_T, N_J, N_b before any anomaly selection: --strict fails the job
    assert code == 3
    assert "does not describe the data" in printed
    assert "truncated.root" in (out / "report" / "summary.md").read_text()  # left out, and said so
    events = pd.read_csv(out / "report" / "events.csv")
    assert "true_process" not in events.columns
    assert set(events["process"]) == {"data"}
    real = json.loads((out / "report" / "summary.json").read_text())
    assert real["result"]["labelled"] == []
    assert real["result"]["n_data"] == payload["result"]["n_data"]
    assert np.isclose(real["result"]["scan"]["z_global"], payload["result"]["scan"]["z_global"], atol=1e-9)


def test_real_cms_nanoaod_with_too_few_events_stops_with_one_line(null, work, real_nanoaod_files, capsys):
    """A real CMS NanoAOD data-like file (an older NanoAOD version) runs through the first pass; with its
    40 events nothing can be trained on, and the job says so in one line (no traceback)."""
    from cms_anomaly.cli import main

    fileset = work / "dimuon.json"
    fileset.write_text(
        json.dumps(
            {
                "DoubleMu": {
                    "files": {str(real_nanoaod_files["dimuon"]): "Events"},
                    "metadata": {"is_data": True, "lumi_pb": 0.001},
                }
            }
        )
    )
    code = main(
        [
            "hunt",
            "--data-fileset",
            str(fileset),
            "--out",
            str(work / "dimuon"),
            "--samples",
            str(work / "samples"),
            "--events",
            "0.2",
            "--seed",
            "7",
            "--executor",
            "iterative",
        ]
    )
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert code == 2
    assert len(errors) == 1
    assert "Traceback" not in err
    assert errors[0].startswith("cms-anomaly hunt: error: only 0 data events pass the top_rediscovery selection")
    assert "needs >= 30" in errors[0]
