"""The ``zz4l`` card (Z/gamma* Z/gamma* -> 4 charged leptons) and the inclusive ``zz`` card's veto of it:
together they are the inclusive Z Z cross section, with no event in both."""

from __future__ import annotations

import dataclasses

import awkward as ak
import numpy as np
import pytest
from cms_anomaly.datasets import cards
from cms_anomaly.datasets.generator import PythiaGenerator, veto_mask

#: PDG 2024: BR(Z -> e e, mu mu, tau tau)
BR_Z_LL = 0.03363 + 0.03366 + 0.03370
#: the hard process and its decays only (the record stays; the cross section does not depend on them)
HARD_ONLY = ("PartonLevel:MPI = off", "PartonLevel:ISR = off", "PartonLevel:FSR = off", "HadronLevel:all = off")


def _sigma(name: str, extra: tuple[str, ...], *, veto: bool, events: int, seed: int) -> PythiaGenerator:
    card = cards.load_card(name)
    card = dataclasses.replace(card, settings=card.settings + extra, veto=card.veto if veto else None)
    gen = PythiaGenerator(card, seed=seed)
    for _ in gen.batches(events, batch_size=2000):
        pass
    return gen


def _ratio(num: PythiaGenerator, den: PythiaGenerator) -> tuple[float, float]:
    r = num.sigma_gen_pb / den.sigma_gen_pb
    return r, r * np.hypot(num.sigma_err_pb / num.sigma_gen_pb, den.sigma_err_pb / den.sigma_gen_pb)


def test_the_cards_force_and_veto_the_four_lepton_decays():
    zz4l, zz = cards.load_card("zz4l"), cards.load_card("zz")
    assert not zz4l.is_signal
    assert zz4l.veto is None
    assert {"23:onMode = off", "23:onIfAny = 11 13 15"} <= set(zz4l.settings)
    assert zz.veto == cards.EventVeto(two_z_to_leptons=True)
    assert [s for s in zz4l.settings if "WeakDoubleBoson" in s] == list(zz.settings)
    assert zz.digest != dataclasses.replace(zz, veto=None).digest


@pytest.mark.slow
def test_on_shell_zz4l_cross_section_is_zz_times_the_branching_fraction_squared():
    """Both Z on shell (81-101 GeV, little gamma*): Pythia's sigma of the forced decays is sigma(zz) BR(Z -> l l)^2."""
    window = (*HARD_ONLY, "23:mMin = 81.", "23:mMax = 101.")
    zz4l = _sigma("zz4l", window, veto=False, events=20000, seed=11)
    zz = _sigma("zz", window, veto=False, events=20000, seed=11)
    ratio, err = _ratio(zz4l, zz)
    assert abs(ratio - BR_Z_LL**2) < 3 * err + 0.005 * BR_Z_LL**2, (ratio, err, BR_Z_LL**2)


@pytest.mark.slow
def test_zz_veto_removes_the_zz4l_cross_section():
    """m > 10 GeV (gamma* included, more leptonic than a Z): the share of ``zz`` the veto removes is the
    ratio of the two cards' cross sections, so zz (vetoed) + zz4l is the inclusive Z Z cross section."""
    zz = _sigma("zz", HARD_ONLY, veto=True, events=20000, seed=12)
    vetoed = 1.0 - zz.filter_efficiency
    binomial = np.sqrt(vetoed * (1 - vetoed) / zz.n_tried)
    ratio, err = _ratio(_sigma("zz4l", HARD_ONLY, veto=False, events=20000, seed=13), zz)
    assert abs(vetoed - ratio) < 3 * np.hypot(binomial, err), (vetoed, binomial, ratio, err)
    assert ratio > 1.2 * BR_Z_LL**2  # the gamma* share: not the Z's branching fraction alone


def test_veto_mask_drops_every_zz4l_event():
    card = cards.load_card("zz4l")
    gen = PythiaGenerator(dataclasses.replace(card, settings=card.settings + HARD_ONLY), seed=5)
    batch = gen._pythia.nextBatch(50, "skip")
    assert not veto_mask(batch.prt, cards.EventVeto(two_z_to_leptons=True)).any()
    assert veto_mask(batch.prt, cards.EventVeto(two_z_to_leptons=False)).all()


def _z_to_charged_leptons(genpart: ak.Array) -> ak.Array:
    """Per event: Z/gamma* (pdgId 23) of the GenPart record with two charged-lepton daughters of the hard process (statusFlags bit 7, isHardProcess)."""
    n = ak.num(genpart.pdgId)
    offsets = np.concatenate([[0], np.cumsum(ak.to_numpy(n))])
    pid = ak.to_numpy(ak.flatten(genpart.pdgId))
    event = np.repeat(np.arange(len(n)), ak.to_numpy(n))
    mother = ak.to_numpy(ak.flatten(genpart.genPartIdxMother))
    daughter = (
        np.isin(np.abs(pid), (11, 13, 15))
        & (ak.to_numpy(ak.flatten(genpart.statusFlags)) >> 7 & 1 == 1)
        & (mother >= 0)
    )
    counts = np.bincount((mother + offsets[event])[daughter], minlength=len(pid))
    is_z = ak.unflatten(pid == 23, n)
    return ak.sum(is_z & ak.unflatten(counts == 2, n), axis=1)


@pytest.mark.slow
def test_zz_production_has_no_event_with_two_leptonic_z(tmp_path):
    import uproot
    from cms_anomaly.datasets import production

    result = production.produce(["zz", "zz4l"], out=tmp_path, events=200, seed=4, executor="local")
    per_card = {}
    for name in ("zz", "zz4l"):
        files = result["datasets"][name]["files"]
        genpart = ak.concatenate(
            [
                uproot.open(f)["Events"].arrays(["GenPart_pdgId", "GenPart_statusFlags", "GenPart_genPartIdxMother"])
                for f in files
            ]
        )
        genpart = ak.zip({k.removeprefix("GenPart_"): genpart[k] for k in genpart.fields})
        per_card[name] = _z_to_charged_leptons(genpart)
    assert ak.all(per_card["zz4l"] == 2)
    assert ak.max(per_card["zz"]) <= 1
    meta = result["datasets"]["zz"]["metadata"]
    assert 0.9 < meta["filter_efficiency"] < 1.0
    assert meta["xsec_pb"] == pytest.approx(meta["sigma_gen_pb"] * meta["filter_efficiency"])


@pytest.mark.parametrize(
    ("veto", "message"),
    [("two_z_to_leptons = 1", "must be true or false"), ("z_to_leptons = true", "unknown \\[veto\\] key")],
)
def test_bad_veto_is_rejected_with_the_file_and_key(veto, message):
    text = f'name = "x"\ndescription = "d"\nis_signal = false\nsettings = ["a = b"]\n[veto]\n{veto}'
    with pytest.raises(cards.CardError, match=f"my/card.toml: .*{message}"):
        cards.parse_card(text, path="my/card.toml")
