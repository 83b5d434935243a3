"""Does the hunt know when its simulation does not describe the data?

The calibration and acceptance statistics by hand; the data-vs-simulation classifier on tables where
the data are the simulation and where one feature is shifted; the hunt's selections, scan and report
on processor-like outputs filled with known rarity distributions (the histograms the processor fills,
from :mod:`~cms_anomaly.processors.histograms`).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as sps
from cms_anomaly.models.bdt import BDTParams
from cms_anomaly.stats import StatisticsError, acceptance_check, calibratable, min_validation_events


# ----------------------------------------------------------------------------- stats, by hand
def test_min_validation_events_and_calibratable_by_hand():
    assert min_validation_events(0.1) == 50  # 5 / 0.1
    assert min_validation_events(0.01) == 500  # not 501: 5 / 0.01 is 500.00000000000006 in floating point
    assert min_validation_events(0.001) == 5000
    assert min_validation_events(0.3) == 17  # ceil(16.67)
    assert min_validation_events(0.01, min_count=10) == 1000
    # the hunt: 3 folds of ~121 validation events calibrate alpha = 0.1 (12.1 above), not 0.01 (1.2)
    assert calibratable(0.1, [121, 125, 119])
    assert not calibratable(0.01, [121, 125, 119])
    assert calibratable(0.01, [500, 600])
    assert not calibratable(0.01, [499, 600])  # the smallest fold decides
    assert calibratable(0.01, 500)
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(StatisticsError):
            min_validation_events(bad)
    with pytest.raises(StatisticsError):
        calibratable(0.1, [-1])


def test_acceptance_check_by_hand():
    z2 = 9.0  # 3 sigma
    # the hunt: every simulated event passes the alpha = 0.1 selection (363 of 363, unit weights)
    c = acceptance_check(363.0, 363.0, 363.0, 0.1)
    p = (363 + z2 / 2) / (363 + z2)  # Agresti-Coull centre
    assert c.acceptance == 1.0
    assert c.low == pytest.approx(p - 3 * math.sqrt(p * (1 - p) / (363 + z2)))  # 0.971
    assert c.separates
    # weighted: 50 of 100 with weights 4 -> 25 effective events, 12.5 passing; centre (12.5 + 4.5) / 34 = 0.5,
    # half-width 3 sqrt(0.25 / 34) = 0.257: low 0.2427, above 2 x 0.1 but not above 2 x 0.125
    low = 0.5 - 3 * math.sqrt(0.25 / 34)
    c = acceptance_check(50.0, 100.0, 400.0, 0.1)
    assert c.acceptance == pytest.approx(0.5)
    assert c.low == pytest.approx(low)
    assert c.separates
    assert not acceptance_check(50.0, 100.0, 400.0, 0.125).separates
    assert acceptance_check(50.0, 100.0, 400.0, 0.125, tolerance=1.5).separates  # 0.1875 < 0.2427
    # an acceptance at or below alpha (an excess in the data) is not a separation: one-sided
    assert not acceptance_check(36.0, 363.0, 363.0, 0.1).separates
    assert not acceptance_check(0.0, 363.0, 363.0, 0.1).separates
    with pytest.raises(StatisticsError):
        acceptance_check(10.0, 5.0, 5.0, 0.1)
    with pytest.raises(StatisticsError):
        acceptance_check(1.0, 5.0, 5.0, 0.1, tolerance=1.0)


# ----------------------------------------------------------------------------- the classifier
NAMES = ["ht", "met", "n_jets", "m_jets"]
#: fewer trees than the hunt's (150) keep these tests short; the statements hold for both
FAST = BDTParams(n_estimators=60)


def _tables(n: int, rng: np.random.Generator, shift: float = 0.0) -> np.ndarray:
    x = rng.normal(size=(n, len(NAMES)))
    x[:, 2] = rng.poisson(4.0, size=n)  # a count, as N_J
    x[:, 1] += shift
    return x


def test_classifier_sees_nothing_where_the_data_are_the_simulation():
    from cms_anomaly.models.datasim import classify_data_vs_simulation

    rng = np.random.default_rng(11)
    # the simulation: two halves A (x) and B (x + 2 in H_T), weighted 1.5 and 0.5 -- a quarter of its weight
    # in B, one of which is negative (|w| counts); the data: a quarter B, unweighted. Equal once weighted.
    n = 3000
    sim = _tables(n, rng)
    sim[n // 2 :, 0] += 2.0
    w_sim = np.where(np.arange(n) < n // 2, 1.5, 0.5)
    w_sim[-300:] *= -1
    data = _tables(2000, rng)
    data[1500:, 0] += 2.0
    r = classify_data_vs_simulation(data, np.ones(2000), sim, w_sim, feature_names=NAMES, seed=3, params=FAST)
    assert r.negative_weights == 300
    assert r.n_data == 2000
    assert r.n_simulation == 3000
    assert len(r.auc_folds) == 3
    assert 0 < r.auc_spread < 0.05
    assert abs(r.auc - 0.5) < max(3 * r.auc_spread, 0.03), r
    assert abs(r.feature_auc["ht"] - 0.5) < 0.03  # unweighted, the simulation's H_T would be twice as often in B
    assert sorted(r.ranking) == sorted(NAMES)


def test_classifier_finds_a_shifted_feature_and_ranks_it_first():
    from cms_anomaly.models.datasim import classify_data_vs_simulation

    rng = np.random.default_rng(12)
    sim, data = _tables(3000, rng), _tables(2000, rng, shift=0.8)
    r = classify_data_vs_simulation(
        data, np.ones(2000), sim, np.full(3000, 0.2), feature_names=NAMES, seed=3, params=FAST
    )
    # a unit Gaussian shifted by d: AUC Phi(d / sqrt 2) = 0.714 for d = 0.8
    expected = float(sps.norm.cdf(0.8 / math.sqrt(2)))
    assert r.feature_auc["met"] == pytest.approx(expected, abs=0.03)
    assert r.ranking[0] == "met"
    assert r.auc > 0.6
    assert r.auc - 0.5 > 5 * r.auc_spread


def test_classifier_refuses_too_few_events_in_one_line():
    from cms_anomaly.models.datasim import classify_data_vs_simulation
    from cms_anomaly.models.errors import TrainingError

    rng = np.random.default_rng(1)
    with pytest.raises(TrainingError, match=r"5 data and 100 simulated events are too few for 3 folds"):
        classify_data_vs_simulation(
            _tables(5, rng), np.ones(5), _tables(100, rng), np.ones(100), feature_names=NAMES, seed=1
        )


# ----------------------------------------------------------------------------- the hunt's selections and report
def _output(datasets: dict[str, tuple[np.ndarray, np.ndarray]], seed: int = 5) -> dict:
    """A second-pass-like output: the k-fold rarity histograms the processor fills (against every event
    feature and mass, and the counts), filled with the given (rarity, weight) per dataset."""
    import hist
    from cms_anomaly.analyses.hunt_selections import EVENT_FEATURES, KFOLD_OUTPUT, KFOLD_SCORER, MASS_FEATURES
    from cms_anomaly.models.scorers import RARITY_BINNING
    from cms_anomaly.processors import histograms as H

    rng = np.random.default_rng(seed)
    out = {}
    for dataset, (rarity, w) in datasets.items():
        n = len(rarity)
        process = "data" if dataset == "data" else dataset
        hists = {}
        kw = {"dataset": dataset, "binning": RARITY_BINNING}
        common = {"dataset": dataset, "split": "all", "process": process, "score": rarity, "weight": w}
        for f in (*EVENT_FEATURES, *MASS_FEATURES):
            h = H.score_feature_hist(KFOLD_SCORER, KFOLD_OUTPUT, f, **kw)
            counts = isinstance(h.axes[f], hist.axis.Integer)  # N_J, N_b, N_mu, N_e
            h.fill(**common, **{f: rng.integers(0, 7, n) if counts else rng.uniform(100.0, 1000.0, n)})
            hists[f"score_{KFOLD_SCORER}_{KFOLD_OUTPUT}_vs_{f}"] = h
        h = H.score_counts_hist(KFOLD_SCORER, KFOLD_OUTPUT, **kw)
        h.fill(**common, n_jets=rng.integers(4, 7, n), n_bjets=rng.integers(0, 3, n))
        hists[f"score_{KFOLD_SCORER}_{KFOLD_OUTPUT}_vs_counts"] = h
        out[dataset] = {"hists": hists}
    return out


def _calibrated(n: int, rng: np.random.Generator) -> np.ndarray:
    """Rarities of a detector calibrated on this very distribution: P(rarity >= r) = 10^-r."""
    return -np.log10(rng.uniform(1e-8, 1.0, n))


CLASSIFIER_OK = {
    "auc": 0.51,
    "auc_folds": (0.50, 0.52, 0.51),
    "auc_spread": 0.01,
    "feature_auc": {"ht": 0.52, "met": 0.5},
    "ranking": ["ht", "met"],
    "n_data": 1000,
    "n_simulation": 3000,
    "negative_weights": 0,
    "k_folds": 3,
    "feature_set": "hlf24",
    "simulation": ["wjets"],
    "threshold": 0.6,
    "separates": False,
}
META = {
    "data_description": "test data",
    "selection": "top_rediscovery",
    "k_folds": 3,
    "model": "alad",
    "feature_set": "hlf24",
    "seconds": {"total": 1.0},
}
CHECK_OK = {"ok": True, "norm_ratio": 1.0, "norm_ratio_error": 0.03, "shape_p_value_cut": 4e-4, "features": []}


def _analyse(sim_rarity: np.ndarray, n_validation: list[int]) -> dict:
    from cms_anomaly.analyses.hunt import HuntConfig, analyse

    rng = np.random.default_rng(2)
    output = _output(
        {"data": (_calibrated(1000, rng), np.ones(1000)), "wjets": (sim_rarity, np.full(len(sim_rarity), 1 / 3))}
    )
    return analyse(output, config=HuntConfig(npe=200), n_validation=n_validation)


def test_uncalibratable_alphas_are_named_not_shown_as_zero_vs_zero():
    from cms_anomaly.analyses.hunt import HuntConfig
    from cms_anomaly.analyses.hunt_report import format_report, simulation_warnings, summary_paragraph

    analysed = _analyse(_calibrated(3000, np.random.default_rng(3)), [121, 122, 120])
    by_alpha = {s["alpha"]: s for s in analysed["selections"]}
    assert by_alpha[0.1]["quoted"]
    assert by_alpha[0.1]["calibratable"]
    assert not by_alpha[0.1]["acceptance"]["separates"]
    assert by_alpha[0.1]["acceptance"]["acceptance"] == pytest.approx(0.1, abs=0.02)  # the simulation is the data
    assert by_alpha[0.1]["z_local"] is not None
    for a, need in ((0.01, 500), (0.001, 5000)):
        assert not by_alpha[a]["calibratable"]
        assert by_alpha[a]["z_local"] is None
        assert by_alpha[a]["not_quoted"] == (
            f"alpha = {a:g} cannot be calibrated with 3 folds of ~121 validation events (needs >= {need} per fold)"
        )
    # only the quoted selection is scanned
    assert analysed["scan"]["alphas"] == [0.1]
    assert analysed["scan"]["best"]["alpha"] == 0.1
    assert {r["alpha"] for r in analysed["scan"]["per_variable"]} == {0.1}

    assert simulation_warnings(CLASSIFIER_OK, analysed) == []
    paragraph = summary_paragraph(CHECK_OK, analysed, [], HuntConfig())
    assert "Over 1 quoted selection, 10 masses" in paragraph
    assert "Not quoted: alpha = 0.01 cannot be calibrated with 3 folds of ~121 validation events" in paragraph
    report = format_report(paragraph, CHECK_OK, analysed, META, [], CLASSIFIER_OK)
    assert "| 0.001 | - | - | - | - | not quoted: alpha = 0.001 cannot be calibrated" in report
    assert "| 0.01 | - | - | - | - | not quoted: alpha = 0.01 cannot be calibrated" in report
    assert "3 folds of 121, 122, 120 validation events" in report
    assert "out-of-fold AUC **0.510** +- 0.010" in report
    assert "Warning" not in report


def test_no_calibratable_alpha_quotes_nothing_and_ranks_nothing():
    """Folds of ~20 validation events calibrate no alpha: the summary names each, and shows no feature
    ranking of a selection that does not exist (no 'p = nan', no '0 vs 0')."""
    from cms_anomaly.analyses.hunt import HuntConfig
    from cms_anomaly.analyses.hunt_report import summary_paragraph

    analysed = _analyse(_calibrated(3000, np.random.default_rng(5)), [20, 21, 19])
    assert not any(s["calibratable"] for s in analysed["selections"])
    assert analysed["scan"]["best"] is None
    paragraph = summary_paragraph(CHECK_OK, analysed, [], HuntConfig())
    assert "**no significance is quoted**: alpha = 0.1 cannot be calibrated with 3 folds of ~20" in paragraph
    assert "transfer function differs most" not in paragraph
    assert "nan" not in paragraph
    assert " vs 0" not in paragraph


def test_a_detector_that_separates_simulation_from_data_quotes_no_significance():
    from cms_anomaly.analyses.hunt import HuntConfig
    from cms_anomaly.analyses.hunt_report import format_report, simulation_warnings, summary_paragraph

    # every simulated event looks rarer than 90 % of the data (rarity >= 2.1): acceptance 1 at alpha 0.1
    sim = 2.1 + _calibrated(3000, np.random.default_rng(4))
    analysed = _analyse(sim, [1000, 1000, 1000])  # 0.1 and 0.01 calibratable (100, 10 above), 0.001 not (1)
    by_alpha = {s["alpha"]: s for s in analysed["selections"]}
    assert by_alpha[0.1]["acceptance"]["acceptance"] == pytest.approx(1.0)
    assert by_alpha[0.1]["acceptance"]["separates"]
    assert by_alpha[0.01]["acceptance"]["separates"]
    assert by_alpha[0.1]["not_quoted"] == (
        "the detector separates simulation from data (simulated acceptance 1.00 at alpha 0.1)"
    )
    assert all(s["z_local"] is None for s in analysed["selections"])
    assert analysed["scan"]["best"] is None
    assert analysed["scan"]["z_global"] is None

    classifier = {
        **CLASSIFIER_OK,
        "auc": 0.81,
        "auc_spread": 0.02,
        "feature_auc": {"ht": 0.5, "met": 0.9},
        "ranking": ["met", "ht"],
        "separates": True,
    }
    warnings = simulation_warnings(classifier, analysed)
    assert warnings[0].startswith("**Warning: the simulation does not describe the data**")
    assert "AUC 0.810 +- 0.020 (> 0.6), driven by met (AUC 0.90), ht (AUC 0.50)" in warnings[0]
    assert warnings[1].startswith("**Warning: the detector separates simulation from data**")
    assert "simulated acceptance 1.00 at alpha 0.1; simulated acceptance 1.00 at alpha 0.01" in warnings[1]
    paragraph = summary_paragraph(CHECK_OK, analysed, [], HuntConfig())
    assert "**no significance is quoted**" in paragraph
    assert "local Z" not in paragraph
    assert "global significance" not in paragraph
    report = format_report(paragraph, CHECK_OK, analysed, META, [], classifier)
    head = report.split("\n\n")
    assert head[1] == warnings[0]
    assert head[2] == warnings[1]
    assert "not quoted: the detector separates simulation from data (simulated acceptance 1.00 at alpha 0.1)" in report
    assert "## Mass scan: not run (no selection quoted)" in report


def test_plots_of_collision_data_are_not_labelled_simulation(tmp_path, monkeypatch):
    """Every hunt plot of collision data (no hidden labels) carries "CMS Open Data"; of pseudo-data "CMS Simulation"."""
    from cms_anomaly.analyses import plot_curves, plot_fits, plot_hists
    from cms_anomaly.analyses.hunt_report import make_plots

    labels: list[tuple[bool, str]] = []
    for module in (plot_curves, plot_fits, plot_hists):  # each figure module labels through plot_style.cms_label
        monkeypatch.setattr(module, "cms_label", lambda ax, *, data, text, lumi, com: labels.append((data, text)))
    rng = np.random.default_rng(4)
    analysed = _analyse(_calibrated(3000, rng), [40000, 40000, 40000])
    assert not analysed["labelled"]  # the data of _output carry no hidden process
    output = _output(
        {"data": (_calibrated(1000, rng), np.ones(1000)), "wjets": (_calibrated(3000, rng), np.ones(3000))}
    )
    pngs = make_plots(output, CHECK_OK, analysed, tmp_path, lumi_pb=10.0, data_label="Data")
    assert len(labels) == len(pngs) >= 2
    assert all(data and text.startswith("Open Data, ") for data, text in labels)
    labels.clear()
    make_plots(output, CHECK_OK, {**analysed, "labelled": ["wjets"]}, tmp_path, lumi_pb=10.0, data_label="Pseudo-data")
    assert labels
    assert not any(data or "Open Data" in text for data, text in labels)
