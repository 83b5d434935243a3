"""Trigger rates and events per month (Cerri et al. sec. 1, Tables 1-5).

Pure functions on numpy arrays and :class:`hist.Hist` objects; larger score = more anomalous,
an event is selected when ``score > threshold``.
"""

from __future__ import annotations

import logging

from cms_anomaly.stats._common import _PB_PER_INV_FB, LUMI_PER_MONTH_FB, StatisticsError

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- rates
def events_per_month(xsec_pb: float, efficiency: float = 1.0, *, lumi_fb: float = LUMI_PER_MONTH_FB) -> float:
    """Expected events per month, ``N = sigma * efficiency * L`` (Cerri et al. Table 1).

    Parameters
    ----------
    xsec_pb : float
        Cross section in pb.
    efficiency : float
        Total selection efficiency (acceptance x trigger x anomaly selection).
    lumi_fb : float
        Integrated luminosity per month in fb^-1 (default 5 fb^-1).

    Returns
    -------
    float
        Events per month (1 pb at 5 fb^-1 gives 5000).
    """
    return float(xsec_pb) * float(efficiency) * float(lumi_fb) * _PB_PER_INV_FB


def xsec_for_events_per_month(n_events: float, efficiency: float, *, lumi_fb: float = LUMI_PER_MONTH_FB) -> float:
    """Cross section (pb) giving ``n_events`` selected per month (Cerri et al. Tables 1 and 4).

    ``sigma = N / (efficiency * L)``; e.g. 100 events at efficiency 2.8e-3 and 5 fb^-1 give 7.1 pb.

    Parameters
    ----------
    n_events : float
        Target number of selected events per month (the papers use 100).
    efficiency : float
        Total selection efficiency, > 0.
    lumi_fb : float
        Integrated luminosity per month in fb^-1.

    Returns
    -------
    float
        Cross section in pb.
    """
    if not efficiency > 0:
        raise StatisticsError(f"xsec_for_events_per_month: efficiency must be positive, got {efficiency}")
    return float(n_events) / (float(efficiency) * float(lumi_fb) * _PB_PER_INV_FB)


def xsec_for_signal_to_background(
    signal_to_background: float, background_per_month: float, *, efficiency: float, lumi_fb: float = LUMI_PER_MONTH_FB
) -> float:
    """Cross section (pb) for which the selected sample has ``S/B = signal_to_background``.

    ``sigma = (S/B) * B_month / (efficiency * L)`` (Cerri et al. Table 4, S/B = 1/3).

    Parameters
    ----------
    signal_to_background : float
        Target ratio S/B.
    background_per_month : float
        Selected SM events per month (e.g. ~1000 at FPR 5.4e-6).
    efficiency : float
        Signal selection efficiency.
    lumi_fb : float
        Integrated luminosity per month in fb^-1.

    Returns
    -------
    float
        Cross section in pb.
    """
    return xsec_for_events_per_month(signal_to_background * background_per_month, efficiency, lumi_fb=lumi_fb)


def sbr_ratio(
    *, sm_efficiency: float, sm_reference_efficiency: float, bsm_efficiency: float, bsm_reference_efficiency: float
) -> float:
    r"""Ratio of signal-to-background ratios of two selections (Cerri et al. eq. 5.1).

    .. math:: \frac{SBR_\mathrm{sel}}{SBR_\mathrm{ref}} =
              \left(\frac{\epsilon_\mathrm{ref}}{\epsilon_\mathrm{sel}}\right)_{SM}
              \left(\frac{\epsilon_\mathrm{sel}}{\epsilon_\mathrm{ref}}\right)_{BSM}

    with "sel" the anomaly selection (VAE) and "ref" the single-lepton trigger (pT > 27 GeV,
    Iso < 0.25). Independent of the BSM cross section.

    Parameters
    ----------
    sm_efficiency, sm_reference_efficiency : float
        SM efficiencies of the anomaly selection and of the reference selection.
    bsm_efficiency, bsm_reference_efficiency : float
        The same for the BSM process.

    Returns
    -------
    float
        ``SBR_sel / SBR_ref``.
    """
    for name, v in (("sm_efficiency", sm_efficiency), ("bsm_reference_efficiency", bsm_reference_efficiency)):
        if not v > 0:
            raise StatisticsError(f"sbr_ratio: {name} must be positive, got {v}")
    return (sm_reference_efficiency / sm_efficiency) * (bsm_efficiency / bsm_reference_efficiency)


def trigger_rate_hz(xsec_pb: float, efficiency: float = 1.0, *, inst_lumi_cm2s: float = 2.9e33) -> float:
    """Trigger rate in Hz, ``R = sigma * efficiency * L_inst`` (1 pb = 1e-36 cm^2).

    Parameters
    ----------
    xsec_pb : float
        Cross section in pb.
    efficiency : float
        Selection efficiency.
    inst_lumi_cm2s : float
        Instantaneous luminosity in cm^-2 s^-1 (default 2.9e33, Cerri et al. sec. 1).

    Returns
    -------
    float
        Rate in events per second.
    """
    return float(xsec_pb) * 1e-36 * float(efficiency) * float(inst_lumi_cm2s)
