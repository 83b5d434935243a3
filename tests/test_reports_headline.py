"""Report rows from few events are marked; training curves are drawn; the paper-alpha sentence."""

from __future__ import annotations

import numpy as np
import pytest
from cms_anomaly.analyses import hunt_report, rediscovery
from cms_anomaly.analyses.headline import paper_alpha, paper_alpha_sentence
from cms_anomaly.analyses.plot_training import card_history, plot_model_training, plot_training, xgboost_history
from cms_anomaly.stats.headline import (
    FEW_EVENTS_MARK,
    FEW_EVENTS_NOTE,
    MIN_EVENTS_FOR_HEADLINE,
    few_events,
    scale_for_events,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_few_events_threshold():
    assert MIN_EVENTS_FOR_HEADLINE == 10
    assert few_events(9)
    assert few_events(9.4)
    assert not few_events(10)
    assert not few_events(250)
    assert few_events(50, 9)
    assert not few_events(50, 10)
    assert few_events(None)
    assert few_events(float("nan"))
    with pytest.raises(ValueError, match="at least one count"):
        few_events()


def _unit_sums(counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(sum w, sum w^2) per score bin of unit-weight events."""
    w = np.asarray(counts, dtype=np.float64)
    return w, w.copy()


def test_rediscovery_tables_mark_rows_from_few_events():
    # ttbar: 9 events in the last bin (few at first_bin 2), 19 from bin 1; W+Z: 40 and 90
    sig, bkg = _unit_sums([100, 10, 9]), _unit_sums([900, 50, 40])
    few, enough = (rediscovery._efficiency_ratio(sig, bkg, first_bin=k) for k in (2, 1))
    assert (few["ttbar_passed"], few["few_events"]) == (9, True)
    assert (enough["ttbar_passed"], enough["few_events"]) == (19, False)
    public = {
        "alpha": 0.01,
        "efficiency_ratio": {"0.001": {"threshold": 2.0, **few}, "0.01": {"threshold": 1.0, **enough}},
    }
    lines = rediscovery._efficiency_lines(public)
    assert lines[0].startswith(f"| 0.001 {FEW_EVENTS_MARK} |")
    assert lines[1].startswith("| 0.01 |")
    assert FEW_EVENTS_NOTE in lines

    purity = {
        "0.001": {"threshold": 2.0, **rediscovery._purity_ratio(5, 9, 100, 1000)},
        "0.01": {"threshold": 1.0, **rediscovery._purity_ratio(6, 10, 100, 1000)},
    }
    assert purity["0.001"]["few_events"]
    assert not purity["0.01"]["few_events"]
    rows = [r for r in rediscovery._purity_lines({"alpha": 0.01, "purity_ratio": purity}) if r.startswith("| 0.0")]
    assert rows[0].startswith(f"| 0.001 {FEW_EVENTS_MARK} |")
    assert rows[1].startswith("| 0.01 |")


def test_tables_without_few_events_have_no_note():
    sig, bkg = _unit_sums([100, 30]), _unit_sums([900, 40])
    r = rediscovery._efficiency_ratio(sig, bkg, first_bin=1)
    lines = rediscovery._efficiency_lines({"alpha": 0.01, "efficiency_ratio": {"0.01": {"threshold": 1.0, **r}}})
    assert FEW_EVENTS_NOTE not in lines
    assert FEW_EVENTS_MARK not in lines[0]


def test_hunt_scan_rows_marked_and_flagged():
    window = {"alpha": 0.01, "window_gev": [80.0, 100.0], "expected": 2.0, "z_local": 2.5}
    analysed = {
        "selections": [],
        "ranking": [],
        "scan": {
            "best": None,
            "per_variable": [
                {"variable": "m_jj", "observed": 9, **window},
                {"variable": "m_bb", "observed": 10, **window},
            ],
        },
    }
    hunt_report.mark_few_events(analysed)
    assert [r["few_events"] for r in analysed["scan"]["per_variable"]] == [True, False]
    lines = hunt_report._scan_lines(analysed)
    assert any(r.startswith(f"| m_jj {FEW_EVENTS_MARK} |") for r in lines)
    assert any(r.startswith("| m_bb |") for r in lines)
    assert lines[-1] == FEW_EVENTS_NOTE


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 10_000


def test_training_curves_per_epoch_and_per_step(tmp_path):
    epochs = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.5 / e, "lr": 1e-3} for e in range(1, 31)]
    _assert_png(plot_training(epochs, tmp_path / "epochs.png", best=20, title="ae"))
    steps = [
        {
            "step": s,
            "epoch": s // 100,
            "train_loss": np.exp(-s / 300) + 0.3,
            "val_loss": np.exp(-s / 300) + 0.4 if s % 50 == 0 else None,
            "criterion": 0.6 + 1e-4 * s if s % 50 == 0 else None,
            "lr": 1e-4,
        }
        for s in range(1, 1001)
    ]
    _assert_png(plot_training(steps, tmp_path / "steps.png", best=800, title="alad"))
    rounds = xgboost_history({"train": {"logloss": [0.69, 0.6, 0.55]}, "val": {"logloss": [0.69, 0.62, 0.6]}})
    assert [r["step"] for r in rounds] == [1, 2, 3]
    assert rounds[2]["val_loss"] == 0.6
    _assert_png(plot_training(rounds, tmp_path / "xgb.png", loss_label="logloss"))
    with pytest.raises(ValueError, match="no entry"):
        plot_training([{"epoch": 1, "lr": 1e-3}], tmp_path / "none.png")


def test_training_curves_from_model_cards(tmp_path):
    from cms_anomaly.models.export import ModelCard, write_card

    steps = [
        {"step": 10 * i, "epoch": i, "train_loss": 2.0 / i, "val_loss": 2.5 / i, "criterion": 0.1 * i}
        for i in range(1, 21)
    ]
    cards = {
        "alad": ({"history": steps, "best_step": 150}, 150.0),
        "ae": ({"history": steps[:5], "best_epoch": 3}, None),
    }
    models = {}
    for name, (training, best) in cards.items():
        model = tmp_path / f"{name}.pt"
        model.write_bytes(b"model bytes")
        card = ModelCard(name, "hlf24", ["a"], 1, ["l1"], "l1", training=training)
        write_card(card, model)
        models[name] = model
        assert card_history(training)[1] == best
    assert card_history({"history": [{"epoch": 1, "train_loss": 1.0}], "best_epoch": 1})[1] == 1.0
    pngs = plot_model_training({**models, "empty": _card_without_history(tmp_path)}, tmp_path)
    assert [p.name for p in pngs] == ["training_alad.png", "training_ae.png"]
    for p in pngs:
        _assert_png(p)


def _card_without_history(tmp_path):
    from cms_anomaly.models.export import ModelCard, write_card

    model = tmp_path / "bdt.json"
    model.write_text("{}")
    write_card(ModelCard("bdt", "hlf21", ["a"], 1, ["p"], "p", training={"seed": 1}), model)
    return model


def test_paper_alpha_sentence():
    few = paper_alpha(n_data=2000, data_fraction=0.001, events_scale=1.0, wall_seconds=900.0, cpu_seconds=1500.0)
    assert (few["selected"], few["enough"], few["events_needed"]) == (2, False, 5.0)
    assert (few["wall_seconds_needed"], few["cpu_seconds_needed"]) == (4500.0, 7500.0)
    text = paper_alpha_sentence(few)
    assert "selects 2 of its 2000" in text
    assert "`--events 5`" in text
    assert "extrapolation" in text
    assert "1.2 h wall and 2.1 h CPU" in text
    enough = paper_alpha(n_data=20000, data_fraction=0.001, events_scale=2.0, wall_seconds=900.0, cpu_seconds=1500.0)
    assert enough["enough"]
    assert enough["events_needed"] == 2.0
    assert "at least 10" in paper_alpha_sentence(enough)
    # none selected: the nominal alpha sets the scale
    assert scale_for_events(0, n_total=2000, fraction=1e-3) == pytest.approx(5.0)
    assert scale_for_events(12, n_total=2000, fraction=1e-3) == 1.0


@pytest.mark.slow  # trains two small XGBoost classifiers (imports torch and xgboost): ~35 s on a loaded 2-core machine
def test_cwola_card_keeps_the_logloss_per_round_and_plots_it(tmp_path):
    from cms_anomaly.models.bdt import CWOLA_COLUMNS, BDTParams
    from cms_anomaly.models.pipeline import train_cwola_region

    rng = np.random.default_rng(4)
    n = 400
    cols = {c: rng.uniform(0.1, 1.0, n) for c in CWOLA_COLUMNS}
    cols["mJJ"] = rng.uniform(2000.0, 5000.0, n)
    labels = rng.integers(0, 2, n)
    folds = np.arange(n) % 2
    params = BDTParams(n_estimators=12, n_threads=1)
    paths = train_cwola_region(cols, labels, folds, k_folds=2, out_dir=tmp_path, name="cwola", seed=1, params=params)
    pngs = plot_model_training({"cwola": paths[0]}, tmp_path)
    from cms_anomaly.models.export import load_card

    history, _ = card_history(load_card(paths[0]).training)
    assert [r["step"] for r in history] == list(range(1, 13))
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    _assert_png(pngs[0])


def test_trigger_table3_marks_a_process_with_few_selected_events():
    from cms_anomaly.analyses import trigger

    # unit weights: 9 W and 30 Z events in the score bins from 2 on
    w, z = _unit_sums([500, 40, 9]), _unit_sums([200, 10, 30])
    eff = {n: trigger._efficiency(trigger.Binned(*s), 2) for n, s in (("wjets", w), ("zjets", z))}
    assert (eff["wjets"]["n_selected"], eff["wjets"]["few_events"]) == (9, True)
    assert (eff["zjets"]["n_selected"], eff["zjets"]["few_events"]) == (30, False)
    row = {"fraction_after_selection": 0.5, "selected_composition": 0.5, "events_per_month": 1.0}
    result = {
        "table3": {n: {**row, "vae_efficiency": e} for n, e in eff.items()},
        "sm_efficiency": 0.05,
        "sm_events_per_month": 2.0,
    }
    lines = trigger._table3_lines(result)
    assert any(r.startswith(f"| wjets {FEW_EVENTS_MARK} |") for r in lines)
    assert any(r.startswith("| zjets |") for r in lines)
    assert FEW_EVENTS_NOTE in lines


def test_disco_closure_and_significance_rows_marked_by_the_simulated_events_in_region_a():
    from cms_anomaly.analyses import disco

    closure = {"closure": 1.0, "closure_error": 0.1, "significance": 0.5}
    sig = {**closure, "significance_corrected": 1.0, "significance_true": 1.0}

    def row(eff: float, sm_a: float, sm_a_w2: float) -> dict:
        return {
            "efficiency": eff,
            "choice": "diagonal",
            "sm_a": sm_a,
            "sm_a_entries_w2": sm_a_w2,
            "sm_only": closure,
            "s": sig,
        }

    # weights 10 per simulated event: 90 = 9 simulated events, 100 = 10
    rows = [row(0.001, 90.0, 900.0), row(0.01, 100.0, 1000.0)]
    result = {"spread": {"sm_only_max_closure_deviation": {"max": 0.1, "mean": 0.05}}}
    for lines in (
        disco._closure_lines(result, {"seeds": [1]}, rows, ["s"]),
        disco._significance_lines({"seeds": [1]}, rows, ["s"]),
    ):
        assert any(r.startswith(f"| 0.001 {FEW_EVENTS_MARK} |") for r in lines)
        assert any(r.startswith("| 0.01 |") for r in lines)
        assert FEW_EVENTS_NOTE in lines


def test_outlier_report_marks_efficiency_and_gain_rows_from_few_events():
    from cms_anomaly.analyses import outlier

    gain = {
        "s_over_b_before": 0.01,
        "s_over_b_after": 0.1,
        "signal_efficiency": 0.5,
        "background_efficiency": 0.05,
        "gain": 10.0,
        "gain_lower_limit": 4.0,
    }
    result = {
        "ln_loss_cut": -6.0,
        "ln_bins_per_unit": 10.0,
        "sm_efficiency": 0.01,
        "efficiencies": {"wjets": {"efficiency": 0.01, "entries": 9}, "ttbar": {"efficiency": 0.02, "entries": 10}},
        "fits": {},
        "hplus_gain": {
            "all": {**gain, "background_entries_after": 40},
            "m > 500": {**gain, "background_entries_after": 3},
        },
    }
    meta = {
        "sm_events": {"wjets": 100},
        "signal_events": {"hplus_t": 10},
        "n_train": 50,
        "kept_cells": 100,
        "outlier_fraction": 0.01,
        "seconds": {"total": 1.0},
    }
    lines = outlier.format_report(result, meta, []).splitlines()
    assert f"| wjets {FEW_EVENTS_MARK} | 0.01 | 9 |" in lines
    assert "| ttbar | 0.02 | 10 |" in lines
    assert any(r.startswith(f"| m_bb m > 500 {FEW_EVENTS_MARK} |") for r in lines)
    assert any(r.startswith("| m_bb all |") for r in lines)
    assert lines.count(FEW_EVENTS_NOTE) == 2
