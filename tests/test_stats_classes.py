"""MUSiC's global significance over event classes: local p, regions of interest, p-tilde, the look-elsewhere
effect over classes, and the calibration of the global p-value on background-only toys."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as sps
from cms_anomaly.stats import StatisticsError, class_scan
from cms_anomaly.stats.classes import local_p


def _background(n_classes: int, *, bins: int = 12, scale: float = 40.0, rel: float = 0.1) -> tuple[dict, dict]:
    """Falling spectra in two distributions per class (S_T-like and M-like slopes), yields differing by
    class, a 10 % background uncertainty per bin."""
    x = (np.arange(bins) + 0.5) / bins
    exp: dict = {}
    var: dict = {}
    for c in range(n_classes):
        exp[f"c{c}"] = {d: scale * (1 + c % 3) * np.exp(-s * x) for d, s in (("st", 3.0), ("minv", 5.0))}
        var[f"c{c}"] = {d: (rel * b) ** 2 for d, b in exp[f"c{c}"].items()}
    return exp, var


def _draw(exp: dict, var: dict, rng: np.random.Generator) -> dict:
    """Background-only counts: a Gamma mean of the expected yield and variance, then Poisson."""
    return {
        c: {d: rng.poisson(rng.gamma(b**2 / var[c][d], var[c][d] / b)).astype(float) for d, b in dists.items()}
        for c, dists in exp.items()
    }


def test_local_p_is_the_poisson_convolved_with_a_gamma():
    n, b, v = np.array([0.0, 1, 3, 10, 40]), np.array([2.0, 2, 2.5, 4, 30]), np.array([1.0, 0, 0.3, 2, 9])
    r, q = b**2 / np.where(v > 0, v, 1), b / (b + v)
    ref = np.where(n <= 0, 1, np.where(v > 0, sps.nbinom.sf(n - 1, r, q), sps.poisson.sf(n - 1, b)))
    assert local_p(n, b, v) == pytest.approx(ref, rel=1e-10)
    # a larger uncertainty makes the same excess less significant
    assert local_p(10.0, 4.0, 4.0) > local_p(10.0, 4.0, 0.5) > local_p(10.0, 4.0, 0.0)


def test_class_scan_rejects_bad_input():
    exp, var = _background(1)
    with pytest.raises(StatisticsError, match="c0/minv"):
        class_scan({"c0": {"minv": np.ones(3)}}, exp, var, n_pe=10, seed=0)
    with pytest.raises(StatisticsError, match="min_yield"):
        class_scan(exp, exp, var, n_pe=10, seed=0, min_yield=0.0)


def test_class_scan_finds_an_injected_bump_in_one_class_of_many():
    """A bump in bins 3-5 of one distribution of one class among 10: that class has the smallest p-tilde,
    in that distribution, with the window on the bump, and the smallest global p-value 400
    pseudo-experiments resolve."""
    exp, var = _background(10)
    obs = _draw(exp, var, np.random.default_rng(5))
    obs["c7"]["minv"][3:6] += np.round(exp["c7"]["minv"][3:6])  # twice the background
    r = class_scan(obs, exp, var, n_pe=400, seed=4, min_width=2, min_yield=1.0)
    best = r.classes[0]
    assert best.name == "c7"
    assert best.distribution == "minv"
    assert best.region is not None
    assert 2 <= best.region[0] <= 3  # the window starts on the bump (bin 3) ...
    assert 6 <= best.region[1] <= 8  # ... and ends at most 2 bins after it
    assert best.p_tilde == pytest.approx(1 / 401)  # beyond every pseudo-experiment
    # p-tilde resolves 1/401: with 20 class x distribution pairs the global p-value resolves ~20/401
    assert r.p_global <= 21 / 401
    assert [c.p_tilde for c in r.classes] == sorted(c.p_tilde for c in r.classes)
    bands = r.expected["minv"]
    assert bands.quantiles.shape == (5, 10)
    assert bands.classes[0] == "c7"
    assert bands.observed_sorted[0] < bands.quantiles[0, 0]  # below the 95 % band at the first rank


def test_class_scan_look_elsewhere_grows_with_the_number_of_classes():
    """The same local excess in one class is less significant globally among 20 classes than alone."""
    exp, var = _background(20)
    obs = {c: {d: np.round(b) for d, b in dists.items()} for c, dists in exp.items()}  # no excess elsewhere
    obs["c0"]["st"][4:6] = np.round(exp["c0"]["st"][4:6] * 1.8)  # local p ~ 1e-3
    one = class_scan({"c0": obs["c0"]}, {"c0": exp["c0"]}, {"c0": var["c0"]}, n_pe=400, seed=2, min_width=2)
    many = class_scan(obs, exp, var, n_pe=400, seed=2, min_width=2)
    assert one.classes[0].p == many.classes[0].p  # the same local excess
    assert many.classes[0].name == "c0"
    assert one.p_global < 0.1
    assert many.p_global > 5 * one.p_global


@pytest.mark.slow  # 200 scans of 3 classes x 2 distributions, 200 pseudo-experiments each (~30 s on 2 loaded cores)
def test_class_scan_null_global_p_values_are_uniform():
    """Background-only observations: the global p-values over 200 toys are uniform (KS) and the fraction
    below 0.05 is 0.05 within 3 binomial errors."""
    exp, var = _background(3)
    toys = 200
    p = np.array(
        [
            class_scan(
                _draw(exp, var, np.random.default_rng(500 + i)), exp, var, n_pe=200, seed=i, min_width=2
            ).p_global
            for i in range(toys)
        ]
    )
    assert sps.kstest(p, "uniform").pvalue > 0.01
    assert abs(np.mean(p < 0.05) - 0.05) <= 3 * math.sqrt(0.05 * 0.95 / toys)


def _sparse_class(obs: float) -> tuple[dict, ...]:
    """One class of 3 bins whose only simulated event is a rare process's (weight 1e-5, bin 1), beside a
    process of weight 0.5 with no simulated event in it."""
    return (
        {"2e": {"st": np.array([0.0, obs, 0.0])}},
        {"2e": {"st": np.array([0.0, 1e-5, 0.0])}},
        {"2e": {"st": np.array([0.0, 1e-10, 0.0])}},
        {"2e": {"st": np.array([[0.0, 0.0, 0.0], [0.0, 1e-5, 0.0]])}},
    )


def test_a_class_filled_by_one_rare_simulated_event_counts_the_unsimulated_processes():
    """One observed event where the simulation's only event has weight 1e-5: the class's expectation gains
    a Gamma(1, 0.5) for the process of weight 0.5 that has no simulated event there, so P(N >= n) is the
    geometric tail (w / (1 + w))^n = 3^-n (by hand), and the pseudo-experiments draw it too: p-tilde ~ p."""
    weights = np.array([0.5, 1e-5])
    for n in (1.0, 5.0):
        obs, exp, var, per = _sparse_class(n)
        r = class_scan(obs, exp, var, n_pe=2000, seed=1, process_expected=per, process_weight=weights)
        region = r.classes[0].per_distribution["st"]
        assert r.classes[0].p == pytest.approx(3.0**-n, rel=1e-3)
        assert region.unsimulated == pytest.approx(0.5)
        assert region.region == (0, 3)
        assert r.classes[0].p_tilde == pytest.approx(3.0**-n, abs=0.15 * 3.0**-n + 3 / 2001)
    obs, exp, var, _ = _sparse_class(1.0)
    assert class_scan(obs, exp, var, n_pe=200, seed=1).classes[0].p == pytest.approx(1e-5, rel=1e-3)


def test_null_rate_with_a_simulation_that_misses_a_process_in_a_sparse_class():
    """The simulation has the data's luminosity: a process of true mean 0.1 per bin (weight 1) often has no
    simulated event in the class, which a rare process (weight 1e-5) fills with one event. Over 300 such
    signal-free experiments the global p is below 0.01 in at most 3 % of them (without the unsimulated
    processes' term, about 20 %: every data event of that process would be a discovery)."""
    toys, below = 300, 0
    for i in range(toys):
        rng = np.random.default_rng(900 + i)
        mu = np.full(3, 0.1)
        sim = rng.poisson(mu).astype(float)  # weight 1: the simulated events are the expected yield
        rare = np.array([0.0, 1e-5, 0.0])
        per = {"c": {"st": np.stack([sim, rare])}}
        exp = {"c": {"st": sim + rare}}
        var = {"c": {"st": sim + rare * 1e-5}}
        obs = {"c": {"st": rng.poisson(mu).astype(float)}}
        r = class_scan(obs, exp, var, n_pe=200, seed=i, process_expected=per, process_weight=np.array([1.0, 1e-5]))
        below += r.p_global < 0.01
    assert below / toys <= 0.03
