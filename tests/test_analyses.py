"""The building blocks of the seed-analysis commands (trigger, DisCo ABCD) against known answers.

The commands end to end run in ``tests/test_notebooks.py`` (the notebooks call them on small
productions).
"""

from __future__ import annotations

import numpy as np
import pytest
from cms_anomaly.analyses.cocktail import PAPER_FRACTIONS, pass_key, sm_process_weights, validation_indices
from cms_anomaly.analyses.disco import Plane, abcd_study, plane_dcor, seed_spread, sic_curves, threshold_pairs
from cms_anomaly.analyses.trigger import Binned, TriggerConfig, analyse
from cms_anomaly.models.data import Sample
from cms_anomaly.models.pipeline import split_cocktail
from cms_anomaly.processors.feature_io import write_table_manifest
from cms_anomaly.stats import efficiency_above, threshold_at_fpr, threshold_at_fpr_from_sums

from cms_anomaly import stats as st


def test_efficiency_above_measures_when_it_can_and_extrapolates_an_exponential_tail():
    rng = np.random.default_rng(3)
    scores = rng.exponential(1.0, 200_000)
    # 1e-2 of an exponential lies above ln(100): measured, with an interval that covers the truth
    e = efficiency_above(scores, threshold=np.log(100.0))
    assert e["method"] == "empirical"
    assert e["low"] < 1e-2 < e["high"]
    # 1e-7 is far beyond 200k events: read off the tail fit; the exponential's own slope gives it back
    far = efficiency_above(scores, threshold=np.log(1e7))
    assert far["method"] == "exponential_tail_fit"
    assert far["efficiency"] == pytest.approx(1e-7, rel=0.5)
    assert far["upper_limit_empirical"] > far["efficiency"]
    # consistent with the threshold extrapolation it mirrors
    th = threshold_at_fpr(scores, fpr=1e-7)
    assert th["method"] == "exponential_tail_fit"
    assert efficiency_above(scores, threshold=th["threshold"])["efficiency"] == pytest.approx(1e-7, rel=0.05)


