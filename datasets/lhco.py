"""Readers for the published anomaly-detection data formats: LHC Olympics 2020 and ADC2021.

* **LHCO 2020 R&D** (Zenodo 2629073): pandas/PyTables HDF5, key ``df``, one row per event with up
  to 700 massless particles as (pT, eta, phi) triplets, zero-padded, then the truth label
  (1 = signal). :func:`read_lhco` returns the particles as an awkward array and the labels;
  :func:`dijet_features` clusters them with fastjet (anti-kT R = 1.0, as the LHCO organisers did) and
  computes the two leading jets' masses, N-subjettiness ratios and the dijet mass, i.e. the
  high-level features of the LHCO "v2 features" file.
* **ADC2021** (Zenodo 5046389 and signals): HDF5 key ``Particles`` of shape (N, 19, 4) =
  (pT, eta, phi, class), rows MET, 4 electrons, 4 muons, 10 jets. :func:`read_adc2021` returns the
  (N, 19, 3) array of the project's ``objects`` layout.
"""

from __future__ import annotations

import os

import awkward as ak
import fastjet
import numpy as np
from cms_anomaly.core.fourvectors import to_cartesian
from cms_anomaly.datasets.substructure import jet_taus

LHCO_MAX_PARTICLES = 700


class FormatError(ValueError):
    """A file is not in the expected published format; the message names the file and what is wrong."""


def read_lhco(path: str | os.PathLike, *, start: int = 0, stop: int | None = None) -> tuple[ak.Array, np.ndarray]:
    """Particles (events x particles: ``pt, eta, phi``) and labels of an LHCO 2020 HDF5 file."""
    import pandas as pd

    try:
        df = pd.read_hdf(path, key="df", start=start, stop=stop)
    except (KeyError, OSError, ValueError) as err:
        raise FormatError(f"{path}: not an LHCO 2020 file (pandas HDF5 with key 'df'): {err}") from err
    values = df.to_numpy()
    if values.shape[1] != 3 * LHCO_MAX_PARTICLES + 1:
        raise FormatError(f"{path}: expected {3 * LHCO_MAX_PARTICLES + 1} columns, found {values.shape[1]}")
    labels = values[:, -1].astype(np.int8)
    triplets = values[:, :-1].reshape(len(values), LHCO_MAX_PARTICLES, 3)
    present = triplets[:, :, 0] > 0  # zero-padded
    counts = present.sum(axis=1)
    flat = triplets[present]
    particles = ak.unflatten(ak.zip({"pt": flat[:, 0], "eta": flat[:, 1], "phi": flat[:, 2]}), counts)
    return particles, labels


def dijet_features(particles: ak.Array, *, radius: float = 1.0) -> dict[str, np.ndarray]:
    """Leading-two large-R jet features: ``mj1, mj2`` (mj1 the heavier), ``tau21_j1, tau32_j1,
    tau21_j2, tau32_j2``, ``ptj1, ptj2`` and ``mjj``; NaN for events with fewer than two jets.

    Parameters
    ----------
    particles : ak.Array
        events x massless particles with ``pt, eta, phi``.
    radius : float
        anti-kT distance parameter.
    """
    pt, eta, phi = particles.pt, particles.eta, particles.phi
    vectors = ak.to_packed(ak.zip(to_cartesian(pt, eta, phi)))
    cs = fastjet.ClusterSequence(vectors, fastjet.JetDefinition(fastjet.antikt_algorithm, radius))
    jets = cs.inclusive_jets(min_pt=20.0)
    consts = cs.constituents(min_pt=20.0)
    jpt = np.hypot(jets.px, jets.py)
    order = ak.argsort(jpt, axis=1, ascending=False)
    jets, consts = jets[order][:, :2], consts[order][:, :2]
    n = len(jets)
    two = ak.to_numpy(ak.num(jets) >= 2)
    out = {
        k: np.full(n, np.nan)
        for k in ("mj1", "mj2", "ptj1", "ptj2", "mjj", "tau21_j1", "tau32_j1", "tau21_j2", "tau32_j2")
    }
    if not two.any():
        return out
    j, c = jets[two], consts[two]
    mass = np.sqrt(np.maximum(j.E**2 - j.px**2 - j.py**2 - j.pz**2, 0.0))
    flat_c = ak.to_packed(ak.zip({k: ak.flatten(c[k], axis=1) for k in ("px", "py", "pz", "E")}))
    tau = jet_taus(flat_c, radius).reshape(3, -1, 2)  # (tau_N, event, jet)
    with np.errstate(divide="ignore", invalid="ignore"):
        tau21 = np.where(tau[0] > 0, tau[1] / tau[0], 0.0)
        tau32 = np.where(tau[1] > 0, tau[2] / tau[1], 0.0)
    m = ak.to_numpy(mass)
    heavy_first = m[:, 0] >= m[:, 1]
    pick = np.where(heavy_first, 0, 1)
    other = 1 - pick
    rows = np.arange(len(m))
    total = {k: ak.to_numpy(ak.sum(j[k], axis=1)) for k in ("px", "py", "pz", "E")}
    mjj = np.sqrt(np.maximum(total["E"] ** 2 - total["px"] ** 2 - total["py"] ** 2 - total["pz"] ** 2, 0.0))
    jet_pt = ak.to_numpy(np.hypot(j.px, j.py))
    out["mj1"][two], out["mj2"][two] = m[rows, pick], m[rows, other]
    out["ptj1"][two], out["ptj2"][two] = jet_pt[:, 0], jet_pt[:, 1]
    out["tau21_j1"][two], out["tau21_j2"][two] = tau21[rows, pick], tau21[rows, other]
    out["tau32_j1"][two], out["tau32_j2"][two] = tau32[rows, pick], tau32[rows, other]
    out["mjj"][two] = mjj
    return out


def read_adc2021(path: str | os.PathLike) -> np.ndarray:
    """The (N, 19, 3) (pT, eta, phi) object array of an ADC2021 HDF5 file (key ``Particles``)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "Particles" not in f:
                raise FormatError(f"{path}: no 'Particles' dataset (keys: {list(f.keys())})")
            data = f["Particles"][...]
    except OSError as err:
        raise FormatError(f"{path}: not an HDF5 file: {err}") from err
    if data.ndim != 3 or data.shape[1:] != (19, 4):
        raise FormatError(f"{path}: 'Particles' has shape {data.shape}, expected (N, 19, 4)")
    return data[:, :, :3].astype(np.float32)
