"""Atomic outputs: every file this project writes appears complete under its final name or not at all.

A writer gets a temporary sibling path (``<name>.tmp-<pid>[suffix]``), and only a writer that
returns without an exception has its file renamed (``os.replace``) onto the final path; after a
failure the temporary file is removed. Readers that scan directories skip ``*.tmp-*`` names.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_output(path: str | os.PathLike, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path to write; rename it onto ``path`` when the block succeeds.

    ``suffix`` is appended to the temporary name for writers that choose the format from the
    extension (XGBoost: ``.json``). The parent directory is created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_output(path) as tmp:
        tmp.write_text(text)
    return Path(path)
