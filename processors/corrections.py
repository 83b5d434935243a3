"""Scale factors of simulation from a CMS correctionlib JSON (muon ID and isolation, b-tag), with their
up and down variations.

The user names a correctionlib JSON (``[corrections] file``, ``cms-anomaly run --corrections``) and
which of its corrections are the muon identification and isolation scale factors
(:class:`~cms_anomaly.processors.config.CorrectionConfig`). Each is evaluated with correctionlib on
the flattened muons of a chunk and multiplied per event into coffea's
:class:`~coffea.analysis_tools.Weights` as ``muon_id`` / ``muon_iso`` with their up and down
variations; the processor fills the feature histograms once per ``systematic``: ``nominal``,
``muon_idUp``, ``muon_idDown``, ... (:mod:`cms_anomaly.processors.histograms`). Real data
(``is_data``) get no scale factor; their variations equal the nominal.

Which muons: the analysis's selected muons (:func:`~cms_anomaly.processors.objects.build_objects`)
with pT above ``muon_pt_min``; the event weight is the product of their scale factors (1 without such
a muon), the variation the product of their up (down) values, as the muon POG prescribes for
uncorrelated per-muon factors.

The inputs of a correction are matched by name, as the muon POG's JSONs spell them:

- ``pt``: the muon pT; ``abseta`` / ``eta``: its |eta| / eta;
- ``year``: the dataset's era (``2018_UL``, the muon POG's UL spelling; metadata ``era``, else the
  NanoAOD variant's, :data:`~cms_anomaly.processors.btag.VARIANT_ERAS`);
- the variation: ``scale_factors`` (``nominal`` / ``systup`` / ``systdown``, muon POG Run 3),
  ``ValType`` (``sf`` / ``systup`` / ``systdown``, muon POG UL) or ``systematic`` (``nominal`` /
  ``up`` / ``down``).

b-tag (``btag_sf``): BTV's shape ("iterativefit") scale factor with inputs ``systematic``, ``flavor``
(``Jet_hadronFlavour``), ``abseta``, ``pt`` and ``discriminant`` (the era's b-tag discriminator), the
per-event product over the analysis jets: ``central`` as the nominal, and per uncertainty of
``btag_sf_variations`` the weight ``btag_<name>`` whose up (down) product takes ``up_<name>``
(``down_<name>``) on the jets it belongs to (``cferr*``: c jets; the others: b and light jets) and
``central`` on the rest. The fixed-working-point method is not offered: it needs the simulation's
b-tag efficiencies, which a correctionlib JSON does not give.

A correction missing from the file or with another input -> :class:`CorrectionError`, one line naming
the file, the correction and the input.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from cms_anomaly.processors import attached
from cms_anomaly.processors.config import CorrectionConfig
from cms_anomaly.processors.histograms import NOMINAL


class CorrectionError(ValueError):
    """A correctionlib file or correction cannot be used (the message names the file and the correction)."""


#: the input of a correction that picks the variation -> its (nominal, up, down) values
VARIATION_INPUTS: Mapping[str, tuple[str, str, str]] = MappingProxyType(
    {
        "scale_factors": ("nominal", "systup", "systdown"),
        "ValType": ("sf", "systup", "systdown"),
        "systematic": ("nominal", "up", "down"),
    }
)
#: the other inputs a muon scale factor may have
MUON_INPUTS: frozenset[str] = frozenset({"pt", "abseta", "eta", "year"})

#: the muon corrections: the weight name in coffea's ``Weights`` -> the config field naming it
MUON_CORRECTIONS: Mapping[str, str] = MappingProxyType({"muon_id": "muon_id_sf", "muon_iso": "muon_iso_sf"})


@functools.lru_cache(maxsize=4)
def load(path: str) -> Any:
    """The ``correctionlib.CorrectionSet`` of a JSON file (read once per process).

    Raises
    ------
    CorrectionError
        The file cannot be read or is no correctionlib JSON.
    """
    import correctionlib

    if not Path(path).is_file():
        raise CorrectionError(f"{path}: correctionlib file not found")
    try:
        return correctionlib.CorrectionSet.from_file(path)
    except (RuntimeError, ValueError, OSError) as err:  # correctionlib's errors for a malformed file
        raise CorrectionError(f"{path}: not a correctionlib JSON: {str(err).splitlines()[0]}") from None


@dataclass(frozen=True)
class _Plan:
    """How one correction is called: its weight name, correction name and inputs in order."""

    weight: str
    name: str
    inputs: tuple[str, ...]
    variations: tuple[str, str, str]
    #: the b-tag shape uncertainties (``hf``, ``lf``, ...), each its own weight ``btag_<name>``
    sources: tuple[str, ...] = ()


def _plan(cset: Any, weight: str, name: str, *, path: str) -> _Plan:
    if name not in list(cset):  # the names (``in`` on the set itself raises for a missing key)
        raise CorrectionError(f"{path}: no correction {name!r} (for {weight}); the file has {sorted(cset)}")
    inputs = tuple(v.name for v in cset[name].inputs)
    picks = [i for i in inputs if i in VARIATION_INPUTS]
    unknown = [i for i in inputs if i not in MUON_INPUTS and i not in VARIATION_INPUTS]
    if unknown or len(picks) != 1 or "pt" not in inputs or not {"abseta", "eta"} & set(inputs):
        raise CorrectionError(
            f"{path}: correction {name!r} (for {weight}) has inputs {list(inputs)}; a muon scale factor needs pt, "
            f"abseta or eta, one variation input of {sorted(VARIATION_INPUTS)} and optionally year"
            + (f" (unknown: {unknown})" if unknown else "")
        )
    return _Plan(weight, name, inputs, VARIATION_INPUTS[picks[0]])


#: the inputs of a b-tag shape scale factor (BTV ``deepJet_shape``, ``deepCSV_shape``), in any order
BTAG_INPUTS: frozenset[str] = frozenset({"systematic", "flavor", "abseta", "pt", "discriminant"})


def _btag_plan(cset: Any, name: str, variations: Sequence[str], *, path: str) -> _Plan:
    if name not in list(cset):
        raise CorrectionError(f"{path}: no correction {name!r} (for btag); the file has {sorted(cset)}")
    inputs = tuple(v.name for v in cset[name].inputs)
    if set(inputs) != BTAG_INPUTS:
        raise CorrectionError(
            f"{path}: correction {name!r} (for btag) has inputs {list(inputs)}; a b-tag shape scale factor has "
            f"{sorted(BTAG_INPUTS)}"
        )
    return _Plan("btag", name, inputs, ("central", "up", "down"), tuple(variations))


def _applies(variation: str, flavour: np.ndarray) -> np.ndarray:
    """The jets a b-tag shape uncertainty varies (``cferr*``: c jets only; the others: b and light jets
    only, BTV's shape prescription); the others keep their ``central`` factor."""
    charm = flavour == 4
    return charm if variation.startswith("cferr") else ~charm


@dataclass(frozen=True)
class Corrections:
    """The scale factors of a :class:`CorrectionConfig`; checked against the file on construction."""

    config: CorrectionConfig

    def __post_init__(self) -> None:
        self._plans()  # a missing correction or unusable inputs fail here, before any chunk is read

    def _plans(self) -> list[_Plan]:
        if not self.config.active:
            return []
        cset = load(attached.local_path(self.config.file))
        plans = [
            _plan(cset, weight, getattr(self.config, field), path=self.config.file)
            for weight, field in MUON_CORRECTIONS.items()
            if getattr(self.config, field)
        ]
        if self.config.btag_sf:
            plans.append(_btag_plan(cset, self.config.btag_sf, self.btag_variations, path=self.config.file))
        return plans

    @property
    def btag_variations(self) -> tuple[str, ...]:
        """The b-tag shape uncertainties of ``btag_sf_variations``."""
        return tuple(v.strip() for v in self.config.btag_sf_variations.split(",") if v.strip())

    @property
    def needs_jet_flavour(self) -> bool:
        """Whether the jets' simulated flavour is read (for the b-tag scale factor)."""
        return bool(self.config.active and self.config.btag_sf)

    @property
    def names(self) -> list[str]:
        """The weight names with a variation (``muon_id``, ``muon_iso``, ``btag_hf``, ``btag_lf``, ...)."""
        out = []
        for p in self._plans():
            out.extend([f"btag_{v}" for v in p.sources] if p.weight == "btag" else [p.weight])
        return out

    @property
    def systematics(self) -> list[str]:
        """``nominal`` then ``<name>Up``, ``<name>Down`` per correction: the ``systematic`` categories."""
        return [NOMINAL, *(f"{n}{d}" for n in self.names for d in ("Up", "Down"))]

    def event_weights(
        self,
        base: np.ndarray,
        muons: Any,
        jets: Any = None,
        *,
        era: str,
        is_data: bool,
        source: str = "",
    ) -> dict[str, np.ndarray]:
        """``{systematic: per-event weight}`` for every category of :attr:`systematics`.

        ``base`` is the weight without scale factors; ``muons`` the chunk's selected muons (a
        :class:`~cms_anomaly.processors.flat.FlatCollection` with ``pt`` and ``eta``); ``jets`` its
        analysis jets (with ``btag`` and ``flavour``), for the b-tag scale factor.
        """
        from coffea.analysis_tools import Weights

        plans = self._plans()
        weights = Weights(len(base))
        weights.add("base", np.asarray(base, dtype=np.float64))
        if not is_data:
            pt = np.asarray(muons.columns["pt"], dtype=np.float64)
            eta = np.asarray(muons.columns["eta"], dtype=np.float64)
            use = pt > self.config.muon_pt_min
            event = np.repeat(np.arange(len(base)), muons.counts)[use]
            cset = load(attached.local_path(self.config.file))
            for plan in plans:
                if plan.weight == "btag":
                    self._add_btag(weights, cset, plan, jets, n=len(base), source=source)
                    continue
                factors = [
                    _per_event(
                        self._evaluate(cset, plan, value, pt=pt[use], eta=eta[use], era=era, source=source),
                        event,
                        len(base),
                    )
                    for value in plan.variations
                ]
                weights.add(plan.weight, *factors)
        out = {NOMINAL: weights.weight()}
        for name in self.names:
            for d in ("Up", "Down"):
                out[f"{name}{d}"] = weights.weight(f"{name}{d}") if not is_data else out[NOMINAL]
        return out

    def _add_btag(self, weights: Any, cset: Any, plan: _Plan, jets: Any, *, n: int, source: str) -> None:
        """The b-tag shape scale factor: per event the product over the analysis jets of
        SF(flavour, |eta|, pT, discriminant), nominal ``central``; each uncertainty its own weight."""
        flavour = np.asarray(jets.columns["flavour"], dtype=np.int64)
        event = np.repeat(np.arange(n), jets.counts)
        args: dict[str, np.ndarray] = {
            "flavor": flavour,
            "abseta": np.abs(np.asarray(jets.columns["eta"], dtype=np.float64)),
            "pt": np.asarray(jets.columns["pt"], dtype=np.float64),
            "discriminant": np.asarray(jets.columns["btag"], dtype=np.float64),
        }

        def per_jet(systematic: str, keep: np.ndarray) -> np.ndarray:
            """The factors of the jets of ``keep`` (the correction is evaluated on them only: BTV's files
            define a shape uncertainty only for the flavours it applies to)."""
            if not keep.any():
                return np.ones(0)
            values: dict[str, Any] = {**{k: v[keep] for k, v in args.items()}, "systematic": systematic}
            try:
                sf = cset[plan.name].evaluate(*(values[i] for i in plan.inputs))
            except (RuntimeError, ValueError, IndexError, TypeError) as err:
                where = f" on {source}" if source else ""
                raise CorrectionError(
                    f"{self.config.file}: correction {plan.name!r} ({systematic!r}) failed{where}: "
                    f"{str(err).splitlines()[0]}"
                ) from None
            return np.asarray(sf, dtype=np.float64)

        central = per_jet("central", np.ones(len(flavour), bool))
        nominal = _per_event(central, event, n)
        weights.add("btag", nominal)
        for variation in plan.sources:
            keep = _applies(variation, flavour)
            shifted = []
            for direction in ("up", "down"):
                factors = central.copy()
                factors[keep] = per_jet(f"{direction}_{variation}", keep)
                shifted.append(np.divide(_per_event(factors, event, n), nominal, out=np.ones(n), where=nominal != 0))
            weights.add(f"btag_{variation}", np.ones(n), *shifted)

    def _evaluate(
        self, cset: Any, plan: _Plan, value: str, *, pt: np.ndarray, eta: np.ndarray, era: str, source: str
    ) -> np.ndarray:
        if not len(pt):
            return np.ones(0)
        args: dict[str, Any] = {"pt": pt, "abseta": np.abs(eta), "eta": eta, "year": era}
        args.update(dict.fromkeys(VARIATION_INPUTS, value))
        try:
            return np.asarray(cset[plan.name].evaluate(*(args[i] for i in plan.inputs)), dtype=np.float64)
        except (RuntimeError, ValueError, IndexError, TypeError) as err:  # a value outside a binning, a bad key
            where = f" on {source}" if source else ""
            raise CorrectionError(
                f"{self.config.file}: correction {plan.name!r} ({value!r}, era {era!r}) failed{where}: "
                f"{str(err).splitlines()[0]}"
            ) from None


def _per_event(factors: np.ndarray, event: np.ndarray, n: int) -> np.ndarray:
    """Product per event of per-object ``factors`` (object ``k`` in event ``event[k]``; 1 for none)."""
    out = np.ones(n)
    np.multiply.at(out, event, factors)
    return out


def systematics_of(corrections: Corrections | None) -> Sequence[str]:
    """The ``systematic`` categories of a run (``nominal`` alone without corrections)."""
    return (NOMINAL,) if corrections is None else tuple(corrections.systematics)
