"""Lepton acceptance of a process card after the detector response: the fraction of generated events
with at least one reconstructed electron or muon above the single-lepton thresholds.

Cerri et al. (seed 004, Table 1) quote it for their BSM benchmarks (h+- -> tau nu 18 %, h0 -> tau tau
9 %); ``tests/test_datasets_cards.py`` checks the packaged cards against those numbers. Command::

    python -m cms_anomaly.datasets.acceptance hplus_taunu h0_tautau --events 1000 --seed 7
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import awkward as ak
import numpy as np
from cms_anomaly.datasets.cards import ProcessCard, load_card
from cms_anomaly.datasets.detector import simulate
from cms_anomaly.datasets.generator import PythiaGenerator


@dataclass(frozen=True)
class AcceptanceCuts:
    """The reconstructed lepton an event needs (no isolation)."""

    #: the single-lepton selection's lepton pT threshold (Cerri et al. sec. 3: pT > 23 GeV)
    pt_min: float = 23.0
    #: the tracker acceptance of the lepton (CMS muon and electron reconstruction, |eta| < 2.4)
    abs_eta_max: float = 2.4
    #: the loose relative isolation of the single-lepton selection (Cerri et al. sec. 3: Iso < 0.45), counted apart
    iso_max: float = 0.45


@dataclass(frozen=True)
class Acceptance:
    """``passed`` of ``generated`` events have the lepton (``isolated`` of them an isolated one); ``error`` is
    the binomial standard error of :attr:`value`."""

    process: str
    passed: int
    generated: int
    isolated: int = 0

    @property
    def value(self) -> float:
        return self.passed / self.generated

    @property
    def error(self) -> float:
        p = self.value
        return math.sqrt(p * (1.0 - p) / self.generated)


def reco_lepton_mask(collections: dict[str, ak.Array], cuts: AcceptanceCuts, *, isolated: bool = False) -> np.ndarray:
    """Events of a :func:`~cms_anomaly.datasets.detector.simulate` batch with a reconstructed e or mu
    above ``cuts`` (with ``isolated``, also with ``pfRelIso03_all < cuts.iso_max``)."""
    passed = None
    for name in ("Electron", "Muon"):
        leptons = collections[name]
        good = (leptons.pt > cuts.pt_min) & (abs(leptons.eta) < cuts.abs_eta_max)
        if isolated:
            good = good & (leptons.pfRelIso03_all < cuts.iso_max)
        has = ak.any(good, axis=1)
        passed = has if passed is None else passed | has
    return ak.to_numpy(passed)


def measure(card: ProcessCard, *, n_events: int, seed: int, cuts: AcceptanceCuts = AcceptanceCuts()) -> Acceptance:
    """Generate ``n_events`` events of ``card`` (Pythia seed ``seed``), run the detector response and count
    the events with a reconstructed lepton. A card with a generator filter counts the filtered events."""
    generator = PythiaGenerator(card, seed=seed)
    rng = np.random.default_rng(seed)
    passed = isolated = 0
    for batch, _ in generator.batches(n_events):
        charges = generator.charges(ak.to_numpy(ak.flatten(batch.prt.id)))
        collections = simulate(batch, charges, rng=rng)
        passed += int(reco_lepton_mask(collections, cuts).sum())
        isolated += int(reco_lepton_mask(collections, cuts, isolated=True).sum())
    return Acceptance(card.name, passed, generator.n_accepted, isolated)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("processes", nargs="+", help="process card names or .toml paths")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    for process in args.processes:
        acc = measure(load_card(process), n_events=args.events, seed=args.seed)
        print(  # noqa: T201 - the command prints its result
            f"{acc.process}: {acc.passed} / {acc.generated} = {acc.value:.4f} +- {acc.error:.4f}; "
            f"isolated {acc.isolated} / {acc.generated} = {acc.isolated / acc.generated:.4f}"
        )


if __name__ == "__main__":
    main()
