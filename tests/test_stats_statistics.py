"""Statistics library against textbook values and the papers' numbers."""

from __future__ import annotations

import math

import hist
import numpy as np
import pytest
from scipy.stats import norm

from cms_anomaly import stats as st


# ----------------------------------------------------------------------------- ROC / AUC
@pytest.mark.parametrize("d", [0.5, 1.0, 2.0])
def test_auc_of_two_gaussians_is_phi_d_over_sqrt2(d):
    rng = np.random.default_rng(11)
    b = rng.normal(0.0, 1.0, 150_000)
    s = rng.normal(d, 1.0, 150_000)
    expected = norm.cdf(d / math.sqrt(2.0))
    assert st.auc(b, s) == pytest.approx(expected, abs=0.004)


def test_auc_counts_ties_one_half_and_is_weight_consistent():
    # pairs (s, b): (1,0) > ; (1,1) tie ; (2,0) > ; (2,1) >  -> (3 + 0.5) / 4
    assert st.auc([0.0, 1.0], [1.0, 2.0]) == pytest.approx(0.875)
    assert st.auc([3.0, 3.0, 3.0], [3.0, 3.0]) == pytest.approx(0.5)
    # an integer weight is the same as duplicating the event
    b, s = np.array([0.1, 0.4, 0.35, 0.8]), np.array([0.9, 0.8, 0.2])
    dup = st.auc(np.r_[b, b[1]], s)
    w = st.auc(b, s, bkg_weights=[1, 2, 1, 1])
    assert w == pytest.approx(dup)


def test_roc_points_by_hand():
    b = [0.1, 0.4, 0.35, 0.8]
    s = [0.9, 0.8, 0.2]
    roc = st.roc_curve(b, s)
    # thresholds (select score > t): 0.9 -> nothing, 0.8 -> {0.9}, 0.4 -> {0.9, 0.8, 0.8}, ...
    assert roc.thresholds[:4].tolist() == [0.9, 0.8, 0.4, 0.35]
    assert roc.fpr.tolist() == pytest.approx([0, 0, 0.25, 0.5, 0.75, 0.75, 1.0])
    assert roc.tpr.tolist() == pytest.approx([0, 1 / 3, 2 / 3, 2 / 3, 2 / 3, 1.0, 1.0])
    # same AUC as the pair count: s=0.9 beats 4, s=0.8 beats 3 ties 1, s=0.2 beats 1 -> 8.5/12
    assert roc.auc() == pytest.approx(8.5 / 12)
    # each point is reproduced by counting with its threshold
    for t, f, p in zip(roc.thresholds, roc.fpr, roc.tpr, strict=True):
        assert f == pytest.approx(np.mean(np.asarray(b) > t))
        assert p == pytest.approx(np.mean(np.asarray(s) > t))


def test_roc_from_bin_sums_by_hand():
    """Two bins: background 3 low + 1 high, signal 1 low + 3 high. P(s > b) = 3/4 x 3/4, ties
    (same bin) 1/4 x 3/4 + 3/4 x 1/4, counted one half: AUC = 0.5625 + 0.1875 = 0.75."""
    roc = st.roc_from_sums([0.0, 3.0, 1.0, 0.0], [0.0, 1.0, 3.0, 0.0], bkg_sumw2=[0, 3, 1, 0], sig_sumw2=[0, 1, 3, 0])
    assert roc.auc() == pytest.approx(0.75)
    # the high bin alone (point 2: bins 2, 3 kept) selects 1/4 of the background and 3/4 of the signal
    assert (roc.fpr[2], roc.tpr[2], roc.thresholds[2]) == pytest.approx((0.25, 0.75, 2.0))
    assert roc.n_bkg_eff == pytest.approx(16.0 / 4.0)  # unit weights: 4 events
    # the same as the unbinned ROC of the bin index with every event tied in its bin
    unbinned = st.roc_curve([1, 1, 1, 2], [1, 2, 2, 2])
    assert roc.auc() == pytest.approx(unbinned.auc())


