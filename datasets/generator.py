"""Pythia 8 event generation (``pythia8mc``), columnar: batches of events as awkward arrays.

:class:`PythiaGenerator` configures Pythia from a :class:`~cms_anomaly.datasets.cards.ProcessCard`
plus the settings every process shares (beam energy, seed, quiet printing, CMS-like stable-particle
definition) and yields batches of *accepted* events from ``Pythia.nextBatch`` (an awkward array with
the full event record: ``prt.{id, status, mother1, daughter1, p, m, vProd, ...}``). The card's
lepton filter and veto are applied columnarly; the generator sums the weights of tried and accepted
events so that the cross section after them is ``sigma_gen * sumw_accepted / sumw_tried`` (a batch's
events after the last one kept are not counted as tried).

Event weights are Pythia's (``info.weights``, the nominal one): 1 for an unbiased card, and with a
phase-space bias (:class:`~cms_anomaly.datasets.cards.PhaseSpaceBias`) the inverse of the sampling
enhancement, normalised by Pythia so that ``sigma_gen`` stays the cross section of the process.
The weight of an event is therefore ``sigma_gen * w / sumw_tried`` (pb per event, before the filter).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import awkward as ak
import numpy as np
from cms_anomaly.core.constants import SQRT_S
from cms_anomaly.datasets.cards import EventVeto, LeptonFilter, PhaseSpaceBias, ProcessCard

log = logging.getLogger(__name__)

#: Pythia's seed range is [0, 900000000]; 0 would mean "seed from the clock".
MAX_PYTHIA_SEED = 900_000_000
MB_TO_PB = 1.0e9
#: PDG ids up to this |id| get a slot in the generator's dense charge table (80 kB)
DENSE_ID_MAX = 10_000

#: settings shared by every process. ``ParticleDecays:limitTau0/tau0Max = 10 mm`` is the CMS
#: generator-level definition of stable particles (K0S, Lambda, ... are stable), as in the CMS
#: Pythia 8 fragments; the default Monash 2013 tune is used (CMS uses CP5, a Monash derivative).
COMMON_SETTINGS: tuple[str, ...] = (
    "Next:numberCount = 0",
    "Next:numberShowEvent = 0",
    "Next:numberShowInfo = 0",
    "Next:numberShowProcess = 0",
    "Init:showProcesses = off",
    "Init:showChangedSettings = off",
    "Init:showChangedParticleData = off",
    "Init:showMultipartonInteractions = off",
    "Print:quiet = on",
    "ParticleDecays:limitTau0 = on",
    "ParticleDecays:tau0Max = 10.",
    "Random:setSeed = on",
)


def event_weights(batch: ak.Array) -> np.ndarray:
    """The nominal weight of every event of a ``nextBatch`` batch (``info.weights[:, 0]``), float64."""
    return np.asarray(ak.to_numpy(batch.info.weights[:, 0]), dtype=np.float64)


class GeneratorError(RuntimeError):
    """Pythia failed to initialise or to produce events; the message names the process and seed."""


def derive_seed(*parts: object) -> int:
    """A deterministic Pythia seed in [1, 900000000] derived from ``parts`` (process, seed, file index)."""
    ss = np.random.SeedSequence([abs(hash_str(str(p))) for p in parts])
    return int(ss.generate_state(1, dtype=np.uint64)[0] % (MAX_PYTHIA_SEED - 1)) + 1


def hash_str(text: str) -> int:
    """A stable (process-independent) 63-bit hash of a string (Python's ``hash`` is salted)."""
    import hashlib

    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def lepton_filter_mask(prt: ak.Array, filt: LeptonFilter) -> np.ndarray:
    """Events with at least ``filt.min_leptons`` final-state e/mu (and, with ``filt.taus``, taus: the
    last copy of each tau in the record, the one that decays) above the filter thresholds.

    Parameters
    ----------
    prt : ak.Array
        ``batch.prt`` from ``Pythia.nextBatch`` (events x particles).
    filt : LeptonFilter
    """
    px, py, pz = prt.p.px, prt.p.py, prt.p.pz
    pt = np.hypot(px, py)
    eta = np.arcsinh(pz / np.maximum(pt, 1e-9))
    abs_id = abs(prt.id)
    lep = (prt.status > 0) & ((abs_id == 11) | (abs_id == 13))
    if filt.taus:
        # a tau's last copy is the one whose first daughter is not a tau (its decay products)
        first_daughter = prt.id[np.maximum(prt.daughter1, 0)]
        lep = lep | ((abs_id == 15) & (prt.daughter1 > 0) & (abs(first_daughter) != 15))
    passing = lep & (pt > filt.lepton_pt_min) & (abs(eta) < filt.lepton_abs_eta_max)
    return ak.to_numpy(ak.sum(passing, axis=1) >= filt.min_leptons)


#: |PDG id| of the charged leptons
CHARGED_LEPTONS = (11, 13, 15)


def veto_mask(prt: ak.Array, veto: EventVeto) -> np.ndarray:
    """Events the veto keeps: with ``veto.two_z_to_leptons``, those with fewer than four charged leptons
    (e, mu, tau) among the decay products of Z/gamma* (|status| 23, mother id 23), i.e. not both Z/gamma*
    of a Z Z hard process decaying to charged leptons."""
    if not veto.two_z_to_leptons:
        return np.ones(len(prt), dtype=bool)
    abs_id = abs(prt.id)
    mother_id = prt.id[np.maximum(prt.mother1, 0)]
    is_lepton = (abs_id == 11) | (abs_id == 13) | (abs_id == 15)
    from_z = is_lepton & (abs(prt.status) == 23) & (prt.mother1 > 0) & (mother_id == 23)
    return ak.to_numpy(ak.sum(from_z, axis=1) < 4)


def _selection_mask(prt: ak.Array, card: ProcessCard) -> np.ndarray:
    """The card's filter and veto together."""
    keep = np.ones(len(prt), dtype=bool)
    if card.filter is not None:
        keep &= lepton_filter_mask(prt, card.filter)
    if card.veto is not None:
        keep &= veto_mask(prt, card.veto)
    return keep


class PythiaGenerator:
    """Pythia 8 for one process card and one seed.

    Parameters
    ----------
    card : ProcessCard
    seed : int
        Pythia seed in [1, 900000000].
    sqrt_s : float
        Centre-of-mass energy in GeV.
    bias : PhaseSpaceBias, optional
        Sample hard events more often (usually ``card.bias``); every event then carries its weight.
    """

    def __init__(
        self, card: ProcessCard, *, seed: int, sqrt_s: float = SQRT_S, bias: PhaseSpaceBias | None = None
    ) -> None:
        import pythia8mc

        if not 1 <= seed <= MAX_PYTHIA_SEED:
            raise GeneratorError(f"{card.name}: seed {seed} outside Pythia's range [1, {MAX_PYTHIA_SEED}]")
        self.card = card
        self.seed = seed
        self.sqrt_s = sqrt_s
        self.bias = bias
        self.n_tried = 0
        self.n_accepted = 0
        self.sumw_tried = 0.0
        self.sumw_accepted = 0.0
        self.sumw2_accepted = 0.0
        self._pythia = pythia8mc.Pythia("", False)
        settings = (f"Beams:eCM = {sqrt_s}", *COMMON_SETTINGS, f"Random:seed = {seed}", *card.settings)
        settings += bias.settings() if bias is not None else ()
        for setting in settings:
            if not self._pythia.readString(setting):
                raise GeneratorError(f"{card.path or card.name}: Pythia rejected setting {setting!r}")
        if not self._pythia.init():
            hint = (
                " or its [bias]: PhaseSpace:bias2Selection needs 2 -> 2 hard processes (pTHat of a 2 -> 1 process is 0)"
                if bias is not None
                else ""
            )
            raise GeneratorError(
                f"{card.path or card.name}: Pythia initialisation failed (seed {seed}); check the card's settings{hint}"
            )
        self._charge_table = np.full(2 * DENSE_ID_MAX + 1, np.nan, dtype=np.float32)  # id + DENSE_ID_MAX -> charge

    @property
    def sigma_gen_pb(self) -> float:
        """Pythia's estimate of the generated cross section (before the filter), in pb."""
        return float(self._pythia.infoPython().sigmaGen()) * MB_TO_PB

    @property
    def sigma_err_pb(self) -> float:
        return float(self._pythia.infoPython().sigmaErr()) * MB_TO_PB

    @property
    def filter_efficiency(self) -> float:
        """Weighted fraction of the tried events that the filter accepted (1 without a filter)."""
        return self.sumw_accepted / self.sumw_tried if self.sumw_tried else float("nan")

    def charges(self, ids: np.ndarray) -> np.ndarray:
        """Electric charge for an array of PDG ids, from Pythia's particle data.

        Ids with |id| <= ``DENSE_ID_MAX`` (quarks, leptons, light and heavy-flavour hadrons, diquarks)
        are looked up in a dense table filled on first sight: one gather per batch (``np.unique`` on
        the ~400k ids of a ttbar batch took 13 ms, the table 4.5 ms). Larger ids (excited hadrons,
        BSM) go through ``np.unique``.
        """
        ids = np.asarray(ids, dtype=np.int64)
        inside = np.abs(ids) <= DENSE_ID_MAX
        slot = np.where(inside, ids, 0) + DENSE_ID_MAX
        out = self._charge_table[slot]
        unknown = np.isnan(out)
        if unknown.any():
            new = np.unique(slot[unknown])
            self._charge_table[new] = [self._charge(int(s) - DENSE_ID_MAX) for s in new.tolist()]
            out = self._charge_table[slot]
        if not inside.all():
            outer, inverse = np.unique(ids[~inside], return_inverse=True)
            out[~inside] = np.array([self._charge(pid) for pid in outer.tolist()], dtype=np.float32)[inverse]
        return out.reshape(ids.shape)

    def _charge(self, pid: int) -> float:
        return float(self._pythia.particleData.charge(pid))

    def batches(self, n_events: int, *, batch_size: int = 200) -> Iterator[tuple[ak.Array, np.ndarray]]:
        """Yield ``(batch, weights)`` of accepted events until ``n_events`` have been produced."""
        remaining = n_events
        max_tries = 1000 * n_events + 10_000
        selects = self.card.filter is not None or self.card.veto is not None
        while remaining > 0:
            request = batch_size if not selects else max(batch_size, 4 * remaining)
            request = min(request, 4 * batch_size) if selects else min(request, remaining)
            batch = self._pythia.nextBatch(request, "skip")
            if len(batch) == 0:
                raise GeneratorError(
                    f"{self.card.name}: Pythia produced no event in a batch of {request} (seed {self.seed})"
                )
            weights = event_weights(batch)
            keep = _selection_mask(batch.prt, self.card) if selects else np.ones(len(batch), dtype=bool)
            kept = np.flatnonzero(keep)
            # tried: up to the last event kept (the rest of the batch would bias the efficiency low)
            tried = len(batch) if len(kept) <= remaining else int(kept[remaining - 1]) + 1
            self.n_tried += tried
            self.sumw_tried += float(weights[:tried].sum())
            batch, weights = batch[kept[:remaining]], weights[kept[:remaining]]
            self.n_accepted += len(batch)
            self.sumw_accepted += float(weights.sum())
            self.sumw2_accepted += float(np.square(weights).sum())
            remaining -= len(batch)
            if self.n_tried > max_tries:
                raise GeneratorError(
                    f"{self.card.name}: filter accepted {self.n_accepted} of {self.n_tried} events; giving up"
                )
            if len(batch):
                yield batch, weights

    def next_bare(self) -> bool:
        """One bare ``Pythia.next()`` (used by the benchmark as the reference rate)."""
        return bool(self._pythia.next())
