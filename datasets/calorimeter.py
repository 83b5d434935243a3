"""Calorimeter towers and the neutral particle-flow candidates they make, columnar over a batch.

Every visible particle that reaches a calorimeter deposits its true energy in one cell of the ECAL
(photons and electrons; ``ecal_towers``) or one tower of the HCAL (hadrons, charged or neutral;
``hcal_towers``); muons deposit nothing. A cell's energy is the sum of its deposits, smeared once with its
layer's resolution; its direction is the energy-weighted direction of the deposits. The deposits sit at
the particles' production directions (no bending in the magnetic field).

Particle flow on the cells, as the CMS particle flow (JINST 12 (2017) P10003) does on clusters:

* an HCAL tower with tracked charged hadrons inside forms a block with the ECAL cells in its area; the
  block's calorimeter energy ``E_HCAL + E_ECAL`` minus the tracks' momenta is a neutral excess when it is
  above ``significance_min`` times ``sqrt(sigma_HCAL^2 + sum sigma_ECAL^2 + sum sigma_track^2)``; the
  excess is a photon up to the block's ECAL energy (at the ECAL cells' direction) and a neutral hadron
  beyond it (at the HCAL tower's direction), each kept above its energy threshold;
* an HCAL tower without a track is a neutral hadron above ``neutral_hadron_e_min``;
* an ECAL cell outside such blocks is a photon above ``photon_e_min``; a tracked electron's energy is
  subtracted from its cell, whose excess must then be significant too.

The candidates' pT is ``E / cosh(eta)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from cms_anomaly.datasets.detector_config import DetectorConfig


@dataclass
class Deposits:
    """Flat deposits of one calorimeter layer: one row per particle that reaches it."""

    evt: np.ndarray  # event index
    energy: np.ndarray  # true deposited energy (GeV)
    eta: np.ndarray
    phi: np.ndarray
    linked: np.ndarray  # energy of the track linked to the deposit (0 for untracked particles)
    linked_var: np.ndarray  # variance of ``linked`` (GeV^2)
    truth: np.ndarray  # index of the particle in the event record


@dataclass
class Cells:
    """The hit cells of one layer, in key order."""

    key: np.ndarray
    evt: np.ndarray
    energy: np.ndarray  # measured (smeared) energy
    sigma: np.ndarray  # resolution at the measured energy
    linked: np.ndarray  # summed energy of the linked tracks
    linked_var: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    truth: np.ndarray  # the largest untracked deposit (the largest deposit if none is untracked)


@dataclass
class Neutrals:
    """Neutral candidates of one kind."""

    evt: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    truth: np.ndarray


def tower_keys(evt: np.ndarray, eta: np.ndarray, phi: np.ndarray, grid) -> tuple[np.ndarray, np.ndarray]:
    """``(key, inside)``: a cell key unique over the batch and increasing with the event index (event,
    region, side, eta and phi cell), and whether the direction falls inside the grid's |eta| range."""
    rows = np.asarray(grid, dtype=np.float64)
    low, high, width, n_phi = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    n_eta_max = int(np.max(np.ceil((high - low) / width)))
    n_phi_max = int(np.max(n_phi))
    abs_eta = np.abs(eta)
    region = np.searchsorted(high, abs_eta, side="right")
    inside = (region < len(rows)) & (abs_eta >= low[0])
    r = np.minimum(region, len(rows) - 1)
    i_eta = np.floor((abs_eta - low[r]) / width[r]).astype(np.int64)
    i_phi = np.minimum(np.floor((phi + np.pi) / (2 * np.pi) * n_phi[r]), n_phi[r] - 1).astype(np.int64)
    side = (eta < 0).astype(np.int64)
    cell = ((r * 2 + side) * n_eta_max + i_eta) * n_phi_max + i_phi
    return evt.astype(np.int64) * (len(rows) * 2 * n_eta_max * n_phi_max) + cell, inside


@numba.njit(cache=True)
def _cell_sums(order, key, energy, eta, phi, linked, linked_var):  # pragma: no cover - compiled
    """Per run of equal ``key[order]`` (a cell): summed energy, energy-weighted eta and phi, summed links
    and their variances, and the deposit that stands for the cell (the largest untracked one, else the
    largest)."""
    n_cells = 0
    for i in range(len(order)):
        if i == 0 or key[order[i]] != key[order[i - 1]]:
            n_cells += 1
    e_sum, eta_sum, phi_sum = np.zeros(n_cells), np.zeros(n_cells), np.zeros(n_cells)
    l_sum, v_sum = np.zeros(n_cells), np.zeros(n_cells)
    best = np.empty(n_cells, dtype=np.int64)
    c, best_score = -1, 0.0
    for i in range(len(order)):
        j = order[i]
        if i == 0 or key[j] != key[order[i - 1]]:
            c += 1
            best[c], best_score = j, -1.0
        e_sum[c] += energy[j]
        eta_sum[c] += energy[j] * eta[j]
        phi_sum[c] += energy[j] * phi[j]
        l_sum[c] += linked[j]
        v_sum[c] += linked_var[j]
        score = energy[j] + (1e12 if linked[j] == 0 else 0.0)
        if score > best_score:
            best[c], best_score = j, score
    return e_sum, eta_sum / e_sum, phi_sum / e_sum, l_sum, v_sum, best


def calo_resolution(energy: np.ndarray, params: tuple[float, float, float]) -> np.ndarray:
    """Calorimeter energy resolution sqrt((c E)^2 + s^2 E + n^2) for ``params`` = (c, s, n)."""
    c, s, n = params
    return np.sqrt((c * energy) ** 2 + s**2 * energy + n**2)


