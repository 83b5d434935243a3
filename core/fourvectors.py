"""(pt, eta, phi, mass) -> (px, py, pz, E): the inputs fastjet's awkward interface clusters.

One definition for the detector response, the LHCO conversion and the processor's re-clustering
(numpy or awkward arrays alike; plain formulas rather than ``vector`` objects because fastjet
takes records with exactly these four fields).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def to_cartesian(pt: Any, eta: Any, phi: Any, mass: Any = None) -> dict[str, Any]:
    """``{"px", "py", "pz", "E"}`` of particles given in collider coordinates (massless if ``mass`` is None)."""
    e_t = pt * np.cosh(eta)
    return {
        "px": pt * np.cos(phi),
        "py": pt * np.sin(phi),
        "pz": pt * np.sinh(eta),
        "E": e_t if mass is None else np.sqrt(e_t**2 + mass**2),
    }
