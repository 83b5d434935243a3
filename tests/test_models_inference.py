"""Scorers for the processor (coffea.ml_tools wrappers), model cards, CLI train/evaluate on feature tables."""

from __future__ import annotations

import json
import pickle

import awkward as ak
import numpy as np
import pytest
import torch
from cms_anomaly.models.data import read_samples
from cms_anomaly.models.errors import FeatureMismatchError, ModelCardError
from cms_anomaly.models.export import load_card
from cms_anomaly.models.feature_sets import HLF21, HLF24, get_feature_set
from cms_anomaly.models.pipeline import TrainOptions, train_and_export, train_bdts
from cms_anomaly.models.scorers import TorchScorer, XGBoostScorer, load_scorer
from cms_anomaly.processors.feature_io import write_table_manifest


def _records(samples, names, *, fs):
    """Processor-style feature record array: one field per scalar feature (plus unrelated extras)."""
    x = np.concatenate([s.x for s in samples.values()])
    if fs.is_array:
        arr = ak.to_regular(ak.from_numpy(x), axis=1)
        return ak.zip({fs.columns[0]: arr, "weight": np.ones(len(x))}, depth_limit=1), x
    fields = {n: x[:, i] for i, n in enumerate(names)}
    fields["weight"] = np.ones(len(x))
    return ak.zip(fields), x


