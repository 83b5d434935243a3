"""The package layout reads as the data flow: no upward and no circular import.

``core -> datasets -> processors -> models -> analyses -> benchmarks``; ``core`` and ``stats`` import no
project package, so every layer may use them (the model cards of ``models`` hold thresholds at SM
false-positive rates, which are statistics). What runs on a worker (``processors`` and the scorers of
``models``) imports no generation package (``datasets``): the helpers both sides use live in ``core``.
``processors`` never imports ``models``: the processor takes any scorer satisfying its ``Scorer``
protocol. Every import counts, also the ones inside functions.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {
    "core": "core",
    "datasets": "datasets",
    "processors": "processors",
    "models": "models",
    "stats": "stats",
    "analyses": "analyses",
    "benchmarks": "benchmarks",
    "cms_anomaly": "cms_anomaly",
}
#: package -> the project packages it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "datasets": {"core"},
    "stats": set(),
    "processors": {"core"},  # worker-side: no generation package
    "models": {"core", "processors", "stats"},  # worker-side (scorers): no generation package
    "analyses": {"core", "datasets", "processors", "models", "stats"},
    "benchmarks": {"core", "datasets", "processors", "models", "stats", "analyses"},
    "cms_anomaly": {"core", "datasets", "processors", "models", "stats", "analyses", "benchmarks"},
}


def _imports(path: Path, *, top_level_only: bool = False) -> list[tuple[int, str]]:
    """(line, imported module) of every ``cms_anomaly`` import of a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cms_anomaly"):
            if node.module == "cms_anomaly":
                out += [(node.lineno, f"cms_anomaly.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("cms_anomaly")]
    return out


def _named_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every string that is a whole ``cms_anomaly`` module name (``importlib`` imports)."""
    return [
        (node.lineno, node.value)
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and re.fullmatch(r"cms_anomaly(\.\w+)+", node.value)
    ]


def _package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in PACKAGES else "cms_anomaly"


def _sources():
    for package, folder in PACKAGES.items():
        for path in sorted((REPO / folder).glob("*.py")):
            yield package, path


def test_every_package_is_found():
    found = {package for package, _ in _sources()}
    assert found == set(PACKAGES)


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_upward_import(package):
    bad = []
    for pkg, path in _sources():
        if pkg != package:
            continue
        for line, module in _imports(path):
            target = _package_of(module)
            if target != package and target not in ALLOWED[package]:
                bad.append(f"{path.relative_to(REPO)}:{line} imports {module} ({package} -> {target})")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_upward_import_by_name():
    """Modules imported by name (the CLI's command modules, the API's lazy names) obey the same table."""
    bad = []
    for package, path in _sources():
        for line, module in _named_modules(path):
            target = _package_of(module)
            if target != package and target not in ALLOWED[package]:
                bad.append(f"{path.relative_to(REPO)}:{line} names {module} ({package} -> {target})")
    assert not bad, "upward imports by name:\n" + "\n".join(bad)


def _module_name(package: str, path: Path) -> str:
    base = "cms_anomaly" if package == "cms_anomaly" else f"cms_anomaly.{package}"
    return base if path.stem == "__init__" else f"{base}.{path.stem}"


def _resolve(module: str, names: list[str]) -> list[str]:
    """``from pkg import mod`` names the module ``pkg.mod`` where ``mod`` is a file of ``pkg``."""
    package = _package_of(module)
    folder = REPO / PACKAGES[package]
    if module in ("cms_anomaly", f"cms_anomaly.{package}"):
        subs = [f"cms_anomaly.{package}.{n}" for n in names if (folder / f"{n}.py").exists()]
        return subs or [module]
    return [module]


def test_no_circular_import_between_modules():
    """The module graph (every import, deferred ones too) has no cycle."""
    graph: dict[str, set[str]] = {}
    for package, path in _sources():
        name = _module_name(package, path)
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cms_anomaly"):
                edges.update(_resolve(node.module, [a.name for a in node.names]))
            elif isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name.startswith("cms_anomaly"))
        graph[name] = edges - {name}
    cycles: list[str] = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node] & graph.keys()):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "circular imports:\n" + "\n".join(cycles)


@pytest.mark.parametrize("package", ["processors", "models"])
def test_worker_side_imports_no_generation_package(package):
    """``processors`` and ``models`` run on a worker, which needs no event generation: no ``datasets`` import."""
    assert "datasets" not in ALLOWED[package]
    bad = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for pkg, path in _sources()
        if pkg == package
        for line, module in _imports(path)
        if _package_of(module) == "datasets"
    ]
    assert not bad, "worker-side code imports datasets:\n" + "\n".join(bad)


def test_one_local_cluster_set_up():
    """``LocalCluster(...)`` is built in one place, ``core.workers.local_cluster``, with the worker settings."""
    calls = []
    for _, path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if name == "LocalCluster":
                    calls.append(str(path.relative_to(REPO)))
    assert calls == ["core/workers.py"]


def test_the_layer_test_catches_an_upward_import(tmp_path):
    """The checker itself: a processors module importing models is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from cms_anomaly.models.scorers import load_scorer\n    return load_scorer\n")
    assert _imports(bad) == [(2, "cms_anomaly.models.scorers")]
    assert _package_of("cms_anomaly.models.scorers") not in ALLOWED["processors"]


#: the analysis jobs (one command each); the other ``analyses`` modules are shared by them
JOB_MODULES = ("hunt", "rediscovery", "trigger", "disco", "outlier", "dijet", "evaluate")


def _job_imports(path: Path) -> set[str]:
    """The job modules that the file ``path`` imports (deferred imports too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "cms_anomaly.analyses":
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cms_anomaly.analyses."):
            names.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[2] for a in node.names if a.name.startswith("cms_anomaly.analyses."))
    return names & set(JOB_MODULES)


@pytest.mark.parametrize("job", JOB_MODULES)
def test_an_analysis_job_imports_no_other_job(job):
    """A job reads the shared modules (samples, options, execution, plots), never another job."""
    others = _job_imports(REPO / "analyses" / f"{job}.py") - {job}
    assert not others, f"analyses/{job}.py imports the job module(s) {sorted(others)}"


def test_the_job_test_sees_a_job_import(tmp_path):
    """The checker itself: every import form of a job module is found."""
    bad = tmp_path / "job.py"
    bad.write_text(
        "from cms_anomaly.analyses import analysis, trigger\n"
        "def f():\n    from cms_anomaly.analyses.rediscovery import PROCESSES\n    import cms_anomaly.analyses.dijet\n"
    )
    assert _job_imports(bad) == {"trigger", "rediscovery", "dijet"}
    assert _job_imports(REPO / "analyses" / "disco.py") <= {"trigger"}