def test_threshold_at_fpr_from_sums_empirical_and_extrapolated():
    """An exponential (rate 1) in fine bins: the empirical threshold at 1e-2 is the sample's quantile
    rounded up to a bin edge, near -ln(1e-2) = 4.61; at 1e-7 (far beyond 1e5 events) the fitted tail
    gives -ln(1e-7) = 16.1, as the unbinned fit does."""
    rng = np.random.default_rng(11)
    x = rng.exponential(1.0, 100_000)
    edges = np.linspace(0.0, 20.0, 4001)
    counts, _ = np.histogram(x, bins=edges)
    w = np.concatenate([[0.0], counts, [float((x >= 20.0).sum())]])
    lower = np.concatenate([[-np.inf], edges])
    emp = st.threshold_at_fpr_from_sums(lower, w, w, fpr=1e-2)
    assert emp["method"] == "empirical"
    q = np.quantile(x, 0.99)  # the sample's own 99 % quantile, rounded up to the next bin edge (0.005 wide)
    assert q <= emp["threshold"] < q + 0.005 + 1e-9
    assert emp["threshold"] == pytest.approx(np.log(100.0), abs=0.1)  # 3 sigma of a 1000-event tail quantile
    assert w[emp["bin"] :].sum() <= 1e-2 * w.sum() < w[emp["bin"] - 1 :].sum()
    fit = st.threshold_at_fpr_from_sums(lower, w, w, fpr=1e-7)
    assert fit["method"] == "exponential_tail_fit"
    assert fit["threshold"] == pytest.approx(-np.log(1e-7), rel=0.1)
    unbinned = st.threshold_at_fpr(x, fpr=1e-7)
    assert fit["threshold"] == pytest.approx(unbinned["threshold"], rel=0.05)
    with pytest.raises(ValueError, match="no events"):
        st.threshold_at_fpr_from_sums(lower, np.zeros_like(w), np.zeros_like(w), fpr=1e-3)


def test_roc_rejects_bad_input():
    with pytest.raises(st.StatisticsError, match="NaN"):
        st.roc_curve([0.1, np.nan], [0.3])
    with pytest.raises(st.StatisticsError, match="both samples"):
        st.roc_curve([], [0.3])
    with pytest.raises(st.StatisticsError, match="weights"):
        st.roc_curve([0.1, 0.2], [0.3], bkg_weights=[1.0])


def test_sic_and_lr_plus():
    assert st.sic(0.5, 0.01) == pytest.approx(5.0)
    assert st.lr_plus(0.5, 0.01) == pytest.approx(50.0)
    out = st.sic([0.2, 0.3], [0.0, 0.04])
    assert np.isnan(out[0])
    assert out[1] == pytest.approx(1.5)


def test_tpr_at_fpr_gaussian_working_point():
    rng = np.random.default_rng(5)
    b = rng.normal(0.0, 1.0, 400_000)
    s = rng.normal(2.0, 1.0, 100_000)
    wp = st.tpr_at_fpr(b, s, fpr=1e-2)
    # threshold = Phi^-1(0.99) = 2.326; TPR = Phi(2 - 2.326) = 0.372
    assert wp.threshold == pytest.approx(norm.isf(0.01), abs=0.02)
    assert wp.fpr <= 1e-2
    assert wp.fpr == pytest.approx(1e-2, rel=1e-3)
    assert wp.tpr == pytest.approx(norm.cdf(2.0 - norm.isf(0.01)), abs=0.008)
    assert wp.tpr_interval[0] < wp.tpr < wp.tpr_interval[1]
    assert wp.lr_plus == pytest.approx(wp.tpr / wp.fpr)
    assert wp.sic == pytest.approx(wp.tpr / math.sqrt(wp.fpr))


# ----------------------------------------------------------------------------- Agresti-Coull
def test_agresti_coull_textbook_numbers():
    # 95 %: z = 1.959964, n~ = 23.841459, p~ = (7 + 1.920729)/23.841459 = 0.374169,
    # half width = 1.959964 * sqrt(0.374169 * 0.625831 / 23.841459) = 0.194244
    ac = st.agresti_coull_interval(7, 20, cl=0.95)
    assert float(ac.estimate) == pytest.approx(0.35)
    assert float(ac.center) == pytest.approx(0.374169, abs=1e-6)
    assert float(ac.low) == pytest.approx(0.179926, abs=1e-6)
    assert float(ac.high) == pytest.approx(0.568411, abs=1e-6)
    # z = 2 exactly: "add two successes and two failures" -> p~ = 9/24 = 0.375,
    # half width = 2 sqrt(0.375 * 0.625 / 24) = 0.197642
    cl2 = math.erf(2.0 / math.sqrt(2.0))
    ac2 = st.agresti_coull_interval(7, 20, cl=cl2)
    assert float(ac2.center) == pytest.approx(0.375, abs=1e-12)
    assert float(ac2.low) == pytest.approx(0.375 - 0.1976424, abs=1e-6)
    assert float(ac2.high) == pytest.approx(0.375 + 0.1976424, abs=1e-6)
    # k = 0: p~ = 2/14, high = 0.142857 + 2 sqrt(0.142857 * 0.857143 / 14) = 0.329901, low clipped
    ac0 = st.agresti_coull_interval(0, 10, cl=cl2)
    assert float(ac0.low) == 0.0
    assert float(ac0.high) == pytest.approx(0.329901, abs=1e-6)
    # n = 0: no information
    acn = st.agresti_coull_interval(0, 0, cl=cl2)
    assert np.isnan(acn.estimate)
    assert float(acn.low) == 0.0
    assert float(acn.high) == 1.0


