"""Every number of the detector response (:class:`DetectorConfig`), each with its source."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DetectorConfig:
    """Parameters of the detector response.

    Sources: the Delphes 3 CMS card (``cards/delphes_card_CMS.tcl``: tracking efficiencies and
    momentum resolutions, ECAL/HCAL/HF resolutions, identification efficiencies, EFlow
    thresholds), CMS DeepJet working points (BTV, 2018 UL: loose 0.0490, medium 0.2783, tight
    0.7100) and the CMS b-tagging performance (JINST 13 (2018) P05011: ~70 % b, ~12 % c, ~1 %
    light at the medium working point).
    """

    # --- tracking (Delphes CMS ChargedHadron/Electron/MuonTrackingEfficiency) ---
    tracker_abs_eta: float = 2.5
    track_pt_min: float = 0.1
    #: efficiency for (pT 0.1-1 GeV, pT > 1 GeV) x (|eta| < 1.5, 1.5-2.5)
    eff_track_hadron: tuple[tuple[float, float], tuple[float, float]] = ((0.70, 0.95), (0.60, 0.85))
    eff_track_electron: tuple[tuple[float, float], tuple[float, float]] = ((0.73, 0.95), (0.50, 0.85))
    eff_track_muon: tuple[tuple[float, float], tuple[float, float]] = ((0.75, 0.99), (0.70, 0.98))
    #: relative pT resolution sqrt(a^2 + (b pT)^2) in |eta| bins [0, 0.5, 1.5, 2.5] (Delphes CMS)
    res_track_hadron: tuple[tuple[float, float], ...] = ((0.06, 1.3e-3), (0.10, 1.7e-3), (0.25, 3.1e-3))
    res_track_muon: tuple[tuple[float, float], ...] = ((0.01, 1.0e-4), (0.015, 1.5e-4), (0.025, 3.5e-4))
    # --- calorimeters: sigma(E) = sqrt((c E)^2 + s^2 E + n^2) ---
    ecal_abs_eta: float = 3.0
    hf_abs_eta: float = 5.0
    ecal_res: tuple[float, float, float] = (0.007, 0.07, 0.35)  # Delphes CMS ECAL, |eta| < 3
    hf_em_res: tuple[float, float, float] = (0.107, 2.08, 0.0)  # Delphes CMS HF, EM part
    hcal_res: tuple[float, float, float] = (0.050, 1.50, 0.0)  # Delphes CMS HCAL, |eta| < 3
    hf_had_res: tuple[float, float, float] = (0.130, 2.70, 0.0)  # Delphes CMS HF, |eta| 3-5
    #: calorimeter cells, rows (|eta| low, |eta| high, eta width, phi divisions), after the Delphes CMS
    #: card's ECal/HCal: ECAL crystals 0.0174 x 2pi/360 up to |eta| 3 (the CMS barrel crystal, JINST 3
    #: (2008) S08004), HF 0.175 x 2pi/36; HCAL 0.087 x 2pi/72 (5 x 5 crystals) up to |eta| 1.74, 0.174 x
    #: 2pi/36 up to 3 (the endcap's 10-degree towers), HF 0.175 x 2pi/36
    ecal_towers: tuple[tuple[float, float, float, int], ...] = ((0.0, 3.0, 0.0174, 360), (3.0, 5.0, 0.175, 36))
    hcal_towers: tuple[tuple[float, float, float, int], ...] = (
        (0.0, 1.74, 0.087, 72),
        (1.74, 3.0, 0.174, 36),
        (3.0, 5.0, 0.175, 36),
    )
    #: a cell becomes a photon (ECAL) / neutral hadron (HCAL) above the energy threshold (GeV; the
    #: Delphes CMS card's ECal / HCal EnergyMin); a block with linked tracks only with its excess over the
    #: tracks' energy above the threshold and above this many sigma of the calorimeter and track
    #: resolutions (CMS PF, JINST 12 (2017) P10003: an excess beyond the calorimeter resolution is neutral)
    photon_e_min: float = 0.5
    photon_significance_min: float = 1.0
    neutral_hadron_e_min: float = 1.0
    neutral_hadron_significance_min: float = 1.0
    #: barrel / endcap boundary of the identification efficiencies (|eta|)
    barrel_abs_eta: float = 1.5
    # --- identification (Delphes CMS Muon/Electron/PhotonEfficiency, with a low-pT turn-on) ---
    #: upper edge (GeV) of the low-pT bin of the muon and electron identification efficiencies
    id_low_pt: float = 10.0
    muon_abs_eta: float = 2.4
    muon_pt_min: float = 3.0
    eff_id_muon: tuple[float, float, float] = (0.80, 0.95, 0.95)  # (3-10 GeV, >10 barrel, >10 endcap)
    electron_pt_min: float = 5.0
    eff_id_electron: tuple[float, float, float] = (0.70, 0.95, 0.85)  # (5-10 GeV, >10 |eta|<1.5, 1.5-2.5)
    photon_pt_min: float = 5.0
    eff_id_photon: tuple[float, float] = (0.95, 0.85)  # (|eta| < 1.5, 1.5-2.5)
    #: photon reconstruction preselection H/E < 0.5 (CMS gedPhoton), with H the pT of the PF hadrons
    #: (charged and neutral) within dR < 0.15 of the photon (one HCAL cone behind the supercluster):
    #: a pi0 photon in the core of a jet is not reconstructed as a photon
    photon_hoe_max: float = 0.5
    photon_hoe_cone: float = 0.15
    #: tight / medium given loose identification (CMS muon POG, JINST 13 (2018) P06015)
    eff_muon_tight: float = 0.96
    eff_muon_medium: float = 0.98
    #: electron ``cutBased`` levels tight / medium / loose / veto from the relative isolation below
    #: these edges (the variable that separates prompt from non-prompt electrons in this simulation)
    electron_cut_based_iso: tuple[float, float, float, float] = (0.06, 0.10, 0.15, 0.25)
    #: photon ``cutBased`` levels tight / medium / loose from the relative isolation below these edges
    photon_cut_based_iso: tuple[float, float, float] = (0.10, 0.20, 0.30)
    # --- jets ---
    jet_r: float = 0.4
    jet_pt_min: float = 15.0
    #: jet ID from the constituent energy fractions (CMS JME, 13 TeV PF jet ID): tight needs neutral
    #: hadron and neutral EM fractions below 0.90, > 1 constituent and, inside the tracker (|eta| <
    #: 2.4), charged hadrons present and a charged EM fraction below 0.80; tight-lepton-veto also a
    #: muon fraction below 0.80
    jet_id_neutral_max: float = 0.90
    jet_id_charged_em_max: float = 0.80
    jet_id_muon_max: float = 0.80
    jet_id_tracker_abs_eta: float = 2.4
    fatjet_r: float = 1.0
    fatjet_pt_min: float = 150.0
    softdrop_zcut: float = 0.1
    softdrop_beta: float = 0.0
    # --- b tagging: logit(score) ~ Normal(mu, sigma) per hadron flavour (b, c, light); solved so
    # that P(score > 0.2783) = 0.70 / 0.12 / 0.01 and P(score > 0.0490) = 0.90 / 0.40 / 0.10 ---
    btag_logit_b: tuple[float, float] = (0.441, 2.659)
    btag_logit_c: tuple[float, float] = (-3.518, 2.183)
    btag_logit_light: tuple[float, float] = (-5.435, 1.927)
    # --- impact-parameter resolution (cm), CMS tracker ~20 um (transverse) and ~40 um (longitudinal)
    dxy_res_cm: float = 0.0020
    dz_res_cm: float = 0.0040
