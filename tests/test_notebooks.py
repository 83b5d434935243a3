"""Every notebook in notebooks/ executes from top to bottom on its small defaults (none may rot)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no notebook"


@pytest.fixture(scope="module")
def shared_samples(tmp_path_factory):
    """One small single-lepton production for the notebooks that share it (trigger, DisCo)."""
    return tmp_path_factory.mktemp("notebook-samples")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, tmp_path, monkeypatch, shared_samples):
    monkeypatch.setenv("CMS_ANOMALY_NOTEBOOK_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("CMS_ANOMALY_NOTEBOOK_SAMPLES", str(shared_samples))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    # the narrative shows results: tables and at least one figure
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert any("text/html" in o.get("data", {}) for o in outputs)
