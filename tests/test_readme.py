"""The Python blocks of the README and of the user guide (``docs/``) run as written, on a small generated
fileset in their ``out/``. Blocks fenced as ``python`` are executed; ``py`` marks an illustration (a whole job).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _blocks() -> list[tuple[str, str]]:
    """(document: block index, code) of every ``python`` block."""
    out = []
    for doc in DOCUMENTS:
        for k, code in enumerate(re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.DOTALL)):
            out.append((f"{doc.relative_to(ROOT)} python block {k}", code))
    return out


def _python_blocks() -> list[str]:
    return [code for _, code in _blocks()]


def test_readme_has_python_blocks():
    names = [name for name, _ in _blocks()]
    assert any(n.startswith("README.md") for n in names)
    assert any(n.startswith("docs/guide/python-api.md") for n in names)


@pytest.mark.slow
@pytest.mark.dask_client
@pytest.mark.parametrize("index", range(len(_blocks())), ids=[name for name, _ in _blocks()])
def test_readme_python_block_runs(index, generated_cocktail, tmp_path, monkeypatch):
    fileset = json.loads((generated_cocktail / "fileset.json").read_text())
    small = {}
    for name in ("ttbar", "wjets"):
        entry = fileset[name]
        files = entry["files"]
        paths = files if isinstance(files, list) else list(files)
        small[name] = {
            "files": {
                str((generated_cocktail / p).resolve()) if not Path(p).is_absolute() else p: "Events" for p in paths
            },
            "metadata": entry["metadata"],
        }
    (tmp_path / "out" / "sm").mkdir(parents=True)
    (tmp_path / "out" / "sm" / "fileset.json").write_text(json.dumps(small))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    name, code = _blocks()[index]
    exec(compile(code, name, "exec"), namespace)  # noqa: S102
    if "out" in namespace:  # the processor block: a filled histogram per dataset
        assert namespace["out"]["ttbar"]["hists"]["ht"].sum().value > 0
    if "graph_out" in namespace:  # the graph-mode block: the same processor through apply_to_fileset
        assert namespace["graph_out"]["wjets"]["hists"]["n_jets"].sum().value > 0
