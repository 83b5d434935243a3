"""The New Physics Learning Machine (models/nplm.py) and the toy p-value (stats/gof.py).

Expected values come from closed forms (a constant network is the one-parameter Poisson likelihood
ratio) and from scipy's chi2 and KS tests, not from the module under test.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as sps
import torch
from cms_anomaly.models.errors import TrainingError
from cms_anomaly.models.nplm import NPLMConfig, nplm_loss, nplm_null, nplm_statistics, nplm_test, reference_toys
from cms_anomaly.stats._common import StatisticsError
from cms_anomaly.stats.gof import chi2_ndof, toy_p_value

N_REF, N_DATA = 5000, 500


@pytest.fixture(scope="module")
def reference():
    """A falling spectrum (exponential, slope 1) as reference: N_REF events weighted to N_DATA."""
    rng = np.random.default_rng(11)
    return rng.exponential(1.0, N_REF), np.full(N_REF, N_DATA / N_REF)


def test_loss_is_the_extended_likelihood_ratio_by_hand():
    f_ref = torch.tensor([[0.0, 1.0, -1.0]])
    w_ref = torch.tensor([2.0, 1.0, 0.5])
    f_data = torch.tensor([[0.5, 2.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])  # the third data slot is padding
    by_hand = 2.0 * 0.0 + 1.0 * (np.e - 1) + 0.5 * (np.exp(-1) - 1) - (0.5 + 2.0)
    assert nplm_loss(f_ref, w_ref, f_data, mask).item() == pytest.approx(by_hand, rel=1e-6)


@pytest.mark.parametrize("n_data", [400, 650])
def test_a_constant_input_gives_the_poisson_likelihood_ratio(reference, n_data):
    """With every input equal the network is a constant c: min L at c = log(N_D / N_R), and
    t = 2 [N_D log(N_D / N_R) - (N_D - N_R)] with N_R the reference weights' sum."""
    _, w_ref = reference
    t = nplm_statistics([np.zeros(n_data)], np.zeros(N_REF), w_ref, config=NPLMConfig(steps=600), seed=1)[0]
    closed_form = 2 * (n_data * np.log(n_data / N_DATA) - (n_data - N_DATA))
    assert t == pytest.approx(closed_form, rel=0.02)


@pytest.mark.slow
def test_the_null_matches_data_drawn_independently_and_is_chi2_like(reference):
    """Pseudo-experiments drawn from the reference (what nplm_null does) against null data drawn
    independently from the same truth: the two t distributions agree (two-sample KS), and a chi2
    describes the pseudo-experiments (one-sample KS against the fitted ndof)."""
    x_ref, w_ref = reference
    config = NPLMConfig(steps=800)
    t_toys = nplm_null(x_ref, w_ref, n_toys=80, config=config, seed=3)
    rng = np.random.default_rng(99)
    independent = [rng.exponential(1.0, rng.poisson(N_DATA)) for _ in range(80)]
    t_indep = nplm_statistics(independent, x_ref, w_ref, config=config, seed=5)
    assert sps.ks_2samp(t_toys, t_indep).pvalue > 0.01
    ndof = chi2_ndof(t_toys)
    assert 1 < ndof < 20  # of the order of the 13 parameters of the 1-4-1 network
    assert sps.kstest(t_toys, sps.chi2(ndof).cdf).pvalue > 0.01
    # empirical p-values of the independent null samples against the toys: uniform
    p = np.array([toy_p_value(t, t_toys).p_empirical for t in t_indep])
    assert sps.kstest(p, "uniform").pvalue > 0.01


@pytest.mark.slow
def test_a_localised_excess_is_found_and_the_same_size_null_is_not(reference):
    x_ref, w_ref = reference
    rng = np.random.default_rng(5)
    signal = np.concatenate([rng.exponential(1.0, N_DATA - 25), rng.normal(4.0, 0.2, 25)])
    null = rng.exponential(1.0, N_DATA)
    config = NPLMConfig(steps=800)
    with_signal = nplm_test(signal, x_ref, w_ref, n_toys=40, config=config, seed=7)
    without = nplm_test(null, x_ref, w_ref, n_toys=40, config=config, seed=7)
    assert with_signal.p.beyond_toys
    assert with_signal.p.p_chi2 < 0.01
    assert without.p.p_empirical > 0.05
    assert with_signal.n_data == N_DATA
    assert with_signal.n_expected == pytest.approx(N_DATA)


def test_clipping_bounds_every_parameter(reference):
    """A clip of 0.1 keeps f within what 0.1-bounded weights allow: t far below the unclipped one."""
    x_ref, w_ref = reference
    rng = np.random.default_rng(2)
    excess = np.concatenate([rng.exponential(1.0, N_DATA - 50), rng.normal(4.0, 0.2, 50)])
    t_tight = nplm_statistics([excess], x_ref, w_ref, config=NPLMConfig(steps=400, clip=0.1), seed=1)[0]
    t_loose = nplm_statistics([excess], x_ref, w_ref, config=NPLMConfig(steps=400, clip=9.0), seed=1)[0]
    assert t_tight < 0.5 * t_loose


def test_toys_are_poisson_sized_draws_of_the_reference(reference):
    x_ref, w_ref = reference
    toys = reference_toys(x_ref, w_ref, n_expected=N_DATA, n_toys=200, seed=1)
    sizes = np.array([len(t) for t in toys])
    assert abs(sizes.mean() - N_DATA) < 4 * np.sqrt(N_DATA / 200)
    assert sizes.var() == pytest.approx(N_DATA, rel=0.3)
    assert np.isin(toys[0], x_ref).all()
    again = reference_toys(x_ref, w_ref, n_expected=N_DATA, n_toys=2, seed=1)
    np.testing.assert_array_equal(again[1], toys[1])


def test_toy_p_value_counts_and_extrapolates():
    t_null = np.arange(1.0, 100.0)  # 99 toys
    p = toy_p_value(50.0, t_null)
    assert (p.n_above, p.p_empirical) == (50, pytest.approx(51 / 100))
    far = toy_p_value(1e4, sps.chi2(5).rvs(size=500, random_state=1))
    assert far.beyond_toys
    assert far.p_empirical == pytest.approx(1 / 501)
    assert far.ndof == pytest.approx(5, rel=0.15)
    assert far.p_chi2 < 1e-100
    assert far.z > 8


def test_bad_inputs_name_what_is_wrong(reference):
    x_ref, w_ref = reference
    with pytest.raises(TrainingError, match="one weight per reference event"):
        nplm_statistics([x_ref[:10]], x_ref, w_ref[:-1], config=NPLMConfig(steps=1), seed=0)
    bad = x_ref[:10].copy()
    bad[3] = np.nan
    with pytest.raises(TrainingError, match="data sample 0"):
        nplm_statistics([bad], x_ref, w_ref, config=NPLMConfig(steps=1), seed=0)
    with pytest.raises(TrainingError, match="clip"):
        NPLMConfig(clip=0)
    with pytest.raises(StatisticsError, match="finite"):
        toy_p_value(float("nan"), [1.0, 2.0])
    with pytest.raises(StatisticsError, match="pseudo-experiments"):
        chi2_ndof([1.0, 2.0])
