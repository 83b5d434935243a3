"""The README's Python blocks run as written (on a small generated fileset in their ``out/``)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_blocks():
    assert len(_python_blocks()) >= 1


@pytest.mark.slow
@pytest.mark.dask_client
@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_readme_python_block_runs(index, generated_cocktail, tmp_path, monkeypatch):
    fileset = json.loads((generated_cocktail / "fileset.json").read_text())
    small = {}
    for name in ("ttbar", "wjets"):
        entry = fileset[name]
        files = entry["files"]
        paths = files if isinstance(files, list) else list(files)
        small[name] = {"files": {str((generated_cocktail / p).resolve()) if not Path(p).is_absolute() else p: "Events"
                                 for p in paths},
                       "metadata": entry["metadata"]}
    (tmp_path / "out" / "sm").mkdir(parents=True)
    (tmp_path / "out" / "sm" / "fileset.json").write_text(json.dumps(small))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_python_blocks()[index], f"README.md python block {index}", "exec"), namespace)  # noqa: S102
    if "out" in namespace:  # the processor block: a filled histogram per dataset
        assert namespace["out"]["ttbar"]["hists"]["ht"].sum().value > 0