def test_agresti_coull_coverage_close_to_nominal():
    rng = np.random.default_rng(2)
    n, p = 50, 0.1
    k = rng.binomial(n, p, 20_000)
    ac = st.agresti_coull_interval(k, np.full_like(k, n), cl=0.95)
    coverage = np.mean((ac.low <= p) & (p <= ac.high))
    assert 0.93 < coverage < 0.98


def test_agresti_coull_rejects_bad_counts():
    with pytest.raises(st.StatisticsError, match="exceeds"):
        st.agresti_coull_interval(5, 3)
    with pytest.raises(st.StatisticsError, match="cl"):
        st.agresti_coull_interval(1, 3, cl=1.5)


# ----------------------------------------------------------------------------- thresholds
def test_threshold_keeps_ties_together():
    s = [1.0, 2.0, 2.0, 2.0, 3.0]
    assert st.threshold_at_efficiency(s, efficiency=0.2) == 2.0  # keeps {3}
    assert st.threshold_at_efficiency(s, efficiency=0.5) == 2.0  # cannot split the three 2s
    assert st.selection_efficiency(s, threshold=2.0) == pytest.approx(0.2)
    assert st.threshold_at_efficiency(s, efficiency=0.8) == 1.0
    assert st.threshold_at_efficiency(s, efficiency=0.19) == 3.0  # nothing selected
    assert st.selection_efficiency(s, threshold=3.0) == 0.0
    t_all = st.threshold_at_efficiency(s, efficiency=1.0)
    assert t_all < 1.0
    assert st.selection_efficiency(s, threshold=t_all) == 1.0


def test_threshold_weighted():
    s, w = [1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 5.0]
    assert st.threshold_at_efficiency(s, w, efficiency=0.625) == 3.0
    assert st.selection_efficiency(s, w, threshold=3.0) == pytest.approx(0.625)
    assert st.threshold_at_efficiency(s, w, efficiency=0.6) == 4.0
    rng = np.random.default_rng(3)
    x = rng.exponential(1.0, 100_000)
    t = st.threshold_at_efficiency(x, efficiency=1e-3)
    assert t == pytest.approx(-math.log(1e-3), rel=0.05)
    assert st.selection_efficiency(x, threshold=t) == pytest.approx(1e-3, rel=1e-6)


# ----------------------------------------------------------------------------- ASTF
def _hist(values, weights=None, edges=(0.0, 1.0, 2.0, 3.0)):
    h = hist.Hist(hist.axis.Variable(list(edges), name="ht", label="$H_T$ [GeV]"), storage=hist.storage.Weight())
    h.fill(np.asarray(values, dtype=float), weight=np.ones(len(values)) if weights is None else weights)
    return h


def test_astf_fractions_and_binomial_errors():
    all_vals = [0.5] * 10 + [1.5] * 20
    sel_vals = [0.5] * 1 + [1.5] * 5
    res = st.astf(_hist(all_vals), _hist(sel_vals), cl=0.95)
    assert res.fraction[:2].tolist() == pytest.approx([0.1, 0.25])
    assert np.isnan(res.fraction[2])
    ref = st.agresti_coull_interval([1, 5], [10, 20], cl=0.95)
    assert res.interval.low[:2] == pytest.approx(ref.low)
    assert res.interval.high[:2] == pytest.approx(ref.high)
    assert res.interval.low[2] == 0.0
    assert res.interval.high[2] == 1.0
    assert res.axis_labels == ("$H_T$ [GeV]",)
    # uniform weight 2: same fractions and same effective entries -> same interval
    resw = st.astf(_hist(all_vals, np.full(30, 2.0)), _hist(sel_vals, np.full(6, 2.0)), cl=0.95)
    assert resw.fraction[:2] == pytest.approx(res.fraction[:2])
    assert resw.n_all_eff[:2] == pytest.approx([10, 20])
    assert resw.interval.low[:2] == pytest.approx(res.interval.low[:2])


