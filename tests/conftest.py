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
