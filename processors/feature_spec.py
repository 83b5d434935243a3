"""One record per feature: name, axis label with units, histogram binning.

The feature *sets* used by the models are tuples of names into :data:`FEATURES`:

- :data:`HLF21`: the 21 high-level features of Cerri et al. (sec. 3), in the paper's order.
- :data:`HLF24`: Knapp et al. appendix A. The paper calls it "24 features" but its list has 25
  entries (H_T ... IsEle); we keep all 25 under the historical name.
- :data:`HLF_NANO`: the features of :data:`HLF24` that need no PF candidates, then those that need the
  jet content (the ``Jet_*`` branches, in place of the PF-candidate multiplicities): what standard
  NanoAOD carries (collision data included), the default input of the hunt, which runs on data.
- :data:`LARGE_R`: the large-R jet substructure of the LHC Olympics dijet search.

Each record declares what the input file must carry for it (:attr:`FeatureSpec.needs`, one of
:data:`NEEDS`); the processor records per dataset which needs were met, and
:func:`usable_features` keeps the features of a set that every dataset of a job can compute.
Each record also carries the VAE's likelihood family of the feature (:attr:`FeatureSpec.vae_pdf`).

:func:`register_feature` adds a feature with its own ``compute`` function at run time (see
``docs/howto/add-a-feature.md``): :data:`FEATURES` is a live view of the registry, and the processor
computes, histograms and writes every feature it holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from cms_anomaly.processors.rmm import M_LEAD_NAMES, RMM_SIZE


@dataclass(frozen=True)
class FeatureSpec:
    """A scalar per-event feature.

    Attributes
    ----------
    name
        Column name (snake_case).
    label
        Axis label with units (matplotlib mathtext allowed).
    bins, lo, hi
        Regular binning of its histogram (``integer``: one bin per value from ``lo`` to ``hi - 1``).
    integer
        Counts / discrete values (histogrammed with an Integer axis).
    description
        One line: how it is computed.
    needs
        Keys of :data:`NEEDS` the input file must meet for the feature to be computed; without
        them the feature holds its placeholder (-1, or 0 for ``iso_gamma``) and no model may use it.
    vae_pdf
        The VAE's per-feature likelihood family (Cerri sec. 4.1; one of :data:`cms_anomaly.models.vae.FAMILIES`), "" if
        the VAE cannot read the feature.
    compute
        ``compute(objects, config) -> ndarray`` of one value per event, for a feature added with
        :func:`register_feature`; ``None`` for the built-in features (computed in
        :mod:`~cms_anomaly.processors.features`).
    """

    name: str
    label: str
    bins: int
    lo: float
    hi: float
    integer: bool = False
    description: str = ""
    needs: tuple[str, ...] = ()
    vae_pdf: str = ""
    compute: Callable[[Any, Any], Any] | None = None


#: PF candidates: the ``PFCands_*`` collection of PFNano and of this project's generated files;
#: standard NanoAOD (collision data and simulation, every version) and NanoAODRun1 have none
PFCANDS = "pfcands"
#: jet content: ``Jet_nConstituents`` and the energy fractions ``Jet_chHEF``, ``Jet_neHEF``,
#: ``Jet_chEmEF``, ``Jet_neEmEF`` (NanoAOD v5 and later, PFNano, the generated files)
JET_CONTENT = "jet_content"
#: what a file may lack that some features need -> what it is (the text of a dropped feature's reason)
NEEDS: Mapping[str, str] = MappingProxyType(
    {
        PFCANDS: "PF candidates (PFCands_*)",
        JET_CONTENT: "jet constituent counts and energy fractions (Jet_nConstituents, Jet_*EF)",
    }
)


#: the object types of the event classes (:data:`~cms_anomaly.processors.eventclass.TYPES`, in that order):
#: (type, axis label, what is counted); the features ``class_n_<type>`` count them (uncapped)
CLASS_COUNT_TYPES: tuple[tuple[str, str, str], ...] = (
    ("e", "e", "electrons"),
    ("mu", r"\mu", "muons"),
    ("gamma", r"\gamma", "photons"),
    ("jet", "j", "light (not b-tagged) jets"),
    ("bjet", "b", "b-tagged jets"),
)

_SPECS: tuple[FeatureSpec, ...] = (
    FeatureSpec("pt_lep", r"$p_T^{\ell}$ [GeV]", 50, 0, 500, description="trigger-lepton pT", vae_pdf="lognormal"),
    FeatureSpec(
        "eta_lep", r"$\eta^{\ell}$", 50, -2.5, 2.5, description="trigger-lepton pseudorapidity", vae_pdf="gaussian"
    ),
    FeatureSpec(
        "iso_ch",
        r"ChPFIso (relative)",
        50,
        0,
        0.5,
        description="charged-hadron isolation of the trigger lepton (pfRelIso03_chg)",
        vae_pdf="lognormal",
    ),
    FeatureSpec(
        "iso_neu",
        r"NeuPFIso (relative)",
        50,
        0,
        0.5,
        description="neutral isolation, neutral hadrons and photons (pfRelIso03_all - pfRelIso03_chg)",
        vae_pdf="lognormal",
    ),
    FeatureSpec(
        "iso_gamma",
        r"GammaPFIso (relative)",
        50,
        0,
        0.5,
        description="photon part of the isolation from the PF candidates (0 without them)",
        needs=(PFCANDS,),
        vae_pdf="lognormal",
    ),
    FeatureSpec(
        "iso",
        r"Iso (relative)",
        50,
        0,
        0.5,
        description="total relative isolation (pfRelIso03_all)",
        vae_pdf="lognormal",
    ),
    FeatureSpec(
        "charge_lep",
        r"$q^{\ell}$ [e]",
        3,
        -1,
        2,
        integer=True,
        description="trigger-lepton charge (0: none)",
        vae_pdf="binomial",
    ),
    FeatureSpec(
        "is_ele",
        r"IsEle",
        2,
        0,
        2,
        integer=True,
        description="1 if the trigger lepton is an electron",
        vae_pdf="binomial",
    ),
    FeatureSpec(
        "st",
        r"$S_T$ [GeV]",
        60,
        0,
        3000,
        description="scalar pT sum of clean jets, leptons, photons (pT>30; jets |eta|<2.4, others 2.6)",
        vae_pdf="lognormal",
    ),
    FeatureSpec(
        "ht", r"$H_T$ [GeV]", 60, 0, 3000, description="scalar pT sum of the selected jets", vae_pdf="lognormal"
    ),
    FeatureSpec(
        "n_jets",
        r"$N_J$",
        16,
        0,
        16,
        integer=True,
        description="clean jets (ID, no lepton/photon within dR 0.4; pT>30, |eta|<2.4)",
        vae_pdf="discrete_truncated_gaussian",
    ),
    FeatureSpec(
        "m_jets", r"$M_J$ [GeV]", 60, 0, 3000, description="invariant mass of all selected jets", vae_pdf="lognormal"
    ),
    FeatureSpec(
        "n_bjets",
        r"$N_b$",
        8,
        0,
        8,
        integer=True,
        description="b-tagged selected jets",
        vae_pdf="discrete_truncated_gaussian",
    ),
    FeatureSpec(
        "met", r"$p_T^{miss}$ [GeV]", 50, 0, 500, description="missing transverse momentum", vae_pdf="lognormal"
    ),
    FeatureSpec(
        "met_par",
        r"$p_{T,\parallel}^{miss}$ [GeV]",
        50,
        -250,
        250,
        description="MET component along the lepton",
        vae_pdf="gaussian",
    ),
    FeatureSpec(
        "met_perp",
        r"$p_{T,\perp}^{miss}$ [GeV]",
        50,
        -250,
        250,
        description="MET component perpendicular to the lepton (signed)",
        vae_pdf="gaussian",
    ),
    FeatureSpec(
        "mt", r"$M_T$ [GeV]", 50, 0, 500, description="transverse mass of lepton and MET", vae_pdf="truncated_gaussian"
    ),
    FeatureSpec(
        "n_mu",
        r"$N_\mu$",
        8,
        0,
        8,
        integer=True,
        description="selected muons (ID, Iso < 0.45, pT > 0.5 GeV)",
        vae_pdf="discrete_truncated_gaussian",
    ),
    FeatureSpec("m_mu", r"$M_\mu$ [GeV]", 50, 0, 500, description="invariant mass of all muons", vae_pdf="lognormal"),
    FeatureSpec(
        "pt_tot_mu",
        r"$p_{T,TOT}^{\mu}$ [GeV]",
        50,
        0,
        500,
        description="|vector pT sum| of all muons",
        vae_pdf="lognormal",
    ),
    FeatureSpec(
        "n_ele",
        r"$N_e$",
        8,
        0,
        8,
        integer=True,
        description="selected electrons (ID, Iso < 0.45, pT > 0.5 GeV)",
        vae_pdf="discrete_truncated_gaussian",
    ),
    FeatureSpec(
        "m_ele", r"$M_e$ [GeV]", 50, 0, 500, description="invariant mass of all electrons", vae_pdf="lognormal"
    ),
    FeatureSpec(
        "pt_tot_ele",
        r"$p_{T,TOT}^{e}$ [GeV]",
        50,
        0,
        500,
        description="|vector pT sum| of all electrons",
        vae_pdf="lognormal",
    ),
    FeatureSpec(
        "n_ch_had",
        r"$N_{ch.\,had.}$",
        60,
        0,
        600,
        description="charged-hadron PF candidates (-1: no PFCands)",
        needs=(PFCANDS,),
        vae_pdf="poisson",
    ),
    FeatureSpec(
        "n_neu_had",
        r"$N_{neu.\,had.}$",
        50,
        0,
        200,
        description="neutral-hadron PF candidates (-1: no PFCands)",
        needs=(PFCANDS,),
        vae_pdf="poisson",
    ),
    FeatureSpec(
        "n_photons",
        r"$N_\gamma$",
        60,
        0,
        300,
        description="photon PF candidates (Knapp app. A; -1 without PF candidates)",
        needs=(PFCANDS,),
        vae_pdf="poisson",
    ),
    FeatureSpec(
        "n_constituents",
        r"$N_{const.}^{J}$",
        80,
        0,
        400,
        description="summed Jet_nConstituents of the selected jets (-1: no jet content)",
        needs=(JET_CONTENT,),
        vae_pdf="poisson",
    ),
    *(
        FeatureSpec(
            f"jet_{key.lower()}",
            rf"$\langle {label} \rangle_{{p_T}}$",
            50,
            0,
            1,
            description=f"pT-weighted mean Jet_{key} of the selected jets (0: no jet; -1: no jet content)",
            needs=(JET_CONTENT,),
            vae_pdf="gaussian",
        )
        for key, label in (
            ("chHEF", r"f_{ch.\,had.}"),
            ("neHEF", r"f_{neu.\,had.}"),
            ("chEmEF", r"f_{ch.\,EM}"),
            ("neEmEF", r"f_{neu.\,EM}"),
        )
    ),
    FeatureSpec("mjj", r"$m_{jj}$ [GeV]", 60, 0, 3000, description="invariant mass of the two leading jets"),
    FeatureSpec("n_fatjets", r"$N_{J,R=1.0}$", 6, 0, 6, integer=True, description="large-R jets"),
    FeatureSpec("mJ1", r"$m_{J_1}$ [GeV]", 50, 0, 1000, description="leading large-R jet mass"),
    FeatureSpec("mJ2", r"$m_{J_2}$ [GeV]", 50, 0, 1000, description="sub-leading large-R jet mass"),
    FeatureSpec("mJJ", r"$m_{JJ}$ [GeV]", 70, 0, 7000, description="invariant mass of the two leading large-R jets"),
    FeatureSpec(
        "tau21_j1", r"$\tau_{21}^{J_1}$", 50, 0, 1, description="tau2/tau1 of the leading large-R jet (-1: no taus)"
    ),
    FeatureSpec("tau32_j1", r"$\tau_{32}^{J_1}$", 50, 0, 1, description="tau3/tau2 of the leading large-R jet"),
    FeatureSpec("tau21_j2", r"$\tau_{21}^{J_2}$", 50, 0, 1, description="tau2/tau1 of the sub-leading large-R jet"),
    FeatureSpec("tau32_j2", r"$\tau_{32}^{J_2}$", 50, 0, 1, description="tau3/tau2 of the sub-leading large-R jet"),
    *(
        FeatureSpec(
            f"class_n_{kind}",
            rf"$N_{{{label}}}$ (event class)",
            10,
            0,
            10,
            integer=True,
            description=f"{what} of the event classes (processors/eventclass.py; SelectionConfig.class_*)",
        )
        for kind, label, what in CLASS_COUNT_TYPES
    ),
    *(
        FeatureSpec(
            name,
            rf"$m_{{{name[2:].replace('_', '')}}}$ [GeV]",
            60,
            0,
            3000,
            description="leading-object invariant mass from the RMM",
        )
        for name in M_LEAD_NAMES
    ),
)

_REGISTRY: dict[str, FeatureSpec] = {s.name: s for s in _SPECS}
#: every scalar feature, by name: the built-in ones, then those of :func:`register_feature` (a live view)
FEATURES: Mapping[str, FeatureSpec] = MappingProxyType(_REGISTRY)

HLF21: tuple[str, ...] = (
    "pt_lep",
    "iso_ch",
    "iso_neu",
    "iso_gamma",
    "charge_lep",
    "is_ele",
    "st",
    "n_jets",
    "m_jets",
    "n_bjets",
    "met_par",
    "met_perp",
    "mt",
    "n_mu",
    "m_mu",
    "pt_tot_mu",
    "n_ele",
    "m_ele",
    "pt_tot_ele",
    "n_ch_had",
    "n_neu_had",
)
HLF24: tuple[str, ...] = (
    "ht",
    "m_jets",
    "n_jets",
    "n_bjets",
    "met",
    "pt_tot_mu",
    "m_mu",
    "n_mu",
    "pt_tot_ele",
    "m_ele",
    "n_ele",
    "n_neu_had",
    "n_ch_had",
    "n_photons",
    "pt_lep",
    "eta_lep",
    "charge_lep",
    "iso_ch",
    "iso_neu",
    "iso_gamma",
    "iso",
    "mt",
    "met_par",
    "met_perp",
    "is_ele",
)
#: HLF-24 on standard NanoAOD: the three PF-candidate multiplicities of Knapp app. A (N_neu.had.,
#: N_ch.had., N_gamma) and the photon isolation need PF candidates, which collision-data NanoAOD lacks;
#: the features that need the jet content (the jets' constituent count and charged/neutral hadronic and
#: EM energy fractions, Jet_* branches, the same particle-flow content summed per jet) take their place,
#: so data and simulation get the same definition whatever PF candidates a file has
HLF_NANO: tuple[str, ...] = (
    *(name for name in HLF24 if PFCANDS not in FEATURES[name].needs),
    *(name for name, spec in FEATURES.items() if JET_CONTENT in spec.needs),
)
#: the object counts that define an event's exclusive class (with MET > ``class_met_min``, which ``met``
#: gives): :data:`HLF_NANO` with them is the input of the class hunt's detector
CLASS_COUNTS: tuple[str, ...] = tuple(f"class_n_{kind}" for kind, _, _ in CLASS_COUNT_TYPES)
LARGE_R: tuple[str, ...] = ("mJ1", "mJ2", "mJJ", "tau21_j1", "tau32_j1", "tau21_j2", "tau32_j2")
#: ADC2021 object array: (row offset, number of rows) per object type after the MET row (row 0)
ADC_LAYOUT: Mapping[str, tuple[int, int]] = MappingProxyType({"electron": (1, 4), "muon": (5, 4), "jet": (9, 10)})
#: its rows (MET, 4 electrons, 4 muons, 10 jets: 19) and the variables of each row
ADC_ROWS: int = 1 + sum(rows for _, rows in ADC_LAYOUT.values())
ADC_VARIABLES: tuple[str, ...] = ("pt", "eta", "phi")
#: non-scalar fields of the feature record: name -> per-event shape
ARRAY_FEATURES: Mapping[str, tuple[int, ...]] = MappingProxyType(
    {
        "m_lead_objects": (len(M_LEAD_NAMES),),
        "objects": (ADC_ROWS, len(ADC_VARIABLES)),
        "rmm": (RMM_SIZE, RMM_SIZE),
    }
)
#: the built-in scalar features in record order (with the registered ones: ``tuple(FEATURES)``)
SCALAR_FEATURES: tuple[str, ...] = tuple(FEATURES)
#: the built-in features the processor histograms (everything scalar; it also histograms the registered ones)
HISTOGRAMMED: tuple[str, ...] = SCALAR_FEATURES

assert len(HLF21) == 21
assert len(HLF24) == 25
assert len(HLF_NANO) == 26
assert set(HLF21 + HLF24 + HLF_NANO + LARGE_R) <= set(FEATURES)
assert all(need in NEEDS for spec in _SPECS for need in spec.needs)
assert ADC_ROWS == 19


class FeatureRegistryError(ValueError):
    """A feature cannot be registered (its name is taken, it has no ``compute``, or a need is unknown)."""


def register_feature(spec: FeatureSpec) -> None:
    """Add ``spec`` (with its ``compute`` function) to :data:`FEATURES`.

    The processor computes it on the selected events (and on every event for a cut that reads it),
    histograms it and writes it to the feature tables, after the built-in features.

    Raises
    ------
    FeatureRegistryError
        The name is taken, ``spec.compute`` is ``None``, or a need is not a key of :data:`NEEDS`.
    """
    if spec.name in _REGISTRY:
        raise FeatureRegistryError(f"feature {spec.name!r} is already registered")
    if spec.compute is None:
        raise FeatureRegistryError(f"feature {spec.name!r}: register_feature needs its compute function")
    unknown = [need for need in spec.needs if need not in NEEDS]
    if unknown:
        raise FeatureRegistryError(f"feature {spec.name!r}: unknown needs {unknown}; known: {sorted(NEEDS)}")
    _REGISTRY[spec.name] = spec


def unregister_feature(name: str) -> None:
    """Remove a feature added with :func:`register_feature` (the built-in ones stay)."""
    if name in SCALAR_FEATURES or name not in _REGISTRY:
        raise FeatureRegistryError(f"feature {name!r} is not a registered one")
    del _REGISTRY[name]


def registered_features() -> tuple[FeatureSpec, ...]:
    """The features added with :func:`register_feature`, in registration order."""
    return tuple(spec for spec in _REGISTRY.values() if spec.compute is not None)


def needs_of(columns: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """``{column: needs}`` of the columns that have needs (array columns and unknown names have none)."""
    return {c: FEATURES[c].needs for c in columns if c in FEATURES and FEATURES[c].needs}


def usable_features(
    columns: Iterable[str], available: Mapping[str, Iterable[str]]
) -> tuple[tuple[str, ...], dict[str, str]]:
    """The columns every dataset can compute, and the dropped ones with the reason.

    Parameters
    ----------
    columns
        Feature names of a set, in its order.
    available
        ``{dataset: needs it met}`` for every dataset of the job (keys of :data:`NEEDS`).

    Returns
    -------
    kept, dropped
        ``kept`` in the order of ``columns``; ``dropped``: ``{feature: "needs <what>; missing in <datasets>"}``.
    """
    met = {d: set(v) for d, v in available.items()}
    kept: list[str] = []
    dropped: dict[str, str] = {}
    for column in columns:
        missing = {
            need: sorted(d for d, have in met.items() if need not in have)
            for need in needs_of([column]).get(column, ())
        }
        missing = {need: ds for need, ds in missing.items() if ds}
        if missing:
            dropped[column] = "; ".join(
                f"needs {NEEDS[need]}, missing in {', '.join(ds)}" for need, ds in missing.items()
            )
        else:
            kept.append(column)
    return tuple(kept), dropped