def test_astf_ratio_data_over_mc():
    data = st.astf(_hist([0.5] * 100 + [1.5] * 100), _hist([0.5] * 10 + [1.5] * 40))
    mc = st.astf(_hist([0.5] * 1000 + [1.5] * 1000), _hist([0.5] * 100 + [1.5] * 200))
    r, err = data.ratio_to(mc)
    assert r[:2] == pytest.approx([1.0, 2.0])
    assert np.all(err[:2] > 0)


def test_astf_rejects_mismatch():
    with pytest.raises(st.StatisticsError, match="binning"):
        st.astf(_hist([0.5]), _hist([0.5], edges=(0.0, 1.0, 2.0)))
    with pytest.raises(st.StatisticsError, match="subset"):
        st.astf(_hist([0.5]), _hist([0.5, 0.5]))


def test_astf_comparison_propagates_the_simulation_variances_by_hand():
    """Weighted simulation (non-zero sum w^2): eps = S/A with var ((1 - 2 eps) var(S) + eps^2 var(A)) / A^2."""
    b_all, b_all_var = np.array([1000.0, 500.0]), np.array([2000.0, 1000.0])
    b_sel, b_sel_var = np.array([100.0, 100.0]), np.array([200.0, 200.0])
    d_all, d_sel = np.array([100.0, 50.0]), np.array([10.0, 25.0])
    r = st.astf_comparison(d_all, d_sel, b_all, b_all_var, b_sel, b_sel_var)
    # eps = 0.1, 0.2; var(eps) = (0.8 * 200 + 0.01 * 2000) / 1000^2 = 1.8e-4, (0.6 * 200 + 0.04 * 1000) / 500^2
    # = 6.4e-4; expected 10, 10 selected with variances 100^2 * 1.8e-4 = 1.8 and 50^2 * 6.4e-4 = 1.6
    assert r["expected"] == pytest.approx(20.0)
    assert r["largest_pull_bin"] == 1
    assert r["largest_pull"] == pytest.approx(15 / math.sqrt(10 + 1.6))
    assert r["largest_pull_expected"] == pytest.approx(10.0)
    # the shape: scaled by 35 / 20 = 1.75 to 17.5, 17.5 with variances 1.8 and 1.6 times 1.75^2
    assert r["chi2"] == pytest.approx(7.5**2 / (17.5 + 1.8 * 1.75**2) + 7.5**2 / (17.5 + 1.6 * 1.75**2))
    assert r["ndf"] == 1


# ----------------------------------------------------------------------------- ABCD
def test_abcd_score_on_the_threshold_is_below():
    """``score > threshold`` is "above": a score exactly on its threshold counts as below."""
    s1, s2 = np.array([1.0, 2.0, 3.0, 2.0]), np.array([2.0, 3.0, 1.0, 1.0])
    counts = st.abcd_counts(s1, s2, threshold1=2.0, threshold2=2.0, weights=np.array([1.0, 2.0, 4.0, 8.0]))
    # above: score 1 only for event 2, score 2 only for event 1; events 0 and 3 (both on or under) in D
    assert (counts.a, counts.b, counts.c, counts.d) == (0.0, 4.0, 2.0, 9.0)
    assert (counts.a_w2, counts.b_w2, counts.c_w2, counts.d_w2) == (0.0, 16.0, 4.0, 65.0)


def test_abcd_closes_on_independent_variables():
    rng = np.random.default_rng(7)
    x, y = rng.exponential(1.0, 400_000), rng.normal(0.0, 1.0, 400_000)
    counts = st.abcd_counts(x, y, threshold1=np.quantile(x, 0.9), threshold2=np.quantile(y, 0.9))
    pred = st.abcd_prediction(counts)
    assert counts.total == pytest.approx(400_000)
    assert abs(pred.closure - 1.0) < 3 * pred.closure_error
    rel = math.sqrt(1 / counts.a + 1 / counts.b + 1 / counts.c + 1 / counts.d)  # four Poisson regions
    assert pred.closure_error == pytest.approx(pred.closure * rel, rel=1e-9)
    assert pred.significance < 3.0