def test_a_cached_processor_pass_is_not_reused_for_regenerated_files(tmp_path):
    """Same paths and event counts, but a file rewritten (new size or time): the key differs."""
    import os

    files = [tmp_path / "w_0.root", tmp_path / "w_1.root"]
    for f in files:
        f.write_bytes(b"x" * 10)
    fileset = {"wjets": {"files": {str(f): "Events" for f in files}, "metadata": {"nevents": 20}}}
    key = pass_key(fileset)
    assert pass_key(fileset) == key
    st = files[1].stat()
    os.utime(files[1], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert pass_key(fileset) != key


def test_paper_composition_keeps_the_total_rate_and_sets_the_shares():
    rng = np.random.default_rng(1)
    w = {
        "wjets": rng.uniform(1, 2, 1000),
        "qcd": rng.uniform(0, 1, 30),
        "zjets": rng.uniform(0, 1, 500),
        "ttbar": rng.uniform(0, 1, 200),
    }
    total = sum(v.sum() for v in w.values())
    out = sm_process_weights(w, composition="paper")
    assert sum(v.sum() for v in out.values()) == pytest.approx(total)
    for p, v in out.items():
        assert v.sum() / total == pytest.approx(PAPER_FRACTIONS[p])
        assert np.allclose(v / v.sum(), w[p] / w[p].sum())  # shapes within a process untouched
    assert sm_process_weights(w, composition="generated") == w
    with pytest.raises(ValueError, match="composition"):
        sm_process_weights(w, composition="other")


def test_validation_indices_label_the_events_of_split_cocktail():
    rng = np.random.default_rng(2)
    samples = {
        n: Sample(n, rng.normal(size=(k, 3)).astype(np.float32), np.ones(k), False)
        for n, k in (("wjets", 300), ("zjets", 120), ("ttbar", 57))
    }
    samples["sig"] = Sample("sig", rng.normal(size=(40, 3)).astype(np.float32), np.ones(40), True)
    _, val = split_cocktail(samples, val_fraction=0.5, seed=7)
    idx = validation_indices(samples, seed=7, val_fraction=0.5)
    assert set(idx) == {"wjets", "zjets", "ttbar"}
    rebuilt = np.concatenate([samples[n].x[i] for n, i in idx.items()])
    assert rebuilt.shape == val.x.shape
    assert {tuple(r) for r in rebuilt.tolist()} == {tuple(r) for r in val.x.tolist()}


def test_trigger_tables_from_binned_scores():
    """Table 3 sums to epsilon_SM x the SM rate (tail composition); Table 5 follows eq. 5.1; the binned
    threshold agrees with the unbinned tail fit of the same events."""
    rng = np.random.default_rng(5)
    edges = np.linspace(0.0, 80.0, 4001)
    lower = np.concatenate([[-np.inf], edges])

    def binned(n: int, scale: float, rate: float) -> tuple[Binned, np.ndarray]:
        x = rng.exponential(scale, n)
        counts, _ = np.histogram(x, bins=edges)
        w = np.concatenate([[0.0], counts, [float((x >= edges[-1]).sum())]]) * (rate / n)
        return Binned(w, w * (rate / n)), x

    (w_sm, xw), (z_sm, xz) = binned(8000, 1.0, 600.0), binned(2000, 2.0, 60.0)
    sig, _ = binned(1000, 6.0, 2.0)
    sm = {"wjets": w_sm, "zjets": z_sm}
    total = w_sm + z_sm
    config = TriggerConfig()
    threshold = threshold_at_fpr_from_sums(lower, total.w, total.w2, fpr=config.epsilon_sm)
    assert threshold["method"] == "exponential_tail_fit"
    unbinned = threshold_at_fpr(
        np.r_[xw, xz], np.r_[np.full(8000, 600.0 / 8000), np.full(2000, 60.0 / 2000)], fpr=config.epsilon_sm
    )
    assert threshold["threshold"] == pytest.approx(unbinned["threshold"], rel=0.05)
    slt = {"wjets": 33 / 40, "zjets": 1.0, "sig": 1.0}
    result = analyse(
        sm, {"sig": sig}, lower_edges=lower, xsec={"sig": 10.0}, threshold=threshold, slt=slt, config=config
    )
    t3 = result["table3"]
    # 660 pb x 5.4e-6 x 5 fb^-1 per month (Cerri sec. 1) = 17.82 events
    assert result["sm_events_per_month"] == pytest.approx(660.0 * 5.4e-6 * 5000.0)
    assert sum(r["selected_composition"] for r in t3.values()) == pytest.approx(1.0)
    # Z has the longer tail: over-represented among the selected events
    assert t3["zjets"]["selected_composition"] > 60.0 / 660.0
    assert t3["zjets"]["vae_efficiency"]["efficiency"] > t3["wjets"]["vae_efficiency"]["efficiency"]
    t4, t5 = result["table4"]["sig"], result["table5"]
    assert t4["single_lepton_acceptance"] == pytest.approx(0.2)
    eff = t4["vae_efficiency"]["efficiency"]
    # LR+ at the tail edge held constant: eps_S(edge) / eps_SM(edge) x epsilon_SM, counted by hand
    k = int(np.searchsorted(lower, threshold["tail_range"][0]))
    lr = (sig.w[k:].sum() / sig.w.sum()) / (total.w[k:].sum() / total.w.sum())
    assert eff == pytest.approx(lr * config.epsilon_sm)
    assert t4["xsec_eff_100_per_month_pb"] == pytest.approx(100.0 / (eff * 5000.0))
    # the cross-check working point: 1e-3, raised to 10 / n_eff = 1.07e-3 (n_eff 9300 with these weights),
    # counted directly on the bins
    check = t4["vae_efficiency_check"]
    n_eff = total.w.sum() ** 2 / total.w2.sum()
    assert check["epsilon_sm"] == pytest.approx(10.0 / n_eff)
    kc = int(np.searchsorted(np.cumsum(total.w[::-1])[::-1] <= check["epsilon_sm"] * total.w.sum(), True))
    assert check["efficiency"] == pytest.approx(sig.w[kc:].sum() / sig.w.sum())
    assert check["sm_efficiency"] <= check["epsilon_sm"]
    # SLT: W passes with 33/40, Z always; rates 600 : 60 pb
    assert t5["SM"]["slt_efficiency"] == pytest.approx((600.0 * 33 / 40 + 60.0) / 660.0)
    assert t5["sig"]["sbr_vae_over_sbr_slt"] == pytest.approx(
        (t5["SM"]["slt_efficiency"] / t5["SM"]["vae_efficiency"]) * (eff / 1.0)
    )


#: the processor's ABCD plane for scores of order 1: 100 log bins per decade from 1e-3 to 1e2
PLANE_EDGES = np.geomspace(1e-3, 1e2, 501)


def _plane(r: np.ndarray, weight: float = 1.0) -> Plane:
    """(R1, R2) pairs binned like the processor's score2d histogram (flow bins included)."""
    import hist

    h = hist.Hist(hist.axis.Variable(PLANE_EDGES), hist.axis.Variable(PLANE_EDGES), storage=hist.storage.Weight())
    h.fill(r[:, 0], r[:, 1], weight=np.full(len(r), weight))
    return Plane(h.values(flow=True), h.variances(flow=True), np.concatenate([[-np.inf], PLANE_EDGES]))


def test_abcd_closes_on_independent_scores_and_not_on_correlated_ones():
    rng = np.random.default_rng(8)
    n = 200_000
    independent = rng.exponential(1.0, (n, 2))
    signal = rng.exponential(4.0, (2000, 2))
    sm = _plane(independent, 800_000.0 / n)
    study = abcd_study(sm, {"sig": _plane(signal)}, efficiencies=(0.01, 0.05), signal_events=800.0)
    for row in study["rows"]:
        assert row["sm_only"]["closure"] == pytest.approx(1.0, abs=4 * row["sm_only"]["closure_error"] + 0.02)
        # region A keeps at most the requested efficiency, within the bin granularity (2.3 % of a score per
        # bin, up to ~10 % of the efficiency on this tail), counted on the events themselves
        in_a = (independent[:, 0] >= row["threshold1"]) & (independent[:, 1] >= row["threshold2"])
        assert row["sm_a"] / 800_000.0 == pytest.approx(in_a.mean())
        assert row["sm_a"] / 800_000.0 == pytest.approx(row["efficiency"], rel=0.15)
        assert row["sm_a"] / 800_000.0 <= row["efficiency"]
        sig = row["sig"]
        # contamination of the control regions inflates the prediction; the correction removes it
        assert sig["significance_corrected"] >= sig["significance"]
        assert sig["significance_true"] > 0
        s_in_a = (signal[:, 0] >= row["threshold1"]) & (signal[:, 1] >= row["threshold2"])
        assert sig["signal_a"] == pytest.approx(800.0 * s_in_a.mean())
    assert {r["choice"] for r in study["rows"]} >= {"diagonal", "AE1 x0.5", "AE1 x2"}
    common = rng.exponential(1.0, n)
    correlated = np.column_stack([common + 0.1 * rng.exponential(1.0, n), common + 0.1 * rng.exponential(1.0, n)])
    bad = abcd_study(_plane(correlated), {}, efficiencies=(0.01,), signal_events=0.0)
    assert bad["rows"][0]["sm_only"]["closure"] < 0.5  # correlated losses: ABCD underpredicts region A


def test_threshold_pairs_sic_and_dcor_from_the_plane():
    rng = np.random.default_rng(9)
    r = rng.exponential(1.0, (50_000, 2))
    sm = _plane(r)
    for choice, k1, k2 in threshold_pairs(sm, efficiency=0.02):
        frac = np.mean((r[:, 0] >= sm.lower[k1]) & (r[:, 1] >= sm.lower[k2]))
        assert frac <= 0.02, choice
        assert frac == pytest.approx(0.02, rel=0.1), choice
    # the diagonal cut's per-score efficiencies are equal (within a bin)
    _, k1, k2 = threshold_pairs(sm, efficiency=0.02)[0]
    assert np.mean(r[:, 0] >= sm.lower[k1]) == pytest.approx(np.mean(r[:, 1] >= sm.lower[k2]), rel=0.1)
    # SIC: a signal twice as hard in R1 only; binned AUC against the unbinned one of the same events
    sig = np.column_stack([rng.exponential(2.0, 5000), rng.exponential(1.0, 5000)])
    curves = sic_curves(sm, {"sig": _plane(sig)})["sig"]
    assert curves["AE 1"].auc() == pytest.approx(st.auc(r[:, 0], sig[:, 0]), abs=0.005)
    assert curves["AE 2"].auc() == pytest.approx(0.5, abs=0.02)
    assert 0.5 < curves["diagonal"].auc() < curves["AE 1"].auc()
    # distance correlation: independent scores ~0; a copy of R1 as R2 ~1 (binning moves a score by < 2.3 %)
    assert plane_dcor(sm) < 0.05
    assert plane_dcor(_plane(np.column_stack([r[:5000, 0], r[:5000, 0]]))) > 0.99


def test_a_target_below_one_event_leaves_region_a_empty_without_failing():
    """Ten SM events with R1 = R2 and a 0.2 % working point: every per-score cut that keeps an event
    keeps it in region A too (0.1 > 0.002), so the diagonal cut selects nothing, the off-diagonal ones
    are not tried, and the study reports an empty region A at an infinite threshold, whose closure
    no seed average counts (the disco command on a tiny production failed here)."""
    x = np.random.default_rng(3).exponential(1.0, 10)
    sm = _plane(np.column_stack([x, x]))
    assert threshold_pairs(sm, efficiency=0.002) == [("diagonal", len(sm.w), len(sm.w))]
    study = abcd_study(sm, {}, efficiencies=(0.002,), signal_events=0.0)
    [row] = study["rows"]
    assert (row["sm_a"], row["threshold1"], row["threshold2"]) == (0.0, np.inf, np.inf)
    assert not np.isfinite(row["sm_only"]["closure"])
    assert seed_spread({"1": {"abcd": study}}, [])["validated_efficiencies"]["1"] == []


def test_seed_spread():
    def row(eff: float, closure: float, significance: float) -> dict:
        return {
            "choice": "diagonal",
            "efficiency": eff,
            "sm_only": {"closure": closure, "closure_error": 0.05},
            "sig": {"significance": significance},
        }

    # the second working point of every seed does not close (0.5 +- 0.05): its significance is left out
    per_seed = {
        str(s): {"abcd": {"rows": [row(0.01, 1.0 + 0.01 * s, float(s)), row(0.001, 0.5, 50.0)]}} for s in (1, 2, 3)
    }
    spread = seed_spread(per_seed, ["sig"])
    assert spread["sig"]["mean"] == pytest.approx(2.0)
    assert spread["sig"]["std"] == pytest.approx(1.0)
    assert spread["validated_efficiencies"]["1"] == [0.01]
    assert spread["sm_only_max_closure_deviation"]["max"] == pytest.approx(0.5)


def test_abcd_counts_add_up():
    a = st.AbcdCounts.from_counts(1, 2, 3, 4)
    b = st.AbcdCounts(a=0.5, b=0.5, c=0.5, d=0.5, a_w2=0.25, b_w2=0.25, c_w2=0.25, d_w2=0.25)
    c = a + b
    assert (c.a, c.d, c.a_w2, c.d_w2) == (1.5, 4.5, 1.25, 4.25)


def test_weighted_cdf():
    ref = np.array([1.0, 2.0, 3.0, 4.0])
    w = np.array([1.0, 1.0, 1.0, 5.0])
    assert st.weighted_cdf(ref, w, [0.0, 1.0, 3.5, 4.0, 9.0]).tolist() == pytest.approx([0.0, 0.125, 0.375, 1.0, 1.0])


# ----------------------------------------------------------------------------- CWoLa dijet hunt
def _dijet_events(rng, n_bkg: int, n_sig: int) -> dict[str, dict[str, np.ndarray]]:
    from cms_anomaly.analyses.dijet import BACKGROUND, SIGNAL

    def block(n: int, signal: bool) -> dict[str, np.ndarray]:
        return {"run": np.ones(n, np.uint64), "event": np.arange(1, n + 1, dtype=np.uint64), **columns(n, signal)}

    def columns(n: int, signal: bool) -> dict[str, np.ndarray]:
        if signal:
            return {
                "mJJ": rng.normal(3500.0, 120.0, n),
                "mJ1": rng.normal(500.0, 25.0, n),
                "mJ2": rng.normal(100.0, 10.0, n),
                "tau21_j1": rng.normal(0.3, 0.05, n),
                "tau21_j2": rng.normal(0.3, 0.05, n),
                "tau32_j1": rng.uniform(0.4, 0.9, n),
                "tau32_j2": rng.uniform(0.4, 0.9, n),
            }
        return {
            "mJJ": 2500.0 * np.exp(rng.exponential(0.2, n)),
            "mJ1": rng.exponential(120.0, n) + 20.0,
            "mJ2": rng.exponential(80.0, n) + 10.0,
            "tau21_j1": rng.uniform(0.2, 0.95, n),
            "tau21_j2": rng.uniform(0.2, 0.95, n),
            "tau32_j1": rng.uniform(0.4, 0.95, n),
            "tau32_j2": rng.uniform(0.4, 0.95, n),
        }

    return {BACKGROUND: block(n_bkg, False), SIGNAL: block(n_sig, True)}


def test_injection_labels_nest_and_count():
    from cms_anomaly.analyses.dijet import injected_counts, injected_processes, injection_labels

    counts = injected_counts(1000, 50, (0.0, 0.01, 0.02))
    assert counts == [0, 10, 20]
    labels = injection_labels(50, counts, seed=3)
    assert (labels == "signal_10").sum() == 10
    assert (labels == "signal_20").sum() == 10  # ranks 10-19: the events S/B = 2 % adds to 1 %
    assert (labels == "signal_unused").sum() == 30
    assert injected_processes(counts, 20) == ["signal_10", "signal_20"]
    assert injected_processes(counts, 0) == []
    assert np.array_equal(injection_labels(50, counts, seed=3), labels)  # seeded
    assert not np.array_equal(injection_labels(50, counts, seed=4), labels)
    with pytest.raises(ValueError, match="needs 60 signal events"):
        injected_counts(1000, 50, (0.06,))


def _binned_rarity(scorer, cols: dict[str, np.ndarray], edges) -> np.ndarray:
    """What the processor fills: the k-fold rarity of every event against m_JJ (score flow bins included)."""
    import awkward as ak
    from cms_anomaly.models.scorers import RARITY_BINNING

    rarity = scorer(
        ak.zip({k: v for k, v in cols.items() if k not in ("run", "event")}),
        folds=scorer.fold_of(cols["run"], cols["event"]),
    )
    n, lo, hi = RARITY_BINNING
    score_edges = np.concatenate([[-np.inf], np.linspace(lo, hi, n + 1), [np.inf]])
    counts, _, _ = np.histogram2d(rarity, cols["mJJ"], bins=(score_edges, np.asarray(edges)))
    return counts


@pytest.mark.slow  # a CWoLa scan over 8 signal regions (> 2 min on 2 cores)
def test_cwola_hunt_finds_an_injected_resonance_and_nothing_without_it(tmp_path):
    """The exported k-fold classifiers, applied as the processor applies them, find a 1 % resonance at
    3.5 TeV and nothing in the signal-free sample."""
    from dataclasses import replace

    from cms_anomaly.analyses.dijet import (
        BACKGROUND,
        SIGNAL,
        DijetConfig,
        injected_counts,
        injected_processes,
        injection_labels,
        scan,
        signal_regions,
        train_regions,
    )
    from cms_anomaly.models.scorers import KFoldScorer
    from cms_anomaly.processors.folds import KFold

    events = _dijet_events(np.random.default_rng(2), 20_000, 300)
    config = replace(DijetConfig(), k_folds=3)
    counts = injected_counts(20_000, 300, (0.0, 0.01))
    labels = injection_labels(300, counts, seed=1)
    results = {}
    for n in counts:
        processes = injected_processes(counts, n)
        paths = train_regions(events, labels, processes, config=config, out_dir=tmp_path, tag=f"n{n}")
        keep = np.isin(labels, processes)
        bkg, sig = {}, {}
        for first in signal_regions(config):
            scorer = KFoldScorer.load(paths[first], KFold(config.k_folds, config.seed))
            bkg[first] = _binned_rarity(scorer, events[BACKGROUND], config.bin_edges)
            sig[first] = _binned_rarity(scorer, {k: v[keep] for k, v in events[SIGNAL].items()}, config.bin_edges)
        results[n] = scan(bkg, sig, config=config)
    best = results[200]["best"]
    assert best["signal_region"][0] < 3500.0 < best["signal_region"][1]
    assert best["significance"] > 4.0
    assert best["signal_in_sr_after"] > 0.5 * best["signal_in_sr_before"]  # the classifier keeps the signal
    # the selection keeps at most 3 % of the signal region and sidebands (at a rarity bin edge)
    assert best["selected"] < 0.03 * (20_000 + 200)
    assert results[0]["best"]["significance"] < 3.5


def test_signal_to_background_gain():
    import hist
    from cms_anomaly.analyses.outlier import signal_to_background_gain

    rng = np.random.default_rng(4)
    sm_m, sig_m = rng.uniform(0, 1000, 10_000), rng.uniform(300, 1000, 1000)
    sm_pass, sig_pass = rng.uniform(size=10_000) < 0.1, rng.uniform(size=1000) < 0.5

    def h(m, w):
        out = hist.Hist(hist.axis.Variable([50, 200, 400, 700, 1000], name="m"), storage=hist.storage.Weight())
        out.fill(m, weight=w)
        return out

    g = signal_to_background_gain(
        h(sm_m, np.full(10_000, 0.1)),
        h(sm_m[sm_pass], np.full(sm_pass.sum(), 0.1)),
        h(sig_m, np.full(1000, 0.01)),
        h(sig_m[sig_pass], np.full(sig_pass.sum(), 0.01)),
        m_min=400.0,
    )
    # by hand from the events: the window starts at the bin edge 400 (flow bins count in "all")
    assert g["all"]["gain"] == pytest.approx((sig_pass.mean()) / (sm_pass.mean()))
    assert g["all"]["gain"] == pytest.approx(5.0, rel=0.15)
    window = g["m > 400"]
    b_in, s_in = sm_m >= 400, sig_m >= 400
    assert window["s_over_b_before"] == pytest.approx(0.01 * s_in.sum() / (0.1 * b_in.sum()))
    assert window["s_over_b_after"] == pytest.approx(0.01 * (s_in & sig_pass).sum() / (0.1 * (b_in & sm_pass).sum()))
    assert window["background_entries_after"] == (b_in & sm_pass).sum()
    assert window["s_over_b_after"] == pytest.approx(window["s_over_b_before"] * window["gain"])
    assert window["gain_lower_limit"] < window["gain"]


def test_read_samples_skips_a_dataset_without_selected_events(tmp_path):
    """A process of which no event passes the selection leaves only empty tables (e.g. QCD after rmm_lepton)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from cms_anomaly.models.data import read_samples
    from cms_anomaly.models.feature_sets import get_feature_set

    fs = get_feature_set("hlf21")
    for name, n in (("wjets", 5), ("qcd", 0)):
        (tmp_path / name).mkdir()
        cols = {c: pa.array(np.ones(n, np.float32)) for c in fs.columns}
        cols.update(weight=pa.array(np.ones(n)), is_signal=pa.array(np.zeros(n, bool)))
        pq.write_table(pa.table(cols), tmp_path / name / f"{name}__f__0-{n}.parquet")
    write_table_manifest(tmp_path, sorted(tmp_path.glob("*/*.parquet")))
    samples = read_samples(tmp_path, feature_set=fs)
    assert list(samples) == ["wjets"]
    assert len(samples["wjets"]) == 5
    from cms_anomaly.models.errors import FeatureTableError

    with pytest.raises(FeatureTableError, match="are empty"):
        read_samples(tmp_path, feature_set=fs, datasets=["qcd"])  # asked for by name: an error that says why


def test_fresh_report_dir_removes_an_earlier_runs_figures_and_summaries(tmp_path):
    """A rerun whose plots differ must not leave the old figures beside the new report."""
    from cms_anomaly.analyses.analysis import fresh_report_dir

    old = tmp_path / "report"
    old.mkdir()
    for name in ("fit.png", "summary.md", "summary.json", "index.html", "notes.txt"):
        (old / name).write_text("old")
    assert fresh_report_dir(tmp_path) == old
    assert sorted(p.name for p in old.iterdir()) == ["notes.txt"]  # only what the job writes is cleared
    assert fresh_report_dir(tmp_path / "new").is_dir()


def _feature_output(values: dict[str, dict[str, np.ndarray]]) -> dict:
    """A processor-like output {dataset: {"hists": {feature: hist}}} from per-dataset arrays of bin contents."""
    import hist

    out = {}
    for dataset, feats in values.items():
        hists = {}
        for name, contents in feats.items():
            h = hist.Hist(
                hist.axis.StrCategory([dataset], name="dataset"),
                hist.axis.Regular(len(contents), 0, len(contents), name=name),
                storage=hist.storage.Weight(),
            )
            view = h.view(flow=False)
            view.value[0] = contents
            view.variance[0] = contents * 0.01  # a large simulation: small sum w^2
            hists[name] = h
        out[dataset] = {"hists": hists}
    return out


def test_hunt_background_check_flags_normalisation_and_shape_and_passes_a_good_model():
    from cms_anomaly.analyses.hunt import HuntConfig, background_check

    sim = {"ht": np.array([400.0, 300.0, 200.0, 100.0]), "met": np.array([250.0, 250.0, 250.0, 250.0])}
    good = _feature_output(
        {
            "data": {"ht": np.array([405.0, 290.0, 210.0, 95.0]), "met": np.array([240.0, 260, 255, 245])},
            "wjets": {k: v * 0.6 for k, v in sim.items()},
            "ttbar": {k: v * 0.4 for k, v in sim.items()},
        }
    )
    c = background_check(good, HuntConfig())
    assert c["ok"]
    assert c["problems"] == []
    assert c["norm_ratio"] == pytest.approx(1.0)
    # twice the events: the normalisation is 2 (by hand), far beyond 25 % and 3 sigma
    double = _feature_output({"data": {k: v * 2 for k, v in sim.items()}, "wjets": sim})
    c = background_check(double, HuntConfig())
    assert not c["ok"]
    assert c["norm_ratio"] == pytest.approx(2.0)
    assert "data / simulation = 2" in c["problems"][0]
    # ... which a 150 % tolerance accepts; a shape difference in one feature is then what is flagged
    shape = _feature_output({"data": {"ht": np.array([100.0, 200.0, 300.0, 400.0]), "met": sim["met"]}, "wjets": sim})
    c = background_check(shape, HuntConfig(norm_tolerance=1.5))
    assert not c["ok"]
    assert c["features"][0]["feature"] == "ht"
    assert "ht" in c["problems"][0]
    assert c["features"][0]["shape_p_value"] < 1e-10
    assert c["features"][1]["shape_p_value"] > 0.5


def test_hunt_astf_discrepancy_by_hand():
    from cms_anomaly.stats import astf_comparison

    # simulation: 10 % selected in bin 0, 20 % in bin 1 (no simulation error); data: 100 and 50 events before
    b_all, b_sel = np.array([1000.0, 500.0]), np.array([100.0, 100.0])
    d_all, d_sel = np.array([100.0, 50.0]), np.array([10.0, 25.0])
    r = astf_comparison(d_all, d_sel, b_all, np.zeros(2), b_sel, np.zeros(2))
    # expected 10 and 10 selected; the shape: scaled to the 35 selected, 17.5 and 17.5 expected,
    # chi2 = 2 x 7.5^2 / 17.5 (no bin merged), ndf 2 - 1; the largest pull before scaling 15 / sqrt(10)
    assert r["expected"] == pytest.approx(20.0)
    assert r["observed"] == 35.0
    assert r["astf_ratio"] == pytest.approx(1.75)
    assert r["chi2"] == pytest.approx(2 * 7.5**2 / 17.5)
    assert r["ndf"] == 1
    assert r["largest_pull_bin"] == 1
    assert r["largest_pull"] == pytest.approx(15 / np.sqrt(10))
    # the same shape with twice the selected events: the shape test sees nothing new in a pure count excess
    assert astf_comparison(d_all, np.array([20.0, 20.0]), b_all, np.zeros(2), b_sel, np.zeros(2))[
        "chi2"
    ] == pytest.approx(0.0)


def test_each_processor_executor_generates_its_samples_where_expected():
    from cms_anomaly.analyses.analysis import Execution, production_executor

    assert production_executor("dask") == "dask"
    assert production_executor("futures") == "futures"
    assert production_executor("iterative") == "local"  # in this process, one file at a time
    assert production_executor("iterative", 1) == "local"
    assert production_executor("iterative", 2) == "futures"  # --workers 2: a pool of two processes
    assert Execution(executor="iterative", workers=2).production_executor == "futures"
