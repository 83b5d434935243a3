"""Process cards: one TOML file per physics process, validated into a frozen dataclass.

A card holds the Pythia 8 settings of a process (data, not code), whether it is a BSM
signal, and an optional generator-level lepton filter. The settings common to every
process (beam energy, seeds, printing) are added by :mod:`cms_anomaly.datasets.generator`.

Card format::

    name = "wjets"                      # process name, [a-z0-9_]+
    description = "W -> l nu (+jets)"   # one line
    is_signal = false
    settings = ["WeakSingleBoson:ffbar2W = on", "24:onMode = off", ...]
    [filter]                            # optional generator-level filter
    min_leptons = 1                     # final-state e/mu ...
    lepton_pt_min = 15.0                # ... with pT > this (GeV) ...
    lepton_abs_eta_max = 2.5            # ... and |eta| < this
    taus = false                        # optional: tau leptons count too
    [veto]                              # optional: events dropped at generator level
    two_z_to_leptons = true             # both Z/gamma* of the hard process -> charged leptons
    [bias]                              # optional: the tail-weighted (biased) production of it
    power = 4.0                         # events sampled ~ (pTHat / reference)^power ...
    reference = 30.0                    # ... (GeV); each carries the weight that undoes it

The ``[bias]`` table is used only when a production asks for tail weighting
(``cms-anomaly generate --tail-bias``): Pythia's ``PhaseSpace:bias2Selection`` then samples hard
events more often and gives every event the compensating weight, written as ``genWeight`` (see
:mod:`cms_anomaly.datasets.generator`). It acts on 2 -> 2 hard processes only (pTHat of a 2 -> 1
process such as ``WeakSingleBoson:ffbar2W`` is zero).
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

CARD_DIR = resources.files("cms_anomaly.datasets") / "cards"
_NAME_RE = re.compile(r"^[a-z0-9_]+$")
_SETTING_RE = re.compile(r"^\s*[\w:+\-()]+\s*=\s*\S.*$")
# Settings the generator owns: a card setting them would break seeding or reproducibility.
_RESERVED = ("beams:ecm", "random:", "next:", "print:", "init:show", "phasespace:bias2selection")


class CardError(ValueError):
    """A process card is missing, unreadable or invalid; the message names the file and the key."""


@dataclass(frozen=True)
class LeptonFilter:
    """Keep an event if it has ``min_leptons`` final-state e/mu (and, with ``taus``, tau leptons) with
    pT > ``lepton_pt_min`` and |eta| < ``lepton_abs_eta_max`` at generator level."""

    min_leptons: int = 1
    lepton_pt_min: float = 15.0
    lepton_abs_eta_max: float = 2.5
    #: count tau leptons (the last copy before their decay) as well as final-state e and mu
    taus: bool = False


@dataclass(frozen=True)
class EventVeto:
    """Drop an event at generator level if ``two_z_to_leptons`` and both Z/gamma* of its hard process decay
    to charged leptons (e, mu, tau): the events another card makes on its own (``zz4l``)."""

    two_z_to_leptons: bool = False


@dataclass(frozen=True)
class PhaseSpaceBias:
    """Pythia's ``PhaseSpace:bias2Selection``: 2 -> 2 events are sampled with a probability enhanced by
    ``(pTHat / reference)^power`` and carry the inverse as their weight."""

    power: float
    reference: float

    def settings(self) -> tuple[str, ...]:
        """The Pythia settings that switch the bias on."""
        return (
            "PhaseSpace:bias2Selection = on",
            f"PhaseSpace:bias2SelectionPow = {self.power!r}",
            f"PhaseSpace:bias2SelectionRef = {self.reference!r}",
        )


@dataclass(frozen=True)
class ProcessCard:
    """A validated process card."""

    name: str
    description: str
    is_signal: bool
    settings: tuple[str, ...]
    filter: LeptonFilter | None = None
    #: events dropped at generator level; like the filter, it enters the cross section as an efficiency
    veto: EventVeto | None = None
    #: the tail weighting a production may switch on (``tail_bias``); not part of :attr:`digest`:
    #: the production records whether it used it
    bias: PhaseSpaceBias | None = None
    path: str = field(default="", compare=False)

    @property
    def digest(self) -> str:
        """Hash of everything that changes the generated events (used to validate resumed files)."""
        parts = (self.name, self.settings, self.filter) + ((self.veto,) if self.veto is not None else ())
        text = repr(parts)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _require(data: dict, key: str, kind: type | tuple[type, ...], path: str) -> object:
    if key not in data:
        raise CardError(f"{path}: missing required key '{key}'")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CardError(f"{path}: key '{key}' must be {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def parse_card(text: str, *, path: str = "<string>") -> ProcessCard:
    """Parse and validate the TOML text of a process card.

    Raises
    ------
    CardError
        naming ``path`` and the offending key or value.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise CardError(f"{path}: not valid TOML ({err})") from err
    known = {"name", "description", "is_signal", "settings", "filter", "veto", "bias"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise CardError(f"{path}: unknown key(s) {unknown}; allowed: {sorted(known)}")
    name = _require(data, "name", str, path)
    if not _NAME_RE.match(name):
        raise CardError(f"{path}: name {name!r} must match [a-z0-9_]+")
    description = _require(data, "description", str, path)
    is_signal = _require(data, "is_signal", bool, path)
    settings = _require(data, "settings", list, path)
    if not settings:
        raise CardError(f"{path}: 'settings' is empty: a card must switch on at least one process")
    for s in settings:
        if not isinstance(s, str) or not _SETTING_RE.match(s):
            raise CardError(f"{path}: setting {s!r} is not of the form 'Key = value'")
        if s.strip().lower().startswith(_RESERVED):
            raise CardError(f"{path}: setting {s!r} is reserved for the generator (beam energy, seeds, printing)")
    filt = None
    if "filter" in data:
        raw = data["filter"]
        if not isinstance(raw, dict):
            raise CardError(f"{path}: [filter] must be a table")
        allowed = {"min_leptons", "lepton_pt_min", "lepton_abs_eta_max", "taus"}
        bad = sorted(set(raw) - allowed)
        if bad:
            raise CardError(f"{path}: unknown [filter] key(s) {bad}; allowed: {sorted(allowed)}")
        try:
            filt = LeptonFilter(
                min_leptons=int(raw.get("min_leptons", 1)),
                lepton_pt_min=float(raw.get("lepton_pt_min", 15.0)),
                lepton_abs_eta_max=float(raw.get("lepton_abs_eta_max", 2.5)),
                taus=raw.get("taus", False),
            )
        except (TypeError, ValueError) as err:
            raise CardError(f"{path}: bad [filter] value ({err})") from err
        if not isinstance(filt.taus, bool):
            raise CardError(f"{path}: [filter] taus must be true or false, got {filt.taus!r}")
        if filt.min_leptons < 1 or filt.lepton_pt_min < 0 or filt.lepton_abs_eta_max <= 0:
            raise CardError(f"{path}: [filter] values out of range: {filt}")
    return ProcessCard(
        name=name,
        description=description,
        is_signal=is_signal,
        settings=tuple(s.strip() for s in settings),
        filter=filt,
        veto=_parse_veto(data["veto"], path) if "veto" in data else None,
        bias=_parse_bias(data.get("bias"), path) if "bias" in data else None,
        path=path,
    )


def _parse_veto(raw: object, path: str) -> EventVeto:
    if not isinstance(raw, dict):
        raise CardError(f"{path}: [veto] must be a table")
    bad = sorted(set(raw) - {"two_z_to_leptons"})
    if bad:
        raise CardError(f"{path}: unknown [veto] key(s) {bad}; allowed: ['two_z_to_leptons']")
    value = raw.get("two_z_to_leptons", False)
    if not isinstance(value, bool):
        raise CardError(f"{path}: [veto] two_z_to_leptons must be true or false, got {value!r}")
    return EventVeto(two_z_to_leptons=value)


def _parse_bias(raw: object, path: str) -> PhaseSpaceBias:
    if not isinstance(raw, dict):
        raise CardError(f"{path}: [bias] must be a table")
    missing = sorted({"power", "reference"} - set(raw))
    extra = sorted(set(raw) - {"power", "reference"})
    if missing or extra:
        raise CardError(
            f"{path}: [bias] needs exactly the keys 'power' and 'reference' (missing {missing}, unknown {extra})"
        )
    values = {}
    for key in ("power", "reference"):
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0 or value == float("inf"):
            raise CardError(f"{path}: [bias] {key} must be a positive finite number, got {value!r}")
        values[key] = float(value)
    return PhaseSpaceBias(**values)


def load_card(name_or_path: str | Path) -> ProcessCard:
    """Load a card by process name (from the packaged cards) or from a ``.toml`` path."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        if not candidate.is_file():
            raise CardError(f"{candidate}: card file not found")
        return parse_card(candidate.read_text(), path=str(candidate))
    name = str(name_or_path)
    resource = CARD_DIR / f"{name}.toml"
    if not resource.is_file():
        raise CardError(f"unknown process {name!r}; known: {', '.join(list_processes())}")
    card = parse_card(resource.read_text(), path=str(resource))
    if card.name != name:
        raise CardError(f"{resource}: file name says {name!r} but 'name' is {card.name!r}")
    return card


def list_processes() -> list[str]:
    """Names of the packaged process cards, sorted."""
    return sorted(p.name[: -len(".toml")] for p in CARD_DIR.iterdir() if p.name.endswith(".toml"))


def all_cards() -> list[ProcessCard]:
    """Every packaged card, SM first, then BSM, each alphabetically."""
    cards = [load_card(n) for n in list_processes()]
    return sorted(cards, key=lambda c: (c.is_signal, c.name))
