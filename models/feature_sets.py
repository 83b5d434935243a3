"""Named input feature sets of the models (column names of the processors' feature tables).

The scalar sets list one parquet column per feature, in the order the models use.
The array sets (``rmm``, ``objects``) are one list-valued column each, flattened
row-major to ``width`` floats.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

# HLF-21 (Cerri sec. 3) and HLF-24 (Knapp appendix A; 25 names) in the papers' order, and HLF-24 on
# standard NanoAOD: one source of truth with the processor that writes the feature tables
from cms_anomaly.models.errors import FeatureNeedsError
from cms_anomaly.processors.feature_spec import (
    ARRAY_FEATURES,
    CLASS_COUNTS,
    FEATURES,
    HLF21,
    HLF24,
    HLF_NANO,
    usable_features,
)

log = logging.getLogger(__name__)

#: discrete features one-hot encoded for ALAD (Knapp sec. 3)
ALAD_ONE_HOT: tuple[str, ...] = ("charge_lep", "is_ele", "n_mu", "n_ele")

#: per-feature likelihood of the VAE (Cerri sec. 4.1; each feature's ``vae_pdf`` in its FeatureSpec)
VAE_PDF: dict[str, str] = {name: spec.vae_pdf for name, spec in FEATURES.items() if spec.vae_pdf}


@dataclass(frozen=True)
class FeatureSet:
    """A named model input.

    Attributes
    ----------
    name : str
        ``hlf21``, ``hlf24``, ``rmm`` or ``objects``.
    columns : tuple of str
        Parquet / record-array field names, in model order.
    width : int
        Number of floats per event after flattening all columns.
    """

    name: str
    columns: tuple[str, ...]
    width: int

    @property
    def is_array(self) -> bool:
        """True for the list-valued sets (``rmm``, ``objects``)."""
        return self.width != len(self.columns)


FEATURE_SETS: dict[str, FeatureSet] = {
    "hlf21": FeatureSet("hlf21", HLF21, len(HLF21)),
    "hlf24": FeatureSet("hlf24", HLF24, len(HLF24)),
    "hlf_nano": FeatureSet("hlf_nano", HLF_NANO, len(HLF_NANO)),
    # the class hunt's detector: HLF_NANO and the object counts that define the event class
    "hlf_nano_classes": FeatureSet("hlf_nano_classes", HLF_NANO + CLASS_COUNTS, len(HLF_NANO + CLASS_COUNTS)),
    **{
        name: FeatureSet(name, (name,), math.prod(ARRAY_FEATURES[name]))
        for name in ("rmm", "objects")  # the list-valued sets: one column, flattened row-major
    },
}


def get_feature_set(name: str) -> FeatureSet:
    """Return the feature set called ``name``.

    Raises
    ------
    KeyError
        With the list of known names when ``name`` is unknown.
    """
    try:
        return FEATURE_SETS[name]
    except KeyError:
        raise KeyError(f"unknown feature set {name!r}; known: {sorted(FEATURE_SETS)}") from None


def checked_feature_set(fs: FeatureSet, available: Mapping[str, Iterable[str]]) -> tuple[FeatureSet, dict[str, str]]:
    """``fs`` without the features a dataset of the job cannot compute, and those dropped with the reason.

    ``available``: ``{dataset: needs met}`` (:func:`cms_anomaly.models.data.dataset_needs`) of every
    dataset the job reads. A model never trains on a feature a dataset lacks (an HLF-24 model on
    collision-data NanoAOD, which has no PF candidates, trains without its PF multiplicities).

    Raises
    ------
    FeatureNeedsError
        Every feature of the set is dropped.
    """
    if fs.is_array:  # rmm, objects: built from the objects every NanoAOD has
        return fs, {}
    kept, dropped = usable_features(fs.columns, available)
    if not kept:
        reasons = "; ".join(f"{k}: {v}" for k, v in dropped.items())
        raise FeatureNeedsError(f"feature set {fs.name!r}: no feature left ({reasons})")
    for name, why in dropped.items():
        log.warning("feature set %s: %s dropped (%s)", fs.name, name, why)
    return (replace(fs, columns=kept, width=len(kept)) if dropped else fs), dropped
