#!/usr/bin/env -S uv run --script
# /// script
# dependencies = ["nox>=2025.10.14"]
# ///
"""Task runner: ``nox -s tests``, ``lint``, ``docs``, ``bench`` (``nox -l`` lists them).

Every session installs the project with the pins of ``constraints.txt`` and a dependency group of
``pyproject.toml``; ``make test`` runs lint, docs and tests in one environment instead.
"""

from __future__ import annotations

import nox

nox.needs_version = ">=2025.10.14"
nox.options.default_venv_backend = "venv"

PYTHON = "3.11"  # the pinned torch / pythia8mc wheels are built for CPython 3.11


def _install(session: nox.Session, *groups: str) -> None:
    args = ["-c", "constraints.txt", "-e", "."]
    for group in groups:
        args += ["--group", group]
    session.install(*args)


@nox.session(python=PYTHON, default=True)
def lint(session: nox.Session) -> None:
    """ruff (lint and format check) and mypy (the folders of pyproject's ``[tool.mypy] files``)."""
    _install(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("make", "mypy-tree", external=True)
    session.run("mypy")


@nox.session(python=PYTHON, default=True)
def tests(session: nox.Session) -> None:
    """The test suite (``nox -s tests -- -m "not slow"`` for the quick subset)."""
    _install(session, "test")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON, default=False)
def docs(session: nox.Session) -> None:
    """Build the documentation into ``site/`` (``nox -s docs -- serve`` to preview it)."""
    _install(session, "docs")
    if session.posargs and session.posargs[0] == "serve":
        session.run("mkdocs", "serve")
    else:
        session.run("mkdocs", "build", "--strict")


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """The speed benchmarks of the README's benchmark table (generation, processor, scoring, training)."""
    _install(session)
    out = session.posargs[0] if session.posargs else "out"
    session.run("cms-anomaly", "bench", "generate", "--events", "300")
    session.run(
        "cms-anomaly",
        "generate",
        "wjets",
        "zjets",
        "ttbar",
        "--events",
        "3000",
        "--seed",
        "5",
        "--out",
        f"{out}/bench-sm",
    )
    session.run("cms-anomaly", "bench", "processor", f"{out}/bench-sm/fileset.json", "--replicate", "20")
    session.run("cms-anomaly", "bench", "scoring", "--events", "1000000")
    session.run("cms-anomaly", "bench", "training")


if __name__ == "__main__":
    nox.main()
