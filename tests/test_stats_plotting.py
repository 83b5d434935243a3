"""Plotting helpers write non-empty PNG files atomically."""

from __future__ import annotations

from pathlib import Path

import hist
import numpy as np
import pytest
from cms_anomaly.analyses import plotting
from cms_anomaly.stats import bumphunt, fits

from cms_anomaly import stats as statistics

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _check_png(path: Path) -> None:
    assert path.is_file()
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 10_000  # a drawn figure, not an empty canvas
    assert not list(path.parent.glob(f"{path.name}.tmp-*"))  # atomic write left no temporary


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(41)


def test_plot_roc(tmp_path, rng):
    b = rng.normal(0, 1, 20_000)
    curves = {f"d = {d}": statistics.roc_curve(b, rng.normal(d, 1, 5000)) for d in (1.0, 2.5)}
    _check_png(plotting.plot_roc(curves, tmp_path / "roc.png"))
    _check_png(plotting.plot_sic(curves, tmp_path / "sic.png", min_bkg_events=20))
    with pytest.raises(plotting.PlotError):
        plotting.plot_roc({}, tmp_path / "empty.png")


def test_plot_data_mc(tmp_path, rng):
    axis = hist.axis.Regular(20, 0, 2000, name="ht", label="$H_T$ [GeV]")

    def filled(values, weight):
        h = hist.Hist(axis, storage=hist.storage.Weight())
        h.fill(values, weight=np.full(values.size, weight))
        return h

    mc = {"W+jets": filled(rng.exponential(200, 4000), 2.0), "Z+jets": filled(rng.exponential(250, 1000), 1.0)}
    data = hist.Hist(axis)
    data.fill(np.concatenate([rng.exponential(200, 8000), rng.exponential(250, 1000)]))
    out = plotting.plot_data_mc(
        data,
        mc,
        tmp_path / "sub" / "stack.png",
        signals={r"$t\bar{t}$": filled(rng.normal(800, 200, 300), 0.5)},
        lumi=5.0,
    )
    _check_png(out)
    other = hist.Hist(hist.axis.Regular(10, 0, 2000, name="ht"))
    with pytest.raises(plotting.PlotError, match="binning"):
        plotting.plot_data_mc(data, {"W+jets": other}, tmp_path / "bad.png")
    # anomaly scores spanning decades: log-spaced bins on a log x axis; linear bins from 0 are refused
    log_axis = hist.axis.Regular(30, 0.5, 5e4, transform=hist.axis.transform.log, name="score")
    scores = {k: hist.Hist(log_axis).fill(rng.lognormal(mu, 1.0, 2000)) for k, mu in (("W", 2.0), ("data", 2.1))}
    _check_png(plotting.plot_data_mc(scores["data"], {"W": scores["W"]}, tmp_path / "score.png", logx=True))
    with pytest.raises(plotting.PlotError, match="logx"):
        plotting.plot_data_mc(data, mc, tmp_path / "bad_log.png", logx=True)


def test_plot_astf(tmp_path, rng):
    axis = hist.axis.Integer(0, 10, name="nj", label="$N_J$")
    nj = rng.poisson(2.5, 50_000)
    score = rng.normal(0, 1, nj.size) + 0.5 * nj
    thr = statistics.threshold_at_efficiency(score, efficiency=1e-2)

    def filled(values):
        h = hist.Hist(axis, storage=hist.storage.Weight())
        h.fill(values, weight=np.ones(values.size))
        return h

    res = statistics.astf(filled(nj), filled(nj[score > thr]))
    res_mc = statistics.astf(filled(nj[::2]), filled(nj[::2][score[::2] > thr]))
    _check_png(plotting.plot_astf({"Data": res, "MC": res_mc}, tmp_path / "astf.png", alpha=1e-2))


def test_plot_fit_and_bumphunt(tmp_path):
    edges = np.linspace(1500.0, 6500.0, 41)
    counts, _ = fits.sample_dijet_counts(edges, [2e3, 10.0, -5.0, -0.3, -0.02], seed=4)
    h = hist.Hist(hist.axis.Variable(edges, name="mjj", label="$m_{jj}$ [GeV]"), storage=hist.storage.Weight())
    h[...] = np.stack([counts, counts], axis=-1)
    res = fits.fit_dijet(h, model="chekanov5", exclude=[(3000.0, 3400.0)])
    _check_png(plotting.plot_fit(res, tmp_path / "fit.png"))
    bh = bumphunt.bump_hunt(counts, res.expected, seed=1, npe=100)
    _check_png(plotting.plot_bumphunt(bh, tmp_path / "bh.png"))


def test_data_mc_axis_follows_the_populated_bins_and_drops_bars_on_empty_data():
    """Three data events on a 3 TeV axis: no comb of Poisson bars on the empty bins, no empty axis."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt
    from cms_anomaly.analyses.plot_hists import _drop_empty_data_bars, _populated_range

    edges = np.linspace(0, 3000, 61)
    data = np.zeros(60)
    data[[2, 5, 8]] = 1
    mc = np.zeros(60)
    mc[:12] = 0.5
    assert _populated_range(edges, data, mc) == (0.0, 650.0)  # bins 0-11 filled, one bin of margin
    assert _populated_range(edges, np.zeros(60)) == (0.0, 3000.0)
    fig, ax = plt.subplots()
    centres = 0.5 * (edges[1:] + edges[:-1])
    ax.errorbar(centres, data, yerr=np.where(data > 0, 1.0, 1.84), fmt="o")
    _drop_empty_data_bars([ax], data)
    (segments,) = [c.get_segments() for c in ax.containers[0].lines[2]]
    assert len(segments) == 3
    plt.close(fig)