def test_abcd_fails_to_close_on_correlated_variables():
    rng = np.random.default_rng(8)
    x = rng.normal(0.0, 1.0, 400_000)
    y = 0.5 * x + math.sqrt(1 - 0.25) * rng.normal(0.0, 1.0, 400_000)
    pred = st.abcd_prediction(st.abcd_counts(x, y, threshold1=1.28, threshold2=1.28))
    # positive correlation -> the factorised prediction underestimates region A
    assert pred.closure < 1.0 - 5 * pred.closure_error


def test_abcd_significance_by_hand():
    assert st.abcd_significance(120, 100) == pytest.approx(20 / math.sqrt(120))
    assert st.abcd_significance(90, 100) == 0.0
    pred = st.abcd_prediction(st.AbcdCounts.from_counts(a=150, b=400, c=500, d=2000))
    assert pred.predicted == pytest.approx(100.0)
    assert pred.closure == pytest.approx(100 / 150)
    assert pred.significance == pytest.approx(50 / math.sqrt(150))


def test_on_off_significance_is_the_binomial_tail_and_has_the_poisson_limit():
    from scipy.stats import binom, poisson

    # definition: P(X >= n_on | X ~ Binomial(n_on + n_off, 1/(1+tau))), computed independently
    for n_on, n_off, tau in [(140, 100, 1.2), (6, 0, 1.0), (10, 3, 2.5), (1, 7, 0.5)]:
        p = binom.sf(n_on - 1, n_on + n_off, 1.0 / (1.0 + tau))
        assert st.on_off_significance(n_on, n_off, tau) == pytest.approx(norm.isf(p), rel=1e-9)
    # no simulated entry, equal exposures: p = 2^-6 for six observed events
    assert st.on_off_significance(6, 0, 1.0) == pytest.approx(norm.isf(0.5**6))
    # a precisely known background (tau -> infinity) gives the Poisson tail P(N >= n | b)
    b, n = 3.2, 9
    z = st.on_off_significance(n, b * 1e6, 1e6)
    assert z == pytest.approx(norm.isf(poisson.sf(n - 1, b)), rel=1e-4)
    # a deficit is negative, nothing observed is no evidence, bad input is named
    assert st.on_off_significance(2, 50, 5.0) < 0
    assert st.on_off_significance(0, 4, 1.0) == 0.0
    with pytest.raises(st.StatisticsError, match="tau"):
        st.on_off_significance(3, 1, 0.0)


def test_abcd_signal_contamination_correction():
    # factorising background + a signal that leaks into the control regions
    bkg = np.array([100.0, 400.0, 500.0, 2000.0])  # 100 = 400 * 500 / 2000
    sig = np.array([60.0, 30.0, 25.0, 10.0])
    obs = st.AbcdCounts.from_counts(*(bkg + sig))
    raw = st.abcd_prediction(obs)
    corrected = st.abcd_prediction(obs, signal=st.AbcdCounts.from_counts(*sig))
    assert raw.predicted > 100.0 + 5.0  # contamination inflates the prediction
    assert corrected.predicted == pytest.approx(100.0)
    assert corrected.corrected
    assert not raw.corrected
    assert corrected.significance > raw.significance
    mu, b_a = st.abcd_signal_strength(obs, signal_template=st.AbcdCounts.from_counts(*(sig / 2.0)))
    assert mu == pytest.approx(2.0)
    assert b_a == pytest.approx(100.0)


def test_diagonal_thresholds_on_independent_scores():
    rng = np.random.default_rng(9)
    u1, u2 = rng.uniform(size=200_000), rng.uniform(size=200_000)
    t1, t2, e = st.diagonal_thresholds(u1, u2, efficiency=0.01)
    assert e == pytest.approx(0.1, rel=0.05)  # independent: e^2 = 0.01
    frac = np.mean((u1 > t1) & (u2 > t2))
    assert 0.009 < frac <= 0.01 + 1e-9
    assert np.mean(u1 > t1) == pytest.approx(np.mean(u2 > t2), rel=0.01)


