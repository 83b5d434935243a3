"""Notices said once per process: a condition of a file or a dataset is logged for its first chunk, not
again for every chunk that follows."""

from __future__ import annotations

import logging
from typing import Any

#: (logger, scope, key) of the notices already logged in this process
_SAID: set[tuple[str, str, str]] = set()


def notice_once(
    logger: logging.Logger, scope: str, message: str, *args: Any, key: str | None = None, level: int = logging.INFO
) -> None:
    """Log ``message % args`` on ``logger`` at ``level`` unless this process has already said ``key``
    (default: ``message``) of ``scope`` (a file or a dataset) on that logger."""
    said = (logger.name, scope, message if key is None else key)
    if said not in _SAID:
        _SAID.add(said)
        logger.log(level, message, *args)
