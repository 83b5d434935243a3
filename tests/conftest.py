"""Shared fixtures: paths to the real NanoAOD samples and a small generated cocktail."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
CMS_NANOAOD = SHARED_DATA / "cms-nanoaod"
REAL_NANOAOD_FILES = {
    "ttbar2015": CMS_NANOAOD / "nanoAOD_2015_CMS_Open_Data_ttbar.root",
    "dy": CMS_NANOAOD / "nano_dy.root",
    "dimuon": CMS_NANOAOD / "nano_dimuon.root",
    "pfnano": CMS_NANOAOD / "pfnano.root",
}


@pytest.fixture(scope="session")
def real_nanoaod_files() -> dict[str, Path]:
    """The real CMS NanoAOD samples of ``../shared/data/cms-nanoaod``."""
    missing = [str(p) for p in REAL_NANOAOD_FILES.values() if not p.exists()]
    if missing:
        pytest.fail(f"real NanoAOD samples missing (expected ../shared next to the repo): {missing}")
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


@pytest.fixture(scope="session")
def generated_cocktail(request: pytest.FixtureRequest) -> Path:
    """A small generated production of every process (``fileset.json`` inside), made once.

    Files live in pytest's cache directory, so a second local run reuses them through the
    production's own resume logic (a fresh clone, as in CI, generates them: ~1-2 min on 2 cores).
    """
    from cms_anomaly.datasets import production

    out = Path(request.config.cache.mkdir("generated-cocktail"))
    by_size: dict[int, list[str]] = {}
    for process, n in COCKTAIL_EVENTS.items():
        by_size.setdefault(n, []).append(process)
    for n, processes in by_size.items():
        production.produce(processes, out=out, events=n, seed=COCKTAIL_SEED, executor="local")
    return out