def test_abcd_trigger_prescales():
    out = st.abcd_trigger_prescales(st.AbcdCounts.from_counts(a=10, b=90, c=90, d=810))
    assert (out["b"], out["c"], out["d"]) == (9.0, 9.0, 81.0)
    assert out["stored_over_a"] == pytest.approx(4.0)


# ----------------------------------------------------------------------------- rates
def test_rate_conversions_by_hand_and_against_cerri_tables():
    assert st.events_per_month(1.0) == pytest.approx(5000.0)  # 1 pb x 5 fb^-1
    assert st.events_per_month(2.0, 0.1, lumi_fb=10.0) == pytest.approx(2000.0)
    # Table 1: W, 58 nb, acceptance 55.6 %, L1 68 % -> 110 M events/month
    assert st.events_per_month(58e3, 0.556 * 0.68) == pytest.approx(110e6, rel=0.01)
    # Table 4: 100 events/month at VAE efficiency 2.8e-3 (A->4l) -> 7.1 pb; 6.7e-4 (LQ) -> 30 pb
    assert st.xsec_for_events_per_month(100, 2.8e-3) == pytest.approx(100 / (5000 * 2.8e-3))
    assert st.xsec_for_events_per_month(100, 2.8e-3) == pytest.approx(7.1, rel=0.01)
    assert st.xsec_for_events_per_month(100, 6.7e-4) == pytest.approx(30.0, rel=0.01)
    # S/B = 1/3 with 1200 SM events/month: 400 / (5000 * 2.8e-3) = 28.57 pb (paper: 27)
    assert st.xsec_for_signal_to_background(1 / 3, 1200, efficiency=2.8e-3) == pytest.approx(28.571, rel=1e-3)
    # FPR 5.4e-6 of the SM cocktail (Cerri Table 1: 110 + 63 + 12 + 0.6 M/month, i.e. 185.6e6 / 5000 pb^-1
    # = 37 120 pb) is ~1000 events/month: 37 120 pb x 5.4e-6 x 5000 pb^-1 = 1002.2
    assert st.events_per_month(37_120.0, 5.4e-6) == pytest.approx(1002.2, rel=1e-4)
    assert st.trigger_rate_hz(1.0, inst_lumi_cm2s=1e34) == pytest.approx(0.01)
    with pytest.raises(st.StatisticsError, match="efficiency"):
        st.xsec_for_events_per_month(100, 0.0)


def test_sbr_ratio_cerri_table5():
    # eq. 5.1 with Table 5 efficiencies: A->4l 625, LQ->b tau 125 (paper rounds the inputs)
    a4l = st.sbr_ratio(
        sm_efficiency=5.3e-6, sm_reference_efficiency=0.6, bsm_efficiency=2.8e-3, bsm_reference_efficiency=0.5
    )
    lq = st.sbr_ratio(
        sm_efficiency=5.3e-6, sm_reference_efficiency=0.6, bsm_efficiency=6.7e-4, bsm_reference_efficiency=0.6
    )
    assert a4l == pytest.approx(625, rel=0.03)
    assert lq == pytest.approx(125, rel=0.03)


# ----------------------------------------------------------------------------- distance correlation
def _dcor2_bivariate_normal(rho: float) -> float:
    """Szekely, Rizzo & Bakirov (2007) Theorem 7: dCor^2 of a bivariate normal."""
    r = abs(rho)
    num = r * math.asin(r) + math.sqrt(1 - r * r) - r * math.asin(r / 2) - math.sqrt(4 - r * r) + 1
    return num / (1 + math.pi / 3 - math.sqrt(3))


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_distance_correlation_bivariate_normal(rho):
    rng = np.random.default_rng(int(rho * 10) + 1)
    x = rng.normal(size=3000)
    y = rho * x + math.sqrt(1 - rho * rho) * rng.normal(size=3000)
    assert st.distance_correlation(x, y, squared=True) == pytest.approx(_dcor2_bivariate_normal(rho), abs=0.025)


