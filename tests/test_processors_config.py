"""Configuration values out of range: one ConfigError naming the file, the key, the value and what is allowed."""

from __future__ import annotations

import json
import shutil

import pytest
from cms_anomaly.processors.config import AnalysisConfig, ConfigError, SelectionConfig, load_config


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[objects]\nbtag_level = 'extreme'",
            "[objects] btag_level must be one of ('loose', 'medium', 'tight'), got 'extreme'",
        ),
        ("[objects]\nbtag_level = 2", "[objects] btag_level must be a string, got 2"),
        ("[corrections]\nmuon_pt_min = -1", "[corrections] muon_pt_min must be a finite number >= 0, got -1.0"),
        (
            "[corrections]\nmuon_id_sf = 'NUM_TightID_DEN_TrackerMuons'",
            "[corrections] correction(s) ['NUM_TightID_DEN_TrackerMuons'] named without a file",
        ),
        ("[selections]\ntop_min_jets = 2.7", "[selections] top_min_jets must be a whole number, got 2.7"),
        ("[objects]\nrecluster_radius = 0", "[objects] recluster_radius must be in [0.1, 1.5], got 0.0"),
        ("[features]\nsqrt_s = 1", "[features] sqrt_s must be in [900, 100000], got 1.0"),
        (
            "[objects]\nfatjet_mass = 'softdrop'",
            "[objects] fatjet_mass must be one of ('mass', 'msoftdrop'), got 'softdrop'",
        ),
        ("[features]\nrmm_n_per_type = 0", "[features] rmm_n_per_type must be in [10, 10], got 0"),
        ("[features]\nrmm_n_per_type = 100000", "[features] rmm_n_per_type must be in [10, 10], got 100000"),
        ("[objects]\nphoton_id_min = 4", "[objects] photon_id_min must be in [0, 3], got 4"),
    ],
)
def test_out_of_range_values_are_named(tmp_path, toml, message):
    path = tmp_path / "cfg.toml"
    path.write_text(toml + "\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: {message}"


def test_in_range_values_and_whole_floats_are_kept(tmp_path):
    path = tmp_path / "cfg.toml"
    path.write_text(
        "[selections]\ntop_min_jets = 3.0\n[features]\nsqrt_s = 8000\n[objects]\nfatjet_mass = 'msoftdrop'\n"
    )
    config = load_config(path)
    assert config.selections.top_min_jets == 3
    assert isinstance(config.selections.top_min_jets, int)
    assert config.features.sqrt_s == 8000.0
    with pytest.raises(ConfigError, match="top_min_jets must be a whole number"):
        SelectionConfig(top_min_jets=2.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"sqrt_s must be in \[900, 100000\], got 13.0"):
        AnalysisConfig().with_sqrt_s(13)


def test_cli_refuses_a_bad_config_in_one_line(tmp_path, real_nanoaod_files, capsys):
    from cms_anomaly.cli import main

    shutil.copy(real_nanoaod_files["dy"], tmp_path / "dy.root")
    (tmp_path / "fs.json").write_text(json.dumps({"dy": {"files": ["dy.root"]}}))
    (tmp_path / "bad.toml").write_text("[features]\nrmm_n_per_type = 0\n")
    argv = ["run", str(tmp_path / "fs.json"), "--out", str(tmp_path / "o"), "--executor", "iterative"]
    assert main([*argv, "--config", str(tmp_path / "bad.toml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"cms-anomaly run: error: {tmp_path / 'bad.toml'}: [features] rmm_n_per_type must be in [10, 10], got 0"
    ]
