"""One record per feature: name, axis label with units, histogram binning.

The feature *sets* used by the models are tuples of names into :data:`FEATURES`:

- :data:`HLF21`: the 21 high-level features of Cerri et al. (sec. 3), in the paper's order.
- :data:`HLF24`: Knapp et al. appendix A. The paper calls it "24 features" but its list has 25
  entries (H_T ... IsEle); we keep all 25 under the historical name.
- :data:`LARGE_R`: the large-R jet substructure of the LHC Olympics dijet search.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from cms_anomaly.processors.rmm import M_LEAD_NAMES


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
    """

    name: str
    label: str
    bins: int
    lo: float
    hi: float
    integer: bool = False
    description: str = ""


_SPECS: tuple[FeatureSpec, ...] = (
    FeatureSpec("pt_lep", r"$p_T^{\ell}$ [GeV]", 50, 0, 500, description="trigger-lepton pT"),
    FeatureSpec("eta_lep", r"$\eta^{\ell}$", 50, -2.5, 2.5, description="trigger-lepton pseudorapidity"),
    FeatureSpec(
        "iso_ch", r"ChPFIso (relative)", 50, 0, 0.5, description="charged-particle isolation of the trigger lepton"
    ),
    FeatureSpec(
        "iso_neu",
        r"NeuPFIso (relative)",
        50,
        0,
        0.5,
        description="neutral-hadron isolation (with photons if no PFCands)",
    ),
    FeatureSpec("iso_gamma", r"GammaPFIso (relative)", 50, 0, 0.5, description="photon isolation"),
    FeatureSpec("iso", r"Iso (relative)", 50, 0, 0.5, description="total relative isolation"),
    FeatureSpec("charge_lep", r"$q^{\ell}$ [e]", 3, -1, 2, integer=True, description="trigger-lepton charge (0: none)"),
    FeatureSpec("is_ele", r"IsEle", 2, 0, 2, integer=True, description="1 if the trigger lepton is an electron"),
    FeatureSpec(
        "st",
        r"$S_T$ [GeV]",
        60,
        0,
        3000,
        description="scalar pT sum of clean jets, leptons, photons (pT>30; jets |eta|<2.4, others 2.6)",
    ),
    FeatureSpec("ht", r"$H_T$ [GeV]", 60, 0, 3000, description="scalar pT sum of the selected jets"),
    FeatureSpec(
        "n_jets",
        r"$N_J$",
        16,
        0,
        16,
        integer=True,
        description="clean jets (ID, no lepton/photon within dR 0.4; pT>30, |eta|<2.4)",
    ),
    FeatureSpec("m_jets", r"$M_J$ [GeV]", 60, 0, 3000, description="invariant mass of all selected jets"),
    FeatureSpec("n_bjets", r"$N_b$", 8, 0, 8, integer=True, description="b-tagged selected jets"),
    FeatureSpec("met", r"$p_T^{miss}$ [GeV]", 50, 0, 500, description="missing transverse momentum"),
    FeatureSpec(
        "met_par", r"$p_{T,\parallel}^{miss}$ [GeV]", 50, -250, 250, description="MET component along the lepton"
    ),
    FeatureSpec(
        "met_perp",
        r"$p_{T,\perp}^{miss}$ [GeV]",
        50,
        -250,
        250,
        description="MET component perpendicular to the lepton (signed)",
    ),
    FeatureSpec("mt", r"$M_T$ [GeV]", 50, 0, 500, description="transverse mass of lepton and MET"),
    FeatureSpec("n_mu", r"$N_\mu$", 8, 0, 8, integer=True, description="selected muons (ID, Iso < 0.45, pT > 0.5 GeV)"),
    FeatureSpec("m_mu", r"$M_\mu$ [GeV]", 50, 0, 500, description="invariant mass of all muons"),
    FeatureSpec("pt_tot_mu", r"$p_{T,TOT}^{\mu}$ [GeV]", 50, 0, 500, description="|vector pT sum| of all muons"),
    FeatureSpec(
        "n_ele", r"$N_e$", 8, 0, 8, integer=True, description="selected electrons (ID, Iso < 0.45, pT > 0.5 GeV)"
    ),
    FeatureSpec("m_ele", r"$M_e$ [GeV]", 50, 0, 500, description="invariant mass of all electrons"),
    FeatureSpec("pt_tot_ele", r"$p_{T,TOT}^{e}$ [GeV]", 50, 0, 500, description="|vector pT sum| of all electrons"),
    FeatureSpec(
        "n_ch_had", r"$N_{ch.\,had.}$", 60, 0, 600, description="charged-hadron PF candidates (-1: no PFCands)"
    ),
    FeatureSpec(
        "n_neu_had", r"$N_{neu.\,had.}$", 50, 0, 200, description="neutral-hadron PF candidates (-1: no PFCands)"
    ),
    FeatureSpec(
        "n_photons",
        r"$N_\gamma$",
        60,
        0,
        300,
        description="photon PF candidates (Knapp app. A; -1 without PF candidates)",
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

#: every scalar feature, by name
FEATURES: Mapping[str, FeatureSpec] = MappingProxyType({s.name: s for s in _SPECS})

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
LARGE_R: tuple[str, ...] = ("mJ1", "mJ2", "mJJ", "tau21_j1", "tau32_j1", "tau21_j2", "tau32_j2")
#: the 14 leading-object masses are also stored together as the (N, 14) field ``m_lead_objects``
M_LEAD: tuple[str, ...] = M_LEAD_NAMES
#: non-scalar fields of the feature record: name -> per-event shape
ARRAY_FEATURES: Mapping[str, tuple[int, ...]] = MappingProxyType(
    {
        "m_lead_objects": (len(M_LEAD_NAMES),),
        "objects": (19, 3),
        "rmm": (51, 51),
    }
)
#: all scalar features in record order
SCALAR_FEATURES: tuple[str, ...] = tuple(FEATURES)
#: features histogrammed by the processor (everything scalar)
HISTOGRAMMED: tuple[str, ...] = SCALAR_FEATURES

assert len(HLF21) == 21
assert len(HLF24) == 25
assert set(HLF21 + HLF24 + LARGE_R) <= set(FEATURES)
