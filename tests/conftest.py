"""Shared fixtures: paths to the real NanoAOD samples and a small generated cocktail."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

# the XRootD client tries an unreachable server 5 times (15 s) by default; the tests stop servers on purpose
os.environ.setdefault("XRD_CONNECTIONRETRY", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
#: small real samples vendored with their provenance (tests/samples/README.md)
SAMPLES = REPO_ROOT / "tests" / "samples"
REAL_NANOAOD_FILES = {
    "ttbar2015": SAMPLES / "nanoAOD_2015_CMS_Open_Data_ttbar.root",
    "dy": SAMPLES / "nano_dy.root",
    "dimuon": SAMPLES / "nano_dimuon.root",
    "pfnano": SAMPLES / "pfnano.root",
}
LHCO_TINY = SAMPLES / "events_anomalydetection_tiny.h5"


@pytest.fixture(scope="session")
def real_nanoaod_files() -> dict[str, Path]:
    """The real CMS NanoAOD samples of ``tests/samples``."""
    missing = [str(p) for p in REAL_NANOAOD_FILES.values() if not p.exists()]
    if missing:
        pytest.fail(f"real NanoAOD samples missing from tests/samples: {missing}")
    return dict(REAL_NANOAOD_FILES)


#: the small production shared by the tests: enough events for the physics checks of every process
COCKTAIL_EVENTS = {
    "wjets": 300,
    "zjets": 300,
    "ttbar": 200,
    "qcd": 20,
    "ato4l": 100,
    "lq_btau": 40,
    "h0_tautau": 40,
    "hplus_taunu": 40,
    "zprime_xy": 60,
    "hplus_t": 40,
}
COCKTAIL_SEED = 11
#: the folders whose files shape the generated cocktail: the production, the generator, the detector
#: response, the NanoAOD writer, the cards and the helpers they import
COCKTAIL_SOURCES = ("datasets", "core")


def cocktail_cache_name(root: Path = REPO_ROOT) -> str:
    """The cached cocktail's folder name: ``generated-cocktail-`` and a digest of every file (path and
    bytes) under :data:`COCKTAIL_SOURCES`, so that any change to them makes a fresh production."""
    digest = hashlib.sha256()
    for folder in COCKTAIL_SOURCES:
        for path in sorted((root / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(path.relative_to(root).as_posix().encode() + b"\0")
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return f"generated-cocktail-{digest.hexdigest()[:16]}"


@pytest.fixture(scope="session")
def generated_cocktail(request: pytest.FixtureRequest) -> Path:
    """A small generated production of every process (``fileset.json`` inside), made once.

    Files live in pytest's cache directory under :func:`cocktail_cache_name`, so a second local run
    with the same production code reuses them through the production's own resume logic; cocktails
    of other code are removed (a fresh clone, as in CI, generates them on two processes).
    """
    from cms_anomaly.datasets import production

    name = cocktail_cache_name()
    out = Path(request.config.cache.mkdir(name))
    for stale in out.parent.glob("generated-cocktail*"):
        if stale.name != name:
            shutil.rmtree(stale, ignore_errors=True)
    production.produce(
        list(COCKTAIL_EVENTS), out=out, events=COCKTAIL_EVENTS, seed=COCKTAIL_SEED, executor="futures", workers=2
    )
    return out


# --------------------------------------------------------------------------- models (issue 4)
def _synthetic_feature_table(rng, n: int, *, dataset: str, is_signal: bool, shift: float, weight: float):
    """One processor-style feature table (HLF-21/24 columns, objects, rmm) with structured random events."""
    import numpy as np
    import pyarrow as pa

    n_mu = rng.poisson(0.6 + shift, n) + 1
    n_ele = rng.poisson(0.3 + shift, n)
    n_jets = rng.poisson(1.5 + 2 * shift, n)
    pt_lep = rng.lognormal(3.5 + 0.3 * shift, 0.4, n)
    met_x, met_y = rng.normal(0, 20 + 20 * shift, (2, n))
    cols = {
        "pt_lep": pt_lep,
        "iso_ch": np.where(rng.random(n) < 0.5, 0.0, rng.lognormal(-3, 1, n)),
        "iso_neu": np.where(rng.random(n) < 0.6, 0.0, rng.lognormal(-3, 1, n)),
        "iso_gamma": np.where(rng.random(n) < 0.6, 0.0, rng.lognormal(-3, 1, n)),
        "charge_lep": rng.choice([-1.0, 1.0], n),
        "is_ele": (rng.random(n) < 0.3).astype(float),
        "st": pt_lep + rng.lognormal(4.0 + 0.5 * shift, 0.5, n),
        "n_jets": n_jets.astype(float),
        "m_jets": np.where(n_jets > 1, rng.lognormal(4.5 + shift, 0.5, n), 0.0),
        "n_bjets": rng.binomial(n_jets, 0.15 + 0.3 * shift).astype(float),
        "met_par": met_x,
        "met_perp": met_y,
        "mt": np.abs(rng.normal(60, 25, n)),
        "n_mu": n_mu.astype(float),
        "m_mu": np.where(n_mu > 1, rng.lognormal(4.0 - shift, 0.4, n), 0.0),
        "pt_tot_mu": rng.lognormal(3.6, 0.5, n),
        "n_ele": n_ele.astype(float),
        "m_ele": np.where(n_ele > 1, rng.lognormal(4.0 - shift, 0.4, n), 0.0),
        "pt_tot_ele": np.where(n_ele > 0, rng.lognormal(3.2, 0.5, n), 0.0),
        "n_ch_had": rng.poisson(60 + 30 * shift, n).astype(float),
        "n_neu_had": rng.poisson(30 + 10 * shift, n).astype(float),
    }
    cols["ht"] = cols["st"] - pt_lep
    cols["met"] = np.hypot(met_x, met_y)
    cols["n_photons"] = rng.poisson(1.0, n).astype(float)
    cols["eta_lep"] = rng.normal(0, 1.2, n)
    cols["iso"] = cols["iso_ch"] + cols["iso_neu"] + cols["iso_gamma"]
    objects = np.zeros((n, 19, 3), np.float32)
    objects[:, 0, 0] = cols["met"]
    objects[:, 5, 0] = pt_lep
    objects[:, 5, 1] = cols["eta_lep"]
    objects[:, 5, 2] = rng.uniform(-np.pi, np.pi, n)
    for j in range(10):
        has = n_jets > j
        objects[:, 9 + j, 0] = np.where(has, rng.lognormal(4.0 - 0.2 * j + shift, 0.4, n), 0.0)
        objects[:, 9 + j, 1] = np.where(has, rng.normal(0, 1.5, n), 0.0)
        objects[:, 9 + j, 2] = np.where(has, rng.uniform(-np.pi, np.pi, n), 0.0)
    rmm = np.zeros((n, 51 * 51), np.float32)
    cells = np.arange(0, 51 * 51, 37)[:40]
    rmm[:, cells] = np.abs(rng.normal(0.1 + 0.1 * shift, 0.05, (n, cells.size)))
    rmm[:, 0] = cols["met"] / 13000.0
    data = {k: pa.array(np.asarray(v, np.float32)) for k, v in cols.items()}
    data["objects"] = pa.FixedSizeListArray.from_arrays(pa.array(objects.reshape(-1)), 57)
    data["rmm"] = pa.FixedSizeListArray.from_arrays(pa.array(rmm.reshape(-1)), 51 * 51)
    data["weight"] = pa.array(np.full(n, weight))
    data["dataset"] = pa.array([dataset] * n)
    data["is_signal"] = pa.array(np.full(n, is_signal))
    return pa.table(data)


@pytest.fixture(scope="session")
def model_feature_tables(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Processor-layout parquet feature tables (``<dataset>/*.parquet``) of two SM and two signal datasets.

    Synthetic, seeded events with the real column layout (HLF-21/24, ``objects`` (19x3),
    ``rmm`` (51x51), ``weight``, ``dataset``, ``is_signal``); signals are shifted in
    multiplicities, masses and MET so that a trained model can separate them.
    """
    import numpy as np
    import pyarrow.parquet as pq
    from cms_anomaly.processors.feature_io import write_table_manifest

    root = tmp_path_factory.mktemp("model-features")
    rng = np.random.default_rng(20260)
    spec = {
        "wjets": (3000, False, 0.0, 2.0),
        "ttbar": (1500, False, 0.3, 0.5),
        "ato4l": (800, True, 1.0, 0.01),
        "lq_btau": (800, True, 0.6, 0.01),
    }
    for name, (n, is_signal, shift, weight) in spec.items():
        (root / name).mkdir()
        half = n // 2
        for k, m in enumerate((half, n - half)):
            table = _synthetic_feature_table(rng, m, dataset=name, is_signal=is_signal, shift=shift, weight=weight)
            pq.write_table(table, root / name / f"{name}_{k}.parquet")
    write_table_manifest(root, sorted(root.glob("*/*.parquet")))
    return root


#: fixtures whose tests take long (a Pythia production, a whole job): marked ``slow`` automatically
_SLOW_FIXTURES = {"generated_cocktail"}
#: modules that run whole jobs or notebooks, or start real servers, clusters and process pools (XRootD, HTTP,
#: dask scheduler/workers, dask-gateway, killed productions)
_SLOW_MODULES = {
    "test_notebooks",
    "test_rediscovery",
    "test_hunt",
    "test_cli_jobs",
    "test_remote",
    "test_processors_cluster",
    "test_cluster_outputs",
    "test_datasets_reproducibility",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``-m "not slow"`` (``make test-quick``) leaves out the productions, jobs and notebooks."""
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        if _SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or module in _SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