def smear_positive(value: np.ndarray, sigma: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian smearing, redrawn (by reflection) to stay positive."""
    return np.abs(value + sigma * rng.standard_normal(value.shape))


def cells(
    dep: Deposits,
    grid,
    *,
    res_central: tuple[float, float, float],
    res_forward: tuple[float, float, float],
    forward_abs_eta: float,
    rng: np.random.Generator,
) -> Cells:
    """Sum the deposits per cell and smear each cell's energy (one normal number per cell, in key order).

    ``res_central`` applies below ``forward_abs_eta`` (ECAL or HCAL), ``res_forward`` above it (HF).
    """
    key, inside = tower_keys(dep.evt, dep.eta, dep.phi, grid)
    take = np.flatnonzero(inside & (dep.energy > 0))
    order = take[np.argsort(key[take], kind="stable")]  # the same sums on every machine
    e_true, eta, phi, linked, linked_var, first = _cell_sums(
        order, key, dep.energy, dep.eta, dep.phi, dep.linked, dep.linked_var
    )
    forward = np.abs(eta) >= forward_abs_eta

    def sigma(energy: np.ndarray) -> np.ndarray:
        return np.where(forward, calo_resolution(energy, res_forward), calo_resolution(energy, res_central))

    e_meas = smear_positive(e_true, sigma(e_true), rng)
    return Cells(
        key=key[first],
        evt=dep.evt[first],
        energy=e_meas,
        sigma=sigma(e_meas),
        linked=linked,
        linked_var=linked_var,
        eta=eta,
        phi=phi,
        truth=dep.truth[first],
    )


def _neutrals(c: Cells, sel: np.ndarray, energy: np.ndarray) -> Neutrals:
    return Neutrals(evt=c.evt[sel], pt=energy / np.cosh(c.eta[sel]), eta=c.eta[sel], phi=c.phi[sel], truth=c.truth[sel])


def neutral_candidates(ecal: Cells, hcal: Cells, config: DetectorConfig) -> tuple[Neutrals, Neutrals]:
    """(photons, neutral hadrons) of the particle flow on the cells (the rules of the module docstring)."""
    # the HCAL tower behind each ECAL cell, and whether a tracked charged hadron points into it
    behind, _ = tower_keys(ecal.evt, ecal.eta, ecal.phi, config.hcal_towers)
    pos = np.searchsorted(hcal.key, behind)  # len(hcal.key) when beyond the last tower: the padding below
    tracked_tower = hcal.linked > 0
    in_block = (np.append(hcal.key, -1)[pos] == behind) & np.append(tracked_tower, False)[pos]
    # ECAL cells outside blocks: photons (an electron's cell needs a significant excess)
    cell_excess = ecal.energy - ecal.linked
    cell_sigma = np.sqrt(ecal.sigma**2 + ecal.linked_var)
    significant = (ecal.linked == 0) | (cell_excess > config.photon_significance_min * cell_sigma)
    free = np.flatnonzero(~in_block & (cell_excess > config.photon_e_min) & significant)
    photons = [_neutrals(ecal, free, cell_excess[free])]
    # blocks: the ECAL cells summed into their HCAL tower, largest cell first (its truth and direction)
    blk = np.flatnonzero(in_block)
    blk = blk[np.argsort(-ecal.energy[blk], kind="stable")]
    blk = blk[np.argsort(pos[blk], kind="stable")]
    tower = pos[blk]
    n = len(hcal.key)
    e_ecal = np.bincount(tower, weights=cell_excess[blk], minlength=n)
    w = np.maximum(cell_excess[blk], 0.0)
    w_sum = np.maximum(np.bincount(tower, weights=w, minlength=n), 1e-12)
    var_ecal = np.bincount(tower, weights=cell_sigma[blk] ** 2, minlength=n)
    first = np.full(n, -1, dtype=np.int64)
    largest = np.flatnonzero(np.concatenate([[True], tower[1:] != tower[:-1]]))[: len(tower)]
    first[tower[largest]] = blk[largest]
    excess = hcal.energy + e_ecal - hcal.linked
    block_sigma = np.sqrt(hcal.sigma**2 + var_ecal + hcal.linked_var)
    neutral = tracked_tower & (excess > config.neutral_hadron_significance_min * block_sigma)
    e_pho = np.where(neutral, np.clip(np.minimum(excess, e_ecal), 0.0, None), 0.0)
    e_nh = np.where(neutral, excess - e_pho, np.where(tracked_tower, 0.0, hcal.energy))
    pho = np.flatnonzero((e_pho > config.photon_e_min) & (first >= 0))
    src = first[pho]
    eta = np.bincount(tower, weights=w * ecal.eta[blk], minlength=n)[pho] / w_sum[pho]
    phi = np.bincount(tower, weights=w * ecal.phi[blk], minlength=n)[pho] / w_sum[pho]
    photons.append(Neutrals(evt=ecal.evt[src], pt=e_pho[pho] / np.cosh(eta), eta=eta, phi=phi, truth=ecal.truth[src]))
    nh = np.flatnonzero(e_nh > config.neutral_hadron_e_min)
    merged = Neutrals(*(np.concatenate([getattr(p, f) for p in photons]) for f in ("evt", "pt", "eta", "phi", "truth")))
    return merged, _neutrals(hcal, nh, e_nh[nh])
