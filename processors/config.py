"""Analysis configuration: object cuts, feature settings and selection thresholds.

One frozen dataclass tree, loadable from TOML. Cross sections, luminosity and
``is_data`` do not live here: they come from the fileset metadata and the command line.

Example TOML (every key optional; the defaults are the papers' values, each field says its source)::

    [objects]
    jet_pt_min = 30.0
    jet_eta_max = 2.4
    btag_level = "medium"

    [corrections]
    file = "muon_Z.json.gz"
    muon_id_sf = "NUM_TightID_DEN_TrackerMuons"

    [features]
    sqrt_s = 13000.0

    [selections]
    single_lepton_iso_max = 0.45
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cms_anomaly.core.constants import SQRT_S


class ConfigError(ValueError):
    """A configuration file or value is invalid (message names the file and key)."""


#: muon identification working points (``Muon_<wp>Id``)
MUON_IDS: tuple[str, ...] = ("loose", "medium", "tight")
#: jet identification levels (bits of ``Jet_jetId``, see :mod:`cms_anomaly.processors.schema`)
JET_IDS: tuple[str, ...] = ("none", "tight", "tight_lepveto")
#: large-R jet mass: the plain mass or the soft-drop mass
FATJET_MASSES: tuple[str, ...] = ("mass", "msoftdrop")
#: b-tag working points (BTV: 10 %, 1 %, 0.1 % light-jet misidentification)
BTAG_LEVELS: tuple[str, ...] = ("loose", "medium", "tight")
#: b-tag algorithms with working points in :mod:`cms_anomaly.processors.btag` ("": the era's / variant's)
BTAG_ALGORITHMS: tuple[str, ...] = ("DeepJet", "DeepCSV", "CSVv2", "CSV")

#: RMM objects per type: T5N10 (Chekanov et al.), a (51, 51) matrix (:func:`~cms_anomaly.processors.rmm.rmm_size`)
RMM_N_PER_TYPE = 10

#: closed ranges ``(low, high)`` of the numbers with bounds beyond "finite and >= 0" (:func:`_check_numbers`)
RANGES: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        # Photon_cutBased: 0 fail, 1 loose, 2 medium, 3 tight
        "photon_id_min": (0, 3),
        # anti-kt radius: CMS jets are AK4 / AK8 (CA15 at most); 0 makes no jet
        "recluster_radius": (0.1, 1.5),
        # GeV: the LHC's 900 GeV pilot run to a 100 TeV collider (13 TeV is 13000, not 13)
        "sqrt_s": (900.0, 100_000.0),
        # the RMM is T5N10: its shape (rmm.RMM_SIZE) is fixed in the histograms, feature tables and models
        "rmm_n_per_type": (RMM_N_PER_TYPE, RMM_N_PER_TYPE),
    }
)
#: string keys and their allowed values
CHOICES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "muon_id": MUON_IDS,
        "jet_id": JET_IDS,
        "fatjet_mass": FATJET_MASSES,
        "btag_level": BTAG_LEVELS,
        "btag_algorithm": ("", *BTAG_ALGORITHMS),
    }
)


@dataclass(frozen=True)
class ObjectConfig:
    """Object definitions (GeV), as CMS defines the objects; every field says its source.

    Objects are disjoint, as in every CMS analysis (and Delphes' UniqueObjectFinder): leptons
    first, then photons away from them, then jets away from both. Each cut names its source.
    """

    # --- leptons --------------------------------------------------------------------------------
    #: leptons entering the lepton sums (N, M, pT_TOT), the RMM and the (19, 3) array (Cerri sec. 3:
    #: "selected" leptons; NanoAOD itself stores muons above 3 GeV and electrons above 5 GeV)
    lepton_pt_min: float = 0.5
    #: muon identification without isolation: "loose", "medium" or "tight" (``Muon_<wp>Id``;
    #: CMS MUO, JINST 13 (2018) P06015); isolation is cut separately below
    muon_id: str = "loose"
    #: electron identification without isolation: the loose WP of the isolation-free MVA
    #: (``Electron_mvaFall17V2noIso_WPL`` in Run 2, CMS EGM, JINST 16 (2021) P05014), so that the
    #: analysis's own isolation cuts keep their meaning (the cut-based ID includes isolation)
    electron_id: bool = True
    #: isolation of every selected lepton: Cerri sec. 3's loose Iso < 0.45, the loosest isolation
    #: of any selection here (the trigger lepton and the selections tighten it)
    lepton_iso_max: float = 0.45
    #: trigger lepton: highest-pT lepton with pT above this and relative isolation below ``trigger_iso_max``
    trigger_lepton_pt_min: float = 23.0
    trigger_iso_max: float = 0.45
    #: isolation cone (CMS pfIsolationR03); the lepton's own PF candidate, an e or mu, enters no sum
    iso_cone: float = 0.3
    # --- photons --------------------------------------------------------------------------------
    #: photons: NanoAOD ``Photon`` with pT above this (CMS photon analyses start at 15-20 GeV)
    photon_pt_min: float = 15.0
    #: photon cut-based ID level: 0 fail, 1 loose, 2 medium, 3 tight (``Photon_cutBased``, CMS EGM
    #: Fall17V2; the generated files derive it from the PF isolation)
    photon_id_min: int = 1
    #: relative PF isolation of photons (dR < 0.3, ``Photon_pfRelIso03_all``): a pi0 photon inside a
    #: jet fails it; also the photon requirement where a file has no ID branch
    photon_iso_max: float = 0.3
    photon_eta_max: float = 2.5
    # --- overlap removal (objects are disjoint) -------------------------------------------------
    #: leptons above this pT remove photons and jets near them (CMS: jets are cleaned against the
    #: analysis's loose leptons with pT > 10 GeV)
    overlap_lepton_pt_min: float = 10.0
    #: photons within this dR of a selected lepton are removed (FSR photons, electrons reconstructed
    #: as photons too)
    photon_lepton_dr: float = 0.4
    #: jets within this dR of a selected lepton or photon are removed (CMS AK4 jets cluster all PF
    #: candidates, leptons and photons included: the standard CMS cone is the jet radius, 0.4)
    jet_overlap_dr: float = 0.4
    #: large-R jets (R = 1.0): removed when a selected lepton or photon within their radius carries more
    #: than ``fatjet_overlap_pt_fraction`` of their pT, i.e. the jet is that object. Unlike an AK4 jet, a
    #: TeV-scale large-R jet often contains an unrelated isolated photon or lepton near its edge,
    #: which must not delete it (measured: 22 of 5000 QCD dijet events lost a leading jet > 1.2 TeV to
    #: a 28-590 GeV photon with the plain dR cut)
    fatjet_overlap_dr: float = 1.0
    fatjet_overlap_pt_fraction: float = 0.5
    # --- jets -----------------------------------------------------------------------------------
    jet_pt_min: float = 30.0
    #: |eta| < 2.4 (Knapp app. A; the tracker acceptance the b tag needs). Cerri's S_T uses 2.6;
    #: here N_J, M_J, H_T and the jets of S_T are one collection (see features.event_features)
    jet_eta_max: float = 2.4
    #: jet identification (``Jet_jetId`` bits, mapped per NanoAOD variant in the schema):
    #: "tight" (CMS JME recommendation for Run 2 and 3), "tight_lepveto" (the lepton-veto bit as
    #: well: for analyses with leptons where a lepton misreconstructed as a jet matters) or "none"
    jet_id: str = "tight"
    #: b-tag working point: "loose", "medium" or "tight" of the BTV table of the dataset's era and
    #: algorithm (:mod:`cms_anomaly.processors.btag`; medium: 1 % light-jet misidentification)
    btag_level: str = "medium"
    #: b-tag algorithm: "" (the NanoAOD variant's, or the era's only one), "DeepJet", "DeepCSV",
    #: "CSVv2" or "CSV" (Run 1)
    btag_algorithm: str = ""
    fatjet_pt_min: float = 150.0
    fatjet_eta_max: float = 2.5
    #: "mass" or "msoftdrop" (falls back to "mass" when the file has no soft-drop mass)
    fatjet_mass: str = "mass"
    #: re-cluster R=0.4 jets with fastjet from PFCands instead of using NanoAOD ``Jet`` (no jet ID
    #: exists for them; overlap removal still applies)
    recluster_jets: bool = False
    recluster_radius: float = 0.4

    def __post_init__(self) -> None:
        _check_numbers(self, section="objects")


def _check_numbers(config: Any, *, section: str) -> None:
    """Every number of a config section is finite and >= 0, every cut named ``*_max`` or ``sqrt_s`` > 0, every
    integer field a whole number, and every key of :data:`RANGES` / :data:`CHOICES` inside its range / choices.

    Raises
    ------
    ConfigError
        One line naming the section, the key, the value and what is allowed.
    """
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name in CHOICES and value not in CHOICES[f.name]:
            raise ConfigError(f"[{section}] {f.name} must be one of {CHOICES[f.name]}, got {value!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value) or value < 0 or (value == 0 and (f.name.endswith("_max") or f.name == "sqrt_s")):
            need = "> 0" if f.name.endswith("_max") or f.name == "sqrt_s" else ">= 0"
            raise ConfigError(f"[{section}] {f.name} must be a finite number {need}, got {value!r}")
        if f.type in ("int", int) and not float(value).is_integer():
            raise ConfigError(f"[{section}] {f.name} must be a whole number, got {value!r}")
        low, high = RANGES.get(f.name, (-math.inf, math.inf))
        if not low <= value <= high:
            raise ConfigError(f"[{section}] {f.name} must be in [{low:g}, {high:g}], got {value!r}")


@dataclass(frozen=True)
class FeatureConfig:
    """Feature settings."""

    sqrt_s: float = SQRT_S
    #: S_T object cuts (Cerri: pT > 30, |eta| < 2.6)
    st_pt_min: float = 30.0
    st_eta_max: float = 2.6
    #: RMM T5N10: objects per type, minimum pT for leptons and photons (jets use the jet cuts)
    rmm_n_per_type: int = RMM_N_PER_TYPE
    rmm_lepton_pt_min: float = 30.0
    rmm_photon_pt_min: float = 30.0
    #: ADC2021 (19, 3) array: object cuts of the L1-like objects
    adc_lepton_pt_min: float = 3.0
    adc_jet_pt_min: float = 15.0
    adc_jet_eta_max: float = 4.0

    def __post_init__(self) -> None:
        _check_numbers(self, section="features")


@dataclass(frozen=True)
class SelectionConfig:
    """Thresholds of the named selections (the papers' event selections; see ``processors/selections.py``)."""

    single_lepton_pt_min: float = 23.0
    single_lepton_iso_max: float = 0.45
    #: the reference single-lepton trigger that Cerri et al. compare the VAE with (sec. 5, Table 5):
    #: a lepton with pT > 27 GeV and Iso < 0.25 (the CMS 2016 isolated single-lepton paths)
    slt_pt_min: float = 27.0
    slt_iso_max: float = 0.25
    top_muon_pt_min: float = 23.0
    top_muon_iso_max: float = 0.1
    top_muon_eta_max: float = 1.4
    top_min_jets: int = 2
    rmm_lepton_pt_min: float = 30.0
    rmm_lepton_iso_max: float = 0.15
    rmm_min_jets: int = 2
    dijet_leading_pt_min: float = 1200.0
    # --- event classes (``event_classes``, :mod:`~cms_anomaly.processors.eventclass`) -----------
    #: class objects: the analysis objects above MUSiC's thresholds (CMS MUSiC, EPJC 81 (2021) 629,
    #: sec. 3: muons and electrons pT > 25 GeV, photons pT > 25 GeV in the barrel, jets and b-jets
    #: pT > 50 GeV, |eta| < 2.4, MET > 100 GeV)
    class_muon_pt_min: float = 25.0
    class_muon_eta_max: float = 2.4
    class_electron_pt_min: float = 25.0
    class_electron_eta_max: float = 2.5
    #: relative PF isolation of class leptons: the CMS muon POG's tight PF isolation (dR < 0.3 here),
    #: the same for electrons (the objects' loose 0.45 lets jet leptons in)
    class_lepton_iso_max: float = 0.15
    class_photon_pt_min: float = 25.0
    #: ECAL barrel, |eta| < 1.4442 (MUSiC uses barrel photons)
    class_photon_eta_max: float = 1.4442
    class_jet_pt_min: float = 50.0
    class_jet_eta_max: float = 2.4
    class_met_min: float = 100.0
    #: counting caps: an event with more objects of a type has no exclusive class; light jets above
    #: ``class_max_jets`` go to the jet-inclusive (``+NJets``) and inclusive (``+X``) classes only, the
    #: other types to the inclusive ones only (MUSiC counts jets up to a fixed multiplicity)
    class_max_electrons: int = 4
    class_max_muons: int = 4
    class_max_photons: int = 4
    class_max_jets: int = 6
    class_max_bjets: int = 3
    #: offline thresholds of the trigger kinds (the trigger object's plateau above the HLT threshold of
    #: the paths in ``dataquality.CLASS_TRIGGERS``; on generated files, which have no HLT, the trigger
    #: emulation): single muon (HLT IsoMu24) 25 GeV, single electron (Ele27_WPTight) 30 GeV,
    #: dimuon (Mu17_Mu8) 20 and 10 GeV, dielectron (Ele23_Ele12) 25 and 15 GeV, photon (Photon175)
    #: 180 GeV, jets (PFHT900: 99 % efficient from H_T ~ 1 TeV, CMS-EXO-16-056) H_T of the class jets 1050 GeV
    trigger_single_muon_pt_min: float = 25.0
    trigger_single_electron_pt_min: float = 30.0
    trigger_double_muon_pt1_min: float = 20.0
    trigger_double_muon_pt2_min: float = 10.0
    trigger_double_electron_pt1_min: float = 25.0
    trigger_double_electron_pt2_min: float = 15.0
    trigger_photon_pt_min: float = 180.0
    trigger_ht_min: float = 1050.0

    def __post_init__(self) -> None:
        _check_numbers(self, section="selections")


@dataclass(frozen=True)
class CorrectionConfig:
    """Scale factors of simulation from a CMS correctionlib JSON (:mod:`cms_anomaly.processors.corrections`).

    Every name is a correction of ``file``; an empty name applies no such correction, an empty
    ``file`` none at all.
    """

    #: the correctionlib JSON (``.json`` or ``.json.gz``; e.g. the muon POG's ``muon_Z.json.gz``)
    file: str = ""
    #: muon identification scale factor (e.g. ``NUM_LooseID_DEN_TrackerMuons``, muon POG UL)
    muon_id_sf: str = ""
    #: muon isolation scale factor (e.g. ``NUM_LooseRelIso_DEN_LooseID``, muon POG UL)
    muon_iso_sf: str = ""
    #: b-tag scale factor of the discriminator shape ("iterativefit", e.g. ``deepJet_shape``, BTV UL),
    #: applied to every analysis jet
    btag_sf: str = ""
    #: its uncertainties applied, comma-separated: the BTV shape calibration's ``up_<name>`` /
    #: ``down_<name>`` (twiki CMS/BTagShapeCalibration; ``jes`` left out: it moves with the jet energy
    #: scale, which this analysis does not vary)
    btag_sf_variations: str = "hf,lf,hfstats1,hfstats2,lfstats1,lfstats2,cferr1,cferr2"
    #: muons with pT above this get the muon scale factors: the lower edge of the pT binning of the
    #: muon POG's UL ID and isolation scale factors (twiki CMS/MuonUL2018)
    muon_pt_min: float = 15.0

    def __post_init__(self) -> None:
        _check_numbers(self, section="corrections")
        names = [n for n in (self.muon_id_sf, self.muon_iso_sf, self.btag_sf) if n]
        if names and not self.file:
            raise ConfigError(f"[corrections] correction(s) {names} named without a file")

    @property
    def active(self) -> bool:
        """Whether any correction is applied."""
        return bool(self.file) and any((self.muon_id_sf, self.muon_iso_sf, self.btag_sf))


@dataclass(frozen=True)
class AnalysisConfig:
    """The whole configuration."""

    objects: ObjectConfig = field(default_factory=ObjectConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    selections: SelectionConfig = field(default_factory=SelectionConfig)
    corrections: CorrectionConfig = field(default_factory=CorrectionConfig)

    def with_sqrt_s(self, sqrt_s: float) -> AnalysisConfig:
        """A copy with another centre-of-mass energy (GeV)."""
        return dataclasses.replace(self, features=dataclasses.replace(self.features, sqrt_s=float(sqrt_s)))


def _build(cls: type, values: dict[str, Any], *, source: str, section: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} in [{section}]; known: {sorted(known)}")
    kwargs = {}
    for name, value in values.items():
        default = getattr(cls(), name)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{source}: [{section}] {name} must be true/false, got {value!r}")
        elif isinstance(default, (int, float)) and not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: [{section}] {name} must be a number, got {value!r}")
        elif isinstance(default, str) and not isinstance(value, str):
            raise ConfigError(f"{source}: [{section}] {name} must be a string, got {value!r}")
        # an int key given 2.7 stays 2.7, refused by the section's check, not truncated to 2
        whole = not isinstance(default, int) or float(value).is_integer()
        kwargs[name] = type(default)(value) if whole else value
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def load_config(path: str | Path | None = None) -> AnalysisConfig:
    """Load an :class:`AnalysisConfig` from a TOML file (``None``: defaults).

    Raises
    ------
    ConfigError
        Unknown section or key, or a value of the wrong type; the message names the file.
    """
    if path is None:
        return AnalysisConfig()
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{path}: cannot read configuration: {err}") from err
    sections = {
        "objects": ObjectConfig,
        "features": FeatureConfig,
        "selections": SelectionConfig,
        "corrections": CorrectionConfig,
    }
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {unknown}; known: {sorted(sections)}")
    return AnalysisConfig(
        **{name: _build(cls, data.get(name, {}), source=str(path), section=name) for name, cls in sections.items()}
    )