def test_distance_correlation_properties():
    rng = np.random.default_rng(4)
    x = rng.normal(size=1500)
    assert st.distance_correlation(x, 3.0 * x - 2.0) == pytest.approx(1.0, abs=1e-9)
    y = x**2
    assert abs(np.corrcoef(x, y)[0, 1]) < 0.1
    assert st.distance_correlation(x, y) > 0.3  # dependence Pearson cannot see
    # block size does not matter; integer weights equal duplication
    z = rng.normal(size=1500)
    assert st.distance_correlation(x, z, block_size=7) == pytest.approx(st.distance_correlation(x, z), rel=1e-9)
    w = rng.integers(1, 3, size=300).astype(float)
    xs, zs = x[:300], z[:300]
    dup = st.distance_correlation(np.repeat(xs, w.astype(int)), np.repeat(zs, w.astype(int)))
    assert st.distance_correlation(xs, zs, weights=w) == pytest.approx(dup, rel=1e-9)


def test_distance_correlation_matches_disco_training_loss():
    torch = pytest.importorskip("torch")
    from cms_anomaly.models.double_ae import distance_correlation_squared

    rng = np.random.default_rng(6)
    x = rng.exponential(size=800)
    y = 0.3 * x + rng.normal(size=800)
    ours = st.distance_correlation(x, y, squared=True)
    theirs = float(distance_correlation_squared(torch.tensor(x), torch.tensor(y)))
    assert ours == pytest.approx(theirs, rel=1e-6)


# ----------------------------------------------------------------------------- helpers for the main job
def test_roc_from_labels_matches_split_samples():
    rng = np.random.default_rng(12)
    scores = rng.normal(size=2000)
    labels = rng.uniform(size=2000) < 0.2
    scores[labels] += 1.0
    w = rng.uniform(0.5, 2.0, size=2000)
    a = st.roc_from_labels(scores, labels, weights=w)
    b = st.roc_curve(scores[~labels], scores[labels], bkg_weights=w[~labels], sig_weights=w[labels])
    assert a.auc() == pytest.approx(b.auc())


def test_enrichment_factor_by_hand():
    # "all": 10 of 10000 selected (1e-3); process: 20 of 1000 selected (2e-2) -> enrichment 20
    all_pass = np.zeros(10_000, bool)
    all_pass[:10] = True
    proc_pass = np.zeros(1000, bool)
    proc_pass[:20] = True
    r, err = st.enrichment_factor(proc_pass, all_pass)
    assert r == pytest.approx(20.0)

    # Agresti-Coull at z = 1 by hand: n~ = n + 1, p~ = (k + 1/2) / n~, half width sqrt(p~ (1 - p~) / n~);
    # relative errors added in quadrature: 0.004477 / 0.02 and 0.0003238 / 1e-3 -> 20 x 0.3937 = 7.873
    def half_width(k: int, n: int) -> float:
        pt = (k + 0.5) / (n + 1)
        return math.sqrt(pt * (1 - pt) / (n + 1))

    rel = math.hypot(half_width(20, 1000) / 0.02, half_width(10, 10_000) / 1e-3)
    assert err == pytest.approx(20.0 * rel)
    assert err == pytest.approx(7.873, abs=1e-3)
    eff = st.weighted_efficiency(all_pass, np.full(10_000, 3.0))
    assert float(eff.estimate) == pytest.approx(1e-3)


def test_abcd_from_2d_histogram_matches_per_event_counts():
    rng = np.random.default_rng(13)
    x, y = rng.exponential(1.0, 20_000), rng.exponential(2.0, 20_000)
    w = rng.uniform(0.5, 1.5, 20_000)
    h = hist.Hist(
        hist.axis.Regular(20, 0.0, 4.0, name="loss1"),
        hist.axis.Regular(20, 0.0, 8.0, name="loss2"),
        storage=hist.storage.Weight(),
    )
    h.fill(x, y, weight=w)  # the tails beyond 4 / 8 land in the overflow bins and count as "above"
    from_hist = st.abcd_counts_from_hist(h, threshold1=2.0, threshold2=4.0)
    # bin edges are closed on the left: an event exactly on the edge is "above" in hist, ">" per event
    per_event = st.abcd_counts(x, y, threshold1=2.0, threshold2=4.0, weights=w)
    for k in ("a", "b", "c", "d", "a_w2", "d_w2"):
        assert getattr(from_hist, k) == pytest.approx(getattr(per_event, k), rel=1e-9)
    with pytest.raises(st.StatisticsError, match="not a bin edge"):
        st.abcd_counts_from_hist(h, threshold1=2.1, threshold2=4.0)


