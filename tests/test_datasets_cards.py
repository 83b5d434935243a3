"""Process cards: the packaged set, and clear errors for bad cards."""

from __future__ import annotations

import pytest
from cms_anomaly.datasets import cards
from cms_anomaly.datasets.generator import GeneratorError, PythiaGenerator

REQUIRED = {"wjets", "zjets", "ttbar", "qcd", "ato4l", "lq_btau", "h0_tautau", "hplus_taunu", "zprime_xy", "hplus_t"}


def test_packaged_cards_cover_the_required_processes():
    names = set(cards.list_processes())
    assert names >= REQUIRED
    signal = {c.name for c in cards.all_cards() if c.is_signal}
    assert {
        "ato4l",
        "lq_btau",
        "h0_tautau",
        "hplus_taunu",
        "zprime_xy",
        "hplus_t",
        "zprime_ssm",
        "wprime_ssm",
    } <= signal
    assert not signal & {"wjets", "zjets", "ttbar", "qcd", "qcd_dijet"}
    assert cards.load_card("qcd").filter == cards.LeptonFilter(
        min_leptons=1, lepton_pt_min=15.0, lepton_abs_eta_max=2.5
    )


def test_digest_changes_with_settings():
    a = cards.parse_card('name = "x"\ndescription = "d"\nis_signal = false\nsettings = ["Top:gg2ttbar = on"]')
    b = cards.parse_card('name = "x"\ndescription = "d"\nis_signal = false\nsettings = ["Top:qqbar2ttbar = on"]')
    assert a.digest != b.digest


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('description = "d"\nis_signal = false\nsettings = ["Top:gg2ttbar = on"]', "missing required key 'name'"),
        (
            'name = "x"\ndescription = "d"\nis_signal = "no"\nsettings = ["Top:gg2ttbar = on"]',
            "'is_signal' must be bool",
        ),
        (
            'name = "x"\ndescription = "d"\nis_signal = false\nsettings = ["Top:gg2ttbar on"]',
            "not of the form 'Key = value'",
        ),
        (
            'name = "x"\ndescription = "d"\nis_signal = false\nsettings = ["Random:seed = 4"]',
            "reserved for the generator",
        ),
        ('name = "x"\ndescription = "d"\nis_signal = false\nsettings = []', "'settings' is empty"),
        ('name = "X y"\ndescription = "d"\nis_signal = false\nsettings = ["Top:gg2ttbar = on"]', "must match"),
        (
            'name = "x"\ndescription = "d"\nis_signal = false\nsetings = ["Top:gg2ttbar = on"]',
            "unknown key(s) ['setings']",
        ),
        (
            'name = "x"\ndescription = "d"\nis_signal = false\nsettings = ["a = b"]\n[filter]\nlepton_pt = 3',
            "unknown [filter] key",
        ),
        (
            'name = "x"\ndescription = "d"\nis_signal = false\nsettings = ["a = b"]\n[filter]\nmin_leptons = 0',
            "out of range",
        ),
        ('name = "x" description', "not valid TOML"),
    ],
)
def test_bad_card_text_is_rejected_with_the_file_and_key(text, message):
    with pytest.raises(cards.CardError) as err:
        cards.parse_card(text, path="my/card.toml")
    assert "my/card.toml" in str(err.value)
    assert message in str(err.value)


def test_unknown_process_and_missing_file(tmp_path):
    with pytest.raises(cards.CardError, match=r"unknown process 'zprimez'.*wjets"):
        cards.load_card("zprimez")
    with pytest.raises(cards.CardError, match="card file not found"):
        cards.load_card(tmp_path / "nope.toml")


def test_card_pythia_rejects_is_reported_with_the_card_path(tmp_path):
    bad = tmp_path / "typo.toml"
    bad.write_text('name = "typo"\ndescription = "a typo"\nis_signal = false\nsettings = ["Top:gg2ttbarr = on"]\n')
    with pytest.raises(GeneratorError, match=r"typo\.toml: Pythia rejected setting 'Top:gg2ttbarr = on'"):
        PythiaGenerator(cards.load_card(bad), seed=1)


def test_card_that_switches_on_nothing_fails_at_init(tmp_path):
    bad = tmp_path / "nothing.toml"
    bad.write_text(
        'name = "nothing"\ndescription = "no process"\nis_signal = false\nsettings = ["SoftQCD:all = off"]\n'
    )
    with pytest.raises(GeneratorError, match="initialisation failed"):
        PythiaGenerator(cards.load_card(bad), seed=1)