@pytest.fixture(scope="module")
def trained_dir(model_feature_tables, tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    opts = TrainOptions(epochs=2, seed=3, progress=False, threads=1, max_steps_per_epoch=10)
    train_and_export("vae", features_dir=model_feature_tables, out_dir=out, options=opts)
    train_and_export("alad", features_dir=model_feature_tables, out_dir=out, options=opts)
    train_and_export(
        "double-ae",
        features_dir=model_feature_tables,
        out_dir=out,
        options=TrainOptions(epochs=1, seed=3, progress=False, threads=1, batch_size=500, max_steps_per_epoch=2),
    )
    train_bdts(features_dir=model_feature_tables, out_dir=out, seed=3)
    return out


def test_exported_files_and_cards(trained_dir):
    names = sorted(p.name for p in trained_dir.iterdir() if not p.name.endswith(".ckpt"))
    for stem in (
        "vae_hlf21",
        "alad_hlf21_l1",
        "alad_hlf21_l2",
        "alad_hlf21_logits",
        "alad_hlf21_features",
        "double_ae_objects",
        "bdt_ato4l_hlf21",
        "bdt_lq_btau_hlf21",
    ):
        assert any(n.startswith(stem + ".") for n in names if not n.endswith(".card.json")), stem
        assert f"{stem}.card.json" in names
    card = load_card(trained_dir / "vae_hlf21.pt")
    assert card.feature_names == list(HLF21)
    assert card.n_inputs == 21
    assert card.output_names == ["loss_reco"]
    assert card.training["datasets"] == ["ttbar", "wjets"]
    assert card.training["seed"] == 3
    assert card.training["n_train"] + card.training["n_validation"] == 4500
    th = card.thresholds["loss_reco"]
    assert set(th) == {"5.4e-06", "1e-05", "0.001"}
    # 2250 SM validation events (n_eff < 2250): 1e-3 -> ~2 events above, so extrapolated, stated in the card
    assert th["5.4e-06"]["method"] == "exponential_tail_fit"
    assert "note" in th["5.4e-06"]
    assert th["5.4e-06"]["threshold"] > th["0.001"]["threshold"]
    dae = load_card(trained_dir / "double_ae_objects.pt")
    assert dae.output_names == ["r1", "r2"]
    assert dae.feature_names == ["objects"]
    assert dae.n_inputs == 57


def test_torch_scorer_matches_python_module_on_raw_features(trained_dir, model_feature_tables):
    fs = get_feature_set("hlf21")
    samples = read_samples(model_feature_tables, feature_set=fs)
    rec, x = _records(samples, list(HLF21), fs=fs)
    scorer = load_scorer(trained_dir / "vae_hlf21.pt", feature_names=list(HLF24) + [n for n in HLF21 if n not in HLF24])
    assert isinstance(scorer, TorchScorer)
    assert scorer.name == "vae_hlf21"
    assert scorer.output_names == ["loss_reco"]
    got = scorer(rec)
    assert isinstance(got, np.ndarray)
    assert got.shape == (len(x),)
    assert np.all(np.isfinite(got))
    ref = torch.jit.load(str(trained_dir / "vae_hlf21.pt"))(torch.as_tensor(x)).detach().numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    # empty chunk: (0,) without calling the network
    assert scorer(rec[:0]).shape == (0,)
    # pickles without the loaded model (Dask / futures workers load lazily)
    clone = pickle.loads(pickle.dumps(scorer))
    assert clone._model is None
    np.testing.assert_allclose(clone(rec[:100]), got[:100], rtol=1e-6)


def test_two_output_scorer_and_alad(trained_dir, model_feature_tables):
    fs = get_feature_set("objects")
    rec, x = _records(read_samples(model_feature_tables, feature_set=fs), [], fs=fs)
    scorer = load_scorer(trained_dir / "double_ae_objects.pt")
    out = scorer(rec)
    assert out.shape == (len(x), 2)
    assert np.all(np.isfinite(out))
    assert scorer(rec[:0]).shape == (0, 2)
    fs = get_feature_set("hlf21")
    rec, x = _records(read_samples(model_feature_tables, feature_set=fs), list(HLF21), fs=fs)
    l1 = load_scorer(trained_dir / "alad_hlf21_l1.pt")(rec)
    l2 = load_scorer(trained_dir / "alad_hlf21_l2.pt")(rec)
    assert np.all(l1 >= l2 - 1e-4)  # ||v||_1 >= ||v||_2
    assert np.all(l1 > 0)


def test_xgboost_scorer(trained_dir, model_feature_tables):
    import xgboost

    fs = get_feature_set("hlf21")
    rec, x = _records(read_samples(model_feature_tables, feature_set=fs), list(HLF21), fs=fs)
    scorer = load_scorer(trained_dir / "bdt_ato4l_hlf21.json", threads=1)
    assert isinstance(scorer, XGBoostScorer)
    got = scorer(rec)
    ref = xgboost.Booster(model_file=str(trained_dir / "bdt_ato4l_hlf21.json")).inplace_predict(x)
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    assert np.all((got >= 0) & (got <= 1))
    assert scorer(rec[:0]).shape == (0,)
    assert pickle.loads(pickle.dumps(scorer))(rec[:5]).shape == (5,)


def test_feature_mismatch_is_named(trained_dir):
    path = trained_dir / "vae_hlf21.pt"
    names = list(HLF21)
    with pytest.raises(FeatureMismatchError, match=r"missing \['n_neu_had'\]"):
        load_scorer(path, feature_names=names[:-1])
    swapped = names.copy()
    swapped[0], swapped[1] = swapped[1], swapped[0]
    load_scorer(path, feature_names=swapped)  # a superset in any order is fine: inputs are picked by name
    with pytest.raises(FeatureMismatchError, match="misordered") as err:
        load_scorer(path, feature_names=swapped, exact=True)
    assert "pt_lep" in str(err.value)
    assert str(path) in str(err.value)
    with pytest.raises(FeatureMismatchError, match=r"extra \['ht'\]"):
        load_scorer(path, feature_names=[*names, "ht"], exact=True)
    # a record array lacking a field is refused at call time, naming it
    scorer = load_scorer(path)
    rec = ak.zip({n: np.zeros(3, np.float32) for n in names if n != "mt"})
    with pytest.raises(FeatureMismatchError, match=r"missing \['mt'\]"):
        scorer(rec)


def test_missing_card_is_an_error(trained_dir, tmp_path):
    lonely = tmp_path / "model.pt"
    lonely.write_bytes((trained_dir / "vae_hlf21.pt").read_bytes())
    with pytest.raises(ModelCardError, match=r"model\.card\.json"):
        load_scorer(lonely)


def _copy_model(trained_dir, tmp_path, name):
    import shutil

    model = tmp_path / name
    shutil.copy(trained_dir / name, model)
    card = name.rsplit(".", 1)[0] + ".card.json"
    shutil.copy(trained_dir / card, tmp_path / card)
    return model, tmp_path / card


def _rehash(model, card):
    from cms_anomaly.models.export import file_sha256

    data = json.loads(card.read_text())
    data["sha256"] = file_sha256(model)
    card.write_text(json.dumps(data))


def test_a_changed_model_file_is_refused_by_its_sha256(trained_dir, tmp_path, caplog):
    """A model file is code: one changed byte and the card's SHA-256 refuses it before it is loaded."""
    from cms_anomaly.models.export import file_sha256

    pt, card = _copy_model(trained_dir, tmp_path, "vae_hlf21.pt")
    data = json.loads(card.read_text())
    assert data["format"] == "torchscript"
    assert data["sha256"] == file_sha256(pt)
    load_scorer(pt)
    raw = bytearray(pt.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    pt.write_bytes(bytes(raw))
    with pytest.raises(ModelCardError) as err:
        load_scorer(pt)
    assert str(err.value) == (
        f"{pt}: SHA-256 differs from the one its card vae_hlf21.card.json recorded at export: the file was "
        "changed or replaced; re-export the model (cms-anomaly train) to get a matching file and card"
    )
    # a card written before the hash existed: accepted, with a warning asking to re-export
    pt.write_bytes((trained_dir / "vae_hlf21.pt").read_bytes())
    card.write_text(json.dumps({k: v for k, v in data.items() if k not in ("sha256", "format")}))
    load_scorer(pt)
    assert "records no SHA-256" in caplog.text


def test_an_xgboost_model_with_a_vae_card_is_refused(trained_dir, tmp_path):
    """Same width (HLF-21), other kind: refused in one line, not scored and labelled ``loss_reco``."""
    import shutil

    bdt_name = next(p.name for p in trained_dir.glob("bdt_*hlf21.json"))
    shutil.copy(trained_dir / bdt_name, tmp_path / "model.json")
    shutil.copy(trained_dir / "vae_hlf21.card.json", tmp_path / "model.card.json")
    with pytest.raises(ModelCardError) as err:
        load_scorer(tmp_path / "model.json")
    assert str(err.value) == (
        f"{tmp_path / 'model.json'}: a xgboost model file, but its card model.card.json describes a torchscript "
        "'vae' model (vae_hlf21.pt): use the card written with this model"
    )
    data = json.loads((tmp_path / "model.card.json").read_text())  # an older card: the kind from model_type
    (tmp_path / "model.card.json").write_text(json.dumps({k: v for k, v in data.items() if k != "format"}))
    with pytest.raises(ModelCardError, match="describes a torchscript 'vae' model"):
        load_scorer(tmp_path / "model.json")


def test_broken_models_are_named_before_any_chunk(trained_dir, tmp_path):
    """A truncated .pt, a corrupt XGBoost JSON and a card of another width: the model is named."""
    pt, pt_card = _copy_model(trained_dir, tmp_path, "vae_hlf21.pt")
    pt.write_bytes(pt.read_bytes()[:1000])
    _rehash(pt, pt_card)  # as if exported broken: past the SHA-256 check, to the load
    with pytest.raises(ModelCardError, match=r"vae_hlf21.pt: cannot load or evaluate"):
        load_scorer(pt)
    bdt_name = next(p.name for p in trained_dir.glob("bdt_*.json") if not p.name.endswith(".card.json"))
    bdt, bdt_card = _copy_model(trained_dir, tmp_path, bdt_name)
    bdt.write_text(bdt.read_text()[:200])
    _rehash(bdt, bdt_card)
    with pytest.raises(ModelCardError, match=bdt_name):
        load_scorer(bdt)
    # an HLF-21 model with an HLF-24 card
    alad, card = _copy_model(trained_dir, tmp_path, "alad_hlf21_l1.pt")
    data = json.loads(card.read_text())
    from cms_anomaly.models.feature_sets import get_feature_set

    data["feature_names"] = list(get_feature_set("hlf24").columns)
    data["n_inputs"] = len(data["feature_names"])
    card.write_text(json.dumps(data))
    with pytest.raises(ModelCardError, match=r"alad_hlf21_l1\.pt"):
        load_scorer(alad)


def test_non_finite_weights_are_refused_with_file_and_column(model_feature_tables, tmp_path):
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq
    from cms_anomaly.models.data import read_dataset
    from cms_anomaly.models.errors import FeatureTableError
    from cms_anomaly.models.feature_sets import get_feature_set

    name = min(p.name for p in model_feature_tables.iterdir() if p.is_dir())
    shutil.copytree(model_feature_tables / name, tmp_path / name)
    path = min((tmp_path / name).glob("*.parquet"))
    table = pq.read_table(path)
    w = table.column("weight").to_numpy().copy()
    w[3] = np.nan
    pq.write_table(table.set_column(table.schema.get_field_index("weight"), "weight", pa.array(w)), path)
    write_table_manifest(tmp_path, sorted(tmp_path.glob("*/*.parquet")))
    with pytest.raises(FeatureTableError, match=rf"{path.name}: column 'weight' has 1 non-finite"):
        read_dataset(tmp_path, name, feature_set=get_feature_set("hlf21"))


def test_cli_train_and_evaluate(model_feature_tables, tmp_path, capsys):
    from cms_anomaly.cli import main

    assert (
        main(
            [
                "train",
                "vae",
                "--features",
                str(model_feature_tables),
                "--out",
                str(tmp_path / "m"),
                "--epochs",
                "2",
                "--no-progress",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    assert (tmp_path / "m" / "vae_hlf21.pt").exists()
    assert (tmp_path / "m" / "vae_hlf21.card.json").exists()
    assert (
        main(
            [
                "evaluate",
                "--features",
                str(model_feature_tables),
                "--out",
                str(tmp_path / "e"),
                "--epochs-scale",
                "0.03",
                "--no-progress",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| ato4l |" in printed
    assert "lambda=100" in printed
    summary = json.loads((tmp_path / "e" / "evaluation.json").read_text())
    assert (tmp_path / "e" / "training_vae_hlf21.png").stat().st_size > 10_000  # the loss curves of its card
    for sig in ("ato4l", "lq_btau"):
        row = summary["metrics"][sig]
        assert set(row) >= {
            "VAE",
            "ALAD l1",
            "ALAD l2",
            "ALAD logits",
            "ALAD features",
            "AE (RMM)",
            "double AE (λ=100)",
            "BDT (supervised)",
            "baseline (HLF-21)",
            "baseline (RMM)",
            "baseline (objects)",
        }
        assert all(0.0 <= v["auc"] <= 1.0 for v in row.values())
        # the supervised BDT separates the shifted synthetic signals
        assert row["BDT (supervised)"]["auc"] > 0.9
    # so do the unsupervised detectors trained on SM only (measured: VAE 0.98 / 0.89, ALAD L1 0.96 / 0.85,
    # AE 1.00 / 1.00, double AE 0.84 / 0.74 for the more / less shifted signal; the double AE sees log(pT),
    # which compresses the momentum shift): a detector scoring at random (AUC 0.5) fails here
    metrics = summary["metrics"]
    for model in ("VAE", "ALAD l1", "AE (RMM)", "double AE (λ=100)"):
        assert metrics["ato4l"][model]["auc"] > (0.8 if model.startswith("double") else 0.85), model
        assert metrics["lq_btau"][model]["auc"] > 0.7, model
        assert metrics["ato4l"][model]["auc"] > metrics["lq_btau"][model]["auc"] - 0.02, model  # larger shift
    assert set(summary["double_ae_distance_correlation"]) == {"lambda=100", "lambda=0"}
    # the baseline beside them on the same events: its AUC by hand (numpy median and std of the SM training
    # half; P(signal above SM) + P(tie) / 2 with the SM validation half's weights and the signal test half)
    from cms_anomaly.models.data import validation_mask
    from cms_anomaly.models.pipeline import split_cocktail

    samples = read_samples(model_feature_tables, feature_set=get_feature_set("hlf21"))
    train_s, val_s = split_cocktail(samples, val_fraction=0.5, seed=1)
    med, std = np.median(train_s.x, axis=0), train_s.x.std(axis=0)
    std[std == 0] = 1.0
    sig = samples["ato4l"].x[validation_mask(samples["ato4l"], val_fraction=0.5, seed=1)]
    s_bkg, s_sig = (np.abs(val_s.x - med) / std).sum(axis=1), (np.abs(sig - med) / std).sum(axis=1)
    order = np.argsort(s_bkg)
    cum = np.concatenate([[0.0], np.cumsum(val_s.weight[order])])
    lo, hi = np.searchsorted(s_bkg[order], s_sig, "left"), np.searchsorted(s_bkg[order], s_sig, "right")
    by_hand = np.mean(cum[lo] + 0.5 * (cum[hi] - cum[lo])) / cum[-1]
    assert metrics["ato4l"]["baseline (HLF-21)"]["auc"] == pytest.approx(by_hand, abs=1e-4)
    assert (tmp_path / "e" / "roc_ato4l.png").stat().st_size > 10_000


def test_scorer_in_dask_awkward_graph(trained_dir, model_feature_tables):
    import dask_awkward as dak

    fs = get_feature_set("hlf21")
    rec, _ = _records(read_samples(model_feature_tables, feature_set=fs), list(HLF21), fs=fs)
    scorer = load_scorer(trained_dir / "vae_hlf21.pt")
    lazy = scorer(dak.from_awkward(rec, npartitions=3))
    assert isinstance(lazy, dak.Array)
    np.testing.assert_allclose(ak.to_numpy(lazy.compute()), scorer(rec), rtol=1e-6)


def test_bdt_skips_a_signal_without_events_on_both_sides_of_the_split(model_feature_tables, tmp_path, caplog):
    """One selected signal event lies on one side of the event-identity split: no BDT, a warning, the
    others trained; the card counts the signal's training events, not all of them."""
    import json

    from cms_anomaly.models.data import Sample, read_samples, validation_mask
    from cms_anomaly.models.feature_sets import get_feature_set

    samples = read_samples(model_feature_tables, feature_set=get_feature_set("hlf21"))
    lone = samples["lq_btau"].subset(np.arange(1))
    samples["lq_btau"] = Sample("lq_btau", lone.x, lone.weight, True, lone.run, lone.event)
    with caplog.at_level("WARNING"):
        paths = train_bdts(features_dir=model_feature_tables, out_dir=tmp_path, samples=samples, seed=3)
    assert set(paths) == {"ato4l"}
    assert "BDT for lq_btau skipped" in caplog.text
    card = json.loads((tmp_path / "bdt_ato4l_hlf21.card.json").read_text())
    expected = int((~validation_mask(samples["ato4l"], val_fraction=0.5, seed=3)).sum())
    assert card["training"]["n_signal_train"] == expected < len(samples["ato4l"])


def test_score_axes_follow_the_validation_score_range():
    """A model whose scores reach zero or below gets a linear axis around them, classifiers' probabilities
    a linear [0, 1] axis, positive scores (also below 1) the default log axis; two-output models a log ABCD plane fitted to them."""
    from cms_anomaly.models.export import ModelCard
    from cms_anomaly.models.scorers import score2d_binning_for, score_binning_for

    def card(ranges: dict, outputs: list[str], model_type: str = "x") -> ModelCard:
        return ModelCard(
            model_type=model_type, feature_set="hlf21", feature_names=["a"], n_inputs=1, output_names=outputs,
            score=outputs[0], score_ranges=ranges,
        )  # fmt: skip

    # the VAE's negative log-likelihood from -3 to 50: half the range below, twice above
    assert score_binning_for(card({"nll": [-3.0, 50.0]}, ["nll"])) == (2000, -3.0 - 26.5, 50.0 + 106.0)
    assert score_binning_for(card({"p": [0.001, 0.999]}, ["p"], "bdt")) == (2000, 0.0, 1.0)
    assert score_binning_for(card({"p": [0.02, 0.97]}, ["p_signal"], "cwola_bdt")) == (2000, 0.0, 1.0)
    # an autoencoder's MSE, all below 1, is a loss, not a probability: the log axis (was [0, 1] linear,
    # which put every loss below 0.002 into the first bins of the outlier study's ln(Loss))
    assert score_binning_for(card({"mse": [0.0006, 0.27]}, ["mse"], "ae")) is None
    assert score_binning_for(card({"l1": [0.1, 5.0]}, ["l1"])) is None
    assert score_binning_for(card({}, ["l1"])) is None  # an older card without ranges
    # R1 in [0.1, 4], R2 in [0.2, 8]: from 0.025 to 80, 100 bins per decade (3.5 decades)
    bins, lo, hi, kind = score2d_binning_for(card({"r1": [0.1, 4.0], "r2": [0.2, 8.0]}, ["r1", "r2"]))
    assert (lo, hi, kind) == (pytest.approx(0.025), pytest.approx(80.0), "log")
    assert bins == int(np.ceil(100 * np.log10(80.0 / 0.025)))
    assert score2d_binning_for(card({"l1": [0.1, 5.0]}, ["l1"])) is None  # one output: no plane
