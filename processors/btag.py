"""b-tag working points by data-taking era and algorithm.

A jet is a b-jet when its b-tag discriminator is above the working point of the dataset's era and
the algorithm its NanoAOD fills. The era is the dataset metadata key ``era`` (one of :data:`ERAS`),
else the default era of the file's NanoAOD variant (:data:`VARIANT_ERAS`). The algorithm is the
variant's (:data:`VARIANT_ALGORITHMS`) where the era has working points for it, else the era's
only algorithm (the 2015 Open Data conversion leaves ``Jet_btagDeepFlavB`` at -3000 and fills
``Jet_btagCSVV2``: era ``2015`` reads CSVv2); ``[objects] btag_algorithm`` chooses one explicitly.

The working points are the b-tag POG's (BTV) loose / medium / tight points, defined by a light-jet
misidentification rate of 10 %, 1 % and 0.1 %; each row names its BTV twiki page.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType

from cms_anomaly.processors import schema
from cms_anomaly.processors.config import BTAG_LEVELS, ConfigError

#: algorithm -> its NanoAOD ``Jet`` branch
ALGORITHM_BRANCHES: Mapping[str, str] = MappingProxyType(
    {"DeepJet": "btagDeepFlavB", "DeepCSV": "btagDeepB", "CSVv2": "btagCSVV2", "CSV": "btag"}
)

#: (era, algorithm) -> (loose, medium, tight) discriminator thresholds
WORKING_POINTS: Mapping[tuple[str, str], tuple[float, float, float]] = MappingProxyType(
    {
        # Run 1, 8 TeV (2012, 53X): twiki CMS/BTagPerformanceOP "B-tagging operating points for 53X"
        # (CSVL/CSVM/CSVT), the AK5 jets of the 2012 CMS Open Data
        ("2012", "CSV"): (0.244, 0.679, 0.898),
        # 2015, 13 TeV (76X): twiki CMS/BtagRecommendation76X, pfCombinedInclusiveSecondaryVertexV2
        ("2015", "CSVv2"): (0.460, 0.800, 0.935),
        # 2016 legacy ReReco: CSVv2 twiki CMS/BtagRecommendation80XReReco (Moriond17);
        # DeepCSV and DeepJet twiki CMS/BtagRecommendation2016Legacy
        ("2016", "CSVv2"): (0.5426, 0.8484, 0.9535),
        ("2016", "DeepCSV"): (0.2217, 0.6321, 0.8953),
        ("2016", "DeepJet"): (0.0614, 0.3093, 0.7221),
        # Ultra-legacy Run 2: twiki CMS/BtagRecommendation106XUL16preVFP, ...UL16postVFP, ...UL17, ...UL18
        ("2016preVFP_UL", "DeepCSV"): (0.2027, 0.6001, 0.8819),
        ("2016preVFP_UL", "DeepJet"): (0.0508, 0.2598, 0.6502),
        ("2016postVFP_UL", "DeepCSV"): (0.1918, 0.5847, 0.8767),
        ("2016postVFP_UL", "DeepJet"): (0.0480, 0.2489, 0.6377),
        ("2017_UL", "DeepCSV"): (0.1355, 0.4506, 0.7738),
        ("2017_UL", "DeepJet"): (0.0532, 0.3040, 0.7476),
        ("2018_UL", "DeepCSV"): (0.1208, 0.4168, 0.7665),
        ("2018_UL", "DeepJet"): (0.0490, 0.2783, 0.7100),
    }
)
#: the eras of :data:`WORKING_POINTS` (the values of the dataset metadata key ``era``)
ERAS: tuple[str, ...] = tuple(dict.fromkeys(era for era, _ in WORKING_POINTS))

#: NanoAOD variant -> its era when the dataset metadata has none (Run-2 files: 2018 UL, the era the
#: generated samples' b-tag response is tuned to; the CSVv2-only NanoAOD: 2016; Run 1: 2012)
VARIANT_ERAS: Mapping[str, str] = MappingProxyType(
    {"generated": "2018_UL", "pfnano": "2018_UL", "run2": "2018_UL", "run2_csv": "2016", "run1": "2012"}
)
#: NanoAOD variant -> the algorithm of its ``jet.btag`` quantity (Run 3: ParticleNet, no working point here)
VARIANT_ALGORITHMS: Mapping[str, str] = MappingProxyType(
    {
        "generated": "DeepJet",
        "pfnano": "DeepJet",
        "run2": "DeepJet",
        "run2_csv": "CSVv2",
        "run1": "CSV",
        "run3": "PNet",
        "run3_v12": "PNet",
    }
)


class BTagError(ConfigError):
    """No b-tag working point for a dataset's era and algorithm (the message names both)."""


@dataclasses.dataclass(frozen=True)
class BTagChoice:
    """The b-tagging of one dataset: era, algorithm, level and the discriminator threshold."""

    era: str
    algorithm: str
    level: str
    threshold: float

    @property
    def branch(self) -> str:
        """The ``Jet`` field of the algorithm's discriminator."""
        return ALGORITHM_BRANCHES[self.algorithm]


def choose(variant: str, *, era: str | None, level: str, algorithm: str = "", source: str = "") -> BTagChoice:
    """The working point of a dataset (see the module docstring for the order of choices).

    Raises
    ------
    BTagError
        Unknown era, or no working point for the era and algorithm; one line naming the source, the era,
        the algorithm and the known ones.
    """
    where = f"{source}: " if source else ""
    if level not in BTAG_LEVELS:
        raise BTagError(f"{where}b-tag level must be one of {BTAG_LEVELS}, got {level!r}")
    if not era:
        era = VARIANT_ERAS.get(variant)
        if era is None:
            raise BTagError(
                f"{where}NanoAOD variant {variant!r} has no default era for its b-tag working point: give the "
                f"dataset metadata key 'era' (one of {list(ERAS)})"
            )
    if era not in ERAS:
        raise BTagError(f"{where}unknown era {era!r} (dataset metadata 'era'); known: {list(ERAS)}")
    if not algorithm:
        algorithm = VARIANT_ALGORITHMS.get(variant, "")
        if (era, algorithm) not in WORKING_POINTS:
            available = [alg for (e, alg) in WORKING_POINTS if e == era]
            if len(available) == 1:
                algorithm = available[0]
    if (era, algorithm) not in WORKING_POINTS:
        available = [alg for (e, alg) in WORKING_POINTS if e == era]
        raise BTagError(
            f"{where}no b-tag working point for era {era!r} and algorithm {algorithm!r} "
            f"(era {era!r} has {available}; set [objects] btag_algorithm)"
        )
    return BTagChoice(era, algorithm, level, WORKING_POINTS[(era, algorithm)][BTAG_LEVELS.index(level)])


def with_algorithm(variant: schema.SchemaVariant, choice: BTagChoice) -> schema.SchemaVariant:
    """``variant`` whose ``jet.btag`` quantity reads the chosen algorithm's branch."""
    where = ("Jet", choice.branch)
    if variant.branches.get("jet.btag") == where:
        return variant
    return dataclasses.replace(variant, branches=MappingProxyType({**variant.branches, "jet.btag": where}))