def test_z_from_p_and_poisson_significance_by_hand():
    # textbook values: p = 0.02275 is 2 sigma, 2.867e-7 is 5 sigma; a deficit is 0 one-sided
    assert st.z_from_p(0.0227501319) == pytest.approx(2.0, abs=1e-6)
    assert st.z_from_p(2.8665157e-7) == pytest.approx(5.0, abs=1e-5)
    assert st.z_from_p(0.8) == 0.0
    assert st.z_from_p(0.8, one_sided=False) == pytest.approx(-0.841621, abs=1e-5)
    assert st.z_from_p(0.0) == st.Z_MAX
    # P(N >= 3 | b = 0.5) = 1 - e^-0.5 (1 + 0.5 + 0.125)
    p = 1 - math.exp(-0.5) * (1 + 0.5 + 0.125)
    assert st.poisson_significance(3, 0.5) == pytest.approx(st.z_from_p(p), rel=1e-12)
    assert st.poisson_significance(0, 0.5) == 0.0
    assert math.isnan(st.poisson_significance(3, 0.0))


def test_threshold_bin_at_efficiency_by_hand():
    """Bins (underflow, 3 bins, overflow) = 0, 5, 3, 1, 1 of 10 events: tails 10, 10, 5, 2, 1, 0."""
    from cms_anomaly.stats import StatisticsError, threshold_bin_at_efficiency

    counts = np.array([0.0, 5.0, 3.0, 1.0, 1.0])
    assert threshold_bin_at_efficiency(counts, efficiency=0.2) == 3  # 2 events: the largest tail <= 20 %
    assert threshold_bin_at_efficiency(counts, efficiency=0.15) == 4  # 1.5 allowed: only the overflow
    assert threshold_bin_at_efficiency(counts, efficiency=0.05) == 5  # nothing fits: select nothing
    assert threshold_bin_at_efficiency(counts, efficiency=1.0) == 0
    with pytest.raises(StatisticsError, match="empty"):
        threshold_bin_at_efficiency(np.zeros(4), efficiency=0.1)
    with pytest.raises(StatisticsError, match="efficiency"):
        threshold_bin_at_efficiency(counts, efficiency=0.0)


def test_a_tail_weighted_sample_measures_thresholds_it_could_not_count_unweighted():
    """1000 bulk events (weight 1, scores in [0, 1]) and 200 tail events of weight 1e-4 (scores 2-3), as a
    tail-biased production gives. The whole sample has n_eff ~ 1000, so fpr x n_eff = 0.01 at fpr = 1e-5;
    but the 100 highest tail events carry exactly 1e-5 of the weight: n_eff above = 100, and the threshold
    is measured, not extrapolated: the 100th-highest tail score, 2 + 99/199. Binned (0.001 bins) alike."""
    bulk = np.linspace(0.0, 1.0, 1000)
    tail = np.linspace(2.0, 3.0, 200)
    scores = np.concatenate([bulk, tail])
    w = np.concatenate([np.ones(1000), np.full(200, 1e-4)])
    fpr = 1e-5 * w.sum() / 1000.0 * (1 + 1e-9)  # the 100 top tail events: 0.01 of 1000.02
    res = st.threshold_at_fpr(scores, w, fpr=fpr)
    assert res["method"] == "empirical"
    assert res["threshold"] == pytest.approx(2 + 99 / 199)
    assert res["n_eff_above"] == pytest.approx(100)
    assert res["n_eff"] == pytest.approx(1000, rel=1e-3)
    eff = st.efficiency_above(scores, w, threshold=2 + 99 / 199)
    assert eff["method"] == "empirical"
    assert eff["efficiency"] == pytest.approx(0.01 / w.sum())
    h = hist.Hist(hist.axis.Regular(3000, 0, 3), storage=hist.storage.Weight()).fill(scores, weight=w)
    lower = np.concatenate([[-np.inf], h.axes[0].edges[:-1], [3.0]])
    v = h.view(flow=True)
    binned = st.threshold_at_fpr_from_sums(lower, v.value, v.variance, fpr=fpr)
    assert binned["method"] == "empirical"
    assert binned["n_eff_above"] == pytest.approx(100, abs=1)
    assert binned["threshold"] == pytest.approx(2 + 99 / 199, abs=0.002)
    # unweighted, the same 1200 scores cannot reach 1e-5: extrapolated
    assert st.threshold_at_fpr(scores, fpr=1e-5)["method"] == "exponential_tail_fit"
