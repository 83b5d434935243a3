"""Hand-built events with the NanoAOD collection layout, for tests whose answer is set by construction."""

from __future__ import annotations

import awkward as ak
import numpy as np

INT_FIELDS = {"charge", "jetId", "cutBased", "cutBasedBitmap", "pdgId"}
BOOL_FIELDS = {"looseId", "mediumId", "tightId", "isPFcand", "isGlobal", "isTracker", "mvaFall17V2noIso_WPL"}
KIN = ("pt", "eta", "phi", "mass")


def _coll(events: list[list[dict]], fields: tuple[str, ...]) -> ak.Array:
    counts = [len(e) for e in events]
    cols = {}
    for f in fields:
        dtype = np.int32 if f in INT_FIELDS else (bool if f in BOOL_FIELDS else np.float32)
        cols[f] = ak.unflatten(np.asarray([o.get(f, 0) for ev in events for o in ev], dtype=dtype), counts)
    return ak.zip(cols)


def event(
    *,
    muons=(),
    electrons=(),
    photons=(),
    jets=(),
    fatjets=(),
    met=(0.0, 0.0),
    muon_fields=(),
    photon_fields=("cutBased", "pfRelIso03_all"),
    jet_fields=("jetId",),
    electron_fields=(),
    fatjet_fields=("jetId",),
) -> ak.Array:
    """One event with the NanoAOD collection layout; ID fields only where asked for."""
    lep = (*KIN, "charge", "pfRelIso03_all", "pfRelIso03_chg")
    rec = {
        "Muon": _coll([list(muons)], (*lep, *muon_fields)),
        "Electron": _coll([list(electrons)], (*lep, *electron_fields)),
        "Photon": _coll([list(photons)], (*KIN, *photon_fields)),
        "Jet": _coll([list(jets)], (*KIN, "btagDeepFlavB", *jet_fields)),
        "FatJet": _coll([list(fatjets)], (*KIN, "msoftdrop", "tau1", "tau2", "tau3", *fatjet_fields)),
        "MET": ak.zip({"pt": np.array([met[0]], np.float32), "phi": np.array([met[1]], np.float32)}),
        "genWeight": np.ones(1, np.float32),
    }
    return ak.zip(rec, depth_limit=1)


def mu(pt=40.0, eta=0.0, phi=0.0, iso=0.02, **kw):
    return {
        "pt": pt,
        "eta": eta,
        "phi": phi,
        "mass": 0.106,
        "charge": -1,
        "pfRelIso03_all": iso,
        "pfRelIso03_chg": iso,
        **kw,
    }


def jet(pt=60.0, eta=0.0, phi=0.0, jet_id=6, btag=0.01):
    return {"pt": pt, "eta": eta, "phi": phi, "mass": 8.0, "btagDeepFlavB": btag, "jetId": jet_id}


def pho(pt=40.0, eta=0.0, phi=0.0, cut_based=3, iso=0.02):
    return {"pt": pt, "eta": eta, "phi": phi, "mass": 0.0, "cutBased": cut_based, "pfRelIso03_all": iso}


def ele(pt=40.0, eta=0.3, phi=1.0, iso=0.02, **kw):
    return {
        "pt": pt,
        "eta": eta,
        "phi": phi,
        "mass": 0.000511,
        "charge": 1,
        "pfRelIso03_all": iso,
        "pfRelIso03_chg": iso,
        **kw,
    }


def fatjet(pt=400.0, eta=0.0, phi=0.0, mass=80.0, tau1=0.4, tau2=0.2, tau3=0.1):
    return {
        "pt": pt,
        "eta": eta,
        "phi": phi,
        "mass": mass,
        "msoftdrop": 0.9 * mass,
        "tau1": tau1,
        "tau2": tau2,
        "tau3": tau3,
        "jetId": 6,
    }


def rewrite_nanoaod(src, dst, *, drop=(), replace=None):
    """Copy the branches the analysis reads from NanoAOD file ``src`` to ``dst``, without the branches
    (``Muon_pt``) or whole collections (``Photon``) in ``drop``; ``replace`` maps a branch to a function
    of its flat values (a copy) returning new values, e.g. to put a NaN into ``Jet_pt``."""
    import uproot
    from cms_anomaly.processors import schema

    replace = replace or {}
    with uproot.open(src) as fin:
        tree = fin["Events"]
        keys = tree.keys()
        names = [b for b in schema.branches_used(schema.detect_variant(keys), keys) if not b.startswith("n")]
        names = [b for b in names if b not in drop and b.split("_")[0] not in drop]
        arrays = tree.arrays(names)
    groups: dict = {}
    for b in names:
        coll, _, fld = b.partition("_")
        if fld and arrays[b].ndim > 1:
            groups.setdefault(coll, {})[fld] = arrays[b]
        else:
            groups[b] = arrays[b]
    for b, fn in replace.items():
        coll, _, fld = b.partition("_")
        arr = groups[coll][fld]
        values = fn(np.asarray(ak.flatten(arr)).copy())
        groups[coll][fld] = ak.unflatten(values, ak.num(arr))
    data = {k: ak.zip(v) if isinstance(v, dict) else v for k, v in groups.items()}
    with uproot.recreate(dst) as fout:
        fout.mktree(
            "Events",
            {k: v.type for k, v in data.items()},
            field_name=lambda o, i: f"{o}_{i}",
            counter_name=lambda c: f"n{c}",
        )
        fout["Events"].extend(data)
